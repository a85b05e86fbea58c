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

    fn run(
        &self,
        req: AgentRequest,
        events: mpsc::UnboundedSender<AgentEvent>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<AgentOutcome, AgentError>> {
        Box::pin(async move {
            let _ = events.send(AgentEvent::Stream(StreamEvent::Text {
                text: format!("working on {}", req.step_id),
            }));
            if cancel.is_cancelled() {
                return Err(AgentError::Cancelled);
            }
            if self.fail_steps.contains(&req.step_id) {
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
}
