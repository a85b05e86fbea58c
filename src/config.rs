//! One configuration for the whole process. `main` builds it from the environment
//! ([`Config::from_env`]); `boo serve` then applies the editor's
//! `initializationOptions` ([`Config::apply`]). Everything below receives the parts it
//! needs; nothing below `main` reads an environment variable.

use crate::agent::acp::pool::PoolConfig;
use crate::agent::harden::SandboxMode;
use crate::agent::qwen::QwenConfig;
use crate::agent::AgentTransport;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The most agents boo runs at once, whatever is asked (a local model server serves a
/// handful; a huge value would only exhaust the machine).
pub const MAX_PARALLEL_AGENTS: usize = 64;

/// How runs are driven.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Per agent prompt (`BOO_AGENT_TIMEOUT_S`, default 900 s).
    pub deadline: Duration,
    /// Per code step (`BOO_CODE_TIMEOUT_S`, default 60 s): past it the step fails and
    /// its git command is killed.
    pub code_deadline: Duration,
    /// Agents running at once across the server (`BOO_MAX_PARALLEL`, default 2).
    pub max_parallel: usize,
    /// How often a server renews its leases (`BOO_HEARTBEAT_MS`, default 2 s).
    pub heartbeat: Duration,
    /// A lease not renewed for this long is up for adoption (`BOO_LEASE_TIMEOUT_MS`, 15 s).
    pub lease_timeout: Duration,
    /// The model recorded on runs that name none (`OPENAI_MODEL` or the editor's `model`).
    pub default_model: Option<String>,
    /// Values masked in everything boo stores or sends from agents (the API key).
    pub secrets: Vec<String>,
    /// A workflow script's own CPU time (`BOO_WORKFLOW_CPU_MS`, default 10 s).
    pub workflow_cpu_time: Duration,
    /// Where runs' snapshots of their project live (`<data_dir>/snapshots`).
    pub snapshot_dir: PathBuf,
    /// The user's own workflows: `$XDG_CONFIG_HOME/boo/workflows`
    /// (`~/.config/boo/workflows`).
    pub user_workflows: Option<PathBuf>,
    /// Model names a workflow's `agent({ model })` may use, mapped to a model the
    /// endpoint serves (`BOO_MODEL_ALIASES`, `initializationOptions.modelAliases`).
    /// Claude Code's `haiku`, `sonnet`, `opus` and `inherit` map to the run's model
    /// unless this table names them.
    pub model_aliases: BTreeMap<String, String>,
    /// The configured model takes images (`BOO_VISION_MODEL=1`,
    /// `initializationOptions.visionModel`): runs may carry attachments, and qwen is
    /// told the model takes images when a run has some.
    pub vision_model: bool,
    /// Background children an agent step may start through boo's MCP tools
    /// (`BOO_SPAWN_PER_STEP`, default 4).
    pub spawn_per_step: usize,
    /// … and a whole run (`BOO_SPAWN_PER_RUN`, default 16).
    pub spawn_per_run: usize,
    /// boo's private runtime folder (mode 0700), where the channel of `boo mcp` listens:
    /// `BOO_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/boo`, else `/tmp/boo-<uid>`. `None`
    /// (supervisors built without a configuration): no channel, and steps allowed to
    /// spawn run without the tools.
    pub runtime_dir: Option<PathBuf>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            deadline: Duration::from_secs(900),
            code_deadline: Duration::from_secs(60),
            max_parallel: 2,
            heartbeat: Duration::from_millis(2000),
            lease_timeout: Duration::from_millis(15_000),
            default_model: None,
            secrets: Vec::new(),
            workflow_cpu_time: Duration::from_secs(10),
            // `Config::from_vars` puts it under boo's data folder; this default serves
            // supervisors built without a configuration (tests).
            snapshot_dir: std::env::temp_dir().join("boo-snapshots"),
            user_workflows: None,
            model_aliases: BTreeMap::new(),
            vision_model: false,
            spawn_per_step: 4,
            spawn_per_run: 16,
            runtime_dir: None,
        }
    }
}

/// Reads `BOO_MODEL_ALIASES`: `alias=model` pairs separated by commas
/// (`haiku=qwen3-coder-small,opus=qwen3-coder-480b`). Blank or malformed pairs are
/// skipped.
pub fn parse_model_aliases(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Everything boo is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite database (`BOO_DB`, else `<data_dir>/boo.db`).
    pub db_path: PathBuf,
    /// `BOO_CATALOG_DIR`: load the built-in catalog from this folder instead of the
    /// copy inside the binary (for catalog authors).
    pub catalog_dir: Option<PathBuf>,
    /// `BOO_LOG_FILE`: logs go there instead of stderr.
    pub log_file: Option<PathBuf>,
    pub qwen: QwenConfig,
    /// `BOO_AGENT_TRANSPORT`, parsed; a bad value refuses every launch with its message.
    pub transport: Result<AgentTransport, String>,
    /// The warm pool of the ACP transport (`BOO_POOL_IDLE_MS`, `BOO_POOL_SESSIONS`,
    /// `BOO_CANCEL_GRACE_MS`).
    pub pool: PoolConfig,
    /// `BOO_POOL_SESSIONS` when set; otherwise a process serves as many sessions as
    /// the server runs agents at once.
    pool_sessions: Option<usize>,
    pub runner: RunnerConfig,
    /// Publish verified findings as editor diagnostics (`initializationOptions.diagnostics`).
    pub diagnostics: bool,
    /// OpenTelemetry export (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, …).
    pub otel: crate::otel::OtelConfig,
    /// The npm registry `boo setup` fetches from (`BOO_NPM_REGISTRY`, `npm_config_registry`).
    pub npm_registry: Option<String>,
}

/// The editor's `initializationOptions`, already parsed by the protocol layer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InitOptions {
    pub db_path: Option<PathBuf>,
    pub qwen_path: Option<String>,
    pub model: Option<String>,
    pub max_parallel: Option<usize>,
    pub diagnostics: Option<bool>,
    /// `modelAliases`: entries added over (and replacing) `BOO_MODEL_ALIASES`'s.
    pub model_aliases: Option<BTreeMap<String, String>>,
    /// `visionModel`: the configured model takes images.
    pub vision_model: Option<bool>,
}

impl Config {
    /// The configuration of this process's environment.
    pub fn from_env() -> Config {
        Config::from_vars(|k| std::env::var_os(k))
    }

    /// The configuration a given environment describes (`var` answers one variable).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Config {
        let text = |k: &str| {
            var(k)
                .map(|v| v.to_string_lossy().trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let path = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let number = |k: &str| text(k).and_then(|v| v.parse::<u64>().ok());
        let data_dir = match path("XDG_DATA_HOME") {
            Some(p) => p.join("boo"),
            None => {
                PathBuf::from(var("HOME").unwrap_or_else(|| "/tmp".into())).join(".local/share/boo")
            }
        };
        let model = text("OPENAI_MODEL");
        let config_dir = match path("XDG_CONFIG_HOME") {
            Some(p) => Some(p.join("boo")),
            None => var("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config/boo")),
        };
        let defaults = RunnerConfig::default();
        let runner = RunnerConfig {
            deadline: number("BOO_AGENT_TIMEOUT_S")
                .map(Duration::from_secs)
                .unwrap_or(defaults.deadline),
            code_deadline: number("BOO_CODE_TIMEOUT_S")
                .map(|s| Duration::from_secs(s.max(1)))
                .unwrap_or(defaults.code_deadline),
            max_parallel: number("BOO_MAX_PARALLEL")
                .map(|n| n as usize)
                .unwrap_or(defaults.max_parallel)
                .clamp(1, MAX_PARALLEL_AGENTS),
            heartbeat: number("BOO_HEARTBEAT_MS")
                .map(|ms| Duration::from_millis(ms.max(50)))
                .unwrap_or(defaults.heartbeat),
            lease_timeout: number("BOO_LEASE_TIMEOUT_MS")
                .map(|ms| Duration::from_millis(ms.max(200)))
                .unwrap_or(defaults.lease_timeout),
            default_model: model.clone(),
            secrets: text("OPENAI_API_KEY").into_iter().collect(),
            workflow_cpu_time: number("BOO_WORKFLOW_CPU_MS")
                .map(|ms| Duration::from_millis(ms.max(10)))
                .unwrap_or(defaults.workflow_cpu_time),
            snapshot_dir: data_dir.join("snapshots"),
            user_workflows: config_dir.map(|d| d.join("workflows")),
            model_aliases: text("BOO_MODEL_ALIASES")
                .map(|t| parse_model_aliases(&t))
                .unwrap_or_default(),
            vision_model: text("BOO_VISION_MODEL").is_some_and(|v| {
                matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
            }),
            spawn_per_step: number("BOO_SPAWN_PER_STEP")
                .map(|n| n as usize)
                .unwrap_or(defaults.spawn_per_step),
            spawn_per_run: number("BOO_SPAWN_PER_RUN")
                .map(|n| n as usize)
                .unwrap_or(defaults.spawn_per_run),
            runtime_dir: Some(
                path("BOO_RUNTIME_DIR")
                    .or_else(|| path("XDG_RUNTIME_DIR").map(|p| p.join("boo")))
                    .unwrap_or_else(|| {
                        // SAFETY: getuid cannot fail.
                        let uid = unsafe { libc::getuid() };
                        PathBuf::from(format!("/tmp/boo-{uid}"))
                    }),
            ),
        };
        let sandbox_var = var("BOO_SANDBOX").map(|v| v.to_string_lossy().to_string());
        let transport_var = var("BOO_AGENT_TRANSPORT").map(|v| v.to_string_lossy().to_string());
        let pool_defaults = PoolConfig::default();
        let pool_sessions = number("BOO_POOL_SESSIONS").map(|n| (n as usize).max(1));
        let pool = PoolConfig {
            idle: number("BOO_POOL_IDLE_MS")
                .map(|ms| Duration::from_millis(ms.max(50)))
                .unwrap_or(pool_defaults.idle),
            sessions_per_process: pool_sessions.unwrap_or(runner.max_parallel),
            cancel_grace: number("BOO_CANCEL_GRACE_MS")
                .map(Duration::from_millis)
                .unwrap_or(pool_defaults.cancel_grace),
            start_timeout: pool_defaults.start_timeout,
        };
        let qwen = QwenConfig {
            program: text("BOO_QWEN").unwrap_or_else(|| "qwen".into()),
            search_path: var("PATH"),
            base_url: text("OPENAI_BASE_URL"),
            api_key: text("OPENAI_API_KEY"),
            model,
            data_dir: data_dir.clone(),
            sandbox: SandboxMode::parse(sandbox_var.as_deref()),
            extra_writable: var("BOO_AGENT_WRITABLE")
                .map(|v| std::env::split_paths(&v).collect())
                .unwrap_or_default(),
            installed: Some(crate::setup::launcher(&data_dir)),
            extra_readable: var("BOO_AGENT_READABLE")
                .map(|v| std::env::split_paths(&v).collect())
                .unwrap_or_default(),
            proxy: None,
        };
        Config {
            db_path: path("BOO_DB").unwrap_or_else(|| data_dir.join("boo.db")),
            catalog_dir: path("BOO_CATALOG_DIR"),
            log_file: path("BOO_LOG_FILE"),
            qwen,
            transport: AgentTransport::parse(transport_var.as_deref()),
            pool,
            pool_sessions,
            runner,
            diagnostics: true,
            otel: crate::otel::OtelConfig::from_vars(&var),
            npm_registry: text("BOO_NPM_REGISTRY").or_else(|| text("npm_config_registry")),
        }
    }

    /// Applies the editor's options over the environment's values.
    pub fn apply(&mut self, opts: &InitOptions) {
        if let Some(db) = &opts.db_path {
            self.db_path = db.clone();
        }
        if let Some(q) = &opts.qwen_path {
            self.qwen.program = q.clone();
        }
        if let Some(m) = &opts.model {
            self.qwen.model = Some(m.clone());
            self.runner.default_model = Some(m.clone());
        }
        if let Some(n) = opts.max_parallel {
            self.runner.max_parallel = n.clamp(1, MAX_PARALLEL_AGENTS);
            if self.pool_sessions.is_none() {
                self.pool.sessions_per_process = self.runner.max_parallel;
            }
        }
        if let Some(d) = opts.diagnostics {
            self.diagnostics = d;
        }
        if let Some(v) = opts.vision_model {
            self.runner.vision_model = v;
        }
        if let Some(aliases) = &opts.model_aliases {
            for (k, v) in aliases {
                self.runner.model_aliases.insert(k.clone(), v.clone());
            }
        }
    }

    /// The configuration with a different model for this one command (`--model`).
    pub fn with_model(mut self, model: Option<String>) -> Config {
        if let Some(m) = model {
            self.apply(&InitOptions {
                model: Some(m),
                ..Default::default()
            });
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_xdg_layout() {
        let c = config(&[("HOME", "/home/u")]);
        assert_eq!(c.qwen.data_dir, PathBuf::from("/home/u/.local/share/boo"));
        assert_eq!(c.db_path, PathBuf::from("/home/u/.local/share/boo/boo.db"));
        assert_eq!(c.qwen.program, "qwen");
        assert_eq!(c.runner.max_parallel, 2);
        assert_eq!(c.runner.deadline, Duration::from_secs(900));
        assert_eq!(c.runner.code_deadline, Duration::from_secs(60));
        assert_eq!(c.qwen.sandbox, Ok(SandboxMode::Auto));
        assert_eq!(
            c.transport,
            Ok(AgentTransport::Acp),
            "the pool is the default"
        );
        assert_eq!(c.pool.sessions_per_process, 2, "follows the parallelism");
        assert_eq!(c.pool.idle, Duration::from_secs(600));
        assert_eq!(c.pool.cancel_grace, Duration::from_secs(5));
        assert!(c.qwen.base_url.is_none() && c.catalog_dir.is_none());
        assert_eq!(
            c.runner.user_workflows,
            Some(PathBuf::from("/home/u/.config/boo/workflows"))
        );
        assert!(c.runner.model_aliases.is_empty());
        let c = config(&[("XDG_DATA_HOME", "/x"), ("BOO_DB", "/db/b.db")]);
        assert_eq!(c.qwen.data_dir, PathBuf::from("/x/boo"));
        assert_eq!(c.db_path, PathBuf::from("/db/b.db"));
        let c = config(&[("XDG_CONFIG_HOME", "/cfg"), ("HOME", "/home/u")]);
        assert_eq!(
            c.runner.user_workflows,
            Some(PathBuf::from("/cfg/boo/workflows"))
        );
    }

    #[test]
    fn model_aliases_come_from_the_environment_and_the_editor() {
        let mut c = config(&[(
            "BOO_MODEL_ALIASES",
            " haiku = small-q ,opus=big-q,,broken, =x,sonnet=",
        )]);
        assert_eq!(
            c.runner.model_aliases,
            BTreeMap::from([
                ("haiku".to_string(), "small-q".to_string()),
                ("opus".to_string(), "big-q".to_string()),
            ])
        );
        c.apply(&InitOptions {
            model_aliases: Some(BTreeMap::from([
                ("opus".to_string(), "editor-q".to_string()),
                ("fast".to_string(), "tiny-q".to_string()),
            ])),
            ..Default::default()
        });
        assert_eq!(c.runner.model_aliases["opus"], "editor-q");
        assert_eq!(c.runner.model_aliases["fast"], "tiny-q");
        assert_eq!(c.runner.model_aliases["haiku"], "small-q");
    }

    #[test]
    fn the_environment_sets_every_knob() {
        let c = config(&[
            ("BOO_QWEN", "/opt/qwen"),
            ("BOO_MAX_PARALLEL", "0"),
            ("BOO_AGENT_TIMEOUT_S", "30"),
            ("BOO_CODE_TIMEOUT_S", "0"),
            ("BOO_HEARTBEAT_MS", "10"),
            ("BOO_LEASE_TIMEOUT_MS", "900"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1"),
            ("OPENAI_MODEL", " qwen3 "),
            ("BOO_SANDBOX", "bogus"),
            ("BOO_AGENT_WRITABLE", "/a:/b"),
            ("BOO_AGENT_TRANSPORT", "pigeon"),
            ("BOO_POOL_IDLE_MS", "5"),
            ("BOO_POOL_SESSIONS", "3"),
            ("BOO_CANCEL_GRACE_MS", "250"),
        ]);
        let e = c.transport.clone().unwrap_err();
        assert!(e.contains("\"pigeon\"") && e.contains("oneshot"), "{e}");
        assert_eq!(c.pool.idle, Duration::from_millis(50), "floored");
        assert_eq!(c.pool.sessions_per_process, 3);
        assert_eq!(c.pool.cancel_grace, Duration::from_millis(250));
        assert_eq!(
            config(&[("BOO_AGENT_TRANSPORT", "oneshot")]).transport,
            Ok(AgentTransport::Oneshot)
        );
        assert_eq!(c.qwen.program, "/opt/qwen");
        assert_eq!(c.runner.max_parallel, 1, "at least one agent runs");
        assert_eq!(c.runner.deadline, Duration::from_secs(30));
        assert_eq!(c.runner.code_deadline, Duration::from_secs(1), "floored");
        assert_eq!(c.runner.heartbeat, Duration::from_millis(50), "floored");
        assert_eq!(c.runner.lease_timeout, Duration::from_millis(900));
        assert_eq!(c.qwen.model.as_deref(), Some("qwen3"));
        assert_eq!(c.runner.default_model.as_deref(), Some("qwen3"));
        assert!(
            !c.runner.vision_model,
            "a model takes text only unless declared"
        );
        assert!(config(&[("BOO_VISION_MODEL", "1")]).runner.vision_model);
        assert!(!config(&[("BOO_VISION_MODEL", "0")]).runner.vision_model);
        assert!(c.qwen.sandbox.unwrap_err().contains("\"bogus\""));
        assert_eq!(
            c.qwen.extra_writable,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }

    #[test]
    fn editor_options_override_the_environment() {
        let mut c = config(&[("OPENAI_MODEL", "env-model"), ("BOO_MAX_PARALLEL", "4")]);
        c.apply(&InitOptions {
            db_path: Some("/e/boo.db".into()),
            qwen_path: Some("/e/qwen".into()),
            model: Some("editor-model".into()),
            max_parallel: Some(3),
            diagnostics: Some(false),
            model_aliases: Some(BTreeMap::from([("opus".to_string(), "big".to_string())])),
            vision_model: Some(true),
        });
        assert!(c.runner.vision_model);
        assert_eq!(c.db_path, PathBuf::from("/e/boo.db"));
        assert_eq!(c.qwen.program, "/e/qwen");
        assert_eq!(c.qwen.model.as_deref(), Some("editor-model"));
        assert_eq!(c.runner.default_model.as_deref(), Some("editor-model"));
        assert_eq!(c.runner.max_parallel, 3);
        assert_eq!(
            c.pool.sessions_per_process, 3,
            "the pool follows the editor's parallelism"
        );
        assert!(!c.diagnostics);
        assert_eq!(
            c.runner.model_aliases.get("opus").map(String::as_str),
            Some("big")
        );
        // A parallelism no machine has is capped, not a panic.
        c.apply(&InitOptions {
            max_parallel: Some(1 << 61),
            ..Default::default()
        });
        assert_eq!(c.runner.max_parallel, MAX_PARALLEL_AGENTS);
        // Absent options leave the environment's values alone.
        let mut d = config(&[("OPENAI_MODEL", "env-model")]);
        d.apply(&InitOptions::default());
        assert_eq!(d.qwen.model.as_deref(), Some("env-model"));
        assert!(d.diagnostics);
    }
}
