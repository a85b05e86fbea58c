//! A scripted in-process backend for unit tests of the runner.

use super::*;
use crate::model::Usage;

pub struct ScriptedBackend {
    pub reply: String,
    pub fail_steps: Vec<String>,
}

impl AgentBackend for ScriptedBackend {
    fn check(&self) -> BoxFuture<'_, Result<AgentInfo, Unavailable>> {
        Box::pin(async {
            Ok(AgentInfo {
                path: PathBuf::from("scripted"),
                version: "0.24.4".into(),
            })
        })
    }

    fn open(&self, spec: SessionSpec) -> BoxFuture<'_, Result<Box<dyn AgentSession>, AgentError>> {
        let session = ScriptedSession {
            fail: self.fail_steps.contains(&spec.step_id),
            step_id: spec.step_id,
            reply: self.reply.clone(),
            cancel: Canceller::new(),
        };
        Box::pin(async move { Ok(Box::new(session) as Box<dyn AgentSession>) })
    }
}

struct ScriptedSession {
    step_id: String,
    reply: String,
    fail: bool,
    cancel: Canceller,
}

impl AgentSession for ScriptedSession {
    fn prompt(
        &mut self,
        _prompt: Vec<ContentBlock>,
        events: mpsc::UnboundedSender<AgentEvent>,
    ) -> BoxFuture<'_, Result<AgentOutcome, AgentError>> {
        Box::pin(async move {
            let cancel = &self.cancel;
            let _ = events.send(AgentEvent::Stream(StreamEvent::Text {
                text: format!("working on {}", self.step_id),
            }));
            if cancel.is_cancelled() {
                return Err(AgentError::Cancelled);
            }
            if self.fail {
                return Err(AgentError::Failed {
                    message: "scripted failure".into(),
                    meta: serde_json::json!({}),
                });
            }
            let usage = Usage {
                input_tokens: 10,
                output_tokens: 2,
                cache_read_tokens: 5,
                total_tokens: 12,
            };
            let _ = events.send(AgentEvent::Turn { turn: 1, usage });
            Ok(AgentOutcome {
                output: self.reply.clone(),
                usage,
                meta: serde_json::json!({}),
            })
        })
    }

    fn canceller(&self) -> Canceller {
        self.cancel.clone()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Replays a recorded qwen stream-json transcript through the real parser. With
/// `hold_after_first_call`, it stops after the first tool call and waits for cancel.
pub struct ReplayBackend {
    pub lines: Vec<String>,
    pub hold_after_first_call: bool,
}

impl AgentBackend for ReplayBackend {
    fn check(&self) -> BoxFuture<'_, Result<AgentInfo, Unavailable>> {
        Box::pin(async {
            Ok(AgentInfo {
                path: PathBuf::from("replay"),
                version: "0.24.4".into(),
            })
        })
    }

    fn open(&self, _spec: SessionSpec) -> BoxFuture<'_, Result<Box<dyn AgentSession>, AgentError>> {
        let session = ReplaySession {
            lines: self.lines.clone(),
            hold_after_first_call: self.hold_after_first_call,
            cancel: Canceller::new(),
        };
        Box::pin(async move { Ok(Box::new(session) as Box<dyn AgentSession>) })
    }
}

struct ReplaySession {
    lines: Vec<String>,
    hold_after_first_call: bool,
    cancel: Canceller,
}

impl AgentSession for ReplaySession {
    fn canceller(&self) -> Canceller {
        self.cancel.clone()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    fn prompt(
        &mut self,
        _prompt: Vec<ContentBlock>,
        events: mpsc::UnboundedSender<AgentEvent>,
    ) -> BoxFuture<'_, Result<AgentOutcome, AgentError>> {
        Box::pin(async move {
            use crate::agent::parse::{Parsed, StreamParser};
            let cancel = &self.cancel;
            let mut p = StreamParser::new();
            let mut usage = Usage::default();
            let mut result = None;
            for line in &self.lines {
                for ev in p.feed(line) {
                    match ev {
                        Parsed::Stream(e) => {
                            let call = matches!(e, StreamEvent::ToolCall { .. });
                            let _ = events.send(AgentEvent::Stream(e));
                            if call && self.hold_after_first_call {
                                cancel.cancelled().await;
                                return Err(AgentError::Cancelled);
                            }
                        }
                        Parsed::Turn { turn, usage: u } => {
                            usage.add(&u);
                            let _ = events.send(AgentEvent::Turn { turn, usage: u });
                        }
                        Parsed::Result(r) => result = Some(r),
                        _ => {}
                    }
                }
            }
            match result {
                Some(r) if !r.is_error => Ok(AgentOutcome {
                    output: r.text.unwrap_or_default(),
                    usage,
                    meta: serde_json::json!({}),
                }),
                Some(r) => Err(AgentError::Failed {
                    message: r.error.unwrap_or_default(),
                    meta: serde_json::json!({}),
                }),
                None => Err(AgentError::Failed {
                    message: "no result".into(),
                    meta: serde_json::json!({}),
                }),
            }
        })
    }
}
