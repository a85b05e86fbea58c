//! The one way a step starts. [`Scheduler::start_step`] takes a run's context and a
//! [`StepSpec`] — a step of the plan, or one created while the run runs (with a
//! parent, a phase and a cache key) — and does everything a step needs: it inserts or
//! claims the step row under the run's lease, announces it, takes a slot from the
//! server-wide limit, dispatches the agent or the code function, forwards the agent's
//! events, persists the end and hands back the (not yet sent) end update. Flows use
//! it; workflows and background agents will; nothing else starts an agent.

use super::dispatch::{self, StepResult};
use super::outbox::{Out, OutboxSender, StepAdded, StepUpdated};
use super::scope::RunScope;
use crate::agent::{AgentBackend, ContentBlock};
use crate::clock;
use crate::codesteps::{CodeFn, DepOutput};
use crate::model::{StepKind, StepStatus, WireUsage};
use crate::redact::Redactor;
use crate::store::queries::{self, NewRuntimeStep, StepEnd};
use crate::store::Store;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Semaphore;

/// The run a step belongs to.
#[derive(Debug, Clone)]
pub struct RunCtx {
    pub run_id: String,
    /// The project the run is about (its identity: reports, caches, paths shown).
    pub root: PathBuf,
    /// Where the run's steps read the project: the root inside the run's snapshot
    /// (`project::snapshot`). Agents work there, code steps run there, the read-only
    /// proof is taken there.
    pub workdir: PathBuf,
    pub model: Option<String>,
    /// The run's scope; each step takes a child of it.
    pub scope: RunScope,
    /// What everything the run's steps say passes through before it is stored or sent
    /// ([`Scheduler::run_ctx`] makes it).
    pub redactor: Arc<Redactor>,
}

/// Which of the run's attachments an agent step gets with its prompts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AttachmentChoice {
    /// Every attachment of the run (the default).
    #[default]
    All,
    /// None (a flow step with `attachments = false`).
    Nothing,
    /// These, by name (a workflow `agent()` with `{ attachments: [...] }`).
    Named(Vec<String>),
}

impl AttachmentChoice {
    /// Whether the attachment called `name` goes with the prompts.
    pub fn takes(&self, name: &str) -> bool {
        match self {
            AttachmentChoice::All => true,
            AttachmentChoice::Nothing => false,
            AttachmentChoice::Named(names) => names.iter().any(|n| n == name),
        }
    }
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum StepWork {
    /// An agent: a persona and its prompts (one, or one per part of a split diff;
    /// each runs in turn in the step's session).
    Agent {
        persona: String,
        prompts: Vec<Vec<ContentBlock>>,
        /// Which of the run's attachments go with the prompts.
        attachments: AttachmentChoice,
        /// The agent gets boo's MCP tools to start background children (a flow step
        /// with `spawn = true`). Children never get them.
        spawn: bool,
    },
    /// A built-in code function over the outputs of the steps it depends on.
    Code {
        function: CodeFn,
        args: serde_json::Value,
        inputs: Vec<DepOutput>,
    },
}

impl StepWork {
    pub fn kind(&self) -> StepKind {
        match self {
            StepWork::Agent { .. } => StepKind::Agent,
            StepWork::Code { .. } => StepKind::Code,
        }
    }

    /// The wire's `agent` field: the persona, or the code function's name.
    pub fn performer(&self) -> &str {
        match self {
            StepWork::Agent { persona, .. } => persona,
            StepWork::Code { function, .. } => function.as_str(),
        }
    }
}

/// Where a step comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// In the plan at launch: its row exists and is claimed (`pending → running`).
    Plan,
    /// Created while the run runs: its row is inserted as running and announced with
    /// `boo/stepAdded`. Workflow scripts start their agents this way.
    Runtime,
}

/// One step to start.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub step_id: String,
    pub label: String,
    /// 0 for a workflow's script step; the dependency level for flow steps.
    pub wave: u32,
    pub work: StepWork,
    pub origin: Origin,
    pub parent_step_id: Option<String>,
    pub phase: Option<String>,
    pub cache_key: Option<String>,
    /// Stored on a runtime step's row when it starts (a child's spawn request, so a
    /// resumed run can start it again).
    pub meta: Option<serde_json::Value>,
}

#[derive(Debug, Error)]
pub enum StartError {
    /// The run is no longer ours (another server holds its lease) or it ended.
    #[error("the run's lease is held by another server, or the run ended")]
    NotOwned,
    /// The run's scope is stopped: nothing new starts.
    #[error("the run is stopping")]
    Stopped,
    #[error("cannot record the step: {0}")]
    Store(String),
}

/// How a step ended.
#[derive(Debug, Clone)]
pub struct StepEnded {
    pub step_id: String,
    pub end: StepEnd,
    /// The end's notification, persisted but not yet sent: the driver sends it, or
    /// attaches the run's terminal status to it when the run ends with this step.
    /// `None` when the run was handed over (lease lost, shutdown): nothing was
    /// persisted and the next owner runs the step again.
    pub update: Option<StepUpdated>,
}

/// A started step. Await it for its end. Dropping it unawaited stops the step (its
/// agent is killed with its process group).
pub struct StepHandle {
    pub step_id: String,
    pub chat_id: Option<String>,
    task: tokio::task::JoinHandle<StepEnded>,
}

impl Future for StepHandle {
    type Output = StepEnded;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StepEnded> {
        let step_id = self.step_id.clone();
        Pin::new(&mut self.task).poll(cx).map(|r| {
            r.unwrap_or_else(|e| StepEnded {
                step_id,
                end: StepEnd {
                    status: Some(StepStatus::Failed),
                    error: Some(format!("the step's task stopped unexpectedly: {e}")),
                    ..Default::default()
                },
                update: None,
            })
        })
    }
}

impl Drop for StepHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Scheduler {
    pub(super) store: Store,
    pub(super) backend: Arc<dyn AgentBackend>,
    pub(super) out: OutboxSender,
    owner_id: String,
    /// The server-wide limit of agents running at once.
    agent_slots: Arc<Semaphore>,
    /// Per agent prompt.
    pub(super) deadline: Duration,
    /// Per code step.
    pub(super) code_deadline: Duration,
    /// The before/after proof of every step.
    pub(super) fingerprints: crate::project::HashCache,
    /// Masks secrets in everything an agent says before it is stored or sent.
    pub(super) redactor: Arc<Redactor>,
    /// Spawn grants and every run's background children (`children.rs`).
    pub(super) children: Arc<super::children::Children>,
}

impl Scheduler {
    pub fn new(
        store: Store,
        backend: Arc<dyn AgentBackend>,
        out: OutboxSender,
        owner_id: String,
        config: &crate::config::RunnerConfig,
        redactor: Arc<Redactor>,
    ) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            store,
            backend,
            out,
            owner_id,
            agent_slots: Arc::new(Semaphore::new(config.max_parallel.max(1))),
            deadline: config.deadline,
            code_deadline: config.code_deadline,
            fingerprints: crate::project::HashCache::new(),
            redactor,
            children: super::children::Children::new(config),
        })
    }

    /// The context of a run's steps. Its redactor masks secrets and drops the run's
    /// snapshot folder from paths, so a tool call, a transcript or an answer names
    /// `src/a.rs`, not the snapshot's copy of it (which is gone once the run ends); a
    /// citation stays a path inside the project.
    pub fn run_ctx(
        &self,
        run_id: &str,
        root: PathBuf,
        workdir: PathBuf,
        model: Option<String>,
        scope: RunScope,
    ) -> RunCtx {
        let redactor = if workdir == root {
            self.redactor.clone()
        } else {
            let dirs = [Some(workdir.clone()), workdir.canonicalize().ok()];
            let pairs = dirs
                .into_iter()
                .flatten()
                .map(|d| (format!("{}/", d.display()), String::new()));
            Arc::new(self.redactor.with_rewrites(pairs))
        };
        RunCtx {
            run_id: run_id.to_string(),
            root,
            workdir,
            model,
            scope,
            redactor,
        }
    }

    /// Starts a step (see the module doc). Returns once the step is recorded as
    /// running and announced; the work goes on in the background.
    pub async fn start_step(
        self: &Arc<Self>,
        ctx: &RunCtx,
        spec: StepSpec,
    ) -> Result<StepHandle, StartError> {
        if ctx.scope.is_stopped() {
            return Err(StartError::Stopped);
        }
        let kind = spec.work.kind();
        let fresh_chat = (kind == StepKind::Agent).then(|| uuid::Uuid::now_v7().to_string());
        let (run_id, owner) = (ctx.run_id.clone(), self.owner_id.clone());
        let chat_id = match spec.origin {
            Origin::Plan => {
                let (sid, chat) = (spec.step_id.clone(), fresh_chat.clone());
                self.store
                    .call(move |c| queries::claim_step(c, &run_id, &sid, &owner, chat.as_deref()))
                    .await
                    .map_err(|e| StartError::Store(e.to_string()))?
                    .ok_or(StartError::NotOwned)?
            }
            Origin::Runtime => {
                let row = NewRuntimeStep {
                    step_id: spec.step_id.clone(),
                    kind,
                    agent: spec.work.performer().to_string(),
                    label: spec.label.clone(),
                    wave: spec.wave,
                    chat_id: fresh_chat.clone(),
                    parent_step_id: spec.parent_step_id.clone(),
                    phase: spec.phase.clone(),
                    cache_key: spec.cache_key.clone(),
                    meta: spec.meta.clone(),
                };
                let inserted = self
                    .store
                    .call(move |c| queries::insert_runtime_step(c, &run_id, &owner, &row))
                    .await
                    .map_err(|e| StartError::Store(e.to_string()))?;
                if !inserted {
                    return Err(StartError::NotOwned);
                }
                // A step the clients have not seen: added before its first update.
                let _ = self.out.send(Out::StepAdded(StepAdded {
                    run_id: ctx.run_id.clone(),
                    step_id: spec.step_id.clone(),
                    agent: spec.work.performer().to_string(),
                    kind,
                    label: spec.label.clone(),
                    phase: spec.phase.clone(),
                    wave: spec.wave,
                    chat_id: fresh_chat.clone(),
                    status: StepStatus::Running,
                    cached: false,
                    parent_step_id: spec.parent_step_id.clone(),
                }));
                fresh_chat
            }
        };
        let _ = self.out.send(Out::StepUpdated(StepUpdated {
            run_id: ctx.run_id.clone(),
            step_id: spec.step_id.clone(),
            status: Some(StepStatus::Running),
            started_at: Some(clock::now_rfc3339()),
            chat_id: chat_id.clone(),
            agent: Some(spec.work.performer().to_string()),
            kind: Some(kind),
            label: Some(spec.label.clone()),
            wave: Some(spec.wave),
            ..Default::default()
        }));
        let scope = ctx.scope.child();
        let scheduler = self.clone();
        let ctx = ctx.clone();
        let step_id = spec.step_id.clone();
        let chat = chat_id.clone();
        let task = tokio::spawn(async move {
            let result = match &spec.work {
                StepWork::Agent {
                    persona,
                    prompts,
                    attachments,
                    spawn,
                } => {
                    let chat = chat.clone().unwrap_or_default();
                    // A step allowed to spawn gets boo's MCP server with a token of its
                    // own, revoked when the step ends (the grant is dropped).
                    let grant = spawn
                        .then(|| {
                            scheduler
                                .children
                                .grant(&ctx, &spec.step_id, persona, spec.wave)
                        })
                        .flatten();
                    dispatch::run_agent(
                        &scheduler,
                        &ctx,
                        &spec.step_id,
                        &chat,
                        prompts,
                        attachments,
                        grant.as_ref().map(|g| g.server.clone()),
                        &scope,
                    )
                    .await
                }
                StepWork::Code {
                    function,
                    args,
                    inputs,
                } => {
                    dispatch::run_code(&scheduler, &ctx.workdir, *function, args, inputs, &scope)
                        .await
                }
            };
            scheduler.end_step(&ctx, &scope, &spec, chat, result).await
        });
        Ok(StepHandle {
            step_id,
            chat_id,
            task,
        })
    }

    /// Takes an agent slot, or `None` when the scope stopped first.
    pub(super) async fn agent_slot(
        &self,
        scope: &RunScope,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::select! {
            p = self.agent_slots.clone().acquire_owned() => p.ok(),
            _ = scope.stopped() => None,
        }
    }

    /// Persists a step's end (unless the run was handed over) and builds its update.
    async fn end_step(
        &self,
        ctx: &RunCtx,
        scope: &RunScope,
        spec: &StepSpec,
        chat_id: Option<String>,
        result: StepResult,
    ) -> StepEnded {
        let mut end = result.into_end();
        for text in [&mut end.output, &mut end.error].into_iter().flatten() {
            ctx.redactor.string(text);
        }
        if let Some(meta) = &mut end.meta {
            ctx.redactor.json(meta);
        }
        if scope.hands_over() {
            return StepEnded {
                step_id: spec.step_id.clone(),
                end,
                update: None,
            };
        }
        let (rid, sid, row) = (ctx.run_id.clone(), spec.step_id.clone(), end.clone());
        let finished_at = self
            .store
            .call(move |c| queries::finish_step(c, &rid, &sid, &row))
            .await;
        let update = match finished_at {
            Ok(at) => Some(end_update(
                &ctx.run_id,
                &spec.step_id,
                &StepFacts {
                    performer: spec.work.performer(),
                    kind: spec.work.kind(),
                    label: &spec.label,
                    wave: spec.wave,
                },
                &end,
                chat_id,
                at,
            )),
            Err(e) => {
                tracing::error!(run = %ctx.run_id, step = %spec.step_id, "cannot record the step's end: {e}");
                None
            }
        };
        StepEnded {
            step_id: spec.step_id.clone(),
            end,
            update,
        }
    }
}

/// What an end update says about the step itself.
pub struct StepFacts<'a> {
    pub performer: &'a str,
    pub kind: StepKind,
    pub label: &'a str,
    pub wave: u32,
}

/// The `boo/stepUpdated` of a step's end (sent by the driver).
pub fn end_update(
    run_id: &str,
    step_id: &str,
    facts: &StepFacts<'_>,
    end: &StepEnd,
    chat_id: Option<String>,
    finished_at: String,
) -> StepUpdated {
    StepUpdated {
        run_id: run_id.to_string(),
        step_id: step_id.to_string(),
        status: Some(end.status.unwrap_or(StepStatus::Failed)),
        error: end.error.clone(),
        finished_at: Some(finished_at),
        usage: (facts.kind == StepKind::Agent).then(|| WireUsage::from(end.usage)),
        chat_id,
        agent: Some(facts.performer.to_string()),
        kind: Some(facts.kind),
        label: Some(facts.label.to_string()),
        wave: Some(facts.wave),
        output: end.output.clone(),
        ..Default::default()
    }
}
