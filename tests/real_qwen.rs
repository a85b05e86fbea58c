//! End-to-end tests with the REAL Qwen Code CLI (0.24.4, `scripts/install-qwen.sh`) driven by
//! `boo serve`, against the scripted OpenAI-compatible server `tests/fixtures/mock-openai.py`
//! on 127.0.0.1. Never a real model, never the internet.
//!
//! Without `.tools/bin/qwen` the qwen tests print a skip line and pass, unless
//! `BOO_REQUIRE_REAL_QWEN=1` is set (CI), in which case they fail and say how to install it.
//!
//!     scripts/install-qwen.sh && cargo test --test real_qwen

mod common;

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tools an agent may be offered: reading and searching only.
const READ_TOOLS: [&str; 3] = ["glob", "grep_search", "read_file"];
/// What the hostile scenario of the mock asks for, one per model turn.
const HOSTILE_TOOLS: [&str; 5] = [
    "write_file",
    "edit",
    "run_shell_command",
    "enter_worktree",
    "web_fetch",
];
/// A whole three-agent run on this 2-core machine takes 10–25 s; this bound is generous.
const RUN_BOUND: Duration = Duration::from_secs(240);

/// The real-qwen tests run one at a time: each agent costs ~300 MB and most of a core while
/// it starts, and test 3 measures a deadline.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `.tools/bin/qwen`, or None (with a skip line) when it is not installed. With
/// `BOO_REQUIRE_REAL_QWEN=1` a missing install is a failure.
fn real_qwen(test: &str) -> Option<PathBuf> {
    let qwen = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/qwen");
    let runnable = qwen.is_file()
        && Command::new(&qwen)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("0.24.4"))
            .unwrap_or(false);
    if runnable {
        return Some(qwen);
    }
    let required = std::env::var("BOO_REQUIRE_REAL_QWEN").is_ok_and(|v| v.trim() == "1");
    assert!(
        !required,
        "BOO_REQUIRE_REAL_QWEN=1 but the real qwen 0.24.4 is not installed at {} (or does not answer --version): run scripts/install-qwen.sh first",
        qwen.display()
    );
    eprintln!(
        "SKIP real_qwen::{test}: the real qwen CLI is not installed at {} (run scripts/install-qwen.sh; set BOO_REQUIRE_REAL_QWEN=1 to make this a failure)",
        qwen.display()
    );
    None
}

/// The kernel's Landlock ABI version (None without Landlock).
fn landlock_abi() -> Option<i64> {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only queries.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    (v > 0).then_some(v)
}

// ---------------------------------------------------------------------------------------------
// The scripted model server
// ---------------------------------------------------------------------------------------------

struct Mock {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Mock {
    fn start(dir: &Path, name: &str, extra: &[&str]) -> Mock {
        let log = dir.join(format!("{name}.log"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mock-openai.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", "0", "--max-seconds", "600", "--log"])
            .arg(&log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 tests/fixtures/mock-openai.py");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mock-openai.py did not print `PORT n` within 20 s (got {line:?})");
        };
        Mock { child, port, log }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The request log, one JSON object per request.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        // SIGTERM by pid: the mock exits at once (open requests are dropped).
        // SAFETY: signals the child we started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn tmp(tag: &str) -> (TempDir, PathBuf) {
    let t = TempDir::new(&format!("realqwen-{tag}"));
    let p = t.path().canonicalize().unwrap();
    (t, p)
}

/// boo serve with the real qwen and the mock as the endpoint (exported explicitly, so
/// nothing of the test's own environment leaks in).
fn serve(dir: &Path, qwen: &Path, base_url: &str, extra: &[(&str, String)]) -> Server {
    let mut env = vec![
        ("BOO_QWEN", qwen.display().to_string()),
        ("OPENAI_BASE_URL", base_url.to_string()),
        ("OPENAI_API_KEY", "sk-mock".to_string()),
        ("OPENAI_MODEL", "mock-model".to_string()),
        ("BOO_SANDBOX", "auto".to_string()),
    ];
    env.extend(extra.iter().cloned());
    Server::start(&dir.join("boo.db"), &env)
}

fn launch(s: &mut Server, question: &str) -> String {
    let r = s
        .request(
            "boo/launchFlow",
            json!({"flow": "code-review", "band": "small", "input": {"question": question}}),
        )
        .unwrap_or_else(|e| panic!("launch failed: {e:?}; stderr: {}", s.stderr()));
    r["runId"].as_str().unwrap().to_string()
}

fn get_run(s: &mut Server, run_id: &str) -> Value {
    s.request("boo/getRun", json!({"runId": run_id, "transcript": true}))
        .unwrap()
}

fn agent_steps(run: &Value) -> Vec<Value> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "agent")
        .cloned()
        .collect()
}

fn traces(s: &mut Server, run_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = Value::Null;
    for _ in 0..100 {
        let r = s
            .request(
                "boo/getTraces",
                json!({"runId": run_id, "cursor": cursor, "limit": 200}),
            )
            .unwrap();
        out.extend(r["traces"].as_array().unwrap().iter().cloned());
        if r["nextCursor"].is_null() {
            break;
        }
        cursor = r["nextCursor"].clone();
    }
    out
}

fn sorted(v: &Value) -> Vec<String> {
    let mut t: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    t.sort();
    t
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every entry under `root`, `.git` included: kind, permission bits and the SHA-256 of the
/// content (or the link target). Two equal snapshots mean a byte-identical tree.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("link {}", target.display()));
            } else if meta.is_dir() {
                out.insert(rel, format!("dir {mode:o}"));
                walk(root, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(
                    rel,
                    format!("file {mode:o} {:x}", Sha256::digest(&bytes)),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn snapshot_diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| match (a.get(k), b.get(k)) {
            (None, Some(_)) => format!("{k} (created)"),
            (Some(_), None) => format!("{k} (deleted)"),
            _ => format!("{k} (changed)"),
        })
        .collect()
}

/// Processes (not zombies, not `exclude`, not this test process) whose working directory or
/// command line points into `dir`.
fn processes_in(dir: &Path, exclude: &[u32]) -> Vec<String> {
    let needle = dir.display().to_string();
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || exclude.contains(&pid) || !alive(pid as i64) {
            continue;
        }
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cwd.starts_with(&needle) || cmdline.contains(&needle) {
            found.push(format!(
                "pid {pid} cwd {cwd} cmd {}",
                cmdline.chars().take(300).collect::<String>()
            ));
        }
    }
    found
}

/// Asserts that no process boo started for this test is still there (a short grace for the
/// kernel to reap what boo already killed).
fn assert_no_agents_left(dir: &Path, s: &Server, mocks: &[&Mock]) {
    let mut exclude: Vec<u32> = mocks.iter().map(|m| m.child.id()).collect();
    exclude.push(s.child.id());
    let mut left = Vec::new();
    let gone = wait_until(Duration::from_secs(3), || {
        left = processes_in(dir, &exclude);
        left.is_empty()
    });
    assert!(gone, "agent processes survived their step:\n{}", left.join("\n"));
}

/// Milliseconds since the epoch of an RFC 3339 UTC timestamp (`2026-11-20T23:07:01.123Z`).
fn rfc3339_ms(s: &str) -> i64 {
    let num = |a: usize, b: usize| -> i64 { s[a..b].parse().unwrap_or_else(|_| panic!("bad time {s}")) };
    let (y, m, d) = (num(0, 4), num(5, 7), num(8, 10));
    let (hh, mm, ss) = (num(11, 13), num(14, 16), num(17, 19));
    let frac = s[19..].trim_end_matches('Z');
    let ms: i64 = frac
        .strip_prefix('.')
        .map(|f| format!("{:0<3}", &f[..f.len().min(3)]).parse().unwrap())
        .unwrap_or(0);
    // Days from the civil date (proleptic Gregorian).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    ((days * 86400 + hh * 3600 + mm * 60 + ss) * 1000) + ms
}

fn assert_only_read_tools_offered(requests: &[Value]) {
    let posts: Vec<&Value> = requests.iter().filter(|r| r["method"] == "POST").collect();
    assert!(!posts.is_empty(), "the mock saw no model request");
    for r in &posts {
        let offered = sorted(&r["tools"]);
        assert!(
            offered.iter().all(|t| READ_TOOLS.contains(&t.as_str())),
            "a model request offered tools beyond read/search: {offered:?} ({r})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. benign
// ---------------------------------------------------------------------------------------------

#[test]
fn benign_run_reads_a_file_and_reports_a_verified_finding() {
    let Some(qwen) = real_qwen("benign") else { return };
    let _one = serial();
    let started = Instant::now();
    let (_t, dir) = tmp("benign");
    let root = project(&dir);
    let mock = Mock::start(&dir, "mock", &["--usage", "4321,65,1000"]);
    let mut s = serve(&dir, &qwen, &mock.base_url(), &[]);
    s.initialize(&root);
    let run_id = launch(&mut s, "Is the README accurate? [[scenario:benign]] [[file:README.md]]");
    let end = s.wait_run_end(&run_id, RUN_BOUND);
    assert_eq!(end["runStatus"], "completed", "{end}\nstderr: {}", s.stderr());
    let report = end["report"].as_str().unwrap();
    let verified = report
        .split("## Verified findings")
        .nth(1)
        .unwrap_or_else(|| panic!("no verified findings section:\n{report}"));
    assert!(
        verified.contains("First line of README.md") && verified.contains("README.md:1"),
        "the mock model's finding is not among the verified findings:\n{report}"
    );

    let run = get_run(&mut s, &run_id);
    let steps = agent_steps(&run);
    assert_eq!(steps.len(), 3, "code-review small has three agent steps");
    let abi = landlock_abi();
    for st in &steps {
        let id = st["stepId"].as_str().unwrap();
        assert_eq!(st["status"], "completed", "{st}");
        let meta = &st["meta"];
        assert_eq!(meta["qwenVersion"], "0.24.4", "{id}: {meta}");
        assert_eq!(sorted(&meta["offeredTools"]), READ_TOOLS, "{id}: {meta}");
        if let Some(abi) = abi {
            assert_eq!(meta["sandbox"], "enforced", "{id}: {meta}");
            assert_eq!(meta["landlockAbi"], abi, "{id}: {meta}");
        } else {
            assert_eq!(meta["sandbox"], "unavailable", "{id}: {meta}");
        }
        // Usage comes from the real stream: two model turns of 4321/65/1000 each.
        let u = &st["usage"];
        assert_eq!(u["inputTokens"], 2 * 4321, "{id}: {u}");
        assert_eq!(u["outputTokens"], 2 * 65, "{id}: {u}");
        assert_eq!(u["cacheReadTokens"], 2 * 1000, "{id}: {u}");
        // The transcript holds the real read_file call and its successful result.
        let tr = st["transcript"].as_array().unwrap();
        let call = tr
            .iter()
            .find(|e| e["type"] == "toolCall" && e["name"] == "read_file")
            .unwrap_or_else(|| panic!("{id}: no read_file call in {tr:?}"));
        let result = tr
            .iter()
            .find(|e| e["type"] == "toolResult" && e["toolCallId"] == call["toolCallId"])
            .unwrap_or_else(|| panic!("{id}: no result for the read_file call"));
        assert_eq!(result["isError"], false, "{result}");
        assert!(
            result["content"].as_str().unwrap().contains("# Demo project"),
            "{result}"
        );
        assert!(
            tr.iter().filter(|e| e["type"] == "messageComplete").count() >= 2,
            "{id}: two model turns"
        );
    }
    let traces = traces(&mut s, &run_id);
    let reads: Vec<&Value> = traces.iter().filter(|t| t["tool"] == "read_file").collect();
    assert_eq!(reads.len(), 3, "one read_file per agent step: {traces:?}");
    for t in &reads {
        assert_eq!(t["outcome"], "ok", "{t}");
        assert_eq!(
            t["input"]["file_path"],
            root.join("README.md").display().to_string(),
            "{t}"
        );
        assert!(t["output"].as_str().unwrap().contains("# Demo project"), "{t}");
        assert!(t["latencyMs"].is_u64(), "{t}");
    }
    assert_eq!(traces.len(), 3, "no other tool ran: {traces:?}");

    let requests = mock.requests();
    assert_only_read_tools_offered(&requests);
    let posts: Vec<&Value> = requests.iter().filter(|r| r["method"] == "POST").collect();
    assert_eq!(posts.len(), 6, "two requests per agent, no side calls: {posts:?}");
    for r in &posts {
        assert_eq!(r["cwd"], root.display().to_string(), "qwen ran in the project: {r}");
        assert_eq!(r["model"], "mock-model");
    }
    assert_no_agents_left(&dir, &s, &[&mock]);
    assert_eq!(s.stop(), Some(0));
    eprintln!("benign: {:.1} s", started.elapsed().as_secs_f64());
}
