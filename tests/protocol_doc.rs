//! docs/protocol.md is the contract: this test fails when the server's wire shapes and
//! that document drift apart (a method, a notification or a documented field missing).

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md")).unwrap()
}

/// Top-level keys of a `{ a, b?, c: "x", d: [{...}] }` shape: (name, optional).
fn keys(shape: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut in_value = false;
    let mut in_str = false;
    let mut ident = String::new();
    let chars: Vec<char> = shape.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ':' if depth == 1 => in_value = true,
            ',' if depth == 1 => in_value = false,
            _ => {}
        }
        if depth == 1 && !in_value && (c.is_ascii_alphanumeric() || c == '_') {
            ident.push(c);
        } else if !ident.is_empty() {
            let optional = c == '?';
            out.push((std::mem::take(&mut ident), optional));
        }
        i += 1;
    }
    out
}

fn table_rows(doc: &str, header: &str) -> Vec<(String, String)> {
    let start = doc
        .find(header)
        .unwrap_or_else(|| panic!("no {header} section"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.contains("`boo/"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').to_string(),
                cells[2].trim_matches('`').to_string(),
            )
        })
        .collect()
}

fn type_shapes(doc: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        let l = line.trim_start_matches("- ").trim_matches('`');
        for name in ["Flow", "RunSummary", "Step", "Trace", "Workflow"] {
            if let Some(rest) = l.strip_prefix(&format!("{name} = ")) {
                let shape = rest.split('`').next().unwrap_or(rest);
                out.insert(name.to_string(), shape.to_string());
            }
        }
    }
    out
}

fn assert_has(what: &str, v: &Value, shape: &str) {
    for (k, optional) in keys(shape) {
        if !optional {
            assert!(
                v.get(&k).is_some(),
                "{what}: the documented field `{k}` is missing in {v}"
            );
        }
    }
}

#[test]
fn the_document_parses() {
    assert_eq!(
        keys("{ runId, stepId?, status: \"x\", steps: [{ a, b }], report: string | null }"),
        vec![
            ("runId".to_string(), false),
            ("stepId".to_string(), true),
            ("status".to_string(), false),
            ("steps".to_string(), false),
            ("report".to_string(), false)
        ]
    );
    let d = doc();
    assert_eq!(table_rows(&d, "## Requests").len(), 14);
    assert_eq!(table_rows(&d, "## Notifications").len(), 7);
    assert_eq!(type_shapes(&d).len(), 5);
}

#[test]
fn the_server_matches_the_document() {
    let d = doc();
    let t = TempDir::new("proto");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    let init = s.initialize(&root);
    let methods: Vec<String> = init["capabilities"]["experimental"]["boo"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let notifications: Vec<String> = init["capabilities"]["experimental"]["boo"]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let requests = table_rows(&d, "## Requests");
    let notes = table_rows(&d, "## Notifications");
    let mut doc_methods: Vec<String> = requests.iter().map(|r| r.0.clone()).collect();
    let mut doc_notes: Vec<String> = notes.iter().map(|r| r.0.clone()).collect();
    let (mut m2, mut n2) = (methods.clone(), notifications.clone());
    doc_methods.sort();
    doc_notes.sort();
    m2.sort();
    n2.sort();
    assert_eq!(doc_methods, m2, "requests drifted");
    assert_eq!(doc_notes, n2, "notifications drifted");

    // Every request answers (not -32601) and every notification's documented fields are there.
    let r = s
        .request(
            "boo/launchFlow",
            json!({"flow": "code-review", "input": {"question": "drift?"}}),
        )
        .unwrap();
    let run_id = r["runId"].as_str().unwrap().to_string();
    s.wait_run_end(&run_id, Duration::from_secs(60));
    // A workflow run sends the notifications a flow does not (stepAdded, runLog).
    let w = s
        .request(
            "boo/launchWorkflow",
            json!({"script": "export const meta = { name: 'doc', description: 'doc check' };\nlog('hello');\nreturn await agent('say hi');\n"}),
        )
        .unwrap();
    let wf_run = w["runId"].as_str().unwrap().to_string();
    s.wait_run_end(&wf_run, Duration::from_secs(60));
    s.drain(Duration::from_millis(200));
    for (method, shape) in &notes {
        if method == "boo/modelCall" {
            // The fake agent calls no model: the proxy's own tests (src/proxy/tests.rs)
            // and the real-qwen tests cover this notification.
            continue;
        }
        let seen: Vec<&Value> = s
            .notes
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, p)| p)
            .collect();
        assert!(!seen.is_empty(), "no {method} was sent during a run");
        if method == "boo/trace" {
            // `start` and `finish` carry different optional parts: check the union.
            assert_has(
                method,
                seen.iter().find(|p| p["phase"] == "finish").unwrap(),
                shape,
            );
        } else if method == "boo/stepUpdated" {
            assert!(seen.iter().any(|p| keys(shape)
                .iter()
                .filter(|(_, o)| !o)
                .all(|(k, _)| p.get(k).is_some())));
        } else {
            assert_has(method, seen[0], shape);
        }
        if method == "boo/runStarted" {
            let inner = shape.split("steps: [").nth(1).unwrap();
            assert_has(
                "runStarted.steps[]",
                &seen[0]["steps"][0],
                &format!("{{{}", inner.trim_start_matches('{')),
            );
        }
    }
    let types = type_shapes(&d);
    let flows = s.request("boo/listFlows", json!({})).unwrap();
    assert_has("Flow", &flows["flows"][0], &types["Flow"]);
    for b in ["small", "medium", "large"] {
        assert!(flows["flows"][0]["bands"][b].is_array());
    }
    assert!(flows["trusted"].is_boolean());
    let rows: BTreeMap<String, String> = requests.iter().cloned().collect();
    let workflows = s.request("boo/listWorkflows", json!({})).unwrap();
    assert_has("boo/listWorkflows", &workflows, &rows["boo/listWorkflows"]);
    assert_has("Workflow", &workflows["workflows"][0], &types["Workflow"]);
    assert!(workflows["workflows"][0]["phases"][0]
        .get("detail")
        .is_some());
    let trust = s
        .request("boo/trustRoot", json!({"root": root, "trusted": false}))
        .unwrap();
    assert_has("boo/trustRoot", &trust, &rows["boo/trustRoot"]);
    assert!(d.contains("`-32005` untrusted root"));
    let runs = s.request("boo/listRuns", json!({})).unwrap();
    assert!(runs.get("next").is_some());
    assert_has("RunSummary", &runs["runs"][0], &types["RunSummary"]);
    let got = s
        .request("boo/getRun", json!({"runId": run_id, "transcript": true}))
        .unwrap();
    assert_has("Run", &got["run"], &types["RunSummary"]);
    assert_has("Run", &got["run"], "{ model, error, usage }");
    for k in [
        "inputTokens",
        "outputTokens",
        "cacheReadTokens",
        "totalTokens",
    ] {
        assert!(got["run"]["usage"].get(k).is_some(), "usage.{k}");
    }
    assert_has("Step", &got["steps"][0], &types["Step"]);
    assert!(
        got["steps"][0].get("transcript").is_some() && got["steps"][0].get("lastSeq").is_some()
    );
    let exported = s
        .request("boo/exportRun", json!({"runId": run_id, "format": "json"}))
        .unwrap();
    assert_has("exportRun", &exported, "{ content, fileName }");
    let traces = s
        .request("boo/getTraces", json!({"runId": run_id, "limit": 1}))
        .unwrap();
    assert_has("Trace", &traces["traces"][0], &types["Trace"]);
    assert!(
        traces["nextCursor"].is_string(),
        "more than one trace: a cursor"
    );
    let page2 = s
        .request(
            "boo/getTraces",
            json!({"runId": run_id, "limit": 1, "cursor": traces["nextCursor"]}),
        )
        .unwrap();
    assert_ne!(
        page2["traces"][0]["traceId"],
        traces["traces"][0]["traceId"]
    );
    // The StreamEvent kinds the document lists are the ones the server sends.
    let mut kinds: Vec<String> = s
        .notes
        .iter()
        .filter(|(m, _)| m == "boo/agentStream")
        .flat_map(|(_, p)| {
            p["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["type"].as_str().unwrap().to_string())
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    for k in &kinds {
        assert!(
            d.contains(&format!("{{ type: \"{k}\"")),
            "the server sends a `{k}` event the document does not list"
        );
    }
    s.stop();
}
