//! A small LSP client for end-to-end tests against the real `boo` binary.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn boo_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_boo"))
}

pub fn fake_qwen() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-qwen")
}

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "boo-e2e-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small git repository to analyse.
pub fn project(dir: &Path) -> PathBuf {
    let root = dir.join("project");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("README.md"),
        "# Demo project\n\nA tiny project for tests.\n",
    )
    .unwrap();
    std::fs::write(
        root.join("src/lib.rs"),
        "pub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(&root)
            .args([
                "-c",
                "user.email=t@example.com",
                "-c",
                "user.name=t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "init"]);
    std::fs::write(
        root.join("src/lib.rs"),
        "pub fn add(a: u32, b: u32) -> u32 {\n    a.wrapping_add(b)\n}\n",
    )
    .unwrap();
    root.canonicalize().unwrap()
}

/// The boo binary with the environment every test gives it: the database, the fake
/// qwen, a model endpoint that is never contacted (the fake answers itself), and data
/// and config folders beside the database (so the user's own `~/.config/boo` never
/// leaks into a test).
pub fn boo_command(bin: &Path, db: &Path) -> Command {
    let dir = db.parent().unwrap();
    let mut cmd = Command::new(bin);
    cmd.env("BOO_DB", db)
        .env("BOO_QWEN", fake_qwen())
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("OPENAI_API_KEY", "test-key")
        .env("OPENAI_MODEL", "test-model")
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env_remove("BOO_MODEL_ALIASES")
        .env_remove("BOO_CATALOG_DIR")
        .env_remove("FAKE_QWEN_MODE")
        .env_remove("FAKE_QWEN_MODES");
    cmd
}

/// Runs a boo command line (`boo flows`, `boo workflow run …`) to its end.
pub fn boo_cli(db: &Path, args: &[&str], envs: &[(&str, String)]) -> std::process::Output {
    let mut cmd = boo_command(&boo_bin(), db);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
        if *k == "FAKE_QWEN_DIR" {
            cmd.env("BOO_AGENT_WRITABLE", v);
        }
    }
    cmd.output().unwrap()
}

/// How many agent processes ran per step id (the fake qwen's records).
pub fn invocations(rec: &Path) -> std::collections::HashMap<String, usize> {
    let mut n = std::collections::HashMap::new();
    for r in agent_records(rec) {
        *n.entry(r["env"]["BOO_STEP_ID"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    n
}

pub enum Msg {
    Response {
        id: i64,
        result: Result<Value, (i64, String)>,
    },
    Notification {
        method: String,
        params: Value,
    },
    Request {
        id: Value,
        method: String,
        params: Value,
    },
}

pub struct Server {
    pub child: Child,
    stdin: ChildStdin,
    rx: mpsc::Receiver<Msg>,
    next_id: i64,
    pub notes: Vec<(String, Value)>,
    pending: VecDeque<Msg>,
    pub stderr_log: PathBuf,
    pub server_requests: Vec<(String, Value)>,
}

pub fn frame(v: &Value) -> Vec<u8> {
    let body = serde_json::to_vec(v).unwrap();
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend(body);
    out
}

/// Reads frames; panics (in the reader thread) on bytes that are not LSP frames,
/// which proves stdout carries protocol bytes only.
fn reader(stdout: impl Read, tx: mpsc::Sender<Msg>) {
    let mut r = BufReader::new(stdout);
    loop {
        let mut len = None;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("not a header line on stdout: {line:?}"));
            if k.eq_ignore_ascii_case("content-length") {
                len = Some(v.trim().parse::<usize>().unwrap());
            }
        }
        let len = len.expect("a frame without Content-Length");
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let v: Value = serde_json::from_slice(&body).expect("a frame body that is not JSON");
        let msg = if let Some(m) = v.get("method").and_then(|m| m.as_str()) {
            if let Some(id) = v.get("id") {
                Msg::Request {
                    id: id.clone(),
                    method: m.to_string(),
                    params: v["params"].clone(),
                }
            } else {
                Msg::Notification {
                    method: m.to_string(),
                    params: v["params"].clone(),
                }
            }
        } else {
            let id = v["id"].as_i64().unwrap_or(-1);
            let result = match v.get("error") {
                Some(e) => Err((
                    e["code"].as_i64().unwrap_or(0),
                    e["message"].as_str().unwrap_or("").to_string(),
                )),
                None => Ok(v["result"].clone()),
            };
            Msg::Response { id, result }
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

impl Server {
    pub fn start(db: &Path, envs: &[(&str, String)]) -> Server {
        Server::start_bin(&boo_bin(), db, envs)
    }

    /// Like `start`, with another copy of the boo binary.
    pub fn start_bin(bin: &Path, db: &Path, envs: &[(&str, String)]) -> Server {
        let log = db.with_extension(format!(
            "stderr-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = boo_command(bin, db);
        cmd.arg("serve")
            .env("BOO_MAX_PARALLEL", "2")
            .env("BOO_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in envs {
            cmd.env(k, v);
            // The fake's process records live outside the sandbox's writable set.
            if *k == "FAKE_QWEN_DIR" {
                cmd.env("BOO_AGENT_WRITABLE", v);
            }
        }
        let mut child = cmd.spawn().expect("start boo serve");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || reader(stdout, tx));
        Server {
            child,
            stdin,
            rx,
            next_id: 1,
            notes: Vec::new(),
            pending: VecDeque::new(),
            stderr_log: log,
            server_requests: Vec::new(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        let f = frame(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
        self.send_raw(&f);
    }

    fn pump(&mut self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(Msg::Notification { method, params }) => {
                self.notes.push((method, params));
                true
            }
            Ok(Msg::Request { id, method, params }) => {
                self.server_requests.push((method, params));
                let f = frame(&json!({"jsonrpc": "2.0", "id": id, "result": null}));
                self.send_raw(&f);
                true
            }
            Ok(m @ Msg::Response { .. }) => {
                self.pending.push_back(m);
                true
            }
            Err(_) => false,
        }
    }

    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, (i64, String)> {
        self.request_timeout(method, params, Duration::from_secs(30))
    }

    pub fn request_timeout(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, (i64, String)> {
        let id = self.next_id;
        self.next_id += 1;
        let f = frame(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.send_raw(&f);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self
                .pending
                .iter()
                .position(|m| matches!(m, Msg::Response { id: i, .. } if *i == id))
            {
                if let Some(Msg::Response { result, .. }) = self.pending.remove(pos) {
                    return result;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no answer to {method} within {timeout:?}; stderr: {}",
                self.stderr()
            );
            self.pump(left.min(Duration::from_millis(100)));
        }
    }

    pub fn initialize(&mut self, root: &Path) -> Value {
        let uri = format!("file://{}", root.display());
        let r = self
            .request(
                "initialize",
                json!({"processId": null, "rootUri": uri, "capabilities": {"window": {"workDoneProgress": true}},
                       "workspaceFolders": [{"uri": uri, "name": "project"}]}),
            )
            .expect("initialize");
        self.notify("initialized", json!({}));
        r
    }

    /// Waits until `pred` holds for some notification seen so far.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str, &Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, p)) = self.notes.iter().find(|(m, p)| pred(m, p)) {
                return p.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; stderr: {}",
                self.stderr()
            );
            self.pump(left.min(Duration::from_millis(100)));
        }
    }

    pub fn wait_run_end(&mut self, run_id: &str, timeout: Duration) -> Value {
        let id = run_id.to_string();
        self.wait_for("the run's terminal update", timeout, move |m, p| {
            m == "boo/stepUpdated"
                && p["runId"] == id.as_str()
                && p.get("runStatus").is_some_and(|s| s != "running")
        })
    }

    /// Reads whatever else arrives within `d`.
    pub fn drain(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            self.pump(Duration::from_millis(20));
        }
    }

    pub fn run_notes(&self, run_id: &str) -> Vec<(String, Value)> {
        self.notes
            .iter()
            .filter(|(_, p)| p["runId"] == run_id)
            .cloned()
            .collect()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// shutdown + exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let _ = self.request_timeout("shutdown", Value::Null, Duration::from_secs(20));
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn alive(pid: i64) -> bool {
    // A zombie counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// The fake qwen's process records (FAKE_QWEN_DIR).
pub fn agent_records(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                if let Ok(v) = serde_json::from_str::<Value>(&t) {
                    out.push(v);
                }
            }
        }
    }
    out
}

/// Writes an executable `#!/bin/sh` script.
pub fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// The agent transport the servers of this test run use: `BOO_AGENT_TRANSPORT` of the
/// test process (inherited by every server it starts), `acp` when unset.
pub fn transport() -> String {
    std::env::var("BOO_AGENT_TRANSPORT")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "acp".into())
}

/// True when agents run as sessions of warm `qwen --acp` processes.
pub fn pooled() -> bool {
    transport() == "acp"
}
