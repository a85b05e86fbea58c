//! The protocol layer: the ONLY code that knows JSON-RPC, LSP and the wire method
//! names. It turns requests into supervisor calls and outbox messages into
//! notifications; everything below speaks plain domain types.

pub mod wire;

use crate::agent::BoxFuture;
use crate::app::App;
use crate::config::{Config, InitOptions};
use crate::model::Band;
use crate::runner::outbox::{self, FindingDiagnostic, Out, ProgressKind, Transport};
use crate::runner::{CancelError, LaunchError, LaunchRequest, Supervisor};
use crate::store::queries;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

mod actions;

pub const INVALID_PARAMS: i64 = -32602;
pub const NOT_FOUND: i64 = -32001;
pub const AGENT_UNAVAILABLE: i64 = -32003;
pub const INVALID_STATE: i64 = -32004;
pub const PROTOCOL_VERSION: u32 = 1;

fn rpc_error(code: i64, message: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::from(code),
        message: message.into().into(),
        data: None,
    }
}

fn invalid(message: impl Into<String>) -> Error {
    rpc_error(INVALID_PARAMS, message)
}

fn internal(message: impl std::fmt::Display) -> Error {
    Error {
        code: ErrorCode::InternalError,
        message: format!("{message}").into(),
        data: None,
    }
}

/// Reads `initializationOptions` (all optional; unknown or mistyped fields are ignored).
fn parse_init_options(v: Option<&Value>) -> InitOptions {
    let v = v.cloned().unwrap_or(Value::Null);
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .filter(|x| !x.is_empty())
            .map(String::from)
    };
    InitOptions {
        db_path: s("dbPath").map(PathBuf::from),
        qwen_path: s("qwenPath"),
        model: s("model"),
        max_parallel: v
            .get("maxParallelAgents")
            .and_then(|x| x.as_u64())
            .map(|n| n as usize),
        diagnostics: v.get("diagnostics").and_then(|x| x.as_bool()),
    }
}

struct Shared {
    /// The process's configuration (from the environment); `initialize` applies the
    /// editor's options to a copy of it.
    config: Config,
    root: Mutex<Option<PathBuf>>,
    supervisor: OnceLock<Arc<Supervisor>>,
    shutdown: CancellationToken,
    shut_down: AtomicBool,
    progress: AtomicBool,
}

pub struct Backend {
    client: Client,
    shared: Arc<Shared>,
}

fn lock<'a, T>(m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Backend {
    fn sup(&self) -> Result<&Arc<Supervisor>> {
        self.shared.supervisor.get().ok_or_else(|| {
            rpc_error(
                -32002,
                "the server is not initialized: send `initialize` first",
            )
        })
    }

    fn workspace_root(&self) -> Option<PathBuf> {
        lock(&self.shared.root).clone()
    }

    async fn list_flows(&self, params: Value) -> Result<Value> {
        let root = params
            .get("root")
            .and_then(|r| r.as_str())
            .map(PathBuf::from)
            .or_else(|| self.workspace_root());
        let builtin_dir = self.shared.config.catalog_dir.as_deref();
        let cat = match root {
            Some(r) => crate::catalog::Catalog::for_root(&r, builtin_dir),
            None => crate::catalog::Catalog::builtin(builtin_dir),
        };
        Ok(wire::flows_json(&cat))
    }

    async fn launch_flow(&self, params: Value) -> Result<Value> {
        let sup = self.sup()?.clone();
        let p = params;
        let flow = match p.get("flow") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                let cat = sup.catalog(None);
                return Err(invalid(format!(
                    "flow: a flow name is required; known flows: {}",
                    cat.flows.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        };
        let band = match p.get("band") {
            None | Some(Value::Null) => Band::Small,
            Some(Value::String(s)) => s
                .parse::<Band>()
                .map_err(|e| invalid(format!("band: {e}")))?,
            Some(other) => {
                return Err(invalid(format!(
                    "band: {other} is not a band: use one of \"small\", \"medium\", \"large\""
                )))
            }
        };
        let question = match p.pointer("/input/question") {
            Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
            Some(Value::String(_)) => {
                return Err(invalid("input.question: the question is empty; give the flow a focus (what should it look at?)"))
            }
            _ => {
                return Err(invalid(
                    "input.question: missing; send `input: { question: \"...\" }` with the focus text",
                ))
            }
        };
        let root = match p.get("root") {
            Some(Value::String(r)) if !r.is_empty() => PathBuf::from(r),
            None | Some(Value::Null) => self.workspace_root().ok_or_else(|| {
                invalid("root: no root was given and the client opened no workspace folder; send `root` with the project directory")
            })?,
            Some(other) => return Err(invalid(format!("root: {other} is not a directory path"))),
        };
        let model = p.get("model").and_then(|m| m.as_str()).map(String::from);
        let fast = p.get("fast").and_then(|f| f.as_bool()).unwrap_or(false);
        let run_id = sup
            .launch(LaunchRequest {
                flow,
                band,
                question,
                root,
                model,
                fast,
            })
            .await
            .map_err(|e| match e {
                LaunchError::Invalid(m) => invalid(m),
                LaunchError::Unavailable(m) => rpc_error(AGENT_UNAVAILABLE, m),
                LaunchError::Internal(m) => internal(m),
            })?;
        Ok(json!({ "runId": run_id }))
    }

    async fn list_runs(&self, params: Value) -> Result<Value> {
        let sup = self.sup()?;
        let root = match params.get("root") {
            Some(Value::String(r)) => Some(
                PathBuf::from(r)
                    .canonicalize()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| r.clone()),
            ),
            Some(Value::Null) => None,
            None => self.workspace_root().map(|p| p.display().to_string()),
            Some(other) => return Err(invalid(format!("root: {other} is not a path"))),
        };
        let limit = match params.get("limit") {
            None | Some(Value::Null) => 50,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| invalid("limit: a whole number from 1 to 1000"))?
                as u32,
        };
        let before = match params.get("before") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(invalid("before: the `next` string of a previous page")),
        };
        let (runs, next) = sup
            .store
            .call(move |c| queries::list_runs(c, root.as_deref(), limit, before.as_deref()))
            .await
            .map_err(internal)?;
        Ok(json!({ "runs": runs, "next": next }))
    }

    fn run_id(params: &Value) -> Result<String> {
        match params.get("runId") {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(invalid("runId: required, the id `boo/launchFlow` returned")),
        }
    }

    async fn get_run(&self, params: Value) -> Result<Value> {
        let sup = self.sup()?;
        let run_id = Self::run_id(&params)?;
        let transcript = params
            .get("transcript")
            .and_then(|t| t.as_bool())
            .unwrap_or(false);
        let id = run_id.clone();
        let got = sup
            .store
            .call(move |c| {
                let Some(run) = queries::get_run(c, &id)? else {
                    return Ok(None);
                };
                let mut steps = queries::get_steps(c, &id)?;
                if transcript {
                    for s in steps.iter_mut() {
                        if let Some(chat) = &s.step.chat_id {
                            let (events, last) = queries::transcript(c, chat)?;
                            s.step.transcript = Some(events);
                            s.step.last_seq = Some(last);
                        } else {
                            s.step.transcript = Some(Vec::new());
                            s.step.last_seq = Some(0);
                        }
                    }
                }
                let turns = queries::turn_usages(c, &id)?;
                Ok(Some((run, steps, turns)))
            })
            .await
            .map_err(internal)?;
        let Some((run, steps, turns)) = got else {
            return Err(rpc_error(
                NOT_FOUND,
                format!("unknown runId {run_id}: list runs with boo/listRuns"),
            ));
        };
        // Each step also carries the usage of every model turn (with its cache hit rate).
        let steps: Vec<Value> = steps
            .into_iter()
            .map(|s| {
                let mut v = wire::to_value(&s.step);
                let per_turn: Vec<Value> = turns
                    .iter()
                    .filter(|t| t.0 == s.step.step_id)
                    .map(|(_, turn, u)| json!({ "turn": turn, "usage": crate::model::WireUsage::from(*u) }))
                    .collect();
                v["turns"] = json!(per_turn);
                v
            })
            .collect();
        Ok(json!({ "run": run.run, "steps": steps, "report": run.report }))
    }

    async fn cancel_run(&self, params: Value) -> Result<Value> {
        let sup = self.sup()?.clone();
        let run_id = Self::run_id(&params)?;
        match sup.cancel(&run_id).await {
            Ok(status) => Ok(json!({ "runId": run_id, "status": status })),
            Err(CancelError::NotFound(id)) => Err(rpc_error(
                NOT_FOUND,
                format!("unknown runId {id}: list runs with boo/listRuns"),
            )),
            Err(e @ CancelError::Ended(..)) => Err(rpc_error(INVALID_STATE, e.to_string())),
            Err(CancelError::Internal(m)) => Err(internal(m)),
        }
    }

    async fn export_run(&self, params: Value) -> Result<Value> {
        let sup = self.sup()?;
        let run_id = Self::run_id(&params)?;
        let format = match params.get("format") {
            None | Some(Value::Null) => "markdown".to_string(),
            Some(Value::String(f)) if f == "markdown" || f == "json" => f.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "format: {other} is not supported: use \"markdown\" or \"json\""
                )))
            }
        };
        let exported = crate::export::export(&sup.store, &run_id, &format)
            .await
            .map_err(internal)?;
        match exported {
            Some((content, file_name)) => Ok(json!({ "content": content, "fileName": file_name })),
            None => Err(rpc_error(
                NOT_FOUND,
                format!("unknown runId {run_id}: list runs with boo/listRuns"),
            )),
        }
    }

    async fn get_traces(&self, params: Value) -> Result<Value> {
        let sup = self.sup()?;
        let run_id = Self::run_id(&params)?;
        let step = params
            .get("stepId")
            .and_then(|s| s.as_str())
            .map(String::from);
        let cursor = match params.get("cursor") {
            None | Some(Value::Null) => 0,
            Some(Value::String(s)) => s
                .parse::<i64>()
                .map_err(|_| invalid("cursor: the `nextCursor` string of a previous page"))?,
            Some(_) => {
                return Err(invalid(
                    "cursor: the `nextCursor` string of a previous page",
                ))
            }
        };
        let limit = match params.get("limit") {
            None | Some(Value::Null) => 200,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| invalid("limit: a whole number from 1 to 1000"))?
                as u32,
        };
        let id = run_id.clone();
        let got = sup
            .store
            .call(move |c| {
                if queries::get_run(c, &id)?.is_none() {
                    return Ok(None);
                }
                Ok(Some(queries::list_traces(
                    c,
                    &id,
                    step.as_deref(),
                    cursor,
                    limit,
                )?))
            })
            .await
            .map_err(internal)?;
        let Some((traces, next)) = got else {
            return Err(rpc_error(
                NOT_FOUND,
                format!("unknown runId {run_id}: list runs with boo/listRuns"),
            ));
        };
        Ok(json!({ "traces": traces, "nextCursor": next.map(|n| n.to_string()) }))
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let opts = parse_init_options(params.initialization_options.as_ref());
        #[allow(deprecated)]
        let root = params
            .workspace_folders
            .as_ref()
            .and_then(|f| f.first())
            .and_then(|f| f.uri.to_file_path().map(|p| p.into_owned()))
            .or_else(|| {
                params
                    .root_uri
                    .as_ref()
                    .and_then(|u| u.to_file_path().map(|p| p.into_owned()))
            });
        *lock(&self.shared.root) = root.and_then(|r| r.canonicalize().ok());
        let progress = params
            .capabilities
            .window
            .as_ref()
            .and_then(|w| w.work_done_progress)
            .unwrap_or(false);
        self.shared.progress.store(progress, Ordering::SeqCst);
        if self.shared.supervisor.get().is_none() {
            let mut config = self.shared.config.clone();
            config.apply(&opts);
            let client = self.client.clone();
            let diagnostics = config.diagnostics;
            let app = App::start(&config, |out| LspTransport {
                client,
                progress,
                out,
                tokens: HashMap::new(),
                diagnostics,
                published: BTreeMap::new(),
            })
            .await
            .map_err(internal)?;
            let sup = app.supervisor.clone();
            let _ = self.shared.supervisor.set(sup);
        }
        Ok(InitializeResult {
            server_info: Some(ServerInfo {
                name: "boo".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            capabilities: ServerCapabilities {
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: vec!["boo.launchFlow".into(), "boo.cancelRun".into()],
                    work_done_progress_options: Default::default(),
                }),
                // Flows as code actions, for clients that send commands only that way.
                code_action_provider: Some(CodeActionProviderCapability::Options(
                    CodeActionOptions {
                        code_action_kinds: Some(vec![CodeActionKind::new(actions::KIND)]),
                        ..Default::default()
                    },
                )),
                experimental: Some(json!({
                    "boo": {
                        "protocolVersion": PROTOCOL_VERSION,
                        "methods": wire::REQUESTS,
                        "notifications": wire::NOTIFICATIONS,
                        "cancelEndedRun": "error -32004",
                    }
                })),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        if let Ok(sup) = self.sup() {
            let sup = sup.clone();
            if let Some(root) = self.workspace_root() {
                let s2 = sup.clone();
                tokio::spawn(
                    async move { s2.republish_findings(root.display().to_string()).await },
                );
            }
            let token = self.shared.shutdown.clone();
            tokio::spawn(async move {
                sup.heartbeat_loop(true, token).await;
            });
        }
    }

    async fn shutdown(&self) -> Result<()> {
        self.shared.shut_down.store(true, Ordering::SeqCst);
        self.shared.shutdown.cancel();
        if let Some(sup) = self.shared.supervisor.get() {
            sup.shutdown().await;
            let _ = sup.store.flush().await;
        }
        Ok(())
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let root = self.workspace_root();
        let file = params
            .text_document
            .uri
            .to_file_path()
            .map(|p| p.into_owned());
        let (start, end) = (params.range.start, params.range.end);
        let focus = file.as_deref().and_then(|f| {
            actions::selection(f, (start.line, start.character), (end.line, end.character))
        });
        let rel = match (&file, &root) {
            (Some(f), Some(r)) => f.strip_prefix(r).ok().map(|p| p.display().to_string()),
            _ => None,
        };
        let root_text = root.as_ref().map(|r| r.display().to_string());
        Ok(Some(actions::flow_actions(
            root_text.as_deref(),
            rel.as_deref(),
            focus.as_deref(),
        )))
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        let arg = params
            .arguments
            .first()
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        match params.command.as_str() {
            "boo.launchFlow" => self.launch_flow(arg).await.map(Some),
            "boo.cancelRun" => self.cancel_run(arg).await.map(Some),
            other => Err(invalid(format!(
                "command: unknown command {other:?}; this server runs boo.launchFlow and boo.cancelRun"
            ))),
        }
    }
}

/// Delivers outbox messages to the LSP client.
struct LspTransport {
    client: Client,
    progress: bool,
    out: outbox::OutboxSender,
    /// Progress tokens: messages wait until the client acknowledged the token.
    tokens: HashMap<String, Option<Vec<ProgressKind>>>,
    diagnostics: bool,
    /// (root, flow) → file → diagnostics, so a newer run of a flow replaces its own
    /// diagnostics without touching other flows' diagnostics on the same file.
    published: BTreeMap<(String, String), BTreeMap<String, Vec<FindingDiagnostic>>>,
}

impl LspTransport {
    async fn progress(&mut self, run_id: &str, kind: ProgressKind) {
        let token = format!("boo-run-{run_id}");
        let value = match kind {
            ProgressKind::Begin { title, message } => {
                json!({ "kind": "begin", "title": title, "message": message, "cancellable": false, "percentage": 0 })
            }
            ProgressKind::Report {
                message,
                percentage,
            } => {
                json!({ "kind": "report", "message": message, "percentage": percentage })
            }
            ProgressKind::End { message } => json!({ "kind": "end", "message": message }),
        };
        self.client
            .send_notification::<wire::Progress>(json!({ "token": token, "value": value }))
            .await;
    }

    async fn publish(&mut self, root: String, flow: String, diags: Vec<FindingDiagnostic>) {
        let mut by_file: BTreeMap<String, Vec<FindingDiagnostic>> = BTreeMap::new();
        for d in diags {
            by_file.entry(d.path.clone()).or_default().push(d);
        }
        let key = (root.clone(), flow);
        let old = self.published.insert(key, by_file).unwrap_or_default();
        let mut files: Vec<String> = old.keys().cloned().collect();
        for m in self.published.values() {
            files.extend(m.keys().cloned());
        }
        files.sort();
        files.dedup();
        for file in files {
            let touched_now = self
                .published
                .iter()
                .any(|((r, _), m)| *r == root && m.contains_key(&file));
            if !touched_now && !old.contains_key(&file) {
                continue;
            }
            let all: Vec<Value> = self
                .published
                .iter()
                .filter(|((r, _), _)| *r == root)
                .flat_map(|(_, m)| m.get(&file).cloned().unwrap_or_default())
                .map(|d| wire::diagnostic_json(&d))
                .collect();
            let path = PathBuf::from(&root).join(&file);
            let Some(uri) = Uri::from_file_path(&path) else {
                continue;
            };
            self.client
                .send_notification::<wire::PublishDiagnostics>(
                    json!({ "uri": uri, "diagnostics": all }),
                )
                .await;
        }
    }
}

impl Transport for LspTransport {
    fn deliver(&mut self, msg: Out) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match msg {
                Out::RunStarted(m) => {
                    self.client
                        .send_notification::<wire::RunStartedN>(wire::to_value(&m))
                        .await
                }
                Out::StepUpdated(m) => {
                    self.client
                        .send_notification::<wire::StepUpdatedN>(wire::to_value(&m))
                        .await
                }
                Out::Stream(m) => {
                    self.client
                        .send_notification::<wire::AgentStreamN>(wire::to_value(&m))
                        .await
                }
                Out::Trace(m) => {
                    self.client
                        .send_notification::<wire::TraceN>(wire::to_value(&m))
                        .await
                }
                Out::Findings {
                    root,
                    flow,
                    diagnostics,
                    ..
                } => {
                    if self.diagnostics {
                        self.publish(root, flow, diagnostics).await;
                    }
                }
                Out::Progress { run_id, kind } => {
                    if !self.progress {
                        return;
                    }
                    let is_begin = matches!(kind, ProgressKind::Begin { .. });
                    match self.tokens.get_mut(&run_id) {
                        Some(Some(buffer)) => buffer.push(kind),
                        Some(None) => {
                            let end = matches!(kind, ProgressKind::End { .. });
                            self.progress(&run_id, kind).await;
                            if end {
                                self.tokens.remove(&run_id);
                            }
                        }
                        None if is_begin => {
                            self.tokens.insert(run_id.clone(), Some(vec![kind]));
                            let client = self.client.clone();
                            let out = self.out.clone();
                            let token = format!("boo-run-{run_id}");
                            tokio::spawn(async move {
                                let _ = tokio::time::timeout(
                                    std::time::Duration::from_secs(5),
                                    client.send_request::<wire::CreateProgress>(
                                        json!({ "token": token }),
                                    ),
                                )
                                .await;
                                let _ = out.send(outbox::Out::Ready(run_id));
                            });
                        }
                        None => {}
                    }
                }
                Out::Ready(run_id) => {
                    if let Some(Some(buffer)) = self.tokens.insert(run_id.clone(), None) {
                        let mut ended = false;
                        for k in buffer {
                            ended |= matches!(k, ProgressKind::End { .. });
                            self.progress(&run_id, k).await;
                        }
                        if ended {
                            self.tokens.remove(&run_id);
                        }
                    }
                }
            }
        })
    }
}

/// The largest message boo accepts (a bigger one is skipped and logged).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Why a frame from the client was not passed on.
fn check_message(body: &[u8]) -> std::result::Result<(), (Option<Value>, String)> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Err((None, format!("the message body is not valid JSON ({e})"))),
    };
    let id = v.get("id").cloned();
    let Some(obj) = v.as_object() else {
        return Err((
            None,
            "the message is not a JSON object (batches are not supported)".into(),
        ));
    };
    if obj.get("jsonrpc").and_then(|j| j.as_str()) != Some("2.0") {
        return Err((id, "the message lacks \"jsonrpc\": \"2.0\"".into()));
    }
    let is_request = obj.get("method").is_some_and(|m| m.is_string());
    let is_response = id.is_some() && (obj.contains_key("result") || obj.contains_key("error"));
    if !is_request && !is_response {
        return Err((
            id,
            "the message is neither a request, a notification nor a response".into(),
        ));
    }
    if let Some(i) = &id {
        if !(i.is_string() || i.is_i64() || i.is_u64() || i.is_null()) {
            return Err((None, "the message id must be a number or a string".into()));
        }
    }
    Ok(())
}

fn framed(v: &Value) -> Vec<u8> {
    let body = v.to_string();
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Reads LSP frames from stdin and passes only well-formed messages on. A bad frame
/// (broken headers, invalid JSON, not a JSON-RPC message) would end tower-lsp's input
/// stream; here it becomes an `invalid request` answer (when it carried an id) or a
/// logged warning, and the server keeps serving.
fn sanitized_stdin() -> tokio::io::DuplexStream {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let (mut tx, rx) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let mut input = tokio::io::BufReader::with_capacity(1 << 16, tokio::io::stdin());
        let mut line = Vec::new();
        loop {
            let mut len: Option<usize> = None;
            let mut bad_header = false;
            loop {
                line.clear();
                match input.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if text.is_empty() {
                    if len.is_some() || bad_header {
                        break;
                    }
                    continue;
                }
                // Resynchronise on a Content-Length header even after stray bytes.
                let lower = text.to_ascii_lowercase();
                if let Some(pos) = lower.find("content-length:") {
                    let v = &text[pos + "content-length:".len()..];
                    len = v.trim().parse().ok();
                    bad_header = len.is_none();
                } else if !text.contains(':') {
                    bad_header = true;
                }
            }
            let Some(n) = len.filter(|_| !bad_header) else {
                tracing::warn!("skipped a message with a missing or invalid Content-Length header");
                continue;
            };
            if n > MAX_FRAME {
                tracing::warn!("skipped a message of {n} bytes (the limit is {MAX_FRAME})");
                let mut left = n as u64;
                let mut sink = tokio::io::sink();
                let mut take = (&mut input).take(left);
                left -= tokio::io::copy(&mut take, &mut sink).await.unwrap_or(0);
                if left > 0 {
                    return;
                }
                continue;
            }
            let mut body = vec![0u8; n];
            if input.read_exact(&mut body).await.is_err() {
                return;
            }
            let out = match check_message(&body) {
                Ok(()) => {
                    let mut f = format!("Content-Length: {n}\r\n\r\n").into_bytes();
                    f.extend_from_slice(&body);
                    f
                }
                Err((Some(id), why)) if !id.is_null() => {
                    tracing::warn!("answered an invalid request: {why}");
                    framed(
                        &json!({"jsonrpc": "2.0", "id": id, "method": wire::INVALID_REQUEST, "params": {"reason": why}}),
                    )
                }
                Err((_, why)) => {
                    tracing::warn!("dropped a malformed message: {why}");
                    framed(
                        &json!({"jsonrpc": "2.0", "method": wire::MALFORMED, "params": {"reason": why}}),
                    )
                }
            };
            if tx.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    rx
}

impl Backend {
    async fn invalid_request(&self, params: Value) -> Result<Value> {
        Err(Error {
            code: ErrorCode::InvalidRequest,
            message: format!(
                "invalid request: {}",
                params
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .unwrap_or("malformed")
            )
            .into(),
            data: None,
        })
    }

    async fn malformed(&self, params: Value) {
        let why = params
            .get("reason")
            .and_then(|r| r.as_str())
            .unwrap_or("malformed")
            .to_string();
        self.client
            .log_message(
                MessageType::WARNING,
                format!("boo ignored a malformed message: {why}"),
            )
            .await;
    }
}

/// `boo serve`: the stdio server. Returns the process exit code.
pub async fn serve(protocol_out: tokio::fs::File, config: Config) -> i32 {
    let shared = Arc::new(Shared {
        config,
        root: Mutex::new(None),
        supervisor: OnceLock::new(),
        shutdown: CancellationToken::new(),
        shut_down: AtomicBool::new(false),
        progress: AtomicBool::new(false),
    });
    let s2 = shared.clone();
    let (service, socket) = LspService::build(move |client| Backend {
        client,
        shared: s2.clone(),
    })
    .custom_method(wire::LIST_FLOWS, Backend::list_flows)
    .custom_method(wire::LAUNCH_FLOW, Backend::launch_flow)
    .custom_method(wire::LIST_RUNS, Backend::list_runs)
    .custom_method(wire::GET_RUN, Backend::get_run)
    .custom_method(wire::CANCEL_RUN, Backend::cancel_run)
    .custom_method(wire::EXPORT_RUN, Backend::export_run)
    .custom_method(wire::GET_TRACES, Backend::get_traces)
    .custom_method(wire::INVALID_REQUEST, Backend::invalid_request)
    .custom_method(wire::MALFORMED, Backend::malformed)
    .finish();
    let stdin = sanitized_stdin();
    Server::new(stdin, protocol_out, socket)
        .concurrency_level(32)
        .serve(service)
        .await;
    // The client went away (exit, or stdin closed). Without `shutdown`, stop runs so
    // they resume later rather than leaving agents behind.
    if !shared.shut_down.load(Ordering::SeqCst) {
        shared.shutdown.cancel();
        if let Some(sup) = shared.supervisor.get() {
            sup.shutdown().await;
            let _ = sup.store.flush().await;
        }
        return 1;
    }
    if let Some(sup) = shared.supervisor.get() {
        let _ = sup.store.flush().await;
    }
    0
}
