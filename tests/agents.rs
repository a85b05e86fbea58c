//! Background agents end to end: `boo/spawnAgent` / `boo/listAgents` against the real
//! `boo serve` binary and the scripted fake qwen, and `boo ask` on the command line.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn spawn(s: &mut Server, persona: &str, prompt: &str) -> String {
    let r = s
        .request(
            "boo/spawnAgent",
            json!({"persona": persona, "prompt": prompt}),
        )
        .unwrap_or_else(|e| panic!("spawnAgent failed: {e:?}; stderr: {}", s.stderr()));
    r["runId"].as_str().unwrap().to_string()
}

#[test]
fn a_spawned_agent_is_a_one_step_run_listed_with_its_persona() {
    let t = TempDir::new("agent-spawn");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    let init = s.initialize(&root);
    let features = init["capabilities"]["experimental"]["boo"]["features"]
        .as_array()
        .unwrap();
    assert!(
        features.contains(&json!("backgroundAgents")),
        "{features:?}"
    );

    let run_id = spawn(&mut s, "codebase-explorer", "Where is add defined?");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    assert_eq!(end["stepId"], "agent");
    let notes = s.run_notes(&run_id);
    assert_eq!(notes[0].0, "boo/runStarted");
    let roster = notes[0].1["steps"].as_array().unwrap();
    assert_eq!(roster.len(), 1);
    assert_eq!(roster[0]["stepId"], "agent");
    assert_eq!(roster[0]["agent"], "codebase-explorer");
    assert_eq!(notes[0].1["band"], json!(null));
    assert!(notes.iter().any(|(m, _)| m == "boo/agentStream"));

    let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    assert_eq!(got["run"]["kind"], "agent");
    assert_eq!(got["run"]["band"], json!(null));
    assert_eq!(got["run"]["question"], "Where is add defined?");
    let steps = got["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["status"], "completed");
    let report = got["report"].as_str().unwrap();
    assert!(report.contains("Where is add defined?"), "{report}");
    assert!(
        report.contains("_Background agent `codebase-explorer` · completed ·"),
        "{report}"
    );
    assert!(report.contains("## Answer"), "{report}");
    // Traces and export work for it as for any run.
    let traces = s
        .request("boo/getTraces", json!({"runId": run_id}))
        .unwrap();
    let traces = traces["traces"].as_array().unwrap();
    assert!(!traces.is_empty());
    assert!(traces.iter().all(|t| t["stepId"] == "agent"));
    let exported = s
        .request("boo/exportRun", json!({"runId": run_id, "format": "json"}))
        .unwrap();
    assert!(exported["content"].as_str().unwrap().contains("\"agent\""));

    // A flow run on the same root is not an agent.
    let flow = s
        .request(
            "boo/launchFlow",
            json!({"flow": "code-review", "input": {"question": "q"}}),
        )
        .unwrap();
    let flow_id = flow["runId"].as_str().unwrap().to_string();
    s.wait_run_end(&flow_id, LONG);
    let listed = s.request("boo/listAgents", json!({})).unwrap();
    let agents = listed["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{listed}");
    let a = &agents[0];
    assert_eq!(a["runId"], run_id.as_str());
    assert_eq!(a["persona"], "codebase-explorer");
    assert_eq!(a["kind"], "agent");
    assert_eq!(a["status"], "completed");
    assert_eq!(a["parentRunId"], json!(null));
    assert_eq!(a["parentStepId"], json!(null));
    // Its tokens, as its run reports them.
    assert!(a["usage"]["totalTokens"].as_u64() > Some(0), "{a}");
    assert_eq!(
        a["usage"]["totalTokens"], got["run"]["usage"]["totalTokens"],
        "{a}"
    );
    let running = s
        .request("boo/listAgents", json!({"status": "running"}))
        .unwrap();
    assert_eq!(running["agents"].as_array().unwrap().len(), 0);
    let elsewhere = s
        .request(
            "boo/listAgents",
            json!({"root": t.path().display().to_string()}),
        )
        .unwrap();
    assert_eq!(elsewhere["agents"].as_array().unwrap().len(), 0);
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn bad_spawn_params_are_refused_without_a_run() {
    let t = TempDir::new("agent-bad");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let (code, msg) = s
        .request(
            "boo/spawnAgent",
            json!({"persona": "nobody", "prompt": "hello"}),
        )
        .unwrap_err();
    assert_eq!(code, -32602);
    assert!(
        msg.contains("persona") && msg.contains("codebase-explorer"),
        "{msg}"
    );
    let (code, msg) = s
        .request(
            "boo/spawnAgent",
            json!({"persona": "codebase-explorer", "prompt": "  "}),
        )
        .unwrap_err();
    assert_eq!(code, -32602);
    assert!(msg.contains("prompt"), "{msg}");
    let (code, msg) = s
        .request("boo/spawnAgent", json!({"prompt": "hello"}))
        .unwrap_err();
    assert_eq!(code, -32602);
    assert!(msg.contains("persona"), "{msg}");
    let (code, msg) = s
        .request("boo/listAgents", json!({"status": "busy"}))
        .unwrap_err();
    assert_eq!(code, -32602);
    assert!(msg.contains("status"), "{msg}");
    let runs = s.request("boo/listRuns", json!({})).unwrap();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0);
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn cancelling_an_agent_run_stops_its_agent() {
    let t = TempDir::new("agent-cancel");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[("FAKE_QWEN_DIR", rec.display().to_string())],
    );
    s.initialize(&root);
    let run_id = spawn(&mut s, "codebase-explorer", "hang please [[fake:hang]]");
    assert!(wait_until(LONG, || !agent_records(&rec).is_empty()));
    let r = s
        .request("boo/cancelRun", json!({"runId": run_id}))
        .unwrap();
    assert_eq!(r["status"], "cancelled");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "cancelled");
    for r in agent_records(&rec) {
        for key in ["launcherPid", "workerPid"] {
            let pid = r[key].as_i64().unwrap_or(0);
            assert!(
                wait_until(Duration::from_secs(5), || !alive(pid)),
                "{key} {pid} survived the cancel"
            );
        }
    }
    let listed = s
        .request("boo/listAgents", json!({"status": "cancelled"}))
        .unwrap();
    assert_eq!(listed["agents"].as_array().unwrap().len(), 1);
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn kill_9_with_an_agent_in_flight_then_restart_resumes_it() {
    let t = TempDir::new("agent-resume");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let dir = ("FAKE_QWEN_DIR", rec.display().to_string());
    let mut s = Server::start(
        &db,
        &[dir.clone(), ("FAKE_QWEN_MODES", "agent=hang".into())],
    );
    s.initialize(&root);
    let run_id = spawn(&mut s, "codebase-explorer", "resume me");
    assert!(wait_until(LONG, || invocations(&rec).get("agent") == Some(&1)));
    s.kill9();
    let mut s2 = Server::start(&db, &[dir]);
    s2.initialize(&root);
    let end = s2.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    assert_eq!(invocations(&rec).get("agent"), Some(&2));
    let got = s2.request("boo/getRun", json!({"runId": run_id})).unwrap();
    assert_eq!(got["run"]["kind"], "agent");
    assert_eq!(got["steps"][0]["attempt"], 2);
    assert_eq!(s2.stop(), Some(0));
}

#[test]
fn boo_ask_prints_the_report_and_exits_zero_when_it_completes() {
    let t = TempDir::new("ask-fg");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let r = root.display().to_string();
    let out = boo_cli(
        &db,
        &[
            "ask",
            "codebase-explorer",
            "Where is add defined?",
            "--root",
            &r,
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("Where is add defined?"), "{stdout}");
    let bad = boo_cli(&db, &["ask", "nobody", "hello", "--root", &r], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown persona"));
}

#[test]
fn boo_ask_background_returns_at_once_and_the_run_goes_on_to_its_end() {
    let t = TempDir::new("ask-bg");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let r = root.display().to_string();
    let started = std::time::Instant::now();
    let out = boo_cli(
        &db,
        &[
            "ask",
            "codebase-explorer",
            "take your time [[fake:slow]]",
            "--root",
            &r,
            "--background",
        ],
        &[("FAKE_QWEN_DELAY_MS", "400".into())],
    );
    let returned_after = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let run_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(run_id.len(), 36, "a run id on stdout: {run_id:?}");
    let status = |db: &std::path::Path| {
        let shown = boo_cli(db, &["show", &run_id], &[]);
        String::from_utf8_lossy(&shown.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("status").map(|s| s.trim().to_string()))
            .unwrap_or_default()
    };
    // The command returned while the agent was still at work (a slow agent takes
    // seconds), and the run reaches its end with nobody waiting for it.
    let first = status(&db);
    assert!(
        first.starts_with("running"),
        "{first} after {returned_after:?}"
    );
    assert!(
        wait_until(LONG, || status(&db).starts_with("completed")),
        "the background run never completed: {}",
        status(&db)
    );
    let shown = boo_cli(&db, &["show", &run_id], &[]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("agent    codebase-explorer"));
    let bad = boo_cli(
        &db,
        &["ask", "nobody", "hello", "--root", &r, "--background"],
        &[],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown persona"));
}

#[test]
fn a_workflow_background_agent_is_a_step_of_the_run_and_an_uncollected_one_lands_too() {
    let t = TempDir::new("agent-wf");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let script = "export const meta = { name: 'bg', description: 'background agents' };\n\
                  const a = agent('first look', { background: true, label: 'first' });\n\
                  agent('never collected', { background: true, label: 'forgotten' });\n\
                  const b = await agent('second look', { label: 'second' });\n\
                  return { a: await result(a), id: a, b };\n";
    let r = s
        .request("boo/launchWorkflow", json!({ "script": script }))
        .unwrap_or_else(|e| panic!("{e:?}; {}", s.stderr()));
    let run_id = r["runId"].as_str().unwrap().to_string();
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    assert_eq!(got["run"]["result"]["id"], "agent-1");
    assert!(got["run"]["result"]["a"].is_string(), "{}", got["run"]);
    let steps = got["steps"].as_array().unwrap();
    for label in ["first", "forgotten", "second"] {
        let st = steps
            .iter()
            .find(|s| s["label"] == label)
            .unwrap_or_else(|| panic!("no step {label}: {steps:?}"));
        assert_eq!(st["status"], "completed", "{st}");
        assert_eq!(st["parentStepId"], "script");
    }
    let added = s
        .run_notes(&run_id)
        .iter()
        .filter(|(m, _)| m == "boo/stepAdded")
        .count();
    assert_eq!(added, 3);
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn boo_cancel_stops_a_background_agent_in_its_detached_driver() {
    let t = TempDir::new("ask-cancel");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let r = root.display().to_string();
    let dir = ("FAKE_QWEN_DIR", rec.display().to_string());
    let out = boo_cli(
        &db,
        &[
            "ask",
            "codebase-explorer",
            "hang please [[fake:hang]]",
            "--root",
            &r,
            "--background",
        ],
        std::slice::from_ref(&dir),
    );
    assert_eq!(out.status.code(), Some(0));
    let run_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(wait_until(LONG, || !agent_records(&rec).is_empty()));
    let cancelled = boo_cli(&db, &["cancel", &run_id], &[]);
    let stderr = String::from_utf8_lossy(&cancelled.stderr);
    assert_eq!(cancelled.status.code(), Some(0), "{stderr}");
    let shown = boo_cli(&db, &["show", &run_id], &[]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("status   cancelled"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );
    for r in agent_records(&rec) {
        for key in ["launcherPid", "workerPid"] {
            let pid = r[key].as_i64().unwrap_or(0);
            assert!(
                wait_until(Duration::from_secs(10), || !alive(pid)),
                "{key} {pid} survived the cancel"
            );
        }
    }
    let again = boo_cli(&db, &["cancel", &run_id], &[]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn a_background_agent_whose_detached_driver_dies_is_finished_by_the_next_server() {
    let t = TempDir::new("ask-adopt");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let r = root.display().to_string();
    let dir = ("FAKE_QWEN_DIR", rec.display().to_string());
    let out = boo_cli(
        &db,
        &[
            "ask",
            "codebase-explorer",
            "survive the driver",
            "--root",
            &r,
            "--background",
        ],
        &[dir.clone(), ("FAKE_QWEN_MODES", "agent=hang".into())],
    );
    assert_eq!(out.status.code(), Some(0));
    let run_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(wait_until(LONG, || invocations(&rec).get("agent") == Some(&1)));
    // The detached driver is the owner of the run's lease.
    let driver: i64 = {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row(
            "SELECT o.pid FROM server_owners o JOIN run_leases l ON l.owner_id = o.owner_id WHERE l.run_id = ?1",
            [&run_id],
            |row| row.get(0),
        )
        .unwrap()
    };
    assert!(alive(driver));
    unsafe { libc::kill(driver as i32, libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(10), || !alive(driver)));
    // A server on the same database adopts the ownerless run and finishes it.
    let mut s = Server::start(&db, &[dir]);
    s.initialize(&root);
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    assert_eq!(invocations(&rec).get("agent"), Some(&2));
    let listed = s.request("boo/listAgents", json!({})).unwrap();
    assert_eq!(listed["agents"][0]["status"], "completed");
    assert_eq!(s.stop(), Some(0));
}
