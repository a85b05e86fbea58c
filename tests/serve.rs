//! End-to-end tests: the real `boo serve` binary, the scripted fake qwen, framed JSON-RPC.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn launch(s: &mut Server, flow: &str, question: &str) -> String {
    let r = s
        .request(
            "boo/launchFlow",
            json!({"flow": flow, "band": "small", "input": {"question": question}}),
        )
        .unwrap_or_else(|e| panic!("launch failed: {e:?}; stderr: {}", s.stderr()));
    r["runId"].as_str().unwrap().to_string()
}

fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "text")
        .map(|e| e["text"].as_str().unwrap_or(""))
        .collect()
}

#[test]
fn a_launched_run_completes_in_order_with_contiguous_seq() {
    let t = TempDir::new("order");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    let init = s.initialize(&root);
    assert_eq!(init["serverInfo"]["name"], "boo");
    let cmds = init["capabilities"]["executeCommandProvider"]["commands"]
        .as_array()
        .unwrap();
    assert!(cmds.contains(&json!("boo.launchFlow")) && cmds.contains(&json!("boo.cancelRun")));
    assert_eq!(
        init["capabilities"]["experimental"]["boo"]["protocolVersion"],
        1
    );

    let flows = s.request("boo/listFlows", json!({})).unwrap();
    let names: Vec<&str> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"code-review") && names.contains(&"architectural-analysis"));

    let run_id = launch(&mut s, "code-review", "Is the addition safe?");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    assert!(end["report"]
        .as_str()
        .unwrap()
        .contains("## Verified findings"));
    s.drain(Duration::from_millis(300));

    let notes = s.run_notes(&run_id);
    let boo_notes: Vec<&(String, Value)> = notes
        .iter()
        .filter(|(m, _)| m.starts_with("boo/"))
        .collect();
    assert_eq!(boo_notes[0].0, "boo/runStarted");
    assert_eq!(boo_notes[0].1["status"], "running");
    let last = boo_notes.last().unwrap();
    assert_eq!(last.0, "boo/stepUpdated");
    assert_eq!(last.1["runStatus"], "completed");
    let mut running: HashMap<String, String> = HashMap::new();
    let mut seqs: HashMap<String, u64> = HashMap::new();
    let mut streamed: HashMap<String, Vec<Value>> = HashMap::new();
    for (m, p) in &boo_notes {
        match m.as_str() {
            "boo/stepUpdated" if p["status"] == "running" => {
                running.insert(
                    p["stepId"].as_str().unwrap().into(),
                    p["chatId"].as_str().unwrap_or("").into(),
                );
            }
            "boo/agentStream" => {
                let step = p["stepId"].as_str().unwrap();
                assert!(
                    running.contains_key(step),
                    "a stream of {step} before its running update"
                );
                let chat = p["chatId"].as_str().unwrap().to_string();
                assert_eq!(running[step], chat);
                let seq = p["seq"].as_u64().unwrap();
                let prev = seqs.insert(chat.clone(), seq).unwrap_or(0);
                assert_eq!(seq, prev + 1, "seq must grow by exactly one");
                streamed
                    .entry(chat)
                    .or_default()
                    .extend(p["events"].as_array().unwrap().iter().cloned());
            }
            _ => {}
        }
    }
    assert_eq!(streamed.len(), 3, "three agent steps streamed");
    // Work-done progress, one token per run.
    assert!(s
        .server_requests
        .iter()
        .any(|(m, _)| m == "window/workDoneProgress/create"));
    assert!(s
        .notes
        .iter()
        .any(|(m, p)| m == "$/progress" && p["value"]["kind"] == "begin"));
    assert!(s
        .notes
        .iter()
        .any(|(m, p)| m == "$/progress" && p["value"]["kind"] == "end"));
    // Diagnostics for verified findings.
    assert!(s
        .notes
        .iter()
        .any(|(m, p)| m == "textDocument/publishDiagnostics"
            && p["diagnostics"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d["source"] == "boo"))));

    // getRun with the transcript rebuilds exactly what was streamed.
    let got = s
        .request("boo/getRun", json!({"runId": run_id, "transcript": true}))
        .unwrap();
    assert_eq!(got["run"]["status"], "completed");
    assert!(got["report"].as_str().unwrap().contains("Code review"));
    for step in got["steps"].as_array().unwrap() {
        let Some(chat) = step["chatId"].as_str() else {
            continue;
        };
        let tr = step["transcript"].as_array().unwrap();
        assert_eq!(step["lastSeq"].as_u64().unwrap(), seqs[chat]);
        assert_eq!(streamed_text(tr), streamed_text(&streamed[chat]));
        assert_eq!(tr.iter().filter(|e| e["type"] == "toolCall").count(), 2);
        assert!(step["usage"]["inputTokens"].as_u64().unwrap() > 0);
        let turns = step["turns"].as_array().unwrap();
        assert_eq!(turns.len(), 3, "usage of every model turn");
        assert_eq!(turns[0]["usage"]["cacheHitRate"], 0.8104);
    }
    // Traces were recorded and finished.
    let traces = s
        .request("boo/getTraces", json!({"runId": run_id}))
        .unwrap();
    let traces = traces["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 6);
    assert!(traces
        .iter()
        .all(|t| t["outcome"] == "ok" && t["latencyMs"].is_u64()));
    // Export.
    let md = s
        .request(
            "boo/exportRun",
            json!({"runId": run_id, "format": "markdown"}),
        )
        .unwrap();
    assert!(md["fileName"].as_str().unwrap().ends_with(".md"));
    assert_eq!(md["content"], got["report"]);
    let js = s
        .request("boo/exportRun", json!({"runId": run_id, "format": "json"}))
        .unwrap();
    let parsed: Value = serde_json::from_str(js["content"].as_str().unwrap()).unwrap();
    assert!(parsed["counts"]["verified"].as_u64().unwrap() >= 1);
    // Runs list.
    let runs = s.request("boo/listRuns", json!({})).unwrap();
    assert_eq!(runs["runs"][0]["runId"], run_id.as_str());
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn every_error_code_and_the_server_keeps_serving() {
    let t = TempDir::new("errors");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let code = |r: Result<Value, (i64, String)>| r.err().unwrap_or((0, String::new()));
    let (c, m) = code(s.request("boo/nope", json!({})));
    assert_eq!(c, -32601, "{m}");
    let (c, m) = code(s.request(
        "boo/launchFlow",
        json!({"flow": "nope", "input": {"question": "q"}}),
    ));
    assert!(c == -32602 && m.contains("code-review"), "{c} {m}");
    let (c, m) = code(s.request(
        "boo/launchFlow",
        json!({"flow": "code-review", "band": "huge", "input": {"question": "q"}}),
    ));
    assert!(
        c == -32602 && m.contains("small") && m.contains("medium") && m.contains("large"),
        "{m}"
    );
    let (c, m) = code(s.request(
        "boo/launchFlow",
        json!({"flow": "code-review", "input": {"question": "  "}}),
    ));
    assert!(c == -32602 && m.contains("question"), "{m}");
    let (c, m) = code(s.request(
        "boo/launchFlow",
        json!({"flow": "code-review", "input": {}}),
    ));
    assert!(c == -32602 && m.contains("question"), "{m}");
    let (c, m) = code(s.request(
        "boo/launchFlow",
        json!({"flow": "code-review", "root": "/definitely/not/here", "input": {"question": "q"}}),
    ));
    assert!(c == -32602 && m.contains("not a readable directory"), "{m}");
    let (c, _) = code(s.request(
        "boo/getRun",
        json!({"runId": "0190c0de-0000-7000-8000-000000000000"}),
    ));
    assert_eq!(c, -32001);
    let (c, _) = code(s.request(
        "boo/getTraces",
        json!({"runId": "0190c0de-0000-7000-8000-000000000000"}),
    ));
    assert_eq!(c, -32001);
    let (c, _) = code(s.request(
        "boo/cancelRun",
        json!({"runId": "0190c0de-0000-7000-8000-000000000000"}),
    ));
    assert_eq!(c, -32001);
    let (c, m) = code(s.request("boo/getRun", json!({})));
    assert!(c == -32602 && m.contains("runId"), "{m}");
    // A malformed frame and invalid JSON are answered, and the server keeps serving.
    s.send_raw(b"Content-Length: 9\r\n\r\n{not json");
    s.send_raw(b"Content-Length: 2\r\n\r\n[]");
    s.send_raw(b"Content-Length: nine\r\n\r\n");
    s.send_raw(b"Content-Length: 27\r\n\r\n{\"id\": 77, \"method\": \"x\"}  ");
    s.send_raw(b"garbage without a newline then Content-Length: 2\r\n\r\n{}");
    let bad = s.request("boo/listFlows", json!({}));
    assert!(bad.is_ok(), "{bad:?}");
    let run_id = launch(&mut s, "code-review", "still alive?");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed");
    // Cancelling a run that ended: -32004, naming its status.
    let (c, m) = code(s.request("boo/cancelRun", json!({"runId": run_id})));
    assert!(c == -32004 && m.contains("completed"), "{c} {m}");
    let (c, m) = code(s.request("boo/exportRun", json!({"runId": run_id, "format": "pdf"})));
    assert!(c == -32602 && m.contains("markdown"), "{m}");
    // Generic LSP clients drive flows through executeCommand.
    let r = s
        .request("workspace/executeCommand", json!({"command": "boo.launchFlow", "arguments": [{"flow": "code-review", "input": {"question": "via command"}}]}))
        .unwrap();
    let id2 = r["runId"].as_str().unwrap().to_string();
    assert_eq!(s.wait_run_end(&id2, LONG)["runStatus"], "completed");
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn every_frame_of_the_corpus_is_answered_and_the_server_keeps_serving() {
    let t = TempDir::new("frames");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/frames");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for f in &files {
        let body = std::fs::read(f).unwrap();
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        s.send_raw(&frame);
        // The server is still there and still answers, after every single frame.
        let alive = s.request("boo/listFlows", json!({}));
        assert!(alive.is_ok(), "after {}: {alive:?}", f.display());
    }
    let run_id = launch(&mut s, "code-review", "still serving?");
    assert_eq!(s.wait_run_end(&run_id, LONG)["runStatus"], "completed");
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn hostile_launch_values_are_refused_without_a_run() {
    let t = TempDir::new("hostile-launch");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let code = |r: Result<Value, (i64, String)>| r.err().unwrap_or((0, String::new()));
    // A model name that would read as a flag to qwen.
    let (c, m) = code(s.request(
        "boo/launchFlow",
        json!({"flow": "code-review", "model": "--approval-mode=yolo", "input": {"question": "q"}}),
    ));
    assert!(
        c == -32602 && m.starts_with("model:") && m.contains("starts with '-'"),
        "{c} {m}"
    );
    // A NUL no agent argv can carry.
    let (c, m) = code(s.request(
        "boo/launchFlow",
        json!({"flow": "code-review", "input": {"question": "a\0b"}}),
    ));
    assert!(c == -32602 && m.contains("NUL"), "{c} {m}");
    let (c, m) = code(s.request(
        "boo/launchFlow",
        json!({"flow": "code-review", "model": "qwen\0", "input": {"question": "q"}}),
    ));
    assert!(c == -32602 && m.contains("control character"), "{c} {m}");
    let runs = s.request("boo/listRuns", json!({})).unwrap();
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn a_missing_or_unsupported_qwen_fails_closed_without_a_run() {
    let t = TempDir::new("noqwen");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let mut s = Server::start(&db, &[("BOO_QWEN", "/nonexistent/qwen".into())]);
    s.initialize(&root);
    let (c, m) = s
        .request(
            "boo/launchFlow",
            json!({"flow": "code-review", "input": {"question": "q"}}),
        )
        .unwrap_err();
    assert_eq!(c, -32003);
    assert!(
        m.contains("/nonexistent/qwen") && m.contains("npm install"),
        "{m}"
    );
    let runs = s.request("boo/listRuns", json!({"root": null})).unwrap();
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        0,
        "no run row is created"
    );
    s.stop();
    let mut s = Server::start(&db, &[("FAKE_QWEN_VERSION", "0.23.1".into())]);
    s.initialize(&root);
    let (c, m) = s
        .request(
            "boo/launchFlow",
            json!({"flow": "code-review", "input": {"question": "q"}}),
        )
        .unwrap_err();
    assert!(c == -32003 && m.contains("too old"), "{c} {m}");
    let not_exec = t.path().join("qwen");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    s.stop();
    let mut s = Server::start(&db, &[("BOO_QWEN", not_exec.display().to_string())]);
    s.initialize(&root);
    let (c, m) = s
        .request(
            "boo/launchFlow",
            json!({"flow": "code-review", "input": {"question": "q"}}),
        )
        .unwrap_err();
    assert!(c == -32003 && m.contains("chmod +x"), "{c} {m}");
}

#[test]
fn cancel_kills_every_agent_process() {
    let t = TempDir::new("cancel");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[("FAKE_QWEN_DIR", rec.display().to_string())],
    );
    s.initialize(&root);
    let run_id = launch(&mut s, "code-review", "hang please [[fake:hang]]");
    assert!(
        wait_until(LONG, || agent_records(&rec).len() >= 2),
        "two agents should start"
    );
    std::thread::sleep(Duration::from_millis(300));
    let records = agent_records(&rec);
    for r in &records {
        assert!(
            alive(r["launcherPid"].as_i64().unwrap())
                || alive(r["workerPid"].as_i64().unwrap_or(0))
        );
    }
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
    let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    for st in got["steps"].as_array().unwrap() {
        assert!(
            ["completed", "cancelled"].contains(&st["status"].as_str().unwrap()),
            "{st}"
        );
    }
    assert!(got["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["stepId"] == "verdict" && s["status"] == "cancelled"));
}

#[test]
fn kill_9_mid_run_then_restart_resumes_without_redoing_finished_steps() {
    let t = TempDir::new("resume");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let dir = ("FAKE_QWEN_DIR", rec.display().to_string());
    let mut s = Server::start(
        &db,
        &[dir.clone(), ("FAKE_QWEN_MODES", "verdict=hang".into())],
    );
    s.initialize(&root);
    let run_id = launch(&mut s, "code-review", "resume me");
    s.wait_for("the verdict step running", LONG, |m, p| {
        m == "boo/stepUpdated" && p["stepId"] == "verdict" && p["status"] == "running"
    });
    assert!(wait_until(LONG, || invocations(&rec).get("verdict") == Some(&1)));
    let hung: Vec<i64> = agent_records(&rec)
        .iter()
        .filter(|r| r["env"]["BOO_STEP_ID"] == "verdict")
        .flat_map(|r| {
            [
                r["launcherPid"].as_i64().unwrap_or(0),
                r["workerPid"].as_i64().unwrap_or(0),
            ]
        })
        .collect();
    s.kill9();
    // The run's snapshot survives the crash.
    let snapshot = t.path().join("data/boo/snapshots").join(&run_id);
    assert!(snapshot.join("manifest.json").is_file());
    // A new server on the same database adopts the run at once (its owner is dead).
    let mut s2 = Server::start(&db, &[dir]);
    s2.initialize(&root);
    let end = s2.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    // Both attempts of the interrupted step read the same snapshot, never the real tree.
    let cwds: Vec<String> = agent_records(&rec)
        .iter()
        .filter(|r| r["env"]["BOO_STEP_ID"] == "verdict")
        .map(|r| r["cwd"].as_str().unwrap_or_default().to_string())
        .collect();
    let tree = snapshot
        .join("tree")
        .canonicalize()
        .unwrap_or(snapshot.join("tree"));
    assert_eq!(cwds.len(), 2, "{cwds:?}");
    for cwd in &cwds {
        assert_eq!(Path::new(cwd), tree, "the resumed run keeps its snapshot");
    }
    let report = end["report"].as_str().unwrap();
    assert!(
        report.contains("## Snapshot") && !report.contains("when the run resumed"),
        "{report}"
    );
    assert!(
        !snapshot.exists(),
        "the snapshot is removed when the run ends"
    );
    let n = invocations(&rec);
    assert_eq!(
        n.get("correctness"),
        Some(&1),
        "finished steps are not dispatched again: {n:?}"
    );
    assert_eq!(n.get("security"), Some(&1), "{n:?}");
    assert_eq!(
        n.get("verdict"),
        Some(&2),
        "the interrupted step starts again fresh: {n:?}"
    );
    // The agent that was running when the server died does not outlive the restart.
    for pid in hung {
        assert!(
            wait_until(Duration::from_secs(5), || !alive(pid)),
            "stale agent {pid} survived"
        );
    }
    let got = s2
        .request("boo/getRun", json!({"runId": run_id, "transcript": true}))
        .unwrap();
    assert_eq!(got["run"]["status"], "completed");
    let verdict = got["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stepId"] == "verdict")
        .unwrap();
    assert_eq!(verdict["attempt"], 2);
    assert!(verdict["lastSeq"].as_u64().unwrap() >= 1);
    assert_eq!(s2.stop(), Some(0));
}

/// A run resumed after a crash whose snapshot is gone (another machine's data folder, a
/// cleaned disk) takes a new one, and its report says the steps may have read two copies.
#[test]
fn a_resumed_run_whose_snapshot_is_gone_takes_a_new_one_and_says_so() {
    let t = TempDir::new("resume-retake");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let mut s = Server::start(&db, &[("FAKE_QWEN_MODES", "verdict=hang".into())]);
    s.initialize(&root);
    let run_id = launch(&mut s, "code-review", "resume me");
    s.wait_for("the verdict step running", LONG, |m, p| {
        m == "boo/stepUpdated" && p["stepId"] == "verdict" && p["status"] == "running"
    });
    s.kill9();
    let snapshot = t.path().join("data/boo/snapshots").join(&run_id);
    std::fs::remove_dir_all(&snapshot).unwrap();
    let mut s2 = Server::start(&db, &[]);
    s2.initialize(&root);
    let end = s2.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let report = end["report"].as_str().unwrap();
    assert!(report.contains("when the run resumed"), "{report}");
    assert!(!snapshot.exists());
    assert_eq!(s2.stop(), Some(0));
}

#[test]
fn two_servers_on_one_database_never_run_a_step_twice() {
    let t = TempDir::new("two");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let env = [
        ("FAKE_QWEN_DIR", rec.display().to_string()),
        ("BOO_HEARTBEAT_MS", "100".to_string()),
        ("BOO_LEASE_TIMEOUT_MS", "1500".to_string()),
        ("FAKE_QWEN_DELAY_MS", "30".to_string()),
    ];
    let mut a = Server::start(&db, &env);
    let mut b = Server::start(&db, &env);
    a.initialize(&root);
    b.initialize(&root);
    let r1 = launch(&mut a, "code-review", "two servers [[fake:slow]]");
    let r2 = launch(&mut b, "code-review", "two servers too [[fake:slow]]");
    assert_eq!(a.wait_run_end(&r1, LONG)["runStatus"], "completed");
    assert_eq!(b.wait_run_end(&r2, LONG)["runStatus"], "completed");
    // Each run's three agent steps ran exactly once in all.
    let mut per_run: HashMap<(String, String), usize> = HashMap::new();
    for r in agent_records(&rec) {
        let k = (
            r["env"]["BOO_RUN_ID"].as_str().unwrap_or("").to_string(),
            r["env"]["BOO_STEP_ID"].as_str().unwrap_or("").to_string(),
        );
        *per_run.entry(k).or_default() += 1;
    }
    assert_eq!(per_run.len(), 6, "{per_run:?}");
    assert!(per_run.values().all(|n| *n == 1), "{per_run:?}");
    // Neither server told its client about the other's run.
    assert!(a.run_notes(&r2).is_empty() && b.run_notes(&r1).is_empty());
    // B sees A's run in the shared history.
    let runs = b.request("boo/listRuns", json!({})).unwrap();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    // When A dies mid-run, B adopts the run and finishes it.
    let r3 = launch(&mut a, "code-review", "adopt me [[fake:verdict=slow]]");
    a.wait_for("a wave-2 step", LONG, |m, p| {
        m == "boo/stepUpdated"
            && p["runId"] == r3.as_str()
            && p["stepId"] == "verdict"
            && p["status"] == "running"
    });
    a.kill9();
    let end = b.wait_run_end(&r3, LONG);
    assert_eq!(end["runStatus"], "completed");
    let verdicts = agent_records(&rec)
        .iter()
        .filter(|r| {
            r["env"]["BOO_RUN_ID"] == r3.as_str() && r["env"]["BOO_STEP_ID"] == "correctness"
        })
        .count();
    assert_eq!(
        verdicts, 1,
        "a finished step of the adopted run is not redone"
    );
    b.stop();
}

#[test]
fn exit_without_shutdown_is_an_error_exit() {
    let t = TempDir::new("exit");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    s.notify("exit", Value::Null);
    assert!(wait_until(Duration::from_secs(10), || matches!(
        s.child.try_wait(),
        Ok(Some(_))
    )));
    assert_eq!(s.child.try_wait().unwrap().unwrap().code(), Some(1));
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn the_sandbox_guard_makes_the_file_system_read_only() {
    let t = TempDir::new("guard");
    let root = project(t.path());
    let scratch = t.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let target = root.join("pwned.txt");
    let script = format!(
        "echo x > '{}' 2>/dev/null; echo $? > '{}/first'; echo ok > '{}/second'",
        target.display(),
        scratch.display(),
        scratch.display()
    );
    let out = std::process::Command::new(boo_bin())
        .args([
            "agent-guard",
            "--parent",
            &std::process::id().to_string(),
            "--writable",
        ])
        .arg(&scratch)
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    let first_line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let guard: Value = serde_json::from_str(&first_line).unwrap();
    assert_eq!(guard["type"], "boo_guard");
    if guard["sandbox"] == "enforced" {
        assert!(
            !target.exists(),
            "the sandbox let an agent write into the project"
        );
        assert_ne!(
            std::fs::read_to_string(scratch.join("first"))
                .unwrap()
                .trim(),
            "0"
        );
        assert_eq!(
            std::fs::read_to_string(scratch.join("second"))
                .unwrap()
                .trim(),
            "ok",
            "scratch stays writable"
        );
    } else {
        // A kernel without Landlock: the guard says so (the report and doctor do too).
        assert_eq!(guard["sandbox"], "unavailable");
        eprintln!("Landlock unavailable on this kernel: the write test was not possible");
    }
}

#[test]
fn the_guard_reports_on_its_own_descriptor_and_leaves_stdout_to_the_agent() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let t = TempDir::new("guardfd");
    let scratch = t.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut fds = [0i32; 2];
    // SAFETY: a plain pipe; both ends are owned right below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let w = write_end.as_raw_fd();
    let mut cmd = std::process::Command::new(boo_bin());
    cmd.args([
        "agent-guard",
        "--parent",
        &std::process::id().to_string(),
        "--report-fd",
        "3",
        "--writable",
    ])
    .arg(&scratch)
    // The agent prints one line, and checks that it did not inherit the report fd.
    .args([
        "--",
        "sh",
        "-c",
        "echo agent-line; [ -e /proc/self/fd/3 ] && echo fd3-leaked; true",
    ]);
    // SAFETY: only dup2 between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(w, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    drop(write_end);
    let mut report = String::new();
    std::fs::File::from(read_end)
        .read_to_string(&mut report)
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "agent-line\n");
    let line: Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(line["type"], "boo_guard");
    assert!(
        line["sandbox"] == "enforced" || line["sandbox"] == "unavailable",
        "{line}"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn the_guard_lets_an_agent_read_only_what_it_is_given() {
    let t = TempDir::new("guard-reads");
    let root = project(t.path());
    let scratch = t.path().join("scratch");
    let home = t.path().join("home/.ssh");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("id_ed25519"), "PRIVATE KEY\n").unwrap();
    let script = format!(
        "cat '{}' > '{s}/project' 2>/dev/null; echo $? >> '{s}/project'; cat '{}' > '{s}/secret' 2>/dev/null; echo $? >> '{s}/secret'",
        root.join("src/lib.rs").display(),
        home.join("id_ed25519").display(),
        s = scratch.display()
    );
    let mut cmd = std::process::Command::new(boo_bin());
    cmd.args(["agent-guard", "--parent", &std::process::id().to_string()])
        .arg("--writable")
        .arg(&scratch)
        .args(["--writable", "/dev/null"])
        .arg("--readable")
        .arg(&root);
    for sys in [
        "/usr",
        "/bin",
        "/lib",
        "/lib64",
        "/etc/ld.so.cache",
        "/proc",
        "/dev",
    ] {
        cmd.arg("--readable").arg(sys);
    }
    let out = cmd.args(["--", "sh", "-c", &script]).output().unwrap();
    let guard: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or(""),
    )
    .unwrap();
    if guard["sandbox"] != "enforced" {
        eprintln!("Landlock unavailable on this kernel: the read test was not possible");
        return;
    }
    let project_read = std::fs::read_to_string(scratch.join("project")).unwrap();
    assert!(
        project_read.ends_with("\n0\n") && project_read.len() > 3,
        "the project stays readable: {project_read:?}"
    );
    let secret_read = std::fs::read_to_string(scratch.join("secret")).unwrap();
    assert!(
        !secret_read.contains("PRIVATE KEY") && !secret_read.ends_with("\n0\n"),
        "a file in the home folder was read: {secret_read:?}"
    );
}

#[test]
fn an_agent_on_either_transport_reads_the_project_but_not_the_home_folder() {
    // A hostile model makes the agent process itself open a private key in the user's
    // home folder (no qwen check in between: the fake opens what FAKE_QWEN_PEEK names).
    // Landlock's read rules must refuse it for a warm pool process exactly as for a
    // one-shot one, while the project (the run's snapshot, the agent's working
    // directory) stays readable — and the user's working tree itself does not.
    let t = TempDir::new("agent-reads");
    let root = project(t.path());
    let key = t.path().join("home/.ssh/id_ed25519");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(&key, "PRIVATE KEY\n").unwrap();
    let own = "src/lib.rs";
    let tree = root.join("src/lib.rs");
    for transport in ["acp", "oneshot"] {
        let mut s = Server::start(
            &t.path().join(format!("boo-{transport}.db")),
            &[
                ("BOO_AGENT_TRANSPORT", transport.to_string()),
                (
                    "FAKE_QWEN_PEEK",
                    format!("{own}:{}:{}", key.display(), tree.display()),
                ),
            ],
        );
        s.initialize(&root);
        let run_id = launch(&mut s, "code-review", "what can you read? [[fake:peek]]");
        let end = s.wait_run_end(&run_id, LONG);
        assert_eq!(end["runStatus"], "completed", "{transport}: {end}");
        let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
        let agents: Vec<&Value> = got["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|st| st["kind"] == "agent" && st["status"] == "completed")
            .collect();
        assert!(!agents.is_empty(), "{transport}: {got}");
        for st in agents {
            assert_eq!(st["meta"]["transport"], transport, "{st}");
            if st["meta"]["sandbox"] != "enforced" {
                eprintln!("Landlock not enforced on this kernel: the read test was not possible");
                return;
            }
            let out = st["output"].as_str().unwrap();
            assert!(
                out.contains(&format!("peek {own}: read ")),
                "{transport}: the project stays readable: {out}"
            );
            assert!(
                out.contains(&format!("peek {}: refused (EACCES)", tree.display())),
                "{transport}: the working tree was read, not the snapshot: {out}"
            );
            assert!(
                out.contains(&format!("peek {}: refused (EACCES)", key.display())),
                "{transport}: a file in the home folder was read: {out}"
            );
        }
    }
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(marker))
        .collect()
}

#[test]
fn an_agent_child_that_calls_setsid_does_not_outlive_the_guard() {
    let t = TempDir::new("setsid");
    let scratch = t.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let guard = |script: &str| {
        let mut cmd = std::process::Command::new(boo_bin());
        cmd.args([
            "agent-guard",
            "--parent",
            &std::process::id().to_string(),
            "--writable",
        ])
        .arg(&scratch)
        .args(["--", "sh", "-c", script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        cmd
    };
    // 1. The agent exits normally, leaving an escapee in its own session.
    let marker = format!("86{}.25", std::process::id());
    let status = guard(&format!("setsid sleep {marker} & sleep 0.3; exit 0"))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        wait_until(Duration::from_secs(10), || processes_with(&marker)
            .is_empty()),
        "left behind: {:?}",
        processes_with(&marker)
    );
    // 2. boo stops the agent (SIGTERM to the guard's group) while the escapee runs.
    let marker = format!("87{}.25", std::process::id());
    use std::os::unix::process::CommandExt;
    let mut child = guard(&format!("setsid sleep {marker} & sleep 60"))
        .process_group(0)
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !processes_with(
        &marker
    )
    .is_empty()));
    // SAFETY: signals the guard's own process group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
    let _ = child.wait();
    assert!(
        wait_until(Duration::from_secs(10), || processes_with(&marker)
            .is_empty()),
        "left behind: {:?}",
        processes_with(&marker)
    );
    // 3. The same, with an agent that ignores SIGTERM: when the guard's grace period
    // ends, the escapee is still the agent's child; it must die with the rest (the
    // guard once SIGKILLed its own group here, itself included, and orphaned it).
    let marker = format!("88{}.25", std::process::id());
    let mut child = guard(&format!(
        "trap '' TERM; setsid sleep {marker} & while :; do sleep 0.1; done"
    ))
    .process_group(0)
    .spawn()
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !processes_with(
        &marker
    )
    .is_empty()));
    // SAFETY: signals the guard's own process group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
    let _ = child.wait();
    assert!(
        wait_until(Duration::from_secs(10), || processes_with(&marker)
            .is_empty()),
        "left behind: {:?}",
        processes_with(&marker)
    );
}

#[test]
fn a_step_that_modifies_the_project_fails_the_run_loudly() {
    let t = TempDir::new("modified");
    let root = project(t.path());
    // A "qwen" that escapes every other layer (the project is made writable for it,
    // as if the sandbox had a hole) and writes into the project.
    let evil = t.path().join("evil-qwen");
    write_script(
        &evil,
        &format!(
            "for a in \"$@\"; do [ \"$a\" = --version ] && exec '{fake}' --version; done\necho pwned > pwned.txt\nexec '{fake}' \"$@\"\n",
            fake = fake_qwen().display()
        ),
    );
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[
            ("BOO_QWEN", evil.display().to_string()),
            // The agent works in the run's snapshot: that is where the hole is.
            (
                "BOO_AGENT_WRITABLE",
                t.path().join("data/boo/snapshots").display().to_string(),
            ),
            (
                "BOO_AGENT_READABLE",
                fake_qwen().parent().unwrap().display().to_string(),
            ),
        ],
    );
    s.initialize(&root);
    let run_id = launch(&mut s, "code-review", "is it safe?");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "failed", "{end}");
    assert!(
        end["runError"].as_str().unwrap().contains("modified"),
        "{end}"
    );
    let report = end["report"].as_str().unwrap();
    let warning = report.find("**Warning:**").expect("a warning at the top");
    assert!(warning < report.find("## Answer").unwrap());
    assert!(report.contains("pwned.txt (created)"), "{report}");
    assert!(
        !root.join("pwned.txt").exists(),
        "the real tree was never the agent's"
    );
    // Every step ended: the ones that never ran are cancelled, none stays pending.
    let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    for st in got["steps"].as_array().unwrap() {
        assert!(
            !["pending", "running"].contains(&st["status"].as_str().unwrap()),
            "{st}"
        );
    }
}

/// The user keeps working while a run runs: the agents read the snapshot taken at
/// launch, the run completes, its citations are checked against that snapshot, and the
/// report names what changed in the real tree meanwhile.
#[test]
fn editing_the_project_mid_run_neither_fails_nor_reaches_the_run() {
    let t = TempDir::new("mid-run-edit");
    let root = project(t.path());
    // A "qwen" that waits until the test has edited the project, then answers.
    let gate = t.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let go = gate.join("go");
    let waiting = gate.join("waiting-qwen");
    write_script(
        &waiting,
        &format!(
            "for a in \"$@\"; do [ \"$a\" = --version ] && exec '{fake}' --version; done\nwhile [ ! -e '{go}' ]; do sleep 0.05; done\nexec '{fake}' \"$@\"\n",
            fake = fake_qwen().display(),
            go = go.display()
        ),
    );
    let readable = std::env::join_paths([fake_qwen().parent().unwrap(), gate.as_path()]).unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[
            ("BOO_QWEN", waiting.display().to_string()),
            ("BOO_AGENT_READABLE", readable.to_string_lossy().to_string()),
        ],
    );
    s.initialize(&root);
    let run_id = launch(&mut s, "code-review", "what changed?");
    s.wait_for("an agent step running", LONG, |m, p| {
        m == "boo/stepUpdated" && p["status"] == "running" && p["kind"] == "agent"
    });
    // Save in place, add a file, delete the file the agents will cite.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(root.join("src/lib.rs"))
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(b"pub fn add(a: u32, b: u32) -> u32 { a - b }\n")
        })
        .unwrap();
    std::fs::write(root.join("NEW.md"), "new\n").unwrap();
    std::fs::remove_file(root.join("README.md")).unwrap();
    std::fs::write(&go, "").unwrap();
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let report = end["report"].as_str().unwrap();
    assert!(!report.contains("was modified"), "{report}");
    // The agents cited README.md line 1 in the snapshot; the real one is gone.
    let verified = report
        .split("## Verified findings")
        .nth(1)
        .unwrap_or_default();
    let verified = verified.split("\n## ").next().unwrap_or_default();
    assert!(verified.contains("`README.md:1`"), "{report}");
    let note = report
        .split("## Snapshot")
        .nth(1)
        .expect("a snapshot section");
    assert!(note.contains("- modified (1): `src/lib.rs`"), "{note}");
    assert!(note.contains("- added (1): `NEW.md`"), "{note}");
    assert!(note.contains("- removed (1): `README.md`"), "{note}");
    let snapshots = t.path().join("data/boo/snapshots").join(&run_id);
    assert!(
        !snapshots.exists(),
        "the snapshot is removed when the run ends"
    );
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn diagnostics_are_replaced_by_a_newer_run_and_can_be_switched_off() {
    let t = TempDir::new("diags");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let r1 = launch(&mut s, "code-review", "first");
    s.wait_run_end(&r1, LONG);
    let uri = format!("file://{}", root.join("README.md").display());
    let u = uri.clone();
    let first = s.wait_for("diagnostics on README.md", LONG, move |m, p| {
        m == "textDocument/publishDiagnostics"
            && p["uri"] == u.as_str()
            && p["diagnostics"].as_array().is_some_and(|d| !d.is_empty())
    });
    let d = &first["diagnostics"][0];
    assert_eq!(d["source"], "boo");
    assert_eq!(d["range"]["start"]["line"], 0);
    assert!(
        d["message"].as_str().unwrap().starts_with("[code-review/"),
        "{d}"
    );
    assert_eq!(d["data"]["runId"], r1.as_str());
    s.notes.clear();
    // A newer run of the same flow with no findings clears them.
    let r2 = launch(&mut s, "code-review", "second [[fake:text]]");
    s.wait_run_end(&r2, LONG);
    let u = uri.clone();
    s.wait_for("cleared diagnostics", LONG, move |m, p| {
        m == "textDocument/publishDiagnostics"
            && p["uri"] == u.as_str()
            && p["diagnostics"].as_array().is_some_and(|d| d.is_empty())
    });
    s.stop();
    // initializationOptions.diagnostics = false: nothing is published.
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    let uri = format!("file://{}", root.display());
    s.request(
        "initialize",
        json!({"processId": null, "rootUri": uri, "capabilities": {}, "initializationOptions": {"diagnostics": false}}),
    )
    .unwrap();
    s.notify("initialized", json!({}));
    let r3 = launch(&mut s, "code-review", "third");
    s.wait_run_end(&r3, LONG);
    s.drain(Duration::from_millis(300));
    assert!(!s
        .notes
        .iter()
        .any(|(m, _)| m == "textDocument/publishDiagnostics"));
    // Without the workDoneProgress capability no progress is sent either.
    assert!(!s.notes.iter().any(|(m, _)| m == "$/progress"));
}

#[test]
fn every_way_an_agent_can_end_becomes_a_clear_step_result() {
    let t = TempDir::new("endings");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[
            ("FAKE_QWEN_DIR", rec.display().to_string()),
            ("BOO_MAX_PARALLEL", "3".into()),
        ],
    );
    s.initialize(&root);
    let cases = [
        ("crash", "exited with code 1 without a result"),
        ("segv", "signal 11"),
        ("turns", "turn limit"),
        // One-shot: qwen's exit 55; ACP: the prompt's error. Both name the flag.
        ("walltime", "--max-wall-time"),
        ("fail", "401"),
        ("garbage", ""),
        ("write", ""),
    ];
    for (mode, expect) in cases {
        let run_id = launch(
            &mut s,
            "code-review",
            &format!("ending {mode} [[fake:correctness={mode}]]"),
        );
        s.wait_run_end(&run_id, LONG);
        let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
        let step = got["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stepId"] == "correctness")
            .unwrap()
            .clone();
        if expect.is_empty() {
            assert_eq!(step["status"], "completed", "{mode}: {step}");
        } else {
            assert_eq!(step["status"], "failed", "{mode}: {step}");
            let err = step["error"].as_str().unwrap();
            assert!(err.contains(expect), "{mode}: {err}");
        }
        if mode == "write" {
            let tr = s
                .request(
                    "boo/getTraces",
                    json!({"runId": run_id, "stepId": "correctness"}),
                )
                .unwrap();
            assert_eq!(tr["traces"][0]["tool"], "write_file");
            assert_eq!(tr["traces"][0]["outcome"], "denied");
        }
        // The other agents of the run were not thrown away.
        assert!(got["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stepId"] == "security" && s["status"] == "completed"));
    }
    // One-shot agents end with their step; the warm ACP processes with the server.
    let stopped = pooled().then(|| s.stop());
    for r in agent_records(&rec) {
        for key in ["launcherPid", "workerPid"] {
            let pid = r[key].as_i64().unwrap_or(0);
            assert!(
                wait_until(Duration::from_secs(5), || !alive(pid)),
                "{key} {pid} of mode {} survived",
                r["mode"]
            );
        }
    }
    assert_eq!(stopped.unwrap_or_else(|| s.stop()), Some(0));
}

#[test]
fn a_large_diff_is_reviewed_part_by_part() {
    let t = TempDir::new("bigdiff");
    let root = project(t.path());
    // About 400 KiB of changes in three files: more than one part per reviewer.
    for f in ["a.txt", "b.txt", "c.txt"] {
        let body: String = (0..4000)
            .map(|i| format!("{f} changed line {i} with some words\n"))
            .collect();
        std::fs::write(root.join(f), body).unwrap();
    }
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[
            ("FAKE_QWEN_DIR", rec.display().to_string()),
            ("BOO_VISION_MODEL", "1".to_string()),
        ],
    );
    s.initialize(&root);
    // With an image: every pass gets it, not only the first.
    let png = include_bytes!("fixtures/images/red-3x2.png");
    let r = s
        .request(
            "boo/launchFlow",
            json!({"flow": "code-review", "input": {"question": "big diff"},
                   "attachments": [{"path": t.path().join("shot.png")}]}),
        )
        .err();
    assert!(
        r.is_some_and(|(c, _)| c == -32602),
        "a missing file is refused"
    );
    std::fs::write(t.path().join("shot.png"), png).unwrap();
    let run_id = s
        .request(
            "boo/launchFlow",
            json!({"flow": "code-review", "input": {"question": "big diff"},
                   "attachments": [{"path": t.path().join("shot.png")}]}),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let records = agent_records(&rec);
    let correctness: Vec<&Value> = records
        .iter()
        .filter(|r| r["env"]["BOO_STEP_ID"] == "correctness")
        .collect();
    assert!(
        correctness.len() >= 3,
        "one pass per diff part: {}",
        correctness.len()
    );
    let mut seen_parts = 0;
    for r in &correctness {
        let p = r["prompt"].as_str().unwrap_or("");
        assert!(p.len() < 400 * 1024, "no pass gets the whole diff");
        if p.contains("This pass covers part") {
            seen_parts += 1;
        }
        if r["transport"] == "acp" {
            assert_eq!(
                r["images"].as_array().map(Vec::len),
                Some(1),
                "{}",
                r["images"]
            );
            assert_eq!(r["images"][0]["bytes"], png.len(), "{}", r["images"]);
        } else {
            // One-shot: the image is a file of the agent's scratch space, named in the prompt.
            assert!(
                p.contains("shot.png: @"),
                "every pass names the image: {p:.300}"
            );
        }
    }
    assert_eq!(seen_parts, correctness.len());
    let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    let step = got["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stepId"] == "correctness")
        .unwrap()
        .clone();
    let out = step["output"].as_str().unwrap();
    assert!(
        out.contains("### Diff part 1 of") && out.contains("```findings"),
        "{out}"
    );
}

#[test]
fn fast_mode_leaves_out_signal_gated_specialists() {
    let t = TempDir::new("fast");
    let root = project(t.path());
    // Signals that would bring specialists in at band large.
    std::fs::write(
        root.join("worker.rs"),
        "use std::sync::Mutex;\nfn login(password: &str) {}\n",
    )
    .unwrap();
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let mut skipped = Vec::new();
    for fast in [false, true] {
        let r = s
            .request("boo/launchFlow", json!({"flow": "code-review", "band": "large", "fast": fast, "input": {"question": "fast?"}}))
            .unwrap();
        let id = r["runId"].as_str().unwrap().to_string();
        assert_eq!(s.wait_run_end(&id, LONG)["runStatus"], "completed");
        let got = s.request("boo/getRun", json!({"runId": id})).unwrap();
        assert_eq!(got["run"]["fast"], fast);
        let n = got["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "skipped")
            .count();
        skipped.push(n);
        if fast {
            assert!(got["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["error"].as_str().is_some_and(|e| e.contains("fast mode"))));
        }
    }
    assert!(skipped[1] > skipped[0], "fast mode skips more: {skipped:?}");
}

#[test]
fn without_a_configured_endpoint_agents_fail_closed_at_launch() {
    let t = TempDir::new("noendpoint");
    let root = project(t.path());
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[("OPENAI_BASE_URL", String::new())],
    );
    s.initialize(&root);
    let (c, m) = s
        .request(
            "boo/launchFlow",
            json!({"flow": "code-review", "input": {"question": "q"}}),
        )
        .unwrap_err();
    assert_eq!(c, -32003);
    assert!(m.contains("OPENAI_BASE_URL"), "{m}");
}

#[test]
fn a_new_server_publishes_the_latest_findings_again() {
    let t = TempDir::new("republish");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let mut s = Server::start(&db, &[]);
    s.initialize(&root);
    let r1 = launch(&mut s, "code-review", "findings");
    s.wait_run_end(&r1, LONG);
    assert_eq!(s.stop(), Some(0));
    // The editor restarts: its Problems panel is empty until the server republishes.
    let mut s = Server::start(&db, &[]);
    s.initialize(&root);
    let uri = format!("file://{}", root.join("README.md").display());
    let got = s.wait_for("republished diagnostics", LONG, move |m, p| {
        m == "textDocument/publishDiagnostics"
            && p["uri"] == uri.as_str()
            && p["diagnostics"].as_array().is_some_and(|d| !d.is_empty())
    });
    assert_eq!(got["diagnostics"][0]["data"]["runId"], r1.as_str());
    assert_eq!(
        got["diagnostics"][0]["severity"], 3,
        "info findings are Information, not hidden hints"
    );
}

/// Every file under `dir` (recursively) that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            hits.extend(files_holding(&p, needle));
        } else if ft.is_file() {
            if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

#[test]
fn the_api_key_never_reaches_an_agent_or_the_disk() {
    for transport in ["acp", "oneshot"] {
        let t = TempDir::new("apikey");
        let root = project(t.path());
        let rec = t.path().join("agents");
        std::fs::create_dir_all(&rec).unwrap();
        let key = "sk-boo-never-leak-7f3a9e51";
        let mut s = Server::start(
            &t.path().join("boo.db"),
            &[
                ("FAKE_QWEN_DIR", rec.display().to_string()),
                ("OPENAI_API_KEY", key.to_string()),
                ("BOO_AGENT_TRANSPORT", transport.to_string()),
            ],
        );
        s.initialize(&root);
        let run_id = launch(&mut s, "code-review", "apikey");
        assert_eq!(s.wait_run_end(&run_id, LONG)["runStatus"], "completed");
        let records = agent_records(&rec);
        assert!(!records.is_empty(), "{transport}: no agent records");
        for r in &records {
            let k = r["env"]["OPENAI_API_KEY"].as_str().unwrap_or("");
            assert!(!k.is_empty() && k != key, "{transport}: {r}");
        }
        s.stop();
        // Agent environments and argv (the records), settings files, transcripts,
        // traces, the log and the database: none holds the key.
        let hits = files_holding(t.path(), key.as_bytes());
        assert!(hits.is_empty(), "{transport}: the API key is in {hits:?}");
    }
}

#[test]
fn every_agent_starts_with_each_read_only_layer() {
    let t = TempDir::new("layers");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    // A repository .env that would pick another endpoint if qwen were allowed to read it.
    std::fs::write(
        root.join(".env"),
        "OPENAI_BASE_URL=http://127.0.0.1:1/evil\n",
    )
    .unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[("FAKE_QWEN_DIR", rec.display().to_string())],
    );
    s.initialize(&root);
    let run_id = launch(&mut s, "code-review", "layers");
    assert_eq!(s.wait_run_end(&run_id, LONG)["runStatus"], "completed");
    let records = agent_records(&rec);
    assert_eq!(records.len(), 3);
    for r in &records {
        let argv: Vec<&str> = r["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let joined = argv.join(" ");
        // Layer 1: plan mode, hard-coded.
        assert!(joined.contains("--approval-mode plan"), "{joined}");
        // Layer 2b: the denied tools are excluded on the command line too.
        let i = argv
            .iter()
            .position(|a| *a == "--exclude-tools")
            .expect("--exclude-tools");
        let excluded: Vec<&str> = argv[i + 1].split(',').collect();
        for tool in [
            "write_file",
            "edit",
            "run_shell_command",
            "enter_worktree",
            "web_fetch",
            "save_memory",
            "agent",
        ] {
            assert!(excluded.contains(&tool), "{tool} not excluded: {joined}");
        }
        // Layer 2a: a private QWEN_HOME and a system settings file boo wrote. The home
        // is named by the same path in every agent (so qwen's system prompt is too) and
        // resolves to a directory of the agent's own scratch space.
        let home = r["env"]["QWEN_HOME"].as_str().unwrap();
        assert_eq!(home, "/proc/self/fd/100", "{r}");
        let real = r["qwenHomeDir"].as_str().unwrap_or("");
        assert!(
            real.contains("/agents/") && !real.contains(root.to_str().unwrap()),
            "{r}"
        );
        let settings = r["env"]["QWEN_CODE_SYSTEM_SETTINGS_PATH"].as_str().unwrap();
        assert!(
            settings.starts_with('/') && settings.ends_with("system-settings.json"),
            "{settings}"
        );
        // The endpoint is boo's model proxy (in front of boo's own configuration),
        // with a per-process token instead of the user's key.
        let base = r["env"]["OPENAI_BASE_URL"].as_str().unwrap_or("");
        assert!(
            base.starts_with("http://127.0.0.1:") && base.contains("/a/"),
            "{r}"
        );
        assert!(!base.contains(":9/"), "{r}");
        let key = r["env"]["OPENAI_API_KEY"].as_str().unwrap_or("");
        assert!(key.len() == 64 && key != "test-key", "{r}");
    }
    // The fake honours both tool layers like the real CLI: only read tools were offered.
    let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    for st in got["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "agent")
    {
        let tools: Vec<&str> = st["meta"]["offeredTools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(tools, vec!["read_file", "grep_search", "glob"], "{st}");
        assert_eq!(st["meta"]["sandbox"], "enforced");
        // Layer 4: TCP connections only to boo's model proxy (Landlock ABI 4+).
        let network = st["meta"]["network"].as_str().unwrap_or("");
        assert!(
            network.starts_with("tcp-connect only to 127.0.0.1:")
                || network == "off (needs Landlock ABI 4)",
            "{st}"
        );
    }
}

#[test]
fn an_agent_offered_write_tools_is_stopped_before_it_acts() {
    let t = TempDir::new("unsafe");
    let root = project(t.path());
    // A "qwen" that ignores boo's settings file and tool exclusions (as an unsupported
    // version might): it offers every tool.
    let loose = t.path().join("loose-qwen");
    write_script(
        &loose,
        &format!(
            "unset QWEN_CODE_SYSTEM_SETTINGS_PATH\nfor a in \"$@\"; do shift; case \"$a\" in --exclude-tools) skip=1 ;; *) if [ -n \"$skip\" ]; then skip=; else set -- \"$@\" \"$a\"; fi ;; esac; done\nexec '{}' \"$@\"\n",
            fake_qwen().display()
        ),
    );
    // The wrapper execs a program outside its own folder: agents may read only what
    // they are given, so the fake's folder is named as readable.
    let fixtures = fake_qwen().parent().unwrap().display().to_string();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[
            ("BOO_QWEN", loose.display().to_string()),
            ("BOO_AGENT_READABLE", fixtures),
        ],
    );
    s.initialize(&root);
    let run_id = launch(&mut s, "code-review", "unsafe [[fake:write]]");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "failed", "{end}");
    let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    let agents: Vec<&Value> = got["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "agent")
        .collect();
    for st in &agents {
        if st["status"] == "failed" {
            let e = st["error"].as_str().unwrap();
            assert!(
                e.contains("does not allow") && e.contains("enter_worktree"),
                "{e}"
            );
        }
    }
    // No write was even attempted: the agents were stopped at their init line.
    let tr = s
        .request("boo/getTraces", json!({"runId": run_id}))
        .unwrap();
    assert!(tr["traces"].as_array().unwrap().is_empty(), "{tr}");
}

/// A repository's own `.boo/flows/code-review.toml` is listed beside the built-in one
/// as `project:code-review`; it is refused with -32005 (no run row) until the root is
/// trusted through `boo/trustRoot`, runs once trusted, and is refused again once the
/// trust is revoked.
#[test]
fn a_project_flow_runs_only_in_a_trusted_root() {
    let t = TempDir::new("trust");
    let root = project(t.path());
    let canonical = root.canonicalize().unwrap().display().to_string();
    let builtin = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/flows/code-review.toml"
    ))
    .unwrap();
    let title = builtin
        .lines()
        .find(|l| l.starts_with("title"))
        .unwrap()
        .to_string();
    std::fs::create_dir_all(root.join(".boo/flows")).unwrap();
    std::fs::write(
        root.join(".boo/flows/code-review.toml"),
        builtin.replacen(&title, "title = \"Hostile review\"", 1),
    )
    .unwrap();
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let code = |r: Result<Value, (i64, String)>| r.err().unwrap_or((0, String::new()));
    let listed = s.request("boo/listFlows", json!({})).unwrap();
    assert_eq!(listed["trusted"], false, "{listed}");
    let flow = |l: &Value, name: &str| -> Value {
        l["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let ours = flow(&listed, "code-review");
    assert_eq!(ours["source"], "builtin");
    assert_ne!(ours["title"], "Hostile review");
    let theirs = flow(&listed, "project:code-review");
    assert_eq!(theirs["source"], "project");
    assert_eq!(theirs["title"], "Hostile review");
    // Untrusted: refused, naming the command that trusts the root, and no run row.
    let (c, m) = code(s.request(
        "boo/launchFlow",
        json!({"flow": "project:code-review", "input": {"question": "q"}}),
    ));
    assert_eq!(c, -32005, "{m}");
    assert!(m.contains(&format!("boo trust {canonical}")), "{m}");
    let runs = s.request("boo/listRuns", json!({})).unwrap();
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");
    // Bad trust requests name the field.
    let (c, m) = code(s.request("boo/trustRoot", json!({"root": canonical})));
    assert!(c == -32602 && m.starts_with("trusted"), "{c} {m}");
    let (c, m) = code(s.request(
        "boo/trustRoot",
        json!({"root": t.path().join("nowhere"), "trusted": true}),
    ));
    assert!(c == -32602 && m.starts_with("root"), "{c} {m}");
    // Trusted (through a path that is not canonical): it runs.
    let r = s
        .request(
            "boo/trustRoot",
            json!({"root": format!("{}/./", root.display()), "trusted": true}),
        )
        .unwrap();
    assert_eq!(r, json!({"root": canonical, "trusted": true}));
    assert_eq!(
        s.request("boo/listFlows", json!({})).unwrap()["trusted"],
        true
    );
    let run_id = launch(&mut s, "project:code-review", "trusted now");
    assert_eq!(s.wait_run_end(&run_id, LONG)["runStatus"], "completed");
    // Revoked: refused again; the built-in flow always runs.
    let r = s
        .request(
            "boo/trustRoot",
            json!({"root": canonical, "trusted": false}),
        )
        .unwrap();
    assert_eq!(r["trusted"], false);
    let (c, _) = code(s.request(
        "boo/launchFlow",
        json!({"flow": "project:code-review", "input": {"question": "q"}}),
    ));
    assert_eq!(c, -32005);
    let runs = s.request("boo/listRuns", json!({})).unwrap();
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");
    let builtin_run = launch(&mut s, "code-review", "built-in");
    assert_eq!(s.wait_run_end(&builtin_run, LONG)["runStatus"], "completed");
    assert_eq!(s.stop(), Some(0));
}
