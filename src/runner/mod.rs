//! The run supervisor: launches runs, drives each through the engine's decisions,
//! dispatches steps (agents bounded by a server-wide semaphore, code steps inline),
//! persists everything, holds leases, adopts orphaned runs, and cancels.

pub mod outbox;

use crate::agent::{AgentBackend, AgentError, AgentEvent, AgentOutcome, AgentRequest};
use crate::catalog::Catalog;
use crate::clock;
use crate::codesteps::{self, DepOutput};
use crate::engine::{self, Decision, Plan, SkipReason, StepState};
use crate::evidence::{self, CheckedFinding, Source, Verdict};
use crate::model::{
    Band, RunInput, RunStatus, StepKind, StepStatus, StreamEvent, Trace, TraceOutcome, Usage,
    WireUsage,
};
use crate::report::{self, ReportInput, StepSummary};
use crate::store::queries::{self, NewRun, StepEnd, StepRow};
use crate::store::Store;
use outbox::{
    FindingDiagnostic, Out, OutboxSender, ProgressKind, RosterEntry, RunStarted, StepUpdated,
    TraceNote,
};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Tool outputs longer than this are capped in the trace row (the full size is kept).
pub const TRACE_OUTPUT_CAP: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Per agent step.
    pub deadline: Duration,
    pub max_parallel: usize,
    pub heartbeat: Duration,
    pub lease_timeout: Duration,
    pub default_model: Option<String>,
}

fn env_u64(k: &str) -> Option<u64> {
    std::env::var(k).ok().and_then(|v| v.trim().parse().ok())
}

impl RunnerConfig {
    pub fn from_env(max_parallel: Option<usize>, model: Option<String>) -> Self {
        RunnerConfig {
            deadline: Duration::from_secs(env_u64("BOO_AGENT_TIMEOUT_S").unwrap_or(900)),
            max_parallel: max_parallel
                .or_else(|| env_u64("BOO_MAX_PARALLEL").map(|v| v as usize))
                .unwrap_or(2)
                .max(1),
            heartbeat: Duration::from_millis(env_u64("BOO_HEARTBEAT_MS").unwrap_or(2000).max(50)),
            lease_timeout: Duration::from_millis(
                env_u64("BOO_LEASE_TIMEOUT_MS").unwrap_or(15_000).max(200),
            ),
            default_model: model
                .or_else(|| std::env::var("OPENAI_MODEL").ok().filter(|m| !m.is_empty())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub flow: String,
    pub band: Band,
    pub question: String,
    pub root: PathBuf,
    pub model: Option<String>,
    pub fast: bool,
}

#[derive(Debug, Error)]
pub enum LaunchError {
    /// Bad parameters; the message names the field and what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// The agent CLI cannot run; no run was created.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

#[derive(Debug, Error)]
pub enum CancelError {
    #[error("unknown run {0}: list runs with boo/listRuns")]
    NotFound(String),
    #[error("run {0} already ended with status {status}", status = .1.as_str())]
    Ended(String, RunStatus),
    #[error("{0}")]
    Internal(String),
}

struct RunHandle {
    /// Kills the run's agents.
    agents: CancellationToken,
    /// The run stops here without touching its state (shutdown, lease lost).
    stop: CancellationToken,
    user_cancel: Arc<AtomicBool>,
    done: watch::Receiver<bool>,
}

pub struct Supervisor {
    pub store: Store,
    backend: Arc<dyn AgentBackend>,
    out: OutboxSender,
    pub owner_id: String,
    pub config: RunnerConfig,
    slots: Arc<Semaphore>,
    runs: Mutex<HashMap<String, RunHandle>>,
    host: String,
    hashes: crate::project::HashCache,
}

fn lock<'a, T>(m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fixed head of every agent prompt: the output contract. Kept byte-stable so a
/// model server's prompt cache can reuse it across steps and runs.
pub const OUTPUT_CONTRACT: &str = "You are one specialist in a read-only code analysis run. You may read and search the project's files; you must never create, change or delete anything, and you never run commands.

Answer in this shape:
1. Your answer in plain prose, short and specific to the project.
2. Then exactly one fenced block tagged `findings` holding a JSON array (use [] when nothing qualifies):

```findings
[{\"title\": \"short name\", \"severity\": \"critical|high|medium|low|info\", \"claim\": \"what is wrong or notable, and why it matters\",
  \"evidence\": [{\"path\": \"relative/path/from/the/project/root\", \"lines\": [start, end], \"quote\": \"text copied exactly from those lines\"}]}]
```

Every claim cites the lines you actually read. Paths are relative to the project root; lines are 1-based and inclusive. Citations are checked against the files: a wrong path, line or quote marks the finding unverified.";

/// Composes the stable part of an agent step's prompt.
pub fn stable_prompt(
    persona_title: &str,
    persona_brief: &str,
    step_label: &str,
    step_prompt: &str,
) -> String {
    format!(
        "{OUTPUT_CONTRACT}\n\n# Your role: {persona_title}\n\n{}\n\n# This step: {step_label}\n\n{}\n",
        persona_brief.trim(),
        step_prompt.trim()
    )
}

/// The variable tail: the question and what earlier steps produced.
pub fn variable_prompt(question: &str, deps: &[(String, String, StepStatus, String)]) -> String {
    let mut s = format!("\n## Question\n\n{}\n", question.trim());
    if !deps.is_empty() {
        s.push_str("\n## Earlier steps\n");
        for (id, label, status, text) in deps {
            s.push_str(&format!("\n### {label} (`{id}`)\n\n"));
            match status {
                StepStatus::Completed => s.push_str(text.trim()),
                StepStatus::Skipped => s.push_str("(This step was skipped: its condition did not hold.)"),
                other => s.push_str(&format!(
                    "(This step {}; its output is not available. Work without it and say what is missing.)",
                    other.as_str()
                )),
            }
            s.push('\n');
        }
    }
    s
}

enum StepResult {
    Done {
        output: String,
        usage: Usage,
        meta: serde_json::Value,
    },
    Failed {
        error: String,
        usage: Usage,
        meta: serde_json::Value,
        fatal: bool,
    },
    Cancelled {
        usage: Usage,
    },
}

impl Supervisor {
    pub fn new(
        store: Store,
        backend: Arc<dyn AgentBackend>,
        out: OutboxSender,
        config: RunnerConfig,
    ) -> Arc<Self> {
        let owner_id = uuid::Uuid::now_v7().to_string();
        Arc::new(Supervisor {
            store,
            backend,
            out,
            owner_id,
            slots: Arc::new(Semaphore::new(config.max_parallel)),
            config,
            runs: Mutex::new(HashMap::new()),
            hashes: crate::project::HashCache::new(),
            host: hostname::get()
                .map(|h| h.to_string_lossy().to_string())
                .unwrap_or_else(|_| "localhost".into()),
        })
    }

    fn emit(&self, m: Out) {
        let _ = self.out.send(m);
    }

    /// Records this process as an owner of runs.
    pub async fn register(&self) -> Result<(), String> {
        let (owner, host) = (self.owner_id.clone(), self.host.clone());
        let pid = std::process::id() as i64;
        let start = crate::agent::process::pid_start_time(pid);
        self.store
            .call(move |c| queries::register_owner(c, &owner, pid, start, &host))
            .await
            .map_err(|e| e.to_string())
    }

    /// Validates a launch, creates the run row and starts it in the background.
    pub async fn launch(self: &Arc<Self>, req: LaunchRequest) -> Result<String, LaunchError> {
        let question = req.question.trim().to_string();
        if question.is_empty() {
            return Err(LaunchError::Invalid(
                "input.question: the question (focus text) is missing or empty; say what the flow should look at".into(),
            ));
        }
        let root = req.root.canonicalize().map_err(|e| {
            LaunchError::Invalid(format!(
                "root: {} is not a readable directory ({e})",
                req.root.display()
            ))
        })?;
        if !root.is_dir() || std::fs::read_dir(&root).is_err() {
            return Err(LaunchError::Invalid(format!(
                "root: {} is not a readable directory",
                root.display()
            )));
        }
        let catalog = Catalog::for_root(&root);
        let Some(flow) = catalog.flow(&req.flow) else {
            return Err(LaunchError::Invalid(format!(
                "flow: unknown flow {:?}; known flows: {}",
                req.flow,
                catalog.flows.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        self.backend
            .check()
            .await
            .map_err(|e| LaunchError::Unavailable(e.0))?;
        let mut plan = engine::plan(flow, req.band).map_err(LaunchError::Internal)?;
        for s in plan.steps.iter_mut().filter(|s| s.kind == StepKind::Agent) {
            let p = catalog
                .personas
                .get(&s.agent)
                .ok_or_else(|| LaunchError::Internal(format!("persona {} vanished", s.agent)))?;
            s.prompt = stable_prompt(&p.title, &p.brief, &s.label, &s.prompt);
        }
        let run_id = uuid::Uuid::now_v7().to_string();
        let input = serde_json::to_value(RunInput {
            question,
            fast: req.fast,
        })
        .map_err(|e| LaunchError::Internal(e.to_string()))?;
        let new = NewRun {
            run_id: run_id.clone(),
            flow: flow.name.clone(),
            flow_title: flow.title.clone(),
            band: req.band,
            root: root.display().to_string(),
            input,
            model: req
                .model
                .clone()
                .or_else(|| self.config.default_model.clone()),
            plan,
            owner_id: self.owner_id.clone(),
            meta: json!({ "flowSource": flow.source }),
        };
        self.store
            .call(move |c| queries::insert_run(c, &new))
            .await
            .map_err(|e| LaunchError::Internal(format!("cannot record the run: {e}")))?;
        self.spawn_drive(run_id.clone(), false);
        Ok(run_id)
    }

    fn spawn_drive(self: &Arc<Self>, run_id: String, resumed: bool) {
        let (done_tx, done_rx) = watch::channel(false);
        let handle = RunHandle {
            agents: CancellationToken::new(),
            stop: CancellationToken::new(),
            user_cancel: Arc::new(AtomicBool::new(false)),
            done: done_rx,
        };
        let (agents, stop, user) = (
            handle.agents.clone(),
            handle.stop.clone(),
            handle.user_cancel.clone(),
        );
        lock(&self.runs).insert(run_id.clone(), handle);
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.drive(&run_id, resumed, agents, stop, user).await {
                tracing::error!(run = %run_id, "run stopped on an internal error: {e}");
                let id = run_id.clone();
                let msg = format!("internal error: {e}");
                let m2 = msg.clone();
                let _ = me
                    .store
                    .call(move |c| {
                        queries::finish_run(c, &id, RunStatus::Failed, None, None, Some(&m2))
                    })
                    .await;
                me.emit(Out::StepUpdated(StepUpdated {
                    run_id: run_id.clone(),
                    step_id: String::new(),
                    run_status: Some(RunStatus::Failed),
                    run_error: Some(msg),
                    ..Default::default()
                }));
            }
            lock(&me.runs).remove(&run_id);
            let _ = done_tx.send(true);
        });
    }

    async fn load(&self, run_id: &str) -> Result<(queries::RunRow, Vec<StepRow>), String> {
        let id = run_id.to_string();
        self.store
            .call(move |c| {
                let run = queries::get_run(c, &id)?
                    .ok_or_else(|| crate::store::StoreError::Data(format!("run {id} is gone")))?;
                let steps = queries::get_steps(c, &id)?;
                Ok((run, steps))
            })
            .await
            .map_err(|e| e.to_string())
    }

    async fn drive(
        self: &Arc<Self>,
        run_id: &str,
        resumed: bool,
        agents: CancellationToken,
        stop: CancellationToken,
        user_cancel: Arc<AtomicBool>,
    ) -> Result<(), String> {
        let (row, steps) = self.load(run_id).await?;
        let root = PathBuf::from(&row.run.summary.root);
        let plan = row.plan.clone();
        let question = row.run.summary.question.clone();
        let total = plan.steps.len();
        self.emit(Out::RunStarted(RunStarted {
            run_id: run_id.to_string(),
            flow: row.run.summary.flow.clone(),
            band: row.run.summary.band,
            question: question.clone(),
            root: row.run.summary.root.clone(),
            status: RunStatus::Running,
            title: row.run.title.clone().unwrap_or_default(),
            created_at: row.run.summary.created_at.clone(),
            resumed,
            steps: steps
                .iter()
                .map(|s| RosterEntry {
                    step_id: s.step.step_id.clone(),
                    agent: s.step.agent.clone(),
                    kind: s.step.kind,
                    label: s.step.label.clone(),
                    wave: s.step.wave,
                    chat_id: s.step.chat_id.clone(),
                    status: s.step.status,
                })
                .collect(),
        }));
        self.emit(Out::Progress {
            run_id: run_id.to_string(),
            kind: ProgressKind::Begin {
                title: format!(
                    "boo: {}",
                    row.run
                        .title
                        .clone()
                        .unwrap_or(row.run.summary.flow.clone())
                ),
                message: format!(
                    "{}/{total} steps",
                    steps.iter().filter(|s| s.step.status.is_terminal()).count()
                ),
            },
        });
        let mut tasks: JoinSet<(String, StepResult)> = JoinSet::new();
        let mut queued: Vec<StepUpdated> = Vec::new();
        let mut chats: HashMap<String, String> = HashMap::new();
        loop {
            if stop.is_cancelled() {
                agents.cancel();
                while tasks.join_next().await.is_some() {}
                return Ok(());
            }
            let (row, steps) = self.load(run_id).await?;
            if row.run.summary.status.is_terminal() {
                // Ended elsewhere (e.g. by another server): nothing more to do here.
                return Ok(());
            }
            if row.cancel_requested || user_cancel.load(Ordering::SeqCst) {
                user_cancel.store(true, Ordering::SeqCst);
                agents.cancel();
            }
            let states: HashMap<String, StepState> = steps
                .iter()
                .map(|s| {
                    (
                        s.step.step_id.clone(),
                        StepState {
                            status: s.step.status,
                            fatal: s.fatal,
                        },
                    )
                })
                .collect();
            // Fast mode leaves out every signal-gated specialist.
            let fast = row.run.fast;
            let signals = if fast {
                BTreeMap::new()
            } else {
                collect_signals(&steps)
            };
            let decision =
                engine::decide(&plan, &states, &signals, user_cancel.load(Ordering::SeqCst));
            match decision {
                Decision::Skip(ids) => {
                    for (id, reason) in ids {
                        let why = match reason {
                            SkipReason::InputsFailed => "skipped: every agent step it builds on failed, so it would only repeat their failure",
                            SkipReason::Condition if fast => "skipped: fast mode leaves out signal-gated specialists",
                            SkipReason::Condition => "skipped: its condition (`when`) is false for this project",
                        };
                        let end = StepEnd {
                            status: Some(StepStatus::Skipped),
                            error: Some(why.into()),
                            ..Default::default()
                        };
                        queued.push(self.end_step(run_id, &plan, &id, end, None).await?);
                    }
                }
                Decision::Start(ids) => {
                    self.flush(&mut queued);
                    for id in ids {
                        let Some(ps) = plan.step(&id).cloned() else {
                            continue;
                        };
                        let chat_id =
                            (ps.kind == StepKind::Agent).then(|| uuid::Uuid::now_v7().to_string());
                        let (rid, sid, owner, cid) = (
                            run_id.to_string(),
                            id.clone(),
                            self.owner_id.clone(),
                            chat_id.clone(),
                        );
                        let claimed = self
                            .store
                            .call(move |c| {
                                queries::claim_step(c, &rid, &sid, &owner, cid.as_deref())
                            })
                            .await
                            .map_err(|e| e.to_string())?;
                        if !claimed {
                            tracing::warn!(run = %run_id, step = %id, "lost the run's lease; another server owns it now");
                            agents.cancel();
                            while tasks.join_next().await.is_some() {}
                            return Ok(());
                        }
                        if let Some(c) = &chat_id {
                            chats.insert(id.clone(), c.clone());
                        }
                        self.emit(Out::StepUpdated(StepUpdated {
                            run_id: run_id.to_string(),
                            step_id: id.clone(),
                            status: Some(StepStatus::Running),
                            started_at: Some(clock::now_rfc3339()),
                            chat_id: chat_id.clone(),
                            agent: Some(ps.agent.clone()),
                            kind: Some(ps.kind),
                            label: Some(ps.label.clone()),
                            wave: Some(ps.wave),
                            ..Default::default()
                        }));
                        let deps: Vec<&StepRow> = steps
                            .iter()
                            .filter(|s| ps.after.contains(&s.step.step_id))
                            .collect();
                        let me = self.clone();
                        let token = agents.child_token();
                        let root = root.clone();
                        match ps.kind {
                            StepKind::Code => {
                                let deps: Vec<DepOutput> = deps
                                    .iter()
                                    .map(|d| DepOutput {
                                        step_id: d.step.step_id.clone(),
                                        agent: d.step.agent.clone(),
                                        is_agent: d.step.kind == StepKind::Agent,
                                        completed: d.step.status == StepStatus::Completed,
                                        output: d.step.output.clone().unwrap_or_default(),
                                    })
                                    .collect();
                                let (func, args) = (ps.agent.clone(), ps.args.clone());
                                tasks.spawn(async move {
                                    let r = tokio::task::spawn_blocking(move || {
                                        codesteps::CodeFn::parse(&func)
                                            .map_err(|e| e.to_string())
                                            .and_then(|f| codesteps::run(f, &args, &root, &deps))
                                    })
                                    .await
                                    .unwrap_or_else(|e| Err(format!("the code step crashed: {e}")));
                                    let res = match r {
                                        Ok(output) => StepResult::Done {
                                            output,
                                            usage: Usage::default(),
                                            meta: json!({}),
                                        },
                                        Err(error) => StepResult::Failed {
                                            error,
                                            usage: Usage::default(),
                                            meta: json!({}),
                                            fatal: false,
                                        },
                                    };
                                    (id, res)
                                });
                            }
                            StepKind::Agent => {
                                let dep_text: Vec<(String, String, StepStatus, String)> = ps
                                    .after
                                    .iter()
                                    .filter_map(|d| deps.iter().find(|x| &x.step.step_id == d))
                                    .map(|d| {
                                        (
                                            d.step.step_id.clone(),
                                            d.step.label.clone(),
                                            d.step.status,
                                            d.step.output.clone().unwrap_or_default(),
                                        )
                                    })
                                    .collect();
                                // A diff split into parts is reviewed part by part, so
                                // no agent ever gets a silently truncated slice.
                                let split = dep_text.iter().enumerate().find_map(|(i, d)| {
                                    let is_diff = deps.iter().any(|x| {
                                        x.step.step_id == d.0
                                            && x.step.agent == codesteps::CodeFn::GitDiff.as_str()
                                    });
                                    is_diff
                                        .then(|| codesteps::diff_parts(&d.3).map(|p| (i, p)))
                                        .flatten()
                                });
                                let prompts: Vec<String> = match split {
                                    None => vec![format!(
                                        "{}{}",
                                        ps.prompt,
                                        variable_prompt(&question, &dep_text)
                                    )],
                                    Some((i, (header, parts))) => {
                                        let k = parts.len();
                                        parts
                                            .into_iter()
                                            .enumerate()
                                            .map(|(n, part)| {
                                                let mut dt = dep_text.clone();
                                                dt[i].3 = format!(
                                                    "{header}\nThis pass covers part {} of {k} of the diff; the other parts are reviewed in the other passes of this step.\n\n{part}",
                                                    n + 1
                                                );
                                                format!("{}{}", ps.prompt, variable_prompt(&question, &dt))
                                            })
                                            .collect()
                                    }
                                };
                                let req: Vec<AgentRequest> = prompts
                                    .into_iter()
                                    .map(|prompt| AgentRequest {
                                        run_id: run_id.to_string(),
                                        step_id: id.clone(),
                                        chat_id: chat_id.clone().unwrap_or_default(),
                                        root: root.clone(),
                                        prompt,
                                        model: row.run.model.clone(),
                                        deadline: self.config.deadline,
                                    })
                                    .collect();
                                tasks.spawn(async move {
                                    let r = me.run_agent_step(req, token).await;
                                    (id, r)
                                });
                            }
                        }
                    }
                }
                Decision::Wait => {
                    self.flush(&mut queued);
                    tokio::select! {
                        joined = tasks.join_next() => {
                            let Some(joined) = joined else {
                                return Err("the run waits for steps that are not running".into());
                            };
                            let (id, result) = joined.map_err(|e| format!("a step task failed: {e}"))?;
                            if stop.is_cancelled() {
                                continue;
                            }
                            let end = match result {
                                StepResult::Done { output, usage, meta } => StepEnd {
                                    status: Some(StepStatus::Completed), output: Some(output), usage, meta: Some(meta), ..Default::default()
                                },
                                StepResult::Failed { error, usage, meta, fatal } => StepEnd {
                                    status: Some(StepStatus::Failed), error: Some(error), usage, meta: Some(meta), fatal, ..Default::default()
                                },
                                StepResult::Cancelled { usage } => StepEnd {
                                    status: Some(StepStatus::Cancelled), error: Some("cancelled".into()), usage, ..Default::default()
                                },
                            };
                            queued.push(self.end_step(run_id, &plan, &id, end, chats.get(&id).cloned()).await?);
                            let done = states.values().filter(|s| s.status.is_terminal()).count() + 1;
                            self.emit(Out::Progress {
                                run_id: run_id.to_string(),
                                kind: ProgressKind::Report {
                                    message: format!("{done}/{total} steps"),
                                    percentage: ((done * 100) / total.max(1)) as u32,
                                },
                            });
                        }
                        _ = agents.cancelled(), if !user_cancel.load(Ordering::SeqCst) && !stop.is_cancelled() => {
                            // Re-check: a cancel arrived; the next decision handles it.
                            if !stop.is_cancelled() { user_cancel.store(true, Ordering::SeqCst); }
                        }
                        _ = stop.cancelled() => {}
                    }
                }
                Decision::Finish(status) => {
                    // Every step ends in a terminal status: the ones that never ran
                    // (a cancel, or a fatal step that stopped the run) are cancelled.
                    let ids = engine::to_cancel(
                        &steps
                            .iter()
                            .map(|s| (s.step.step_id.clone(), s.step.status))
                            .collect::<Vec<_>>(),
                    );
                    for id in ids {
                        let why = if status == RunStatus::Cancelled {
                            "cancelled before it ran"
                        } else {
                            "not run: an earlier step failed the whole run"
                        };
                        let end = StepEnd {
                            status: Some(StepStatus::Cancelled),
                            error: Some(why.into()),
                            ..Default::default()
                        };
                        queued.push(self.end_step(run_id, &plan, &id, end, None).await?);
                    }
                    self.finish(run_id, status, &root, queued).await?;
                    return Ok(());
                }
            }
        }
    }

    fn flush(&self, queued: &mut Vec<StepUpdated>) {
        for u in queued.drain(..) {
            self.emit(Out::StepUpdated(u));
        }
    }

    /// Persists a step's end and returns its (not yet sent) update.
    async fn end_step(
        &self,
        run_id: &str,
        plan: &Plan,
        id: &str,
        end: StepEnd,
        chat_id: Option<String>,
    ) -> Result<StepUpdated, String> {
        let (rid, sid, e2) = (run_id.to_string(), id.to_string(), end.clone());
        let at = self
            .store
            .call(move |c| queries::finish_step(c, &rid, &sid, &e2))
            .await
            .map_err(|e| e.to_string())?;
        let status = end.status.unwrap_or(StepStatus::Failed);
        Ok(self.step_update(run_id, plan, id, status, &end, chat_id, Some(at)))
    }

    #[allow(clippy::too_many_arguments)]
    fn step_update(
        &self,
        run_id: &str,
        plan: &Plan,
        step_id: &str,
        status: StepStatus,
        end: &StepEnd,
        chat_id: Option<String>,
        finished_at: Option<String>,
    ) -> StepUpdated {
        let ps = plan.step(step_id);
        StepUpdated {
            run_id: run_id.to_string(),
            step_id: step_id.to_string(),
            status: Some(status),
            error: end.error.clone(),
            finished_at,
            usage: ps
                .filter(|p| p.kind == StepKind::Agent)
                .map(|_| WireUsage::from(end.usage)),
            chat_id,
            agent: ps.map(|p| p.agent.clone()),
            kind: ps.map(|p| p.kind),
            label: ps.map(|p| p.label.clone()),
            wave: ps.map(|p| p.wave),
            output: end.output.clone(),
            ..Default::default()
        }
    }

    /// Renders the report, ends the run, and sends the run's last notification.
    async fn finish(
        &self,
        run_id: &str,
        status: RunStatus,
        root: &Path,
        mut queued: Vec<StepUpdated>,
    ) -> Result<(), String> {
        let (row, steps) = self.load(run_id).await?;
        let root2 = root.to_path_buf();
        let steps2 = steps.clone();
        let row2 = row.clone();
        let (input, findings) =
            tokio::task::spawn_blocking(move || build_report_input(&row2, &steps2, &root2, status))
                .await
                .map_err(|e| e.to_string())?;
        let (md, js) = (report::render_markdown(&input), report::render_json(&input));
        let error = match status {
            RunStatus::Failed => Some(
                steps
                    .iter()
                    .find(|s| s.fatal)
                    .or_else(|| steps.iter().find(|s| s.step.status == StepStatus::Failed))
                    .and_then(|s| {
                        s.step
                            .error
                            .clone()
                            .map(|e| format!("step {} failed: {e}", s.step.step_id))
                    })
                    .unwrap_or_else(|| "every agent step failed".into()),
            ),
            _ => None,
        };
        let (rid, md2, js2, err2) = (run_id.to_string(), md.clone(), js.clone(), error.clone());
        let finished_at = self
            .store
            .call(move |c| {
                queries::finish_run(c, &rid, status, Some(&md2), Some(&js2), err2.as_deref())
            })
            .await
            .map_err(|e| e.to_string())?;
        if status == RunStatus::Completed {
            self.emit(Out::Findings {
                root: row.run.summary.root.clone(),
                flow: row.run.summary.flow.clone(),
                diagnostics: diagnostics_for(run_id, &row.run.summary.flow, &findings),
            });
        }
        let mut last = queued.pop().unwrap_or_else(|| {
            let s = steps.last();
            StepUpdated {
                run_id: run_id.to_string(),
                step_id: s.map(|s| s.step.step_id.clone()).unwrap_or_default(),
                status: s.map(|s| s.step.status),
                chat_id: s.and_then(|s| s.step.chat_id.clone()),
                ..Default::default()
            }
        });
        self.flush(&mut queued);
        self.emit(Out::Progress {
            run_id: run_id.to_string(),
            kind: ProgressKind::End {
                message: format!("run {}", status.as_str()),
            },
        });
        let mut total = Usage::default();
        for s in &steps {
            total.add(&Usage {
                input_tokens: s.step.usage.input_tokens,
                output_tokens: s.step.usage.output_tokens,
                cache_read_tokens: s.step.usage.cache_read_tokens,
                total_tokens: s.step.usage.total_tokens,
            });
        }
        last.run_status = Some(status);
        last.report = (status == RunStatus::Completed || status == RunStatus::Failed).then_some(md);
        last.run_error = error;
        last.run_usage = Some(total.into());
        if last.finished_at.is_none() {
            last.finished_at = Some(finished_at);
        }
        self.emit(Out::StepUpdated(last));
        Ok(())
    }

    async fn run_agent_step(
        self: &Arc<Self>,
        reqs: Vec<AgentRequest>,
        cancel: CancellationToken,
    ) -> StepResult {
        let Some(first) = reqs.first() else {
            return StepResult::Failed {
                error: "nothing to run".into(),
                usage: Usage::default(),
                meta: json!({}),
                fatal: false,
            };
        };
        let permit = tokio::select! {
            p = self.slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return StepResult::Failed { error: "the server is shutting down".into(), usage: Usage::default(), meta: json!({}), fatal: false },
            },
            _ = cancel.cancelled() => return StepResult::Cancelled { usage: Usage::default() },
        };
        // The proof: the project's fingerprint before and after the agent.
        let root = first.root.clone();
        let me = self.clone();
        let r2 = root.clone();
        let before = tokio::task::spawn_blocking(move || me.hashes.fingerprint(&r2))
            .await
            .ok();
        let parts = reqs.len();
        let mut usage = Usage::default();
        let mut init_meta = json!({});
        let mut turns = 0u32;
        let mut outputs: Vec<AgentOutcome> = Vec::new();
        let mut result: Result<(), AgentError> = Ok(());
        for req in reqs {
            let (r, u, m, t) = self.run_agent_once(req, cancel.clone(), turns).await;
            usage.add(&u);
            turns = t;
            if init_meta.as_object().is_none_or(|o| o.is_empty()) {
                init_meta = m;
            }
            match r {
                Ok(o) => outputs.push(o),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let result = result.map(|()| combine_parts(outputs, parts));
        drop(permit);
        let me = self.clone();
        let after = tokio::task::spawn_blocking(move || me.hashes.fingerprint(&root))
            .await
            .ok();
        let changed = match (&before, &after) {
            (Some(b), Some(a)) => crate::project::diff(b, a),
            _ => vec!["(the fingerprint could not be taken)".to_string()],
        };
        if !changed.is_empty() {
            let shown: Vec<&str> = changed.iter().take(20).map(String::as_str).collect();
            let more = changed.len().saturating_sub(shown.len());
            return StepResult::Failed {
                error: format!(
                    "the project was modified while this step ran: {}{}. boo never writes to the project; find out what changed these files before trusting this run.",
                    shown.join(", "),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                ),
                usage,
                meta: json!({ "modified": changed }),
                fatal: true,
            };
        }
        let merge_meta = |mut m: serde_json::Value| {
            if let (Some(obj), Some(init)) = (m.as_object_mut(), init_meta.as_object()) {
                for (k, v) in init {
                    obj.entry(k.clone()).or_insert(v.clone());
                }
            }
            m
        };
        match result {
            Ok(o) => StepResult::Done {
                output: o.output,
                usage: if usage.is_zero() { o.usage } else { usage },
                meta: merge_meta(o.meta),
            },
            Err(AgentError::Cancelled) => StepResult::Cancelled { usage },
            Err(AgentError::Failed { message, meta }) => StepResult::Failed {
                error: message,
                usage,
                meta: merge_meta(meta),
                fatal: false,
            },
        }
    }

    /// Runs the agent once and forwards its events; returns the outcome, the usage
    /// the stream reported, the init meta and the last model turn number.
    async fn run_agent_once(
        self: &Arc<Self>,
        req: AgentRequest,
        cancel: CancellationToken,
        turn_offset: u32,
    ) -> (
        Result<AgentOutcome, AgentError>,
        Usage,
        serde_json::Value,
        u32,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<AgentEvent>();
        let (run_id, step_id, chat_id) =
            (req.run_id.clone(), req.step_id.clone(), req.chat_id.clone());
        let backend = self.backend.clone();
        let fut = backend.run(req, tx, cancel.clone());
        let me = self.clone();
        let forward = async {
            let mut usage = Usage::default();
            let mut turns: HashMap<u32, Usage> = HashMap::new();
            let mut open: HashMap<String, (Trace, Instant, u32)> = HashMap::new();
            let mut turn: u32 = turn_offset + 1;
            let mut init_meta = json!({});
            while let Some(ev) = rx.recv().await {
                match ev {
                    AgentEvent::Started { pid, pid_start } => {
                        let (r, s) = (run_id.clone(), step_id.clone());
                        me.store.send("agent pid", move |c| {
                            queries::set_step_pid(c, &r, &s, Some((pid, pid_start)))
                        });
                    }
                    AgentEvent::Init {
                        version,
                        tools,
                        model,
                    } => {
                        init_meta = json!({ "qwenVersion": version, "offeredTools": tools, "model": model });
                        let (r, s, m) = (run_id.clone(), step_id.clone(), init_meta.clone());
                        me.store
                            .send("step meta", move |c| queries::set_step_meta(c, &r, &s, &m));
                    }
                    AgentEvent::Turn { turn: t, usage: u } => {
                        let t = t + turn_offset;
                        usage.add(&u);
                        turns.insert(t, u);
                        turn = t + 1;
                        let (r, s, c2) = (run_id.clone(), step_id.clone(), chat_id.clone());
                        me.store.send("turn usage", move |c| {
                            queries::insert_turn_usage(c, &r, &s, &c2, t, &u)
                        });
                    }
                    AgentEvent::Stream(ev) => {
                        // Tool calls open and close traces; the note follows the event.
                        let note = match &ev {
                            StreamEvent::ToolCall {
                                tool_call_id,
                                name,
                                input,
                            } => {
                                let now = clock::now_ms();
                                let t = Trace {
                                    trace_id: uuid::Uuid::now_v7().to_string(),
                                    run_id: run_id.clone(),
                                    step_id: step_id.clone(),
                                    chat_id: chat_id.clone(),
                                    tool: name.clone(),
                                    tool_call_id: tool_call_id.clone(),
                                    turn,
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
                                let t2 = t.clone();
                                me.store.send("trace start", move |c| {
                                    queries::insert_trace(c, &t2, now)
                                });
                                open.insert(
                                    tool_call_id.clone(),
                                    (t.clone(), Instant::now(), turn),
                                );
                                Some(TraceNote {
                                    phase: "start",
                                    trace: t,
                                })
                            }
                            StreamEvent::ToolResult {
                                tool_call_id,
                                is_error,
                                content,
                            } => open.remove(tool_call_id).map(|(mut t, started, tturn)| {
                                let outcome =
                                    if *is_error && crate::agent::parse::is_denial(content) {
                                        TraceOutcome::Denied
                                    } else if *is_error {
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
                                t.usage = turns.get(&tturn).map(|u| WireUsage::from(*u));
                                let t2 = t.clone();
                                me.store
                                    .send("trace finish", move |c| queries::finish_trace(c, &t2));
                                TraceNote {
                                    phase: "finish",
                                    trace: t,
                                }
                            }),
                            _ => None,
                        };
                        me.emit(outbox::stream(&run_id, &step_id, &chat_id, ev));
                        if let Some(n) = note {
                            me.emit(Out::Trace(n));
                        }
                    }
                }
            }
            // The step ended with calls still open: finish them as errors.
            for (_, (mut t, started, _)) in open {
                t.finished_at = Some(clock::now_rfc3339());
                t.latency_ms = Some(started.elapsed().as_millis() as u64);
                t.outcome = Some(TraceOutcome::Error);
                t.error = Some("the step ended before the tool call returned".into());
                let t2 = t.clone();
                me.store
                    .send("trace close", move |c| queries::finish_trace(c, &t2));
                me.emit(Out::Trace(TraceNote {
                    phase: "finish",
                    trace: t,
                }));
            }
            (usage, init_meta, turn.saturating_sub(1))
        };
        let (result, (usage, init_meta, last_turn)) = tokio::join!(fut, forward);
        (result, usage, init_meta, last_turn)
    }

    /// Cancels a run. Answers once the run has ended (or after a bound).
    pub async fn cancel(self: &Arc<Self>, run_id: &str) -> Result<RunStatus, CancelError> {
        let local = {
            let runs = lock(&self.runs);
            runs.get(run_id)
                .map(|h| (h.agents.clone(), h.user_cancel.clone(), h.done.clone()))
        };
        let id = run_id.to_string();
        let row = self
            .store
            .call(move |c| queries::get_run(c, &id))
            .await
            .map_err(|e| CancelError::Internal(e.to_string()))?;
        let Some(row) = row else {
            return Err(CancelError::NotFound(run_id.to_string()));
        };
        if row.run.summary.status.is_terminal() {
            return Err(CancelError::Ended(
                run_id.to_string(),
                row.run.summary.status,
            ));
        }
        let id = run_id.to_string();
        self.store
            .call(move |c| queries::request_cancel(c, &id))
            .await
            .map_err(|e| CancelError::Internal(e.to_string()))?;
        if let Some((agents, user, mut done)) = local {
            user.store(true, Ordering::SeqCst);
            agents.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(15), done.wait_for(|d| *d)).await;
        } else {
            // Owned elsewhere: its owner sees the request at its next heartbeat; if the
            // owner is gone, adopting the run here finishes it as cancelled.
            self.adopt_orphans().await;
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                let id = run_id.to_string();
                if let Ok(Some(r)) = self.store.call(move |c| queries::get_run(c, &id)).await {
                    if r.run.summary.status.is_terminal() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let id = run_id.to_string();
        let row = self
            .store
            .call(move |c| queries::get_run(c, &id))
            .await
            .map_err(|e| CancelError::Internal(e.to_string()))?;
        Ok(row
            .map(|r| r.run.summary.status)
            .unwrap_or(RunStatus::Cancelled))
    }

    /// Adopts running runs whose owner is gone: their finished steps are kept, the
    /// steps that were running start again fresh, pending ones continue.
    pub async fn adopt_orphans(self: &Arc<Self>) -> Vec<String> {
        let me = self.owner_id.clone();
        let rows = match self
            .store
            .call(move |c| queries::foreign_running_runs(c, &me))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot look for orphaned runs: {e}");
                return Vec::new();
            }
        };
        let now = clock::now_ms();
        let timeout = self.config.lease_timeout.as_millis() as i64;
        let mut adopted = Vec::new();
        for (run_id, owner, lease_hb) in rows {
            if lock(&self.runs).contains_key(&run_id) {
                continue;
            }
            let gone = match &owner {
                None => lease_hb.is_none_or(|hb| now - hb > timeout),
                Some(o) => {
                    (o.host == self.host
                        && !crate::agent::process::same_process(o.pid, o.pid_start))
                        || now - o.heartbeat_ms > timeout
                }
            };
            if !gone {
                continue;
            }
            let (rid, me, expected) = (
                run_id.clone(),
                self.owner_id.clone(),
                owner.as_ref().map(|o| o.owner_id.clone()),
            );
            let had_lease = lease_hb.is_some();
            let taken = self
                .store
                .call(move |c| {
                    if had_lease && expected.is_none() {
                        // A lease whose owner row is gone: replace it.
                        c.execute("DELETE FROM run_leases WHERE run_id = ?1", [&rid])?;
                    }
                    let ok = queries::take_lease(
                        c,
                        &rid,
                        &me,
                        expected.as_deref().filter(|_| had_lease),
                    )?;
                    if !ok {
                        return Ok((false, Vec::new()));
                    }
                    let run = queries::get_run(c, &rid)?;
                    let steps = queries::get_steps(c, &rid)?;
                    let status = run
                        .map(|r| r.run.summary.status)
                        .unwrap_or(RunStatus::Failed);
                    let reset = engine::reconcile(
                        status,
                        &steps
                            .iter()
                            .map(|s| (s.step.step_id.clone(), s.step.status))
                            .collect::<Vec<_>>(),
                    );
                    let groups = queries::reset_steps(c, &rid, &reset)?;
                    Ok((true, groups))
                })
                .await;
            match taken {
                Ok((true, groups)) => {
                    for (pgid, start) in groups {
                        if crate::agent::process::kill_stale_group(pgid, start) {
                            tracing::info!(run = %run_id, pgid, "killed a stale agent process group");
                        }
                    }
                    tracing::info!(run = %run_id, "adopted an orphaned run");
                    self.spawn_drive(run_id.clone(), true);
                    adopted.push(run_id);
                }
                Ok((false, _)) => {}
                Err(e) => tracing::error!(run = %run_id, "cannot adopt: {e}"),
            }
        }
        adopted
    }

    /// Heartbeat: keeps leases alive, notices lost leases and remote cancel requests,
    /// and (when `adopt` is on) adopts orphaned runs. Runs until `shutdown` fires.
    pub async fn heartbeat_loop(self: Arc<Self>, adopt: bool, shutdown: CancellationToken) {
        loop {
            let held: Vec<String> = lock(&self.runs).keys().cloned().collect();
            let me = self.owner_id.clone();
            match self
                .store
                .call(move |c| queries::heartbeat(c, &me, &held))
                .await
            {
                Ok((lost, cancelled)) => {
                    let runs = lock(&self.runs);
                    for r in lost {
                        if let Some(h) = runs.get(&r) {
                            tracing::warn!(run = %r, "lease lost; stopping here");
                            h.stop.cancel();
                            h.agents.cancel();
                        }
                    }
                    for r in cancelled {
                        if let Some(h) = runs.get(&r) {
                            h.user_cancel.store(true, Ordering::SeqCst);
                            h.agents.cancel();
                        }
                    }
                }
                Err(e) => tracing::error!("heartbeat failed: {e}"),
            }
            if adopt {
                self.adopt_orphans().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.heartbeat) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Stops every local run without ending it (its agents are killed; the run stays
    /// `running` and the next server resumes it) and gives up this owner's leases.
    pub async fn shutdown(&self) {
        let handles: Vec<(CancellationToken, CancellationToken, watch::Receiver<bool>)> =
            lock(&self.runs)
                .values()
                .map(|h| (h.stop.clone(), h.agents.clone(), h.done.clone()))
                .collect();
        for (stop, agents, _) in &handles {
            stop.cancel();
            agents.cancel();
        }
        for (_, _, mut done) in handles {
            let _ = tokio::time::timeout(Duration::from_secs(5), done.wait_for(|d| *d)).await;
        }
        let me = self.owner_id.clone();
        let _ = self
            .store
            .call(move |c| queries::release_owner(c, &me))
            .await;
    }

    /// Publishes again the findings of the newest completed run of every flow on
    /// `root` (a new server starts with an empty Problems panel otherwise).
    pub async fn republish_findings(&self, root: String) {
        let r = root.clone();
        let latest = self
            .store
            .call(move |c| queries::latest_completed_per_flow(c, &r))
            .await;
        let Ok(latest) = latest else { return };
        for (run_id, flow, report_json) in latest {
            let findings: Vec<CheckedFinding> =
                serde_json::from_str::<serde_json::Value>(&report_json)
                    .ok()
                    .and_then(|v| v.get("findings").cloned())
                    .and_then(|f| serde_json::from_value(f).ok())
                    .unwrap_or_default();
            self.emit(Out::Findings {
                root: root.clone(),
                flow: flow.clone(),
                diagnostics: diagnostics_for(&run_id, &flow, &findings),
            });
        }
    }

    /// Waits until the run ends here (for the CLI).
    pub async fn wait(&self, run_id: &str) {
        let done = lock(&self.runs).get(run_id).map(|h| h.done.clone());
        if let Some(mut d) = done {
            let _ = d.wait_for(|d| *d).await;
        }
    }
}

/// One step's answer from several passes (one per diff part): the prose of each pass
/// under a heading, and one findings block with every pass's findings.
fn combine_parts(mut outputs: Vec<AgentOutcome>, parts: usize) -> AgentOutcome {
    if outputs.len() == 1 {
        return outputs.remove(0);
    }
    let mut prose = String::new();
    let mut findings = Vec::new();
    let mut usage = Usage::default();
    let mut meta = json!({ "diffParts": parts });
    for (i, o) in outputs.iter().enumerate() {
        let parsed = evidence::parse_answer(&o.output);
        prose.push_str(&format!(
            "### Diff part {} of {parts}\n\n{}\n\n",
            i + 1,
            parsed.prose.trim()
        ));
        findings.extend(parsed.findings);
        usage.add(&o.usage);
        if i == 0 {
            if let (Some(m), Some(first)) = (meta.as_object_mut(), o.meta.as_object()) {
                for (k, v) in first {
                    m.entry(k.clone()).or_insert(v.clone());
                }
            }
        }
    }
    let block = serde_json::to_string_pretty(&findings).unwrap_or_else(|_| "[]".into());
    AgentOutcome {
        output: format!("{}```findings\n{block}\n```\n", prose),
        usage,
        meta,
    }
}

fn cap_text(s: &str, cap: usize) -> String {
    if s.len() <= cap {
        return s.to_string();
    }
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} more bytes]", &s[..end], s.len() - end)
}

/// Editor diagnostics for the verified findings of a run: one per verified citation.
pub fn diagnostics_for(
    run_id: &str,
    flow: &str,
    findings: &[CheckedFinding],
) -> Vec<FindingDiagnostic> {
    findings
        .iter()
        .filter(|f| f.verdict == Verdict::Verified)
        .flat_map(|f| {
            let who = f
                .sources
                .iter()
                .map(|s| s.agent.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            f.evidence
                .iter()
                .filter(|e| e.ok)
                .map(move |e| FindingDiagnostic {
                    run_id: run_id.to_string(),
                    flow: flow.to_string(),
                    path: e.path.clone(),
                    start_line: e.lines.map(|l| l.0).unwrap_or(1),
                    end_line: e.lines.map(|l| l.1).unwrap_or(1),
                    severity: f.severity.as_str().to_string(),
                    message: format!("[{flow}/{who}] {}: {}", f.title, f.claim),
                })
        })
        .collect()
}

/// Signals computed by completed `signals` code steps.
fn collect_signals(steps: &[StepRow]) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for s in steps.iter().filter(|s| {
        s.step.kind == StepKind::Code
            && s.step.agent == codesteps::CodeFn::Signals.as_str()
            && s.step.status == StepStatus::Completed
    }) {
        if let Some(v) = s
            .step
            .output
            .as_deref()
            .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
        {
            if let Some(m) = v.get("signals").and_then(|m| m.as_object()) {
                for (k, b) in m {
                    out.insert(k.clone(), b.as_bool().unwrap_or(false));
                }
            }
        }
    }
    out
}

/// Gathers what the report needs from the run's steps: answers, checked and merged findings.
pub fn build_report_input(
    row: &queries::RunRow,
    steps: &[StepRow],
    root: &Path,
    status: RunStatus,
) -> (ReportInput, Vec<CheckedFinding>) {
    let mut findings = Vec::new();
    let mut summaries = Vec::new();
    let mut alerts = Vec::new();
    for s in steps {
        let st = &s.step;
        if s.fatal {
            alerts.push(format!(
                "step `{}` ({}) failed the run: {}",
                st.step_id,
                st.agent,
                st.error.clone().unwrap_or_default()
            ));
        }
        let mut answer = None;
        let mut problem = None;
        if st.kind == StepKind::Agent && st.status == StepStatus::Completed {
            let parsed = evidence::parse_answer(st.output.as_deref().unwrap_or_default());
            for f in &parsed.findings {
                findings.push(evidence::check_finding(
                    root,
                    f,
                    Source {
                        step_id: st.step_id.clone(),
                        agent: st.agent.clone(),
                    },
                ));
            }
            if !parsed.had_block {
                problem = Some("the answer had no `findings` block".to_string());
            } else {
                problem = parsed.problem.clone();
            }
            if row.plan.answer.contains(&st.step_id) {
                answer = Some(parsed.prose);
            }
        }
        let duration_ms = match (
            st.started_at.as_deref().and_then(clock::parse_ms),
            st.finished_at.as_deref().and_then(clock::parse_ms),
        ) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        summaries.push(StepSummary {
            step_id: st.step_id.clone(),
            agent: st.agent.clone(),
            kind: st.kind,
            label: st.label.clone(),
            wave: st.wave,
            status: st.status,
            duration_ms,
            usage: Usage {
                input_tokens: st.usage.input_tokens,
                output_tokens: st.usage.output_tokens,
                cache_read_tokens: st.usage.cache_read_tokens,
                total_tokens: st.usage.total_tokens,
            },
            error: st.error.clone(),
            answer,
            findings_problem: problem,
        });
    }
    let unsandboxed: Vec<&str> = steps
        .iter()
        .filter(|s| s.step.kind == StepKind::Agent)
        .filter(|s| {
            s.step
                .meta
                .as_ref()
                .and_then(|m| m.get("sandbox"))
                .and_then(|x| x.as_str())
                .is_some_and(|x| x == "unavailable" || x == "partial")
        })
        .map(|s| s.step.step_id.as_str())
        .collect();
    if !unsandboxed.is_empty() {
        alerts.push(format!(
            "sandbox: unavailable — the OS sandbox (Landlock) could not be fully applied on this system for {}; those agents ran with boo's other read-only layers only (set BOO_SANDBOX=required to refuse instead)",
            unsandboxed.join(", ")
        ));
    }
    let merged = evidence::merge(findings);
    let input = ReportInput {
        run_id: row.run.summary.run_id.clone(),
        flow: row.run.summary.flow.clone(),
        flow_title: row
            .run
            .title
            .clone()
            .unwrap_or(row.run.summary.flow.clone()),
        band: row.run.summary.band.as_str().to_string(),
        question: row.run.summary.question.clone(),
        status: status.as_str().to_string(),
        alerts,
        steps: summaries,
        findings: merged.clone(),
    };
    (input, merged)
}

#[cfg(test)]
mod tests;
