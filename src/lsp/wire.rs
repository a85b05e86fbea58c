//! Wire names and shapes of PROTOCOL.md version 1, in one place.

use crate::catalog::Catalog;
use crate::engine;
use crate::model::{Band, StepKind};
use crate::runner::outbox::FindingDiagnostic;
use serde::Serialize;
use serde_json::{json, Value};

pub const LIST_FLOWS: &str = "boo/listFlows";
pub const LAUNCH_FLOW: &str = "boo/launchFlow";
pub const LIST_RUNS: &str = "boo/listRuns";
pub const GET_RUN: &str = "boo/getRun";
pub const CANCEL_RUN: &str = "boo/cancelRun";
pub const EXPORT_RUN: &str = "boo/exportRun";
pub const GET_TRACES: &str = "boo/getTraces";

/// Internal: stand-ins for frames the input filter refused (never sent by clients).
pub const INVALID_REQUEST: &str = "boo/internal/invalidRequest";
pub const MALFORMED: &str = "boo/internal/malformedMessage";

pub const RUN_STARTED: &str = "boo/runStarted";
pub const STEP_UPDATED: &str = "boo/stepUpdated";
pub const AGENT_STREAM: &str = "boo/agentStream";
pub const TRACE: &str = "boo/trace";

pub const REQUESTS: &[&str] = &[
    LIST_FLOWS,
    LAUNCH_FLOW,
    LIST_RUNS,
    GET_RUN,
    CANCEL_RUN,
    EXPORT_RUN,
    GET_TRACES,
];
pub const NOTIFICATIONS: &[&str] = &[RUN_STARTED, STEP_UPDATED, AGENT_STREAM, TRACE];

macro_rules! notification {
    ($ty:ident, $name:expr) => {
        pub enum $ty {}
        impl tower_lsp_server::ls_types::notification::Notification for $ty {
            type Params = Value;
            const METHOD: &'static str = $name;
        }
    };
}

notification!(RunStartedN, RUN_STARTED);
notification!(StepUpdatedN, STEP_UPDATED);
notification!(AgentStreamN, AGENT_STREAM);
notification!(TraceN, TRACE);
notification!(Progress, "$/progress");
notification!(PublishDiagnostics, "textDocument/publishDiagnostics");

pub enum CreateProgress {}
impl tower_lsp_server::ls_types::request::Request for CreateProgress {
    type Params = Value;
    type Result = Value;
    const METHOD: &'static str = "window/workDoneProgress/create";
}

pub fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `boo/listFlows` result: `{ flows: [Flow], errors: [...] }`.
pub fn flows_json(cat: &Catalog) -> Value {
    let flows: Vec<Value> = cat
        .flows
        .values()
        .map(|f| {
            let mut bands = serde_json::Map::new();
            for b in Band::ALL {
                let ids: Vec<&str> = engine::roster(f, b).iter().map(|s| s.id.as_str()).collect();
                bands.insert(b.as_str().into(), json!(ids));
            }
            let waves: serde_json::Map<String, Value> = Band::ALL
                .iter()
                .filter_map(|b| engine::plan(f, *b).ok().map(|p| (b.as_str().to_string(), json!(p.waves()))))
                .collect();
            json!({
                "name": f.name,
                "title": f.title,
                "category": f.category,
                "description": f.description,
                "bands": bands,
                "waves": waves,
                "agents": f.steps.iter().filter(|s| s.kind == StepKind::Agent).map(|s| json!({"stepId": s.id, "persona": s.agent, "band": s.band, "when": s.when.is_some()})).collect::<Vec<_>>(),
                "source": f.source,
            })
        })
        .collect();
    json!({ "flows": flows, "errors": cat.errors })
}

pub fn diagnostic_json(d: &FindingDiagnostic) -> Value {
    // Error, Warning, Information (never Hint: editors hide hints from problem lists).
    let severity = match d.severity.as_str() {
        "critical" | "high" => 1,
        "medium" => 2,
        _ => 3,
    };
    json!({
        "range": {
            "start": { "line": d.start_line.saturating_sub(1), "character": 0 },
            "end": { "line": d.end_line.saturating_sub(1), "character": u32::MAX / 2 }
        },
        "severity": severity,
        "source": "boo",
        "message": d.message,
        "data": { "runId": d.run_id, "flow": d.flow },
    })
}
