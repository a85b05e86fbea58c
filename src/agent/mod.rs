//! The agent seam: an [`AgentBackend`] runs one agent step and reports its stream.
//! The only production backend is qwen ([`qwen::QwenBackend`]); there is no fallback.

pub mod harden;
pub mod parse;
pub mod process;
pub mod qwen;
#[cfg(test)]
pub mod scripted;

use crate::model::{StreamEvent, Usage};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One agent step to run.
#[derive(Debug, Clone)]
pub struct AgentRequest {
    pub run_id: String,
    pub step_id: String,
    pub chat_id: String,
    pub root: PathBuf,
    pub prompt: String,
    pub model: Option<String>,
    pub deadline: Duration,
}

/// What an agent reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// The agent's process group started (leader pid and its /proc start time).
    Started { pid: i64, pid_start: Option<i64> },
    /// The CLI told us its version and the tools it offers the model.
    Init {
        version: Option<String>,
        tools: Vec<String>,
        model: Option<String>,
    },
    /// A live stream event.
    Stream(StreamEvent),
    /// A model turn ended with this usage.
    Turn { turn: u32, usage: Usage },
}

/// A finished agent step.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutcome {
    pub output: String,
    pub usage: Usage,
    pub meta: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum AgentError {
    #[error("{message}")]
    Failed {
        message: String,
        meta: serde_json::Value,
    },
    #[error("cancelled")]
    Cancelled,
}

/// Why agents cannot run at all (answered as `-32003` at launch).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// What a successful availability check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    pub path: PathBuf,
    pub version: String,
}

pub trait AgentBackend: Send + Sync + 'static {
    /// Is the agent CLI there, runnable and of a supported version?
    fn check(&self) -> BoxFuture<'_, Result<AgentInfo, Unavailable>>;

    /// Runs one step to its end. Events go to `events` as they happen; cancelling
    /// `cancel` stops the agent (and every process it started) promptly.
    fn run(
        &self,
        req: AgentRequest,
        events: mpsc::UnboundedSender<AgentEvent>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<AgentOutcome, AgentError>>;
}
