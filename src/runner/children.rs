//! Background children: agents an agent step starts through boo's MCP tools
//! (`spawn_subagent`, `subagent_status`, `subagent_result`, served by `boo mcp`).
//!
//! - **Grant.** A step allowed to spawn (`spawn = true`) gets a [`GrantGuard`] from
//!   the scheduler when it starts: a random token, registered here, written only into
//!   that agent's settings (the MCP server entry), revoked when the step's work ends.
//!   Children never get one (depth 1).
//! - **Channel.** [`listen`] binds a Unix socket in boo's private runtime folder (0700,
//!   the socket 0600); each connection carries one call (`mcp.rs` is the other end).
//!   A call without a live token is refused.
//! - **Children.** A child is a runtime step of the same run, `<parent>.sub-<n>`,
//!   started by `Scheduler::start_step` (announced with `boo/stepAdded`), with the
//!   parent's wave and its own persona (default the parent's). Its spawn request is
//!   stored in the row's meta so a resumed run starts it again; a resumed parent that
//!   asks for its n-th child again gets the existing one (no second child).
//! - **Limits.** `RunnerConfig::spawn_per_step` (4) and `spawn_per_run` (16); children
//!   take agent slots like any step; a refusal is a tool error that says why.
//! - **The run waits.** The driver waits for every child before the run ends
//!   ([`RunChildren::wait_all`]); a child outlives its parent step; cancelling the run
//!   cancels its children (their scopes are children of the run's).

use super::outbox::{Out, StepAdded};
use super::prompt::{agent_prompts, stable_prompt};
use super::scheduler::{AttachmentChoice, Origin, RunCtx, StartError, StepSpec, StepWork};
use super::scope::RunScope;
use super::Supervisor;
use crate::agent::McpServer;
use crate::model::{StepKind, StepStatus};
use crate::store::queries::{StepEnd, StepRow};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// The longest a `subagent_result` call waits.
pub const MAX_WAIT_SECONDS: f64 = 30.0;

/// The task a child is given after its persona (the prompt it was spawned with comes
/// last, as the question).
const CHILD_TASK: &str = "Another agent of this run handed you the lead below. Work it through on your own, read-only, and answer with what you found: cite the files and lines that show it. Your answer goes back to that agent and into the run's report.";

/// A prompt longer than this is refused (the model should hand over a lead, not a
/// document).
const MAX_PROMPT_CHARS: usize = 20_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A step's right to spawn, while its work runs.
pub struct Grant {
    pub ctx: RunCtx,
    pub parent: String,
    pub persona: String,
    pub wave: u32,
    /// Spawn calls made under this grant (the `n` of the next child id).
    calls: AtomicUsize,
}

/// Holds a grant; dropping it revokes the token.
pub struct GrantGuard {
    children: Arc<Children>,
    token: String,
    /// The MCP server entry for the step's settings.
    pub server: McpServer,
}

impl Drop for GrantGuard {
    fn drop(&mut self) {
        lock(&self.children.grants).remove(&self.token);
    }
}

/// Every grant and every run's children on this server.
pub struct Children {
    per_step: usize,
    per_run: usize,
    /// The channel's socket and boo's executable, once [`listen`] bound it.
    channel: Mutex<Option<(PathBuf, PathBuf)>>,
    grants: Mutex<HashMap<String, Arc<Grant>>>,
    runs: Mutex<HashMap<String, Arc<RunChildren>>>,
}

impl Drop for Children {
    fn drop(&mut self) {
        if let Some((socket, _)) = lock(&self.channel).take() {
            let _ = std::fs::remove_file(socket);
        }
    }
}

impl Children {
    pub fn new(config: &crate::config::RunnerConfig) -> Arc<Children> {
        Arc::new(Children {
            per_step: config.spawn_per_step,
            per_run: config.spawn_per_run,
            channel: Mutex::new(None),
            grants: Mutex::new(HashMap::new()),
            runs: Mutex::new(HashMap::new()),
        })
    }

    /// A grant for a step allowed to spawn, or `None` when this server has no channel
    /// (the step then runs without the tools, and says so in the log).
    pub fn grant(
        self: &Arc<Self>,
        ctx: &RunCtx,
        parent: &str,
        persona: &str,
        wave: u32,
    ) -> Option<GrantGuard> {
        let Some((socket, program)) = lock(&self.channel).clone() else {
            tracing::warn!(run = %ctx.run_id, step = parent, "boo's channel for background agents is not running; the step runs without spawn_subagent");
            return None;
        };
        let token = match crate::proxy::random_token() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(run = %ctx.run_id, step = parent, "cannot make a token for background agents ({e}); the step runs without spawn_subagent");
                return None;
            }
        };
        lock(&self.grants).insert(
            token.clone(),
            Arc::new(Grant {
                ctx: ctx.clone(),
                parent: parent.to_string(),
                persona: persona.to_string(),
                wave,
                calls: AtomicUsize::new(0),
            }),
        );
        Some(GrantGuard {
            children: self.clone(),
            server: McpServer {
                program,
                socket,
                token: token.clone(),
            },
            token,
        })
    }

    fn grant_of(&self, token: &str) -> Option<Arc<Grant>> {
        lock(&self.grants).get(token).cloned()
    }

    /// The children of a run (an empty set the first time).
    pub fn run(&self, run_id: &str) -> Arc<RunChildren> {
        lock(&self.runs)
            .entry(run_id.to_string())
            .or_insert_with(|| {
                Arc::new(RunChildren {
                    kids: Mutex::new(BTreeMap::new()),
                    changed: watch::channel(0).0,
                    spawning: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Forgets a run that ended here or was handed over.
    pub fn forget(&self, run_id: &str) {
        lock(&self.runs).remove(run_id);
    }
}

/// What this server knows of one child.
#[derive(Debug, Clone)]
struct Kid {
    parent: String,
    status: StepStatus,
    started: Instant,
    finished: Option<Instant>,
    tokens: u64,
    output: Option<String>,
    error: Option<String>,
}

/// The children of one run.
pub struct RunChildren {
    kids: Mutex<BTreeMap<String, Kid>>,
    /// Bumped on every change (a child added or ended).
    changed: watch::Sender<u64>,
    /// One spawn at a time per run, so the limits hold under concurrent calls.
    spawning: tokio::sync::Mutex<()>,
}

impl RunChildren {
    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn insert(&self, id: &str, kid: Kid) {
        lock(&self.kids).insert(id.to_string(), kid);
        self.bump();
    }

    /// Records a child's end (`None`: the run was handed over; nothing was recorded).
    fn end(&self, id: &str, end: Option<&StepEnd>) {
        if let Some(k) = lock(&self.kids).get_mut(id) {
            k.finished = Some(Instant::now());
            match end {
                Some(e) => {
                    k.status = e.status.unwrap_or(StepStatus::Failed);
                    k.tokens = e.usage.total_tokens;
                    k.output = e.output.clone();
                    k.error = e.error.clone();
                }
                None => k.status = StepStatus::Cancelled,
            }
        }
        self.bump();
    }

    fn get(&self, id: &str) -> Option<Kid> {
        lock(&self.kids).get(id).cloned()
    }

    fn count(&self) -> usize {
        lock(&self.kids).len()
    }

    fn count_of(&self, parent: &str) -> usize {
        lock(&self.kids)
            .values()
            .filter(|k| k.parent == parent)
            .count()
    }

    /// How many children have not ended.
    pub fn running_count(&self) -> usize {
        self.running()
    }

    fn running(&self) -> usize {
        lock(&self.kids)
            .values()
            .filter(|k| !k.status.is_terminal())
            .count()
    }

    /// Waits until every child ended. Returns false when the run is handed over
    /// meanwhile (the next owner resumes the children).
    pub async fn wait_all(&self, scope: &RunScope) -> bool {
        let mut rx = self.changed.subscribe();
        loop {
            if scope.hands_over() {
                return false;
            }
            if self.running() == 0 {
                return true;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return true; },
                _ = scope.stopped() => {
                    // A cancel stops the children too; wait for their ends. A
                    // hand-over returns at the top.
                    if scope.hands_over() {
                        return false;
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await;
                }
            }
        }
    }

    /// Waits up to `wait` for a child to end.
    async fn wait_for(&self, id: &str, wait: Duration) {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.get(id).is_none_or(|k| k.status.is_terminal()) {
                return;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// A short label from a prompt: its first line, at most 60 characters.
fn short_label(prompt: &str) -> String {
    let line = prompt
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() <= 60 {
        return line.to_string();
    }
    let cut: String = line.chars().take(59).collect();
    format!("{}…", cut.trim_end())
}

/// What a child's row meta keeps so a resumed run can start it again.
fn spawn_meta(persona: &str, prompt: &str, label: &str, stable: &str) -> Value {
    json!({ "spawned": { "persona": persona, "prompt": prompt, "label": label, "stable": stable } })
}

impl Supervisor {
    /// Registers a driven run's children: the ones a previous owner started come back
    /// from their rows (`rows`: the run's runtime steps with a parent that is not a
    /// workflow's script step). Finished ones are kept as they are and announced again
    /// with `boo/stepAdded`; unfinished ones start again (a new session) through the
    /// scheduler. Returns the run's set.
    pub(super) async fn adopt_children(
        self: &Arc<Self>,
        ctx: &RunCtx,
        rows: Vec<StepRow>,
    ) -> Arc<RunChildren> {
        let kids = self.scheduler.children.run(&ctx.run_id);
        for row in rows {
            let s = row.step;
            let Some(parent) = s.parent_step_id.clone() else {
                continue;
            };
            let kid = Kid {
                parent: parent.clone(),
                status: s.status,
                started: Instant::now(),
                finished: s.status.is_terminal().then(Instant::now),
                tokens: s.usage.total_tokens,
                output: None,
                error: s.error.clone(),
            };
            if s.status.is_terminal() {
                kids.insert(&s.step_id, kid);
                self.emit(Out::StepAdded(StepAdded {
                    run_id: ctx.run_id.clone(),
                    step_id: s.step_id.clone(),
                    agent: s.agent.clone(),
                    kind: s.kind,
                    label: s.label.clone(),
                    phase: None,
                    wave: s.wave,
                    chat_id: s.chat_id.clone(),
                    status: s.status,
                    cached: false,
                    parent_step_id: Some(parent),
                }));
                continue;
            }
            let spawned = s.meta.as_ref().and_then(|m| m.get("spawned")).cloned();
            let field = |k: &str| {
                spawned
                    .as_ref()
                    .and_then(|v| v.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let (Some(stable), Some(prompt)) = (field("stable"), field("prompt")) else {
                tracing::warn!(run = %ctx.run_id, step = %s.step_id, "a background agent's row lacks its spawn request; it cannot start again");
                continue;
            };
            // Announced as pending under its parent, then claimed and started again.
            self.emit(Out::StepAdded(StepAdded {
                run_id: ctx.run_id.clone(),
                step_id: s.step_id.clone(),
                agent: s.agent.clone(),
                kind: StepKind::Agent,
                label: s.label.clone(),
                phase: None,
                wave: s.wave,
                chat_id: s.chat_id.clone(),
                status: s.status,
                cached: false,
                parent_step_id: Some(parent.clone()),
            }));
            let spec = StepSpec {
                step_id: s.step_id.clone(),
                label: s.label.clone(),
                wave: s.wave,
                work: StepWork::Agent {
                    persona: s.agent.clone(),
                    prompts: agent_prompts(&stable, &prompt, &[]),
                    attachments: AttachmentChoice::All,
                    spawn: false,
                },
                origin: Origin::Plan,
                parent_step_id: Some(parent),
                phase: None,
                cache_key: None,
                meta: None,
            };
            kids.insert(&s.step_id, kid);
            if let Err(e) = self.start_child(ctx, &kids, spec).await {
                tracing::warn!(run = %ctx.run_id, step = %s.step_id, "cannot start the background agent again: {e}");
                kids.end(&s.step_id, None);
            }
        }
        kids
    }

    /// Starts a child through the scheduler and follows it to its end.
    async fn start_child(
        self: &Arc<Self>,
        ctx: &RunCtx,
        kids: &Arc<RunChildren>,
        spec: StepSpec,
    ) -> Result<(), String> {
        let id = spec.step_id.clone();
        let parent = spec.parent_step_id.clone().unwrap_or_default();
        let handle = self
            .scheduler
            .start_step(ctx, spec)
            .await
            .map_err(|e| match e {
                StartError::Stopped => {
                    "refused: the run is stopping, so no background agent starts".to_string()
                }
                StartError::NotOwned => {
                    "refused: this server no longer runs the run (it ended or another boo server took it over)".to_string()
                }
                StartError::Store(e) => format!("cannot record the background agent: {e}"),
            })?;
        kids.insert(
            &id,
            Kid {
                parent,
                status: StepStatus::Running,
                started: Instant::now(),
                finished: None,
                tokens: 0,
                output: None,
                error: None,
            },
        );
        let (me, kids) = (self.clone(), kids.clone());
        tokio::spawn(async move {
            let ended = handle.await;
            match ended.update {
                Some(update) => {
                    // The update goes out before the driver can see the child end, so
                    // the run's last notification still comes after it.
                    me.emit(Out::StepUpdated(update));
                    kids.end(&id, Some(&ended.end));
                }
                None => kids.end(&id, None),
            }
        });
        Ok(())
    }

    /// `spawn_subagent`.
    async fn spawn_child(self: &Arc<Self>, grant: &Grant, args: &Value) -> Result<Value, String> {
        let prompt = args
            .get("prompt")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .ok_or("spawn_subagent needs a prompt: the lead to follow, self-contained")?
            .to_string();
        if prompt.contains('\0') {
            return Err("refused: the prompt holds a NUL character; remove it".into());
        }
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(format!(
                "refused: the prompt is longer than {MAX_PROMPT_CHARS} characters; hand over a lead, not a document"
            ));
        }
        let persona = args
            .get("persona")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or(&grant.persona)
            .to_string();
        let label = args
            .get("label")
            .and_then(Value::as_str)
            .map(short_label)
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| short_label(&prompt));
        let ctx = &grant.ctx;
        if ctx.scope.is_stopped() {
            return Err("refused: the run is stopping, so no background agent starts".into());
        }
        let kids = self.scheduler.children.run(&ctx.run_id);
        let _one_at_a_time = kids.spawning.lock().await;
        let n = grant.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("{}.sub-{n}", grant.parent);
        if let Some(k) = kids.get(&id) {
            // A resumed step asks again for a child it started before the restart.
            return Ok(json!({ "agentId": id, "status": k.status.as_str() }));
        }
        let per_step = self.scheduler.children.per_step;
        if kids.count_of(&grant.parent) >= per_step {
            return Err(format!(
                "refused: this step already started {per_step} background agents, the most one step may (BOO_SPAWN_PER_STEP); collect their results with subagent_result and follow further leads yourself"
            ));
        }
        let per_run = self.scheduler.children.per_run;
        if kids.count() >= per_run {
            return Err(format!(
                "refused: this run already started {per_run} background agents, the most one run may (BOO_SPAWN_PER_RUN); follow further leads yourself"
            ));
        }
        let (me, root) = (self.clone(), ctx.root.clone());
        let key = root.display().to_string();
        let trusted = self
            .store
            .call(move |c| crate::store::queries::is_trusted(c, &key))
            .await
            .unwrap_or(false);
        let catalog =
            tokio::task::spawn_blocking(move || me.catalog(trusted.then_some(root.as_path())))
                .await
                .map_err(|e| format!("cannot read the personas: {e}"))?;
        let Some(p) = catalog.personas.get(&persona) else {
            return Err(format!(
                "refused: unknown persona {persona:?}; use one of: {}",
                catalog
                    .personas
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let stable = stable_prompt(&p.title, &p.brief, &label, CHILD_TASK);
        let spec = StepSpec {
            step_id: id.clone(),
            label: label.clone(),
            wave: grant.wave,
            work: StepWork::Agent {
                persona: persona.clone(),
                prompts: agent_prompts(&stable, &prompt, &[]),
                attachments: AttachmentChoice::All,
                // Depth 1: a child never gets the tools.
                spawn: false,
            },
            origin: Origin::Runtime,
            parent_step_id: Some(grant.parent.clone()),
            phase: None,
            cache_key: None,
            meta: Some(spawn_meta(&persona, &prompt, &label, &stable)),
        };
        self.start_child(ctx, &kids, spec).await?;
        Ok(json!({ "agentId": id }))
    }

    /// The child `id` if it belongs to the grant's step.
    fn own_child(
        &self,
        grant: &Grant,
        args: &Value,
    ) -> Result<(String, Kid, Arc<RunChildren>), String> {
        let id = args
            .get("agentId")
            .and_then(Value::as_str)
            .map(str::trim)
            .ok_or("give the agentId that spawn_subagent returned")?
            .to_string();
        let kids = self.scheduler.children.run(&grant.ctx.run_id);
        match kids.get(&id) {
            Some(k) if k.parent == grant.parent => Ok((id, k, kids)),
            _ => Err(format!(
                "unknown agentId {id:?}: it is not a background agent this step started"
            )),
        }
    }

    /// Tokens a child used so far: its end's count, or while it runs the model calls
    /// recorded for it.
    async fn child_tokens(&self, run_id: &str, id: &str, kid: &Kid) -> u64 {
        if kid.status.is_terminal() {
            return kid.tokens;
        }
        let (rid, sid) = (run_id.to_string(), id.to_string());
        self.store
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT COALESCE(SUM(COALESCE(prompt_tokens, 0) + COALESCE(completion_tokens, 0)), 0)
                     FROM model_calls WHERE run_id = ?1 AND step_id = ?2",
                    [&rid, &sid],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .await
            .map(|n| n.max(0) as u64)
            .unwrap_or(0)
    }

    /// `subagent_status`.
    async fn child_status(&self, grant: &Grant, args: &Value) -> Result<Value, String> {
        let (id, kid, _) = self.own_child(grant, args)?;
        let elapsed = kid.finished.unwrap_or_else(Instant::now) - kid.started;
        let tokens = self.child_tokens(&grant.ctx.run_id, &id, &kid).await;
        Ok(json!({
            "agentId": id,
            "status": kid.status.as_str(),
            "elapsedMs": elapsed.as_millis() as u64,
            "tokens": tokens,
        }))
    }

    /// `subagent_result`.
    async fn child_result(&self, grant: &Grant, args: &Value) -> Result<Value, String> {
        let (id, _, kids) = self.own_child(grant, args)?;
        let wait = args
            .get("waitSeconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            .clamp(0.0, MAX_WAIT_SECONDS);
        kids.wait_for(&id, Duration::from_secs_f64(wait)).await;
        let kid = kids.get(&id).ok_or("the background agent is gone")?;
        if !kid.status.is_terminal() {
            return Ok(json!({
                "agentId": id,
                "status": kid.status.as_str(),
                "message": "still running; call subagent_result again (waitSeconds up to 30), or keep working and come back later"
            }));
        }
        let output = match kid.output.clone() {
            Some(o) => Some(o),
            None => {
                let (rid, sid) = (grant.ctx.run_id.clone(), id.clone());
                self.store
                    .call(move |c| crate::store::queries::get_step_outputs(c, &rid, &[sid]))
                    .await
                    .ok()
                    .and_then(|mut m| m.remove(&id).flatten())
            }
        };
        let mut v = json!({ "agentId": id, "status": kid.status.as_str() });
        if let Some(o) = output {
            v["output"] = json!(o);
        }
        if let Some(e) = kid.error {
            v["error"] = json!(e);
        }
        Ok(v)
    }

    /// Forgets a run's children once its driver returned.
    pub(super) fn forget_children(&self, run_id: &str) {
        self.scheduler.children.forget(run_id);
    }

    /// One call on the channel.
    async fn answer_call(self: &Arc<Self>, request: &Value) -> Result<Value, String> {
        let token = request.get("token").and_then(Value::as_str).unwrap_or("");
        let Some(grant) = self.scheduler.children.grant_of(token) else {
            return Err("refused: this agent may not start background agents (its step has ended, or it never could)".into());
        };
        let args = request.get("arguments").cloned().unwrap_or(Value::Null);
        match request.get("tool").and_then(Value::as_str) {
            Some("spawn_subagent") => self.spawn_child(&grant, &args).await,
            Some("subagent_status") => self.child_status(&grant, &args).await,
            Some("subagent_result") => self.child_result(&grant, &args).await,
            other => Err(format!("unknown tool {other:?}")),
        }
    }
}

/// Makes (or checks) boo's private runtime folder: a real folder owned by this user,
/// mode 0700.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    if !m.is_dir() || m.uid() != uid {
        return Err(format!(
            "{} is not a folder of this user; set BOO_RUNTIME_DIR to a private folder",
            dir.display()
        ));
    }
    if m.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
    }
    Ok(())
}

/// Removes channel sockets of boo servers that are gone (`mcp-<pid>-….sock`).
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let pid = name
            .strip_prefix("mcp-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Starts the channel of this server (when it has a runtime folder and runs inside a
/// tokio runtime): binds the socket and answers calls until the supervisor is gone.
pub fn listen(sup: &Arc<Supervisor>) {
    let Some(dir) = sup.config.runtime_dir.clone() else {
        return;
    };
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let program = match std::env::current_exe().and_then(|p| p.canonicalize()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(
                "cannot find boo's own executable ({e}); agents cannot start background agents"
            );
            return;
        }
    };
    if let Err(e) = private_dir(&dir) {
        tracing::warn!("no channel for background agents: {e}");
        return;
    }
    sweep(&dir);
    let tag = crate::proxy::random_token()
        .map(|t| t[..12].to_string())
        .unwrap_or_else(|_| uuid::Uuid::now_v7().simple().to_string());
    let socket = dir.join(format!("mcp-{}-{tag}.sock", std::process::id()));
    let listener = {
        let _enter = rt.enter();
        match tokio::net::UnixListener::bind(&socket) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(
                    "no channel for background agents: cannot listen on {}: {e}",
                    socket.display()
                );
                return;
            }
        }
    };
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    }
    *lock(&sup.scheduler.children.channel) = Some((socket, program));
    let weak = Arc::downgrade(sup);
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Some(sup) = weak.upgrade() else { break };
            tokio::spawn(async move { serve_connection(sup, stream).await });
        }
    });
}

/// One call: a request line in, an answer line out.
async fn serve_connection(sup: Arc<Supervisor>, stream: tokio::net::UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(1 << 20));
    let got = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
    let answer = match got {
        Ok(Ok(n)) if n > 0 => match serde_json::from_str::<Value>(line.trim()) {
            Ok(request) => match sup.answer_call(&request).await {
                Ok(result) => json!({ "result": result }),
                Err(message) => json!({ "error": message }),
            },
            Err(e) => json!({ "error": format!("not a request: {e}") }),
        },
        _ => return,
    };
    let mut text = answer.to_string();
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short_first_lines() {
        assert_eq!(
            short_label("\n  Check the cookie\nmore"),
            "Check the cookie"
        );
        let long = "x".repeat(100);
        let l = short_label(&long);
        assert_eq!(l.chars().count(), 60);
        assert!(l.ends_with('…'));
    }

    #[test]
    fn a_runtime_folder_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("boo-rt-{}", uuid::Uuid::now_v7()));
        let dir = base.join("rt");
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let _ = std::fs::remove_dir_all(base);
    }
}
