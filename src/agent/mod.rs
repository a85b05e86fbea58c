//! The agent seam: an [`AgentBackend`] opens [`AgentSession`]s; a session takes a
//! prompt made of [`ContentBlock`]s, streams [`AgentEvent`]s while the agent works,
//! and ends with an [`AgentOutcome`]. Cancelling is an explicit call on the session's
//! [`Canceller`]. The production backends both run the qwen CLI: [`acp::AcpBackend`]
//! (the default: sessions in warm `qwen --acp` processes) and [`qwen::QwenBackend`]
//! (`BOO_AGENT_TRANSPORT=oneshot`: one `qwen -p` process per prompt); there is no
//! other fallback.

pub mod acp;
pub mod harden;
pub mod launch;
pub mod parse;
pub mod process;
pub mod qwen;
#[cfg(test)]
pub mod scripted;

use crate::model::{StreamEvent, Usage};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who the session works for and under which limits.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub run_id: String,
    pub step_id: String,
    /// The stream every event of this session belongs to.
    pub chat_id: String,
    /// The folder the agent reads: its working directory and its sandbox's readable
    /// root. For a run's steps this is the run's snapshot of the project (`RunCtx::workdir`),
    /// never the user's working tree; sessions are keyed by it.
    pub root: PathBuf,
    pub model: Option<String>,
    /// Per prompt: past it the agent is stopped and the prompt fails.
    pub deadline: Duration,
    /// The step starts over after its process died under it ([`AgentError::Lost`]):
    /// run it where it shares nothing with other sessions (a process of its own), so
    /// a step that crashes its process cannot take its neighbours down twice.
    pub isolated: bool,
    /// A digest of the project's state when the step started (its read-only proof), if
    /// known: a backend may reuse what it prepared for the same state.
    pub project: Option<String>,
    /// The prompts carry images: qwen is told the model takes them
    /// (`modalities.image`). Only set for a run with attachments, whose model was
    /// declared to take images at launch.
    pub images: bool,
    /// boo's MCP server for this step (`spawn = true`): the agent may start
    /// background children. `None` for every other step, whose settings stay as they
    /// always were (no MCP server, the folder untrusted).
    pub mcp: Option<McpServer>,
}

/// The one MCP server an agent allowed to spawn gets: `boo mcp` (this binary), which
/// reaches the boo server that runs the step over `socket`, authenticated by `token`
/// (one per step, revoked when the step's session ends). It appears only in that
/// agent's system settings, never in the repository or on a command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct McpServer {
    /// boo's own executable (readable and executable inside the agent's sandbox).
    pub program: PathBuf,
    /// The private channel to the boo server (a Unix socket in its 0700 runtime folder).
    pub socket: PathBuf,
    /// The step's secret.
    pub token: String,
}

/// One part of a prompt: text, or an image the run was launched with (its type
/// already sniffed from the bytes by `attach::intake`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentBlock {
    Text(String),
    Image {
        /// The attachment's name (what findings cite).
        name: String,
        mime_type: String,
        data: std::sync::Arc<Vec<u8>>,
    },
}

impl ContentBlock {
    /// The prompt as plain text (what a text-only transport sends).
    pub fn join_text(blocks: &[ContentBlock]) -> String {
        let mut s = String::new();
        for b in blocks {
            match b {
                ContentBlock::Text(t) => s.push_str(t),
                ContentBlock::Image { .. } => {}
            }
        }
        s
    }
}

/// What an agent reports while it works.
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

/// A finished prompt.
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
    /// The process serving the session died under it, through no fault of this
    /// session's own (another session's crash, a kill after another session's cancel):
    /// the step may be retried once in a fresh session.
    #[error("{message}")]
    Lost {
        message: String,
        meta: serde_json::Value,
    },
}

impl AgentError {
    pub fn failed(message: impl Into<String>) -> Self {
        AgentError::Failed {
            message: message.into(),
            meta: serde_json::json!({}),
        }
    }
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

/// Stops a session's work: the prompt in flight ends promptly with
/// [`AgentError::Cancelled`] (every process it started is stopped), and later
/// prompts are refused the same way. Cloneable, so the caller can hold it while the
/// session is busy.
#[derive(Debug, Clone, Default)]
pub struct Canceller(CancellationToken);

impl Canceller {
    pub fn new() -> Self {
        Canceller(CancellationToken::new())
    }
    pub fn cancel(&self) {
        self.0.cancel();
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    pub async fn cancelled(&self) {
        self.0.cancelled().await
    }
}

pub trait AgentBackend: Send + Sync + 'static {
    /// Is the agent CLI there, runnable and of a supported version?
    fn check(&self) -> BoxFuture<'_, Result<AgentInfo, Unavailable>>;

    /// Opens a session for one agent step. Nothing runs until the first prompt.
    fn open(&self, spec: SessionSpec) -> BoxFuture<'_, Result<Box<dyn AgentSession>, AgentError>>;

    /// Stops whatever the backend keeps running between sessions (the server is
    /// shutting down). Sessions still open are stopped with it.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// The folder `root` and everything under it is going away (a run ended and its
    /// snapshot is removed): stop what the backend keeps running there. Agents read a
    /// run's snapshot, so nothing kept for it can serve another run.
    fn release_root(&self, _root: &Path) {}
}

/// How agents are run (`BOO_AGENT_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentTransport {
    /// Sessions in warm `qwen --acp` processes (the default).
    Acp,
    /// One `qwen -p` process per prompt (for debugging).
    Oneshot,
}

impl AgentTransport {
    /// Parses `BOO_AGENT_TRANSPORT` (absent or empty means `acp`).
    pub fn parse(value: Option<&str>) -> Result<AgentTransport, String> {
        match value.map(str::trim) {
            None | Some("") | Some("acp") => Ok(AgentTransport::Acp),
            Some("oneshot") => Ok(AgentTransport::Oneshot),
            Some(other) => Err(format!(
                "BOO_AGENT_TRANSPORT={other:?} is not a transport: use \"acp\" (default: warm qwen --acp processes) or \"oneshot\" (one qwen -p process per prompt)"
            )),
        }
    }
}

/// A backend that cannot run agents because boo's configuration is wrong; every
/// launch is refused with the message.
pub struct Misconfigured(pub String);

impl AgentBackend for Misconfigured {
    fn check(&self) -> BoxFuture<'_, Result<AgentInfo, Unavailable>> {
        let e = Unavailable(self.0.clone());
        Box::pin(async move { Err(e) })
    }

    fn open(&self, _: SessionSpec) -> BoxFuture<'_, Result<Box<dyn AgentSession>, AgentError>> {
        let e = AgentError::failed(self.0.clone());
        Box::pin(async move { Err(e) })
    }
}

/// One agent's conversation. At most one prompt is in flight (`&mut self`).
pub trait AgentSession: Send {
    /// Sends a prompt and works until the agent's answer ends. Events go to `events`
    /// as they happen.
    fn prompt(
        &mut self,
        prompt: Vec<ContentBlock>,
        events: mpsc::UnboundedSender<AgentEvent>,
    ) -> BoxFuture<'_, Result<AgentOutcome, AgentError>>;

    /// The handle that cancels this session (see [`Canceller`]).
    fn canceller(&self) -> Canceller;

    /// Ends the session and frees what it holds (scratch space, processes).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}
