//! boo: a multi-agent, read-only code-analysis server for editors.

mod agent;
mod app;
mod attach;
mod catalog;
mod cli;
mod clock;
mod codesteps;
mod config;
mod engine;
mod evidence;
mod export;
mod flowfile;
mod lsp;
mod mcp;
mod model;
mod otel;
mod project;
mod proxy;
mod redact;
mod report;
mod runner;
mod sarif;
mod setup;
mod shell;
#[cfg(test)]
mod snapshot;
mod store;
#[cfg(test)]
mod testutil;
mod workflow;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "boo",
    version,
    about = "Read-only multi-agent code analysis flows, driven by the Qwen Code CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum WorkflowAction {
    /// Run a workflow: live progress on stderr (phases, agents, cache hits, tokens),
    /// the report on stdout; exit 0 only when the run completed.
    Run {
        /// A workflow's name (`boo workflows` lists them) or a .js/.mjs file.
        workflow: String,
        /// The script's `args`: JSON, or plain text passed as a string.
        #[arg(long)]
        args: Option<String>,
        /// Output tokens the whole run may spend.
        #[arg(long)]
        budget: Option<u64>,
        /// Skip cache look-ups (results are still stored).
        #[arg(long)]
        fresh: bool,
        #[arg(long)]
        root: Option<PathBuf>,
        /// The model agents run with (default: OPENAI_MODEL).
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        attach: cli::AttachArgs,
    },
    /// Write a starter workflow NAME.js and boo-workflow.d.ts (the script API's
    /// declarations) into DIR (default: ./.boo/workflows).
    Init {
        name: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// How many agent answers the workflow cache holds, per project.
    Stats {
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Forget cached agent answers: one project's with --root, else every project's.
    Clear {
        #[arg(long)]
        root: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Speak the boo protocol (JSON-RPC, LSP framing) on stdin/stdout.
    Serve {
        /// Accepted for vscode-languageclient, which appends it.
        #[arg(long)]
        stdio: bool,
    },
    /// List the flows, grouped by category.
    Flows {
        /// Also load the project flows under ROOT/.boo/flows.
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Run a flow: live progress on stderr, the report on stdout.
    Run {
        flow: String,
        question: String,
        #[arg(long, default_value = "small")]
        band: String,
        #[arg(long)]
        root: Option<PathBuf>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        fast: bool,
        /// Also write the findings as a SARIF 2.1.0 log to this file (for code scanning).
        #[arg(long)]
        sarif: Option<PathBuf>,
        #[command(flatten)]
        attach: cli::AttachArgs,
    },
    /// Ask one agent (a persona) to work on a prompt: live progress on stderr, the
    /// report on stdout; with --background, print the run id and return while a
    /// detached boo process drives the run (a server adopts it if that process dies).
    Ask {
        /// A persona name (the agents of `boo flows`, e.g. codebase-explorer).
        persona: String,
        prompt: String,
        #[arg(long)]
        root: Option<PathBuf>,
        #[arg(long)]
        model: Option<String>,
        /// Print the run id and return; the agent keeps working.
        #[arg(long)]
        background: bool,
        /// The detached driver of --background (internal).
        #[arg(long, hide = true)]
        detached: bool,
        #[command(flatten)]
        attach: cli::AttachArgs,
    },
    /// Trust a project folder: its own flows (ROOT/.boo/) may run. Review them first.
    Trust {
        /// The project folder.
        #[arg(required_unless_present = "list", conflicts_with = "list")]
        root: Option<PathBuf>,
        /// Withdraw the trust instead.
        #[arg(long)]
        revoke: bool,
        /// List the trusted folders, who trusted them and when.
        #[arg(long, conflicts_with = "revoke")]
        list: bool,
    },
    /// List the workflows: built-in, the user's and the project's (with --root).
    Workflows {
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Workflow scripts: run one, or start a new one.
    Workflow {
        #[command(subcommand)]
        action: WorkflowAction,
    },
    /// The workflow cache (content-keyed agent answers).
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// List past runs (newest first).
    Runs {
        #[arg(long)]
        root: Option<PathBuf>,
        /// Every project's runs.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a run: its steps and its report.
    Show { run_id: String },
    /// Cancel a running run, wherever it runs (a `boo ask --background` agent, a
    /// server's run): its owner stops it at its next heartbeat; a run whose owner is
    /// gone is finished here as cancelled.
    Cancel { run_id: String },
    /// Print a run's report as Markdown or JSON, its findings as SARIF, or the run as OTLP JSON spans.
    Export {
        run_id: String,
        /// markdown, json, sarif or otlp-json.
        #[arg(long, default_value = "markdown")]
        format: String,
    },
    /// Tool-call waterfall and token breakdown of a run.
    Traces { run_id: String },
    /// A run's model calls: per turn the prompt's cached share, TTFT, tokens/s and miss reason.
    Calls { run_id: String },
    /// Remove ended runs older than a duration (e.g. 30d), with their steps, streams and traces.
    Gc {
        #[arg(long)]
        older_than: String,
    },
    /// Check qwen, the model endpoint, the database and the sandbox.
    Doctor,
    /// Write and check flow files: `boo flow new NAME`, `boo flow check FILE`, `boo flow schema`.
    Flow {
        #[command(subcommand)]
        command: flowfile::FlowCommand,
    },
    /// Install the supported qwen (with its own Node 22) into boo's data directory.
    Setup(setup::SetupArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completions { shell: shell::Shell },
    /// Print boo's man page (roff), or write one page per command into a folder.
    Man {
        /// Write boo.1, boo-run.1, … into this folder instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Internal: time the read-only proof (fingerprint) of a directory, cold and warm.
    #[command(hide = true)]
    Fingerprint { root: PathBuf },
    /// Internal: time a run's snapshot of a directory (taken into `dir`, then removed),
    /// and the comparison of the real tree with it at the run's end.
    #[command(hide = true)]
    Snapshot { root: PathBuf, dir: PathBuf },
    /// Internal: the workflow engine's own time per agent() call (agents answer at once).
    #[command(hide = true)]
    WorkflowOverhead {
        #[arg(long, default_value_t = 500)]
        calls: u32,
    },
    /// Internal: runs the model proxy alone in front of `upstream` (for the benchmark):
    /// prints `<base url> <token>`, serves until stdin closes.
    #[command(hide = true)]
    ProxyServe { upstream: String },
    /// Internal: the MCP server qwen starts for an agent step allowed to spawn
    /// background agents (`spawn = true`); reaches boo's server over `socket` with the
    /// step's token (`BOO_MCP_TOKEN`, from that agent's settings).
    #[command(hide = true)]
    Mcp {
        #[arg(long)]
        socket: PathBuf,
    },
    /// Internal: runs an agent process under the sandbox and dies with boo.
    #[command(hide = true)]
    AgentGuard {
        #[arg(long)]
        parent: u32,
        #[arg(long, default_value = "auto")]
        sandbox: String,
        #[arg(long)]
        writable: Vec<PathBuf>,
        /// Only these paths (and the writable ones) may be read; everything if none.
        #[arg(long)]
        readable: Vec<PathBuf>,
        /// TCP connections only to this local port (the model proxy; Landlock ABI 4).
        #[arg(long)]
        connect_port: Option<u16>,
        /// Where to report the sandbox state (a descriptor boo passes); stdout if absent.
        #[arg(long)]
        report_fd: Option<i32>,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

fn init_logging(to_file: Option<PathBuf>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BOO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    if let Some(path) = to_file {
        if let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            builder.with_writer(std::sync::Mutex::new(f)).init();
            return;
        }
    }
    builder.with_writer(std::io::stderr).init();
}

/// Moves the protocol stream off fd 1: fd 1 now points at stderr, so a stray print
/// from any library lands in the log instead of corrupting the protocol. Returns the
/// original stdout for the protocol writer.
fn guard_stdout() -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain descriptor calls; the duplicated descriptor is owned by the File.
    unsafe {
        let proto = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if proto < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(std::fs::File::from_raw_fd(proto))
    }
}

/// Commands that read the database or files and print, starting no agent and writing
/// to no child's stdin.
fn only_prints(command: &Command) -> bool {
    matches!(
        command,
        Command::Flows { .. }
            | Command::Workflows { .. }
            | Command::Cache { .. }
            | Command::Runs { .. }
            | Command::Show { .. }
            | Command::Export { .. }
            | Command::Traces { .. }
            | Command::Calls { .. }
            | Command::Setup(_)
            | Command::Completions { .. }
            | Command::Man { .. }
            | Command::Fingerprint { .. }
            | Command::Mcp { .. }
            | Command::Snapshot { .. }
            | Command::Flow { .. }
            | Command::Trust { .. }
    )
}

fn main() {
    let cli = Cli::parse();
    if only_prints(&cli.command) {
        // `boo runs | head` ends quietly when the reader goes away, as CLI tools do,
        // instead of panicking on the broken pipe. Commands that drive agents keep
        // SIGPIPE ignored: a child that dies under a write must not kill boo.
        // SAFETY: plain signal disposition change before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // The one place the environment is read.
    let config = config::Config::from_env();
    let log_file = config.log_file.clone();
    let code = match cli.command {
        Command::Completions { shell } => shell::completions(Cli::command(), shell),
        Command::Man { dir } => shell::man(Cli::command(), dir.as_deref()),
        Command::Flow { command } => flowfile::run(&config, command),
        Command::Setup(args) => setup::run(&config, args),
        Command::Fingerprint { root } => {
            let cache = project::HashCache::new();
            let t = std::time::Instant::now();
            let a = cache.fingerprint(&root);
            let cold = t.elapsed();
            let t = std::time::Instant::now();
            let b = cache.fingerprint(&root);
            let warm = t.elapsed();
            println!(
                "{{\"files\": {}, \"coldMs\": {:.1}, \"warmMs\": {:.1}, \"changes\": {}, \"digest\": \"{}\"}}",
                a.files.len(),
                cold.as_secs_f64() * 1000.0,
                warm.as_secs_f64() * 1000.0,
                project::diff(&a, &b).len(),
                b.digest()
            );
            0
        }
        Command::Snapshot { root, dir } => {
            use project::snapshot::Snapshot;
            let t = std::time::Instant::now();
            match Snapshot::take(&root, &dir, false) {
                Ok(s) => {
                    let took = t.elapsed();
                    let t = std::time::Instant::now();
                    let changes = s.changes_since(&root);
                    let compare = t.elapsed();
                    let t = std::time::Instant::now();
                    Snapshot::remove(&dir);
                    let removed = t.elapsed();
                    println!(
                        "{{\"files\": {}, \"bytes\": {}, \"cloned\": {}, \"takeMs\": {:.1}, \"compareMs\": {:.1}, \"removeMs\": {:.1}, \"changes\": {}}}",
                        s.manifest.files,
                        s.manifest.bytes,
                        s.manifest.cloned,
                        took.as_secs_f64() * 1000.0,
                        compare.as_secs_f64() * 1000.0,
                        removed.as_secs_f64() * 1000.0,
                        changes.map(|c| c.added.len() + c.modified.len() + c.removed.len()).unwrap_or(usize::MAX)
                    );
                    0
                }
                Err(e) => {
                    eprintln!("boo: {e}");
                    1
                }
            }
        }
        Command::Mcp { socket } => mcp::serve(&socket, std::env::var("BOO_MCP_TOKEN").ok()),
        Command::AgentGuard {
            parent,
            sandbox,
            writable,
            readable,
            connect_port,
            report_fd,
            argv,
        } => agent::harden::agent_guard(
            parent,
            &sandbox,
            writable,
            readable,
            connect_port,
            report_fd,
            argv,
        ),
        Command::Serve { .. } => {
            let proto = match guard_stdout() {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("boo: cannot guard stdout: {e}");
                    std::process::exit(2);
                }
            };
            init_logging(log_file);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("boo: cannot start the async runtime: {e}");
                    std::process::exit(2);
                }
            };
            let code = rt.block_on(lsp::serve(tokio::fs::File::from_std(proto), config));
            // Runs are stopped and the store flushed by now. Do not wait for the
            // blocking stdin reader: a client may keep our stdin open after `exit`.
            rt.shutdown_background();
            code
        }
        other => {
            init_logging(log_file);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("boo: cannot start the async runtime: {e}");
                    std::process::exit(2);
                }
            };
            let code = rt.block_on(async move {
                match other {
                    Command::Flows { root } => cli::flows(&config, root).await,
                    Command::Trust { root, revoke, list } => {
                        cli::trust(&config, root, revoke, list).await
                    }
                    Command::Run {
                        flow,
                        question,
                        band,
                        root,
                        model,
                        fast,
                        sarif,
                        attach,
                    } => {
                        cli::run(
                            config, flow, question, band, root, model, fast, sarif, attach,
                        )
                        .await
                    }
                    Command::Ask {
                        persona,
                        prompt,
                        root,
                        model,
                        background,
                        detached,
                        attach,
                    } => {
                        cli::ask(
                            config, persona, prompt, root, model, background, detached, attach,
                        )
                        .await
                    }
                    Command::Workflows { root } => cli::workflows(&config, root).await,
                    Command::Workflow {
                        action:
                            WorkflowAction::Run {
                                workflow,
                                args,
                                budget,
                                fresh,
                                root,
                                model,
                                attach,
                            },
                    } => {
                        cli::workflow_run(
                            config, workflow, args, budget, fresh, root, model, attach,
                        )
                        .await
                    }
                    Command::Workflow {
                        action: WorkflowAction::Init { name, dir },
                    } => cli::workflow_init(name, dir),
                    Command::Cache {
                        action: CacheAction::Stats { root },
                    } => cli::cache_stats(&config, root).await,
                    Command::Cache {
                        action: CacheAction::Clear { root },
                    } => cli::cache_clear(&config, root).await,
                    Command::Runs { root, all, limit } => {
                        cli::runs(&config, root, all, limit).await
                    }
                    Command::Show { run_id } => cli::show(&config, run_id).await,
                    Command::Cancel { run_id } => cli::cancel(&config, run_id).await,
                    Command::Export { run_id, format } => match format.as_str() {
                        "sarif" => sarif::cli_export(&config, &run_id).await,
                        "otlp-json" => otel::cli_export(&config, &run_id).await,
                        _ => cli::export(&config, run_id, format).await,
                    },
                    Command::Traces { run_id } => cli::traces(&config, run_id).await,
                    Command::Calls { run_id } => cli::calls(&config, run_id).await,
                    Command::Gc { older_than } => cli::gc(&config, older_than).await,
                    Command::Doctor => cli::doctor(&config).await,
                    Command::WorkflowOverhead { calls } => cli::workflow_overhead(calls).await,
                    Command::ProxyServe { upstream } => cli::proxy_serve(upstream).await,
                    Command::Serve { .. }
                    | Command::AgentGuard { .. }
                    | Command::Mcp { .. }
                    | Command::Fingerprint { .. }
                    | Command::Snapshot { .. }
                    | Command::Completions { .. }
                    | Command::Man { .. }
                    | Command::Flow { .. }
                    | Command::Setup(_) => 2,
                }
            });
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            code
        }
    };
    std::process::exit(code);
}
