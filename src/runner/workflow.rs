//! The workflow driver: runs a workflow script (`crate::workflow::run_workflow`) as a
//! run. The script step (`script`, wave 0) stands for the script itself; every
//! `agent()` call becomes an agent step of the run, started through
//! `Scheduler::start_step` (`Origin::Runtime`, parent `script`, its phase, wave and
//! cache key), or — when its content key has a completed result on this root —
//! recorded at once as `completed` and `cached` with no agent process. A restarted
//! (adopted) run executes the script again from the top: finished agents come back
//! from the cache, unfinished ones run again.

use super::finish::{finish_run_with, Ending};
use super::outbox::{Out, ProgressKind, RosterEntry, RunLog, RunStarted, StepAdded};
use super::prompt::stable_prompt;
use super::scheduler::{end_update, Origin, RunCtx, StartError, StepFacts, StepSpec, StepWork};
use super::scope::{RunScope, StopReason};
use super::state::RunState;
use super::{LaunchError, Supervisor};
use crate::agent::{BoxFuture, ContentBlock};
use crate::catalog::Persona;
use crate::model::{RunStatus, StepKind, StepStatus};
use crate::store::queries::{self, CachedResult, LogRow, NewRuntimeStep, StepEnd, SCRIPT_STEP};
use crate::workflow::{
    self, AgentCall, AgentReply, Budget, ErrorKind, LogKind, LogLine, WorkflowDriver,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The persona of an agent whose `agentType` names none of boo's.
pub const DEFAULT_PERSONA: &str = "workflow-agent";

const DEFAULT_BRIEF: &str = "You answer one question of a larger workflow script about this project. Read what you need, cite files and lines for every claim, and answer exactly what the prompt asks.";

/// A workflow launch, validated by [`Supervisor::launch_workflow`].
#[derive(Debug, Clone)]
pub struct WorkflowLaunch {
    /// The script's source text.
    pub script: String,
    /// The file it came from (`scriptPath`), when it came from one.
    pub path: Option<PathBuf>,
    pub args: Option<Value>,
    pub root: PathBuf,
    pub model: Option<String>,
    /// Output tokens for the whole run.
    pub budget: Option<u64>,
    /// Skip cache look-ups (results are still stored).
    pub fresh: bool,
}

/// `args` as the run's one-line question.
fn args_line(args: Option<&Value>) -> String {
    let line = match args {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let line = line.replace(['\n', '\r', '\0'], " ").trim().to_string();
    if line.is_empty() {
        "(no args)".into()
    } else {
        line
    }
}

impl Supervisor {
    /// Checks a workflow script (syntax and `meta`), creates the run row with its
    /// script step and starts it. A script that does not compile is `Invalid` with
    /// its line and column, and no run row exists.
    pub async fn launch_workflow(
        self: &Arc<Self>,
        req: WorkflowLaunch,
    ) -> Result<String, LaunchError> {
        let meta = workflow::check_syntax(&req.script)
            .map_err(|e| LaunchError::Invalid(format!("script: {e}")))?;
        if let Some(problem) = req
            .model
            .as_deref()
            .and_then(crate::agent::qwen::model_name_problem)
        {
            return Err(LaunchError::Invalid(format!("model: {problem}")));
        }
        let root = req.root.canonicalize().map_err(|e| {
            LaunchError::Invalid(format!(
                "root: {} is not a readable directory ({e})",
                req.root.display()
            ))
        })?;
        if !root.is_dir() {
            return Err(LaunchError::Invalid(format!(
                "root: {} is not a readable directory",
                root.display()
            )));
        }
        self.scheduler
            .backend
            .check()
            .await
            .map_err(|e| LaunchError::Unavailable(e.0))?;
        let source = match &req.path {
            Some(p) if p.starts_with(&root) => "project",
            _ => "user",
        };
        let run_id = uuid::Uuid::now_v7().to_string();
        let mut wf = json!({
            "name": meta.name,
            "source": source,
            "path": req.path.as_ref().map(|p| p.display().to_string()),
            "budget": { "total": req.budget },
        });
        if let Some(a) = &req.args {
            wf["args"] = a.clone();
        }
        let new = queries::NewWorkflowRun {
            run_id: run_id.clone(),
            name: meta.name.clone(),
            description: meta.description.clone(),
            root: root.display().to_string(),
            question: args_line(req.args.as_ref()),
            model: req
                .model
                .clone()
                .or_else(|| self.config.default_model.clone()),
            owner_id: self.owner_id.clone(),
            meta: json!({
                "kind": "workflow",
                "workflow": wf,
                "script": req.script,
                "fresh": req.fresh,
            }),
        };
        self.take_snapshot(&run_id, &root).await?;
        if let Err(e) = self
            .store
            .call(move |c| queries::insert_workflow_run(c, &new))
            .await
        {
            self.drop_snapshot(&run_id).await;
            return Err(LaunchError::Internal(format!("cannot record the run: {e}")));
        }
        self.spawn_drive(run_id.clone(), false);
        Ok(run_id)
    }
}

/// Whether a run row is a workflow run.
pub fn is_workflow(meta: &Value) -> bool {
    meta.get("kind").and_then(Value::as_str) == Some("workflow")
}

/// Drives a workflow run until it ends here (or is handed over).
pub(super) async fn drive(
    sup: &Arc<Supervisor>,
    run_id: &str,
    resumed: bool,
    scope: RunScope,
) -> Result<(), String> {
    if resumed {
        let id = run_id.to_string();
        sup.store
            .call(move |c| queries::restart_workflow(c, &id))
            .await
            .map_err(|e| e.to_string())?;
    }
    let id = run_id.to_string();
    let (row, log_seq) = sup
        .store
        .call(move |c| {
            let row = queries::get_run(c, &id)?
                .ok_or_else(|| crate::store::StoreError::Data(format!("run {id} is gone")))?;
            Ok((row, queries::last_log_seq(c, &id)?))
        })
        .await
        .map_err(|e| e.to_string())?;
    let state = RunState::load(&sup.store, run_id).await?;
    if state.cancel_requested {
        scope.stop(StopReason::UserCancel);
    }
    let script = row
        .meta
        .get("script")
        .and_then(Value::as_str)
        .ok_or("the workflow run has no script stored")?
        .to_string();
    let wf = row.meta.get("workflow").cloned().unwrap_or(Value::Null);
    let args = wf.get("args").cloned();
    let budget_total = wf.pointer("/budget/total").and_then(Value::as_u64);
    let fresh = row.meta.get("fresh").and_then(Value::as_bool) == Some(true);
    announce(sup, &state, resumed);

    let root = state.root.clone();
    let workdir = sup.run_snapshot(run_id, &root).await?.workdir;
    let sched = sup.scheduler.clone();
    let fp_root = workdir.clone();
    let project =
        tokio::task::spawn_blocking(move || sched.fingerprints.fingerprint(&fp_root).digest())
            .await
            .map_err(|e| e.to_string())?;
    let personas = sup.catalog(Some(&root)).personas;
    let ctx = RunCtx {
        run_id: run_id.to_string(),
        root: root.clone(),
        workdir,
        model: state.model.clone(),
        scope: scope.clone(),
    };
    let driver = Arc::new_cyclic(|me| RunDriver {
        me: me.clone(),
        sup: sup.clone(),
        ctx,
        personas,
        project,
        fresh,
        budget_total,
        spent: AtomicU64::new(0),
        log_seq: AtomicU64::new(log_seq),
        seen: Mutex::new(HashMap::new()),
        rt: tokio::runtime::Handle::current(),
    });
    let cancel = CancellationToken::new();
    let watcher = {
        let (scope, cancel) = (scope.clone(), cancel.clone());
        tokio::spawn(async move {
            scope.stopped().await;
            cancel.cancel();
        })
    };
    let limits = workflow::Limits {
        cpu_time: sup.config.workflow_cpu_time,
        ..Default::default()
    };
    let outcome = workflow::run_workflow(script, args, driver, limits, cancel).await;
    watcher.abort();
    if scope.hands_over() {
        return Ok(());
    }
    let (status, end, ending, error) = match outcome {
        Ok(value) => {
            let rendered = render_value(&value);
            (
                RunStatus::Completed,
                StepEnd {
                    status: Some(StepStatus::Completed),
                    output: Some(rendered.clone()),
                    ..Default::default()
                },
                Ending {
                    report_head: Some(format!("## Result\n\n{rendered}")),
                    result: Some(value),
                },
                None,
            )
        }
        Err(e) => {
            let cancelled = e.kind == ErrorKind::Cancelled || scope.is_stopped();
            let (run_status, step_status) = if cancelled {
                (RunStatus::Cancelled, StepStatus::Cancelled)
            } else {
                (RunStatus::Failed, StepStatus::Failed)
            };
            let msg = e.to_string();
            (
                run_status,
                StepEnd {
                    status: Some(step_status),
                    error: Some(msg.clone()),
                    ..Default::default()
                },
                Ending::default(),
                Some(msg),
            )
        }
    };
    let (rid, row_end, result) = (run_id.to_string(), end.clone(), ending.result.clone());
    let at = sup
        .store
        .call(move |c| {
            let at = queries::finish_step(c, &rid, SCRIPT_STEP, &row_end)?;
            if let Some(v) = &result {
                queries::set_run_result(c, &rid, v)?;
            }
            Ok(at)
        })
        .await
        .map_err(|e| e.to_string())?;
    let state = RunState::load(&sup.store, run_id).await?;
    let update = end_update(
        run_id,
        SCRIPT_STEP,
        &StepFacts {
            performer: &state.flow,
            kind: StepKind::Script,
            label: state.title.as_deref().unwrap_or_default(),
            wave: 0,
        },
        &end,
        None,
        at,
    );
    finish_run_with(sup, &state, status, vec![update], error, ending).await
}

/// The return value in the report: a string as Markdown, anything else as JSON.
fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => format!(
            "```json\n{}\n```",
            serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string())
        ),
    }
}

/// `boo/runStarted` with the script step, and the start of `$/progress`.
fn announce(sup: &Supervisor, state: &RunState, resumed: bool) {
    sup.emit(Out::RunStarted(RunStarted {
        run_id: state.run_id.clone(),
        flow: state.flow.clone(),
        band: state.band,
        question: state.question.clone(),
        root: state.root.display().to_string(),
        status: RunStatus::Running,
        title: state.title.clone().unwrap_or_default(),
        created_at: state.created_at.clone(),
        resumed,
        steps: state
            .steps
            .iter()
            .filter(|s| s.step.step_id == SCRIPT_STEP)
            .map(|s| RosterEntry {
                step_id: s.step.step_id.clone(),
                agent: s.step.agent.clone(),
                kind: s.step.kind,
                label: s.step.label.clone(),
                wave: 0,
                chat_id: None,
                status: StepStatus::Running,
            })
            .collect(),
    }));
    sup.emit(Out::Progress {
        run_id: state.run_id.clone(),
        kind: ProgressKind::Begin {
            title: format!("boo: workflow {}", state.flow),
            message: "script running".into(),
        },
    });
}

/// The content key of one agent attempt (PROTOCOL.md, "Cache"): SHA-256 of the
/// canonical JSON (keys sorted, no spaces) of the prompt, the options without
/// `label` and `phase`, the persona's brief, the model, the project's fingerprint
/// digest and `n`.
pub fn cache_key(
    prompt: &str,
    opts: &Value,
    brief: &str,
    model: Option<&str>,
    project: &str,
    n: u32,
) -> String {
    let mut opts = opts.clone();
    if let Some(o) = opts.as_object_mut() {
        o.remove("label");
        o.remove("phase");
    }
    let doc = json!({
        "prompt": prompt,
        "opts": opts,
        "brief": brief,
        "model": model,
        "project": project,
        "n": n,
    });
    let canonical = canonical_json(&doc);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted at every level and no insignificant whitespace.
fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            let parts: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// The run's side of the driver seam.
struct RunDriver {
    /// Itself, for the futures `agent()` returns.
    me: std::sync::Weak<RunDriver>,
    sup: Arc<Supervisor>,
    ctx: RunCtx,
    personas: BTreeMap<String, Persona>,
    /// The project fingerprint's digest, taken when the script (re)started.
    project: String,
    fresh: bool,
    budget_total: Option<u64>,
    /// Output tokens of the agents this script ran (cached answers cost nothing).
    spent: AtomicU64,
    log_seq: AtomicU64,
    /// Key without `n` → how many calls had it.
    seen: Mutex<HashMap<String, u32>>,
    rt: tokio::runtime::Handle,
}

impl RunDriver {
    fn budget_now(&self) -> Budget {
        Budget {
            total: self.budget_total,
            spent: self.spent.load(Ordering::SeqCst),
        }
    }

    async fn run_agent(self: Arc<Self>, call: AgentCall) -> AgentReply {
        if self.budget_now().exhausted() {
            return AgentReply::BudgetExhausted;
        }
        let persona = call
            .opts
            .agent_type
            .as_deref()
            .and_then(|t| self.personas.get(t));
        let (name, title, brief) = match persona {
            Some(p) => (p.name.clone(), p.title.clone(), p.brief.clone()),
            None => (
                DEFAULT_PERSONA.to_string(),
                "Workflow agent".to_string(),
                DEFAULT_BRIEF.to_string(),
            ),
        };
        let model = call
            .opts
            .model
            .clone()
            .filter(|m| !matches!(m.as_str(), "haiku" | "sonnet" | "opus" | "inherit"))
            .or_else(|| self.ctx.model.clone());
        let base = cache_key(
            &call.prompt,
            &call.opts.raw,
            &brief,
            model.as_deref(),
            &self.project,
            0,
        );
        let n = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let e = seen.entry(base).or_insert(0);
            *e += 1;
            *e - 1
        };
        let key = cache_key(
            &call.prompt,
            &call.opts.raw,
            &brief,
            model.as_deref(),
            &self.project,
            n,
        );
        let step_id = if call.attempt > 1 {
            format!("agent-{}.{}", call.index + 1, call.attempt)
        } else {
            format!("agent-{}", call.index + 1)
        };
        let row = NewRuntimeStep {
            step_id: step_id.clone(),
            kind: StepKind::Agent,
            agent: name.clone(),
            label: call.label.clone(),
            wave: call.wave,
            chat_id: None,
            parent_step_id: Some(SCRIPT_STEP.to_string()),
            phase: call.phase.clone(),
            cache_key: Some(key.clone()),
        };
        let store = &self.sup.store;
        let (rid, sid) = (self.ctx.run_id.clone(), step_id.clone());
        let root = self.ctx.root.display().to_string();
        // A restarted script meets the rows of its earlier life under the same ids.
        let (r2, k2, fresh) = (root.clone(), key.clone(), self.fresh);
        let hit = store
            .call(move |c| {
                queries::delete_step(c, &rid, &sid)?;
                if fresh {
                    Ok(None)
                } else {
                    queries::cache_get(c, &r2, &k2)
                }
            })
            .await;
        let hit = match hit {
            Ok(h) => h,
            Err(e) => return failed(format!("cannot read the workflow cache: {e}")),
        };
        if let Some(hit) = hit {
            return self.answer_from_cache(row, hit).await;
        }
        let prompt = stable_prompt(&title, &brief, &call.label, &call.prompt);
        let spec = StepSpec {
            step_id: step_id.clone(),
            label: call.label.clone(),
            wave: call.wave,
            work: StepWork::Agent {
                persona: name,
                prompts: vec![vec![ContentBlock::Text(prompt)]],
            },
            origin: Origin::Runtime,
            parent_step_id: Some(SCRIPT_STEP.to_string()),
            phase: call.phase.clone(),
            cache_key: Some(key.clone()),
        };
        let handle = match self.sup.scheduler.start_step(&self.ctx, spec).await {
            Ok(h) => h,
            Err(StartError::NotOwned) => {
                self.ctx.scope.stop(StopReason::LeaseLost);
                return failed("the run's lease is held by another server".into());
            }
            Err(e) => return failed(e.to_string()),
        };
        let ended = handle.await;
        if let Some(update) = ended.update {
            self.sup.emit(Out::StepUpdated(update));
        }
        self.spent
            .fetch_add(ended.end.usage.output_tokens, Ordering::SeqCst);
        match (ended.end.status, ended.end.output) {
            (Some(StepStatus::Completed), Some(text)) => {
                let value = CachedResult {
                    output: text.clone(),
                    usage: ended.end.usage,
                };
                let (rid, sid) = (self.ctx.run_id.clone(), step_id);
                let stored = store
                    .call(move |c| queries::cache_put(c, &root, &key, &value, &rid, &sid))
                    .await;
                if let Err(e) = stored {
                    tracing::warn!(run = %self.ctx.run_id, "cannot store a workflow agent's result in the cache: {e}");
                }
                AgentReply::Completed { text }
            }
            (_, _) => failed(
                ended
                    .end
                    .error
                    .unwrap_or_else(|| "the agent ended without an answer".into()),
            ),
        }
    }

    /// Records a cache hit as a completed, cached step (no agent process).
    async fn answer_from_cache(&self, row: NewRuntimeStep, hit: CachedResult) -> AgentReply {
        let (rid, owner) = (self.ctx.run_id.clone(), self.sup.owner_id.clone());
        let (r2, h2) = (row.clone(), hit.clone());
        let at = self
            .sup
            .store
            .call(move |c| queries::insert_cached_step(c, &rid, &owner, &r2, &h2))
            .await;
        let at = match at {
            Ok(Some(at)) => at,
            Ok(None) => {
                self.ctx.scope.stop(StopReason::LeaseLost);
                return failed("the run's lease is held by another server".into());
            }
            Err(e) => return failed(format!("cannot record a cached step: {e}")),
        };
        self.sup.emit(Out::StepAdded(StepAdded {
            run_id: self.ctx.run_id.clone(),
            step_id: row.step_id.clone(),
            agent: row.agent.clone(),
            kind: StepKind::Agent,
            label: row.label.clone(),
            phase: row.phase.clone(),
            wave: row.wave,
            chat_id: None,
            status: StepStatus::Completed,
            cached: true,
            parent_step_id: row.parent_step_id.clone(),
        }));
        let end = StepEnd {
            status: Some(StepStatus::Completed),
            output: Some(hit.output.clone()),
            usage: hit.usage,
            ..Default::default()
        };
        let mut update = end_update(
            &self.ctx.run_id,
            &row.step_id,
            &StepFacts {
                performer: &row.agent,
                kind: StepKind::Agent,
                label: &row.label,
                wave: row.wave,
            },
            &end,
            None,
            at.clone(),
        );
        update.started_at = Some(at);
        self.sup.emit(Out::StepUpdated(update));
        AgentReply::Completed { text: hit.output }
    }
}

fn failed(error: String) -> AgentReply {
    AgentReply::Failed { error }
}

impl WorkflowDriver for RunDriver {
    fn agent(&self, call: AgentCall) -> BoxFuture<'static, AgentReply> {
        // The engine holds the driver in an Arc; the future needs its own handle.
        let me = self.me.upgrade();
        Box::pin(async move {
            match me {
                Some(me) => me.run_agent(call).await,
                None => failed("the run is ending".into()),
            }
        })
    }

    fn budget(&self) -> Budget {
        self.budget_now()
    }

    fn log(&self, line: LogLine) {
        let kind = match line.kind {
            LogKind::Log => "log",
            LogKind::Phase => "phase",
            // Console lines go to the server log only.
            LogKind::Console(level) => {
                tracing::info!(run = %self.ctx.run_id, ?level, "workflow console: {}", line.message);
                return;
            }
        };
        let seq = self.log_seq.fetch_add(1, Ordering::SeqCst) + 1;
        let row = LogRow {
            seq,
            kind: kind.to_string(),
            message: line.message,
            at: crate::clock::now_rfc3339(),
        };
        self.sup.emit(Out::RunLog(RunLog {
            run_id: self.ctx.run_id.clone(),
            seq,
            kind: row.kind.clone(),
            message: row.message.clone(),
            at: row.at.clone(),
        }));
        let (store, rid) = (self.sup.store.clone(), self.ctx.run_id.clone());
        self.rt.spawn(async move {
            if let Err(e) = store
                .call(move |c| queries::insert_log(c, &rid, &row))
                .await
            {
                tracing::warn!("cannot store a workflow log line: {e}");
            }
        });
    }

    fn workflow_source(&self, name_or_ref: &str) -> Result<String, String> {
        let path = Path::new(name_or_ref);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.ctx.root.join(path)
        };
        std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "no workflow at {} ({e}); name a .js file relative to the project root",
                path.display()
            )
        })
    }
}
