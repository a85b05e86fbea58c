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

    // The run's snapshot went with its end; the JSON report carries the snapshot note.
    let snapshots = t.path().join("data/boo/snapshots");
    assert!(!snapshots.join(&run_id).exists());
    assert_eq!(v["snapshot"]["files"], 2, "{}", v["snapshot"]);
    assert_eq!(v["snapshot"]["changes"]["modified"], serde_json::json!([]));
    // A snapshot a crash left behind (its run is not running) is collected by gc once
    // it is older than a launch in flight could be; a fresh one is kept.
    for orphan in ["crashed-run", "launch-in-flight"] {
        std::fs::create_dir_all(snapshots.join(orphan).join("tree")).unwrap();
        std::fs::write(snapshots.join(orphan).join("tree/a.rs"), "a").unwrap();
    }
    let aged = Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(snapshots.join("crashed-run"))
        .status()
        .unwrap();
    assert!(aged.success());

    // gc: nothing is old enough yet; a huge cutoff keeps everything.
    let gc = boo(&db, &["gc", "--older-than", "30d"]);
    assert!(
        text(&gc.stdout).contains("removed 1 project snapshot(s)"),
        "{}",
        text(&gc.stdout)
    );
    assert!(!snapshots.join("crashed-run").exists());
    assert!(snapshots.join("launch-in-flight").exists());
    assert!(
        text(&gc.stdout).contains("removed 0 run(s)"),
        "{}",
        text(&gc.stdout)
    );
    // A cutoff too long to count is "older than anything": it removes nothing (it
    // used to overflow into a cutoff in the future and remove every ended run).
    for huge in [
        "9223372036854775807s",
        "9223372036854775807w",
        "99999999999999999999d",
    ] {
        let gc = boo(&db, &["gc", "--older-than", huge]);
        assert!(
            text(&gc.stdout).contains("removed 0 run(s)"),
            "{huge}: {}{}",
            text(&gc.stdout),
            text(&gc.stderr)
        );
    }
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
    // A damaged database is not "ok": doctor names the file and what to do, whether
    // the damage is in a page or the file is no database at all.
    let doctor = |db: &std::path::Path| {
        let out = Command::new(boo_bin())
            .arg("doctor")
            .env("BOO_DB", db)
            .env("BOO_QWEN", fake_qwen())
            .output()
            .unwrap();
        text(&out.stdout)
    };
    {
        use std::io::{Seek, SeekFrom, Write};
        // Everything into the main file first (boo exits with its pages in the WAL).
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        drop(c);
        let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        let len = f.metadata().unwrap().len();
        assert!(len >= 3 * 4096, "{len}");
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(&[0xA5; 2 * 4096]).unwrap();
    }
    let s = doctor(&db);
    assert!(
        s.contains("FAIL database") && s.contains(db.to_str().unwrap()) && s.contains("damaged"),
        "{s}"
    );
    let junk = t.path().join("junk.db");
    std::fs::write(&junk, vec![0x5A; 8192]).unwrap();
    let s = doctor(&junk);
    assert!(
        s.contains("FAIL database") && s.contains(junk.to_str().unwrap()) && s.contains("damaged"),
        "{s}"
    );
}

#[test]
fn a_run_command_stopped_by_a_signal_cancels_its_run() {
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        let t = TempDir::new("cli-signal");
        let root = project(t.path());
        let db = t.path().join("boo.db");
        let child = Command::new(boo_bin())
            .args([
                "run",
                "code-review",
                "--root",
                root.to_str().unwrap(),
                "hang [[fake:hang]]",
            ])
            .env("BOO_DB", &db)
            .env("BOO_QWEN", fake_qwen())
            .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
            .env("OPENAI_API_KEY", "test-key")
            .env("OPENAI_MODEL", "test-model")
            .env("XDG_DATA_HOME", t.path().join("data"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until an agent runs, then stop the command.
        assert!(wait_until(std::time::Duration::from_secs(30), || {
            text(&boo(&db, &["runs", "--all"]).stdout).contains("running")
        }));
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: signals the child we started.
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("cancelling the run ({name})")),
            "{stderr}"
        );
        let runs = text(&boo(&db, &["runs", "--all"]).stdout);
        assert!(
            runs.contains("cancelled") && !runs.contains("running"),
            "{name}: {runs}"
        );
    }
}

/// `boo trust` records a folder, `--list` shows it with who and when, `--revoke`
/// withdraws it; `boo flows` marks project flows and `boo run` refuses one in an
/// untrusted folder, naming the command.
#[test]
fn trust_list_and_revoke_a_root() {
    let t = TempDir::new("cli-trust");
    let db = t.path().join("boo.db");
    let root = project(t.path());
    let canonical = root.canonicalize().unwrap().display().to_string();
    std::fs::create_dir_all(root.join(".boo/flows")).unwrap();
    std::fs::write(
        root.join(".boo/flows/solo.toml"),
        "name = \"solo\"\ntitle = \"Solo\"\ncategory = \"analysis\"\ndescription = \"One look\"\n\n[[steps]]\nid = \"solo\"\nkind = \"agent\"\npersona = \"structural-analyst\"\nprompt = \"Look.\"\n",
    )
    .unwrap();
    let r = root.to_str().unwrap();
    let out = boo(&db, &["flows", "--root", r]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(project, untrusted)"));
    assert!(text(&out.stderr).contains(&format!("boo trust {canonical}")));
    let out = boo(&db, &["run", "solo", "q", "--root", r]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("boo trust {canonical}")));
    let out = boo(&db, &["trust", "--list"]);
    assert!(out.status.success() && text(&out.stdout).is_empty());
    let out = boo(&db, &["trust", r]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = boo(&db, &["trust", "--list"]);
    let listed = text(&out.stdout);
    assert!(
        listed.starts_with(&format!("{canonical}\t")) && listed.contains("boo trust"),
        "{listed}"
    );
    let out = boo(&db, &["flows", "--root", r]);
    assert!(text(&out.stdout).contains("(project)\n"));
    let out = boo(&db, &["trust", "--revoke", r]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&boo(&db, &["trust", "--list"]).stdout).is_empty());
    // Nothing to trust, and neither a folder nor --list.
    let out = boo(&db, &["trust", t.path().join("nowhere").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(boo(&db, &["trust"]).status.code(), Some(2));
}

#[test]
fn workflow_run_prints_the_report_and_exits_by_the_run_status() {
    let t = TempDir::new("cli-wf");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let file = t.path().join("ask.js");
    std::fs::write(
        &file,
        "export const meta = { name: 'ask', description: 'ask twice' };\nphase('Ask');\nconst a = await parallel([() => agent(`About ${args.topic}`), () => agent('Second opinion')]);\nreturn `answers: ${a.filter(Boolean).length}`;\n",
    )
    .unwrap();
    let args = [
        "workflow",
        "run",
        file.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--args",
        "{\"topic\": \"add\"}",
    ];
    let out = boo(&db, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("## Result\n\nanswers: 2"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("== Ask") && stderr.contains("+ agent-1"),
        "{stderr}"
    );
    assert!(!stderr.contains("(cached)"), "{stderr}");
    // Again: both agents from the cache.
    let again = boo(&db, &args);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(
        text(&again.stderr).matches("(cached)").count(),
        2,
        "{}",
        text(&again.stderr)
    );

    let bad = t.path().join("bad.js");
    std::fs::write(
        &bad,
        "export const meta = { name: 'bad', description: 'x' };\nthrow new Error('stop here');\n",
    )
    .unwrap();
    let out = boo(
        &db,
        &[
            "workflow",
            "run",
            bad.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "a failed run exits 1");
    assert!(
        text(&out.stderr).contains("stop here"),
        "{}",
        text(&out.stderr)
    );
    let broken = t.path().join("broken.js");
    std::fs::write(
        &broken,
        "export const meta = { name: 'b', description: 'x' };\nconst = 1;\n",
    )
    .unwrap();
    let out = boo(
        &db,
        &[
            "workflow",
            "run",
            broken.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("2:"), "{}", text(&out.stderr));
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
