//! The cache shape of a chat request: its segments, the prefix it shares with earlier
//! requests to the same endpoint, and why the server's cache reused less than that.
//!
//! Pure apart from [`PrefixMemory`], which holds a bounded number of earlier requests.
//! A request is laid out in the order chat templates render it — system prompt, tool
//! schemas, then each message — each segment serialized as compact JSON; the expected
//! cacheable prefix is the longest byte prefix of that layout shared with any request
//! remembered. Token estimates are bytes / 4 scaled to the reported prompt tokens when
//! the server gave them.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;

/// One part of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// `system`, `tools`, `history`, `toolResult`, `new`, `image`.
    pub kind: String,
    pub label: String,
    pub bytes: u64,
    pub hash: String,
    pub est_tokens: u64,
    /// `full`, `partial` or `none`: how much of it lies in the expected cached prefix.
    pub cached: String,
    #[serde(skip)]
    start: usize,
    /// Content this request brings for the first time (the messages after the last
    /// assistant message): a prefix ending there is not a miss.
    #[serde(skip)]
    fresh: bool,
}

/// A request laid out for comparison.
#[derive(Debug, Clone)]
pub struct Layout {
    pub segments: Vec<Segment>,
    pub bytes: Vec<u8>,
    /// The model turn this request opens in its conversation (1 + assistant messages).
    pub turn: u64,
}

fn image_count(content: &Value) -> usize {
    content
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter(|p| {
                    p.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.contains("image"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Lays a chat-completions request body out in segments; `None` if it is not one.
pub fn layout(body: &[u8]) -> Option<Layout> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let messages = v.get("messages")?.as_array()?;
    let mut parts: Vec<(String, String, Vec<u8>, bool)> = Vec::new();
    let last_assistant = messages
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("assistant"));
    let mut turn = 1;
    let mut tools_placed = false;
    let place_tools = |parts: &mut Vec<(String, String, Vec<u8>, bool)>| {
        if let Some(t) = v.get("tools").filter(|t| !t.is_null()) {
            let n = t.as_array().map(Vec::len).unwrap_or(0);
            parts.push((
                "tools".into(),
                format!("{n} tool schemas"),
                serde_json::to_vec(t).unwrap_or_default(),
                false,
            ));
        }
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("?");
        if role != "system" && !tools_placed {
            place_tools(&mut parts);
            tools_placed = true;
        }
        if role == "assistant" {
            turn += 1;
        }
        let kind = match role {
            "system" | "developer" => "system",
            "tool" => "toolResult",
            _ if image_count(m.get("content").unwrap_or(&Value::Null)) > 0 => "image",
            _ if last_assistant.is_none_or(|a| i > a) => "new",
            _ => "history",
        };
        let fresh = kind != "system" && last_assistant.is_none_or(|a| i > a);
        parts.push((
            kind.into(),
            format!("message {i} ({role})"),
            serde_json::to_vec(m).unwrap_or_default(),
            fresh,
        ));
    }
    if !tools_placed {
        place_tools(&mut parts);
    }
    let mut bytes = Vec::new();
    let segments = parts
        .into_iter()
        .map(|(kind, label, b, fresh)| {
            let start = bytes.len();
            bytes.extend_from_slice(&b);
            let hash = format!("{:x}", Sha256::digest(&b));
            Segment {
                kind,
                label,
                bytes: b.len() as u64,
                hash: hash[..16].to_string(),
                est_tokens: (b.len() as u64).div_ceil(4),
                cached: "none".into(),
                start,
                fresh,
            }
        })
        .collect();
    Some(Layout {
        segments,
        bytes,
        turn,
    })
}

/// A request body's top-level members in their order, each value's bytes untouched.
struct Members(Vec<(String, Box<serde_json::value::RawValue>)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) =
                    m.next_entry::<String, Box<serde_json::value::RawValue>>()?
                {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The chat request as the proxy forwards it: the same members, each value byte for
/// byte, but those that are the same for every request of a run — the model, the tool
/// schemas, the limits — before the conversation, which comes last. qwen writes
/// `max_tokens`, `stream` and the tools after `messages`, so two requests that part
/// anywhere in their messages also part in that tail; a JSON object's member order means
/// nothing to the server, and in this order the bytes of consecutive requests share the
/// longest prefix (as a chat template renders the tools before the conversation too).
/// `None` (forward the body as it came) when it is not a JSON object with `messages`,
/// or names a member twice.
pub fn stable_order(body: &[u8]) -> Option<Vec<u8>> {
    let Members(members) = serde_json::from_slice(body).ok()?;
    let mut seen = std::collections::HashSet::new();
    if !members.iter().all(|(k, _)| seen.insert(k.as_str())) || !seen.contains("messages") {
        return None;
    }
    let rank = |k: &str| match k {
        "model" => 0,
        "tools" => 1,
        "messages" => 3,
        _ => 2,
    };
    let mut ordered: Vec<&(String, Box<serde_json::value::RawValue>)> = members.iter().collect();
    // Stable: members of one rank keep the order they came in.
    ordered.sort_by_key(|(k, _)| rank(k));
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(b'{');
    for (i, (k, v)) in ordered.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&serde_json::to_vec(k).ok()?);
        out.push(b':');
        out.extend_from_slice(v.get().as_bytes());
    }
    out.push(b'}');
    Some(out)
}

/// Earlier requests to one endpoint, bounded in count and bytes (oldest dropped).
pub struct PrefixMemory {
    seen: VecDeque<Layout>,
    total: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for PrefixMemory {
    fn default() -> Self {
        PrefixMemory::new(64, 16 * 1024 * 1024)
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The shape of one call, against what the server reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shape {
    pub segments: Vec<Segment>,
    pub turn: u64,
    pub request_bytes: u64,
    pub expected_prefix_bytes: u64,
    pub expected_cached_tokens: u64,
    pub miss_reason: Option<String>,
}

fn excerpt(b: &[u8], at: usize) -> String {
    let end = (at + 40).min(b.len());
    String::from_utf8_lossy(&b[at.min(end)..end]).into_owned()
}

impl PrefixMemory {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        PrefixMemory {
            seen: VecDeque::new(),
            total: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Compares `l` with every remembered request, remembers it, and names why the
    /// server's `cached` tokens fall short of the expected prefix (`prompt` tokens
    /// reported, if any).
    pub fn analyze(&mut self, l: Layout, prompt: Option<u64>, cached: Option<u64>) -> Shape {
        let best = self
            .seen
            .iter()
            .map(|e| (common_prefix(&e.bytes, &l.bytes), e))
            .max_by_key(|(n, _)| *n);
        let (prefix, earlier) = match best {
            Some((n, e)) => (n, Some(e)),
            None => (0, None),
        };
        let total = l.bytes.len().max(1);
        // Tokens per byte: the server's count when known, else ~4 bytes a token.
        let expected_tokens = match prompt {
            Some(p) => (p as u128 * prefix as u128 / total as u128) as u64,
            None => (prefix as u64).div_ceil(4),
        };
        let mut segments = l.segments.clone();
        for s in &mut segments {
            let end = s.start + s.bytes as usize;
            s.cached = if prefix >= end {
                "full"
            } else if prefix > s.start {
                "partial"
            } else {
                "none"
            }
            .into();
        }
        let evicted = || {
            format!(
                "the server evicted or does not cache this prefix (expected ≈ {expected_tokens} tokens, got {})",
                cached.unwrap_or(0)
            )
        };
        let miss_reason = match (cached, earlier) {
            (None, _) => Some("the server reports no cache fields".to_string()),
            (Some(_), None) => Some("first request of this prefix".to_string()),
            (Some(_), Some(_)) if prefix == 0 => Some("first request of this prefix".to_string()),
            // The server reused less than the prefix it has seen: within 10 % or 16
            // tokens (a cache block) of what was expected is no miss.
            (Some(c), Some(_)) if c + 16 < expected_tokens && c * 10 < expected_tokens * 9 => {
                Some(evicted())
            }
            // The request extends an earlier one: everything after it is new.
            (Some(_), Some(e)) if prefix >= e.bytes.len() => None,
            // It parts from the earlier request it shares most with: where says why
            // the reusable prefix is no longer.
            (Some(_), Some(e)) => segments
                .iter()
                .find(|s| prefix < s.start + s.bytes as usize)
                .and_then(|s| match s.kind.as_str() {
                    "system" => Some(format!(
                        "system prompt changed at byte {}: {:?} vs {:?}",
                        prefix - s.start,
                        excerpt(&l.bytes, prefix),
                        excerpt(&e.bytes, prefix)
                    )),
                    "tools" => Some("tool list changed".to_string()),
                    _ if s.fresh => None,
                    _ => Some(format!("history rewritten at {}", s.label)),
                }),
        };
        let shape = Shape {
            turn: l.turn,
            request_bytes: l.bytes.len() as u64,
            expected_prefix_bytes: prefix as u64,
            expected_cached_tokens: expected_tokens,
            miss_reason,
            segments,
        };
        self.remember(l);
        shape
    }

    fn remember(&mut self, l: Layout) {
        if l.bytes.len() > self.max_bytes {
            return;
        }
        self.total += l.bytes.len();
        self.seen.push_back(l);
        while self.seen.len() > self.max_entries || self.total > self.max_bytes {
            match self.seen.pop_front() {
                Some(old) => self.total -= old.bytes.len(),
                None => break,
            }
        }
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (self.seen.len(), self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(system: &str, msgs: &[(&str, &str)]) -> Vec<u8> {
        // A long common head, so prefixes are worth many tokens.
        let system = format!("{}{system}", "Read the code and answer. ".repeat(40));
        let mut m = vec![json!({"role": "system", "content": system})];
        for (r, c) in msgs {
            m.push(json!({"role": r, "content": c}));
        }
        serde_json::to_vec(&json!({"model": "m", "messages": m,
            "tools": [{"type": "function", "function": {"name": "read_file"}}]}))
        .unwrap()
    }

    #[test]
    fn segments_add_up_to_the_layout_and_name_their_kinds() {
        let body = serde_json::to_vec(&json!({"messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "task"},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "content": "result"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}}]},
        ], "tools": [{"x": 1}]}))
        .unwrap();
        let l = layout(&body).unwrap();
        let kinds: Vec<&str> = l.segments.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "system",
                "tools",
                "history",
                "history",
                "toolResult",
                "image"
            ]
        );
        let sum: u64 = l.segments.iter().map(|s| s.bytes).sum();
        assert_eq!(sum as usize, l.bytes.len());
        assert_eq!(l.turn, 2);
        assert!(layout(b"{\"input\": 1}").is_none());
    }

    #[test]
    fn miss_reasons() {
        let mut mem = PrefixMemory::default();
        let a = req(
            "You are an agent in /home/x/one. Be brief.",
            &[("user", "review it")],
        );
        let s = mem.analyze(layout(&a).unwrap(), Some(1000), Some(0));
        assert_eq!(
            s.miss_reason.as_deref(),
            Some("first request of this prefix")
        );
        // Same request again, fully cached: no miss.
        let s = mem.analyze(layout(&a).unwrap(), Some(1000), Some(990));
        assert_eq!(s.miss_reason, None);
        assert!(s.segments.iter().all(|x| x.cached == "full"));
        // Same request, the server reused nothing: evicted.
        let s = mem.analyze(layout(&a).unwrap(), Some(1000), Some(0));
        assert!(s.miss_reason.unwrap().starts_with("the server evicted"));
        // System prompt differs at the path.
        let b = req(
            "You are an agent in /home/x/two. Be brief.",
            &[("user", "review it")],
        );
        // The server reused all it could: the reason is where the prefix ends.
        let s = mem.analyze(layout(&b).unwrap(), Some(1000), Some(1000));
        let r = s.miss_reason.unwrap();
        assert!(r.starts_with("system prompt changed at byte"), "{r}");
        assert!(r.contains("two") && r.contains("one"), "{r}");
        assert_eq!(s.segments[0].cached, "partial");
        // The same change, and the server reused nothing of the shared head: evicted.
        let b2 = req(
            "You are an agent in /home/x/six. Be brief.",
            &[("user", "review it")],
        );
        let s = mem.analyze(layout(&b2).unwrap(), Some(1000), Some(0));
        assert!(s.miss_reason.unwrap().starts_with("the server evicted"));
        // History rewritten at message 1.
        let c = req(
            "You are an agent in /home/x/one. Be brief.",
            &[("user", "review THAT"), ("assistant", "ok"), ("user", "go")],
        );
        let s = mem.analyze(layout(&c).unwrap(), Some(1000), Some(1000));
        assert_eq!(
            s.miss_reason.as_deref(),
            Some("history rewritten at message 1 (user)")
        );
        // Another agent: same system prompt and tools, its own task: no miss.
        let d = req(
            "You are an agent in /home/x/one. Be brief.",
            &[("user", "look for races")],
        );
        let s = mem.analyze(layout(&d).unwrap(), Some(1000), Some(1000));
        assert_eq!(s.miss_reason, None, "{:?}", s.segments);
        assert_eq!(s.segments.last().unwrap().cached, "partial");
        // Its next turn extends it: no miss either.
        let d2 = req(
            "You are an agent in /home/x/one. Be brief.",
            &[
                ("user", "look for races"),
                ("assistant", "reading"),
                ("tool", "fn main() {}"),
            ],
        );
        let s = mem.analyze(layout(&d2).unwrap(), Some(1200), Some(1200));
        assert_eq!(s.miss_reason, None, "{:?}", s.segments);
        // No cache fields at all.
        let s = mem.analyze(layout(&a).unwrap(), Some(1000), None);
        assert_eq!(
            s.miss_reason.as_deref(),
            Some("the server reports no cache fields")
        );
    }

    #[test]
    fn the_conversation_goes_last_and_every_value_keeps_its_bytes() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00 1.50"}],"max_tokens":32000,"stream":true,"stream_options":{"include_usage":true},"tools":[{"type":"function","function":{"name":"read_file","parameters":{"x":1.0e2}}}]}"#;
        let out = stable_order(body).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"model":"m","tools":[{"type":"function","function":{"name":"read_file","parameters":{"x":1.0e2}}}],"max_tokens":32000,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00 1.50"}]}"#
        );
        // The same JSON value.
        let a: Value = serde_json::from_slice(body).unwrap();
        let b: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(a, b);
        // Two requests that part in their last message now share everything before it.
        let other = String::from_utf8(body.to_vec())
            .unwrap()
            .replace("1.50", "2.50");
        let (x, y) = (
            stable_order(body).unwrap(),
            stable_order(other.as_bytes()).unwrap(),
        );
        assert!(common_prefix(&x, &y) > common_prefix(body, other.as_bytes()));
        assert!(common_prefix(&x, &y) > x.iter().position(|&c| c == b'[').unwrap() + 100);
        // Not a chat request, not an object, a member twice: forwarded as it came.
        assert!(stable_order(br#"{"input":"x"}"#).is_none());
        assert!(stable_order(b"[1,2]").is_none());
        assert!(stable_order(b"not json").is_none());
        assert!(stable_order(br#"{"messages":[],"messages":[]}"#).is_none());
    }

    #[test]
    fn the_memory_stays_bounded() {
        let mut mem = PrefixMemory::new(3, 1 << 20);
        for i in 0..10 {
            let r = req(&format!("system {i}"), &[("user", "x")]);
            mem.analyze(layout(&r).unwrap(), None, Some(0));
        }
        assert_eq!(mem.held().0, 3);
        let mut mem = PrefixMemory::new(100, 300);
        for i in 0..10 {
            let r = req(&format!("system {i}"), &[("user", "x")]);
            mem.analyze(layout(&r).unwrap(), None, Some(0));
        }
        assert!(mem.held().1 <= 300);
    }
}
