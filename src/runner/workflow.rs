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
use super::scheduler::{
    end_update, AttachmentChoice, Origin, RunCtx, StartError, StepFacts, StepSpec, StepWork,
};
use super::scope::{RunScope, StopReason};
use super::state::RunState;
use super::{LaunchError, Supervisor};
use crate::agent::{BoxFuture, ContentBlock};
use crate::catalog::workflows::{
    read_project_script, WorkflowCatalog, WorkflowDirs, WorkflowEntry, WorkflowSource,
};
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

/// Which script a launch runs.
#[derive(Debug, Clone)]
pub enum ScriptRef {
    /// The source text itself (`script`).
    Text(String),
    /// A file (`scriptPath`; relative to the root unless absolute). Naming a file is
    /// the user's own choice, so it needs no trust; it is read like a catalog file
    /// (a regular file, at most the catalog's cap).
    Path(PathBuf),
    /// A name from the workflow catalog (`workflow`): built-in, user or project; a
    /// project one runs only in a trusted root.
    Named(String),
}

/// A workflow launch, validated by [`Supervisor::launch_workflow`].
#[derive(Debug, Clone)]
pub struct WorkflowLaunch {
    pub script: ScriptRef,
    pub args: Option<Value>,
    pub root: PathBuf,
    pub model: Option<String>,
    /// Output tokens for the whole run.
    pub budget: Option<u64>,
    /// Skip cache look-ups (results are still stored).
    pub fresh: bool,
    /// Images for the agents (checked by `Supervisor::intake_attachments`).
    pub attachments: Vec<crate::attach::AttachmentInput>,
    /// This run's model takes images (`None`: `RunnerConfig::vision_model`).
    pub vision: Option<bool>,
}

/// Whether `file` lies in the root's `.boo/` or `.claude/` folder (where a
/// repository keeps the flows and workflows it brings).
fn in_project_config(file: &Path, root: &Path) -> bool {
    file.strip_prefix(root)
        .ok()
        .and_then(|rel| rel.components().next())
        .is_some_and(|c| c.as_os_str() == ".boo" || c.as_os_str() == ".claude")
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

/// A script ready to run: its text and where it came from.
struct Resolved {
    script: String,
    /// The name the run is listed under (a catalog name, else `meta.name`).
    name: Option<String>,
    source: WorkflowSource,
    path: Option<String>,
}

/// Resolves a model a workflow agent asks for (`opts.model`) to the model it runs
/// with: no model and Claude Code's `inherit` mean the run's model; a name in the
/// alias table means what the table says; Claude Code's `haiku`, `sonnet`, `opus`
/// and any `claude-…` model id mean the run's model (a local endpoint serves none of
/// them); any other name is one the endpoint serves and is passed on as it is.
pub fn resolve_model(
    requested: Option<&str>,
    aliases: &BTreeMap<String, String>,
    run_model: Option<&str>,
) -> Result<Option<String>, String> {
    let Some(m) = requested.map(str::trim).filter(|m| !m.is_empty()) else {
        return Ok(run_model.map(String::from));
    };
    if let Some(to) = aliases.get(m) {
        return Ok(Some(to.clone()));
    }
    if matches!(m, "inherit" | "haiku" | "sonnet" | "opus") || m.starts_with("claude-") {
        return Ok(run_model.map(String::from));
    }
    match crate::agent::qwen::model_name_problem(m) {
        Some(problem) => Err(format!("model {m:?}: {problem}")),
        None => Ok(Some(m.to_string())),
    }
}

impl Supervisor {
    /// Where this server looks for workflows on `root`.
    pub fn workflow_catalog(&self, root: Option<&Path>) -> WorkflowCatalog {
        WorkflowCatalog::load(WorkflowDirs {
            builtin_dir: self.catalog_dir.as_deref(),
            user_dir: self.config.user_workflows.as_deref(),
            root,
        })
    }

    /// Whether the user trusts `root` (canonical).
    async fn root_trusted(&self, root: &Path) -> Result<bool, LaunchError> {
        let key = root.display().to_string();
        self.store
            .call(move |c| queries::is_trusted(c, &key))
            .await
            .map_err(|e| LaunchError::Internal(e.to_string()))
    }

    /// Reads the script a launch names (off the async threads: it touches files).
    async fn resolve_script(
        self: &Arc<Self>,
        script: ScriptRef,
        root: &Path,
    ) -> Result<Resolved, LaunchError> {
        let (me, root2) = (self.clone(), root.to_path_buf());
        let resolved = tokio::task::spawn_blocking(move || match script {
            ScriptRef::Text(text) => Ok(Resolved {
                script: text,
                name: None,
                source: WorkflowSource::User,
                path: None,
            }),
            ScriptRef::Path(p) => {
                let file = if p.is_absolute() { p } else { root2.join(p) };
                let text = match crate::project::read_regular(&file, crate::catalog::FILE_CAP + 1) {
                    Ok(Some(b)) if b.len() as u64 > crate::catalog::FILE_CAP => Err(format!(
                        "{} is larger than {} KiB; a workflow script is a few KiB",
                        file.display(),
                        crate::catalog::FILE_CAP / 1024
                    )),
                    Ok(Some(b)) => String::from_utf8(b)
                        .map_err(|_| format!("{} is not UTF-8 text; save it as UTF-8", file.display())),
                    Ok(None) => Err(format!(
                        "{} is not a regular file (a symbolic link, a FIFO or a device); name the script file itself",
                        file.display()
                    )),
                    Err(e) => Err(format!("cannot read {} ({e})", file.display())),
                }
                .map_err(|m| LaunchError::Invalid(format!("scriptPath: {m}; send the path of a readable .js file")))?;
                let abs = file.canonicalize().unwrap_or(file);
                Ok(Resolved {
                    script: text,
                    name: None,
                    source: if abs.starts_with(&root2) {
                        WorkflowSource::Project
                    } else {
                        WorkflowSource::User
                    },
                    path: Some(abs.display().to_string()),
                })
            }
            ScriptRef::Named(name) => {
                let cat = me.workflow_catalog(Some(&root2));
                match cat.get(name.trim()) {
                    Some(WorkflowEntry {
                        name,
                        source,
                        path,
                        script,
                        ..
                    }) => Ok(Resolved {
                        script: script.clone(),
                        name: Some(name.clone()),
                        source: *source,
                        path: Some(path.clone()),
                    }),
                    None => Err(LaunchError::Invalid(format!(
                        "workflow: unknown workflow {name:?}; known workflows: {} (boo/listWorkflows lists them with their problems)",
                        cat.names()
                    ))),
                }
            }
        })
        .await
        .map_err(|e| LaunchError::Internal(format!("reading the workflow failed: {e}")))??;
        Ok(resolved)
    }

    /// Checks a workflow script (syntax and `meta`), creates the run row with its
    /// script step and starts it. A script that does not compile is `Invalid` with
    /// its line and column, and no run row exists; a project workflow named from the
    /// catalog in an untrusted root is `UntrustedWorkflow`.
    pub async fn launch_workflow(
        self: &Arc<Self>,
        req: WorkflowLaunch,
    ) -> Result<String, LaunchError> {
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
        let attachments = self
            .intake_attachments(
                req.attachments.clone(),
                root.clone(),
                req.vision,
                req.model.clone(),
            )
            .await?;
        let named = matches!(req.script, ScriptRef::Named(_));
        let resolved = self.resolve_script(req.script.clone(), &root).await?;
        let meta = workflow::check_syntax(&resolved.script).map_err(|e| {
            LaunchError::Invalid(if named {
                format!(
                    "workflow: {} does not load: {e}",
                    resolved.path.as_deref().unwrap_or("the script")
                )
            } else {
                format!("script: {e}")
            })
        })?;
        let name = resolved.name.clone().unwrap_or_else(|| meta.name.clone());
        // A project workflow needs a trusted root whether it is named from the catalog
        // or given by its path in the folders the catalog reads (`.boo/`, `.claude/`):
        // those are the repository's own workflows. A path elsewhere is the user's pick.
        let from_project_folder = !named
            && resolved.source == WorkflowSource::Project
            && resolved
                .path
                .as_deref()
                .is_some_and(|p| in_project_config(Path::new(p), &root));
        if (named || from_project_folder)
            && resolved.source == WorkflowSource::Project
            && !self.root_trusted(&root).await?
        {
            return Err(LaunchError::UntrustedWorkflow {
                workflow: name,
                path: resolved.path.clone().unwrap_or_default(),
                root: root.display().to_string(),
            });
        }
        self.scheduler
            .backend
            .check()
            .await
            .map_err(|e| LaunchError::Unavailable(e.0))?;
        let run_id = uuid::Uuid::now_v7().to_string();
        let phases: Vec<Value> = meta
            .phases
            .iter()
            .map(|p| json!({ "title": p.title, "detail": p.detail }))
            .collect();
        let mut wf = json!({
            "name": name,
            "description": meta.description,
            "phases": phases,
            "source": resolved.source.as_str(),
            "path": resolved.path,
            "budget": { "total": req.budget },
        });
        if let Some(a) = &req.args {
            wf["args"] = a.clone();
        }
        let new = queries::NewWorkflowRun {
            run_id: run_id.clone(),
            name,
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
                "script": resolved.script,
                "fresh": req.fresh,
            }),
        };
        self.take_snapshot(&run_id, &root).await?;
        let id = run_id.clone();
        if let Err(e) = self
            .store
            .call(move |c| {
                queries::insert_workflow_run(c, &new)?;
                queries::insert_run_attachments(c, &id, &attachments)
            })
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
    let (row, log_seq, earlier_log) = sup
        .store
        .call(move |c| {
            let row = queries::get_run(c, &id)?
                .ok_or_else(|| crate::store::StoreError::Data(format!("run {id} is gone")))?;
            Ok((
                row,
                queries::last_log_seq(c, &id)?,
                queries::get_log(c, &id)?,
            ))
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
    // The catalogs read the project's files: off the async threads.
    let (me, cat_root) = (sup.clone(), root.clone());
    let (personas, workflows) = tokio::task::spawn_blocking(move || {
        (
            me.catalog(Some(&cat_root)).personas,
            me.workflow_catalog(Some(&cat_root)),
        )
    })
    .await
    .map_err(|e| e.to_string())?;
    let key = root.display().to_string();
    let trusted = sup
        .store
        .call(move |c| queries::is_trusted(c, &key))
        .await
        .map_err(|e| e.to_string())?;
    let rid = run_id.to_string();
    let attachments = sup
        .store
        .call(move |c| queries::run_attachments(c, &rid))
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|a| (a.name, a.sha256))
        .collect();
    let ctx = sup.scheduler.run_ctx(
        run_id,
        root.clone(),
        workdir,
        state.model.clone(),
        scope.clone(),
    );
    let driver = Arc::new_cyclic(|me| RunDriver {
        me: me.clone(),
        sup: sup.clone(),
        ctx,
        personas,
        workflows,
        trusted,
        project,
        fresh,
        resumed,
        budget_total,
        spent: AtomicU64::new(0),
        agents_done: AtomicU64::new(0),
        agents_cached: AtomicU64::new(0),
        log_seq: AtomicU64::new(log_seq),
        replay: Mutex::new(
            earlier_log
                .into_iter()
                .map(|l| (l.kind, l.message))
                .collect(),
        ),
        seen: Mutex::new(HashMap::new()),
        rt: tokio::runtime::Handle::current(),
        attachments,
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
        band: None,
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
    /// What `workflow(name)` may run, loaded when the script (re)started.
    workflows: WorkflowCatalog,
    /// Whether the root is trusted (project workflows run only then).
    trusted: bool,
    /// The project fingerprint's digest, taken when the script (re)started.
    project: String,
    fresh: bool,
    /// The script restarted (adoption after a crash).
    resumed: bool,
    budget_total: Option<u64>,
    /// Output tokens of the agents this script ran (cached answers cost nothing).
    spent: AtomicU64,
    /// Agents that ended (completed, failed or cached) and of those, cached ones.
    agents_done: AtomicU64,
    agents_cached: AtomicU64,
    log_seq: AtomicU64,
    /// The log of the script's earlier life (a restarted run): the same lines, in the
    /// same order, are not written again; the first line that differs ends the replay.
    replay: Mutex<std::collections::VecDeque<(String, String)>>,
    /// Key without `n` → how many calls had it.
    seen: Mutex<HashMap<String, u32>>,
    rt: tokio::runtime::Handle,
    /// The run's attachments: name and SHA-256, in launch order.
    attachments: Vec<(String, String)>,
}

impl RunDriver {
    fn budget_now(&self) -> Budget {
        Budget {
            total: self.budget_total,
            spent: self.spent.load(Ordering::SeqCst),
        }
    }

    /// The synchronous part of an agent attempt: its persona, model and content key.
    /// Called in the order the script made its calls, so `n` (identical calls before
    /// this one) follows the script, never the order agents happen to start in.
    fn prepare(&self, call: &AgentCall) -> Result<Prepared, String> {
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
        let model = resolve_model(
            call.opts.model.as_deref(),
            &self.sup.config.model_aliases,
            self.ctx.model.as_deref(),
        )?;
        // What the call asked for besides the prompt, recorded on its step.
        let asked = (call.opts.model.is_some() || call.opts.effort.is_some()).then(|| {
            json!({ "workflow": {
                "model": call.opts.model,
                "modelUsed": model,
                "effort": call.opts.effort,
                "effortApplied": false,
            } })
        });
        let (attachments, opts) = self.attachments_for(call)?;
        let base = cache_key(
            &call.prompt,
            &opts,
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
            &opts,
            &brief,
            model.as_deref(),
            &self.project,
            n,
        );
        Ok(Prepared {
            name,
            title,
            brief,
            model,
            asked,
            key,
            attachments,
        })
    }

    /// Which of the run's images an `agent()` call takes (`opts.attachments`: names
    /// of the run's attachments; absent: all of them), and the options its content
    /// key is made of: with the images' SHA-256s, so an answer about one image is
    /// never served for another.
    fn attachments_for(&self, call: &AgentCall) -> Result<(AttachmentChoice, Value), String> {
        let choice = match &call.opts.attachments {
            None => AttachmentChoice::All,
            Some(items) => {
                let mut names = Vec::new();
                for item in items {
                    let Some(name) = item.as_str() else {
                        return Err(format!(
                            "agent(prompt, opts?): opts.attachments lists names of the run's attachments (strings), got {item}"
                        ));
                    };
                    if !self.attachments.iter().any(|(n, _)| n == name) {
                        let known: Vec<&str> =
                            self.attachments.iter().map(|(n, _)| n.as_str()).collect();
                        return Err(format!(
                            "agent(prompt, opts?): opts.attachments names {name:?}, which this run was not launched with (its attachments: {})",
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ));
                    }
                    names.push(name.to_string());
                }
                if names.is_empty() {
                    AttachmentChoice::Nothing
                } else {
                    AttachmentChoice::Named(names)
                }
            }
        };
        let images: Vec<&str> = self
            .attachments
            .iter()
            .filter(|(n, _)| choice.takes(n))
            .map(|(_, sha)| sha.as_str())
            .collect();
        let mut opts = call.opts.raw.clone();
        if !images.is_empty() {
            if let Some(o) = opts.as_object_mut() {
                o.insert("boo:images".into(), json!(images));
            } else {
                opts = json!({ "boo:images": images });
            }
        }
        Ok((choice, opts))
    }

    async fn run_agent(self: Arc<Self>, call: AgentCall, prepared: Prepared) -> AgentReply {
        if self.budget_now().exhausted() {
            return AgentReply::BudgetExhausted;
        }
        let Prepared {
            name,
            title,
            brief,
            model,
            asked,
            key,
            attachments,
        } = prepared;
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
            meta: None,
        };
        let store = &self.sup.store;
        let (rid, sid) = (self.ctx.run_id.clone(), step_id.clone());
        let root = self.ctx.root.display().to_string();
        // A restarted script meets the rows of its earlier life under the same ids.
        let (r2, k2, fresh, resumed) = (root.clone(), key.clone(), self.fresh, self.resumed);
        let hit = store
            .call(move |c| {
                queries::delete_step(c, &rid, &sid)?;
                match (fresh, resumed) {
                    (false, _) => queries::cache_get(c, &r2, &k2),
                    // A fresh run that restarted: its own finished agents come back.
                    (true, true) => queries::cache_get_from_run(c, &r2, &k2, &rid),
                    (true, false) => Ok(None),
                }
            })
            .await;
        let hit = match hit {
            Ok(h) => h,
            Err(e) => return failed(format!("cannot read the workflow cache: {e}")),
        };
        if let Some(hit) = hit {
            return self.answer_from_cache(row, hit, asked).await;
        }
        let prompt = stable_prompt(&title, &brief, &call.label, &call.prompt);
        let spec = StepSpec {
            step_id: step_id.clone(),
            label: call.label.clone(),
            wave: call.wave,
            work: StepWork::Agent {
                persona: name,
                prompts: vec![vec![ContentBlock::Text(prompt)]],
                attachments,
                spawn: false,
            },
            origin: Origin::Runtime,
            parent_step_id: Some(SCRIPT_STEP.to_string()),
            phase: call.phase.clone(),
            cache_key: Some(key.clone()),
            meta: None,
        };
        let mut ctx = self.ctx.clone();
        ctx.model = model;
        let handle = match self.sup.scheduler.start_step(&ctx, spec).await {
            Ok(h) => h,
            Err(StartError::NotOwned) => {
                self.ctx.scope.stop(StopReason::LeaseLost);
                return failed("the run's lease is held by another server".into());
            }
            Err(e) => return failed(e.to_string()),
        };
        let ended = handle.await;
        if ended.update.is_none() {
            // Handed over (lease lost, shutdown): nothing was recorded.
            return failed("the run was handed over".into());
        }
        if let Some(patch) = asked {
            let (rid, sid) = (self.ctx.run_id.clone(), step_id.clone());
            if let Err(e) = store
                .call(move |c| queries::merge_step_meta(c, &rid, &sid, &patch))
                .await
            {
                tracing::warn!(run = %self.ctx.run_id, "cannot record an agent's model and effort: {e}");
            }
        }
        if let Some(update) = ended.update {
            self.sup.emit(Out::StepUpdated(update));
        }
        self.spent
            .fetch_add(ended.end.usage.output_tokens, Ordering::SeqCst);
        self.agent_ended(false);
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

    /// `$/progress`: agents ended, cache hits, and tokens against the budget.
    fn agent_ended(&self, cached: bool) {
        let done = self.agents_done.fetch_add(1, Ordering::SeqCst) + 1;
        let hits = if cached {
            self.agents_cached.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.agents_cached.load(Ordering::SeqCst)
        };
        let b = self.budget_now();
        let (tokens, percentage) = match b.total {
            Some(t) => (
                format!("{} / {t} output tokens", b.spent),
                ((b.spent.min(t) * 100) / t.max(1)) as u32,
            ),
            None => (format!("{} output tokens", b.spent), 0),
        };
        self.sup.emit(Out::Progress {
            run_id: self.ctx.run_id.clone(),
            kind: ProgressKind::Report {
                message: format!("{done} agents done ({hits} cached) · {tokens}"),
                percentage,
            },
        });
    }

    /// Records a cache hit as a completed, cached step (no agent process).
    async fn answer_from_cache(
        &self,
        row: NewRuntimeStep,
        hit: CachedResult,
        asked: Option<Value>,
    ) -> AgentReply {
        let (rid, owner) = (self.ctx.run_id.clone(), self.sup.owner_id.clone());
        let (r2, h2) = (row.clone(), hit.clone());
        let at = self
            .sup
            .store
            .call(move |c| {
                let at = queries::insert_cached_step(c, &rid, &owner, &r2, &h2)?;
                if let (Some(_), Some(patch)) = (&at, &asked) {
                    queries::merge_step_meta(c, &rid, &r2.step_id, patch)?;
                }
                Ok(at)
            })
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
        self.agent_ended(true);
        AgentReply::Completed { text: hit.output }
    }
}

fn failed(error: String) -> AgentReply {
    AgentReply::Failed { error }
}

/// What [`RunDriver::prepare`] settled for one attempt.
struct Prepared {
    /// The persona (or [`DEFAULT_PERSONA`]), its title and brief.
    name: String,
    title: String,
    brief: String,
    /// The model the agent runs with.
    model: Option<String>,
    /// `model`/`effort` as asked, for the step's meta.
    asked: Option<Value>,
    /// The content key (with `n`).
    key: String,
    /// The run's images this agent takes.
    attachments: AttachmentChoice,
}

impl WorkflowDriver for RunDriver {
    fn agent(&self, call: AgentCall) -> BoxFuture<'static, AgentReply> {
        let prepared = self.prepare(&call);
        // The engine holds the driver in an Arc; the future needs its own handle.
        let me = self.me.upgrade();
        Box::pin(async move {
            match (me, prepared) {
                (Some(me), Ok(p)) => me.run_agent(call, p).await,
                (_, Err(e)) => failed(e),
                (None, _) => failed("the run is ending".into()),
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
        {
            let mut replay = self.replay.lock().unwrap_or_else(|p| p.into_inner());
            match replay.front() {
                Some((k, m)) if k == kind && *m == line.message => {
                    replay.pop_front();
                    return;
                }
                Some(_) => replay.clear(),
                None => {}
            }
        }
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

    /// A catalog name (a project workflow only in a trusted root), else a `.js` or
    /// `.mjs` file relative to the project root, read like a catalog file.
    fn workflow_source(&self, name_or_ref: &str) -> Result<String, String> {
        let name = name_or_ref.trim();
        if let Some(w) = self.workflows.get(name) {
            if w.source == WorkflowSource::Project && !self.trusted {
                return Err(format!(
                    "{name} is a project workflow ({}) and {} is not trusted; review it, then trust the folder with `boo trust {}`",
                    w.path,
                    self.ctx.root.display(),
                    self.ctx.root.display()
                ));
            }
            return Ok(w.script.clone());
        }
        if name.ends_with(".js") || name.ends_with(".mjs") {
            return read_project_script(&self.ctx.root, name);
        }
        Err(format!(
            "no workflow named {name:?}; known workflows: {}; or name a .js file relative to the project root",
            self.workflows.names()
        ))
    }
}
