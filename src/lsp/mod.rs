//! The protocol layer: the ONLY code that knows JSON-RPC, LSP and the wire method
//! names. `ext` declares every `boo/*` request and notification with its types;
//! requests are registered by their `ext` type and read into it by `params`;
//! `convert` turns domain values (store rows, outbox messages) into wire types.
//! Everything below this module speaks plain domain types.

#[macro_use]
mod shape;
mod convert;
pub mod ext;
mod params;

use crate::agent::BoxFuture;
use crate::app::App;
use crate::config::{Config, InitOptions};
use crate::runner::outbox::{self, FindingDiagnostic, Out, ProgressKind, Transport};
use crate::runner::{CancelError, LaunchError, LaunchRequest, Supervisor};
use crate::store::queries;
use ext::{Notification as _, Request as _};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::notification::{Progress, PublishDiagnostics};
use tower_lsp_server::ls_types::request::WorkDoneProgressCreate;
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, LspServiceBuilder, Server};

mod actions;

pub const INVALID_PARAMS: i64 = -32602;
pub const NOT_FOUND: i64 = -32001;
pub const AGENT_UNAVAILABLE: i64 = -32003;
pub const INVALID_STATE: i64 = -32004;
pub const UNTRUSTED_ROOT: i64 = -32005;

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

fn unknown_run(run_id: &str) -> Error {
    rpc_error(
        NOT_FOUND,
        format!("unknown runId {run_id}: list runs with boo/listRuns"),
    )
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
        vision_model: v.get("visionModel").and_then(|x| x.as_bool()),
        model_aliases: v.get("modelAliases").and_then(|x| x.as_object()).map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let v = v.as_str()?.trim();
                    (!k.trim().is_empty() && !v.is_empty())
                        .then(|| (k.trim().to_string(), v.to_string()))
                })
                .collect()
        }),
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
    /// `initialize`'s `clientInfo.name`, recorded with a root the editor trusts.
    client_name: OnceLock<String>,
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

    async fn list_flows(&self, p: ext::ListFlowsParams) -> Result<ext::ListFlowsResult> {
        let root = p.root.map(PathBuf::from).or_else(|| self.workspace_root());
        let builtin_dir = self.shared.config.catalog_dir.clone();
        // Reading the project's catalog touches its files: never on the protocol's
        // thread, so a slow or hostile file system cannot stall the server.
        let for_catalog = root.clone();
        let cat = tokio::task::spawn_blocking(move || match for_catalog {
            Some(r) => crate::catalog::Catalog::for_root(&r, builtin_dir.as_deref()),
            None => crate::catalog::Catalog::builtin(builtin_dir.as_deref()),
        })
        .await
        .map_err(|e| {
            rpc_error(
                -32603,
                format!("reading the flow catalog failed: {e}; try again"),
            )
        })?;
        // Trust is recorded under the canonical path; before `initialize` (no database
        // yet) nothing is trusted.
        let trusted = match (root.and_then(|r| r.canonicalize().ok()), self.sup()) {
            (Some(r), Ok(sup)) => {
                let key = r.display().to_string();
                sup.store
                    .call(move |c| queries::is_trusted(c, &key))
                    .await
                    .map_err(internal)?
            }
            _ => false,
        };
        Ok(convert::flows(&cat, trusted))
    }

    async fn list_workflows(
        &self,
        p: ext::ListWorkflowsParams,
    ) -> Result<ext::ListWorkflowsResult> {
        let root = p
            .root
            .map(PathBuf::from)
            .or_else(|| self.workspace_root())
            .map(|r| r.canonicalize().unwrap_or(r));
        let config = &self.shared.config;
        let (builtin_dir, user_dir) = (
            config.catalog_dir.clone(),
            config.runner.user_workflows.clone(),
        );
        // Reading (and compiling) workflow files: never on the protocol's thread.
        let for_catalog = root.clone();
        let cat = tokio::task::spawn_blocking(move || {
            crate::catalog::workflows::WorkflowCatalog::load(
                crate::catalog::workflows::WorkflowDirs {
                    builtin_dir: builtin_dir.as_deref(),
                    user_dir: user_dir.as_deref(),
                    root: for_catalog.as_deref(),
                },
            )
        })
        .await
        .map_err(|e| {
            rpc_error(
                -32603,
                format!("reading the workflow catalog failed: {e}; try again"),
            )
        })?;
        let trusted = match (root, self.sup()) {
            (Some(r), Ok(sup)) => {
                let key = r.display().to_string();
                sup.store
                    .call(move |c| queries::is_trusted(c, &key))
                    .await
                    .map_err(internal)?
            }
            _ => false,
        };
        Ok(convert::workflows(&cat, trusted))
    }

    async fn trust_root(&self, p: ext::TrustRootParams) -> Result<ext::TrustRootResult> {
        let sup = self.sup()?;
        let root = PathBuf::from(&p.root).canonicalize().map_err(|e| {
            invalid(format!(
                "root: {} is not a readable directory ({e}); send the project folder's path",
                p.root
            ))
        })?;
        if !root.is_dir() {
            return Err(invalid(format!(
                "root: {} is not a directory; send the project folder's path",
                root.display()
            )));
        }
        let key = root.display().to_string();
        let trusted = p.trusted;
        let by = self.shared.client_name.get().cloned().unwrap_or_default();
        let by = if by.is_empty() {
            "boo/trustRoot".to_string()
        } else {
            format!("boo/trustRoot ({by})")
        };
        sup.store
            .call(move |c| queries::set_trusted(c, &key, trusted, &by))
            .await
            .map_err(internal)?;
        Ok(ext::TrustRootResult {
            root: root.display().to_string(),
            trusted,
        })
    }

    async fn launch_flow(&self, p: ext::LaunchFlowParams) -> Result<ext::LaunchFlowResult> {
        let sup = self.sup()?.clone();
        let ext::LaunchFlowParams {
            flow,
            band,
            input,
            root,
            model,
            fast,
            attachments,
            vision_model,
        } = p;
        let root = match root {
            Some(r) => PathBuf::from(r),
            None => self.workspace_root().ok_or_else(|| {
                invalid("root: no root was given and the client opened no workspace folder; send `root` with the project directory")
            })?,
        };
        let run_id = sup
            .launch(LaunchRequest {
                flow: flow.trim().to_string(),
                band: band.map_or(crate::model::Band::Small, Into::into),
                question: input.question,
                root,
                model,
                fast: fast.unwrap_or(false),
                attachments: convert::launch_attachments(attachments),
                vision: vision_model,
            })
            .await
            .map_err(|e| match e {
                LaunchError::Invalid(m) => invalid(m),
                LaunchError::Unavailable(m) => rpc_error(AGENT_UNAVAILABLE, m),
                e @ (LaunchError::Untrusted { .. } | LaunchError::UntrustedWorkflow { .. }) => {
                    rpc_error(UNTRUSTED_ROOT, e.to_string())
                }
                LaunchError::Internal(m) => internal(m),
            })?;
        Ok(ext::LaunchFlowResult { run_id })
    }

    async fn launch_workflow(
        &self,
        p: ext::LaunchWorkflowParams,
    ) -> Result<ext::LaunchWorkflowResult> {
        let sup = self.sup()?.clone();
        let root = match p.root {
            Some(r) => PathBuf::from(r),
            None => self.workspace_root().ok_or_else(|| {
                invalid("root: no root was given and the client opened no workspace folder; send `root` with the project directory")
            })?,
        };
        use crate::runner::workflow::ScriptRef;
        let script = match (p.workflow, p.script, p.script_path) {
            (Some(name), None, None) => ScriptRef::Named(name),
            (None, Some(text), None) => ScriptRef::Text(text),
            (None, None, Some(file)) => ScriptRef::Path(PathBuf::from(file)),
            _ => {
                return Err(invalid(
                    "workflow, script, scriptPath: send exactly one of them (a name from boo/listWorkflows, the source text, or a file)",
                ))
            }
        };
        let run_id = sup
            .launch_workflow(crate::runner::workflow::WorkflowLaunch {
                script,
                args: p.args,
                root,
                model: p.model,
                budget: p.budget,
                fresh: p.fresh.unwrap_or(false),
                attachments: convert::launch_attachments(p.attachments),
                vision: p.vision_model,
            })
            .await
            .map_err(|e| match e {
                LaunchError::Invalid(m) => invalid(m),
                LaunchError::Unavailable(m) => rpc_error(AGENT_UNAVAILABLE, m),
                e @ (LaunchError::Untrusted { .. } | LaunchError::UntrustedWorkflow { .. }) => {
                    rpc_error(UNTRUSTED_ROOT, e.to_string())
                }
                LaunchError::Internal(m) => internal(m),
            })?;
        Ok(ext::LaunchWorkflowResult { run_id })
    }

    async fn spawn_agent(&self, p: ext::SpawnAgentParams) -> Result<ext::SpawnAgentResult> {
        let sup = self.sup()?.clone();
        let root = match p.root {
            Some(r) => PathBuf::from(r),
            None => self.workspace_root().ok_or_else(|| {
                invalid("root: no root was given and the client opened no workspace folder; send `root` with the project directory")
            })?,
        };
        let run_id = sup
            .launch_agent(crate::runner::agent_run::AgentLaunch {
                persona: p.persona,
                prompt: p.prompt,
                root,
                model: p.model,
                attachments: convert::launch_attachments(p.attachments),
                vision: p.vision_model,
            })
            .await
            .map_err(|e| match e {
                LaunchError::Invalid(m) => invalid(m),
                LaunchError::Unavailable(m) => rpc_error(AGENT_UNAVAILABLE, m),
                e @ (LaunchError::Untrusted { .. } | LaunchError::UntrustedWorkflow { .. }) => {
                    rpc_error(UNTRUSTED_ROOT, e.to_string())
                }
                LaunchError::Internal(m) => internal(m),
            })?;
        Ok(ext::SpawnAgentResult { run_id })
    }

    async fn list_agents(&self, p: ext::ListAgentsParams) -> Result<ext::ListAgentsResult> {
        let sup = self.sup()?;
        let root = match p.root {
            Some(Some(r)) => Some(
                PathBuf::from(&r)
                    .canonicalize()
                    .map(|p| p.display().to_string())
                    .unwrap_or(r),
            ),
            Some(None) => None,
            None => self.workspace_root().map(|p| p.display().to_string()),
        };
        let limit = p.limit.unwrap_or(50);
        let status = p.status.map(crate::model::RunStatus::from);
        let rows = sup
            .store
            .call(move |c| queries::list_agents(c, root.as_deref(), status, limit))
            .await
            .map_err(internal)?;
        Ok(ext::ListAgentsResult {
            agents: rows.into_iter().map(convert::agent_summary).collect(),
        })
    }

    async fn list_runs(&self, p: ext::ListRunsParams) -> Result<ext::ListRunsResult> {
        let sup = self.sup()?;
        let root = match p.root {
            Some(Some(r)) => Some(
                PathBuf::from(&r)
                    .canonicalize()
                    .map(|p| p.display().to_string())
                    .unwrap_or(r),
            ),
            Some(None) => None,
            None => self.workspace_root().map(|p| p.display().to_string()),
        };
        let limit = p.limit.unwrap_or(50);
        let before = p.before;
        let (runs, next) = sup
            .store
            .call(move |c| queries::list_runs(c, root.as_deref(), limit, before.as_deref()))
            .await
            .map_err(internal)?;
        Ok(ext::ListRunsResult {
            runs: runs.into_iter().map(Into::into).collect(),
            next,
        })
    }

    async fn get_run(&self, p: ext::GetRunParams) -> Result<ext::GetRunResult> {
        let sup = self.sup()?;
        let transcript = p.transcript.unwrap_or(false);
        let id = p.run_id.clone();
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
                let log = queries::get_log(c, &id)?;
                let attachments = queries::run_attachments(c, &id)?;
                Ok(Some((run, steps, turns, log, attachments)))
            })
            .await
            .map_err(internal)?;
        let Some((run, steps, turns, log, attachments)) = got else {
            return Err(unknown_run(&p.run_id));
        };
        // Each step also carries the usage of every model turn (with its cache hit rate).
        // Counts qwen reported as 0 come from the model proxy's records (turn_usages);
        // the run's usage is the sum of its steps' (as stored), so it is summed again.
        let mut run = run;
        let mut total = crate::model::Usage::default();
        let steps: Vec<ext::Step> = steps
            .into_iter()
            .map(|mut s| {
                let mine: Vec<&(String, u32, crate::model::Usage)> =
                    turns.iter().filter(|t| t.0 == s.step.step_id).collect();
                let mut proxied = crate::model::Usage::default();
                mine.iter().for_each(|t| proxied.add(&t.2));
                let filled = s.step.usage.counts().or_from(proxied);
                total.add(&filled);
                s.step.usage = filled.into();
                let per_turn = mine
                    .iter()
                    .map(|(_, turn, usage)| ext::TurnUsage {
                        turn: *turn,
                        usage: (*usage).into(),
                    })
                    .collect();
                convert::step(s.step, per_turn)
            })
            .collect();
        run.run.usage = total.into();
        let workflow = crate::runner::workflow::is_workflow(&run.meta).then(|| {
            // What the budget counts: tokens of agents that ran (a cached answer is free).
            let spent: u64 = steps
                .iter()
                .filter(|s| !s.cached)
                .map(|s| s.usage.output_tokens)
                .sum();
            let mut wf = run.meta.get("workflow").cloned().unwrap_or_default();
            if let Some(b) = wf.get_mut("budget").and_then(|b| b.as_object_mut()) {
                b.insert("spent".into(), spent.into());
            }
            wf
        });
        let mut wire: ext::Run = run.run.into();
        wire.attachments = attachments.into_iter().map(convert::attachment).collect();
        if let Some(wf) = workflow {
            wire.workflow = Some(wf);
            wire.result = run.meta.get("result").cloned();
            wire.log = Some(
                log.into_iter()
                    .map(|l| ext::RunLogLine {
                        seq: l.seq,
                        kind: l.kind,
                        message: l.message,
                        at: l.at,
                    })
                    .collect(),
            );
        }
        Ok(ext::GetRunResult {
            run: wire,
            steps,
            report: run.report,
        })
    }

    async fn get_attachment(
        &self,
        p: ext::GetAttachmentParams,
    ) -> Result<ext::GetAttachmentResult> {
        let sup = self.sup()?;
        let id = p.attachment_id.clone();
        let got = sup
            .store
            .call(move |c| queries::get_attachment(c, &id))
            .await
            .map_err(internal)?;
        let Some((info, data)) = got else {
            return Err(rpc_error(
                NOT_FOUND,
                format!(
                    "unknown attachmentId {}: a run's attachments are listed by boo/getRun (an image goes when `boo gc` removes its last run)",
                    p.attachment_id
                ),
            ));
        };
        Ok(ext::GetAttachmentResult {
            name: info.name,
            mime_type: info.mime_type,
            data: crate::attach::base64_encode(&data),
        })
    }

    async fn cancel_run(&self, p: ext::CancelRunParams) -> Result<ext::CancelRunResult> {
        let sup = self.sup()?.clone();
        match sup.cancel(&p.run_id).await {
            Ok(status) => Ok(ext::CancelRunResult {
                run_id: p.run_id,
                status: status.into(),
            }),
            Err(CancelError::NotFound(id)) => Err(unknown_run(&id)),
            Err(e @ CancelError::Ended(..)) => Err(rpc_error(INVALID_STATE, e.to_string())),
            Err(CancelError::Internal(m)) => Err(internal(m)),
        }
    }

    async fn export_run(&self, p: ext::ExportRunParams) -> Result<ext::ExportRunResult> {
        let sup = self.sup()?;
        let format = p.format.unwrap_or(ext::ExportFormat::Markdown);
        let exported = crate::export::export(&sup.store, &p.run_id, format.as_str())
            .await
            .map_err(internal)?;
        match exported {
            Some((content, file_name)) => Ok(ext::ExportRunResult { content, file_name }),
            None => Err(unknown_run(&p.run_id)),
        }
    }

    async fn get_traces(&self, p: ext::GetTracesParams) -> Result<ext::GetTracesResult> {
        let sup = self.sup()?;
        let cursor = match p.cursor.as_deref().map(str::parse::<i64>).transpose() {
            Ok(c) => c.unwrap_or(0),
            Err(_) => {
                return Err(invalid(
                    "cursor: the `nextCursor` string of a previous page",
                ))
            }
        };
        let limit = p.limit.unwrap_or(200);
        let (id, step) = (p.run_id.clone(), p.step_id);
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
            return Err(unknown_run(&p.run_id));
        };
        Ok(ext::GetTracesResult {
            traces: traces.into_iter().map(Into::into).collect(),
            next_cursor: next.map(|n| n.to_string()),
        })
    }
}

impl Backend {
    async fn get_model_calls(
        &self,
        p: ext::GetModelCallsParams,
    ) -> Result<ext::GetModelCallsResult> {
        let sup = self.sup()?;
        let cursor = match p.cursor.as_deref().map(str::parse::<i64>).transpose() {
            Ok(c) => c.unwrap_or(0),
            Err(_) => {
                return Err(invalid(
                    "cursor: the `nextCursor` string of a previous page",
                ))
            }
        };
        let limit = p.limit.unwrap_or(200);
        let (id, step) = (p.run_id.clone(), p.step_id);
        let got = sup
            .store
            .call(move |c| {
                if queries::get_run(c, &id)?.is_none() {
                    return Ok(None);
                }
                Ok(Some(queries::list_model_calls(
                    c,
                    &id,
                    step.as_deref(),
                    cursor,
                    limit,
                )?))
            })
            .await
            .map_err(internal)?;
        let Some((calls, next)) = got else {
            return Err(unknown_run(&p.run_id));
        };
        Ok(ext::GetModelCallsResult {
            calls: calls.into_iter().map(Into::into).collect(),
            next_cursor: next.map(|n| n.to_string()),
        })
    }
}

/// A `boo/*` request the server answers: its `ext` type and the handler.
trait Handle: ext::Request + 'static {
    fn handle(b: &Backend, p: Self::Params) -> impl Future<Output = Result<Self::Result>> + Send;
}

/// Reads the params of `R` (a refused field is `-32602` naming it) and answers.
async fn answer<R: Handle>(b: &Backend, params: Value) -> Result<R::Result>
where
    R::Params: params::Params,
{
    let p = params::parse::<R::Params>(params).map_err(invalid)?;
    R::handle(b, p).await
}

/// Pairs each request type with its handler and registers them all.
macro_rules! handlers {
    ($($ty:ty => $method:ident;)*) => {
        $(impl Handle for $ty {
            fn handle(
                b: &Backend,
                p: <$ty as ext::Request>::Params,
            ) -> impl Future<Output = Result<<$ty as ext::Request>::Result>> + Send {
                b.$method(p)
            }
        })*

        fn register(builder: LspServiceBuilder<Backend>) -> LspServiceBuilder<Backend> {
            builder$(.custom_method(<$ty>::METHOD, answer::<$ty>))*
        }

        /// The methods `register` answers.
        #[cfg(test)]
        const HANDLED: &[&str] = &[$(<$ty>::METHOD),*];
    };
}

handlers! {
    ext::ListFlows => list_flows;
    ext::LaunchFlow => launch_flow;
    ext::ListWorkflows => list_workflows;
    ext::LaunchWorkflow => launch_workflow;
    ext::GetAttachment => get_attachment;
    ext::ListRuns => list_runs;
    ext::SpawnAgent => spawn_agent;
    ext::ListAgents => list_agents;
    ext::GetRun => get_run;
    ext::CancelRun => cancel_run;
    ext::ExportRun => export_run;
    ext::GetTraces => get_traces;
    ext::GetModelCalls => get_model_calls;
    ext::TrustRoot => trust_root;
}

fn to_json<T: serde::Serialize>(v: T) -> Result<Value> {
    serde_json::to_value(v).map_err(internal)
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
        if let Some(info) = &params.client_info {
            let _ = self.shared.client_name.set(info.name.clone());
        }
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
                    commands: vec![
                        ext::LAUNCH_FLOW_COMMAND.into(),
                        ext::CANCEL_RUN_COMMAND.into(),
                    ],
                    work_done_progress_options: Default::default(),
                }),
                // Flows as code actions, for clients that send commands only that way.
                code_action_provider: Some(CodeActionProviderCapability::Options(
                    CodeActionOptions {
                        code_action_kinds: Some(vec![CodeActionKind::new(actions::KIND)]),
                        ..Default::default()
                    },
                )),
                experimental: Some(json!({ "boo": to_json(ext::BooCapabilities {
                    protocol_version: ext::PROTOCOL_VERSION,
                    methods: ext::REQUESTS.iter().map(|m| m.to_string()).collect(),
                    notifications: ext::NOTIFICATIONS.iter().map(|m| m.to_string()).collect(),
                    cancel_ended_run: "error -32004".into(),
                    features: vec![
                        "workflows".into(),
                        "backgroundAgents".into(),
                        "attachments".into(),
                        "modelCalls".into(),
                    ],
                })? })),
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
        // Read off the protocol thread: the file may be large, or not a file at all.
        let focus = match file.clone() {
            Some(f) => tokio::task::spawn_blocking(move || {
                actions::selection(&f, (start.line, start.character), (end.line, end.character))
            })
            .await
            .ok()
            .flatten(),
            None => None,
        };
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
            ext::LAUNCH_FLOW_COMMAND => {
                to_json(answer::<ext::LaunchFlow>(self, arg).await?).map(Some)
            }
            ext::CANCEL_RUN_COMMAND => {
                to_json(answer::<ext::CancelRun>(self, arg).await?).map(Some)
            }
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
        self.client
            .send_notification::<Progress>(ProgressParams {
                token: NumberOrString::String(format!("boo-run-{run_id}")),
                value: ProgressParamsValue::WorkDone(convert::progress(kind)),
            })
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
            let all: Vec<Diagnostic> = self
                .published
                .iter()
                .filter(|((r, _), _)| *r == root)
                .flat_map(|(_, m)| m.get(&file).cloned().unwrap_or_default())
                .map(|d| convert::diagnostic(&d))
                .collect();
            let path = PathBuf::from(&root).join(&file);
            let Some(uri) = Uri::from_file_path(&path) else {
                continue;
            };
            self.client
                .send_notification::<PublishDiagnostics>(PublishDiagnosticsParams {
                    uri,
                    diagnostics: all,
                    version: None,
                })
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
                        .send_notification::<ext::RunStarted>(m.into())
                        .await
                }
                Out::StepUpdated(m) => {
                    self.client
                        .send_notification::<ext::StepUpdated>(m.into())
                        .await
                }
                Out::Stream(m) => {
                    self.client
                        .send_notification::<ext::AgentStream>(m.into())
                        .await
                }
                Out::Trace(m) => {
                    self.client
                        .send_notification::<ext::TraceNote>(m.into())
                        .await
                }
                Out::ModelCall(m) => {
                    self.client
                        .send_notification::<ext::ModelCallNote>(m.into())
                        .await
                }
                Out::StepAdded(m) => {
                    self.client
                        .send_notification::<ext::StepAdded>(m.into())
                        .await
                }
                Out::RunLog(m) => self.client.send_notification::<ext::RunLog>(m.into()).await,
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
                                    client.send_request::<WorkDoneProgressCreate>(
                                        WorkDoneProgressCreateParams {
                                            token: NumberOrString::String(token),
                                        },
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
/// The top-level keys of a JSON object in the order written, repeats included (a
/// `Value` keeps only the last of a repeated key; tower-lsp's own reader refuses the
/// message and ends the input stream).
struct TopLevelKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for TopLevelKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = TopLevelKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<TopLevelKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(TopLevelKeys(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

fn check_message(body: &[u8]) -> std::result::Result<(), (Option<Value>, String)> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Err((None, format!("the message body is not valid JSON ({e})"))),
    };
    let id = v.get("id").cloned();
    if let Ok(TopLevelKeys(keys)) = serde_json::from_slice::<TopLevelKeys>(body) {
        let mut seen = std::collections::HashSet::new();
        if let Some(k) = keys.iter().find(|k| !seen.insert(k.as_str())) {
            // Which of the repeated values is meant is anyone's guess: answer none.
            return Err((None, format!("the message repeats the key {k:?}")));
        }
    }
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
        if !(i.is_string() || i.is_i64() || i.is_null()) {
            let why = if i.is_u64() {
                "the message id is a number too large for a signed 64-bit integer"
            } else {
                "the message id must be a number or a string"
            };
            return Err((None, why.into()));
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
                        &json!({"jsonrpc": "2.0", "id": id, "method": ext::InvalidRequest::METHOD, "params": {"reason": why}}),
                    )
                }
                Err((_, why)) => {
                    tracing::warn!("dropped a malformed message: {why}");
                    framed(
                        &json!({"jsonrpc": "2.0", "method": ext::MalformedMessage::METHOD, "params": {"reason": why}}),
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
    /// A refused frame that carried an id: `-32600`, saying why.
    async fn invalid_request(&self, params: Value) -> Result<Value> {
        let why = params::parse::<ext::RefusedFrame>(params)
            .map(|f| f.reason)
            .unwrap_or_else(|_| "malformed".into());
        Err(Error {
            code: ErrorCode::InvalidRequest,
            message: format!("invalid request: {why}").into(),
            data: None,
        })
    }

    /// A refused frame without an id: logged to the client.
    async fn malformed(&self, params: Value) {
        let why = params::parse::<ext::RefusedFrame>(params)
            .map(|f| f.reason)
            .unwrap_or_else(|_| "malformed".into());
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
        client_name: OnceLock::new(),
    });
    let s2 = shared.clone();
    let builder = LspService::build(move |client| Backend {
        client,
        shared: s2.clone(),
    });
    let (service, socket) = register(builder)
        .custom_method(ext::InvalidRequest::METHOD, Backend::invalid_request)
        .custom_method(ext::MalformedMessage::METHOD, Backend::malformed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_has_a_handler() {
        let mut handled = HANDLED.to_vec();
        let mut declared = ext::REQUESTS.to_vec();
        handled.sort();
        declared.sort();
        assert_eq!(handled, declared);
    }
}

#[cfg(test)]
mod frame_filter {
    use super::check_message;
    use serde_json::Value;

    /// A small deterministic generator (xorshift): the same cases on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[(self.next() % xs.len() as u64) as usize]
        }
    }

    /// What the filter lets through is a message tower-lsp can read: one JSON
    /// object, no repeated top-level key, `"jsonrpc": "2.0"`, a method or a
    /// result/error, and an id that is a string, a signed 64-bit integer or null.
    fn acceptable(body: &str) -> bool {
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(body) else {
            return false;
        };
        let Ok(super::TopLevelKeys(keys)) = serde_json::from_str::<super::TopLevelKeys>(body)
        else {
            return false;
        };
        let mut seen = std::collections::HashSet::new();
        keys.iter().all(|k| seen.insert(k.clone()))
            && o.get("jsonrpc").and_then(Value::as_str) == Some("2.0")
            && o.get("id")
                .is_none_or(|i| i.is_string() || i.is_i64() || i.is_null())
            && (o.get("method").is_some_and(Value::is_string)
                || (o.contains_key("id") && (o.contains_key("result") || o.contains_key("error"))))
    }

    #[test]
    fn what_passes_the_filter_is_always_a_readable_message() {
        let keys = [
            "\"jsonrpc\"",
            "\"id\"",
            "\"method\"",
            "\"params\"",
            "\"result\"",
            "\"error\"",
            "\"x\"",
        ];
        let values = [
            "\"2.0\"",
            "\"1.0\"",
            "1",
            "-1",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "1.5",
            "null",
            "\"boo/listFlows\"",
            "{}",
            "[]",
            "true",
            "{\"a\":{\"b\":[1,2,{\"c\":null}]}}",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut passed = 0;
        for _ in 0..20_000 {
            let n = 1 + rng.next() % 6;
            let mut fields: Vec<String> = (0..n)
                .map(|_| format!("{}:{}", rng.pick(&keys), rng.pick(&values)))
                .collect();
            if rng.next() % 2 == 0 {
                // Half the cases start from a good request and get mangled from there.
                fields.insert(0, "\"jsonrpc\":\"2.0\",\"method\":\"boo/listFlows\"".into());
            }
            let body = format!("{{{}}}", fields.join(","));
            let ok = check_message(body.as_bytes()).is_ok();
            assert_eq!(ok, acceptable(&body), "{body}");
            passed += usize::from(ok);
        }
        // The generator reaches both sides of the filter.
        assert!(passed > 100, "{passed}");
    }
}
