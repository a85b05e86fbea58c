//! `when` conditions over signals: names combined with `||`, `&&`, `!` and parentheses.
//! A condition comes from a flow file, which may come from a repository under review:
//! its length and its depth are bounded, so parsing it, storing it with a run's plan
//! and reading that plan back can never run out of stack.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cond {
    Signal(String),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

/// The longest condition accepted, in bytes.
pub const MAX_LEN: usize = 2048;
/// The deepest condition accepted: parentheses, `!`, and chains of `&&`/`||` (each
/// operator in a chain is one level of the stored tree) all count.
pub const MAX_DEPTH: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '!' => {
                out.push(Tok::Not);
                i += 1
            }
            '&' | '|' => {
                if chars.get(i + 1) != Some(&c) {
                    return Err(format!("write `{c}{c}`, not a single `{c}`"));
                }
                out.push(if c == '&' { Tok::And } else { Tok::Or });
                i += 2;
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// Parentheses and `!` open right now.
    nesting: usize,
}

fn too_deep() -> String {
    format!("the condition nests more than {MAX_DEPTH} levels deep; write it flatter")
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn or(&mut self) -> Result<Cond, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Cond, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            left = Cond::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Cond, String> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Not) => {
                self.pos += 1;
                self.nesting += 1;
                if self.nesting > MAX_DEPTH {
                    return Err(too_deep());
                }
                let inner = self.unary()?;
                self.nesting -= 1;
                Ok(Cond::Not(Box::new(inner)))
            }
            Some(Tok::Open) => {
                self.pos += 1;
                self.nesting += 1;
                if self.nesting > MAX_DEPTH {
                    return Err(too_deep());
                }
                let inner = self.or()?;
                self.nesting -= 1;
                if self.peek() != Some(&Tok::Close) {
                    return Err("missing `)`".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                Ok(Cond::Signal(name))
            }
            Some(t) => Err(format!("expected a signal name, found {t:?}")),
            None => Err("the condition ends too early".into()),
        }
    }
}

impl Cond {
    pub fn parse(src: &str) -> Result<Cond, String> {
        if src.len() > MAX_LEN {
            return Err(format!(
                "the condition is {} bytes long; at most {MAX_LEN} are accepted",
                src.len()
            ));
        }
        let toks = lex(src)?;
        if toks.is_empty() {
            return Err("the condition is empty".into());
        }
        let mut p = Parser {
            toks,
            pos: 0,
            nesting: 0,
        };
        let c = p.or()?;
        if p.pos != p.toks.len() {
            return Err(format!(
                "unexpected {:?} after the condition",
                p.toks[p.pos]
            ));
        }
        if c.depth() > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(c)
    }

    /// Levels of the tree (a signal is 1). Iterative: safe on any tree.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut todo = vec![(self, 1usize)];
        while let Some((c, d)) = todo.pop() {
            deepest = deepest.max(d);
            match c {
                Cond::Signal(_) => {}
                Cond::Not(x) => todo.push((x, d + 1)),
                Cond::And(a, b) | Cond::Or(a, b) => {
                    todo.push((a, d + 1));
                    todo.push((b, d + 1));
                }
            }
        }
        deepest
    }

    /// Evaluates against computed signals; a signal nobody computed is false.
    pub fn eval(&self, signals: &BTreeMap<String, bool>) -> bool {
        match self {
            Cond::Signal(s) => signals.get(s).copied().unwrap_or(false),
            Cond::Not(c) => !c.eval(signals),
            Cond::And(a, b) => a.eval(signals) && b.eval(signals),
            Cond::Or(a, b) => a.eval(signals) || b.eval(signals),
        }
    }

    pub fn signals(&self, out: &mut Vec<String>) {
        match self {
            Cond::Signal(s) => out.push(s.clone()),
            Cond::Not(c) => c.signals(out),
            Cond::And(a, b) | Cond::Or(a, b) => {
                a.signals(out);
                b.signals(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(pairs: &[(&str, bool)]) -> BTreeMap<String, bool> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn precedence_and_evaluation() {
        let c = Cond::parse("auth || api && !tests").unwrap();
        assert!(c.eval(&sig(&[("auth", true)])));
        assert!(c.eval(&sig(&[("api", true)])));
        assert!(!c.eval(&sig(&[("api", true), ("tests", true)])));
        let c = Cond::parse("(auth || api) && !tests").unwrap();
        assert!(!c.eval(&sig(&[("auth", true), ("tests", true)])));
        assert!(!c.eval(&sig(&[])));
    }

    #[test]
    fn hostile_depth_and_length_are_refused_without_recursing() {
        // 20,000 parentheses once overflowed the stack of the thread listing flows.
        let deep = format!("{}a{}", "(".repeat(20_000), ")".repeat(20_000));
        assert!(Cond::parse(&deep).unwrap_err().contains("at most 2048"));
        let deep = format!("{}a{}", "(".repeat(1000), ")".repeat(1000));
        assert!(Cond::parse(&deep)
            .unwrap_err()
            .contains("more than 24 levels"));
        let parens = format!("{}a{}", "(".repeat(30), ")".repeat(30));
        assert!(Cond::parse(&parens)
            .unwrap_err()
            .contains("more than 24 levels"));
        let nots = format!("{}a", "!".repeat(30));
        assert!(Cond::parse(&nots)
            .unwrap_err()
            .contains("more than 24 levels"));
        // A 126-long chain once stored a plan serde could not read back.
        let chain = (0..126)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(" && ");
        assert!(Cond::parse(&chain)
            .unwrap_err()
            .contains("more than 24 levels"));
        // Within the limits: fine, and a stored plan reads back.
        let ok = (0..20)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(" || ");
        let c = Cond::parse(&ok).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Cond>(&json).unwrap(), c);
    }

    #[test]
    fn any_string_parses_or_is_explained_and_what_parses_reads_back() {
        // Deterministic random token soup (xorshift), long and deep on purpose.
        let toks = [
            "(", ")", "!", "&&", "||", "a", "b_1", "c-2", " ", "&", "|", "$", "((",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut parsed = 0;
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 200) as usize;
            let src: String = (0..n)
                .map(|i| toks[((x >> (i % 48)) as usize + i * 7) % toks.len()])
                .collect();
            match Cond::parse(&src) {
                Ok(c) => {
                    parsed += 1;
                    assert!(c.depth() <= MAX_DEPTH, "{src}");
                    let json = serde_json::to_string(&c).unwrap();
                    assert_eq!(serde_json::from_str::<Cond>(&json).unwrap(), c, "{src}");
                }
                Err(e) => assert!(!e.is_empty()),
            }
        }
        assert!(parsed > 0);
    }

    #[test]
    fn errors_are_explained() {
        assert!(Cond::parse("").unwrap_err().contains("empty"));
        assert!(Cond::parse("a | b").unwrap_err().contains("||"));
        assert!(Cond::parse("(a").unwrap_err().contains(")"));
        assert!(Cond::parse("a b").unwrap_err().contains("unexpected"));
        assert!(Cond::parse("a $")
            .unwrap_err()
            .contains("unexpected character"));
    }
}
