//! Secrets never leave boo in agent text. The configured API key can come back in what
//! an agent says (qwen echoes request errors; a model may repeat its environment):
//! everything boo stores or sends from an agent — stream deltas, tool calls and
//! results, traces, step outputs and errors, metadata — passes through a
//! [`Redactor`] first. A secret split across two stream deltas is caught too: when a
//! text run ends with the start of a secret, the [`StreamRedactor`] holds back just
//! that start until the next delta shows how it continues (any other text goes out
//! at once).

use crate::model::StreamEvent;
use std::borrow::Cow;
use std::sync::Arc;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";
/// Shorter values are not treated as secrets: a local server's key is often a
/// placeholder like `x` or `none`, and masking it would garble ordinary text.
pub const MIN_SECRET_LEN: usize = 8;

#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
    /// Text replaced by other text (a run's snapshot folder by nothing, so the paths
    /// agents mention read relative to the project), after the secrets.
    rewrites: Vec<(String, String)>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| s.chars().count() >= MIN_SECRET_LEN)
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets,
            rewrites: Vec::new(),
        }
    }

    /// This redactor, also replacing each `(from, to)` (empty `from`s are ignored).
    /// No `from` may be a prefix of another: a stream holds back the start of one
    /// until it sees how it continues, and a shorter one would be replaced first.
    pub fn with_rewrites(&self, pairs: impl IntoIterator<Item = (String, String)>) -> Redactor {
        let mut rewrites: Vec<(String, String)> = self.rewrites.clone();
        rewrites.extend(pairs.into_iter().filter(|(from, _)| !from.is_empty()));
        rewrites.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        rewrites.dedup_by(|a, b| a.0 == b.0);
        Redactor {
            secrets: self.secrets.clone(),
            rewrites,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.rewrites.is_empty()
    }

    /// The length of the longest tail of `text` that is a proper start of a secret or
    /// of a rewritten text (0 when none is): what must wait for the next delta.
    fn partial_tail(&self, text: &str) -> usize {
        let mut keep = 0;
        let needles = self
            .secrets
            .iter()
            .chain(self.rewrites.iter().map(|(from, _)| from));
        for secret in needles {
            for k in (keep + 1..secret.len()).rev() {
                if secret.is_char_boundary(k) && text.ends_with(&secret[..k]) {
                    keep = k;
                    break;
                }
            }
        }
        keep
    }

    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if !self.secrets.iter().any(|k| s.contains(k.as_str()))
            && !self
                .rewrites
                .iter()
                .any(|(from, _)| s.contains(from.as_str()))
        {
            return Cow::Borrowed(s);
        }
        let mut out = s.to_string();
        for k in &self.secrets {
            out = out.replace(k.as_str(), REDACTED);
        }
        for (from, to) in &self.rewrites {
            out = out.replace(from.as_str(), to);
        }
        Cow::Owned(out)
    }

    pub fn string(&self, s: &mut String) {
        if let Cow::Owned(clean) = self.text(s) {
            *s = clean;
        }
    }

    /// Every string inside a JSON value (keys included).
    pub fn json(&self, v: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match v {
            serde_json::Value::String(s) => self.string(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.json(x)),
            serde_json::Value::Object(m) => {
                let entries = std::mem::take(m);
                for (k, mut x) in entries {
                    self.json(&mut x);
                    m.insert(self.text(&k).into_owned(), x);
                }
            }
            _ => {}
        }
    }

    /// A whole event (not a delta that may continue).
    pub fn event(&self, ev: &mut StreamEvent) {
        match ev {
            StreamEvent::Text { text } | StreamEvent::Thinking { text } => self.string(text),
            StreamEvent::ToolCall { input, name, .. } => {
                self.string(name);
                self.json(input);
            }
            StreamEvent::ToolResult { content, .. } => self.string(content),
            StreamEvent::MessageComplete { .. } => {}
        }
    }
}

/// Redacts a live stream whose text arrives in deltas.
pub struct StreamRedactor {
    redactor: Arc<Redactor>,
    /// A text or thinking run not yet sent in full: (is thinking, text).
    held: Option<(bool, String)>,
}

impl StreamRedactor {
    pub fn new(redactor: Arc<Redactor>) -> StreamRedactor {
        StreamRedactor {
            redactor,
            held: None,
        }
    }

    /// The events to send for `ev`, redacted. Text deltas may be held back in part
    /// (never more than the longest secret) until the next event.
    pub fn push(&mut self, ev: StreamEvent) -> Vec<StreamEvent> {
        if self.redactor.is_empty() {
            return vec![ev];
        }
        let (thinking, delta) = match ev {
            StreamEvent::Text { text } => (false, text),
            StreamEvent::Thinking { text } => (true, text),
            mut other => {
                let mut out = self.flush();
                self.redactor.event(&mut other);
                out.push(other);
                return out;
            }
        };
        let mut out = Vec::new();
        if self.held.as_ref().is_some_and(|(t, _)| *t != thinking) {
            out.extend(self.flush());
        }
        let mut run = self.held.take().map(|(_, s)| s).unwrap_or_default();
        run.push_str(&delta);
        let clean = self.redactor.text(&run).into_owned();
        // Keep back only a tail that is the start of a secret (it may be completed by
        // the next delta); any other text goes out at once.
        let keep = self.redactor.partial_tail(&clean);
        let cut = clean.len() - keep;
        let (send, hold) = clean.split_at(cut);
        if !send.is_empty() {
            out.push(make(thinking, send.to_string()));
        }
        if !hold.is_empty() {
            self.held = Some((thinking, hold.to_string()));
        }
        out
    }

    /// What is still held back (at the end of the stream, or before another event).
    pub fn flush(&mut self) -> Vec<StreamEvent> {
        match self.held.take() {
            Some((thinking, text)) => {
                vec![make(thinking, self.redactor.text(&text).into_owned())]
            }
            None => Vec::new(),
        }
    }
}

fn make(thinking: bool, text: String) -> StreamEvent {
    if thinking {
        StreamEvent::Thinking { text }
    } else {
        StreamEvent::Text { text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "sk-live-0123456789";

    fn text(t: &str) -> StreamEvent {
        StreamEvent::Text { text: t.into() }
    }

    fn joined(events: &[StreamEvent]) -> String {
        events
            .iter()
            .map(|e| match e {
                StreamEvent::Text { text } => text.clone(),
                other => format!("<{other:?}>"),
            })
            .collect()
    }

    #[test]
    fn secrets_are_masked_in_text_and_json() {
        let r = Redactor::new([KEY.to_string(), "short".to_string()]);
        assert_eq!(r.text(&format!("key={KEY}!")), "key=[redacted]!");
        assert_eq!(
            r.text("short stays"),
            "short stays",
            "too short to be a secret"
        );
        let mut v = json!({"a": [KEY, {"b": format!("x{KEY}")}], KEY: 1});
        r.json(&mut v);
        assert_eq!(
            v,
            json!({"a": ["[redacted]", {"b": "x[redacted]"}], "[redacted]": 1})
        );
        assert!(Redactor::new([String::new()]).is_empty());
    }

    #[test]
    fn a_secret_split_across_deltas_never_leaves_whole() {
        let r = Arc::new(Redactor::new([KEY.to_string()]));
        for split in 1..KEY.len() {
            let mut s = StreamRedactor::new(r.clone());
            let mut out = s.push(text(&format!("the key is {}", &KEY[..split])));
            out.extend(s.push(text(&format!("{} ok", &KEY[split..]))));
            out.extend(s.flush());
            let all = joined(&out);
            assert_eq!(all, "the key is [redacted] ok", "split at {split}");
            for e in &out {
                assert!(!joined(std::slice::from_ref(e)).contains(&KEY[..split.max(8)]));
            }
        }
    }

    #[test]
    fn held_text_comes_out_before_the_next_event_in_order() {
        let r = Arc::new(Redactor::new([KEY.to_string()]));
        let mut s = StreamRedactor::new(r);
        let mut out = s.push(text("hello"));
        out.extend(s.push(StreamEvent::ToolResult {
            tool_call_id: "1".into(),
            is_error: true,
            content: format!("401 for key {KEY}"),
        }));
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], text("hello"));
        assert!(
            matches!(&out[1], StreamEvent::ToolResult { content, .. } if content == "401 for key [redacted]")
        );
        assert!(s.flush().is_empty());
    }

    #[test]
    fn text_that_cannot_start_a_secret_is_never_held_back() {
        let r = Arc::new(Redactor::new([KEY.to_string()]));
        let mut s = StreamRedactor::new(r);
        // An agent that pauses mid-sentence: the reader sees everything so far.
        assert_eq!(
            s.push(text("Thinking very hard")),
            vec![text("Thinking very hard")]
        );
        // Only a tail that begins the key waits, and only as much as matches.
        assert_eq!(s.push(text(" about sk-li")), vec![text(" about ")]);
        assert_eq!(s.push(text("fe")), vec![text("sk-life")]);
        assert!(s.flush().is_empty());
    }

    #[test]
    fn a_rewritten_folder_is_replaced_in_text_json_and_split_deltas() {
        let snap = "/data/boo/snapshots/0193/tree/";
        let r = Redactor::new([KEY.to_string()]).with_rewrites([(snap.to_string(), String::new())]);
        assert_eq!(
            r.text(&format!("read {snap}src/a.rs with {KEY}")),
            "read src/a.rs with [redacted]"
        );
        let mut v = json!({"file_path": format!("{snap}README.md"), "n": 1});
        r.json(&mut v);
        assert_eq!(v, json!({"file_path": "README.md", "n": 1}));
        let r = Arc::new(r);
        for split in 1..snap.len() {
            let mut s = StreamRedactor::new(r.clone());
            let mut out = s.push(text(&format!("see {}", &snap[..split])));
            out.extend(s.push(text(&format!("{}lib.rs:4", &snap[split..]))));
            out.extend(s.flush());
            assert_eq!(joined(&out), "see lib.rs:4", "split at {split}");
        }
        // A rewrite alone is enough to redact (no secrets configured).
        let only = Redactor::default().with_rewrites([(snap.to_string(), String::new())]);
        assert!(!only.is_empty());
        assert!(Redactor::default()
            .with_rewrites([(String::new(), "x".into())])
            .is_empty());
    }

    #[test]
    fn without_secrets_the_stream_passes_untouched() {
        let mut s = StreamRedactor::new(Arc::new(Redactor::default()));
        assert_eq!(s.push(text("a")), vec![text("a")]);
        assert!(s.flush().is_empty());
    }
}
