//! The command line: the same engine as the server, without an editor.

use crate::agent::acp::AcpBackend;
use crate::agent::harden::{landlock_abi, SandboxMode};
use crate::agent::qwen::QwenBackend;
use crate::agent::{AgentBackend, AgentTransport, BoxFuture};
use crate::app::{self, App};
use crate::catalog::Catalog;
use crate::clock;
use crate::config::Config;
use crate::model::{Band, Category, RunStatus, StepStatus, StreamEvent, TraceOutcome, Usage};
use crate::runner::outbox::{Out, Transport};
use crate::runner::{LaunchError, LaunchRequest};
use crate::store::{queries, Store};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

fn open_store(config: &Config) -> Result<Store, i32> {
    app::open_store(config).map_err(|e| {
        eprintln!("boo: {e}");
        1
    })
}

/// Whether the user trusts `root` (its canonical path), read from the database.
async fn is_trusted(store: &Store, root: &std::path::Path) -> Result<bool, String> {
    let key = root.display().to_string();
    store
        .call(move |c| queries::is_trusted(c, &key))
        .await
        .map_err(|e| e.to_string())
}

fn canonical_root(root: &std::path::Path) -> Result<PathBuf, String> {
    let r = root
        .canonicalize()
        .map_err(|e| format!("{} is not a readable directory ({e})", root.display()))?;
    if !r.is_dir() {
        return Err(format!("{} is not a directory", r.display()));
    }
    Ok(r)
}

/// `boo trust ROOT`, `boo trust --revoke ROOT`, `boo trust --list`.
pub async fn trust(config: &Config, root: Option<PathBuf>, revoke: bool, list: bool) -> i32 {
    let Ok(store) = open_store(config) else {
        return 1;
    };
    if list {
        return match store.call(queries::trusted_roots).await {
            Ok(roots) if roots.is_empty() => {
                eprintln!("no trusted folders (trust one with `boo trust <root>`)");
                0
            }
            Ok(roots) => {
                for r in roots {
                    println!("{}\t{}\t{}", r.root, r.trusted_at, r.trusted_by);
                }
                0
            }
            Err(e) => {
                eprintln!("boo: {e}");
                1
            }
        };
    }
    let Some(root) = root else {
        eprintln!("boo: name the project folder: boo trust <root>");
        return 2;
    };
    let root = match canonical_root(&root) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("boo: {e}");
            return 2;
        }
    };
    let key = root.display().to_string();
    let trusted = !revoke;
    match store
        .call(move |c| queries::set_trusted(c, &key, trusted, "boo trust"))
        .await
    {
        Ok(before) => {
            match (trusted, before) {
                (true, true) => eprintln!("{} was already trusted", root.display()),
                (true, false) => eprintln!(
                    "trusted {}: its own flows (.boo/) may run now; `boo trust --revoke {}` withdraws that",
                    root.display(),
                    root.display()
                ),
                (false, true) => eprintln!(
                    "{} is no longer trusted: its own flows will not run",
                    root.display()
                ),
                (false, false) => eprintln!("{} was not trusted", root.display()),
            }
            0
        }
        Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}

pub async fn flows(config: &Config, root: Option<PathBuf>) -> i32 {
    let builtin_dir = config.catalog_dir.as_deref();
    let root = match root.as_deref().map(canonical_root).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("boo: --root: {e}");
            return 2;
        }
    };
    let cat = match &root {
        Some(r) => Catalog::for_root(r, builtin_dir),
        None => Catalog::builtin(builtin_dir),
    };
    let trusted = match &root {
        Some(r) if !cat.project_flows.is_empty() => {
            let Ok(store) = open_store(config) else {
                return 1;
            };
            match is_trusted(&store, r).await {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("boo: {e}");
                    return 1;
                }
            }
        }
        _ => false,
    };
    let mut out = String::new();
    for cat_name in Category::ALL {
        let flows: Vec<_> = cat
            .flows
            .values()
            .filter(|f| f.category == cat_name)
            .collect();
        if flows.is_empty() {
            continue;
        }
        let mut title = cat_name.as_str().to_string();
        title[..1].make_ascii_uppercase();
        out.push_str(&format!("{title}\n"));
        for f in flows {
            let sizes: Vec<String> = Band::ALL
                .iter()
                .map(|b| {
                    let n = crate::engine::roster(f, *b)
                        .iter()
                        .filter(|s| s.kind == crate::model::StepKind::Agent)
                        .count();
                    format!("{}:{n}", &b.as_str()[..1])
                })
                .collect();
            let from = match (cat.is_project(&f.name), trusted) {
                (false, _) => "",
                (true, true) => "  (project)",
                (true, false) => "  (project, untrusted)",
            };
            out.push_str(&format!(
                "  {:<24} {}  [agents {}]{from}\n",
                f.name,
                f.description.lines().next().unwrap_or(""),
                sizes.join(" ")
            ));
        }
        out.push('\n');
    }
    print!("{out}");
    if let (Some(r), false) = (&root, trusted || cat.project_flows.is_empty()) {
        eprintln!(
            "boo: {}'s own flows will not run until you review its .boo/ folder and trust it: boo trust {}",
            r.display(),
            r.display()
        );
    }
    for e in &cat.errors {
        eprintln!("boo: catalog problem: {e}");
    }
    if cat.errors.is_empty() {
        0
    } else {
        1
    }
}

/// Prints run progress on stderr.
struct CliTransport {
    started: Instant,
    steps: HashMap<String, String>,
    /// A workflow run: also print its progress reports (agents, cache hits, tokens
    /// against the budget).
    workflow: bool,
}

impl CliTransport {
    fn line(&self, s: &str) {
        let el = self.started.elapsed().as_secs_f64();
        eprintln!("[{el:>6.1}s] {s}");
    }
}

impl Transport for CliTransport {
    fn deliver(&mut self, msg: Out) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match msg {
                Out::RunStarted(m) if self.workflow => {
                    self.line(&format!(
                        "run {} · workflow {}{}",
                        m.run_id,
                        m.flow,
                        if m.resumed { " (resumed)" } else { "" }
                    ));
                    for s in m.steps {
                        self.steps.insert(s.step_id.clone(), s.agent.clone());
                    }
                }
                Out::RunStarted(m) => {
                    let waves = m.steps.iter().map(|s| s.wave).max().unwrap_or(0);
                    self.line(&format!(
                        "run {} · {} · {} · {} steps in {} waves{}",
                        m.run_id,
                        m.flow,
                        m.band
                            .map(|b| format!("band {b}"))
                            .unwrap_or_else(|| "workflow".into()),
                        m.steps.len(),
                        waves,
                        if m.resumed { " (resumed)" } else { "" }
                    ));
                    for s in m.steps {
                        self.steps.insert(s.step_id.clone(), s.agent.clone());
                    }
                }
                Out::StepUpdated(u) => {
                    let agent = self.steps.get(&u.step_id).cloned().unwrap_or_default();
                    if let Some(st) = u.status {
                        let glyph = match st {
                            StepStatus::Running => "▶",
                            StepStatus::Completed => "✓",
                            StepStatus::Failed => "✗",
                            StepStatus::Skipped => "·",
                            StepStatus::Cancelled => "■",
                            StepStatus::Pending => " ",
                        };
                        let mut s = format!("{glyph} {} ({agent}) {}", u.step_id, st.as_str());
                        if let Some(us) = u.usage {
                            if us.total_tokens > 0 {
                                s.push_str(&format!(
                                    " · {} in / {} out tokens",
                                    us.input_tokens, us.output_tokens
                                ));
                            }
                        }
                        if st == StepStatus::Failed {
                            if let Some(e) = &u.error {
                                s.push_str(&format!(" · {}", e.lines().next().unwrap_or("")));
                            }
                        }
                        self.line(&s);
                    }
                    if let Some(rs) = u.run_status {
                        let tokens = u.run_usage.map(|x| x.total_tokens).unwrap_or(0);
                        self.line(&format!("run {} · {tokens} tokens", rs.as_str()));
                        if let Some(e) = u.run_error {
                            self.line(&format!("  {e}"));
                        }
                    }
                }
                Out::StepAdded(a) => {
                    self.steps.insert(a.step_id.clone(), a.agent.clone());
                    let phase = a.phase.map(|p| format!(" [{p}]")).unwrap_or_default();
                    let cached = if a.cached { " (cached)" } else { "" };
                    self.line(&format!(
                        "+ {} ({}){phase} {}{cached}",
                        a.step_id, a.agent, a.label
                    ));
                }
                Out::RunLog(l) => {
                    if l.kind == "phase" {
                        self.line(&format!("== phase: {}", l.message));
                    } else {
                        self.line(&format!("· {}", l.message));
                    }
                }
                Out::Progress {
                    kind: crate::runner::outbox::ProgressKind::Report { message, .. },
                    ..
                } if self.workflow => {
                    self.line(&format!("  {message}"));
                }
                Out::Stream(s) => {
                    for e in &s.events {
                        if let StreamEvent::ToolCall { name, input, .. } = e {
                            let arg = input
                                .as_object()
                                .and_then(|o| o.values().find_map(|v| v.as_str()))
                                .unwrap_or("");
                            self.line(&format!(
                                "  {} → {name} {}",
                                s.step_id,
                                arg.chars().take(80).collect::<String>()
                            ));
                        }
                    }
                }
                _ => {}
            }
        })
    }
}

/// `--attach FILE` (repeatable) and `--vision` of `boo run` and `boo workflow run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AttachArgs {
    /// An image (PNG, JPEG, GIF or WebP) the agents get with their prompt; repeat for
    /// more. Needs a model declared to take images (--vision or BOO_VISION_MODEL=1).
    #[arg(long = "attach", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The model takes images (overrides BOO_VISION_MODEL for this run).
    #[arg(long)]
    pub vision: bool,
}

impl AttachArgs {
    /// The files as launch attachments, relative paths taken from the current folder.
    fn inputs(&self) -> Vec<crate::attach::AttachmentInput> {
        self.files
            .iter()
            .map(|f| {
                crate::attach::AttachmentInput::Path(
                    std::path::absolute(f).unwrap_or_else(|_| f.clone()),
                )
            })
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    config: Config,
    flow: String,
    question: String,
    band: String,
    root: Option<PathBuf>,
    model: Option<String>,
    fast: bool,
    sarif: Option<PathBuf>,
    attach: AttachArgs,
) -> i32 {
    let band = match band.parse::<Band>() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("boo: --band: {e}");
            return 2;
        }
    };
    let root =
        root.unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")));
    let config = config.with_model(model.clone());
    let app = match start_app(&config, false).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("boo: {e}");
            return 1;
        }
    };
    let (st, sup) = (app.store.clone(), app.supervisor.clone());
    let hb_stop = CancellationToken::new();
    tokio::spawn(sup.clone().heartbeat_loop(false, hb_stop.clone()));
    let run_id = match sup
        .launch(LaunchRequest {
            flow,
            band,
            question,
            root,
            model,
            fast,
            attachments: attach.inputs(),
            vision: attach.vision.then_some(true),
        })
        .await
    {
        Ok(id) => id,
        Err(e) => {
            eprintln!("boo: {e}");
            return match e {
                LaunchError::Invalid(_) | LaunchError::Untrusted { .. } => 2,
                _ => 1,
            };
        }
    };
    follow(app, sup, st, hb_stop, run_id, sarif).await
}

/// Waits for a run started by this command (Ctrl-C, SIGHUP and SIGTERM cancel it),
/// prints its report on stdout (and its findings as SARIF to `sarif`, when given), and
/// answers the exit code: 0 only when completed.
async fn follow(
    app: App,
    sup: std::sync::Arc<crate::runner::Supervisor>,
    st: crate::store::Store,
    hb_stop: CancellationToken,
    run_id: String,
    sarif: Option<PathBuf>,
) -> i32 {
    let sup2 = sup.clone();
    let id2 = run_id.clone();
    // Ctrl-C, a closed terminal (SIGHUP) and `kill` (SIGTERM) all cancel the run: a
    // run whose command was stopped must not be adopted and finished by a server.
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("boo: cancelling the run (Ctrl-C)...");
            let _ = sup2.cancel(&id2).await;
            return;
        };
        let why = tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        };
        eprintln!("boo: cancelling the run ({why})...");
        let _ = sup2.cancel(&id2).await;
    });
    sup.wait(&run_id).await;
    hb_stop.cancel();
    let id = run_id.clone();
    let row = st.call(move |c| queries::get_run(c, &id)).await;
    drop(sup);
    app.drain(std::time::Duration::from_millis(500)).await;
    let sarif_ok = match &sarif {
        Some(path) => crate::sarif::write_reported(&st, &run_id, path).await,
        None => true,
    };
    match row {
        Ok(Some(r)) => {
            if let Some(report) = &r.report {
                print!("{report}");
                let _ = std::io::stdout().flush();
            }
            if !sarif_ok {
                1
            } else if r.run.summary.status == RunStatus::Completed {
                0
            } else {
                eprintln!(
                    "boo: run {} ended {}{}",
                    run_id,
                    r.run.summary.status.as_str(),
                    r.run.error.map(|e| format!(": {e}")).unwrap_or_default()
                );
                1
            }
        }
        _ => 1,
    }
}

/// `boo workflows [--root DIR]`: the workflow catalog, by source.
pub async fn workflows(config: &Config, root: Option<PathBuf>) -> i32 {
    use crate::catalog::workflows::{WorkflowCatalog, WorkflowDirs, WorkflowSource};
    let root = match root.as_deref().map(canonical_root).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("boo: --root: {e}");
            return 2;
        }
    };
    let cat = WorkflowCatalog::load(WorkflowDirs {
        builtin_dir: config.catalog_dir.as_deref(),
        user_dir: config.runner.user_workflows.as_deref(),
        root: root.as_deref(),
    });
    let has_project = cat
        .workflows
        .values()
        .any(|w| w.source == WorkflowSource::Project);
    let trusted = match &root {
        Some(r) if has_project => {
            let Ok(store) = open_store(config) else {
                return 1;
            };
            match is_trusted(&store, r).await {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("boo: {e}");
                    return 1;
                }
            }
        }
        _ => false,
    };
    let mut out = String::new();
    for (source, title) in [
        (WorkflowSource::Builtin, "Built-in"),
        (WorkflowSource::User, "Yours"),
        (
            WorkflowSource::Project,
            if trusted {
                "Project"
            } else {
                "Project (untrusted: `boo trust <root>` to run them)"
            },
        ),
    ] {
        let list: Vec<_> = cat
            .workflows
            .values()
            .filter(|w| w.source == source)
            .collect();
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("{title}\n"));
        for w in list {
            let first = w.meta.description.split(". ").next().unwrap_or("");
            let phases = if w.meta.phases.is_empty() {
                String::new()
            } else {
                format!(
                    "  [{}]",
                    w.meta
                        .phases
                        .iter()
                        .map(|p| p.title.as_str())
                        .collect::<Vec<_>>()
                        .join(" → ")
                )
            };
            out.push_str(&format!("  {:<24} {first}{phases}\n", w.name));
            if source != WorkflowSource::Builtin {
                out.push_str(&format!("  {:<24} {}\n", "", w.path));
            }
        }
        out.push('\n');
    }
    print!("{out}");
    for e in &cat.errors {
        eprintln!("boo: workflow problem: {e}");
    }
    if cat.errors.is_empty() {
        0
    } else {
        1
    }
}

/// `boo workflow run NAME|FILE`: a workflow as a run.
#[allow(clippy::too_many_arguments)]
pub async fn workflow_run(
    config: Config,
    workflow: String,
    args: Option<String>,
    budget: Option<u64>,
    fresh: bool,
    root: Option<PathBuf>,
    model: Option<String>,
    attach: AttachArgs,
) -> i32 {
    use crate::runner::workflow::{ScriptRef, WorkflowLaunch};
    // A file when it names one (or looks like one), else a catalog name.
    let as_path = PathBuf::from(&workflow);
    let script = if as_path.is_file() || workflow.ends_with(".js") || workflow.ends_with(".mjs") {
        match std::path::absolute(&as_path) {
            Ok(p) => ScriptRef::Path(p),
            Err(e) => {
                eprintln!("boo: {workflow}: {e}");
                return 2;
            }
        }
    } else {
        ScriptRef::Named(workflow)
    };
    // JSON when it parses, else the text as a string.
    let args = args.map(|a| serde_json::from_str(&a).unwrap_or(serde_json::Value::String(a)));
    let root =
        root.unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")));
    let config = config.with_model(model.clone());
    let app = match start_app(&config, true).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("boo: {e}");
            return 1;
        }
    };
    let (st, sup) = (app.store.clone(), app.supervisor.clone());
    let hb_stop = CancellationToken::new();
    tokio::spawn(sup.clone().heartbeat_loop(false, hb_stop.clone()));
    let launched = sup
        .launch_workflow(WorkflowLaunch {
            script,
            args,
            root,
            model,
            budget,
            fresh,
            attachments: attach.inputs(),
            vision: attach.vision.then_some(true),
        })
        .await;
    let run_id = match launched {
        Ok(id) => id,
        Err(e) => {
            hb_stop.cancel();
            eprintln!("boo: {e}");
            return match e {
                LaunchError::Invalid(_)
                | LaunchError::Untrusted { .. }
                | LaunchError::UntrustedWorkflow { .. } => 2,
                _ => 1,
            };
        }
    };
    follow(app, sup, st, hb_stop, run_id, None).await
}

/// The script `boo workflow init NAME` writes.
/// The jsconfig.json `boo workflow init` writes beside the scripts: the workflow API's
/// declarations and the language's own built-ins, without the browser's or Node's
/// globals (a workflow has neither). Scripts are not type-checked (`checkJs` off): a
/// workflow's top-level `return` is valid for boo, not for TypeScript.
const JSCONFIG: &str = r#"{
  "compilerOptions": {
    "target": "ES2022",
    "module": "ES2022",
    "lib": ["ES2022"],
    "allowJs": true,
    "checkJs": false,
    "types": []
  },
  "include": ["*.js", "*.mjs", "boo-workflow.d.ts"]
}
"#;

fn starter_script(name: &str) -> String {
    format!(
        r#"/// <reference path="./{decl}" />
// A boo workflow. Run it with `boo workflow run {name} --args "what to look at"`
// (or from the editor's launcher). Every agent() is a read-only agent of the run;
// an unchanged call on an unchanged project is answered from boo's cache.

/** @type {{BooWorkflowMeta}} */
export const meta = {{
  name: '{name}',
  description: 'Describe in one line what this workflow finds out.',
  whenToUse: 'Say when someone should pick it, and what args it takes.',
  phases: [
    {{ title: 'Explore', detail: 'Independent looks at the focus, in parallel.' }},
    {{ title: 'Check', detail: 'Each answer is checked by a second reader.' }},
  ],
}};

const focus = typeof args === 'string' && args.trim() ? args.trim() : 'the whole project';

phase('Explore');
const lenses = ['codebase-explorer', 'edge-case-explorer'];
const looks = await parallel(lenses.map((persona) => () => agent(
  `Look at ${{focus}} as a ${{persona}} would. Cite the lines you read, and end with the findings block.`,
  {{ label: persona, agentType: persona }},
)));
log(`${{looks.filter(Boolean).length}} of ${{lenses.length}} looks came back; ${{budget.spent()}} tokens spent`);

phase('Check');
const checked = await pipeline(
  looks.filter(Boolean),
  (answer) => agent(
    `Check every claim of this answer against the code and keep only what holds, with its evidence in the findings block:\n\n${{answer}}`,
    {{ label: 'check an answer', agentType: 'adversarial-validator' }},
  ),
);

return checked.filter(Boolean).join('\n\n---\n\n') || 'Nothing survived the check.';
"#,
        decl = crate::catalog::workflows::DECLARATIONS_FILE,
    )
}

/// `boo workflow init NAME [--dir DIR]`.
pub fn workflow_init(name: String, dir: Option<PathBuf>) -> i32 {
    use crate::catalog::workflows::{DECLARATIONS, DECLARATIONS_FILE};
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        eprintln!("boo: the name {name:?} must use only a-z, 0-9 and - (it becomes NAME.js and meta.name)");
        return 2;
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(".boo/workflows"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("boo: cannot create {}: {e}", dir.display());
        return 1;
    }
    let file = dir.join(format!("{name}.js"));
    if file.exists() {
        eprintln!(
            "boo: {} already exists; pick another name or remove it first",
            file.display()
        );
        return 1;
    }
    let decl = dir.join(DECLARATIONS_FILE);
    // The folder's jsconfig.json makes editors (VS Code, any TypeScript language
    // server) give every script here the API's completions; one the user has is kept.
    let jsconfig = dir.join("jsconfig.json");
    let keep_jsconfig = jsconfig.exists();
    let written = std::fs::write(&file, starter_script(&name))
        .and_then(|_| std::fs::write(&decl, DECLARATIONS))
        .and_then(|_| {
            if keep_jsconfig {
                Ok(())
            } else {
                std::fs::write(&jsconfig, JSCONFIG)
            }
        });
    if let Err(e) = written {
        eprintln!("boo: cannot write into {}: {e}", dir.display());
        return 1;
    }
    println!("{}", file.display());
    eprintln!(
        "wrote {}, {} (the script API's declarations){}; edit the script, then `boo workflow run {}`",
        file.display(),
        decl.display(),
        if keep_jsconfig {
            format!(" and kept your {}", jsconfig.display())
        } else {
            format!(" and {} (so editors complete every script here)", jsconfig.display())
        },
        file.display()
    );
    0
}

/// `boo cache stats [--root DIR]`.
pub async fn cache_stats(config: &Config, root: Option<PathBuf>) -> i32 {
    let root = match root.as_deref().map(canonical_root).transpose() {
        Ok(r) => r.map(|r| r.display().to_string()),
        Err(e) => {
            eprintln!("boo: --root: {e}");
            return 2;
        }
    };
    let st = match open_store(config) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let got = st
        .call(move |c| {
            Ok((
                queries::cache_stats(c, root.as_deref())?,
                if root.is_none() {
                    queries::cache_roots(c)?
                } else {
                    Vec::new()
                },
            ))
        })
        .await;
    match got {
        Ok((s, roots)) => {
            println!(
                "{} cached agent answer(s) · {} project(s) · {} · {} output tokens saved per full re-run",
                s.entries,
                s.roots,
                human_bytes(s.bytes),
                s.output_tokens
            );
            for (r, n) in roots {
                println!("  {n:>6}  {r}");
            }
            0
        }
        Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}

/// `boo cache clear [--root DIR]`.
pub async fn cache_clear(config: &Config, root: Option<PathBuf>) -> i32 {
    let root = match root.as_deref().map(canonical_root).transpose() {
        Ok(r) => r.map(|r| r.display().to_string()),
        Err(e) => {
            eprintln!("boo: --root: {e}");
            return 2;
        }
    };
    let st = match open_store(config) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let r2 = root.clone();
    match st
        .call(move |c| queries::cache_clear(c, r2.as_deref()))
        .await
    {
        Ok(n) => {
            match root {
                Some(r) => println!("removed {n} cached agent answer(s) of {r}"),
                None => println!("removed {n} cached agent answer(s) of every project"),
            }
            0
        }
        Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}

/// A driver whose agents answer at once: what is left of a run is the engine's own
/// work (for `boo workflow-overhead`).
struct InstantDriver;

impl crate::workflow::WorkflowDriver for InstantDriver {
    fn agent(
        &self,
        _call: crate::workflow::AgentCall,
    ) -> BoxFuture<'static, crate::workflow::AgentReply> {
        Box::pin(async { crate::workflow::AgentReply::Completed { text: "ok".into() } })
    }
    fn budget(&self) -> crate::workflow::Budget {
        crate::workflow::Budget::default()
    }
    fn log(&self, _line: crate::workflow::LogLine) {}
    fn workflow_source(&self, name: &str) -> Result<String, String> {
        Err(format!("no workflow {name} here"))
    }
}

/// `boo workflow-overhead --calls N` (internal, for the benchmark): the workflow
/// engine's own time per `agent()` call — a script of N calls (half in `parallel`,
/// half one after another) against agents that answer at once, minus the same
/// script without calls. Prints JSON.
pub async fn workflow_overhead(calls: u32) -> i32 {
    let calls = calls.clamp(2, 1000);
    let script = |n: u32| {
        format!(
            "export const meta = {{ name: 'overhead', description: 'engine cost per agent call' }};
             const half = {};
             const a = await parallel(Array.from({{ length: half }}, (_, i) => () => agent(`fan ${{i}}`)));
             const b = [];
             for (let i = 0; i < {}; i++) b.push(await agent(`seq ${{i}}`));
             return a.length + b.length;
",
            n / 2,
            n - n / 2
        )
    };
    let time = |n: u32| {
        let src = script(n);
        async move {
            let t = Instant::now();
            let out = crate::workflow::run_workflow(
                src,
                None,
                std::sync::Arc::new(InstantDriver),
                crate::workflow::Limits::default(),
                CancellationToken::new(),
            )
            .await;
            (t.elapsed(), out)
        }
    };
    let mut full = Vec::new();
    let mut empty = Vec::new();
    for _ in 0..5 {
        let (d, out) = time(calls).await;
        if let Err(e) = out {
            eprintln!("boo: the overhead script failed: {e}");
            return 1;
        }
        full.push(d);
        empty.push(time(0).await.0);
    }
    full.sort();
    empty.sort();
    let (f, e) = (full[2], empty[2]);
    let per_call_us = (f.saturating_sub(e)).as_secs_f64() * 1e6 / calls as f64;
    println!(
        "{{\"calls\": {calls}, \"scriptMs\": {:.2}, \"emptyMs\": {:.2}, \"perCallUs\": {per_call_us:.1}}}",
        f.as_secs_f64() * 1000.0,
        e.as_secs_f64() * 1000.0
    );
    0
}

fn human_bytes(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    } else if n >= 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

fn age(created: &str) -> String {
    clock::parse_ms(created)
        .map(|t| format!("{} ago", clock::human_duration(clock::now_ms() - t)))
        .unwrap_or_default()
}

pub async fn runs(config: &Config, root: Option<PathBuf>, all: bool, limit: u32) -> i32 {
    let st = match open_store(config) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let root = if all {
        None
    } else {
        let r = root.unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
        Some(r.canonicalize().unwrap_or(r).display().to_string())
    };
    let got = st
        .call(move |c| queries::list_runs(c, root.as_deref(), limit, None))
        .await;
    match got {
        Ok((runs, _)) => {
            if runs.is_empty() {
                eprintln!("no runs yet (use --all to see every project's runs)");
            }
            for r in runs {
                println!(
                    "{}  {:<10} {:<22} {:<6} {:<40} {}",
                    r.run_id,
                    r.status.as_str(),
                    r.flow,
                    if r.kind == "workflow" {
                        "wf"
                    } else {
                        r.band.as_str()
                    },
                    r.question.chars().take(40).collect::<String>(),
                    age(&r.created_at)
                );
            }
            0
        }
        Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}

pub async fn show(config: &Config, run_id: String) -> i32 {
    let st = match open_store(config) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let id = run_id.clone();
    let got = st
        .call(move |c| {
            Ok(queries::get_run(c, &id)?.map(|r| {
                let log = queries::get_log(c, &id).unwrap_or_default();
                (r, queries::get_steps(c, &id), log)
            }))
        })
        .await;
    match got {
        Ok(Some((r, Ok(steps), log))) => {
            let s = &r.run.summary;
            let workflow = crate::runner::workflow::is_workflow(&r.meta);
            println!("run      {}", s.run_id);
            if workflow {
                let wf = r.meta.get("workflow").cloned().unwrap_or_default();
                let spent: u64 = steps.iter().map(|s| s.step.usage.output_tokens).sum();
                let budget = match wf.pointer("/budget/total").and_then(|t| t.as_u64()) {
                    Some(t) => format!(" · budget {spent}/{t} output tokens"),
                    None => String::new(),
                };
                println!(
                    "workflow {} ({}) · {}{budget}",
                    s.flow,
                    wf.get("source").and_then(|v| v.as_str()).unwrap_or("user"),
                    wf.get("path")
                        .and_then(|v| v.as_str())
                        .unwrap_or("inline script"),
                );
            } else if crate::runner::agent_run::is_agent(&r.meta) {
                println!(
                    "agent    {} ({})",
                    r.meta
                        .pointer("/agent/persona")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default(),
                    r.run.title.clone().unwrap_or_default(),
                );
            } else {
                println!(
                    "flow     {} ({}) · band {}",
                    s.flow,
                    r.run.title.clone().unwrap_or_default(),
                    s.band
                );
            }
            println!(
                "status   {}{}",
                s.status.as_str(),
                r.run
                    .error
                    .as_ref()
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default()
            );
            println!("question {}", s.question);
            println!("root     {}", s.root);
            println!("created  {} ({})", s.created_at, age(&s.created_at));
            println!(
                "tokens   {} in / {} out",
                r.run.usage.input_tokens, r.run.usage.output_tokens
            );
            println!();
            for st in steps {
                let cached = st
                    .step
                    .meta
                    .as_ref()
                    .and_then(|m| m.get("cached"))
                    .and_then(|c| c.as_bool())
                    == Some(true);
                let st = st.step;
                let phase = st
                    .phase
                    .as_deref()
                    .map(|p| format!("[{p}] "))
                    .unwrap_or_default();
                println!(
                    "  wave {} {:<12} {:<28} {:<10} {phase}{}{}",
                    st.wave,
                    st.step_id,
                    st.agent,
                    st.status.as_str(),
                    if cached { "(cached) " } else { "" },
                    st.error
                        .as_deref()
                        .map(|e| e.lines().next().unwrap_or(""))
                        .unwrap_or("")
                );
            }
            if !log.is_empty() {
                println!("\nlog");
                for l in &log {
                    let mark = if l.kind == "phase" {
                        "== phase: "
                    } else {
                        "· "
                    };
                    println!("  {:>3} {mark}{}", l.seq, l.message);
                }
            }
            if let Some(rep) = r.report {
                println!("\n{rep}");
            }
            0
        }
        Ok(None) => {
            eprintln!("boo: unknown run {run_id}: `boo runs --all` lists them");
            1
        }
        Ok(Some((_, Err(e), _))) | Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}

pub async fn export(config: &Config, run_id: String, format: String) -> i32 {
    if format != "markdown" && format != "json" {
        eprintln!("boo: --format: use markdown, json, sarif or otlp-json");
        return 2;
    }
    let st = match open_store(config) {
        Ok(s) => s,
        Err(c) => return c,
    };
    match crate::export::export(&st, &run_id, &format).await {
        Ok(Some((content, _))) => {
            print!("{content}");
            if !content.ends_with('\n') {
                println!();
            }
            0
        }
        Ok(None) => {
            eprintln!("boo: unknown run {run_id}: `boo runs --all` lists them");
            1
        }
        Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}

/// `boo proxy-serve <upstream>` (hidden, for the benchmark): the model proxy alone.
pub async fn proxy_serve(upstream: String) -> i32 {
    use tokio::io::AsyncReadExt;
    let proxy = match crate::proxy::Proxy::start(crate::proxy::Upstream {
        base_url: upstream,
        api_key: Some("bench-upstream-key".into()),
    })
    .await
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("boo: {e}");
            return 1;
        }
    };
    let grant = match proxy.grant() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("boo: cannot make a proxy token: {e}");
            return 1;
        }
    };
    println!("{} {}", grant.base_url(), grant.token());
    let mut buf = [0u8; 64];
    let mut stdin = tokio::io::stdin();
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    proxy.stop();
    0
}

/// `boo calls <runId>`.
pub async fn calls(config: &Config, run_id: String) -> i32 {
    let st = match open_store(config) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let id = run_id.clone();
    let got = st
        .call(move |c| {
            if queries::get_run(c, &id)?.is_none() {
                return Ok(None);
            }
            let mut calls = Vec::new();
            let mut cursor = 0;
            loop {
                let (page, next) = queries::list_model_calls(c, &id, None, cursor, 1000)?;
                calls.extend(page);
                match next {
                    Some(n) => cursor = n,
                    None => break,
                }
            }
            Ok(Some(calls))
        })
        .await;
    match got {
        Ok(Some(calls)) => {
            print!("{}", crate::proxy::report::render(&calls));
            0
        }
        Ok(None) => {
            eprintln!("boo: unknown run {run_id}: `boo runs --all` lists them");
            1
        }
        Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}

pub async fn traces(config: &Config, run_id: String) -> i32 {
    let st = match open_store(config) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let id = run_id.clone();
    let got = st
        .call(move |c| {
            let Some(run) = queries::get_run(c, &id)? else {
                return Ok(None);
            };
            let steps = queries::get_steps(c, &id)?;
            let mut traces = Vec::new();
            let mut cursor = 0;
            loop {
                let (page, next) = queries::list_traces(c, &id, None, cursor, 1000)?;
                traces.extend(page);
                match next {
                    Some(n) => cursor = n,
                    None => break,
                }
            }
            let turns = queries::turn_usages(c, &id)?;
            Ok(Some((run, steps, traces, turns)))
        })
        .await;
    let (run, steps, traces, turns) = match got {
        Ok(Some(x)) => x,
        Ok(None) => {
            eprintln!("boo: unknown run {run_id}: `boo runs --all` lists them");
            return 1;
        }
        Err(e) => {
            eprintln!("boo: {e}");
            return 1;
        }
    };
    println!(
        "run {} · {} · {}",
        run.run.summary.run_id,
        run.run.summary.flow,
        run.run.summary.status.as_str()
    );
    const WIDTH: usize = 40;
    let mut total = Usage::default();
    for s in steps.iter().map(|s| &s.step) {
        if s.kind != crate::model::StepKind::Agent {
            continue;
        }
        let start = s.started_at.as_deref().and_then(clock::parse_ms);
        let end = s
            .finished_at
            .as_deref()
            .and_then(clock::parse_ms)
            .unwrap_or_else(clock::now_ms);
        let dur = start.map(|a| (end - a).max(1)).unwrap_or(1);
        println!(
            "\n{} ({}) · {} · {}",
            s.step_id,
            s.agent,
            s.status.as_str(),
            clock::human_duration(dur)
        );
        for t in traces
            .iter()
            .filter(|t| t.step_id == s.step_id && Some(t.chat_id.as_str()) == s.chat_id.as_deref())
        {
            let ts = clock::parse_ms(&t.started_at).unwrap_or(0);
            let off = start.map(|a| (ts - a).max(0)).unwrap_or(0);
            let lat = t.latency_ms.unwrap_or(0) as i64;
            let col = ((off * WIDTH as i64) / dur).clamp(0, WIDTH as i64 - 1) as usize;
            let len = (((lat * WIDTH as i64) / dur).max(1) as usize).min(WIDTH - col);
            let bar = format!(
                "{}{}{}",
                " ".repeat(col),
                "█".repeat(len),
                " ".repeat(WIDTH - col - len)
            );
            let outcome = t.outcome.map(|o| o.as_str()).unwrap_or("open");
            let mark = match t.outcome {
                Some(TraceOutcome::Ok) => "✓",
                Some(TraceOutcome::Denied) => "⊘",
                Some(TraceOutcome::Error) => "✗",
                None => "…",
            };
            println!(
                "  |{bar}| {mark} {:<16} {:>7} {:<7} turn {}",
                t.tool,
                clock::human_duration(lat),
                outcome,
                t.turn
            );
        }
        let u = Usage {
            input_tokens: s.usage.input_tokens,
            output_tokens: s.usage.output_tokens,
            cache_read_tokens: s.usage.cache_read_tokens,
            total_tokens: s.usage.total_tokens,
        };
        total.add(&u);
        for (_, turn, tu) in turns.iter().filter(|t| t.0 == s.step_id) {
            println!(
                "  turn {turn}: {} in · {} out · {} cached ({})",
                tu.input_tokens,
                tu.output_tokens,
                tu.cache_read_tokens,
                tu.cache_hit_rate()
                    .map(|r| format!("{:.0}% hit", r * 100.0))
                    .unwrap_or_else(|| "–".into())
            );
        }
        println!(
            "  tokens: {} in · {} out · {} cached · hit rate {}",
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_hit_rate()
                .map(|r| format!("{:.0}%", r * 100.0))
                .unwrap_or_else(|| "–".into())
        );
    }
    println!(
        "\nrun total: {} in · {} out · {} cached · hit rate {}",
        total.input_tokens,
        total.output_tokens,
        total.cache_read_tokens,
        total
            .cache_hit_rate()
            .map(|r| format!("{:.0}%", r * 100.0))
            .unwrap_or_else(|| "–".into())
    );
    0
}

pub async fn gc(config: &Config, older_than: String) -> i32 {
    let ms = match clock::parse_duration(&older_than) {
        Ok(ms) => ms,
        Err(e) => {
            eprintln!("boo: --older-than: {e}");
            return 2;
        }
    };
    let st = match open_store(config) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let cutoff = clock::now_ms() - ms;
    match st.call(move |c| queries::gc(c, cutoff)).await {
        Ok((runs, steps, snaps, traces, images)) => {
            println!(
                "removed {runs} run(s) older than {older_than}: {steps} step(s), {snaps} stream batch(es), {traces} trace(s), {images} attached image(s) no other run uses; running runs are never removed"
            );
            // Project snapshots are only needed while their run runs.
            if let Ok(running) = st.call(queries::running_runs).await {
                let base = config.runner.snapshot_dir.clone();
                let removed = tokio::task::spawn_blocking(move || {
                    crate::runner::snapshots::collect_snapshots(&base, &running)
                })
                .await
                .unwrap_or(0);
                if removed > 0 {
                    println!("removed {removed} project snapshot(s) of runs that are not running");
                }
            }
            0
        }
        Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}

fn endpoint_reachable(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .map(|r| (r, 80))
        .or_else(|| url.strip_prefix("https://").map(|r| (r, 443)));
    let Some((rest, default_port)) = rest else {
        return Err(format!("{url} is not an http(s) URL"));
    };
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:{default_port}")
    };
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .collect();
    for a in &addrs {
        if std::net::TcpStream::connect_timeout(a, std::time::Duration::from_secs(3)).is_ok() {
            return Ok(addr);
        }
    }
    Err(format!("nothing answers at {addr}"))
}

/// `GET <base>/models` through boo's model proxy with a fresh grant, as an agent
/// would: proves the proxy starts, accepts its token, and reaches the endpoint with the
/// real key. `None`: a warning (the endpoint accepts connections but did not answer
/// in time — busy, or not an HTTP server).
async fn proxy_check(config: &Config) -> (Option<bool>, String) {
    let proxy = match crate::app::start_proxy(config).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return (
                Some(false),
                "no endpoint configured (OPENAI_BASE_URL)".into(),
            )
        }
        Err(e) => return (Some(false), e.to_string()),
    };
    let grant = match proxy.grant() {
        Ok(g) => g,
        Err(e) => return (Some(false), format!("cannot make a proxy token: {e}")),
    };
    let url = format!("{}/models", grant.base_url());
    let token = grant.token().to_string();
    let port = proxy.port();
    let answer = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(8)))
            .build()
            .into();
        agent
            .get(&url)
            .header("authorization", format!("Bearer {token}"))
            .call()
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    })
    .await;
    drop(grant);
    proxy.stop();
    match answer {
        Ok(Ok(s)) if s < 400 => (
            Some(true),
            format!("GET /models through boo's proxy (127.0.0.1:{port}) answered {s}; agents never see the API key"),
        ),
        Ok(Ok(401)) | Ok(Ok(403)) => (
            Some(false),
            "the endpoint refused the API key boo forwards (401/403 through the proxy) — check OPENAI_API_KEY".into(),
        ),
        Ok(Ok(502)) => (
            Some(false),
            "the proxy could not reach the endpoint — check OPENAI_BASE_URL and that the model server is up".into(),
        ),
        Ok(Ok(s)) => (
            Some(true),
            format!("the proxy (127.0.0.1:{port}) reaches the endpoint; GET /models answered {s} (some servers do not list models)"),
        ),
        Ok(Err(e)) => (
            None,
            format!("GET /models through the proxy on 127.0.0.1:{port} got no answer within 8 s ({e}): the endpoint accepts connections but did not answer — is it busy, or not an OpenAI-compatible server?"),
        ),
        Err(e) => (Some(false), format!("the proxy check failed: {e}")),
    }
}

/// A live look at the warm pool: one `qwen --acp` process in a scratch directory, two
/// sessions asking the same short question (two small model requests). Lines:
/// (check, Some(ok) or None for a warning, detail).
async fn probe_pool(config: &Config) -> Vec<(&'static str, Option<bool>, String)> {
    let dir = config
        .qwen
        .data_dir
        .join(format!("doctor-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return vec![(
            "pool",
            Some(false),
            format!("cannot create {}: {e}", dir.display()),
        )];
    }
    let root = dir.canonicalize().unwrap_or(dir.clone());
    let backend = AcpBackend::new(config.qwen.clone(), config.pool.clone());
    let probe = backend.probe(&root).await;
    backend.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let p = match probe {
        Ok(p) => p,
        Err(e) => {
            return vec![(
                "pool",
                Some(false),
                format!("a warm `qwen --acp` process could not answer a probe: {e} — check the lines above, or set BOO_AGENT_TRANSPORT=oneshot"),
            )]
        }
    };
    let mut lines = vec![(
        "pool",
        Some(true),
        format!(
            "a `qwen --acp` process started and answered in {} ms; a second session on it answered in {} ms; {} process(es), {} MB resident",
            p.cold.as_millis(),
            p.warm.as_millis(),
            p.processes,
            p.rss_bytes / (1024 * 1024)
        ),
    )];
    if p.cached_tokens > 0 {
        lines.push((
            "cached tokens",
            Some(true),
            format!(
                "the endpoint reports prompt-cache hits: {} of {} input tokens of a repeated request were cached",
                p.cached_tokens, p.input_tokens
            ),
        ));
    } else {
        lines.push((
            "cached tokens",
            None,
            format!(
                "the endpoint reported no cached tokens for a repeated request ({} input tokens): it has no prefix cache, or it reports reuse in a field qwen does not read (llama.cpp's timings.cache_n, DeepSeek's prompt_cache_hit_tokens); reports will show 0 cached tokens",
                p.input_tokens
            ),
        ));
    }
    lines
}

pub async fn doctor(config: &Config) -> i32 {
    let mut failures = 0;
    let mut report = |ok: bool, what: &str, detail: String| {
        if !ok {
            failures += 1;
        }
        println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
    };
    let cfg = &config.qwen;
    let mut qwen_ok = false;
    match cfg.resolve() {
        Ok(_) => {
            let backend = QwenBackend::new(cfg.clone());
            match backend.check().await {
                Ok(info) => {
                    qwen_ok = true;
                    report(
                        true,
                        "qwen",
                        format!("{} (version {})", info.path.display(), info.version),
                    )
                }
                Err(e) => report(false, "qwen", e.0),
            }
        }
        Err(e) => report(false, "qwen", e.0),
    }
    let pool = &config.pool;
    match &config.transport {
        Err(e) => report(false, "transport", e.clone()),
        Ok(AgentTransport::Acp) => report(
            true,
            "transport",
            format!(
                "acp (BOO_AGENT_TRANSPORT): every agent is a session in a warm `qwen --acp` process, one per project root, model, sandbox policy and settings, up to {} sessions each (BOO_POOL_SESSIONS); a process idle for {} s stops (BOO_POOL_IDLE_MS). BOO_AGENT_TRANSPORT=oneshot starts one `qwen -p` per prompt instead",
                pool.sessions_per_process,
                pool.idle.as_secs()
            ),
        ),
        Ok(AgentTransport::Oneshot) => report(
            true,
            "transport",
            "oneshot (BOO_AGENT_TRANSPORT): one cold `qwen -p` process per prompt (slower, more memory; for debugging). Unset it for the warm pool".into(),
        ),
    }
    let mut endpoint_ok = false;
    for (var, value, hint) in [
        (
            "OPENAI_BASE_URL",
            &cfg.base_url,
            "the OpenAI-compatible endpoint serving your Qwen model, e.g. http://127.0.0.1:8000/v1",
        ),
        (
            "OPENAI_API_KEY",
            &cfg.api_key,
            "the endpoint's key (any non-empty value for a local server that ignores it)",
        ),
        (
            "OPENAI_MODEL",
            &cfg.model,
            "the model name the endpoint serves, e.g. qwen3-coder",
        ),
    ] {
        match value.clone() {
            Some(v) => report(
                true,
                var,
                if var == "OPENAI_API_KEY" {
                    "set".into()
                } else {
                    v
                },
            ),
            None => report(false, var, format!("not set — export {var}: {hint}")),
        }
    }
    if let Some(url) = cfg.base_url.as_deref() {
        match endpoint_reachable(url) {
            Ok(a) => {
                endpoint_ok = true;
                report(true, "endpoint", format!("{a} accepts connections"))
            }
            Err(e) => report(
                false,
                "endpoint",
                format!("{e} — start the model server or fix OPENAI_BASE_URL"),
            ),
        }
        if endpoint_ok {
            match proxy_check(config).await {
                (Some(ok), detail) => report(ok, "model proxy", detail),
                (None, detail) => println!("warn model proxy: {detail}"),
            }
        }
    }
    let db = &config.db_path;
    match Store::open(db) {
        Ok(st) => match st
            .call(|c| {
                // The whole file is read: a damaged page anywhere is found.
                let check: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
                // A write statement: fails on a read-only database or folder.
                c.execute(
                    "DELETE FROM server_owners WHERE owner_id = 'boo-doctor-probe'",
                    [],
                )?;
                Ok(check)
            })
            .await
        {
            Ok(check) if check == "ok" => report(
                true,
                "database",
                format!("{} is intact and writable", db.display()),
            ),
            Ok(check) => report(
                false,
                "database",
                format!(
                    "{} is damaged ({check}): move it aside (boo starts a new one) or restore a backup",
                    db.display()
                ),
            ),
            Err(e) => report(
                false,
                "database",
                format!("{}: {e} — set BOO_DB to a writable path", db.display()),
            ),
        },
        Err(e) => report(false, "database", format!("{e}")),
    }
    match (landlock_abi(), cfg.sandbox.clone()) {
        (_, Err(e)) => report(false, "sandbox", e),
        (Some(v), Ok(mode)) => report(
            true,
            "sandbox",
            format!("Landlock ABI {v}: every agent runs with a read-only file system except its scratch directory (BOO_SANDBOX={})", mode.as_str()),
        ),
        (None, Ok(SandboxMode::Required)) => report(
            false,
            "sandbox",
            "unavailable — this kernel has no Landlock and BOO_SANDBOX=required refuses to run agents; use a kernel with Landlock or set BOO_SANDBOX=auto".into(),
        ),
        (None, Ok(SandboxMode::Auto)) => println!(
            "warn sandbox: unavailable — this kernel has no Landlock; agents run with boo's other read-only layers only (reports say so); set BOO_SANDBOX=required to refuse instead"
        ),
    }
    match landlock_abi() {
        Some(v) if v >= 4 && cfg.base_url.is_some() => report(
            true,
            "network",
            format!("Landlock ABI {v}: agents may open TCP connections only to boo's model proxy on 127.0.0.1"),
        ),
        Some(v) if v >= 4 => println!(
            "warn network: the lock-down needs the model proxy, which starts only with an endpoint (OPENAI_BASE_URL)"
        ),
        _ => println!(
            "warn network: off — this kernel's Landlock has no network rules (ABI 4 or later); agents may connect anywhere (reports say so)"
        ),
    }
    if qwen_ok && endpoint_ok && config.transport.is_ok() {
        for (what, ok, detail) in probe_pool(config).await {
            match ok {
                Some(ok) => report(ok, what, detail),
                None => println!("warn {what}: {detail}"),
            }
        }
    }
    if failures == 0 {
        println!("\nall checks passed");
        0
    } else {
        println!("\n{failures} check(s) failed; fix them and run `boo doctor` again");
        1
    }
}

/// What `boo ask --background` reads from the process it detaches: one line, either
/// `run <runId>` or `invalid <message>` / `error <message>`.
const DETACHED_RUN: &str = "run ";

/// `boo ask <persona> "<prompt>"`: a background agent (a run of kind `agent`) from the
/// command line. In the foreground: live progress on stderr, the report on stdout,
/// exit 0 only when the run completed (Ctrl-C cancels it). With `--background`: a
/// detached `boo` process (its own process group, no terminal) records the run and
/// drives it to its end; this command prints the run id as soon as the run exists and
/// returns. `detached` is that process's side.
#[allow(clippy::too_many_arguments)]
pub async fn ask(
    config: Config,
    persona: String,
    prompt: String,
    root: Option<PathBuf>,
    model: Option<String>,
    background: bool,
    detached: bool,
    attach: AttachArgs,
) -> i32 {
    let root =
        root.unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")));
    if background && !detached {
        return ask_background(persona, prompt, root, model, &attach);
    }
    let config = config.with_model(model.clone());
    let app = match start_app(&config, false).await {
        Ok(a) => a,
        Err(e) => {
            if detached {
                println!("error {e}");
            } else {
                eprintln!("boo: {e}");
            }
            return 1;
        }
    };
    let (st, sup) = (app.store.clone(), app.supervisor.clone());
    let hb_stop = CancellationToken::new();
    tokio::spawn(sup.clone().heartbeat_loop(false, hb_stop.clone()));
    let launched = sup
        .launch_agent(crate::runner::agent_run::AgentLaunch {
            persona,
            prompt,
            root,
            model,
            attachments: attach.inputs(),
            vision: attach.vision.then_some(true),
        })
        .await;
    let run_id = match launched {
        Ok(id) => id,
        Err(e) => {
            let invalid = matches!(e, LaunchError::Invalid(_) | LaunchError::Untrusted { .. });
            if detached {
                let word = if invalid { "invalid" } else { "error" };
                println!("{word} {}", e.to_string().replace('\n', " "));
            } else {
                eprintln!("boo: {e}");
            }
            return if invalid { 2 } else { 1 };
        }
    };
    if !detached {
        return follow(app, sup, st, hb_stop, run_id, None).await;
    }
    // The detached driver: say which run it drives, then let go of the pipe (the
    // command that started it has returned by then) and drive the run to its end.
    // A stop signal here is a crash like any other: the run stays `running` and the
    // next `boo serve` adopts it.
    println!("{DETACHED_RUN}{run_id}");
    let _ = std::io::stdout().flush();
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 1 replaces our stdout with /dev/null; both are valid.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
    // A closed terminal does not end the run.
    let _hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    sup.wait(&run_id).await;
    hb_stop.cancel();
    drop(sup);
    app.drain(std::time::Duration::from_millis(500)).await;
    0
}

/// Starts the detached driver of `boo ask --background` and prints its run id.
fn ask_background(
    persona: String,
    prompt: String,
    root: PathBuf,
    model: Option<String>,
    attach: &AttachArgs,
) -> i32 {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let root = match canonical_root(&root) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("boo: --root: {e}");
            return 2;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("boo: cannot find the boo executable to run the agent in the background ({e}); run it in the foreground (without --background)");
            return 1;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("ask").arg("--detached").arg("--root").arg(&root);
    if let Some(m) = &model {
        cmd.arg("--model").arg(m);
    }
    // Relative image paths are the caller's, not the root's: hand them on absolute.
    for f in attach.inputs() {
        if let crate::attach::AttachmentInput::Path(p) = f {
            cmd.arg("--attach").arg(p);
        }
    }
    if attach.vision {
        cmd.arg("--vision");
    }
    // `--` so a persona or prompt that begins with a dash is never read as an option.
    cmd.arg("--")
        .arg(&persona)
        .arg(&prompt)
        .current_dir(&root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        // Its own process group: Ctrl-C in this terminal does not reach it.
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("boo: cannot start the background driver ({e}); run it in the foreground (without --background)");
            return 1;
        }
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let line = line.trim_end();
    if let Some(id) = line.strip_prefix(DETACHED_RUN) {
        println!("{id}");
        eprintln!("boo: the agent runs in the background; follow it with `boo show {id}` or in the editor's Background agents (`boo/listAgents`)");
        return 0;
    }
    let _ = child.wait();
    match line.split_once(' ') {
        Some(("invalid", msg)) => {
            eprintln!("boo: {msg}");
            2
        }
        Some((_, msg)) => {
            eprintln!("boo: {msg}");
            1
        }
        None => {
            eprintln!("boo: the background driver stopped before it recorded the run; run it in the foreground (without --background) to see why");
            1
        }
    }
}

/// The composition root for a command that runs or cancels runs, with its progress
/// printed on stderr (`workflow`: a workflow run's script and phases too).
async fn start_app(config: &Config, workflow: bool) -> Result<App, crate::app::AppError> {
    App::start(config, |_| CliTransport {
        started: Instant::now(),
        steps: HashMap::new(),
        workflow,
    })
    .await
}

/// `boo cancel <runId>`: cancels a running run and waits (bounded) until it ended.
/// Exit 0 when it ends cancelled, 1 when it ended otherwise or could not be reached,
/// 2 for an unknown run or one that had already ended.
pub async fn cancel(config: &Config, run_id: String) -> i32 {
    let app = match start_app(config, false).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("boo: {e}");
            return 1;
        }
    };
    let sup = app.supervisor.clone();
    let hb_stop = CancellationToken::new();
    tokio::spawn(sup.clone().heartbeat_loop(false, hb_stop.clone()));
    let got = sup.cancel(&run_id).await;
    hb_stop.cancel();
    drop(sup);
    app.drain(std::time::Duration::from_millis(500)).await;
    match got {
        Ok(RunStatus::Cancelled) => {
            eprintln!("boo: run {run_id} cancelled");
            0
        }
        Ok(RunStatus::Running) => {
            eprintln!("boo: asked run {run_id} to cancel; its owner has not stopped it yet (check with `boo show {run_id}`)");
            1
        }
        Ok(other) => {
            eprintln!(
                "boo: run {run_id} ended {} before the cancel reached it",
                other.as_str()
            );
            1
        }
        Err(
            e @ (crate::runner::CancelError::NotFound(_) | crate::runner::CancelError::Ended(..)),
        ) => {
            eprintln!("boo: {e}");
            2
        }
        Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}
