//! The warm pool: `qwen --acp` processes kept running between agent steps, each
//! serving several sessions at once.
//!
//! - **Key.** A process serves only sessions whose [`PoolKey`] equals its own: the
//!   project root (its working directory and its sandbox), the model, the sandbox
//!   policy and the settings (a hash of the settings file, the qwen program and the
//!   writable paths). Two roots never share a process.
//! - **Start.** [`super::super::launch::spawn_guarded`], the path the one-shot backend
//!   uses: `boo agent-guard` (Landlock, parent-death signal, a process group of its
//!   own) with `QWEN_CODE_NO_RELAUNCH=true` (two node processes instead of three),
//!   then `initialize`. Sessions that arrive while a process starts wait for it.
//! - **Spare sessions.** A process keeps up to `sessions_per_process` sessions opened
//!   ahead of need for the project state of the step that last used it ([`Spare`]),
//!   so a step finds a session ready; a spare for another state is closed unused.
//!   Sessions its running steps hold count as future spares, since:
//! - **Cleared sessions.** A session whose step ended cleanly is not closed but
//!   cleared ([`Process::recycle`]: qwen's `/clear`, after `supported_commands` said
//!   qwen knows it; then plan mode, the tool check, and a check that no conversation is
//!   left) and kept as a spare for the same project state. Its next step sends requests
//!   byte-identical to a fresh session's, without the work qwen does for a session's
//!   first request (it compiles every tool's JSON schema, ~30–60 ms a tool on this
//!   machine, and a wave's sessions do it together on one thread). A step prefers a
//!   cleared spare, and waits up to [`RECYCLE_WAIT`] for one being cleared rather than
//!   open a new session. A session serves at most [`MAX_SESSION_STEPS`] steps.
//! - **Size.** A process takes up to `sessions_per_process` sessions (by default the
//!   server's parallelism, so one process per key is enough); one more session starts
//!   another process.
//! - **Retirement.** A process without sessions for `idle` is stopped.
//! - **Death.** When a process exits (crash, kill), its pending requests and the
//!   sessions it served fail at once ([`Process::died`]); it leaves the pool, and the
//!   next session starts a new one.
//! - **Shutdown.** [`Pool::shutdown`] stops every process. Should boo die instead,
//!   each guard gets its parent-death signal and takes its process group down.

use super::wire::{self, Incoming, PermissionAsk, RpcError};
use crate::agent::harden::{system_settings, tool_allowed, AgentHome, SandboxMode, DENIED_TOOLS};
use crate::agent::launch::{
    last_lines, read_guard_report, spawn_guarded, tail_reader, Guarded, Launch,
};
use crate::agent::process::{group_rss, pid_start_time, stop_group};
use crate::agent::qwen::{parse_version, QwenConfig, MIN_VERSION, TESTED_VERSION};
use crate::agent::AgentInfo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// How the pool behaves; built by `config::Config`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// A process without sessions for this long is stopped (`BOO_POOL_IDLE_MS`).
    pub idle: Duration,
    /// Sessions one process serves at once (`BOO_POOL_SESSIONS`; default: the
    /// server's parallelism).
    pub sessions_per_process: usize,
    /// After `session/cancel`, how long a session may take to stop before its process
    /// is killed (`BOO_CANCEL_GRACE_MS`).
    pub cancel_grace: Duration,
    /// How long a new process may take to answer `initialize`.
    pub start_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            idle: Duration::from_secs(600),
            sessions_per_process: 2,
            cancel_grace: Duration::from_secs(5),
            start_timeout: Duration::from_secs(120),
        }
    }
}

/// What must be equal for two sessions to share a process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub root: PathBuf,
    pub model: Option<String>,
    /// The sandbox policy (`auto` or `required`).
    pub sandbox: &'static str,
    /// SHA-256 of the settings file, the qwen program and the writable paths.
    pub settings: String,
    /// Its settings tell qwen the model takes images (sessions whose prompts carry
    /// attachments); a process without it never sees an image.
    pub images: bool,
    /// boo's MCP server of a step allowed to spawn. Its token is the step's own, so
    /// such a key is never shared: the step's session runs in a process of its own
    /// (one MCP server process per session, QWEN.md).
    pub mcp: Option<crate::agent::McpServer>,
}

impl PoolKey {
    pub fn new(
        config: &QwenConfig,
        program: &Path,
        root: &Path,
        model: Option<&str>,
        images: bool,
        mcp: Option<&crate::agent::McpServer>,
    ) -> Self {
        let sandbox = config
            .sandbox
            .clone()
            .unwrap_or(SandboxMode::Required)
            .as_str();
        let mut h = Sha256::new();
        h.update(system_settings(model, images, mcp).to_string());
        h.update([0]);
        h.update(program.as_os_str().as_encoded_bytes());
        for p in &config.extra_writable {
            h.update([0]);
            h.update(p.as_os_str().as_encoded_bytes());
        }
        PoolKey {
            root: root.to_path_buf(),
            model: model.map(String::from),
            sandbox,
            settings: format!("{:x}", h.finalize()),
            images,
            mcp: mcp.cloned(),
        }
    }
}

/// What a process tells one of its sessions.
#[derive(Debug)]
pub enum SessionMsg {
    Update(Value),
    /// qwen asked permission for a tool call, and boo refused.
    Refused(PermissionAsk),
}

/// A session opened ahead of need (`session/new`, plan mode, tools checked) or cleared
/// after a step (see [`Process::recycle`]) for the project state `project`: the next
/// step on this process with the same state starts without waiting for qwen. qwen
/// writes the git status and the folder listing into a session when it opens it, so a
/// spare for another state is closed, never used.
pub struct Spare {
    pub opened: Opened,
    pub project: Option<String>,
}

/// A ready ACP session.
pub struct Opened {
    pub session_id: String,
    pub rx: mpsc::UnboundedReceiver<SessionMsg>,
    /// The tools the session offers the model.
    pub tools: Vec<String>,
    /// How many steps the session served before (0: new; more: cleared after each).
    pub steps: u32,
}

/// The most agent steps one session serves (cleared between them) before boo closes
/// it: qwen keeps per-session state boo does not see, and a bound keeps it from
/// growing without end.
pub const MAX_SESSION_STEPS: u32 = 16;

/// How long a step waits for a session being cleared on its process before it opens
/// a new one instead.
pub const RECYCLE_WAIT: Duration = Duration::from_secs(5);

/// Why a session could not be opened.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenError {
    /// A request failed (`what` names it).
    Call(&'static str, CallError),
    /// The answer to `session/new` had no session id.
    NoSessionId(String),
    /// qwen did not say which tools the session offers.
    NoTools,
    /// The session offers tools beyond read/search (the process was stopped).
    UnsafeTools(Vec<String>),
}

/// How long boo waits for answers to its small requests (new session, mode, tools).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How a process ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stderr_tail: String,
    /// Why boo stopped it, when boo did.
    pub stopped_by_boo: Option<String>,
}

impl ExitInfo {
    /// One sentence on how the process ended.
    pub fn describe(&self) -> String {
        let signal = self.signal.or(self
            .code
            .filter(|c| (129..=192).contains(c))
            .map(|c| c - 128));
        let what = if let Some(why) = &self.stopped_by_boo {
            format!("boo stopped the qwen process ({why})")
        } else {
            match (self.code, signal) {
                (Some(78), _) => "the OS sandbox is required (BOO_SANDBOX=required) but Landlock is not available here; the agent was not started".to_string(),
                (_, Some(sig)) => format!("qwen crashed (killed by signal {sig}) before it finished"),
                (Some(c), _) => format!("qwen exited with code {c} without a result"),
                (None, None) => "qwen ended without a result".to_string(),
            }
        };
        if self.stderr_tail.is_empty() {
            what
        } else {
            format!("{what}; its last error output:\n{}", self.stderr_tail)
        }
    }
}

/// Why a request to a process got no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    Rpc(RpcError),
    /// The process is gone.
    Died,
    /// No answer within the time allowed.
    Timeout,
}

/// One `qwen --acp` process.
pub struct Process {
    pub key: PoolKey,
    /// The process's model-proxy grant (its token is per process: the environment is
    /// fixed at start); a session marks its prompts with [`Grant::begin`].
    pub grant: Option<crate::proxy::Grant>,
    /// The guard's pid: the process group of everything under it.
    pub pid: i64,
    pub pid_start: Option<i64>,
    lines: mpsc::UnboundedSender<String>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, RpcError>>>>,
    routes: Mutex<HashMap<String, mpsc::UnboundedSender<SessionMsg>>>,
    next_id: AtomicU64,
    /// Sessions leased right now.
    sessions: AtomicUsize,
    idle_since: Mutex<Option<Instant>>,
    /// `None` while starting; then whether `initialize` succeeded.
    ready: watch::Receiver<Option<Result<(), String>>>,
    /// Cancelled when the process has exited (its [`ExitInfo`] is set first).
    pub died: CancellationToken,
    exit: Mutex<Option<ExitInfo>>,
    /// Set once boo decided to stop it (retirement, kill, shutdown).
    stopping: Mutex<Option<String>>,
    retiring: AtomicBool,
    /// Serves one session only (a retried step) and stops when it ends.
    exclusive: bool,
    /// The guard's report: (sandbox, Landlock ABI).
    pub sandbox: Mutex<Option<(String, Value)>>,
    /// The guard's network rule, as it reported it.
    pub network: Mutex<Option<String>>,
    pub version: Mutex<Option<String>>,
    /// Lines on stdout that were not JSON-RPC.
    pub skipped_lines: AtomicU64,
    /// Sessions opened ahead of need, and how many are being opened.
    spares: Mutex<Vec<Spare>>,
    filling: AtomicUsize,
    /// How many spares the process keeps (the pool's `sessions_per_process`).
    spare_cap: usize,
    /// Sessions being cleared after their step ([`Process::recycle`]).
    recycling: AtomicUsize,
    /// Woken when a spare was added or a clearing ended.
    spare_ready: tokio::sync::Notify,
    /// Whether this qwen knows `/clear` in ACP sessions (`None`: not asked yet).
    clear: Mutex<Option<bool>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Process {
    /// How the process ended (once [`Process::died`] is cancelled).
    pub fn exit_info(&self) -> Option<ExitInfo> {
        lock(&self.exit).clone()
    }

    /// True once the process is gone or boo is stopping it.
    pub fn unusable(&self) -> bool {
        self.died.is_cancelled() || self.retiring.load(Ordering::SeqCst)
    }

    /// Writes one line to the process.
    fn send(&self, line: String) -> bool {
        self.lines.send(line).is_ok()
    }

    /// Sends a notification.
    pub fn notify(&self, method: &str, params: Value) {
        self.send(wire::notification(method, params));
    }

    /// Sends a request and waits for its answer, the process's death or `timeout`.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let (id, rx) = self.send_request(method, params);
        let r = self.await_call(rx, timeout).await;
        if r == Err(CallError::Timeout) {
            // A late answer finds no one waiting.
            lock(&self.pending).remove(&id);
        }
        r
    }

    /// Sends a request; the answer arrives on the returned receiver.
    pub fn start_call(
        &self,
        method: &str,
        params: Value,
    ) -> oneshot::Receiver<Result<Value, RpcError>> {
        self.send_request(method, params).1
    }

    fn send_request(
        &self,
        method: &str,
        params: Value,
    ) -> (u64, oneshot::Receiver<Result<Value, RpcError>>) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if self.died.is_cancelled() || !self.send(wire::request(id, method, params)) {
            lock(&self.pending).remove(&id);
        }
        (id, rx)
    }

    pub async fn await_call(
        &self,
        rx: oneshot::Receiver<Result<Value, RpcError>>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        tokio::select! {
            r = rx => match r {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(CallError::Rpc(e)),
                Err(_) => Err(CallError::Died),
            },
            _ = tokio::time::sleep(timeout) => Err(CallError::Timeout),
        }
    }

    /// Routes this session's updates to the returned receiver.
    pub fn route(&self, session_id: &str) -> mpsc::UnboundedReceiver<SessionMsg> {
        let (tx, rx) = mpsc::unbounded_channel();
        if !self.died.is_cancelled() {
            lock(&self.routes).insert(session_id.to_string(), tx);
        }
        rx
    }

    pub fn unroute(&self, session_id: &str) {
        lock(&self.routes).remove(session_id);
    }

    /// Stops the process (the whole group): TERM, `grace`, KILL. `why` is recorded
    /// and reported to every session it served.
    pub async fn kill(&self, why: &str, grace: Duration) {
        {
            let mut s = lock(&self.stopping);
            if s.is_none() {
                *s = Some(why.to_string());
            }
        }
        self.retiring.store(true, Ordering::SeqCst);
        if !self.died.is_cancelled() {
            stop_group(self.pid, grace).await;
        }
    }

    /// Opens a session in `cwd`: `session/new`, plan mode when it does not start in
    /// it, and the tools it offers (`qwen/status/session/context_usage`). A session
    /// offering anything beyond read/search stops the whole process: it evidently
    /// ignores boo's settings.
    pub async fn open_session(&self, cwd: &Path, meta: Value) -> Result<Opened, OpenError> {
        let params = json!({"cwd": cwd, "mcpServers": [], "_meta": meta});
        let created = self
            .call("session/new", params, REQUEST_TIMEOUT)
            .await
            .map_err(|e| OpenError::Call("session/new", e))?;
        let Some(session_id) = created
            .get("sessionId")
            .and_then(|s| s.as_str())
            .map(String::from)
        else {
            return Err(OpenError::NoSessionId(created.to_string()));
        };
        let rx = self.route(&session_id);
        let fail = |e: OpenError| {
            self.unroute(&session_id);
            drop(self.start_call(
                "qwen/control/session/close",
                json!({"sessionId": session_id}),
            ));
            e
        };
        // boo's settings make plan the default mode; a session that starts in any other
        // mode is switched before it sees a prompt.
        if created
            .pointer("/modes/currentModeId")
            .and_then(|m| m.as_str())
            != Some("plan")
        {
            let mode = json!({"sessionId": session_id, "modeId": "plan"});
            if let Err(e) = self.call("session/set_mode", mode, REQUEST_TIMEOUT).await {
                return Err(fail(OpenError::Call("session/set_mode", e)));
            }
        }
        let (tools, _) = self.checked_tools(&session_id).await.map_err(fail)?;
        Ok(Opened {
            session_id,
            rx,
            tools,
            steps: 0,
        })
    }

    /// The tools a session offers the model (`qwen/status/session/context_usage`), with
    /// the whole answer. Anything beyond read/search stops the process: it evidently
    /// ignores boo's settings.
    async fn checked_tools(&self, session_id: &str) -> Result<(Vec<String>, Value), OpenError> {
        let detail = json!({"sessionId": session_id, "detail": true});
        let usage = self
            .call("qwen/status/session/context_usage", detail, REQUEST_TIMEOUT)
            .await
            .map_err(|e| OpenError::Call("qwen/status/session/context_usage", e))?;
        let Some(tools) = wire::offered_tools(&usage) else {
            return Err(OpenError::NoTools);
        };
        let mcp = self.key.mcp.is_some();
        let extra: Vec<String> = tools
            .iter()
            .filter(|t| !tool_allowed(t, mcp))
            .cloned()
            .collect();
        if !extra.is_empty() {
            self.kill(
                "it offered tools boo does not allow",
                Duration::from_millis(500),
            )
            .await;
            return Err(OpenError::UnsafeTools(extra));
        }
        Ok((tools, usage))
    }

    /// Keeps a session whose step ended cleanly as a spare for `project`, once it is
    /// cleared; the caller closes it instead when this returns it back (no known
    /// project state, a process being stopped or serving one step only, a session at
    /// [`MAX_SESSION_STEPS`], or a qwen without `/clear`). Clearing runs in the
    /// background: `/clear` as the session's prompt (qwen answers it itself, without a
    /// model request), plan mode again, the tool check of a new session, and
    /// `context_usage` must show no conversation left; any failure closes the session.
    pub fn recycle(self: &Arc<Self>, opened: Opened, project: Option<String>) -> Option<Opened> {
        if project.is_none()
            || self.unusable()
            || self.exclusive
            || opened.steps >= MAX_SESSION_STEPS
            || *lock(&self.clear) == Some(false)
        {
            return Some(opened);
        }
        self.recycling.fetch_add(1, Ordering::SeqCst);
        let p = self.clone();
        tokio::spawn(async move {
            let Opened {
                session_id, steps, ..
            } = opened;
            // Updates the clearing causes reach the step's old receiver (dropped
            // below with `opened`); qwen sends them before its answer.
            match p.clear_session(&session_id).await {
                Ok(tools) if !p.unusable() => {
                    let rx = p.route(&session_id);
                    let spare = Spare {
                        opened: Opened {
                            session_id,
                            rx,
                            tools,
                            steps,
                        },
                        project,
                    };
                    p.keep_spare(spare);
                }
                Ok(_) => {}
                Err(why) => {
                    tracing::debug!(
                        pid = p.pid,
                        "a finished session was closed, not cleared: {why}"
                    );
                    p.unroute(&session_id);
                    if !p.unusable() {
                        drop(p.start_call(
                            "qwen/control/session/close",
                            json!({"sessionId": session_id}),
                        ));
                    }
                }
            }
            p.recycling.fetch_sub(1, Ordering::SeqCst);
            p.spare_ready.notify_waiters();
        });
        None
    }

    /// `/clear` and the checks after it (see [`Process::recycle`]); the tools offered.
    async fn clear_session(&self, session_id: &str) -> Result<Vec<String>, String> {
        let known = *lock(&self.clear);
        let known = match known {
            Some(k) => k,
            None => {
                let k = match self
                    .call(
                        "qwen/status/session/supported_commands",
                        json!({"sessionId": session_id}),
                        REQUEST_TIMEOUT,
                    )
                    .await
                {
                    Ok(v) => wire::supports_clear(&v),
                    Err(_) => false,
                };
                *lock(&self.clear) = Some(k);
                k
            }
        };
        if !known {
            return Err("this qwen does not list /clear for ACP sessions".into());
        }
        let prompt =
            json!({"sessionId": session_id, "prompt": [{"type": "text", "text": "/clear"}]});
        let answer = self
            .call("session/prompt", prompt, REQUEST_TIMEOUT)
            .await
            .map_err(|e| format!("/clear failed: {e:?}"))?;
        if answer.get("stopReason").and_then(|s| s.as_str()) != Some("end_turn") {
            return Err(format!("/clear ended with {answer}"));
        }
        let mode = json!({"sessionId": session_id, "modeId": "plan"});
        self.call("session/set_mode", mode, REQUEST_TIMEOUT)
            .await
            .map_err(|e| format!("session/set_mode failed: {e:?}"))?;
        let (tools, usage) = self
            .checked_tools(session_id)
            .await
            .map_err(|e| format!("the tool check failed: {e:?}"))?;
        match wire::history_tokens(&usage) {
            Some(0) => Ok(tools),
            other => {
                // Never again on this process: a /clear that leaves history is no clear.
                *lock(&self.clear) = Some(false);
                Err(format!(
                    "the session still holds a conversation after /clear ({other:?} tokens)"
                ))
            }
        }
    }

    /// Adds a spare; past the cap, a new (never used) spare goes first, else the oldest.
    fn keep_spare(&self, spare: Spare) {
        let dropped: Vec<Spare> = {
            let mut spares = lock(&self.spares);
            spares.push(spare);
            let mut out = Vec::new();
            while spares.len() > self.spare_cap.max(1) {
                let i = spares.iter().position(|s| s.opened.steps == 0).unwrap_or(0);
                out.push(spares.remove(i));
            }
            out
        };
        for s in dropped {
            self.unroute(&s.opened.session_id);
            drop(self.start_call(
                "qwen/control/session/close",
                json!({"sessionId": s.opened.session_id}),
            ));
        }
        self.spare_ready.notify_waiters();
    }

    /// Like [`Process::take_spare`], but while a session of this process is being
    /// cleared, waits for it (up to `wait`) rather than come back empty.
    pub async fn take_spare_waiting(
        &self,
        project: &Option<String>,
        wait: Duration,
    ) -> Option<Opened> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.spare_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(o) = self.take_spare(project) {
                return Some(o);
            }
            if project.is_none() || self.recycling.load(Ordering::SeqCst) == 0 || self.unusable() {
                return None;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return self.take_spare(project);
            }
        }
    }

    /// A spare session for `project`, if one is ready; spares for another project
    /// state are closed. An unknown state (`None`: the fingerprint failed) takes none
    /// and leaves them all.
    pub fn take_spare(&self, project: &Option<String>) -> Option<Opened> {
        // An unknown state neither uses the spares nor judges them stale.
        project.as_ref()?;
        let mut spares = lock(&self.spares);
        let (mine, stale): (Vec<Spare>, Vec<Spare>) =
            spares.drain(..).partition(|s| &s.project == project);
        for s in stale {
            self.unroute(&s.opened.session_id);
            drop(self.start_call(
                "qwen/control/session/close",
                json!({"sessionId": s.opened.session_id}),
            ));
        }
        *spares = mine;
        // A cleared session first: its tools are ready for a request.
        let i = spares
            .iter()
            .rposition(|s| s.opened.steps > 0)
            .or_else(|| spares.len().checked_sub(1))?;
        Some(spares.remove(i).opened)
    }

    /// Opens spare sessions in `cwd` for `project` in the background, until `target`
    /// are ready, being opened or cleared, or held by running steps (each comes back
    /// cleared when its step ends well). None are opened for an unknown project state.
    pub fn refill(self: &Arc<Self>, target: usize, cwd: &Path, project: Option<String>) {
        if project.is_none() {
            return;
        }
        loop {
            let have = lock(&self.spares).len()
                + self.filling.load(Ordering::SeqCst)
                + self.recycling.load(Ordering::SeqCst)
                + self.sessions();
            if have >= target || self.unusable() || self.exclusive {
                return;
            }
            self.filling.fetch_add(1, Ordering::SeqCst);
            let p = self.clone();
            let cwd = cwd.to_path_buf();
            let project = project.clone();
            tokio::spawn(async move {
                let r = p.open_session(&cwd, json!({})).await;
                p.filling.fetch_sub(1, Ordering::SeqCst);
                match r {
                    Ok(opened) if !p.unusable() => {
                        p.keep_spare(Spare { opened, project });
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(pid = p.pid, "no spare session: {e:?}"),
                }
            });
        }
    }

    /// Resident memory of the process group (bytes, processes).
    pub fn rss(&self) -> (u64, usize) {
        if self.died.is_cancelled() {
            (0, 0)
        } else {
            group_rss(self.pid)
        }
    }

    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    /// Waits until the process answered `initialize` (or failed to).
    async fn wait_ready(&self) -> Result<(), String> {
        let mut rx = self.ready.clone();
        let r = rx.wait_for(|v| v.is_some()).await;
        match r {
            Ok(v) => v
                .clone()
                .unwrap_or_else(|| Err("qwen did not start".into())),
            Err(_) => Err("qwen did not start".into()),
        }
    }

    fn is_ready(&self) -> bool {
        matches!(*self.ready.borrow(), Some(Ok(())))
    }
}

/// A session's hold on a process; dropping it frees the place.
pub struct Lease {
    pub process: Arc<Process>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.process.sessions.fetch_sub(1, Ordering::SeqCst) == 1 {
            *lock(&self.process.idle_since) = Some(Instant::now());
            if self.process.exclusive {
                self.process.retiring.store(true, Ordering::SeqCst);
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let p = self.process.clone();
                    rt.spawn(async move {
                        p.kill("its only session ended", Duration::from_secs(2))
                            .await;
                    });
                }
            }
        }
    }
}

/// Why no process could be leased.
#[derive(Debug, Clone, PartialEq)]
pub struct StartError(pub String);

/// A snapshot of one process (for `boo doctor` and the benchmark).
#[derive(Debug, Clone)]
pub struct ProcessStat {
    pub rss_bytes: u64,
    pub processes: usize,
}

pub struct Pool {
    config: PoolConfig,
    qwen: Arc<QwenConfig>,
    procs: Mutex<Vec<Arc<Process>>>,
    shut: AtomicBool,
    next_id: AtomicU64,
    reaper: std::sync::Once,
}

impl Pool {
    pub fn new(config: PoolConfig, qwen: Arc<QwenConfig>) -> Arc<Pool> {
        Arc::new(Pool {
            config,
            qwen,
            procs: Mutex::new(Vec::new()),
            shut: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            reaper: std::sync::Once::new(),
        })
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// A place on a ready process for `key`: a warm one with room, else a new one.
    /// An `exclusive` lease always gets a new process that serves no one else and
    /// stops when the lease ends.
    pub async fn lease(
        self: &Arc<Self>,
        info: &AgentInfo,
        key: PoolKey,
        exclusive: bool,
    ) -> Result<Lease, StartError> {
        if self.shut.load(Ordering::SeqCst) {
            return Err(StartError(
                "boo is shutting down; the agent was not started".into(),
            ));
        }
        self.reaper.call_once(|| {
            tokio::spawn(reap(Arc::downgrade(self)));
        });
        let cap = self.config.sessions_per_process.max(1);
        let process = {
            let mut procs = lock(&self.procs);
            let warm = procs.iter().find(|p| {
                !exclusive
                    && !p.exclusive
                    && p.key == key
                    && !p.unusable()
                    && !matches!(*p.ready.borrow(), Some(Err(_)))
                    && p.sessions() < cap
            });
            match warm {
                Some(p) => {
                    p.sessions.fetch_add(1, Ordering::SeqCst);
                    p.clone()
                }
                None => {
                    let p = self.start(info, key, exclusive)?;
                    procs.push(p.clone());
                    p
                }
            }
        };
        let lease = Lease { process };
        lease.process.wait_ready().await.map_err(StartError)?;
        Ok(lease)
    }

    /// Starts a process for `key` with one session reserved.
    fn start(
        self: &Arc<Self>,
        info: &AgentInfo,
        key: PoolKey,
        exclusive: bool,
    ) -> Result<Arc<Process>, StartError> {
        let config = &self.qwen;
        let sandbox = config.sandbox.clone().map_err(StartError)?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let name = crate::agent::harden::pool_home_name();
        let home = AgentHome::create_for(
            &config.data_dir,
            &name,
            key.model.as_deref(),
            key.images,
            key.mcp.as_ref().map(|m| (key.root.as_path(), m)),
        )
        .map_err(|e| {
            StartError(format!(
                "cannot prepare the agent's scratch directory under {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let mut args: Vec<OsString> = ["--acp", "--approval-mode", "plan", "--auth-type", "openai"]
            .iter()
            .map(OsString::from)
            .collect();
        if let Some(m) = &key.model {
            // One token: a model name can never be read as another flag.
            args.push(format!("--model={m}").into());
        }
        args.push("--exclude-tools".into());
        args.push(DENIED_TOOLS.join(",").into());
        let endpoint = match config.endpoint() {
            Ok(e) => e,
            Err(e) => {
                home.remove();
                return Err(StartError(e));
            }
        };
        let launched = spawn_guarded(Launch {
            program: &info.path,
            args,
            cwd: &key.root,
            home: &home,
            sandbox,
            extra_writable: &config.extra_writable,
            readable: crate::agent::qwen::readable_paths(config, &key.root, &info.path),
            base_url: endpoint.base_url.as_deref(),
            api_key: endpoint.api_key.as_deref(),
            connect_port: endpoint.grant.as_ref().map(|g| g.port()),
            model: key.model.as_deref(),
            env: vec![("QWEN_CODE_NO_RELAUNCH", "true".into())],
            stdin: true,
        });
        let Guarded {
            mut child,
            pid,
            report,
        } = match launched {
            Ok(g) => g,
            Err(e) => {
                home.remove();
                return Err(StartError(e.0));
            }
        };
        let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<String>();
        let (ready_tx, ready_rx) = watch::channel(None);
        let process = Arc::new(Process {
            key,
            grant: endpoint.grant,
            pid,
            pid_start: pid_start_time(pid),
            lines: lines_tx,
            pending: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            sessions: AtomicUsize::new(1),
            idle_since: Mutex::new(None),
            ready: ready_rx,
            died: CancellationToken::new(),
            exit: Mutex::new(None),
            stopping: Mutex::new(None),
            retiring: AtomicBool::new(false),
            exclusive,
            sandbox: Mutex::new(None),
            network: Mutex::new(None),
            version: Mutex::new(None),
            skipped_lines: AtomicU64::new(0),
            spares: Mutex::new(Vec::new()),
            filling: AtomicUsize::new(0),
            spare_cap: self.config.sessions_per_process,
            recycling: AtomicUsize::new(0),
            spare_ready: tokio::sync::Notify::new(),
            clear: Mutex::new(None),
        });
        // Writer: one line at a time; stdin closes when the process is dropped.
        if let Some(mut stdin) = child.stdin.take() {
            let died = process.died.clone();
            tokio::spawn(async move {
                loop {
                    let line = tokio::select! {
                        l = lines_rx.recv() => l,
                        _ = died.cancelled() => None,
                    };
                    let Some(mut line) = line else { break };
                    line.push('\n');
                    if stdin.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = child.stderr.take().map(tail_reader);
        let stdout = child.stdout.take();
        // Reader: routes every line; on EOF records how the process ended.
        let weak = Arc::downgrade(self);
        let p = process.clone();
        tokio::spawn(async move {
            if let Some(stdout) = stdout {
                read_lines(&p, stdout).await;
            }
            let status = tokio::select! {
                s = child.wait() => s.ok(),
                _ = tokio::time::sleep(Duration::from_secs(5)) => None,
            };
            stop_group(p.pid, Duration::from_millis(500)).await;
            let status = match status {
                Some(s) => Some(s),
                None => child.wait().await.ok(),
            };
            let tail = match stderr {
                Some(t) => t.await.unwrap_or_default(),
                None => String::new(),
            };
            let info = ExitInfo {
                code: status.and_then(|s| s.code()),
                signal: status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)),
                stderr_tail: last_lines(&tail, 5),
                stopped_by_boo: lock(&p.stopping).clone(),
            };
            tracing::info!(pid = p.pid, "qwen --acp process ended: {}", info.describe());
            *lock(&p.exit) = Some(info);
            p.died.cancel();
            lock(&p.pending).clear();
            lock(&p.routes).clear();
            if let Some(pool) = weak.upgrade() {
                lock(&pool.procs).retain(|q| !Arc::ptr_eq(q, &p));
            }
            home.remove();
        });
        // Handshake: the guard's sandbox report, then `initialize`.
        let p = process.clone();
        let timeout = self.config.start_timeout;
        tokio::spawn(async move {
            let r = handshake(&p, report, timeout).await;
            if let Err(e) = &r {
                tracing::warn!(pid = p.pid, "qwen --acp did not start: {e}");
                p.kill("it did not start", Duration::from_millis(500)).await;
            }
            let _ = ready_tx.send(Some(r));
        });
        tracing::info!(pid, id, root = %process.key.root.display(), "started a qwen --acp process");
        Ok(process)
    }

    /// Every process, with its sessions and memory.
    pub fn stats(&self) -> Vec<ProcessStat> {
        let procs: Vec<Arc<Process>> = lock(&self.procs).clone();
        procs
            .iter()
            .map(|p| {
                let (rss_bytes, processes) = p.rss();
                ProcessStat {
                    rss_bytes,
                    processes,
                }
            })
            .collect()
    }

    /// Stops, in the background, every process whose root is `root` or lies under it
    /// (a run ended and its snapshot is being removed; no other run reads it).
    pub fn release_root(&self, root: &Path) {
        let gone: Vec<Arc<Process>> = {
            let mut procs = lock(&self.procs);
            let (gone, keep): (Vec<_>, Vec<_>) =
                procs.drain(..).partition(|p| p.key.root.starts_with(root));
            *procs = keep;
            gone
        };
        for p in gone {
            p.retiring.store(true, Ordering::SeqCst);
            tokio::spawn(async move {
                p.kill("its run ended", Duration::from_secs(2)).await;
            });
        }
    }

    /// Stops every process and refuses new sessions.
    pub async fn shutdown(&self) {
        self.shut.store(true, Ordering::SeqCst);
        let procs: Vec<Arc<Process>> = std::mem::take(&mut *lock(&self.procs));
        let stops = procs
            .iter()
            .map(|p| p.kill("boo is shutting down", Duration::from_secs(2)));
        futures_join_all(stops).await;
        for p in &procs {
            let _ = tokio::time::timeout(Duration::from_secs(5), p.died.cancelled()).await;
        }
    }
}

/// Awaits every future (a small stand-in for `futures::future::join_all`).
async fn futures_join_all<F: std::future::Future<Output = ()>>(fs: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    for f in set {
        f.await;
    }
}

/// The guard's report, then `initialize` (and the version it names).
async fn handshake(
    p: &Arc<Process>,
    report: tokio::task::JoinHandle<String>,
    timeout: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    if let Ok(Ok(text)) = tokio::time::timeout(timeout, report).await {
        *lock(&p.sandbox) = read_guard_report(&text);
        *lock(&p.network) = crate::agent::launch::guard_network(&text);
    }
    let left = timeout.saturating_sub(started.elapsed());
    let r = p.call("initialize", wire::initialize_params(), left).await;
    let v = match r {
        Ok(v) => v,
        Err(CallError::Died) => {
            let _ = tokio::time::timeout(Duration::from_secs(10), p.died.cancelled()).await;
            let why = p
                .exit_info()
                .map(|e| e.describe())
                .unwrap_or_else(|| "qwen ended".into());
            return Err(format!("qwen --acp ended before it was ready: {why}"));
        }
        Err(CallError::Timeout) => {
            return Err(format!(
                "qwen --acp did not answer `initialize` within {} s; check the qwen installation with `boo doctor`",
                timeout.as_secs()
            ))
        }
        Err(CallError::Rpc(e)) => {
            return Err(format!("qwen --acp refused `initialize`: {}", e.text()))
        }
    };
    let version = v
        .pointer("/agentInfo/version")
        .and_then(|x| x.as_str())
        .unwrap_or("")
        .to_string();
    match parse_version(&version) {
        Some(ver) if ver >= MIN_VERSION => {}
        _ => {
            return Err(format!(
                "qwen --acp reports version {version:?}; boo needs {}.{}.{} or newer: run `npm install -g @qwen-code/qwen-code@{TESTED_VERSION}`",
                MIN_VERSION.0, MIN_VERSION.1, MIN_VERSION.2
            ))
        }
    }
    *lock(&p.version) = Some(version);
    Ok(())
}

/// Reads the process's stdout until it closes, routing every message.
async fn read_lines(p: &Arc<Process>, stdout: tokio::process::ChildStdout) {
    let mut r = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf = Vec::with_capacity(8192);
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        if line.trim().is_empty() {
            continue;
        }
        match wire::classify(&line) {
            Some(Incoming::Response { id, result }) => {
                if let Some(tx) = lock(&p.pending).remove(&id) {
                    let _ = tx.send(result);
                }
            }
            Some(Incoming::Update { session_id, update }) => {
                if let Some(tx) = lock(&p.routes).get(&session_id) {
                    let _ = tx.send(SessionMsg::Update(update));
                }
            }
            Some(Incoming::Request { id, method, params }) => {
                if method == "session/request_permission" {
                    let (ask, answer) = wire::refuse_permission(&params);
                    if let Some(tx) = lock(&p.routes).get(&ask.session_id) {
                        let _ = tx.send(SessionMsg::Refused(ask));
                    }
                    p.send(wire::result_reply(&id, answer));
                } else {
                    // craft/drainMidTurnQueue and anything else boo does not offer.
                    p.send(wire::error_reply(
                        &id,
                        wire::METHOD_NOT_FOUND,
                        &format!("boo does not implement {method}"),
                    ));
                }
            }
            Some(Incoming::Notification { .. }) => {}
            None => {
                p.skipped_lines.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Retires processes that have been idle too long; ends with the pool.
async fn reap(pool: Weak<Pool>) {
    loop {
        let tick = match pool.upgrade() {
            Some(p) => (p.config.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)),
            None => return,
        };
        tokio::time::sleep(tick).await;
        let Some(pool) = pool.upgrade() else { return };
        let idle = pool.config.idle;
        let retire: Vec<Arc<Process>> = {
            let mut procs = lock(&pool.procs);
            let (old, keep): (Vec<_>, Vec<_>) = procs.drain(..).partition(|p| {
                p.sessions() == 0
                    && p.is_ready()
                    && lock(&p.idle_since).is_some_and(|t| t.elapsed() >= idle)
            });
            *procs = keep;
            for p in &old {
                p.retiring.store(true, Ordering::SeqCst);
            }
            old
        };
        for p in retire {
            tracing::info!(pid = p.pid, "retiring an idle qwen --acp process");
            tokio::spawn(async move {
                p.kill("idle", Duration::from_secs(2)).await;
            });
        }
    }
}
