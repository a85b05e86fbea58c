//! The run supervisor: launches runs (validate, plan, record), drives each one on its
//! own task, cancels, waits, and shuts down. The rooms below it:
//!
//! - [`scheduler`]: the one way a step starts (`Scheduler::start_step`);
//! - [`dispatch`]: running a step's work (agent session or code function);
//! - [`forward`]: an agent's events into streams, traces and usage;
//! - [`prompt`]: prompt assembly (stable part first);
//! - [`flow`]: the flow driver (the engine loop only);
//! - [`agent_run`]: background agents (a run of one agent step);
//! - [`workflow`]: the workflow driver (a script's `agent()` calls as steps);
//! - [`state`]: a run's live state in memory;
//! - [`scope`]: one cancellation tree per run, with a reason;
//! - [`lease`]: ownership, heartbeat, adoption after a crash;
//! - [`snapshots`]: the run's snapshot of its project (taken at launch, removed at the end);
//! - [`finish`] and [`report_input`]: how a run ends and what its report is made of;
//! - [`outbox`]: the single exit for run traffic.

pub mod agent_run;
pub mod children;
pub mod dispatch;
pub mod finish;
pub mod flow;
pub mod forward;
pub mod lease;
pub mod outbox;
pub mod prompt;
pub mod report_input;
pub mod scheduler;
pub mod scope;
pub mod snapshots;
pub mod state;
pub mod workflow;

use crate::agent::qwen::model_name_problem;
use crate::agent::AgentBackend;
use crate::attach::{Attachment, AttachmentInput};
use crate::catalog::Catalog;
use crate::config::RunnerConfig;
use crate::engine;
use crate::evidence::CheckedFinding;
use crate::model::{Band, RunInput, RunStatus, StepKind};
use crate::store::queries::{self, NewRun};
use crate::store::Store;
use outbox::{Out, OutboxSender};
pub use prompt::stable_prompt;
pub use report_input::{build_report_input, diagnostics_for};
use scheduler::Scheduler;
use scope::{RunScope, StopReason};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub flow: String,
    pub band: Band,
    pub question: String,
    pub root: PathBuf,
    pub model: Option<String>,
    pub fast: bool,
    /// Images for the agents (checked by [`Supervisor::intake_attachments`]).
    pub attachments: Vec<AttachmentInput>,
    /// This run's model takes images (`None`: `RunnerConfig::vision_model`).
    pub vision: Option<bool>,
}

#[derive(Debug, Error)]
pub enum LaunchError {
    /// Bad parameters; the message names the field and what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// The agent CLI cannot run; no run was created.
    #[error("{0}")]
    Unavailable(String),
    /// A project flow in a root the user has not trusted; no run was created.
    #[error("flow {flow:?} comes from {root}/.boo/ and that folder is not trusted; review its .boo/ folder, then trust it with `boo trust {root}` (or from the editor) and launch again")]
    Untrusted { flow: String, root: String },
    /// A project workflow in a root the user has not trusted; no run was created.
    #[error("workflow {workflow:?} comes from {path}, a file of the project {root}, and that folder is not trusted; review its .boo/workflows and .claude/workflows folders, then trust it with `boo trust {root}` (or from the editor) and launch again")]
    UntrustedWorkflow {
        workflow: String,
        path: String,
        root: String,
    },
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

/// A run driven by this server.
struct RunHandle {
    scope: RunScope,
    /// Turns true once the run's driver returned.
    done: watch::Receiver<bool>,
}

pub struct Supervisor {
    pub store: Store,
    scheduler: Arc<Scheduler>,
    out: OutboxSender,
    pub owner_id: String,
    pub config: RunnerConfig,
    /// Where the built-in catalog comes from (`None`: the copy inside the binary).
    catalog_dir: Option<PathBuf>,
    runs: Mutex<HashMap<String, RunHandle>>,
    host: String,
    /// Where runs' snapshots live (`RunnerConfig::snapshot_dir`, canonical).
    snapshot_base: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Supervisor {
    pub fn new(
        store: Store,
        backend: Arc<dyn AgentBackend>,
        out: OutboxSender,
        config: RunnerConfig,
        catalog_dir: Option<PathBuf>,
    ) -> Arc<Self> {
        let owner_id = uuid::Uuid::now_v7().to_string();
        let scheduler = Scheduler::new(
            store.clone(),
            backend,
            out.clone(),
            owner_id.clone(),
            &config,
            Arc::new(crate::redact::Redactor::new(config.secrets.clone())),
        );
        // git never looks for a repository above a snapshot's tree.
        let snapshot_base = crate::project::snapshot::register_base(&config.snapshot_dir)
            .unwrap_or_else(|e| {
                tracing::error!(
                    "cannot create the snapshot folder {}: {e}",
                    config.snapshot_dir.display()
                );
                config.snapshot_dir.clone()
            });
        let sup = Arc::new(Supervisor {
            snapshot_base,
            store,
            scheduler,
            out,
            owner_id,
            config,
            catalog_dir,
            runs: Mutex::new(HashMap::new()),
            host: hostname::get()
                .map(|h| h.to_string_lossy().to_string())
                .unwrap_or_else(|_| "localhost".into()),
        });
        // The private channel of `boo mcp` (agents allowed to spawn reach it).
        children::listen(&sup);
        sup
    }

    fn emit(&self, m: Out) {
        let _ = self.out.send(m);
    }

    /// The catalog a run on `root` sees.
    pub fn catalog(&self, root: Option<&std::path::Path>) -> Catalog {
        match root {
            Some(r) => Catalog::for_root(r, self.catalog_dir.as_deref()),
            None => Catalog::builtin(self.catalog_dir.as_deref()),
        }
    }

    /// Reads and checks a launch's attachments (type sniffed from the bytes, size and
    /// count limits, a model declared to take images), off the async threads. Every
    /// launch with attachments goes through here before its run row exists; a refusal
    /// is [`LaunchError::Invalid`] naming the file and the limit.
    pub async fn intake_attachments(
        &self,
        inputs: Vec<AttachmentInput>,
        root: PathBuf,
        vision: Option<bool>,
        model: Option<String>,
    ) -> Result<Vec<Attachment>, LaunchError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let vision = vision.unwrap_or(self.config.vision_model);
        let model = model.or_else(|| self.config.default_model.clone());
        tokio::task::spawn_blocking(move || {
            crate::attach::intake(&inputs, &root, vision, model.as_deref())
        })
        .await
        .map_err(|e| LaunchError::Internal(format!("reading the attachments failed: {e}")))?
        .map_err(|e| LaunchError::Invalid(e.to_string()))
    }

    /// Validates a launch, creates the run row and starts it in the background.
    pub async fn launch(self: &Arc<Self>, req: LaunchRequest) -> Result<String, LaunchError> {
        let question = req.question.trim().to_string();
        if question.is_empty() {
            return Err(LaunchError::Invalid(
                "input.question: the question (focus text) is missing or empty; say what the flow should look at".into(),
            ));
        }
        if question.contains('\0') {
            return Err(LaunchError::Invalid(
                "input.question: the question holds a NUL character, which no agent can be given; remove it".into(),
            ));
        }
        if let Some(problem) = req.model.as_deref().and_then(model_name_problem) {
            return Err(LaunchError::Invalid(format!("model: {problem}")));
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
        let attachments = self
            .intake_attachments(req.attachments, root.clone(), req.vision, req.model.clone())
            .await?;
        // The project's catalog files are read off the async threads.
        let (me, r2) = (self.clone(), root.clone());
        let catalog = tokio::task::spawn_blocking(move || me.catalog(Some(&r2)))
            .await
            .map_err(|e| {
                LaunchError::Invalid(format!("root: reading the flow catalog failed: {e}"))
            })?;
        let Some(flow) = catalog.flow(&req.flow) else {
            return Err(LaunchError::Invalid(format!(
                "flow: unknown flow {:?}; known flows: {}",
                req.flow,
                catalog.flows.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        if catalog.is_project(&flow.name) {
            let key = root.display().to_string();
            let trusted = self
                .store
                .call(move |c| queries::is_trusted(c, &key))
                .await
                .map_err(|e| LaunchError::Internal(e.to_string()))?;
            if !trusted {
                return Err(LaunchError::Untrusted {
                    flow: flow.name.clone(),
                    root: root.display().to_string(),
                });
            }
        }
        self.scheduler
            .backend
            .check()
            .await
            .map_err(|e| LaunchError::Unavailable(e.0))?;
        let mut plan = engine::plan(flow, req.band).map_err(LaunchError::Internal)?;
        let mut first_chats = HashMap::new();
        for s in plan.steps.iter_mut().filter(|s| s.kind == StepKind::Agent) {
            let p = catalog
                .personas
                .get(&s.agent)
                .ok_or_else(|| LaunchError::Internal(format!("persona {} vanished", s.agent)))?;
            s.prompt = stable_prompt(&p.title, &p.brief, &s.label, &s.prompt);
            first_chats.insert(s.id.clone(), uuid::Uuid::now_v7().to_string());
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
            first_chats,
        };
        // The project as it is now: the run reads this copy, the user keeps editing.
        self.take_snapshot(&run_id, &root).await?;
        let id = run_id.clone();
        let recorded = self
            .store
            .call(move |c| {
                queries::insert_run(c, &new)?;
                queries::insert_run_attachments(c, &id, &attachments)
            })
            .await;
        if let Err(e) = recorded {
            self.drop_snapshot(&run_id).await;
            return Err(LaunchError::Internal(format!("cannot record the run: {e}")));
        }
        self.spawn_drive(run_id.clone(), false);
        Ok(run_id)
    }

    /// Drives a run on its own task; a driver that stops on an internal error still
    /// ends the run (failed, with the error) and tells the clients.
    fn spawn_drive(self: &Arc<Self>, run_id: String, resumed: bool) {
        let (done_tx, done_rx) = watch::channel(false);
        let scope = RunScope::new();
        lock(&self.runs).insert(
            run_id.clone(),
            RunHandle {
                scope: scope.clone(),
                done: done_rx,
            },
        );
        let sup = self.clone();
        tokio::spawn(async move {
            let id = run_id.clone();
            let kind = sup
                .store
                .call(move |c| Ok(queries::get_run(c, &id)?.map(|r| r.meta)))
                .await;
            let driven = match kind {
                Ok(Some(meta)) if workflow::is_workflow(&meta) => {
                    workflow::drive(&sup, &run_id, resumed, scope.clone()).await
                }
                Ok(Some(meta)) if agent_run::is_agent(&meta) => {
                    agent_run::drive(&sup, &run_id, resumed, scope.clone()).await
                }
                _ => flow::drive(&sup, &run_id, resumed, scope.clone()).await,
            };
            if let Err(e) = driven {
                tracing::error!(run = %run_id, "run stopped on an internal error: {e}");
                // Its steps' agents stop with the run's scope.
                scope.stop(StopReason::ParentEnded);
                finish::fail_on_internal_error(&sup, &run_id, format!("internal error: {e}")).await;
            }
            lock(&sup.runs).remove(&run_id);
            let _ = done_tx.send(true);
        });
    }

    /// Cancels a run. Answers once the run has ended (or after a bound).
    pub async fn cancel(self: &Arc<Self>, run_id: &str) -> Result<RunStatus, CancelError> {
        let local = {
            let runs = lock(&self.runs);
            runs.get(run_id).map(|h| (h.scope.clone(), h.done.clone()))
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
        if let Some((scope, mut done)) = local {
            scope.stop(StopReason::UserCancel);
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

#[cfg(test)]
mod tests;
