//! The qwen backend: a session is one agent step with its private scratch space; each
//! prompt runs `qwen` headless in plan mode with stream-json output under boo's guard,
//! parses its events, enforces a deadline, and turns every way it can end into a clear
//! result. The guard reports the sandbox on a pipe of its own, never on qwen's stdout.

use super::harden::{
    install_roots, landlock_abi, tool_allowed, AgentHome, SandboxMode, DENIED_TOOLS,
    SYSTEM_READABLE,
};
use super::launch::{last_lines, read_guard_report, spawn_guarded, tail_reader, Guarded, Launch};
use super::parse::{is_denial, Parsed, StreamParser};
use super::process::{pid_start_time, stop_group};
use super::{
    AgentBackend, AgentError, AgentEvent, AgentInfo, AgentOutcome, AgentSession, BoxFuture,
    Canceller, ContentBlock, SessionSpec, Unavailable,
};
use crate::model::{StreamEvent, Usage};
use serde_json::json;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The oldest qwen release boo drives.
pub const MIN_VERSION: (u32, u32, u32) = (0, 24, 0);
/// The release boo is tested with; `boo doctor` suggests installing it.
pub const TESTED_VERSION: &str = "0.24.4";
/// A prompt longer than this goes through stdin (one argv string is capped at 128 KiB).
const ARGV_PROMPT_LIMIT: usize = 100 * 1024;

/// How boo runs qwen; built by `config::Config` (environment and editor options).
#[derive(Debug, Clone)]
pub struct QwenConfig {
    /// `BOO_QWEN` / `qwenPath`, or `qwen` to search on `search_path`.
    pub program: String,
    /// The directories searched for a bare program name (boo's own `PATH`).
    pub search_path: Option<OsString>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model: Option<String>,
    /// boo's data directory; agent scratch space (QWEN_HOME) lives under it.
    pub data_dir: PathBuf,
    /// `BOO_SANDBOX`, parsed; a bad value fails every agent with its message.
    pub sandbox: Result<SandboxMode, String>,
    /// `BOO_AGENT_WRITABLE`: extra paths the sandbox leaves writable (tests only).
    pub extra_writable: Vec<PathBuf>,
    /// The copy `boo setup` installs, used when a bare `program` is not on `search_path`.
    pub installed: Option<PathBuf>,
    /// `BOO_AGENT_READABLE`: extra paths agents may read (an unusual installation).
    pub extra_readable: Vec<PathBuf>,
    /// The model proxy (set by `app::App`): agents get a grant of it instead of
    /// `base_url` and `api_key`, which then never reach an agent process.
    pub proxy: Option<Arc<crate::proxy::Proxy>>,
}

/// The endpoint and key an agent process is started with: a fresh proxy grant when
/// boo runs its proxy (the grant lives as long as the process), else the configured
/// ones.
pub struct Endpoint {
    pub grant: Option<crate::proxy::Grant>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
}

impl QwenConfig {
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        match &self.proxy {
            Some(p) => {
                let g = p.grant().map_err(|e| {
                    format!("cannot make a model-proxy token (reading /dev/urandom): {e}")
                })?;
                Ok(Endpoint {
                    base_url: Some(g.base_url().to_string()),
                    api_key: Some(g.token().to_string()),
                    grant: Some(g),
                })
            }
            None => Ok(Endpoint {
                grant: None,
                base_url: self.base_url.clone(),
                api_key: self.api_key.clone(),
            }),
        }
    }
}

impl QwenConfig {
    /// The qwen boo runs: `program` as configured; a bare name not found on `PATH`
    /// falls back to the copy `boo setup` installed, when there is one.
    pub fn resolve(&self) -> Result<PathBuf, Unavailable> {
        let found = resolve_program(&self.program, self.search_path.as_ref());
        match (&found, &self.installed) {
            (Err(_), Some(installed)) if !self.program.contains('/') && installed.is_file() => {
                check_executable(installed).map(|_| installed.clone())
            }
            _ => found,
        }
    }
}

pub struct QwenBackend {
    config: Arc<QwenConfig>,
    checked: Mutex<Option<(PathBuf, SystemTime, AgentInfo)>>,
}

/// Why a model name cannot be handed to qwen, if it cannot: empty, starting with `-`
/// (it would read as a flag), or holding a control character (a NUL ends the argv
/// string; a newline splits logs and settings).
pub fn model_name_problem(model: &str) -> Option<String> {
    if model.trim().is_empty() {
        return Some("the model name is empty".into());
    }
    if model.starts_with('-') {
        return Some(format!(
            "the model name {model:?} starts with '-': name the model the endpoint serves (e.g. qwen3-coder)"
        ));
    }
    if model.chars().any(char::is_control) {
        return Some(format!(
            "the model name {model:?} holds a control character: name the model the endpoint serves"
        ));
    }
    None
}

/// Finds the executable: a path as given, or the first match on `search_path`.
pub fn resolve_program(
    program: &str,
    search_path: Option<&OsString>,
) -> Result<PathBuf, Unavailable> {
    let install = format!(
        "run `boo setup` (installs qwen {TESTED_VERSION} with its own Node 22 into boo's data directory), or install it with `npm install -g @qwen-code/qwen-code@{TESTED_VERSION}` (Node 22 or newer), or set BOO_QWEN to its path"
    );
    if program.contains('/') {
        let p = PathBuf::from(program);
        if !p.exists() {
            return Err(Unavailable(format!(
                "the qwen CLI was not found at {program} (from BOO_QWEN or qwenPath): {install}"
            )));
        }
        return check_executable(&p).map(|_| p);
    }
    for dir in std::env::split_paths(search_path.map(|p| p.as_os_str()).unwrap_or_default()) {
        let cand = dir.join(program);
        if cand.is_file() {
            return check_executable(&cand).map(|_| cand);
        }
    }
    Err(Unavailable(format!(
        "the qwen CLI ({program}) was not found on PATH: {install}"
    )))
}

fn check_executable(p: &Path) -> Result<(), Unavailable> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(p)
        .map_err(|e| Unavailable(format!("cannot read {}: {e}", p.display())))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Unavailable(format!(
            "{} is not an executable file: run `chmod +x {}` or point BOO_QWEN at the qwen launcher",
            p.display(),
            p.display()
        )));
    }
    Ok(())
}

/// Extracts `x.y.z` from `qwen --version` output.
pub fn parse_version(out: &str) -> Option<(u32, u32, u32)> {
    out.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|tok| {
            let mut it = tok.split('.');
            let a = it.next()?.parse().ok()?;
            let b = it.next()?.parse().ok()?;
            let c = it.next()?.parse().ok()?;
            Some((a, b, c))
        })
}

impl QwenBackend {
    pub fn new(config: QwenConfig) -> Self {
        QwenBackend {
            config: Arc::new(config),
            checked: Mutex::new(None),
        }
    }

    async fn check_now(&self) -> Result<AgentInfo, Unavailable> {
        let mode = self.config.sandbox.clone().map_err(Unavailable)?;
        if mode == SandboxMode::Required && landlock_abi().is_none() {
            return Err(Unavailable(
                "the OS sandbox is required (BOO_SANDBOX=required) but this kernel has no Landlock: use a kernel with Landlock (5.13+, enabled in the LSM list) or set BOO_SANDBOX=auto".into(),
            ));
        }
        if let Some(problem) = self.config.model.as_deref().and_then(model_name_problem) {
            return Err(Unavailable(format!(
                "{problem} (from OPENAI_MODEL or the editor's `model` setting)"
            )));
        }
        if self.config.base_url.is_none() {
            // Never let qwen fall back to a default endpoint or a repository's .env.
            return Err(Unavailable(
                "no model endpoint is configured: export OPENAI_BASE_URL (your OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1), OPENAI_API_KEY and OPENAI_MODEL before starting boo (or set them in your editor's boo settings); `boo doctor` checks them".into(),
            ));
        }
        let path = self.config.resolve()?;
        let mtime = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if let Ok(guard) = self.checked.lock() {
            if let Some((p, t, info)) = guard.as_ref() {
                if *p == path && *t == mtime {
                    return Ok(info.clone());
                }
            }
        }
        let mut cmd = tokio::process::Command::new(&path);
        cmd.arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
            .await
            .map_err(|_| {
                Unavailable(format!(
                    "`{} --version` did not answer within 20 s: check the installation",
                    path.display()
                ))
            })?
            .map_err(|e| Unavailable(format!("cannot run {}: {e}", path.display())))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let Some(v) = parse_version(&text) else {
            return Err(Unavailable(format!(
                "`{} --version` printed {:?}, not a version: is this the Qwen Code CLI? Install @qwen-code/qwen-code@{TESTED_VERSION}",
                path.display(),
                text.trim()
            )));
        };
        if v < MIN_VERSION {
            return Err(Unavailable(format!(
                "qwen {}.{}.{} at {} is too old: boo needs {}.{}.{} or newer; run `npm install -g @qwen-code/qwen-code@{TESTED_VERSION}`",
                v.0, v.1, v.2,
                path.display(),
                MIN_VERSION.0, MIN_VERSION.1, MIN_VERSION.2
            )));
        }
        let info = AgentInfo {
            path: path.clone(),
            version: format!("{}.{}.{}", v.0, v.1, v.2),
        };
        if let Ok(mut guard) = self.checked.lock() {
            *guard = Some((path, mtime, info.clone()));
        }
        Ok(info)
    }

    async fn open_session(&self, spec: SessionSpec) -> Result<Box<dyn AgentSession>, AgentError> {
        let info = self
            .check_now()
            .await
            .map_err(|e| AgentError::failed(e.0))?;
        let model = spec.model.clone().or_else(|| self.config.model.clone());
        let home = AgentHome::create_for(
            &self.config.data_dir,
            &spec.chat_id,
            model.as_deref(),
            spec.images,
            spec.mcp.as_ref().map(|m| (spec.root.as_path(), m)),
        )
        .map_err(|e| {
            AgentError::failed(format!(
                "cannot prepare the agent's scratch directory under {}: {e}",
                self.config.data_dir.display()
            ))
        })?;
        Ok(Box::new(QwenSession {
            config: self.config.clone(),
            info,
            spec,
            model,
            home,
            cancel: Canceller::new(),
        }))
    }
}

/// One agent step: its scratch space lives as long as the session; every prompt is
/// one `qwen -p` process that starts fresh (it does not remember earlier prompts).
struct QwenSession {
    config: Arc<QwenConfig>,
    info: AgentInfo,
    spec: SessionSpec,
    model: Option<String>,
    home: AgentHome,
    cancel: Canceller,
}

impl Drop for QwenSession {
    fn drop(&mut self) {
        self.home.remove();
    }
}

impl AgentSession for QwenSession {
    fn prompt(
        &mut self,
        prompt: Vec<ContentBlock>,
        events: mpsc::UnboundedSender<AgentEvent>,
    ) -> BoxFuture<'_, Result<AgentOutcome, AgentError>> {
        Box::pin(async move {
            if self.cancel.is_cancelled() {
                return Err(AgentError::Cancelled);
            }
            let mut text = ContentBlock::join_text(&prompt);
            let images = write_images(&self.home.root, &prompt).map_err(|e| {
                AgentError::failed(format!(
                    "cannot put the run's attachments in the agent's scratch folder {}: {e}",
                    self.home.root.display()
                ))
            })?;
            if let Some((_, refs)) = &images {
                text.push_str(refs);
            }
            run_process(self, &text, images.as_ref().map(|i| i.0.as_path()), events).await
        })
    }

    fn canceller(&self) -> Canceller {
        self.cancel.clone()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        drop(self);
        Box::pin(async {})
    }
}

/// Everything an agent may read (its scratch space is writable, so readable too): the
/// project, the system, qwen's own installation and `BOO_AGENT_READABLE`; not the
/// user's home, not other projects. Both transports launch with it.
pub fn readable_paths(config: &QwenConfig, root: &Path, program: &Path) -> Vec<PathBuf> {
    let mut paths = vec![root.to_path_buf()];
    paths.extend(SYSTEM_READABLE.iter().map(PathBuf::from));
    paths.extend(install_roots(program, config.search_path.as_deref()));
    paths.extend(config.extra_readable.iter().cloned());
    paths
}

/// A headless qwen takes images as `@path` references to files of its workspace
/// (QWEN.md, "Images"): the prompt's images are written to the agent's scratch
/// folder (never the project or its snapshot), which joins the workspace with
/// `--include-directories`. Returns the folder and the references to append.
fn write_images(
    scratch: &Path,
    prompt: &[ContentBlock],
) -> std::io::Result<Option<(PathBuf, String)>> {
    let images: Vec<_> = prompt
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Image {
                name,
                mime_type,
                data,
            } => Some((name, mime_type, data)),
            _ => None,
        })
        .collect();
    if images.is_empty() {
        return Ok(None);
    }
    let dir = scratch.join("attachments");
    std::fs::create_dir_all(&dir)?;
    let mut refs = String::from("\n\nAttached images (in this order):");
    for (i, (name, mime, data)) in images.into_iter().enumerate() {
        let ext = mime.rsplit('/').next().unwrap_or("img");
        // A plain file name: the user's name may hold spaces or `@`.
        let file = dir.join(format!("image-{}.{ext}", i + 1));
        std::fs::write(&file, data.as_slice())?;
        let path = file.display().to_string().replace(' ', "\\ ");
        refs.push_str(&format!("\n- {name}: @{path}"));
    }
    refs.push('\n');
    Ok(Some((dir, refs)))
}

async fn run_process(
    session: &QwenSession,
    prompt: &str,
    images: Option<&Path>,
    events: mpsc::UnboundedSender<AgentEvent>,
) -> Result<AgentOutcome, AgentError> {
    let QwenSession {
        config,
        info,
        spec: req,
        model,
        home,
        cancel,
    } = session;
    let fail = |message: String, meta: serde_json::Value| AgentError::Failed { message, meta };
    let mode = config.sandbox.clone().map_err(|e| fail(e, json!({})))?;
    let mut args: Vec<OsString> = [
        "--approval-mode",
        "plan",
        "--output-format",
        "stream-json",
        "--include-partial-messages",
        "--auth-type",
        "openai",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push("--max-wall-time".into());
    args.push(format!("{}s", req.deadline.as_secs().max(1)).into());
    if let Some(m) = &model {
        // One token: a model name can never be read as another flag.
        args.push(format!("--model={m}").into());
    }
    // Second line of defence: the same tools the settings deny are excluded here.
    args.push("--exclude-tools".into());
    args.push(DENIED_TOOLS.join(",").into());
    if let Some(dir) = images {
        let mut flag = OsString::from("--include-directories=");
        flag.push(dir);
        args.push(flag);
    }
    let via_stdin = prompt.len() > ARGV_PROMPT_LIMIT;
    args.push("-p".into());
    if via_stdin {
        args.push("The complete task for this step is given on standard input.".into());
    } else {
        args.push(prompt.into());
    }
    let endpoint = config.endpoint().map_err(|e| fail(e, json!({})))?;
    let _active = endpoint.grant.as_ref().map(|g| {
        g.begin(crate::proxy::Attribution {
            run_id: req.run_id.clone(),
            step_id: req.step_id.clone(),
            chat_id: req.chat_id.clone(),
        })
    });
    let started = Instant::now();
    let guarded = spawn_guarded(Launch {
        program: &info.path,
        args,
        cwd: &req.root,
        home,
        sandbox: mode,
        extra_writable: &config.extra_writable,
        readable: readable_paths(config, &req.root, &info.path),
        base_url: endpoint.base_url.as_deref(),
        api_key: endpoint.api_key.as_deref(),
        connect_port: endpoint.grant.as_ref().map(|g| g.port()),
        model: model.as_deref(),
        env: vec![
            ("BOO_RUN_ID", req.run_id.clone().into()),
            ("BOO_STEP_ID", req.step_id.clone().into()),
            ("BOO_CHAT_ID", req.chat_id.clone().into()),
        ],
        stdin: via_stdin,
    })
    .map_err(|e| fail(e.0, json!({})))?;
    let Guarded {
        mut child,
        pid,
        report: guard_report,
    } = guarded;
    let _ = events.send(AgentEvent::Started {
        pid,
        pid_start: pid_start_time(pid),
    });
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = prompt.to_string();
        tokio::spawn(async move {
            let _ = stdin.write_all(prompt.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
    }
    let stderr_task = child.stderr.take().map(tail_reader);
    let Some(stdout) = child.stdout.take() else {
        stop_group(pid, Duration::from_millis(200)).await;
        return Err(fail("qwen started without a stdout pipe".into(), json!({})));
    };
    let mut lines = BufReader::with_capacity(64 * 1024, stdout);
    let mut parser = StreamParser::new();
    let mut result = None;
    let mut meta = json!({
        "transport": "oneshot",
        "agentPid": pid,
        "qwenVersion": info.version,
        "qwenPath": info.path.display().to_string(),
        "sandboxMode": mode.as_str(),
        "sandbox": "unknown",
    });
    let mut usage = Usage::default();
    let mut denials: Vec<String> = Vec::new();
    let deadline = tokio::time::sleep(req.deadline);
    tokio::pin!(deadline);
    let mut buf = Vec::with_capacity(8192);
    enum End {
        Eof,
        Cancelled,
        Deadline,
        Unsafe(Vec<String>),
    }
    let mut unsafe_tools: Option<Vec<String>> = None;
    let end = loop {
        if let Some(x) = unsafe_tools.take() {
            break End::Unsafe(x);
        }
        buf.clear();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break End::Cancelled,
            _ = &mut deadline => break End::Deadline,
            r = lines.read_until(b'\n', &mut buf) => {
                match r {
                    Ok(0) | Err(_) => break End::Eof,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        for p in parser.feed(&line) {
                            match p {
                                Parsed::Init { version, tools, model, permission_mode } => {
                                    let extra: Vec<String> = tools.iter().filter(|t| !tool_allowed(t, req.mcp.is_some())).cloned().collect();
                                    if !extra.is_empty() {
                                        meta["offeredTools"] = json!(tools);
                                        unsafe_tools = Some(extra);
                                        continue;
                                    }
                                    meta["offeredTools"] = json!(tools);
                                    meta["permissionMode"] = json!(permission_mode);
                                    if let Some(v) = &version { meta["qwenVersion"] = json!(v); }
                                    let _ = events.send(AgentEvent::Init { version, tools, model });
                                }
                                Parsed::Stream(ev) => {
                                    if let StreamEvent::ToolResult { tool_call_id, content, is_error: true } = &ev {
                                        if is_denial(content) { denials.push(tool_call_id.clone()); }
                                    }
                                    let _ = events.send(AgentEvent::Stream(ev));
                                }
                                Parsed::Turn { turn, usage: u } => {
                                    usage.add(&u);
                                    let _ = events.send(AgentEvent::Turn { turn, usage: u });
                                }
                                Parsed::Result(r) => result = Some(r),
                            }
                        }
                    }
                }
            }
        }
    };
    let elapsed = started.elapsed();
    let read_guard_report = |meta: &mut serde_json::Value, text: &str| {
        if let Some((sandbox, abi)) = read_guard_report(text) {
            meta["sandbox"] = json!(sandbox);
            meta["landlockAbi"] = abi;
        }
        if let Some(network) = super::launch::guard_network(text) {
            meta["network"] = json!(network);
        }
    };
    match end {
        End::Cancelled => {
            stop_group(pid, Duration::from_secs(2)).await;
            let _ = child.wait().await;
            return Err(AgentError::Cancelled);
        }
        End::Deadline => {
            stop_group(pid, Duration::from_secs(2)).await;
            let _ = child.wait().await;
            read_guard_report(&mut meta, &guard_report.await.unwrap_or_default());
            let endpoint = config.base_url.as_deref().unwrap_or("(not set)");
            return Err(fail(
                    format!(
                        "qwen did not finish within its deadline of {}s and was stopped. If it produced no output, the model endpoint is probably unreachable: check OPENAI_BASE_URL ({endpoint}) and that the model server is up.",
                        req.deadline.as_secs()
                    ),
                    meta,
                ));
        }
        End::Unsafe(extra) => {
            stop_group(pid, Duration::from_millis(500)).await;
            let _ = child.wait().await;
            read_guard_report(&mut meta, &guard_report.await.unwrap_or_default());
            return Err(fail(
                    format!(
                        "qwen offered the model tools boo does not allow ({}); the agent was stopped before it could act. Check that this qwen version honours QWEN_CODE_SYSTEM_SETTINGS_PATH and --exclude-tools (boo is tested with {TESTED_VERSION}).",
                        extra.join(", ")
                    ),
                    meta,
                ));
        }
        End::Eof => {}
    }
    // stdout closed: wait for the launcher, bounded, then make sure no process of the group survives.
    let status = tokio::select! {
        s = child.wait() => s.ok(),
        _ = tokio::time::sleep(Duration::from_secs(5)) => None,
        _ = cancel.cancelled() => None,
    };
    stop_group(pid, Duration::from_millis(500)).await;
    let status = match status {
        Some(s) => Some(s),
        None => child.wait().await.ok(),
    };
    let stderr_tail = match stderr_task {
        Some(t) => t.await.unwrap_or_default(),
        None => String::new(),
    };
    read_guard_report(&mut meta, &guard_report.await.unwrap_or_default());
    let code = status.and_then(|s| s.code());
    let signal = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
    meta["exitCode"] = json!(code);
    meta["durationMs"] = json!(elapsed.as_millis() as u64);
    meta["skippedLines"] = json!(parser.skipped_lines);
    if !denials.is_empty() {
        meta["deniedToolCalls"] = json!(denials);
    }
    let tail = last_lines(&stderr_tail, 5);
    if !tail.is_empty() {
        meta["stderrTail"] = json!(tail);
    }
    if cancel.is_cancelled() {
        return Err(AgentError::Cancelled);
    }
    match result {
        Some(r) if !r.is_error => {
            if let Some(n) = r.num_turns {
                meta["numTurns"] = json!(n);
            }
            if usage.is_zero() {
                usage = r.usage;
            }
            let text = r
                .text
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| parser.last_text.clone());
            Ok(AgentOutcome {
                output: text,
                usage,
                meta,
            })
        }
        Some(r) => {
            let msg = r
                .error
                .or(r.text)
                .unwrap_or_else(|| format!("qwen reported an error ({})", r.subtype));
            Err(fail(format!("qwen failed: {msg}"), meta))
        }
        None => {
            let no_turns = meta.get("numTurns").is_none() && usage.is_zero();
            let signal = signal.or(code.filter(|c| (129..=192).contains(c)).map(|c| c - 128));
            let why = match (code, signal) {
                    (Some(78), _) if meta["sandbox"] != "enforced" => format!(
                        "the OS sandbox is required (BOO_SANDBOX=required) but Landlock is {} here; the agent was not started",
                        meta["sandbox"].as_str().unwrap_or("unavailable")
                    ),
                    (Some(55), _) if no_turns => format!(
                        "qwen stopped at its wall-time limit (--max-wall-time, exit 55) without a single model answer: the model endpoint is probably unreachable or stalled; check OPENAI_BASE_URL ({})",
                        config.base_url.as_deref().unwrap_or("not set")
                    ),
                    (Some(53), _) => "qwen stopped: the session reached its turn limit (--max-session-turns, exit 53) before answering".to_string(),
                    (Some(55), _) => "qwen stopped: the session reached its wall-time limit (--max-wall-time, exit 55) before answering".to_string(),
                    (_, Some(sig)) => format!("qwen crashed (killed by signal {sig}) before it finished"),
                    (Some(0), _) => "qwen exited without a result line".to_string(),
                    (Some(c), _) => format!("qwen exited with code {c} without a result"),
                    (None, None) => "qwen ended without a result".to_string(),
                };
            let msg = if tail.is_empty() {
                why
            } else {
                format!("{why}; its last error output:\n{tail}")
            };
            Err(fail(msg, meta))
        }
    }
}

impl AgentBackend for QwenBackend {
    fn check(&self) -> BoxFuture<'_, Result<AgentInfo, Unavailable>> {
        Box::pin(self.check_now())
    }

    fn open(&self, spec: SessionSpec) -> BoxFuture<'_, Result<Box<dyn AgentSession>, AgentError>> {
        Box::pin(self.open_session(spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("0.24.4\n"), Some((0, 24, 4)));
        assert_eq!(parse_version("qwen version 1.2.3 (abc)"), Some((1, 2, 3)));
        assert_eq!(parse_version("nothing"), None);
        assert!(parse_version("0.23.9").unwrap() < MIN_VERSION);
    }

    #[test]
    fn a_model_name_never_reads_as_a_flag() {
        assert_eq!(model_name_problem("qwen3-coder"), None);
        assert_eq!(model_name_problem("org/model:q4_K_M"), None);
        assert!(model_name_problem("--approval-mode=yolo")
            .unwrap()
            .contains("starts with '-'"));
        assert!(model_name_problem("a\0b")
            .unwrap()
            .contains("control character"));
        assert!(model_name_problem(" ").unwrap().contains("empty"));
    }

    #[test]
    fn missing_program_says_how_to_install() {
        let e = resolve_program("/nonexistent/qwen", None).unwrap_err();
        assert!(
            e.0.contains("npm install -g @qwen-code/qwen-code@0.24.4"),
            "{e}"
        );
        let path = OsString::from("/nonexistent-dir");
        let e = resolve_program("definitely-not-a-qwen-binary", Some(&path)).unwrap_err();
        assert!(e.0.contains("PATH"), "{e}");
        assert!(e.0.contains("run `boo setup`"), "{e}");
    }

    #[test]
    fn a_bare_qwen_not_on_path_falls_back_to_the_copy_boo_setup_installed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("boo-qwen-fallback-{}", std::process::id()));
        let (on_path, installed) = (dir.join("path"), dir.join("data/qwen/bin/qwen"));
        std::fs::create_dir_all(&on_path).unwrap();
        std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
        std::fs::write(&installed, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = |program: &str| QwenConfig {
            program: program.into(),
            search_path: Some(on_path.clone().into_os_string()),
            base_url: None,
            api_key: None,
            proxy: None,
            model: None,
            data_dir: dir.join("data"),
            sandbox: Ok(SandboxMode::Auto),
            extra_writable: vec![],
            extra_readable: vec![],
            installed: Some(installed.clone()),
        };
        assert_eq!(
            config("qwen").resolve().unwrap(),
            installed,
            "not on PATH: the installed copy"
        );
        let mine = on_path.join("qwen");
        std::fs::write(&mine, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(config("qwen").resolve().unwrap(), mine, "PATH wins");
        let e = config("/elsewhere/qwen").resolve().unwrap_err();
        assert!(
            e.0.contains("/elsewhere/qwen"),
            "an explicit path never falls back: {e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
