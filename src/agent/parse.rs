//! The qwen `stream-json` parser: one line in, zero or more events out. Pure and
//! tolerant: a line that is not JSON, or an event kind it does not know, is counted and
//! skipped, never fatal.
//!
//! With `--include-partial-messages` qwen streams every content block as deltas and then
//! repeats the finished block in an `assistant` line. The parser emits deltas live and
//! drops the repeat; blocks that were never streamed (API errors, runs without partial
//! messages) are emitted from the `assistant` line instead.

use crate::model::{StreamEvent, Usage, WireUsage};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};

/// What the parser learned from one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Init {
        version: Option<String>,
        tools: Vec<String>,
        model: Option<String>,
        permission_mode: Option<String>,
    },
    Stream(StreamEvent),
    /// The usage of a finished model turn (also sent as a `messageComplete` event).
    Turn {
        turn: u32,
        usage: Usage,
    },
    Result(ResultLine),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultLine {
    pub is_error: bool,
    pub subtype: String,
    pub text: Option<String>,
    pub error: Option<String>,
    pub usage: Usage,
    pub num_turns: Option<u64>,
    pub duration_ms: Option<u64>,
    pub denials: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    ToolUse,
}

#[derive(Debug, Default)]
struct Block {
    kind: Option<Kind>,
    tool_id: String,
    tool_name: String,
    json: String,
}

#[derive(Debug, Default)]
pub struct StreamParser {
    blocks: HashMap<u64, Block>,
    /// Blocks streamed as deltas whose `assistant` repeat has not arrived yet.
    streamed: VecDeque<(Kind, String)>,
    tools_emitted: HashSet<String>,
    /// 1-based number of the current model turn.
    turn: u32,
    turn_closed: bool,
    /// Lines that were not JSON or not understood.
    pub skipped_lines: u64,
    /// The last assistant text of the session (used when `result` has no text).
    pub last_text: String,
    text_this_turn: String,
}

fn parse_usage(v: &Value) -> Usage {
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    let input = n("input_tokens");
    let output = n("output_tokens");
    let total = match v.get("total_tokens").and_then(|x| x.as_u64()) {
        Some(t) => t,
        None => input + output,
    };
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: n("cache_read_input_tokens"),
        total_tokens: total,
    }
}

fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i.get("text").and_then(|t| t.as_str()) {
                Some(t) => t.to_string(),
                None => i.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl StreamParser {
    pub fn new() -> Self {
        StreamParser {
            turn: 1,
            ..Default::default()
        }
    }

    pub fn feed(&mut self, line: &str) -> Vec<Parsed> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            self.skipped_lines += 1;
            return Vec::new();
        };
        let mut out = Vec::new();
        match v.get("type").and_then(|t| t.as_str()) {
            Some("system") => {
                if v.get("subtype").and_then(|s| s.as_str()) == Some("init") {
                    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
                    out.push(Parsed::Init {
                        version: s("qwen_code_version"),
                        tools: v
                            .get("tools")
                            .and_then(|t| t.as_array())
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        model: s("model"),
                        permission_mode: s("permission_mode"),
                    });
                }
            }
            Some("stream_event") => {
                self.stream_event(v.get("event").unwrap_or(&Value::Null), &mut out)
            }
            Some("assistant") => self.assistant(&v, &mut out),
            Some("user") => {
                let content = v.pointer("/message/content").and_then(|c| c.as_array());
                for block in content.into_iter().flatten() {
                    if block.get("type").and_then(|t| t.as_str()) == Some("tool_result") {
                        out.push(Parsed::Stream(StreamEvent::ToolResult {
                            tool_call_id: block
                                .get("tool_use_id")
                                .and_then(|x| x.as_str())
                                .unwrap_or_default()
                                .to_string(),
                            is_error: block
                                .get("is_error")
                                .and_then(|x| x.as_bool())
                                .unwrap_or(false),
                            content: content_text(block.get("content").unwrap_or(&Value::Null)),
                        }));
                    }
                }
            }
            Some("result") => {
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
                out.push(Parsed::Result(ResultLine {
                    is_error: v.get("is_error").and_then(|x| x.as_bool()).unwrap_or(false),
                    subtype: s("subtype").unwrap_or_default(),
                    text: s("result"),
                    error: v
                        .pointer("/error/message")
                        .and_then(|x| x.as_str())
                        .map(String::from),
                    usage: parse_usage(v.get("usage").unwrap_or(&Value::Null)),
                    num_turns: v.get("num_turns").and_then(|x| x.as_u64()),
                    duration_ms: v.get("duration_ms").and_then(|x| x.as_u64()),
                    denials: v
                        .get("permission_denials")
                        .and_then(|d| d.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|d| {
                                    d.get("tool_use_id")
                                        .and_then(|x| x.as_str())
                                        .map(String::from)
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }));
            }
            _ => self.skipped_lines += 1,
        }
        out
    }

    fn stream_event(&mut self, ev: &Value, out: &mut Vec<Parsed>) {
        let index = ev.get("index").and_then(|i| i.as_u64()).unwrap_or(0);
        match ev.get("type").and_then(|t| t.as_str()) {
            Some("message_start") if self.turn_closed => {
                self.turn += 1;
                self.turn_closed = false;
            }
            Some("content_block_start") => {
                let cb = ev.get("content_block").unwrap_or(&Value::Null);
                let kind = match cb.get("type").and_then(|t| t.as_str()) {
                    Some("text") => Some(Kind::Text),
                    Some("thinking") => Some(Kind::Thinking),
                    Some("tool_use") => Some(Kind::ToolUse),
                    _ => None,
                };
                self.blocks.insert(
                    index,
                    Block {
                        kind,
                        tool_id: cb
                            .get("id")
                            .and_then(|x| x.as_str())
                            .unwrap_or_default()
                            .to_string(),
                        tool_name: cb
                            .get("name")
                            .and_then(|x| x.as_str())
                            .unwrap_or_default()
                            .to_string(),
                        json: String::new(),
                    },
                );
            }
            Some("content_block_delta") => {
                let d = ev.get("delta").unwrap_or(&Value::Null);
                let s = |k: &str| {
                    d.get(k)
                        .and_then(|x| x.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                match d.get("type").and_then(|t| t.as_str()) {
                    Some("text_delta") => {
                        let t = s("text");
                        self.text_this_turn.push_str(&t);
                        out.push(Parsed::Stream(StreamEvent::Text { text: t }));
                    }
                    Some("thinking_delta") => out.push(Parsed::Stream(StreamEvent::Thinking {
                        text: s("thinking"),
                    })),
                    Some("input_json_delta") => {
                        if let Some(b) = self.blocks.get_mut(&index) {
                            b.json.push_str(&s("partial_json"));
                        }
                    }
                    _ => {}
                }
            }
            Some("content_block_stop") => {
                if let Some(b) = self.blocks.remove(&index) {
                    match b.kind {
                        Some(Kind::ToolUse) => {
                            let input = if b.json.trim().is_empty() {
                                Value::Object(Default::default())
                            } else {
                                serde_json::from_str(&b.json)
                                    .unwrap_or(Value::String(b.json.clone()))
                            };
                            if self.tools_emitted.insert(b.tool_id.clone()) {
                                out.push(Parsed::Stream(StreamEvent::ToolCall {
                                    tool_call_id: b.tool_id.clone(),
                                    name: b.tool_name.clone(),
                                    input,
                                }));
                            }
                            self.streamed.push_back((Kind::ToolUse, b.tool_id));
                        }
                        Some(k) => self.streamed.push_back((k, String::new())),
                        None => {}
                    }
                }
            }
            Some("message_stop") if !self.turn_closed => {
                self.close_turn(Usage::default(), out);
            }
            _ => {}
        }
    }

    fn assistant(&mut self, v: &Value, out: &mut Vec<Parsed>) {
        let msg = v.get("message").unwrap_or(&Value::Null);
        if self.turn_closed {
            // A new model turn that was not announced by message_start.
            self.turn += 1;
            self.turn_closed = false;
        }
        for block in msg
            .get("content")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            let kind = match block.get("type").and_then(|t| t.as_str()) {
                Some("text") => Kind::Text,
                Some("thinking") => Kind::Thinking,
                Some("tool_use") => Kind::ToolUse,
                _ => continue,
            };
            let id = block
                .get("id")
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string();
            let repeat = matches!(self.streamed.front(),
                Some((k, sid)) if *k == kind && (kind != Kind::ToolUse || *sid == id));
            if repeat {
                self.streamed.pop_front();
            }
            match kind {
                Kind::Text if !repeat => {
                    let t = block
                        .get("text")
                        .and_then(|x| x.as_str())
                        .unwrap_or_default()
                        .to_string();
                    self.text_this_turn.push_str(&t);
                    out.push(Parsed::Stream(StreamEvent::Text { text: t }));
                }
                Kind::Thinking if !repeat => out.push(Parsed::Stream(StreamEvent::Thinking {
                    text: block
                        .get("thinking")
                        .and_then(|x| x.as_str())
                        .unwrap_or_default()
                        .to_string(),
                })),
                Kind::ToolUse if self.tools_emitted.insert(id.clone()) => {
                    out.push(Parsed::Stream(StreamEvent::ToolCall {
                        tool_call_id: id,
                        name: block
                            .get("name")
                            .and_then(|x| x.as_str())
                            .unwrap_or_default()
                            .to_string(),
                        input: block.get("input").cloned().unwrap_or(Value::Null),
                    }));
                }
                _ => {}
            }
        }
        let usage = parse_usage(msg.get("usage").unwrap_or(&Value::Null));
        if !usage.is_zero() {
            self.close_turn(usage, out);
        }
    }

    fn close_turn(&mut self, usage: Usage, out: &mut Vec<Parsed>) {
        if !self.text_this_turn.trim().is_empty() {
            self.last_text = std::mem::take(&mut self.text_this_turn);
        }
        self.text_this_turn.clear();
        out.push(Parsed::Turn {
            turn: self.turn,
            usage,
        });
        out.push(Parsed::Stream(StreamEvent::MessageComplete {
            usage: WireUsage::from(usage),
            turn: self.turn,
        }));
        self.turn_closed = true;
    }
}

/// True when a tool result is qwen refusing the call: plan mode and deny rules
/// (headless), a tool boo's settings removed (`Tool "x" not found in registry.`), or
/// a permission boo refused over ACP (`Tool "x" was canceled by the user.`).
pub fn is_denial(content: &str) -> bool {
    content.contains("requires permission")
        || content.contains("permission was declined")
        || (content.starts_with("Tool \"")
            && (content.contains("\" not found in registry")
                || content.contains("\" was canceled by the user")))
}

#[cfg(test)]
mod tests;
