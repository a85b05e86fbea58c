//! The command line on the same engine: run, runs, show, export, traces, gc, flows, doctor.

mod common;

use common::*;
use std::process::{Command, Output};

fn boo(db: &std::path::Path, args: &[&str]) -> Output {
    boo_cli(db, args, &[])
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
        let child = boo_command(&boo_bin(), &db)
            .args([
                "run",
                "code-review",
                "--root",
                root.to_str().unwrap(),
                "hang [[fake:hang]]",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until an agent runs, then stop the command. When it never does, say what
        // `boo runs` and the command printed (and stop the command).
        let mut last = String::new();
        let started = wait_until(std::time::Duration::from_secs(60), || {
            let out = boo(&db, &["runs", "--all"]);
            last = format!("{}{}", text(&out.stdout), text(&out.stderr));
            last.contains("running")
        });
        if !started {
            let mut child = child;
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{name}: the run never showed as running.\nboo runs: {last}\nboo run stderr: {}",
                text(&out.stderr)
            );
        }
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
        stderr.contains("== phase: Ask") && stderr.contains("+ agent-1"),
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

/// `boo workflows` lists the catalog; `boo workflow run NAME` runs a built-in with
/// live progress (phases, agents, cache hits, tokens against the budget) and the
/// report on stdout; `runs`, `show`, `export` and `traces` read the workflow run;
/// `boo cache stats` and `boo cache clear` see and forget its answers.
#[test]
fn workflows_run_by_name_and_the_cache_commands() {
    let t = TempDir::new("cli-wf-name");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let r = root.to_str().unwrap();
    std::fs::create_dir_all(root.join(".claude/workflows")).unwrap();
    std::fs::write(
        root.join(".claude/workflows/team.js"),
        "export const meta = { name: 'team', description: 'A team script. More words.' };\nreturn 1;\n",
    )
    .unwrap();
    let list = boo(&db, &["workflows", "--root", r]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let out = text(&list.stdout);
    for name in [
        "deep-review",
        "architecture-audit",
        "test-gap-sweep",
        "research-question",
        "dependency-audit",
    ] {
        assert!(out.contains(name), "{out}");
    }
    assert!(
        out.contains("Project (untrusted: `boo trust <root>` to run them)")
            && out.contains("team                     A team script"),
        "{out}"
    );
    let refused = boo(&db, &["workflow", "run", "team", "--root", r]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains(&format!("boo trust {r}")),
        "{}",
        text(&refused.stderr)
    );

    let args = [
        "workflow",
        "run",
        "research-question",
        "--root",
        r,
        "--args",
        "How does add work?",
        "--budget",
        "100000",
    ];
    let run = boo(&db, &args);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    assert!(stdout.starts_with("## Result"), "{stdout}");
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("== phase: Plan")
            && stderr.contains("+ agent-1 (codebase-explorer) [Plan]")
            && stderr.contains("4 agents done (0 cached)")
            && stderr.contains("/ 100000 output tokens"),
        "{stderr}"
    );
    let again = boo(&db, &args);
    assert!(again.status.success());
    assert!(
        text(&again.stderr).contains("4 agents done (4 cached) · 0 / 100000 output tokens"),
        "{}",
        text(&again.stderr)
    );

    let runs = text(&boo(&db, &["runs", "--root", r]).stdout);
    let run_id = runs
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        runs.contains("research-question") && runs.contains(" wf "),
        "{runs}"
    );
    let show = text(&boo(&db, &["show", &run_id]).stdout);
    assert!(
        show.contains("workflow research-question (builtin)")
            && show.contains("[Investigate] (cached)")
            && show.contains("== phase: Answer"),
        "{show}"
    );
    let md = text(&boo(&db, &["export", &run_id, "--format", "markdown"]).stdout);
    assert!(md.starts_with("## Result"), "{md}");
    let js: serde_json::Value =
        serde_json::from_slice(&boo(&db, &["export", &run_id, "--format", "json"]).stdout).unwrap();
    assert_eq!(js["flow"], "research-question");
    // The first run's agents ran (the second's came from the cache): their traces.
    let first_id = runs
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let traces = text(&boo(&db, &["traces", first_id]).stdout);
    assert!(
        traces.contains("agent-1 (codebase-explorer)") && traces.contains("read_file"),
        "{traces}"
    );

    let stats = text(&boo(&db, &["cache", "stats"]).stdout);
    assert!(
        stats.starts_with("4 cached agent answer(s) · 1 project(s)"),
        "{stats}"
    );
    let other = t.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let none = text(&boo(&db, &["cache", "clear", "--root", other.to_str().unwrap()]).stdout);
    assert!(none.starts_with("removed 0 "), "{none}");
    let cleared = text(&boo(&db, &["cache", "clear", "--root", r]).stdout);
    assert!(cleared.starts_with("removed 4 "), "{cleared}");
    let stats = text(&boo(&db, &["cache", "stats", "--root", r]).stdout);
    assert!(stats.starts_with("0 cached agent answer(s)"), "{stats}");
}

/// `boo workflow init` writes a starter script that uses the declarations file it
/// writes beside it, and the starter runs as it is.
#[test]
fn workflow_init_writes_a_starter_that_runs() {
    let t = TempDir::new("cli-wf-init");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let dir = t.path().join("wf");
    let out = boo(
        &db,
        &[
            "workflow",
            "init",
            "my-check",
            "--dir",
            dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = std::fs::read_to_string(dir.join("my-check.js")).unwrap();
    assert!(script.starts_with("/// <reference path=\"./boo-workflow.d.ts\" />"));
    assert!(script.contains("name: 'my-check'"));
    for api in [
        "agent(",
        "parallel(",
        "pipeline(",
        "phase(",
        "log(",
        "args",
        "budget.",
    ] {
        assert!(script.contains(api), "{api}");
    }
    let decl = std::fs::read_to_string(dir.join("boo-workflow.d.ts")).unwrap();
    assert!(decl.contains("declare function agent("));
    let jsconfig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("jsconfig.json")).unwrap())
            .expect("jsconfig.json is JSON");
    let include = jsconfig["include"].as_array().unwrap();
    assert!(
        include.contains(&serde_json::json!("boo-workflow.d.ts")),
        "{jsconfig}"
    );
    assert!(include.contains(&serde_json::json!("*.js")), "{jsconfig}");
    assert_eq!(
        jsconfig["compilerOptions"]["lib"],
        serde_json::json!(["ES2022"])
    );
    // A second script in the same folder keeps the user's jsconfig.json.
    std::fs::write(dir.join("jsconfig.json"), "{\"mine\": true}\n").unwrap();
    let second = boo(
        &db,
        &["workflow", "init", "second", "--dir", dir.to_str().unwrap()],
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("jsconfig.json")).unwrap(),
        "{\"mine\": true}\n"
    );
    std::fs::remove_file(dir.join("second.js")).unwrap();
    // Not over an existing script.
    let again = boo(
        &db,
        &[
            "workflow",
            "init",
            "my-check",
            "--dir",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(1));
    let bad = boo(&db, &["workflow", "init", "Bad Name"]);
    assert_eq!(bad.status.code(), Some(2));
    let run = boo(
        &db,
        &[
            "workflow",
            "run",
            dir.join("my-check.js").to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--args",
            "the add function",
        ],
    );
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(text(&run.stdout).starts_with("## Result"));
}

/// Under the guard with `--connect-port`, an agent reaches the model proxy's port and
/// no other local port (Landlock network rules, kernel ABI 4 or later).
#[test]
fn an_agent_under_the_guard_connects_only_to_the_proxy_port() {
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, o) = (
        allowed.local_addr().unwrap().port(),
        other.local_addr().unwrap().port(),
    );
    let t = TempDir::new("netguard");
    let script = format!(
        "import socket\n\
         for name, port in (('proxy', {a}), ('other', {o})):\n\
         \x20   s = socket.socket()\n\
         \x20   s.settimeout(5)\n\
         \x20   try:\n\
         \x20       s.connect(('127.0.0.1', port)); print(name, 'connected')\n\
         \x20   except OSError as e:\n\
         \x20       print(name, 'refused', e.errno)\n"
    );
    let out = Command::new(boo_bin())
        .arg("agent-guard")
        .arg("--parent")
        .arg(std::process::id().to_string())
        .arg("--writable")
        .arg(t.path())
        .arg("--connect-port")
        .arg(a.to_string())
        .arg("--")
        .args(["python3", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = text
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the guard's report line");
    let network = report["network"].as_str().unwrap_or("");
    if !network.starts_with("tcp-connect only") {
        eprintln!("skip: the network rule is not available here ({network})");
        return;
    }
    assert!(network.contains(&a.to_string()), "{network}");
    assert!(text.contains("proxy connected"), "{text}");
    assert!(
        text.contains("other refused 13"),
        "another local port must be unreachable (EACCES): {text}"
    );
}

/// `boo flows | head -0`: a reader that has gone away ends a printing command quietly
/// (SIGPIPE, as CLI tools do), not with a panic about a failed print.
#[test]
fn a_printing_command_ends_quietly_when_its_reader_is_gone() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    let t = TempDir::new("cli-pipe");
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fresh descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned here alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read); // every write to the pipe now fails with EPIPE
    let out = boo_command(&boo_bin(), &t.path().join("boo.db"))
        .arg("flows")
        .stdout(std::process::Stdio::from(write))
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("failed printing"), "{err}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {err}",
        out.status
    );
}

/// Processes opening one new database at once (a `boo run` starting while `boo runs`
/// polls it) all get it: the switch to WAL and the schema wait for each other instead
/// of refusing with "database is locked".
#[test]
fn processes_racing_to_set_up_a_new_database_all_open_it() {
    let t = TempDir::new("cli-race");
    for round in 0..10 {
        let db = t.path().join(format!("race-{round}.db"));
        let children: Vec<_> = (0..6)
            .map(|_| {
                boo_command(&boo_bin(), &db)
                    .args(["runs", "--all"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        }
    }
}
