//! Workflow runs end to end through `boo serve` with the fake qwen: a fan-out and
//! pipeline script, the content cache (a second run, an edited prompt, a crash and
//! adoption), the budget, refused scripts, the CPU and heap limits, the catalog
//! (built-in, user and project workflows, trust) and model aliases.

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
    s.request("boo/launchWorkflow", params.clone())
        .unwrap_or_else(|e| panic!("launch {params}: {e:?}; stderr: {}", s.stderr()))["runId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The `boo/stepAdded` steps of a run, in order.
fn added(s: &Server, run_id: &str) -> Vec<Value> {
    s.run_notes(run_id)
        .into_iter()
        .filter(|(m, _)| m == "boo/stepAdded")
        .map(|(_, p)| p["step"].clone())
        .collect()
}

/// The `$/progress` values sent for a run's token.
fn progress(s: &Server, run_id: &str) -> Vec<Value> {
    let token = format!("boo-run-{run_id}");
    s.notes
        .iter()
        .filter(|(m, p)| m == "$/progress" && p["token"] == token.as_str())
        .map(|(_, p)| p["value"].clone())
        .collect()
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
    assert!(agent_steps(&got2).iter().all(|a| a["cached"] == true));
    assert!(agent_steps(&got).iter().all(|a| a["cached"] == false));
    // The budget counts what agents spent in this run: nothing, when all were cached
    // (their steps still show the tokens the answers once cost).
    assert!(got["run"]["workflow"]["budget"]["spent"].as_u64().unwrap() > 0);
    assert_eq!(
        got2["run"]["workflow"]["budget"]["spent"], 0,
        "{}",
        got2["run"]
    );
    // `$/progress`: begin, one report per agent (cache hits counted), end.
    let p2 = progress(&s, &run2);
    assert_eq!(p2.first().unwrap()["kind"], "begin", "{p2:?}");
    assert_eq!(p2.last().unwrap()["kind"], "end", "{p2:?}");
    assert!(
        p2.iter()
            .any(|v| v["message"] == "7 agents done (7 cached) · 0 output tokens"),
        "{p2:?}"
    );
    let p1 = progress(&s, &run_id);
    assert!(
        p1.iter().any(|v| v["kind"] == "report"
            && v["message"]
                .as_str()
                .unwrap()
                .starts_with("7 agents done (0 cached)")),
        "{p1:?}"
    );
    let runs = s.request("boo/listRuns", json!({})).unwrap();
    assert!(runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["kind"] == "workflow"));
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
    assert!(
        msg.contains("(at 2:"),
        "the message names the line and column: {msg}"
    );
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

/// Editing one agent's prompt re-runs that agent and the agent whose prompt is built
/// from its answer; the others come from the cache.
#[test]
fn an_edited_prompt_reruns_exactly_that_agent_and_its_dependants() {
    let t = TempDir::new("wf-edit");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[("FAKE_QWEN_DIR", rec.display().to_string())],
    );
    s.initialize(&root);
    // `echo` answers with the prompt's length: beta's answer changes with its prompt.
    let script = |beta: &str| {
        format!(
            "export const meta = {{ name: 'edit', description: 'one edited prompt' }};\n\
             const [a, b] = await parallel([\n\
               () => agent('Alpha reads README.md', {{ label: 'alpha' }}),\n\
               () => agent('{beta} [[fake:echo]]', {{ label: 'beta' }}),\n\
             ]);\n\
             const c = await agent(`Gamma builds on beta: ${{b}}`, {{ label: 'gamma' }});\n\
             const d = await agent('Delta stands alone', {{ label: 'delta' }});\n\
             return [a, b, c, d].filter(Boolean).length;\n"
        )
    };
    let first = launch(&mut s, json!({ "script": script("Beta v1") }));
    assert_eq!(s.wait_run_end(&first, LONG)["runStatus"], "completed");
    assert_eq!(agent_records(&rec).len(), 4);
    let second = launch(
        &mut s,
        json!({ "script": script("Beta, second version, reads src/lib.rs") }),
    );
    let last = s.wait_run_end(&second, LONG);
    assert_eq!(last["runStatus"], "completed", "{last}");
    assert_eq!(last["result"], 4);
    s.drain(Duration::from_millis(200));
    let cached: Vec<(String, bool)> = added(&s, &second)
        .iter()
        .map(|a| {
            (
                a["label"].as_str().unwrap().to_string(),
                a["cached"] == true,
            )
        })
        .collect();
    let mut cached = cached;
    cached.sort();
    assert_eq!(
        cached,
        vec![
            ("alpha".to_string(), true),
            ("beta".to_string(), false),
            ("delta".to_string(), true),
            ("gamma".to_string(), false),
        ]
    );
    assert_eq!(
        agent_records(&rec).len(),
        6,
        "exactly beta and gamma ran again"
    );
    s.stop();
}

/// kill -9 of the server while a workflow runs: the next server adopts the run and
/// executes the script again; the agents that had finished come back from the cache
/// (no second process), the interrupted one runs again, and the run completes.
#[test]
fn kill_9_mid_workflow_resumes_without_running_a_finished_agent_twice() {
    let t = TempDir::new("wf-resume");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let dir = ("FAKE_QWEN_DIR", rec.display().to_string());
    let script = "export const meta = { name: 'resume', description: 'survives a crash' };\n\
                  phase('First');\n\
                  const firsts = await parallel([() => agent('First part A'), () => agent('First part B')]);\n\
                  log('firsts done');\n\
                  phase('Second');\n\
                  const last = await agent('Second part, after the firsts');\n\
                  return { firsts: firsts.filter(Boolean).length, last: last !== null };\n";
    let mut s = Server::start(
        &db,
        &[dir.clone(), ("FAKE_QWEN_MODES", "agent-3=hang".into())],
    );
    s.initialize(&root);
    // `fresh` skips older answers, never the run's own: a resumed fresh run keeps them.
    let run_id = launch(&mut s, json!({ "script": script, "fresh": true }));
    s.wait_for("agent-3 running", LONG, |m, p| {
        m == "boo/stepUpdated" && p["stepId"] == "agent-3" && p["status"] == "running"
    });
    assert!(wait_until(LONG, || invocations(&rec).get("agent-3") == Some(&1)));
    let hung: Vec<i64> = agent_records(&rec)
        .iter()
        .filter(|r| r["env"]["BOO_STEP_ID"] == "agent-3")
        .flat_map(|r| {
            [
                r["launcherPid"].as_i64().unwrap_or(0),
                r["workerPid"].as_i64().unwrap_or(0),
            ]
        })
        .collect();
    s.kill9();
    let mut s2 = Server::start(&db, &[dir]);
    s2.initialize(&root);
    let end = s2.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    assert_eq!(end["result"], json!({ "firsts": 2, "last": true }));
    let n = invocations(&rec);
    assert_eq!(
        n.get("agent-1"),
        Some(&1),
        "finished agents never run twice: {n:?}"
    );
    assert_eq!(n.get("agent-2"), Some(&1), "{n:?}");
    assert_eq!(
        n.get("agent-3"),
        Some(&2),
        "the interrupted agent runs again: {n:?}"
    );
    for pid in hung {
        assert!(
            wait_until(Duration::from_secs(5), || !alive(pid)),
            "stale agent {pid} survived"
        );
    }
    s2.drain(Duration::from_millis(200));
    let resumed: Vec<Value> = added(&s2, &run_id);
    let mut cached: Vec<&str> = resumed
        .iter()
        .filter(|a| a["cached"] == true)
        .map(|a| a["stepId"].as_str().unwrap())
        .collect();
    cached.sort();
    assert_eq!(cached, vec!["agent-1", "agent-2"], "{resumed:?}");
    let got = s2
        .request("boo/getRun", json!({ "runId": run_id }))
        .unwrap();
    assert_eq!(got["run"]["status"], "completed");
    assert_eq!(agent_steps(&got).len(), 3);
    // The script ran twice, its log reads once: replayed lines are not repeated.
    let log: Vec<(String, String)> = got["run"]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        log,
        vec![
            ("phase".to_string(), "First".to_string()),
            ("log".to_string(), "firsts done".to_string()),
            ("phase".to_string(), "Second".to_string()),
        ]
    );
    s2.stop();
}

/// A budget spent by the first agent: the next `agent()` throws in the script (which
/// can catch it), and the run fails naming the budget.
#[test]
fn a_spent_budget_throws_in_the_script_and_the_run_reports_it() {
    let t = TempDir::new("wf-budget");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let script = "export const meta = { name: 'budget', description: 'spends it all' };\n\
                  await agent('Spend some tokens');\n\
                  log(`spent ${budget.spent()} of ${budget.total}`);\n\
                  try { await agent('One more'); } catch (e) { log(`caught: ${e.message}`); throw e; }\n\
                  return 'unreachable';\n";
    let run_id = launch(&mut s, json!({ "script": script, "budget": 1 }));
    let last = s.wait_run_end(&run_id, LONG);
    assert_eq!(last["runStatus"], "failed", "{last}");
    let err = last["runError"].as_str().unwrap();
    assert!(err.contains("budget is spent"), "{err}");
    let got = s.request("boo/getRun", json!({ "runId": run_id })).unwrap();
    let log: Vec<String> = got["run"]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        log[0].starts_with("spent ") && log[0].ends_with(" of 1"),
        "{log:?}"
    );
    assert!(
        log[1].starts_with("caught: agent(): the run's token budget is spent"),
        "{log:?}"
    );
    assert_eq!(got["run"]["workflow"]["budget"]["total"], 1);
    assert!(got["run"]["workflow"]["budget"]["spent"].as_u64().unwrap() >= 1);
    assert_eq!(agent_steps(&got).len(), 1, "the second agent never started");
    s.stop();
}

#[test]
fn a_memory_bomb_fails_by_the_heap_limit_and_the_server_keeps_serving() {
    let t = TempDir::new("wf-heap");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let bomb = "export const meta = { name: 'bomb', description: 'eats memory' };\n\
                const keep = [];\n\
                while (true) { keep.push(new Array(1 << 20).fill(keep.length)); }\n";
    let run_id = launch(&mut s, json!({ "script": bomb }));
    let last = s.wait_run_end(&run_id, LONG);
    assert_eq!(last["runStatus"], "failed", "{last}");
    let err = last["runError"].as_str().unwrap();
    assert!(
        err.contains("heap") && err.contains("64 MiB"),
        "names the limit: {err}"
    );
    let ok = launch(
        &mut s,
        json!({ "script": "export const meta = { name: 'ok', description: 'fine' };\nreturn await agent('still here?');\n" }),
    );
    assert_eq!(s.wait_run_end(&ok, LONG)["runStatus"], "completed");
    s.stop();
}

/// boo/listWorkflows: built-in, user and project workflows (a project one whose name
/// is taken is qualified), broken files with their line and column, and `trusted`;
/// a project workflow launches only once the root is trusted (-32005 before, no run
/// row), and may call another project workflow by name.
#[test]
fn the_catalog_lists_every_source_and_project_workflows_need_trust() {
    let t = TempDir::new("wf-catalog");
    let root = project(t.path());
    let user = t.path().join("config/boo/workflows");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(
        user.join("mine.js"),
        "export const meta = { name: 'mine', description: 'the user one' };\nreturn 'mine';\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join(".boo/workflows")).unwrap();
    std::fs::create_dir_all(root.join(".claude/workflows")).unwrap();
    std::fs::write(
        root.join(".boo/workflows/team.js"),
        "export const meta = { name: 'team', description: 'the team one', phases: [{ title: 'Ask' }] };\n\
         phase('Ask');\n\
         const a = await agent('What does add do?');\n\
         const sub = await workflow('helper', 'x');\n\
         return `${sub} ${a !== null}`;\n",
    )
    .unwrap();
    std::fs::write(
        root.join(".claude/workflows/helper.js"),
        "export const meta = { name: 'helper', description: 'a Claude Code script' };\nreturn `${args}!`;\n",
    )
    .unwrap();
    std::fs::write(
        root.join(".claude/workflows/deep-review.js"),
        "export const meta = { name: 'deep-review', description: 'a lookalike' };\nreturn 1;\n",
    )
    .unwrap();
    std::fs::write(
        root.join(".claude/workflows/broken.js"),
        "export const meta = { name: 'broken', description: 'x' };\nconst = 1;\n",
    )
    .unwrap();
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    let init = s.initialize(&root);
    assert!(init["capabilities"]["experimental"]["boo"]["features"]
        .as_array()
        .unwrap()
        .contains(&json!("workflows")));
    let list = s.request("boo/listWorkflows", json!({})).unwrap();
    assert_eq!(list["trusted"], false);
    let by_name = |name: &str| {
        list["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is listed: {list}"))
    };
    let builtin = by_name("deep-review");
    assert_eq!(builtin["source"], "builtin");
    assert_eq!(builtin["path"], "builtin:workflows/deep-review.js");
    assert!(builtin["whenToUse"].is_string());
    assert_eq!(builtin["phases"][0]["title"], "Map");
    assert_eq!(by_name("project:deep-review")["source"], "project");
    assert_eq!(by_name("mine")["source"], "user");
    let team = by_name("team");
    assert_eq!(team["source"], "project");
    assert_eq!(team["phases"], json!([{ "title": "Ask", "detail": null }]));
    assert!(team["path"]
        .as_str()
        .unwrap()
        .ends_with(".boo/workflows/team.js"));
    for name in [
        "architecture-audit",
        "test-gap-sweep",
        "research-question",
        "dependency-audit",
    ] {
        assert_eq!(by_name(name)["source"], "builtin");
    }
    let broken = &list["errors"][0];
    assert!(
        broken["file"].as_str().unwrap().ends_with("broken.js"),
        "{list}"
    );
    assert_eq!(broken["line"], 2);
    assert!(broken["column"].as_u64().is_some());

    let (code, msg) = s
        .request("boo/launchWorkflow", json!({ "workflow": "team" }))
        .unwrap_err();
    assert_eq!(code, -32005, "{msg}");
    assert!(
        msg.contains(&format!("boo trust {}", root.display())),
        "{msg}"
    );
    let (code, msg) = s
        .request("boo/launchWorkflow", json!({ "workflow": "nope" }))
        .unwrap_err();
    assert_eq!(code, -32602);
    assert!(
        msg.contains("research-question") && msg.contains("team"),
        "{msg}"
    );
    // The same file by its path is still the repository's own workflow.
    for path in [
        root.join(".boo/workflows/team.js").display().to_string(),
        ".claude/workflows/helper.js".to_string(),
    ] {
        let (code, msg) = s
            .request("boo/launchWorkflow", json!({ "scriptPath": path }))
            .unwrap_err();
        assert_eq!(code, -32005, "{path}: {msg}");
    }
    let runs = s.request("boo/listRuns", json!({ "root": null })).unwrap();
    assert!(runs["runs"].as_array().unwrap().is_empty(), "no run row");
    // A user workflow needs no trust.
    let mine = launch(&mut s, json!({ "workflow": "mine" }));
    assert_eq!(s.wait_run_end(&mine, LONG)["result"], "mine");

    s.request("boo/trustRoot", json!({ "root": root, "trusted": true }))
        .unwrap();
    assert_eq!(
        s.request("boo/listWorkflows", json!({})).unwrap()["trusted"],
        true
    );
    let run_id = launch(&mut s, json!({ "workflow": "team" }));
    let last = s.wait_run_end(&run_id, LONG);
    assert_eq!(last["runStatus"], "completed", "{last}");
    assert_eq!(last["result"], "x! true");
    let got = s.request("boo/getRun", json!({ "runId": run_id })).unwrap();
    assert_eq!(got["run"]["flow"], "team");
    assert_eq!(got["run"]["workflow"]["source"], "project");
    // Workflows have no band: `null` on the run, its summary and its runStarted.
    assert_eq!(got["run"]["band"], Value::Null, "{}", got["run"]);
    let listed = s.request("boo/listRuns", json!({ "root": null })).unwrap();
    let summary = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["runId"] == run_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(summary["band"], Value::Null, "{summary}");
    assert_eq!(summary["kind"], "workflow");
    assert_eq!(got["run"]["workflow"]["phases"][0]["title"], "Ask");
    assert!(got["run"]["workflow"]["path"]
        .as_str()
        .unwrap()
        .ends_with("team.js"));
    s.stop();
}

/// Claude Code's model aliases and the configured table map to endpoint models; a
/// served name passes through; `effort` is recorded on the step and changes nothing.
#[test]
fn agent_models_follow_the_alias_table_and_effort_is_recorded() {
    let t = TempDir::new("wf-model");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[
            ("FAKE_QWEN_DIR", rec.display().to_string()),
            ("BOO_MODEL_ALIASES", "opus=big-q".to_string()),
        ],
    );
    s.initialize(&root);
    let script = "export const meta = { name: 'models', description: 'three models' };\n\
                  await agent('Uses opus', { model: 'opus', effort: 'high', label: 'opus' });\n\
                  await agent('Uses haiku', { model: 'haiku', label: 'haiku' });\n\
                  await agent('Uses a served model', { model: 'qwen-special', label: 'served' });\n\
                  return 'ok';\n";
    let run_id = launch(&mut s, json!({ "script": script }));
    assert_eq!(s.wait_run_end(&run_id, LONG)["runStatus"], "completed");
    let model_of = |step: &str| -> Vec<String> {
        agent_records(&rec)
            .iter()
            .filter(|r| r["env"]["BOO_STEP_ID"] == step)
            .flat_map(|r| {
                r["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|a| a.as_str()?.strip_prefix("--model=").map(String::from))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(model_of("agent-1"), vec!["big-q"]);
    assert_eq!(
        model_of("agent-2"),
        vec!["test-model"],
        "haiku → the run's model"
    );
    assert_eq!(model_of("agent-3"), vec!["qwen-special"]);
    let got = s.request("boo/getRun", json!({ "runId": run_id })).unwrap();
    let opus = agent_steps(&got)
        .into_iter()
        .find(|a| a["label"] == "opus")
        .unwrap();
    assert_eq!(
        opus["meta"]["workflow"],
        json!({ "model": "opus", "modelUsed": "big-q", "effort": "high", "effortApplied": false })
    );
    s.stop();
}

/// A built-in workflow, run by name end to end with the fake qwen: its schema agent
/// gets a valid value back, the fan-out follows it, and the report verifies the
/// agents' citations like a flow's.
#[test]
fn a_builtin_workflow_runs_end_to_end() {
    let t = TempDir::new("wf-builtin");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let run_id = launch(
        &mut s,
        json!({ "workflow": "research-question", "args": "How does add work?" }),
    );
    let last = s.wait_run_end(&run_id, LONG);
    assert_eq!(last["runStatus"], "completed", "{last}");
    s.drain(Duration::from_millis(200));
    let steps = added(&s, &run_id);
    let personas: Vec<&str> = steps.iter().map(|a| a["agent"].as_str().unwrap()).collect();
    // The plan's schema answer (two sub-questions from the fake) drives the fan-out.
    assert_eq!(
        personas,
        vec![
            "codebase-explorer",
            "evidence-based-investigator",
            "evidence-based-investigator",
            "evidence-based-investigator"
        ]
    );
    let phases: Vec<&str> = steps.iter().map(|a| a["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, vec!["Plan", "Investigate", "Investigate", "Answer"]);
    let report = last["report"].as_str().unwrap();
    assert!(report.starts_with("## Result"), "{report}");
    assert!(report.contains("## Verified findings"), "{report}");
    let got = s.request("boo/getRun", json!({ "runId": run_id })).unwrap();
    assert_eq!(got["run"]["workflow"]["source"], "builtin");
    assert_eq!(got["run"]["question"], "How does add work?");
    s.stop();
}

/// Identical calls in a fan-out are told apart by how many identical calls the script
/// made before them — in script order, not in the order their agents happen to start.
/// The fake's answers name their step, so a swap would change the last prompt and
/// miss the cache.
#[test]
fn identical_calls_in_a_fan_out_hit_the_cache_in_script_order() {
    let t = TempDir::new("wf-same");
    let root = project(t.path());
    let rec = t.path().join("agents");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = Server::start(
        &t.path().join("boo.db"),
        &[
            ("FAKE_QWEN_DIR", rec.display().to_string()),
            ("BOO_MAX_PARALLEL", "4".to_string()),
        ],
    );
    s.initialize(&root);
    let script = "export const meta = { name: 'same', description: 'six identical calls' };\n\
                  const six = await parallel(Array.from({ length: 6 }, () => () => agent('The same question')));\n\
                  return await agent(`Sum up: ${six.join(' | ')}`);\n";
    let first = launch(&mut s, json!({ "script": script }));
    assert_eq!(s.wait_run_end(&first, LONG)["runStatus"], "completed");
    assert_eq!(agent_records(&rec).len(), 7);
    for _ in 0..3 {
        let again = launch(&mut s, json!({ "script": script }));
        assert_eq!(s.wait_run_end(&again, LONG)["runStatus"], "completed");
        s.drain(Duration::from_millis(100));
        assert!(
            added(&s, &again).iter().all(|a| a["cached"] == true),
            "{:?}",
            added(&s, &again)
        );
    }
    assert_eq!(agent_records(&rec).len(), 7, "no agent ran again");
    s.stop();
}
