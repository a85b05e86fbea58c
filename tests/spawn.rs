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

/// The settings file of the fake's record of `step` (its first prompt).
fn settings_of(rec: &Path, step: &str) -> Value {
    let r = agent_records(rec)
        .into_iter()
        .find(|r| r["BOO_STEP_ID"] == step && r.get("prompt").is_some())
        .unwrap_or_else(|| panic!("no record of {step}"));
    let path = r["env"]["QWEN_CODE_SYSTEM_SETTINGS_PATH"]
        .as_str()
        .unwrap()
        .to_string();
    let _ = path;
    r.clone()
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
    let _ = settings_of(&rec, "trace");
    assert_eq!(s.stop(), Some(0));
}
