//! `export const meta = { ... }`: found and parsed from the source text before any
//! JavaScript runs, by a small parser of our own that accepts only a *pure literal*:
//! objects, arrays, strings (`'…'`, `"…"`, or a template without `${`), numbers,
//! booleans and `null`, with unquoted or quoted keys, comments and trailing commas.
//! Identifiers, calls, spreads, computed keys, shorthand properties, methods and
//! template substitutions are refused with the line and column (1-based) where they
//! start, so a listing or a launch can explain the problem without running the script.
//!
//! Rules for where `meta` sits: the script begins with it (after an optional `#!`
//! line, comments and directives such as `'use strict'`). `export` is optional; the
//! engine removes it (the body runs as a script, not a module).

use super::{ErrorKind, ScriptError};
use serde_json::{Map, Number, Value};

/// A workflow's declared metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub name: String,
    pub description: String,
    pub when_to_use: Option<String>,
    pub phases: Vec<MetaPhase>,
    /// The whole literal as JSON (unknown keys included).
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaPhase {
    pub title: String,
    pub detail: Option<String>,
}

/// What the engine needs besides [`Meta`]: where the `export` keyword is, so it can
/// be blanked out without moving any other character.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedMeta {
    pub meta: Meta,
    /// Byte range of the `export` keyword, when present.
    pub export_span: Option<(usize, usize)>,
}

/// Parse `meta` from a workflow's source text (launches use `check_syntax`, which
/// also compiles the script).
#[cfg(test)]
pub fn parse_meta(source: &str) -> Result<Meta, ScriptError> {
    parse_meta_spans(source).map(|p| p.meta)
}

pub(crate) fn parse_meta_spans(source: &str) -> Result<ParsedMeta, ScriptError> {
    let mut p = Parser::new(source);
    p.skip_hashbang();
    p.skip_trivia()?;
    // Directive prologue: string statements such as 'use strict';
    while matches!(p.peek(), Some('"' | '\'')) {
        p.string()?;
        p.skip_trivia()?;
        if p.peek() == Some(';') {
            p.bump();
            p.skip_trivia()?;
        }
    }
    let start = p.pos();
    let first = p.word();
    let mut export_span = None;
    let declared = match first.as_deref() {
        Some("export") => {
            export_span = Some((start.offset, p.offset));
            p.skip_trivia()?;
            p.word().as_deref() == Some("const")
        }
        Some("const") => true,
        _ => false,
    };
    let named = declared && {
        p.skip_trivia()?;
        p.word().as_deref() == Some("meta")
    };
    let assigned = named && {
        p.skip_trivia()?;
        p.peek() == Some('=') && {
            p.bump();
            true
        }
    };
    if !assigned {
        return Err(meta_error(
            "missing `meta`: a workflow must begin with `export const meta = { name: '…', description: '…' }`",
            start,
        ));
    }
    p.skip_trivia()?;
    let lit = p.value()?;
    p.end_of_declaration()?;
    let meta = check_meta(&lit)?;
    Ok(ParsedMeta { meta, export_span })
}

/// A position in the source: byte offset, line and column (1-based, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    offset: usize,
    line: u32,
    column: u32,
}

fn meta_error(message: impl Into<String>, at: Pos) -> ScriptError {
    ScriptError {
        kind: ErrorKind::Meta,
        message: message.into(),
        line: Some(at.line),
        column: Some(at.column),
    }
}

fn not_pure(found: &str, at: Pos) -> ScriptError {
    meta_error(
        format!(
            "`meta` is not a pure literal: found {found} (only objects, arrays, strings, numbers, booleans and null are allowed)"
        ),
        at,
    )
}

/// A parsed literal with the position where it starts.
#[derive(Debug, Clone)]
struct Lit {
    at: Pos,
    kind: LitKind,
}

#[derive(Debug, Clone)]
enum LitKind {
    Object(Vec<(String, Lit)>),
    Array(Vec<Lit>),
    String(String),
    Number(f64),
    Bool(bool),
    Null,
}

impl Lit {
    fn to_json(&self) -> Value {
        match &self.kind {
            LitKind::Object(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    // Later duplicates win, as in JavaScript.
                    map.insert(k.clone(), v.to_json());
                }
                Value::Object(map)
            }
            LitKind::Array(items) => Value::Array(items.iter().map(Lit::to_json).collect()),
            LitKind::String(s) => Value::String(s.clone()),
            LitKind::Number(n) => number_to_json(*n),
            LitKind::Bool(b) => Value::Bool(*b),
            LitKind::Null => Value::Null,
        }
    }

    fn get(&self, key: &str) -> Option<&Lit> {
        match &self.kind {
            LitKind::Object(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|e| &e.1),
            _ => None,
        }
    }
}

pub(crate) fn number_to_json(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn check_meta(lit: &Lit) -> Result<Meta, ScriptError> {
    if !matches!(lit.kind, LitKind::Object(_)) {
        return Err(meta_error(
            "`meta` must be an object literal: `{ name: '…', description: '…' }`",
            lit.at,
        ));
    }
    let name = required_string(lit, "name")?;
    let description = required_string(lit, "description")?;
    let when_to_use = match lit.get("whenToUse") {
        None => None,
        Some(Lit {
            kind: LitKind::String(s),
            ..
        }) => Some(s.clone()),
        Some(Lit {
            kind: LitKind::Null,
            ..
        }) => None,
        Some(other) => return Err(meta_error("`meta.whenToUse` must be a string", other.at)),
    };
    let mut phases = Vec::new();
    match lit.get("phases") {
        None => {}
        Some(Lit {
            kind: LitKind::Array(items),
            ..
        }) => {
            for (i, item) in items.iter().enumerate() {
                if !matches!(item.kind, LitKind::Object(_)) {
                    return Err(meta_error(
                        format!("`meta.phases[{i}]` must be an object `{{ title, detail? }}`"),
                        item.at,
                    ));
                }
                let title = match item.get("title") {
                    Some(Lit {
                        kind: LitKind::String(s),
                        ..
                    }) if !s.trim().is_empty() => s.clone(),
                    Some(other) => {
                        return Err(meta_error(
                            format!("`meta.phases[{i}].title` must be a non-empty string"),
                            other.at,
                        ))
                    }
                    None => {
                        return Err(meta_error(
                            format!("`meta.phases[{i}].title` is missing"),
                            item.at,
                        ))
                    }
                };
                let detail = match item.get("detail") {
                    None => None,
                    Some(Lit {
                        kind: LitKind::String(s),
                        ..
                    }) => Some(s.clone()),
                    Some(Lit {
                        kind: LitKind::Null,
                        ..
                    }) => None,
                    Some(other) => {
                        return Err(meta_error(
                            format!("`meta.phases[{i}].detail` must be a string"),
                            other.at,
                        ))
                    }
                };
                phases.push(MetaPhase { title, detail });
            }
        }
        Some(other) => {
            return Err(meta_error(
                "`meta.phases` must be an array of `{ title, detail? }`",
                other.at,
            ))
        }
    }
    Ok(Meta {
        name,
        description,
        when_to_use,
        phases,
        value: lit.to_json(),
    })
}

fn required_string(lit: &Lit, key: &str) -> Result<String, ScriptError> {
    match lit.get(key) {
        None => Err(meta_error(format!("`meta.{key}` is missing"), lit.at)),
        Some(Lit {
            kind: LitKind::String(s),
            ..
        }) if !s.trim().is_empty() => Ok(s.clone()),
        Some(other) => Err(meta_error(
            format!("`meta.{key}` must be a non-empty string"),
            other.at,
        )),
    }
}

struct Parser<'a> {
    src: &'a str,
    offset: usize,
    line: u32,
    column: u32,
}

fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

fn is_ident_start(c: char) -> bool {
    c == '$' || c == '_' || c.is_alphabetic()
}

fn is_ident_part(c: char) -> bool {
    is_ident_start(c) || c.is_alphanumeric() || c == '\u{200c}' || c == '\u{200d}'
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            src,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    fn pos(&self) -> Pos {
        Pos {
            offset: self.offset,
            line: self.line,
            column: self.column,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.offset..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.offset..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        if c == '\r' && self.peek() == Some('\n') {
            // CR LF is one line break: count it on the LF.
            self.column += 1;
        } else if is_line_terminator(c) {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn skip_hashbang(&mut self) {
        if self.src.starts_with("#!") {
            while let Some(c) = self.peek() {
                if is_line_terminator(c) {
                    break;
                }
                self.bump();
            }
        }
    }

    /// Skip whitespace and comments; report whether a line break was crossed.
    fn skip_trivia(&mut self) -> Result<bool, ScriptError> {
        let mut newline = false;
        loop {
            match self.peek() {
                Some(c) if is_line_terminator(c) => {
                    newline = true;
                    self.bump();
                }
                Some(c) if c.is_whitespace() || c == '\u{feff}' => {
                    self.bump();
                }
                Some('/') if self.peek_at(1) == Some('/') => {
                    while let Some(c) = self.peek() {
                        if is_line_terminator(c) {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek_at(1) == Some('*') => {
                    let at = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => return Err(meta_error("unterminated `/*` comment", at)),
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(c) if is_line_terminator(c) => newline = true,
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(newline),
            }
        }
    }

    /// An identifier name (keywords included), or None without consuming anything.
    fn word(&mut self) -> Option<String> {
        let c = self.peek()?;
        if !is_ident_start(c) {
            return None;
        }
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if !is_ident_part(c) {
                break;
            }
            s.push(c);
            self.bump();
        }
        Some(s)
    }

    fn value(&mut self) -> Result<Lit, ScriptError> {
        let at = self.pos();
        let kind = match self.peek() {
            None => return Err(meta_error("unexpected end of the script inside `meta`", at)),
            Some('{') => self.object()?,
            Some('[') => self.array()?,
            Some('"' | '\'') => LitKind::String(self.string()?),
            Some('`') => LitKind::String(self.template()?),
            Some(c) if c.is_ascii_digit() => LitKind::Number(self.number()?),
            Some('.') if self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) => {
                LitKind::Number(self.number()?)
            }
            Some('-' | '+') => {
                let negative = self.bump() == Some('-');
                let after = self.pos();
                match self.peek() {
                    Some(c) if c.is_ascii_digit() || c == '.' => {
                        let n = self.number()?;
                        LitKind::Number(if negative { -n } else { n })
                    }
                    _ => {
                        return Err(not_pure(
                            "an expression (a sign not followed by a number)",
                            after,
                        ))
                    }
                }
            }
            Some('.') if self.src[self.offset..].starts_with("...") => {
                return Err(not_pure("a spread (`...`)", at))
            }
            Some(c) if is_ident_start(c) => {
                let word = self.word().unwrap_or_default();
                match word.as_str() {
                    "true" => LitKind::Bool(true),
                    "false" => LitKind::Bool(false),
                    "null" => LitKind::Null,
                    _ => {
                        let _ = self.skip_trivia();
                        let what = if self.peek() == Some('(') {
                            format!("a call (`{word}(`)")
                        } else {
                            format!("the identifier `{word}`")
                        };
                        return Err(not_pure(&what, at));
                    }
                }
            }
            Some(c) => return Err(not_pure(&format!("`{c}`"), at)),
        };
        Ok(Lit { at, kind })
    }

    fn object(&mut self) -> Result<LitKind, ScriptError> {
        self.bump(); // {
        let mut entries = Vec::new();
        loop {
            self.skip_trivia()?;
            let key_at = self.pos();
            let key = match self.peek() {
                Some('}') => {
                    self.bump();
                    return Ok(LitKind::Object(entries));
                }
                Some('"' | '\'') => self.string()?,
                Some('[') => return Err(not_pure("a computed key (`[`)", key_at)),
                Some('.') if self.src[self.offset..].starts_with("...") => {
                    return Err(not_pure("a spread (`...`)", key_at))
                }
                Some('`') => return Err(not_pure("a template literal used as a key", key_at)),
                Some(c) if c.is_ascii_digit() || c == '.' => {
                    let n = self.number()?;
                    match number_to_json(n) {
                        Value::Number(num) => num.to_string(),
                        _ => n.to_string(),
                    }
                }
                Some(c) if is_ident_start(c) => self.word().unwrap_or_default(),
                None => {
                    return Err(meta_error(
                        "unexpected end of the script inside `meta`",
                        key_at,
                    ))
                }
                Some(c) => return Err(not_pure(&format!("`{c}` where a key belongs"), key_at)),
            };
            self.skip_trivia()?;
            let after_key = self.pos();
            match self.peek() {
                Some(':') => {
                    self.bump();
                }
                Some(',' | '}') => {
                    return Err(not_pure(
                        &format!("the shorthand property `{key}` (write `{key}: value`)"),
                        key_at,
                    ))
                }
                Some('(') => return Err(not_pure(&format!("a method (`{key}(`)"), key_at)),
                Some(c) if is_ident_start(c) || c == '[' => {
                    return Err(not_pure(
                        &format!("an accessor or method (`{key} …`)"),
                        key_at,
                    ))
                }
                None => {
                    return Err(meta_error(
                        "unexpected end of the script inside `meta`",
                        after_key,
                    ))
                }
                Some(c) => {
                    return Err(not_pure(&format!("`{c}` after the key `{key}`"), after_key))
                }
            }
            self.skip_trivia()?;
            let value = self.value()?;
            entries.push((key, value));
            self.skip_trivia()?;
            let sep = self.pos();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {}
                None => {
                    return Err(meta_error(
                        "unexpected end of the script inside `meta`",
                        sep,
                    ))
                }
                Some(c) => return Err(not_pure(&format!("an expression (`{c}`)"), sep)),
            }
        }
    }

    fn array(&mut self) -> Result<LitKind, ScriptError> {
        self.bump(); // [
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            let at = self.pos();
            match self.peek() {
                Some(']') => {
                    self.bump();
                    return Ok(LitKind::Array(items));
                }
                Some(',') => return Err(not_pure("an array hole (`,,`)", at)),
                _ => {}
            }
            items.push(self.value()?);
            self.skip_trivia()?;
            let sep = self.pos();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {}
                None => {
                    return Err(meta_error(
                        "unexpected end of the script inside `meta`",
                        sep,
                    ))
                }
                Some(c) => return Err(not_pure(&format!("an expression (`{c}`)"), sep)),
            }
        }
    }

    /// After the literal: `;`, the end of the script, or a line break followed by
    /// something that cannot continue an expression.
    fn end_of_declaration(&mut self) -> Result<(), ScriptError> {
        let newline = self.skip_trivia()?;
        let at = self.pos();
        match self.peek() {
            None | Some(';') => Ok(()),
            Some(c) if newline && (is_ident_start(c) || matches!(c, '{' | '}' | '"' | '\'')) => {
                Ok(())
            }
            Some(c) => Err(not_pure(
                &format!("an expression continuing after the literal (`{c}`)"),
                at,
            )),
        }
    }

    fn string(&mut self) -> Result<String, ScriptError> {
        let at = self.pos();
        let quote = self.bump().unwrap_or('"');
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(meta_error("unterminated string in `meta`", at)),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => self.escape(&mut out, at)?,
                Some(c) if c == '\n' || c == '\r' => {
                    return Err(meta_error("unterminated string in `meta`", at))
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn template(&mut self) -> Result<String, ScriptError> {
        let at = self.pos();
        self.bump(); // `
        let mut out = String::new();
        loop {
            let here = self.pos();
            match self.bump() {
                None => return Err(meta_error("unterminated template literal in `meta`", at)),
                Some('`') => return Ok(out),
                Some('$') if self.peek() == Some('{') => {
                    return Err(not_pure("a template substitution (`${`)", here))
                }
                Some('\\') => self.escape(&mut out, at)?,
                Some('\r') => {
                    // CR and CR LF both read as LF inside a template.
                    if self.peek() == Some('\n') {
                        self.bump();
                    }
                    out.push('\n');
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// After a backslash inside a string or template.
    fn escape(&mut self, out: &mut String, string_at: Pos) -> Result<(), ScriptError> {
        let at = self.pos();
        let bad = |what: &str| meta_error(format!("invalid escape in `meta`: {what}"), at);
        match self.bump() {
            None => return Err(meta_error("unterminated string in `meta`", string_at)),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some('0') if !self.peek().is_some_and(|c| c.is_ascii_digit()) => out.push('\0'),
            Some(c) if c.is_ascii_digit() => return Err(bad("octal escapes are not allowed")),
            Some('x') => {
                let mut v = 0u32;
                for _ in 0..2 {
                    let d = self.bump().and_then(|c| c.to_digit(16));
                    v = v * 16 + d.ok_or_else(|| bad("`\\x` needs two hex digits"))?;
                }
                out.push(char::from_u32(v).ok_or_else(|| bad("bad `\\x` escape"))?);
            }
            Some('u') => {
                let unit = self
                    .unicode_escape()
                    .ok_or_else(|| bad("bad `\\u` escape"))?;
                // A surrogate pair spelled as two escapes.
                if (0xD800..0xDC00).contains(&unit)
                    && self.peek() == Some('\\')
                    && self.peek_at(1) == Some('u')
                {
                    self.bump();
                    self.bump();
                    let low = self
                        .unicode_escape()
                        .ok_or_else(|| bad("bad `\\u` escape"))?;
                    if (0xDC00..0xE000).contains(&low) {
                        let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                    } else {
                        out.push('\u{fffd}');
                        out.push(char::from_u32(low).unwrap_or('\u{fffd}'));
                    }
                } else {
                    out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                }
            }
            Some('\r') => {
                // Line continuation (CR LF counts as one).
                if self.peek() == Some('\n') {
                    self.bump();
                }
            }
            Some(c) if is_line_terminator(c) => {}
            Some(c) => out.push(c),
        }
        Ok(())
    }

    /// The digits of `\uXXXX` or `\u{X…}` (the `\u` already consumed).
    fn unicode_escape(&mut self) -> Option<u32> {
        if self.peek() == Some('{') {
            self.bump();
            let mut v: u32 = 0;
            let mut digits = 0;
            loop {
                let c = self.bump()?;
                if c == '}' {
                    break;
                }
                v = v.checked_mul(16)?.checked_add(c.to_digit(16)?)?;
                digits += 1;
            }
            (digits > 0 && v <= 0x10FFFF).then_some(v)
        } else {
            let mut v = 0u32;
            for _ in 0..4 {
                v = v * 16 + self.bump()?.to_digit(16)?;
            }
            Some(v)
        }
    }

    fn number(&mut self) -> Result<f64, ScriptError> {
        let at = self.pos();
        let mut text = String::new();
        while let Some(c) = self.peek() {
            let exponent_sign = matches!(c, '+' | '-')
                && matches!(text.chars().last(), Some('e' | 'E'))
                && !text.starts_with("0x")
                && !text.starts_with("0X");
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || exponent_sign {
                text.push(c);
                self.bump();
            } else {
                break;
            }
        }
        let bad = || {
            not_pure(
                &format!("the number `{text}`, which is not a plain number literal"),
                at,
            )
        };
        if text.ends_with('n') {
            return Err(not_pure(&format!("the BigInt `{text}`"), at));
        }
        if text.starts_with('_') || text.ends_with('_') || text.contains("__") {
            return Err(bad());
        }
        let digits: String = text.chars().filter(|&c| c != '_').collect();
        let lower = digits.to_ascii_lowercase();
        let radix = |prefix: &str, radix: u32| -> Result<f64, ScriptError> {
            let body = &lower[prefix.len()..];
            if body.is_empty() {
                return Err(bad());
            }
            let mut v = 0f64;
            for c in body.chars() {
                v = v * radix as f64 + c.to_digit(radix).ok_or_else(bad)? as f64;
            }
            Ok(v)
        };
        if lower.starts_with("0x") {
            return radix("0x", 16);
        }
        if lower.starts_with("0o") {
            return radix("0o", 8);
        }
        if lower.starts_with("0b") {
            return radix("0b", 2);
        }
        if lower.len() > 1 && lower.starts_with('0') && lower.as_bytes()[1].is_ascii_digit() {
            return Err(not_pure(&format!("the legacy octal number `{text}`"), at));
        }
        let well_formed = lower
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'));
        match lower.parse::<f64>() {
            Ok(v) if well_formed && v.is_finite() => Ok(v),
            _ => Err(bad()),
        }
    }
}
