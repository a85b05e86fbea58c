//! Event forwarding: what an agent reports while it works becomes stream
//! notifications, tool traces (opened at the call, closed at the result) and per-turn
//! usage rows. One [`Forwarder`] per agent step; it outlives the step's prompts, so
//! turn numbers keep counting across the passes of a split diff.

use super::outbox::{self, Out, OutboxSender, TraceNote};
use crate::agent::AgentEvent;
use crate::clock;
use crate::model::{StreamEvent, Trace, TraceOutcome, Usage, WireUsage};
use crate::redact::{Redactor, StreamRedactor};
use crate::store::{queries, Store};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Tool outputs longer than this are capped in the trace row (the full size is kept).
pub const TRACE_OUTPUT_CAP: usize = 16 * 1024;

pub struct Forwarder {
    store: Store,
    out: OutboxSender,
    run_id: String,
    step_id: String,
    chat_id: String,
    /// Secrets are masked before anything is stored or sent.
    redact: StreamRedactor,
    /// Usage of every turn seen so far, by turn number.
    turns: HashMap<u32, Usage>,
    /// Tool calls without a result yet: the trace, when it started, its turn.
    open: HashMap<String, (Trace, Instant, u32)>,
    /// The turn the next event belongs to.
    turn: u32,
    /// The sum of the turns' usage.
    pub usage: Usage,
    /// What the CLI said about itself at start (version, offered tools, model).
    pub init_meta: serde_json::Value,
}

impl Forwarder {
    pub fn new(
        store: Store,
        out: OutboxSender,
        redactor: Arc<Redactor>,
        run_id: &str,
        step_id: &str,
        chat_id: &str,
    ) -> Self {
        Forwarder {
            store,
            out,
            redact: StreamRedactor::new(redactor),
            run_id: run_id.to_string(),
            step_id: step_id.to_string(),
            chat_id: chat_id.to_string(),
            turns: HashMap::new(),
            open: HashMap::new(),
            turn: 1,
            usage: Usage::default(),
            init_meta: json!({}),
        }
    }

    /// Where a new prompt's turn 1 lands: after the turns of the earlier prompts.
    pub fn turn_offset(&self) -> u32 {
        self.turn - 1
    }

    /// Forwards one event of a prompt that started at `offset` turns.
    pub fn forward(&mut self, ev: AgentEvent, offset: u32) {
        let (run_id, step_id) = (self.run_id.clone(), self.step_id.clone());
        match ev {
            AgentEvent::Started { pid, pid_start } => {
                self.store.send("agent pid", move |c| {
                    queries::set_step_pid(c, &run_id, &step_id, Some((pid, pid_start)))
                });
            }
            AgentEvent::Init {
                version,
                tools,
                model,
            } => {
                if self.init_meta.as_object().is_some_and(|o| o.is_empty()) {
                    self.init_meta =
                        json!({ "qwenVersion": version, "offeredTools": tools, "model": model });
                }
                let meta = self.init_meta.clone();
                // Merged: a background child's row keeps its spawn request (what a
                // resumed run starts it again with) until its end replaces the meta.
                self.store.send("step meta", move |c| {
                    queries::merge_step_meta(c, &run_id, &step_id, &meta)
                });
            }
            AgentEvent::Turn { turn, usage } => {
                let t = turn + offset;
                self.usage.add(&usage);
                self.turns.insert(t, usage);
                self.turn = t + 1;
                let chat = self.chat_id.clone();
                self.store.send("turn usage", move |c| {
                    queries::insert_turn_usage(c, &run_id, &step_id, &chat, t, &usage)
                });
            }
            AgentEvent::Stream(ev) => {
                for ev in self.redact.push(ev) {
                    self.stream(ev);
                }
            }
        }
    }

    /// Sends one (redacted) stream event; tool calls open and close traces, and the
    /// trace note follows the event.
    fn stream(&mut self, ev: StreamEvent) {
        let note = match &ev {
            StreamEvent::ToolCall {
                tool_call_id,
                name,
                input,
            } => Some(self.open_trace(tool_call_id, name, input)),
            StreamEvent::ToolResult {
                tool_call_id,
                is_error,
                content,
            } => self.close_trace(tool_call_id, *is_error, content),
            _ => None,
        };
        let _ = self.out.send(outbox::stream(
            &self.run_id,
            &self.step_id,
            &self.chat_id,
            ev,
        ));
        if let Some(n) = note {
            let _ = self.out.send(Out::Trace(n));
        }
    }

    fn open_trace(
        &mut self,
        tool_call_id: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> TraceNote {
        let now = clock::now_ms();
        let t = Trace {
            trace_id: uuid::Uuid::now_v7().to_string(),
            run_id: self.run_id.clone(),
            step_id: self.step_id.clone(),
            chat_id: self.chat_id.clone(),
            tool: name.to_string(),
            tool_call_id: tool_call_id.to_string(),
            turn: self.turn,
            input: input.clone(),
            output: None,
            output_bytes: None,
            started_at: clock::format_ms(now),
            finished_at: None,
            latency_ms: None,
            outcome: None,
            error: None,
            usage: None,
        };
        let row = t.clone();
        self.store
            .send("trace start", move |c| queries::insert_trace(c, &row, now));
        self.open.insert(
            tool_call_id.to_string(),
            (t.clone(), Instant::now(), self.turn),
        );
        TraceNote {
            phase: "start",
            trace: t,
        }
    }

    fn close_trace(
        &mut self,
        tool_call_id: &str,
        is_error: bool,
        content: &str,
    ) -> Option<TraceNote> {
        let (mut t, started, turn) = self.open.remove(tool_call_id)?;
        let outcome = if is_error && crate::agent::parse::is_denial(content) {
            TraceOutcome::Denied
        } else if is_error {
            TraceOutcome::Error
        } else {
            TraceOutcome::Ok
        };
        t.output_bytes = Some(content.len() as u64);
        t.output = Some(cap_text(content, TRACE_OUTPUT_CAP));
        t.finished_at = Some(clock::now_rfc3339());
        t.latency_ms = Some(started.elapsed().as_millis() as u64);
        t.outcome = Some(outcome);
        t.error = is_error.then(|| cap_text(content, 2000));
        t.usage = self.turns.get(&turn).map(|u| WireUsage::from(*u));
        let row = t.clone();
        self.store
            .send("trace finish", move |c| queries::finish_trace(c, &row));
        Some(TraceNote {
            phase: "finish",
            trace: t,
        })
    }

    /// The step's stream ended: text still held back for redaction goes out, and
    /// calls still open finish as errors.
    pub fn close_open_calls(&mut self) {
        for ev in self.redact.flush() {
            self.stream(ev);
        }
        for (_, (mut t, started, _)) in self.open.drain() {
            t.finished_at = Some(clock::now_rfc3339());
            t.latency_ms = Some(started.elapsed().as_millis() as u64);
            t.outcome = Some(TraceOutcome::Error);
            t.error = Some("the step ended before the tool call returned".into());
            let row = t.clone();
            self.store
                .send("trace close", move |c| queries::finish_trace(c, &row));
            let _ = self.out.send(Out::Trace(TraceNote {
                phase: "finish",
                trace: t,
            }));
        }
    }
}

/// `s` cut to at most `cap` bytes (on a character boundary), saying how much was cut.
pub fn cap_text(s: &str, cap: usize) -> String {
    if s.len() <= cap {
        return s.to_string();
    }
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} more bytes]", &s[..end], s.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_text_says_what_was_cut_and_keeps_characters_whole() {
        assert_eq!(cap_text("short", 10), "short");
        assert_eq!(cap_text("abcdef", 4), "abcd…[2 more bytes]");
        // "é" is two bytes: a cut inside it moves back to its start.
        assert_eq!(cap_text("aéb", 2), "a…[3 more bytes]");
    }
}
