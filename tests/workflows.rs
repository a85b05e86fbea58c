//! Workflow runs end to end through `boo serve` with the fake qwen: a fan-out and
//! pipeline script, the content cache, refused scripts, the CPU limit.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(90);

const FAN_OUT: &str = r#"export const meta = { name: 'fan-pipe', description: 'fan out, then a pipeline', phases: [{ title: 'Survey' }, { title: 'Refine' }] };
phase('Survey');
const parts = await parallel(['alpha', 'beta', 'gamma'].map(p => () => agent(`Describe part ${p} of src/lib.rs`, { label: `part ${p}` })));
log(`surveyed ${parts.filter(Boolean).length} parts`);
phase('Refine');
const refined = await pipeline(['one', 'two'],
  (prev, item) => agent(`Refine ${item}`),
  (prev, item) => agent(`Check ${item}: ${prev ? 'had an answer' : 'none'}`));
return { parts: parts.filter(Boolean).length, refined: refined.filter(Boolean).length };
"#;

fn launch(s: &mut Server, params: Value) -> String {
    s.request("boo/launchWorkflow", params).unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string()
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

#[test]
fn a_fan_out_and_pipeline_workflow_completes_and_a_second_run_is_all_cached() {
    let t = TempDir::new("wf-fan");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[("FAKE_QWEN_DIR", rec.display().to_string())],
    );
    s.initialize(&root);
    let run_id = launch(&mut s, json!({ "script": FAN_OUT, "args": { "depth": 1 } }));
    let last = s.wait_run_end(&run_id, LONG);
    assert_eq!(last["runStatus"], "completed", "{last}");
    assert_eq!(last["stepId"], "script");
    assert_eq!(last["result"], json!({ "parts": 3, "refined": 2 }));
    s.drain(Duration::from_millis(200));
    let notes = s.run_notes(&run_id);
    assert_eq!(notes[0].0, "boo/runStarted");
    assert_eq!(notes[0].1["steps"].as_array().unwrap().len(), 1);
    assert_eq!(notes[0].1["steps"][0]["kind"], "script");
    let added: Vec<&Value> = notes
        .iter()
        .filter(|(m, _)| m == "boo/stepAdded")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(added.len(), 7);
    assert!(added
        .iter()
        .all(|p| p["step"]["cached"] == false && p["step"]["parentStepId"] == "script"));
    let first_runs = agent_records(&rec).len();
    assert_eq!(first_runs, 7, "one agent process per agent() call");

    let got = s.request("boo/getRun", json!({ "runId": run_id })).unwrap();
    assert_eq!(got["run"]["kind"], "workflow");
    assert_eq!(got["run"]["workflow"]["name"], "fan-pipe");
    assert_eq!(got["run"]["workflow"]["args"], json!({ "depth": 1 }));
    assert_eq!(got["run"]["result"], json!({ "parts": 3, "refined": 2 }));
    assert_eq!(got["run"]["question"], "{\"depth\":1}");
    let log: Vec<(u64, String, String)> = got["run"]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["seq"].as_u64().unwrap(),
                l["kind"].as_str().unwrap().into(),
                l["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        log,
        vec![
            (1, "phase".into(), "Survey".into()),
            (2, "log".into(), "surveyed 3 parts".into()),
            (3, "phase".into(), "Refine".into()),
        ]
    );
    let agents = agent_steps(&got);
    assert_eq!(agents.len(), 7);
    let phase_of = |label: &str| {
        agents
            .iter()
            .find(|a| a["label"] == label)
            .map(|a| (a["phase"].clone(), a["wave"].clone()))
    };
    assert_eq!(phase_of("part beta"), Some((json!("Survey"), json!(2))));
    assert_eq!(phase_of("Refine two"), Some((json!("Refine"), json!(3))));
    assert!(agents.iter().all(
        |a| a["status"] == "completed" && a["cacheKey"].as_str().is_some_and(|k| k.len() == 64)
    ));

    // The same script on the unchanged project: every agent from the cache.
    let run2 = launch(&mut s, json!({ "script": FAN_OUT, "args": { "depth": 1 } }));
    let last2 = s.wait_run_end(&run2, LONG);
    assert_eq!(last2["runStatus"], "completed", "{last2}");
    s.drain(Duration::from_millis(200));
    assert_eq!(
        agent_records(&rec).len(),
        first_runs,
        "no agent process ran"
    );
    let notes2 = s.run_notes(&run2);
    let added2: Vec<&Value> = notes2
        .iter()
        .filter(|(m, _)| m == "boo/stepAdded")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(added2.len(), 7);
    assert!(added2
        .iter()
        .all(|p| p["step"]["cached"] == true && p["step"]["status"] == "completed"));
    assert!(!notes2.iter().any(|(m, _)| m == "boo/agentStream"));
    let got2 = s.request("boo/getRun", json!({ "runId": run2 })).unwrap();
    let keys = |r: &Value| {
        let mut k: Vec<String> = agent_steps(r)
            .iter()
            .map(|a| a["cacheKey"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(&got), keys(&got2));
    assert_eq!(got2["run"]["result"], got["run"]["result"]);
    s.stop();
}

#[test]
fn a_script_that_does_not_compile_is_refused_with_its_position_and_no_run() {
    let t = TempDir::new("wf-syntax");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let bad = "export const meta = { name: 'bad', description: 'broken' };\nconst x = ;\n";
    let (code, msg) = s
        .request("boo/launchWorkflow", json!({ "script": bad }))
        .unwrap_err();
    assert_eq!(code, -32602);
    assert!(msg.contains("2:"), "the message names the line: {msg}");
    let (code, msg) = s
        .request("boo/launchWorkflow", json!({ "script": "agent('x')" }))
        .unwrap_err();
    assert_eq!(code, -32602, "{msg}");
    let (code, msg) = s
        .request(
            "boo/launchWorkflow",
            json!({ "script": FAN_OUT, "scriptPath": "x.js" }),
        )
        .unwrap_err();
    assert_eq!(code, -32602);
    assert!(msg.contains("exactly one"), "{msg}");
    let runs = s.request("boo/listRuns", json!({ "root": null })).unwrap();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0, "no run row");
    s.stop();
}

#[test]
fn an_endless_loop_fails_by_the_cpu_limit_and_the_server_keeps_serving() {
    let t = TempDir::new("wf-cpu");
    let root = project(t.path());
    std::fs::write(
        root.join("spin.js"),
        "export const meta = { name: 'spin', description: 'never ends' };\nwhile (true) {}\n",
    )
    .unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[("BOO_WORKFLOW_CPU_MS", "300".to_string())],
    );
    s.initialize(&root);
    let run_id = launch(&mut s, json!({ "scriptPath": "spin.js" }));
    let last = s.wait_run_end(&run_id, LONG);
    assert_eq!(last["runStatus"], "failed", "{last}");
    let err = last["runError"].as_str().unwrap();
    assert!(err.to_lowercase().contains("cpu"), "names the limit: {err}");
    // Still serving: another workflow runs to its end.
    let ok = launch(
        &mut s,
        json!({ "script": "export const meta = { name: 'ok', description: 'fine' };\nreturn 'done';\n" }),
    );
    let last = s.wait_run_end(&ok, LONG);
    assert_eq!(last["runStatus"], "completed", "{last}");
    assert_eq!(last["result"], "done");
    s.stop();
}
