//! The command line on the same engine: run, runs, show, export, traces, gc, flows, doctor.

mod common;

use common::*;
use std::process::{Command, Output};

fn boo(db: &std::path::Path, args: &[&str]) -> Output {
    Command::new(boo_bin())
        .args(args)
        .env("BOO_DB", db)
        .env("BOO_QWEN", fake_qwen())
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("OPENAI_API_KEY", "test-key")
        .env("OPENAI_MODEL", "test-model")
        .env("XDG_DATA_HOME", db.parent().unwrap().join("data"))
        .env_remove("FAKE_QWEN_MODE")
        .env_remove("FAKE_QWEN_MODES")
        .output()
        .unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).to_string()
}

#[test]
fn run_prints_progress_on_stderr_and_the_report_on_stdout() {
    let t = TempDir::new("cli-run");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let out = boo(
        &db,
        &[
            "run",
            "code-review",
            "--root",
            root.to_str().unwrap(),
            "Is add safe?",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("# Code review"), "{stdout}");
    assert!(stdout.contains("## Verified findings"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("▶ correctness") && stderr.contains("✓ verdict"),
        "{stderr}"
    );
    assert!(stderr.contains("tokens"), "{stderr}");
    let run_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("- Run: `"))
        .unwrap()
        .trim_end_matches('`')
        .to_string();

    let runs = boo(&db, &["runs", "--root", root.to_str().unwrap()]);
    assert!(text(&runs.stdout).contains(&run_id) && text(&runs.stdout).contains("completed"));
    let show = boo(&db, &["show", &run_id]);
    assert!(
        text(&show.stdout).contains("status   completed"),
        "{}",
        text(&show.stdout)
    );
    let md = boo(&db, &["export", &run_id, "--format", "markdown"]);
    assert_eq!(text(&md.stdout).trim_end(), stdout.trim_end());
    let js = boo(&db, &["export", &run_id, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&js.stdout).unwrap();
    assert_eq!(v["flow"], "code-review");
    let traces = boo(&db, &["traces", &run_id]);
    let tr = text(&traces.stdout);
    assert!(
        tr.contains("read_file") && tr.contains("█") && tr.contains("hit rate 81%"),
        "{tr}"
    );
    assert!(tr.contains("turn 1:"), "{tr}");

    // gc: nothing is old enough yet; a huge cutoff keeps everything.
    let gc = boo(&db, &["gc", "--older-than", "30d"]);
    assert!(
        text(&gc.stdout).contains("removed 0 run(s)"),
        "{}",
        text(&gc.stdout)
    );
    let gc = boo(&db, &["gc", "--older-than", "0s"]);
    assert!(
        text(&gc.stdout).contains("removed 1 run(s)"),
        "{}",
        text(&gc.stdout)
    );
    let bad = boo(&db, &["gc", "--older-than", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    let unknown = boo(&db, &["show", &run_id]);
    assert!(
        !unknown.status.success() && text(&unknown.stderr).contains("unknown run"),
        "{:?} {} {}",
        unknown.status,
        text(&unknown.stdout),
        text(&unknown.stderr)
    );
}

#[test]
fn a_failing_run_exits_non_zero() {
    let t = TempDir::new("cli-fail");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let out = boo(
        &db,
        &[
            "run",
            "code-review",
            "--root",
            root.to_str().unwrap(),
            "all fail [[fake:fail]]",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ended failed"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("401"),
        "the report names the failures"
    );
    let out = boo(&db, &["run", "nope", "--root", root.to_str().unwrap(), "q"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("known flows"));
    let out = boo(&db, &["run", "code-review", "--band", "xl", "q"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn flows_are_listed_by_category() {
    let t = TempDir::new("cli-flows");
    let out = boo(&t.path().join("boo.db"), &["flows"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let order: Vec<usize> = ["Analysis", "Discovery", "Planning", "Authoring", "Review"]
        .iter()
        .map(|c| {
            s.find(&format!("{c}\n"))
                .unwrap_or_else(|| panic!("{c} missing in {s}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]));
    for f in [
        "code-review",
        "security-review",
        "architectural-analysis",
        "investigate",
        "adr-draft",
    ] {
        assert!(s.contains(f));
    }
}

#[test]
fn doctor_says_what_to_fix() {
    let t = TempDir::new("cli-doctor");
    let db = t.path().join("boo.db");
    let out = Command::new(boo_bin())
        .arg("doctor")
        .env("BOO_DB", &db)
        .env("BOO_QWEN", "/nonexistent/qwen")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_MODEL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(
        s.contains("FAIL qwen") && s.contains("npm install -g @qwen-code/qwen-code@0.24.4"),
        "{s}"
    );
    assert!(
        s.contains("FAIL OPENAI_BASE_URL") && s.contains("export OPENAI_BASE_URL"),
        "{s}"
    );
    assert!(s.contains("ok   database"), "{s}");
    assert!(s.contains("sandbox"), "{s}");
    let out = Command::new(boo_bin())
        .arg("doctor")
        .env("BOO_DB", &db)
        .env("BOO_QWEN", fake_qwen())
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_MODEL", "m")
        .output()
        .unwrap();
    let s = text(&out.stdout);
    assert!(s.contains("ok   qwen") && s.contains("0.24.4"), "{s}");
    assert!(
        s.contains("FAIL endpoint") && s.contains("OPENAI_BASE_URL"),
        "{s}"
    );
}

#[test]
fn doctor_reports_the_transport_the_pool_and_cached_tokens() {
    let t = TempDir::new("cli-doctor-pool");
    let db = t.path().join("boo.db");
    // An endpoint that accepts connections (the fake agent never sends it anything).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let doctor = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(boo_bin());
        cmd.arg("doctor")
            .env("BOO_DB", &db)
            .env("BOO_QWEN", fake_qwen())
            .env("XDG_DATA_HOME", t.path().join("data"))
            .env("OPENAI_BASE_URL", &url)
            .env("OPENAI_API_KEY", "k")
            .env("OPENAI_MODEL", "m")
            .env_remove("BOO_AGENT_TRANSPORT")
            .env_remove("FAKE_QWEN_USAGE");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), text(&out.stdout))
    };
    let (code, s) = doctor(&[]);
    assert_eq!(code, Some(0), "{s}");
    assert!(s.contains("ok   transport: acp"), "{s}");
    assert!(
        s.contains("ok   pool: a `qwen --acp` process started and answered"),
        "{s}"
    );
    assert!(
        s.contains("ok   cached tokens")
            && s.contains("input tokens of a repeated request were cached"),
        "{s}"
    );
    // An endpoint that reports no cached tokens is a warning, not a failure.
    let (code, s) = doctor(&[("FAKE_QWEN_USAGE", "1234,56,0")]);
    assert_eq!(code, Some(0), "{s}");
    assert!(s.contains("warn cached tokens"), "{s}");
    // A bad transport is a failure that says what to set.
    let (code, s) = doctor(&[("BOO_AGENT_TRANSPORT", "carrier-pigeon")]);
    assert_eq!(code, Some(1), "{s}");
    assert!(s.contains("FAIL transport") && s.contains("oneshot"), "{s}");
    // Nothing the probe started survives it.
    assert!(!t
        .path()
        .join("data/boo")
        .read_dir()
        .is_ok_and(|mut d| d
            .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("doctor-")))));
}
