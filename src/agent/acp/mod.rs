//! The ACP backend (`BOO_AGENT_TRANSPORT=acp`, the default): every agent step is one
//! session in a warm `qwen --acp` process of the [`pool`].
//!
//! A session's life, mapped onto ACP:
//!
//! 1. At its first prompt the session leases a place on a process for its key
//!    (starting one if needed), then `session/new {cwd: root, mcpServers: []}`,
//!    `session/set_mode {modeId: "plan"}` unless `session/new` already answered
//!    `currentModeId: "plan"` (qwen starts in `auto` without boo's settings), and
//!    `qwen/status/session/context_usage {detail: true}` for the tools the session
//!    offers the model: any tool beyond read/search stops the step before it acts
//!    (and retires the process, which evidently ignores boo's settings).
//! 2. Each prompt is one `session/prompt` with the content blocks; never two at once
//!    (`&mut self`). Updates become stream events ([`wire::UpdateMapper`]); a
//!    `session/request_permission` is refused, which ends qwen's turn, and the step
//!    fails naming the tool. `{stopReason}` ends the prompt.
//! 3. Cancel (or the deadline) sends `session/cancel`; a session that has not stopped
//!    within the grace period gets its process killed. The process's other sessions
//!    then fail with [`AgentError::Lost`] and are retried once in a fresh session.
//! 4. `close` frees the place. A session whose last prompt ended the turn cleanly is
//!    handed back to its process to be cleared (`/clear`) and kept for the next step
//!    of the same project state ([`pool::Process::recycle`]); any other session is
//!    closed with `qwen/control/session/close`. A step always starts on a session with
//!    no conversation: new, or cleared and checked.

pub mod pool;
pub mod wire;

use super::qwen::{QwenBackend, QwenConfig};
use super::{
    AgentBackend, AgentError, AgentEvent, AgentInfo, AgentOutcome, AgentSession, BoxFuture,
    Canceller, ContentBlock, SessionSpec, Unavailable,
};
use crate::model::Usage;
use pool::{
    CallError, Lease, OpenError, Opened, Pool, PoolConfig, PoolKey, SessionMsg, RECYCLE_WAIT,
    REQUEST_TIMEOUT,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use wire::{Mapped, UpdateMapper};

pub struct AcpBackend {
    qwen: QwenBackend,
    config: Arc<QwenConfig>,
    pool: Arc<Pool>,
}

impl AcpBackend {
    pub fn new(config: QwenConfig, pool: PoolConfig) -> Self {
        let config = Arc::new(config);
        AcpBackend {
            qwen: QwenBackend::new((*config).clone()),
            pool: Pool::new(pool, config.clone()),
            config,
        }
    }
}

/// What `boo doctor` learned from one warm process and two sessions on it.
#[derive(Debug, Clone)]
pub struct Probe {
    /// From the first prompt to its answer (includes starting the process).
    pub cold: Duration,
    /// A second session's prompt on the now warm process.
    pub warm: Duration,
    pub processes: usize,
    pub rss_bytes: u64,
    /// The second (identical) request: input tokens, and how many were cached.
    pub input_tokens: u64,
    pub cached_tokens: u64,
}

impl AcpBackend {
    /// Starts one pool process on `root`, asks two sessions the same short question
    /// and reports times, memory and the cached-token counts the endpoint returned.
    /// Costs two small model requests.
    pub async fn probe(&self, root: &std::path::Path) -> Result<Probe, String> {
        let mut times = Vec::new();
        let mut last = Usage::default();
        let mut sessions = Vec::new();
        for n in 0..2 {
            let spec = SessionSpec {
                run_id: "doctor".into(),
                step_id: format!("probe-{n}"),
                chat_id: format!("doctor-probe-{n}"),
                root: root.to_path_buf(),
                model: None,
                deadline: Duration::from_secs(120),
                isolated: false,
                project: None,
                images: false,
                mcp: None,
            };
            let mut session = self.open(spec).await.map_err(|e| e.to_string())?;
            let (tx, _rx) = mpsc::unbounded_channel();
            let t = Instant::now();
            let out = session
                .prompt(
                    vec![ContentBlock::Text(
                        "boo doctor checks the model endpoint: reply with the single word OK."
                            .into(),
                    )],
                    tx,
                )
                .await
                .map_err(|e| e.to_string())?;
            times.push(t.elapsed());
            last = out.usage;
            sessions.push(session);
        }
        let stats = self.pool.stats();
        for s in sessions {
            s.close().await;
        }
        Ok(Probe {
            cold: times[0],
            warm: times[1],
            processes: stats.iter().map(|s| s.processes).sum(),
            rss_bytes: stats.iter().map(|s| s.rss_bytes).sum(),
            input_tokens: last.input_tokens,
            cached_tokens: last.cache_read_tokens,
        })
    }
}

impl AgentBackend for AcpBackend {
    fn check(&self) -> BoxFuture<'_, Result<AgentInfo, Unavailable>> {
        self.qwen.check()
    }

    fn open(&self, spec: SessionSpec) -> BoxFuture<'_, Result<Box<dyn AgentSession>, AgentError>> {
        Box::pin(async move {
            let info = self
                .qwen
                .check()
                .await
                .map_err(|e| AgentError::failed(e.0))?;
            let model = spec.model.clone().or_else(|| self.config.model.clone());
            Ok(Box::new(AcpSession {
                pool: self.pool.clone(),
                config: self.config.clone(),
                info,
                spec,
                model,
                cancel: Canceller::new(),
                live: None,
                spare: false,
                clean: false,
            }) as Box<dyn AgentSession>)
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pool.shutdown())
    }

    fn release_root(&self, root: &std::path::Path) {
        self.pool.release_root(root);
    }
}

/// A session on a process.
struct Live {
    lease: Lease,
    session_id: String,
    rx: mpsc::UnboundedReceiver<SessionMsg>,
    tools: Vec<String>,
    /// Steps the session served before this one (cleared after each).
    steps: u32,
}

struct AcpSession {
    pool: Arc<Pool>,
    config: Arc<QwenConfig>,
    info: AgentInfo,
    spec: SessionSpec,
    model: Option<String>,
    cancel: Canceller,
    live: Option<Live>,
    /// The session was a spare, opened before the step needed it.
    spare: bool,
    /// The last prompt ended the turn cleanly (the session may serve another step).
    clean: bool,
}

/// How a prompt's wait ended.
enum End {
    Answer(Result<Value, wire::RpcError>),
    /// The process died while the session was busy.
    Died,
    /// boo killed the process because the session did not stop after `session/cancel`.
    Killed,
}

impl AcpSession {
    fn base_meta(&self) -> Value {
        let mut meta = json!({
            "transport": "acp",
            "qwenVersion": self.info.version,
            "qwenPath": self.info.path.display().to_string(),
            "sandboxMode": self.config.sandbox.as_ref().map(|m| m.as_str()).unwrap_or("invalid"),
            "sandbox": "unknown",
        });
        if let Some(live) = &self.live {
            let p = &live.lease.process;
            meta["agentPid"] = json!(p.pid);
            meta["sessionId"] = json!(live.session_id);
            if let Some(v) = p.version.lock().ok().and_then(|v| v.clone()) {
                meta["qwenVersion"] = json!(v);
            }
            if let Some((sandbox, abi)) = p.sandbox.lock().ok().and_then(|s| s.clone()) {
                meta["sandbox"] = json!(sandbox);
                meta["landlockAbi"] = abi;
            }
            if let Some(n) = p.network.lock().ok().and_then(|n| n.clone()) {
                meta["network"] = json!(n);
            }
            meta["offeredTools"] = json!(live.tools);
            meta["permissionMode"] = json!("plan");
            meta["spareSession"] = json!(self.spare);
            // 1 for a new session; n when it was cleared after n - 1 earlier steps.
            meta["sessionStep"] = json!(live.steps + 1);
        }
        meta
    }

    fn deadline_error(&self) -> String {
        let endpoint = self.config.base_url.as_deref().unwrap_or("(not set)");
        format!(
            "qwen did not finish within its deadline of {}s and was stopped. If it produced no output, the model endpoint is probably unreachable: check OPENAI_BASE_URL ({endpoint}) and that the model server is up.",
            self.spec.deadline.as_secs()
        )
    }

    /// The process died under this session: a failure the step may retry once.
    fn lost(&self, lease: &Lease) -> AgentError {
        let p = &lease.process;
        let why = p
            .exit_info()
            .map(|e| e.describe())
            .unwrap_or_else(|| "qwen ended without a result".into());
        let mut meta = self.base_meta();
        meta["agentPid"] = json!(p.pid);
        if let Some(e) = p.exit_info() {
            meta["exitCode"] = json!(e.code);
            if !e.stderr_tail.is_empty() {
                meta["stderrTail"] = json!(e.stderr_tail);
            }
        }
        AgentError::Lost {
            message: format!(
                "{why} (the qwen --acp process {} that served this step ended while it ran)",
                p.pid
            ),
            meta,
        }
    }

    /// Leases a process and takes a spare session on it, or opens one.
    async fn connect(
        &mut self,
        events: &mpsc::UnboundedSender<AgentEvent>,
    ) -> Result<(), AgentError> {
        let key = PoolKey::new(
            &self.config,
            &self.info.path,
            &self.spec.root,
            self.model.as_deref(),
            self.spec.images,
            self.spec.mcp.as_ref(),
        );
        // A step with boo's MCP server gets a process of its own (its settings carry
        // the step's token): exclusive, stopped when the step's session ends.
        let exclusive = self.spec.isolated || self.spec.mcp.is_some();
        let lease = self
            .pool
            .lease(&self.info, key, exclusive)
            .await
            .map_err(|e| AgentError::Failed {
                message: e.0,
                meta: self.base_meta(),
            })?;
        let p = lease.process.clone();
        let _ = events.send(AgentEvent::Started {
            pid: p.pid,
            pid_start: p.pid_start,
        });
        let opened = match p
            .take_spare_waiting(&self.spec.project, RECYCLE_WAIT)
            .await
        {
            Some(o) => {
                self.spare = true;
                o
            }
            None => match p.open_session(&self.spec.root, self.boo_meta()).await {
                Ok(o) => o,
                Err(OpenError::Call(_, CallError::Died)) => return Err(self.lost(&lease)),
                Err(OpenError::Call(what, e)) => return Err(self.setup_error(what, e)),
                Err(OpenError::NoSessionId(answer)) => {
                    return Err(AgentError::Failed {
                        message: format!(
                            "qwen answered session/new without a sessionId: {answer}"
                        ),
                        meta: self.base_meta(),
                    })
                }
                Err(OpenError::NoTools) => {
                    return Err(AgentError::Failed {
                        message: format!(
                            "qwen did not say which tools this session offers (qwen/status/session/context_usage); boo runs an agent only when it can check them. boo is tested with qwen {}",
                            super::qwen::TESTED_VERSION
                        ),
                        meta: self.base_meta(),
                    })
                }
                Err(OpenError::UnsafeTools(extra)) => {
                    let mut meta = self.base_meta();
                    meta["agentPid"] = json!(p.pid);
                    return Err(AgentError::Failed {
                        message: format!(
                            "qwen offered the model tools boo does not allow ({}); the agent was stopped before it could act. Check that this qwen version honours QWEN_CODE_SYSTEM_SETTINGS_PATH and --exclude-tools (boo is tested with {}).",
                            extra.join(", "),
                            super::qwen::TESTED_VERSION
                        ),
                        meta,
                    });
                }
            },
        };
        // The next steps on this process find a session ready.
        p.refill(
            self.pool.config().sessions_per_process,
            &self.spec.root,
            self.spec.project.clone(),
        );
        let tools = opened.tools.clone();
        self.live = Some(Live {
            lease,
            session_id: opened.session_id,
            rx: opened.rx,
            tools: opened.tools,
            steps: opened.steps,
        });
        let version = p.version.lock().ok().and_then(|v| v.clone());
        let _ = events.send(AgentEvent::Init {
            version,
            tools,
            model: self.model.clone(),
        });
        Ok(())
    }

    /// Who the session works for (qwen ignores it; the fake agent records it).
    fn boo_meta(&self) -> Value {
        json!({"boo": {"runId": self.spec.run_id, "stepId": self.spec.step_id, "chatId": self.spec.chat_id}})
    }

    fn setup_error(&self, what: &str, e: CallError) -> AgentError {
        match (e, &self.live) {
            (CallError::Died, Some(live)) => self.lost(&live.lease),
            (CallError::Died, None) => AgentError::failed(format!("qwen ended during {what}")),
            (CallError::Timeout, _) => AgentError::Failed {
                message: format!(
                    "qwen did not answer {what} within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ),
                meta: self.base_meta(),
            },
            (CallError::Rpc(e), _) => AgentError::Failed {
                message: format!("qwen refused {what}: {}", e.text()),
                meta: self.base_meta(),
            },
        }
    }

    async fn run_prompt(
        &mut self,
        prompt: Vec<ContentBlock>,
        events: mpsc::UnboundedSender<AgentEvent>,
    ) -> Result<AgentOutcome, AgentError> {
        self.clean = false;
        let started = Instant::now();
        let prompt_at = crate::clock::now_rfc3339();
        let deadline = tokio::time::sleep(self.spec.deadline);
        tokio::pin!(deadline);
        let cancel = self.cancel.clone();
        let mut connect_ms = None;
        if self.live.is_none() {
            tokio::select! {
                r = self.connect(&events) => {
                    r?;
                    connect_ms = Some(started.elapsed().as_millis() as u64);
                }
                _ = cancel.cancelled() => return Err(AgentError::Cancelled),
                _ = &mut deadline => return Err(AgentError::Failed {
                    message: self.deadline_error(),
                    meta: self.base_meta(),
                }),
            }
        }
        let grace = self.pool.config().cancel_grace;
        let boo_meta = self.boo_meta();
        let Some(live) = self.live.as_mut() else {
            return Err(AgentError::failed("the session has no process"));
        };
        let process = live.lease.process.clone();
        // Calls through the model proxy during this prompt belong to this step.
        let _active = process.grant.as_ref().map(|g| {
            g.begin(crate::proxy::Attribution {
                run_id: self.spec.run_id.clone(),
                step_id: self.spec.step_id.clone(),
                chat_id: self.spec.chat_id.clone(),
            })
        });
        let blocks: Vec<Value> = prompt
            .iter()
            .map(|b| match b {
                ContentBlock::Text(t) => json!({"type": "text", "text": t}),
                ContentBlock::Image {
                    mime_type, data, ..
                } => json!({
                    "type": "image",
                    "mimeType": mime_type,
                    "data": crate::attach::base64_encode(data),
                }),
            })
            .collect();
        let answer = process.start_call(
            "session/prompt",
            json!({"sessionId": live.session_id, "prompt": blocks, "_meta": boo_meta}),
        );
        tokio::pin!(answer);
        let mut mapper = UpdateMapper::new();
        let mut usage = Usage::default();
        let mut refused: Vec<wire::PermissionAsk> = Vec::new();
        let mut stopping: Option<(bool, tokio::time::Instant)> = None; // (deadline?, kill at)
        let handle = |m: Mapped, usage: &mut Usage| match m {
            Mapped::Stream(ev) => {
                let _ = events.send(AgentEvent::Stream(ev));
            }
            Mapped::Turn { turn, usage: u } => {
                usage.add(&u);
                let _ = events.send(AgentEvent::Turn { turn, usage: u });
            }
        };
        let end = loop {
            let kill_at = stopping.map(|(_, at)| at);
            tokio::select! {
                // Stop requests first; then updates before the answer, which qwen sends last.
                biased;
                _ = cancel.cancelled(), if stopping.is_none() => {
                    process.notify("session/cancel", json!({"sessionId": live.session_id}));
                    stopping = Some((false, tokio::time::Instant::now() + grace));
                }
                _ = &mut deadline, if stopping.is_none() => {
                    process.notify("session/cancel", json!({"sessionId": live.session_id}));
                    stopping = Some((true, tokio::time::Instant::now() + grace));
                }
                _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                    process
                        .kill(
                            &format!("a session did not stop within {} ms of session/cancel", grace.as_millis()),
                            Duration::from_millis(500),
                        )
                        .await;
                    break End::Killed;
                }
                msg = live.rx.recv() => match msg {
                    Some(SessionMsg::Update(u)) => {
                        for m in mapper.feed(&u) {
                            handle(m, &mut usage);
                        }
                    }
                    Some(SessionMsg::Refused(ask)) => {
                        mapper.note_input(&ask.tool_call_id, &ask.input);
                        refused.push(ask);
                    }
                    None => {
                        // The process dropped its routes: it is gone.
                        process.died.cancelled().await;
                        break End::Died;
                    }
                },
                r = &mut answer => match r {
                    Ok(r) => break End::Answer(r),
                    Err(_) => break End::Died,
                },
            }
        };
        // Updates sent before the answer are all queued by now.
        while let Ok(msg) = live.rx.try_recv() {
            match msg {
                SessionMsg::Update(u) => {
                    for m in mapper.feed(&u) {
                        handle(m, &mut usage);
                    }
                }
                SessionMsg::Refused(ask) => refused.push(ask),
            }
        }
        for m in mapper.finish() {
            handle(m, &mut usage);
        }
        let mut meta = self.base_meta();
        meta["durationMs"] = json!(started.elapsed().as_millis() as u64);
        if let Some(ms) = connect_ms {
            // When the step's first prompt began, and how long it took from there to a
            // ready session (a process leased or started, a spare taken or a session
            // opened).
            meta["promptAt"] = json!(prompt_at);
            meta["connectMs"] = json!(ms);
        }
        if !mapper.failed_calls.is_empty() {
            meta["failedToolCalls"] = json!(mapper.failed_calls);
        }
        if let Some((by_deadline, _)) = stopping {
            if by_deadline {
                return Err(AgentError::Failed {
                    message: self.deadline_error(),
                    meta,
                });
            }
            return Err(AgentError::Cancelled);
        }
        let live = self.live.as_ref().ok_or(AgentError::Cancelled)?;
        let answer = match end {
            End::Answer(a) => a,
            End::Died | End::Killed => return Err(self.lost(&live.lease)),
        };
        let result = match answer {
            Ok(v) => v,
            Err(e) => {
                return Err(AgentError::Failed {
                    message: format!("qwen failed: {}", e.text()),
                    meta,
                })
            }
        };
        let stop = result
            .get("stopReason")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_string();
        meta["stopReason"] = json!(stop);
        if let Some(ask) = refused.first() {
            let what = if ask.title.is_empty() || ask.title == ask.tool {
                ask.tool.clone()
            } else {
                format!("{} ({})", ask.tool, ask.title)
            };
            meta["refusedPermissions"] = json!(refused.iter().map(|a| &a.tool).collect::<Vec<_>>());
            return Err(AgentError::Failed {
                message: format!(
                    "qwen asked permission to use {what} and boo refused (agents only read and search inside the project); the refusal ended the agent's turn before it answered"
                ),
                meta,
            });
        }
        match stop.as_str() {
            "end_turn" => {
                self.clean = !self.cancel.is_cancelled();
                Ok(AgentOutcome {
                    output: mapper.output(),
                    usage,
                    meta,
                })
            }
            "max_turn_requests" => Err(AgentError::Failed {
                message: "qwen stopped: the session reached its turn limit (max_turn_requests) before answering".into(),
                meta,
            }),
            "max_tokens" => Err(AgentError::Failed {
                message: "qwen stopped: the model reached its output token limit (max_tokens) before it finished answering".into(),
                meta,
            }),
            "refusal" => Err(AgentError::Failed {
                message: "the model refused to answer (stop reason: refusal)".into(),
                meta,
            }),
            "cancelled" => Err(AgentError::Failed {
                message: "qwen cancelled the turn on its own before answering".into(),
                meta,
            }),
            other => Err(AgentError::Failed {
                message: format!("qwen ended the turn with the unknown stop reason {other:?}"),
                meta,
            }),
        }
    }
}

impl Drop for AcpSession {
    /// A session dropped without `close` (its step was stopped while it opened) still
    /// frees its place in qwen.
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            let p = &live.lease.process;
            p.unroute(&live.session_id);
            if !p.unusable() {
                drop(p.start_call(
                    "qwen/control/session/close",
                    json!({"sessionId": live.session_id}),
                ));
            }
        }
    }
}

impl AgentSession for AcpSession {
    fn prompt(
        &mut self,
        prompt: Vec<ContentBlock>,
        events: mpsc::UnboundedSender<AgentEvent>,
    ) -> BoxFuture<'_, Result<AgentOutcome, AgentError>> {
        Box::pin(async move {
            if self.cancel.is_cancelled() {
                return Err(AgentError::Cancelled);
            }
            if let Some(live) = &self.live {
                if live.lease.process.died.is_cancelled() {
                    return Err(self.lost(&live.lease));
                }
            }
            self.run_prompt(prompt, events).await
        })
    }

    fn canceller(&self) -> Canceller {
        self.cancel.clone()
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        let live = self.live.take();
        let (clean, project) = (
            self.clean && !self.cancel.is_cancelled(),
            self.spec.project.clone(),
        );
        Box::pin(async move {
            let Some(live) = live else { return };
            let p = live.lease.process.clone();
            let live = if clean {
                let Live {
                    lease,
                    session_id,
                    rx,
                    tools,
                    steps,
                } = live;
                let opened = Opened {
                    session_id,
                    rx,
                    tools,
                    steps: steps + 1,
                };
                match p.recycle(opened, project) {
                    // Being cleared for the next step; the place is free now.
                    None => return drop(lease),
                    Some(o) => Live {
                        lease,
                        session_id: o.session_id,
                        rx: o.rx,
                        tools: o.tools,
                        steps,
                    },
                }
            } else {
                live
            };
            p.unroute(&live.session_id);
            if !p.unusable() {
                let _ = p
                    .call(
                        "qwen/control/session/close",
                        json!({"sessionId": live.session_id}),
                        Duration::from_secs(5),
                    )
                    .await;
            }
            drop(live.lease);
        })
    }
}
