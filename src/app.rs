//! The composition root, shared by `boo serve` and the command line: from one
//! [`Config`] it opens the store, builds the qwen backend, the outbox and the
//! supervisor, and registers this process as an owner of runs. Each front end brings
//! its own transport (the LSP client, the CLI's progress printer).

use crate::agent::acp::AcpBackend;
use crate::agent::qwen::QwenBackend;
use crate::agent::{AgentBackend, AgentTransport, Misconfigured};
use crate::config::Config;
use crate::proxy::{Proxy, Upstream};
use crate::runner::outbox::{self, OutboxSender, Transport};
use crate::runner::Supervisor;
use crate::store::{queries, Store, StoreError};
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Debug, Error)]
pub enum AppError {
    #[error("cannot open the database {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot register this process as an owner of runs: {0}")]
    Register(String),
    #[error(transparent)]
    Proxy(#[from] crate::proxy::StartError),
}

/// A running boo: the store, the supervisor and the outbox task.
pub struct App {
    pub store: Store,
    pub supervisor: Arc<Supervisor>,
    backend: Arc<dyn AgentBackend>,
    outbox: JoinHandle<()>,
    /// The model proxy agents call the model through (when an endpoint is set).
    pub proxy: Option<Arc<Proxy>>,
}

/// Opens the configured database (for commands that only read it).
pub fn open_store(config: &Config) -> Result<Store, AppError> {
    Store::open(&config.db_path).map_err(|source| AppError::Store {
        path: config.db_path.display().to_string(),
        source,
    })
}

/// The agent backend `config` asks for: the warm ACP pool (default) or one `qwen -p`
/// per prompt.
pub fn backend(config: &Config) -> Arc<dyn AgentBackend> {
    match &config.transport {
        Ok(AgentTransport::Acp) => {
            Arc::new(AcpBackend::new(config.qwen.clone(), config.pool.clone()))
        }
        Ok(AgentTransport::Oneshot) => Arc::new(QwenBackend::new(config.qwen.clone())),
        Err(e) => Arc::new(Misconfigured(e.clone())),
    }
}

/// Starts the model proxy in front of the configured endpoint (none without one: the
/// agents then fail with the endpoint's own message).
pub async fn start_proxy(config: &Config) -> Result<Option<Arc<Proxy>>, AppError> {
    let Some(base_url) = config.qwen.base_url.clone() else {
        return Ok(None);
    };
    let proxy = Proxy::start(Upstream {
        base_url,
        api_key: config.qwen.api_key.clone(),
    })
    .await?;
    Ok(Some(proxy))
}

impl App {
    /// Starts boo with the qwen backend of the configured agent transport.
    /// `transport` receives a sender into the outbox (a transport may queue follow-up
    /// messages of its own).
    pub async fn start<T: Transport>(
        config: &Config,
        transport: impl FnOnce(OutboxSender) -> T,
    ) -> Result<App, AppError> {
        let proxy = start_proxy(config).await?;
        let mut config = config.clone();
        config.qwen.proxy = proxy.clone();
        let mut app = App::start_with(&config, backend(&config), transport).await?;
        app.proxy = proxy;
        Ok(app)
    }

    /// Starts boo with a given agent backend (tests use scripted ones).
    pub async fn start_with<T: Transport>(
        config: &Config,
        backend: Arc<dyn AgentBackend>,
        transport: impl FnOnce(OutboxSender) -> T,
    ) -> Result<App, AppError> {
        let store = open_store(config)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(
            store.clone(),
            backend.clone(),
            tx.clone(),
            config.runner.clone(),
            config.catalog_dir.clone(),
        );
        supervisor.register().await.map_err(AppError::Register)?;
        // Scratch space of agents that a crash left behind.
        if let Ok(running) = store.call(queries::running_chats).await {
            let data_dir = config.qwen.data_dir.clone();
            let removed = tokio::task::spawn_blocking(move || {
                crate::agent::harden::collect_stale_homes(&data_dir, &running)
            })
            .await
            .unwrap_or(0);
            if removed > 0 {
                tracing::info!("removed {removed} agent scratch folder(s) left by a crash");
            }
        }
        // Snapshots of runs that ended without removing theirs (a crash at the end).
        if let Ok(running) = store.call(queries::running_runs).await {
            let base = config.runner.snapshot_dir.clone();
            let removed = tokio::task::spawn_blocking(move || {
                crate::runner::snapshots::collect_snapshots(&base, &running)
            })
            .await
            .unwrap_or(0);
            if removed > 0 {
                tracing::info!("removed {removed} snapshot(s) of runs that are no longer running");
            }
        }
        if let Some(proxy) = &config.qwen.proxy {
            let (sink, calls) = mpsc::unbounded_channel();
            proxy.set_sink(sink);
            let out = tx.clone();
            tokio::spawn(crate::proxy::record::run_recorder(
                calls,
                store.clone(),
                move |phase, call| {
                    let _ = out.send(outbox::Out::ModelCall(outbox::ModelCallNote {
                        phase,
                        call,
                    }));
                },
            ));
        }
        let transport = crate::otel::Tee::new(transport(tx), store.clone(), &config.otel);
        let outbox = tokio::spawn(outbox::run_outbox(rx, store.clone(), transport));
        Ok(App {
            store,
            supervisor,
            backend,
            outbox,
            proxy: None,
        })
    }

    /// Stops the agent processes kept between steps, then lets the outbox deliver what
    /// is queued (bounded), once the supervisor is done.
    pub async fn drain(self, bound: std::time::Duration) {
        let App {
            supervisor,
            backend,
            outbox,
            proxy,
            ..
        } = self;
        backend.shutdown().await;
        if let Some(p) = proxy {
            p.stop();
        }
        drop(supervisor);
        let _ = tokio::time::timeout(bound, outbox).await;
    }
}
