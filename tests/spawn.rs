//! Background children spawned by agents through boo's MCP tools (`spawn = true` flow
//! steps), end to end against the real `boo serve` binary and the scripted fake qwen,
//! which starts the `boo mcp` server its settings name and speaks MCP stdio to it
//! (FAKE_QWEN_MODES=<step>=mcp, the calls in FAKE_QWEN_MCP).

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(90);

/// The environment of a server whose `trace` step (investigate) runs `calls`.
fn envs(t: &TempDir, rec: &Path, modes: &str, calls: Value) -> Vec<(&'static str, String)> {
    vec![
        ("FAKE_QWEN_DIR", rec.display().to_string()),
        ("FAKE_QWEN_MODES", modes.to_string()),
        ("FAKE_QWEN_MCP", calls.to_string()),
        ("BOO_RUNTIME_DIR", t.path().join("rt").display().to_string()),
    ]
}

fn records(t: &TempDir) -> std::path::PathBuf {
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    rec
}

fn launch(s: &mut Server, flow: &str) -> String {
    let r = s
        .request(
            "boo/launchFlow",
            json!({"flow": flow, "input": {"question": "Why does add overflow?"}}),
        )
        .unwrap_or_else(|e| panic!("launchFlow failed: {e:?}; stderr: {}", s.stderr()));
    r["runId"].as_str().unwrap().to_string()
}

/// The `MCP RESULTS:` summary the fake put in a step's answer.
fn mcp_results(output: &str) -> Value {
    let at = output
        .find("MCP RESULTS: ")
        .unwrap_or_else(|| panic!("no MCP results in {output}"));
    let rest = &output[at + "MCP RESULTS: ".len()..];
    let end = rest.find('\n').unwrap_or(rest.len());
    serde_json::from_str(&rest[..end]).unwrap()
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stepId"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {run}"))
}

#[test]
fn a_flow_step_spawns_a_child_and_gets_its_result() {
    let t = TempDir::new("spawn-basic");
    let root = project(t.path());
    let rec = records(&t);
    let calls = json!({"trace": [
        ["spawn_subagent", {"persona": "data-engineer", "prompt": "Look at src/lib.rs and say what add does.", "label": "Check add"}],
        ["subagent_status", {"agentId": "$1"}],
        ["subagent_result", {"agentId": "$1", "waitSeconds": 30}]
    ]});
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &envs(&t, &rec, "trace=mcp", calls),
    );
    s.initialize(&root);
    let run_id = launch(&mut s, "investigate");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}; {}", s.stderr());

    // The child was announced under its parent, in the parent's wave.
    let added: Vec<Value> = s
        .run_notes(&run_id)
        .into_iter()
        .filter(|(m, _)| m == "boo/stepAdded")
        .map(|(_, p)| p["step"].clone())
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    let child = &added[0];
    assert_eq!(child["stepId"], "trace.sub-1");
    assert_eq!(child["parentStepId"], "trace");
    assert_eq!(child["agent"], "data-engineer");
    assert_eq!(child["kind"], "agent");
    assert_eq!(child["label"], "Check add");
    assert_eq!(child["phase"], Value::Null);
    assert_eq!(child["status"], "running");
    assert_eq!(child["cached"], false);
    // The same shape the clients' protocol case for children expects (rule 20).
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/protocol-cases/flow-children.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let expected = case["input"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "boo/stepAdded")
        .unwrap()["params"]["step"]
        .clone();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(child), keys(&expected), "{child}");
    for (k, v) in expected.as_object().unwrap() {
        let same_type = match v {
            Value::Null => child[k].is_null(),
            Value::String(_) => child[k].is_string(),
            Value::Bool(_) => child[k].is_boolean(),
            Value::Number(_) => child[k].is_number(),
            _ => true,
        };
        assert!(same_type, "{k}: {} vs {v}", child[k]);
    }
    let run = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    let trace_wave = step(&run, "trace")["wave"].clone();
    assert_eq!(child["wave"], trace_wave);

    // The parent got the child's answer through subagent_result.
    let trace = step(&run, "trace");
    let results = mcp_results(trace["output"].as_str().unwrap());
    assert_eq!(results["mcp"], json!(["boo"]), "{results}");
    let r = results["results"].as_array().unwrap();
    assert_eq!(r[0][0], "spawn_subagent");
    assert_eq!(r[0][2], false, "{results}");
    assert_eq!(
        serde_json::from_str::<Value>(r[0][1].as_str().unwrap()).unwrap()["agentId"],
        "trace.sub-1"
    );
    let status: Value = serde_json::from_str(r[1][1].as_str().unwrap()).unwrap();
    assert!(
        status["elapsedMs"].is_u64() && status["tokens"].is_u64(),
        "{status}"
    );
    let result: Value = serde_json::from_str(r[2][1].as_str().unwrap()).unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    assert!(
        result["output"]
            .as_str()
            .unwrap()
            .contains("Step trace.sub-1: fake-qwen looked at the project"),
        "{result}"
    );

    // The child is a step of the run, in the report with its persona and label.
    let c = step(&run, "trace.sub-1");
    assert_eq!(c["status"], "completed");
    assert_eq!(c["parentStepId"], "trace");
    let report = run["report"].as_str().unwrap();
    assert!(report.contains("Check add"), "{report}");
    // The child's finding is verified and reported like any step's.
    assert!(
        report.contains("fake-qwen read README.md for step trace.sub-1"),
        "{report}"
    );

    // Only the spawning step had boo's MCP server: its settings name `boo mcp` and its
    // folder was trusted for it; the child and every other agent step had neither.
    let recs = agent_records(&rec);
    let with_prompt: Vec<&Value> = recs.iter().filter(|r| r.get("prompt").is_some()).collect();
    assert!(with_prompt.len() >= 3, "{with_prompt:?}");
    let trace_rec = with_prompt
        .iter()
        .find(|r| r["BOO_STEP_ID"] == "trace")
        .unwrap();
    assert_eq!(trace_rec["mode"], "mcp");
    // The spawning step: boo's server only, trusted for it, hooks off.
    assert_eq!(results["configured"], json!(["boo"]));
    assert_eq!(results["allowed"], json!(["boo"]));
    assert_eq!(results["trusted"], true);
    assert_eq!(results["disableAllHooks"], true);
    assert_eq!(s.stop(), Some(0));
}

fn notes_index(notes: &[(String, Value)], pred: impl Fn(&str, &Value) -> bool) -> usize {
    notes
        .iter()
        .position(|(m, p)| pred(m, p))
        .unwrap_or_else(|| panic!("no such notification in {notes:?}"))
}

fn ended(id: &'static str, status: &'static str) -> impl Fn(&str, &Value) -> bool {
    move |m, p| m == "boo/stepUpdated" && p["stepId"] == id && p["status"] == status
}

#[test]
fn a_child_outlives_its_parent_step_and_the_run_ends_after_it() {
    let t = TempDir::new("spawn-outlive");
    let root = project(t.path());
    let rec = records(&t);
    // The parent spawns and ends at once; the child sleeps 3 s first.
    let calls = json!({"trace": [
        ["spawn_subagent", {"prompt": "Follow the overflow lead in src/lib.rs."}]
    ]});
    let mut env = envs(&t, &rec, "trace=mcp,trace.sub-1=sleep", calls);
    env.push(("FAKE_QWEN_SLEEP_MS", "3000".into()));
    let mut s = Server::start(&t.path().join("boo.db"), &env);
    s.initialize(&root);
    let run_id = launch(&mut s, "investigate");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let notes = s.run_notes(&run_id);
    let parent_done = notes_index(&notes, ended("trace", "completed"));
    let child_done = notes_index(&notes, ended("trace.sub-1", "completed"));
    let run_end = notes_index(&notes, |m, p| {
        m == "boo/stepUpdated" && p.get("runStatus").is_some_and(|s| s != "running")
    });
    assert!(
        parent_done < child_done,
        "the child ended before its parent"
    );
    assert!(child_done < run_end, "the run ended before its child");
    assert_eq!(
        run_end,
        notes.len()
            - 1
            - notes[run_end..]
                .iter()
                .filter(|(m, _)| m != "boo/stepUpdated")
                .count()
    );
    // Default persona: the parent's; default label: the prompt's first line.
    let added = notes
        .iter()
        .find(|(m, _)| m == "boo/stepAdded")
        .map(|(_, p)| p["step"].clone())
        .unwrap();
    assert_eq!(added["agent"], "evidence-based-investigator");
    assert_eq!(added["label"], "Follow the overflow lead in src/lib.rs.");
    let run = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    assert_eq!(step(&run, "trace.sub-1")["status"], "completed");
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn cancelling_the_run_cancels_its_children() {
    let t = TempDir::new("spawn-cancel");
    let root = project(t.path());
    let rec = records(&t);
    let calls = json!({"trace": [
        ["spawn_subagent", {"prompt": "A long lead."}]
    ]});
    let mut env = envs(&t, &rec, "trace=mcp,trace.sub-1=sleep", calls);
    env.push(("FAKE_QWEN_SLEEP_MS", "120000".into()));
    let mut s = Server::start(&t.path().join("boo.db"), &env);
    s.initialize(&root);
    let run_id = launch(&mut s, "investigate");
    s.wait_for("the child", LONG, |m, p| {
        m == "boo/stepAdded" && p["step"]["stepId"] == "trace.sub-1"
    });
    // Let its agent start before cancelling.
    assert!(wait_until(LONG, || invocations(&rec).get("trace.sub-1") == Some(&1)));
    s.request("boo/cancelRun", json!({"runId": run_id}))
        .unwrap();
    let end = s.wait_run_end(&run_id, Duration::from_secs(30));
    assert_eq!(end["runStatus"], "cancelled", "{end}");
    let run = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    assert_eq!(step(&run, "trace.sub-1")["status"], "cancelled", "{run}");
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn kill_9_with_children_in_flight_resumes_only_unfinished_ones_and_never_respawns() {
    let t = TempDir::new("spawn-resume");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let rec = records(&t);
    // The parent starts a quick child and a slow one, then waits for the slow one.
    let calls = json!({"trace": [
        ["spawn_subagent", {"prompt": "Quick lead."}],
        ["spawn_subagent", {"prompt": "Slow lead."}],
        ["subagent_result", {"agentId": "$2", "waitSeconds": 30}],
        ["subagent_result", {"agentId": "$2", "waitSeconds": 30}]
    ]});
    let mut env = envs(&t, &rec, "trace=mcp,trace.sub-2=sleep", calls.clone());
    env.push(("FAKE_QWEN_SLEEP_MS", "120000".into()));
    let mut s = Server::start(&db, &env);
    s.initialize(&root);
    let run_id = launch(&mut s, "investigate");
    s.wait_for(
        "the quick child's end",
        LONG,
        ended("trace.sub-1", "completed"),
    );
    assert!(wait_until(LONG, || invocations(&rec).get("trace.sub-2") == Some(&1)));
    s.kill9();

    let mut env = envs(&t, &rec, "trace=mcp,trace.sub-2=sleep", calls);
    env.push(("FAKE_QWEN_SLEEP_MS", "300".into()));
    let mut s2 = Server::start(&db, &env);
    s2.initialize(&root);
    let end = s2.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}; {}", s2.stderr());
    let n = invocations(&rec);
    assert_eq!(
        n.get("trace.sub-1"),
        Some(&1),
        "a finished child ran again: {n:?}"
    );
    assert_eq!(n.get("trace.sub-2"), Some(&2), "{n:?} {}", s2.stderr());
    assert_eq!(n.get("trace"), Some(&2), "{n:?}");
    let run = s2.request("boo/getRun", json!({"runId": run_id})).unwrap();
    let kids: Vec<&Value> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["parentStepId"] == "trace")
        .collect();
    assert_eq!(kids.len(), 2, "the resumed parent spawned again: {kids:?}");
    assert!(kids.iter().all(|k| k["status"] == "completed"), "{kids:?}");
    // The resumed parent's spawn calls named the children it already had.
    let results = mcp_results(step(&run, "trace")["output"].as_str().unwrap());
    let r = results["results"].as_array().unwrap();
    let id = |i: usize| {
        serde_json::from_str::<Value>(r[i][1].as_str().unwrap()).unwrap()["agentId"].clone()
    };
    assert_eq!(id(0), "trace.sub-1");
    assert_eq!(id(1), "trace.sub-2");
    let last: Value = serde_json::from_str(r[3][1].as_str().unwrap()).unwrap();
    assert_eq!(last["status"], "completed", "{results}");
    // The new server announced both children again under their parent.
    let added: Vec<Value> = s2
        .run_notes(&run_id)
        .into_iter()
        .filter(|(m, _)| m == "boo/stepAdded")
        .map(|(_, p)| p["step"].clone())
        .collect();
    assert_eq!(added.len(), 2, "{added:?}");
    assert!(added.iter().all(|a| a["parentStepId"] == "trace"));
    assert_eq!(s2.stop(), Some(0));
}

#[test]
fn a_child_has_no_tools_and_steps_without_spawn_have_no_mcp_server() {
    let t = TempDir::new("spawn-depth");
    let root = project(t.path());
    let rec = records(&t);
    let calls = json!({
        "trace": [["spawn_subagent", {"prompt": "Child, try to spawn."}],
                  ["subagent_result", {"agentId": "$1", "waitSeconds": 30}]],
        "trace.sub-1": [["spawn_subagent", {"prompt": "Grandchild."}]],
        "security": [["spawn_subagent", {"prompt": "Not allowed here."}]]
    });
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &envs(&t, &rec, "trace=mcp,trace.sub-1=mcp,security=mcp", calls),
    );
    s.initialize(&root);
    let run_id = launch(&mut s, "investigate");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let run = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    for id in ["trace.sub-1", "security"] {
        let r = mcp_results(step(&run, id)["output"].as_str().unwrap());
        assert_eq!(r["mcp"], json!([]), "{id}: {r}");
        assert_eq!(r["configured"], json!([]), "{id}: {r}");
        assert_eq!(r["trusted"], false, "{id}: {r}");
        assert_eq!(r["allowed"], Value::Null, "{id}: {r}");
        assert_eq!(r["results"][0][2], true, "{id}: {r}");
    }
    let kids = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["parentStepId"].is_string())
        .count();
    assert_eq!(kids, 1, "{run}");
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn the_step_and_run_limits_refuse_with_a_clear_tool_error() {
    let t = TempDir::new("spawn-limits");
    let root = project(t.path());
    let rec = records(&t);
    let five: Vec<Value> = (1..=5)
        .map(|i| json!(["spawn_subagent", {"prompt": format!("Lead {i}.")}]))
        .collect();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &envs(&t, &rec, "trace=mcp", json!({"trace": five})),
    );
    s.initialize(&root);
    let run_id = launch(&mut s, "investigate");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let run = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    let r = mcp_results(step(&run, "trace")["output"].as_str().unwrap());
    let results = r["results"].as_array().unwrap();
    assert!(results[..4].iter().all(|x| x[2] == false), "{r}");
    assert_eq!(results[4][2], true, "{r}");
    let msg = results[4][1].as_str().unwrap();
    assert!(
        msg.contains("already started 4 background agents") && msg.contains("BOO_SPAWN_PER_STEP"),
        "{msg}"
    );
    let kids = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["parentStepId"] == "trace")
        .count();
    assert_eq!(kids, 4);
    assert_eq!(s.stop(), Some(0));

    // The run limit, configured lower.
    let t = TempDir::new("spawn-limits-run");
    let root = project(t.path());
    let rec = records(&t);
    let three: Vec<Value> = (1..=3)
        .map(|i| json!(["spawn_subagent", {"prompt": format!("Lead {i}.")}]))
        .collect();
    let mut env = envs(&t, &rec, "trace=mcp", json!({"trace": three}));
    env.push(("BOO_SPAWN_PER_RUN", "2".into()));
    let mut s = Server::start(&t.path().join("boo.db"), &env);
    s.initialize(&root);
    let run_id = launch(&mut s, "investigate");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let run = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    let r = mcp_results(step(&run, "trace")["output"].as_str().unwrap());
    let msg = r["results"][2][1].as_str().unwrap();
    assert_eq!(r["results"][2][2], true, "{r}");
    assert!(
        msg.contains("this run already started 2 background agents")
            && msg.contains("BOO_SPAWN_PER_RUN"),
        "{msg}"
    );
    assert_eq!(s.stop(), Some(0));
}

/// Speaks MCP stdio to `boo mcp --socket <socket>` with `token` and calls one tool.
fn call_boo_mcp(socket: &str, token: &str, tool: &str, args: Value) -> (Value, Value) {
    use std::io::{BufRead, BufReader, Write};
    let mut child = std::process::Command::new(boo_bin())
        .args(["mcp", "--socket", socket])
        .env("BOO_MCP_TOKEN", token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ask = |v: Value| {
        writeln!(stdin, "{v}").unwrap();
        serde_json::from_str::<Value>(&lines.next().unwrap().unwrap()).unwrap()
    };
    let init = ask(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}));
    let answer = ask(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": args}}));
    let _ = child.kill();
    let _ = child.wait();
    (init, answer)
}

#[test]
fn the_channel_is_private_and_a_step_token_dies_with_its_step() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempDir::new("spawn-token");
    let root = project(t.path());
    let rec = records(&t);
    let calls = json!({"trace": [["subagent_status", {"agentId": "trace.sub-9"}]]});
    let mut env = envs(&t, &rec, "trace=mcp", calls);
    env.push(("FAKE_QWEN_MCP_SHOW_TOKEN", "1".into()));
    let mut s = Server::start(&t.path().join("boo.db"), &env);
    s.initialize(&root);
    let run_id = launch(&mut s, "investigate");
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let run = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    let r = mcp_results(step(&run, "trace")["output"].as_str().unwrap());
    // A child id the step never started is refused.
    assert_eq!(r["results"][0][2], true, "{r}");
    assert!(
        r["results"][0][1]
            .as_str()
            .unwrap()
            .contains("unknown agentId"),
        "{r}"
    );
    let token = r["token"].as_str().unwrap().to_string();
    let socket = r["socket"].as_str().unwrap().to_string();
    assert!(token.len() >= 32, "{r}");
    // The runtime folder is the user's alone; so is the socket.
    let rt = t.path().join("rt");
    assert!(socket.starts_with(rt.to_str().unwrap()), "{socket}");
    assert_eq!(
        std::fs::metadata(&rt).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The step ended: its token starts nothing any more, through `boo mcp` itself.
    let (init, answer) = call_boo_mcp(&socket, &token, "spawn_subagent", json!({"prompt": "late"}));
    assert_eq!(init["result"]["serverInfo"]["name"], "boo", "{init}");
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("may not start background agents"),
        "{answer}"
    );
    let (_, bogus) = call_boo_mcp(
        &socket,
        "not-a-token",
        "subagent_status",
        json!({"agentId": "trace.sub-1"}),
    );
    assert_eq!(bogus["result"]["isError"], true, "{bogus}");
    let run = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    assert!(
        !run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["parentStepId"].is_string()),
        "{run}"
    );
    assert_eq!(s.stop(), Some(0));
}
