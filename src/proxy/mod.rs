//! The model proxy: a loopback HTTP server between boo's agents and the model server.
//!
//! boo starts one per process ([`Proxy::start`], from `app::App`) on 127.0.0.1 with a
//! port the system picks. Every agent process is given a [`Grant`]: its own base URL
//! (`http://127.0.0.1:<port>/a/<id>`) and a random token as its API key. The proxy
//! accepts a request only when the token in `Authorization: Bearer` belongs to the
//! grant named in the path (else 401), forwards it to the configured endpoint with the
//! user's REAL key, and streams the answer back chunk by chunk as it arrives. So an
//! agent process (and any model steering it) never holds the user's key.
//!
//! Attribution: a grant is held by one process. A `qwen -p` process serves one step;
//! a pool (`qwen --acp`) process serves several sessions, and its environment is fixed
//! when it starts, so its token is per process. boo marks which step a process is
//! prompting ([`Grant::begin`]); a call is attributed to that step when exactly one
//! prompt is running on the process, else to none (`ambiguous`), never to a guess.
//!
//! Every finished call is handed to the [`CallSink`] as a [`CallRecord`].

pub mod http;
pub mod record;
pub mod report;
pub mod shape;
pub mod usage;

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Who a model call belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub run_id: String,
    pub step_id: String,
    pub chat_id: String,
}

/// One forwarded call, when it ended.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub call_id: String,
    /// `None` when several prompts were running on the process at once.
    pub owner: Option<Attribution>,
    pub started_at: String,
    pub finished_at: String,
    pub ttft_ms: Option<u64>,
    pub duration_ms: u64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub request: Vec<u8>,
    pub counts: usage::Counts,
    pub path: String,
}

/// What the proxy reports: a call began (before the upstream answers), a call ended.
#[derive(Debug, Clone)]
pub enum CallEvent {
    Started {
        call_id: String,
        owner: Option<Attribution>,
        started_at: String,
        request: Vec<u8>,
    },
    Finished(CallRecord),
}

/// Where call events go.
pub type CallSink = mpsc::UnboundedSender<CallEvent>;

/// The endpoint boo forwards to.
#[derive(Clone)]
pub struct Upstream {
    /// The configured base URL (`OPENAI_BASE_URL`), e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed.
        f.debug_struct("Upstream")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "(set)"))
            .finish()
    }
}

struct GrantState {
    id: u64,
    active: Mutex<Vec<(u64, Attribution)>>,
    next: AtomicU64,
}

pub struct Proxy {
    port: u16,
    upstream: Upstream,
    grants: Mutex<HashMap<String, Arc<GrantState>>>,
    next_id: AtomicU64,
    stop: CancellationToken,
    sink: Mutex<Option<CallSink>>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("port", &self.port)
            .field("upstream", &self.upstream)
            .finish()
    }
}

/// An agent process's right to call the model through the proxy; dropping it
/// revokes the token.
pub struct Grant {
    proxy: Weak<Proxy>,
    port: u16,
    token: String,
    base_url: String,
    state: Arc<GrantState>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// While held, calls on the grant are attributed to its step (see the module doc).
pub struct Active {
    state: Arc<GrantState>,
    key: u64,
}

impl Drop for Active {
    fn drop(&mut self) {
        lock(&self.state.active).retain(|(k, _)| *k != self.key);
    }
}

impl Grant {
    /// The base URL the agent is given (`OPENAI_BASE_URL`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    /// The proxy's port (the one TCP port the agent may connect to).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The token the agent is given as its API key (`OPENAI_API_KEY`).
    pub fn token(&self) -> &str {
        &self.token
    }
    /// Marks `who` as prompting on this grant's process until the guard drops.
    pub fn begin(&self, who: Attribution) -> Active {
        let key = self.state.next.fetch_add(1, Ordering::SeqCst);
        lock(&self.state.active).push((key, who));
        Active {
            state: self.state.clone(),
            key,
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(p) = self.proxy.upgrade() {
            lock(&p.grants).remove(&self.token);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// 32 random bytes from the kernel, hex.
pub(crate) fn random_token() -> std::io::Result<String> {
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot start the model proxy on 127.0.0.1: {0} — check that loopback networking is available"
)]
pub struct StartError(String);

impl Proxy {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start(upstream: Upstream) -> Result<Arc<Proxy>, StartError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| StartError(e.to_string()))?;
        let port = listener
            .local_addr()
            .map_err(|e| StartError(e.to_string()))?
            .port();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            // Redirects would carry the real key elsewhere.
            .max_redirects(0)
            .build()
            .into();
        let proxy = Arc::new(Proxy {
            port,
            upstream,
            grants: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stop: CancellationToken::new(),
            sink: Mutex::new(None),
            agent,
        });
        tokio::spawn(serve(listener, Arc::downgrade(&proxy), proxy.stop.clone()));
        Ok(proxy)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Finished calls are sent to `sink` from now on.
    pub fn set_sink(&self, sink: CallSink) {
        *lock(&self.sink) = Some(sink);
    }

    /// A new grant (base URL + token) for one agent process.
    pub fn grant(self: &Arc<Self>) -> std::io::Result<Grant> {
        let token = random_token()?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let state = Arc::new(GrantState {
            id,
            active: Mutex::new(Vec::new()),
            next: AtomicU64::new(1),
        });
        lock(&self.grants).insert(token.clone(), state.clone());
        Ok(Grant {
            proxy: Arc::downgrade(self),
            port: self.port,
            base_url: format!("http://127.0.0.1:{}/a/{id}", self.port),
            token,
            state,
        })
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        self.stop.cancel();
        // The recorder ends once the last call in flight is handed over.
        lock(&self.sink).take();
    }

    fn check(&self, id: u64, token: Option<&str>) -> Option<Arc<GrantState>> {
        let token = token?;
        let grants = lock(&self.grants);
        grants.get(token).filter(|g| g.id == id).cloned()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(listener: TcpListener, proxy: Weak<Proxy>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let Ok((sock, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Some(p) = proxy.upgrade() else { return };
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            if let Err(e) = handle(sock, p).await {
                tracing::debug!("model proxy connection: {e}");
            }
        });
    }
}

/// The grant id and the rest of the path in `/a/<id>/<rest>`.
fn split_path(target: &str) -> Option<(u64, &str)> {
    let rest = target.strip_prefix("/a/")?;
    let (id, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    Some((id.parse().ok()?, tail))
}

async fn handle(sock: TcpStream, proxy: Arc<Proxy>) -> std::io::Result<()> {
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    // One request per connection (answers say `Connection: close`).
    let req = match http::read_request(&mut rd).await {
        Ok(r) => r,
        Err(http::ReadError::Closed) => return Ok(()),
        Err(e) => {
            return http::write_error(&mut wr, 400, &e.to_string()).await;
        }
    };
    let token = req
        .header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let grant = split_path(&req.target).and_then(|(id, _)| proxy.check(id, token));
    let Some(grant) = grant else {
        return http::write_error(
            &mut wr,
            401,
            "boo's model proxy refused this request: unknown or revoked token",
        )
        .await;
    };
    let tail = split_path(&req.target).map(|(_, t)| t).unwrap_or("");
    let owner = {
        let active = lock(&grant.active);
        match active.as_slice() {
            [(_, one)] => Some(one.clone()),
            _ => None,
        }
    };
    let url = format!("{}{}", proxy.upstream.base_url.trim_end_matches('/'), tail);
    let started = Instant::now();
    let started_at = crate::clock::now_rfc3339();
    let call_id = uuid::Uuid::now_v7().to_string();
    let sink = lock(&proxy.sink).clone();
    if let Some(s) = &sink {
        let _ = s.send(CallEvent::Started {
            call_id: call_id.clone(),
            owner: owner.clone(),
            started_at: started_at.clone(),
            request: req.body.clone(),
        });
    }
    let (tx, mut rx) = mpsc::channel::<Upstreamed>(64);
    let agent = proxy.agent.clone();
    let key = proxy.upstream.api_key.clone();
    // Chat requests go upstream with their stable members first (shape::stable_order).
    let body = tail
        .ends_with("/chat/completions")
        .then(|| shape::stable_order(&req.body))
        .flatten()
        .unwrap_or_else(|| req.body.clone());
    let method = req.method.clone();
    let content_type = req.header("content-type").map(String::from);
    let accept = req.header("accept").map(String::from);
    tokio::task::spawn_blocking(move || {
        forward(agent, &method, &url, key, content_type, accept, body, tx)
    });
    let mut status = None;
    let mut error = None;
    let mut ttft = None;
    let mut sse = http::SseScan::default();
    let mut client_gone = false;
    while let Some(msg) = rx.recv().await {
        match msg {
            Upstreamed::Head {
                status: s,
                content_type,
            } => {
                status = Some(s);
                if let Err(e) = http::write_head(&mut wr, s, content_type.as_deref()).await {
                    client_gone = true;
                    error = Some(format!("the agent closed the connection: {e}"));
                    break;
                }
            }
            Upstreamed::Chunk(bytes) => {
                if ttft.is_none() {
                    ttft = Some(started.elapsed().as_millis() as u64);
                }
                sse.feed(&bytes);
                if let Err(e) = http::write_chunk(&mut wr, &bytes).await {
                    client_gone = true;
                    error = Some(format!("the agent closed the connection: {e}"));
                    break;
                }
            }
            Upstreamed::Failed(e) => {
                if status.is_none() {
                    let _ = http::write_error(&mut wr, 502, &e).await;
                    client_gone = true;
                }
                error = Some(e);
            }
        }
    }
    if !client_gone {
        let _ = http::write_end(&mut wr).await;
    }
    let _ = wr.shutdown().await;
    if error.is_none() {
        if let Some(s) = status.filter(|s| *s >= 400) {
            error = Some(format!(
                "the model server answered {s}: {}",
                String::from_utf8_lossy(&sse.head(300))
            ));
        }
    }
    let record = CallRecord {
        call_id,
        owner,
        started_at,
        finished_at: crate::clock::now_rfc3339(),
        ttft_ms: ttft,
        duration_ms: started.elapsed().as_millis() as u64,
        status,
        error,
        request: req.body,
        counts: sse.counts(),
        path: tail.to_string(),
    };
    if let Some(s) = sink {
        let _ = s.send(CallEvent::Finished(record));
    }
    Ok(())
}

enum Upstreamed {
    Head {
        status: u16,
        content_type: Option<String>,
    },
    Chunk(Vec<u8>),
    Failed(String),
}

/// The blocking half: one upstream request, its body read as it arrives.
#[allow(clippy::too_many_arguments)]
fn forward(
    agent: ureq::Agent,
    method: &str,
    url: &str,
    key: Option<String>,
    content_type: Option<String>,
    accept: Option<String>,
    body: Vec<u8>,
    tx: mpsc::Sender<Upstreamed>,
) {
    let fail = |e: String| {
        let _ = tx.blocking_send(Upstreamed::Failed(e));
    };
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(k) = key {
        builder = builder.header("authorization", format!("Bearer {k}"));
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    if let Some(a) = accept {
        builder = builder.header("accept", a);
    }
    let request = match builder.body(body) {
        Ok(r) => r,
        Err(e) => return fail(format!("bad upstream request for {url}: {e}")),
    };
    let response = match agent.run(request) {
        Ok(r) => r,
        Err(e) => {
            return fail(format!(
                "cannot reach the model server at {url}: {e} — check OPENAI_BASE_URL and that the server is up"
            ))
        }
    };
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if tx
        .blocking_send(Upstreamed::Head {
            status: response.status().as_u16(),
            content_type,
        })
        .is_err()
    {
        return;
    }
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tx
                    .blocking_send(Upstreamed::Chunk(buf[..n].to_vec()))
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => return fail(format!("the model server's answer broke off: {e}")),
        }
    }
}

#[cfg(test)]
mod tests;
