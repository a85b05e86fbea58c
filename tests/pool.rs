//! The warm ACP pool with the scripted fake agent (`tests/fixtures/fake-qwen --acp`):
//! how many processes a run gets, idle retirement, a crashed process, and the requests
//! qwen makes of boo. These servers always use `BOO_AGENT_TRANSPORT=acp`, whatever the
//! test run's transport.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn start(dir: &Path, rec: &Path, extra: &[(&str, String)]) -> Server {
    let mut env = vec![
        ("BOO_AGENT_TRANSPORT", "acp".to_string()),
        ("FAKE_QWEN_DIR", rec.display().to_string()),
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
        .unwrap();
    r["runId"].as_str().unwrap().to_string()
}

/// The prompt records of one run, in the order the prompts started.
fn prompts_of(rec: &Path, run_id: &str) -> Vec<Value> {
    let mut records: Vec<Value> = agent_records(rec)
        .into_iter()
        .filter(|r| r["env"]["BOO_RUN_ID"] == run_id)
        .collect();
    records.sort_by_key(|r| r["startedAt"].as_str().unwrap_or("").to_string());
    records
}

/// The worker pids (one per fake process) that served `records`.
fn workers(records: &[Value]) -> BTreeSet<i64> {
    records
        .iter()
        .map(|r| r["workerPid"].as_i64().unwrap())
        .collect()
}

fn steps(s: &mut Server, run_id: &str) -> BTreeMap<String, Value> {
    let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    got["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["kind"] == "agent")
        .map(|st| (st["stepId"].as_str().unwrap().to_string(), st.clone()))
        .collect()
}

fn gone(records: &[Value]) -> bool {
    records.iter().all(|r| {
        !alive(r["launcherPid"].as_i64().unwrap_or(0))
            && !alive(r["workerPid"].as_i64().unwrap_or(0))
    })
}

#[test]
fn a_process_serves_sessions_up_to_its_limit_and_then_another_starts() {
    for (limit, expect) in [(None, 1), (Some(1), 2)] {
        let t = TempDir::new("pool-size");
        let root = project(t.path());
        let rec = t.path().join("agents");
        std::fs::create_dir_all(&rec).unwrap();
        let mut extra = vec![("FAKE_QWEN_DELAY_MS", "40".to_string())];
        if let Some(n) = limit {
            extra.push(("BOO_POOL_SESSIONS", n.to_string()));
        }
        let mut s = start(t.path(), &rec, &extra);
        s.initialize(&root);
        let run_id = launch(&mut s, "sizing [[fake:slow]]");
        assert_eq!(s.wait_run_end(&run_id, LONG)["runStatus"], "completed");
        let records = prompts_of(&rec, &run_id);
        assert_eq!(records.len(), 3, "one prompt per agent step");
        // The two first-wave agents ran at the same time (BOO_MAX_PARALLEL=2).
        let wave1: Vec<&Value> = records
            .iter()
            .filter(|r| r["env"]["BOO_STEP_ID"] != "verdict")
            .collect();
        assert_eq!(
            workers(&wave1.into_iter().cloned().collect::<Vec<_>>()).len(),
            expect,
            "limit {limit:?}: {records:?}"
        );
        // Agents running at once have sessions of their own; the verdict, which runs
        // after them, gets one of theirs back cleared (`/clear`), never with a
        // conversation in it.
        let session = |id: &str| {
            records
                .iter()
                .find(|r| r["env"]["BOO_STEP_ID"] == id)
                .map(|r| {
                    (
                        r["sessionId"].as_str().unwrap(),
                        r["clearedBefore"].as_i64(),
                    )
                })
                .unwrap()
        };
        let (a, b, v) = (
            session("correctness"),
            session("security"),
            session("verdict"),
        );
        assert_ne!(a.0, b.0, "{records:?}");
        assert!(
            v.0 == a.0 || v.0 == b.0,
            "a cleared session is reused: {records:?}"
        );
        assert_eq!(v.1, Some(1), "cleared once before the verdict: {records:?}");
        let sessions: BTreeSet<&str> = records
            .iter()
            .map(|r| r["sessionId"].as_str().unwrap())
            .collect();
        assert_eq!(sessions.len(), 2);
        for r in &records {
            assert_eq!(r["sessionMode"], "plan", "set_mode plan before the prompt");
            // The run's snapshot of the project, never the working tree.
            assert_eq!(r["cwd"], records[0]["cwd"]);
            assert!(r["cwd"].as_str().unwrap().contains("/snapshots/"), "{r}");
            assert_ne!(r["cwd"], root.display().to_string());
        }
        // The verdict reused a warm process: no more processes than the first wave had.
        assert_eq!(workers(&records).len(), expect, "{records:?}");
        assert_eq!(s.stop(), Some(0));
        assert!(wait_until(Duration::from_secs(5), || gone(&records)));
    }
}

#[test]
fn a_run_has_processes_of_its_own_that_stop_with_it_and_idle_ones_retire() {
    let t = TempDir::new("pool-idle");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    // The default idle time (minutes). Agents read the run's snapshot, so the process
    // that served run 1 can serve no other run: it stops when run 1 ends and its
    // snapshot is removed, long before it would retire as idle.
    let mut s = start(t.path(), &rec, &[]);
    s.initialize(&root);
    let r1 = launch(&mut s, "first");
    assert_eq!(s.wait_run_end(&r1, LONG)["runStatus"], "completed");
    let first = prompts_of(&rec, &r1);
    assert!(
        wait_until(Duration::from_secs(10), || gone(&first)),
        "a finished run's process is still running: {first:?}"
    );
    // Within the run, the verdict found a session ready (opened ahead, or cleared).
    let st = steps(&mut s, &r1);
    assert_eq!(
        st["verdict"]["meta"]["spareSession"], true,
        "{}",
        st["verdict"]
    );
    let r2 = launch(&mut s, "second");
    assert_eq!(s.wait_run_end(&r2, LONG)["runStatus"], "completed");
    let second = prompts_of(&rec, &r2);
    assert!(
        workers(&first).is_disjoint(&workers(&second)),
        "each run has its own process"
    );
    assert_eq!(s.stop(), Some(0));
    assert!(wait_until(Duration::from_secs(5), || gone(&second)));

    // A short idle time: once the run is over, its process goes while the server runs.
    let rec2 = t.path().join("agents2");
    std::fs::create_dir_all(&rec2).unwrap();
    let mut s = start(
        t.path(),
        &rec2,
        &[
            ("BOO_POOL_IDLE_MS", "300".into()),
            ("FAKE_QWEN_DELAY_MS", "60".into()),
        ],
    );
    s.initialize(&root);
    // Sessions longer than the idle time are not cut short.
    let r4 = launch(&mut s, "fourth [[fake:slow]]");
    assert_eq!(s.wait_run_end(&r4, LONG)["runStatus"], "completed");
    let slow = prompts_of(&rec2, &r4);
    assert!(
        wait_until(Duration::from_secs(10), || gone(&slow)),
        "an idle process outlived BOO_POOL_IDLE_MS: {slow:?}"
    );
    // The next run starts a fresh one.
    let r5 = launch(&mut s, "fifth");
    assert_eq!(s.wait_run_end(&r5, LONG)["runStatus"], "completed");
    assert!(workers(&prompts_of(&rec2, &r5)).is_disjoint(&workers(&slow)));
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn a_crashed_process_fails_only_its_sessions_which_are_retried_and_it_is_replaced() {
    let t = TempDir::new("pool-crash");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = start(t.path(), &rec, &[("FAKE_QWEN_DELAY_MS", "100".into())]);
    s.initialize(&root);
    // Security streams slowly on the shared process; correctness crashes it once.
    let run_id = launch(
        &mut s,
        "crash [[fake:correctness=crashonce]] [[fake:security=slow]]",
    );
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let records = prompts_of(&rec, &run_id);
    let of = |step: &str| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| r["env"]["BOO_STEP_ID"] == step)
            .collect()
    };
    let (correctness, security, verdict) = (of("correctness"), of("security"), of("verdict"));
    assert_eq!(correctness.len(), 2, "retried once: {records:?}");
    assert_eq!(security.len(), 2, "the neighbour in flight is retried too");
    assert_eq!(verdict.len(), 1, "a step that was not in flight runs once");
    let crashed = correctness[0]["workerPid"].as_i64().unwrap();
    assert_eq!(security[0]["workerPid"].as_i64().unwrap(), crashed);
    assert!(!alive(crashed));
    // The retries ran each in a process of its own; the verdict got a replacement.
    let retry_pids: BTreeSet<i64> = [correctness[1], security[1]]
        .iter()
        .map(|r| r["workerPid"].as_i64().unwrap())
        .collect();
    assert_eq!(retry_pids.len(), 2);
    assert!(!retry_pids.contains(&crashed));
    let v = verdict[0]["workerPid"].as_i64().unwrap();
    assert!(v != crashed && !retry_pids.contains(&v));
    let st = steps(&mut s, &run_id);
    for id in ["correctness", "security"] {
        assert_eq!(st[id]["status"], "completed", "{}", st[id]);
        let why = st[id]["meta"]["retriedAfter"].as_str().unwrap_or("");
        assert!(why.contains("exited with code 1"), "{id}: {why}");
    }
    assert!(st["verdict"]["meta"]["retriedAfter"].is_null());
    assert_eq!(s.stop(), Some(0));
    assert!(wait_until(Duration::from_secs(5), || gone(&records)));
}

#[test]
fn permission_requests_are_refused_and_qwen_s_own_requests_get_method_not_found() {
    let t = TempDir::new("pool-requests");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = start(t.path(), &rec, &[]);
    s.initialize(&root);
    let run_id = launch(&mut s, "ask [[fake:correctness=perm]]");
    s.wait_run_end(&run_id, LONG);
    let st = steps(&mut s, &run_id);
    let correctness = &st["correctness"];
    assert_eq!(correctness["status"], "failed", "{correctness}");
    let error = correctness["error"].as_str().unwrap();
    assert!(
        error.contains("read_file") && error.contains("refused"),
        "the step error names the tool: {error}"
    );
    assert_eq!(st["security"]["status"], "completed");
    let records = prompts_of(&rec, &run_id);
    let perm = records
        .iter()
        .find(|r| r["mode"] == "perm")
        .expect("the perm prompt");
    assert_eq!(perm["permissionAnswer"], "cancel", "the reject option");
    let ok = records.iter().find(|r| r["mode"] == "ok").unwrap();
    assert_eq!(
        ok["drainAnswer"], -32601,
        "craft/drainMidTurnQueue: method not found"
    );
    let tr = s
        .request(
            "boo/getTraces",
            json!({"runId": run_id, "stepId": "correctness"}),
        )
        .unwrap();
    let trace = &tr["traces"][0];
    assert_eq!(trace["tool"], "read_file");
    assert_eq!(trace["outcome"], "denied", "{trace}");
    assert!(trace["input"]["file_path"]
        .as_str()
        .is_some_and(|p| p.ends_with("outside.txt")));
    assert_eq!(s.stop(), Some(0));
    assert!(wait_until(Duration::from_secs(5), || gone(&records)));
}

#[test]
fn a_session_serves_a_later_step_only_cleared_after_a_clean_end() {
    // (FAKE_QWEN_CLEAR, question, whether the verdict may get a wave-1 session back)
    let cases = [
        // qwen does not list /clear for ACP: boo never sends it, every step a new session.
        ("unknown", "sizing", false),
        // /clear leaves the conversation in place: the session is closed, not reused.
        ("keeps", "sizing", false),
        // A failed step's session is closed; the other comes back cleared.
        ("works", "sizing [[fake:security=fail]]", true),
    ];
    for (clear, question, reused) in cases {
        let t = TempDir::new("pool-clear");
        let root = project(t.path());
        let rec = t.path().join("agents");
        std::fs::create_dir_all(&rec).unwrap();
        let mut s = start(t.path(), &rec, &[("FAKE_QWEN_CLEAR", clear.to_string())]);
        s.initialize(&root);
        let run_id = launch(&mut s, question);
        let end = s.wait_run_end(&run_id, LONG);
        assert_eq!(end["runStatus"], "completed", "{clear}: {end}");
        let records = prompts_of(&rec, &run_id);
        // (step, session, how the prompt starts): enough to read a failure.
        let brief: Vec<(String, String, String)> = records
            .iter()
            .map(|r| {
                let text = |k: &str| r[k].as_str().unwrap_or("").to_string();
                let prompt: String = text("prompt").chars().take(24).collect();
                (
                    r["env"]["BOO_STEP_ID"].to_string(),
                    text("sessionId"),
                    prompt,
                )
            })
            .collect();
        assert!(
            records.iter().all(|r| r["prompt"] != "/clear"),
            "{clear}: /clear reached the agent as a prompt: {brief:?}"
        );
        let session_of = |id: &str| {
            records
                .iter()
                .find(|r| r["env"]["BOO_STEP_ID"] == id)
                .map(|r| r["sessionId"].as_str().unwrap().to_string())
                .unwrap()
        };
        let verdict = session_of("verdict");
        assert_ne!(verdict, session_of("security"), "{clear}: {brief:?}");
        if reused {
            assert_eq!(verdict, session_of("correctness"), "{clear}: {brief:?}");
        } else {
            assert_ne!(verdict, session_of("correctness"), "{clear}: {brief:?}");
        }
        assert_eq!(s.stop(), Some(0));
    }
}
