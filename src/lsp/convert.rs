//! Domain values → wire types (and the few wire values the domain takes back), in
//! one place. Structs are destructured field by field, so a field added to a domain
//! type is a compile error here until the wire decides what to do with it.

use super::ext;
use crate::catalog::Catalog;
use crate::engine;
use crate::model;
use crate::runner::outbox::{self, FindingDiagnostic, ProgressKind};
use tower_lsp_server::ls_types as lsp;

// ---- values ---------------------------------------------------------------

impl From<model::Band> for ext::Band {
    fn from(b: model::Band) -> Self {
        match b {
            model::Band::Small => ext::Band::Small,
            model::Band::Medium => ext::Band::Medium,
            model::Band::Large => ext::Band::Large,
        }
    }
}

impl From<ext::Band> for model::Band {
    fn from(b: ext::Band) -> Self {
        match b {
            ext::Band::Small => model::Band::Small,
            ext::Band::Medium => model::Band::Medium,
            ext::Band::Large => model::Band::Large,
        }
    }
}

impl From<model::Category> for ext::Category {
    fn from(c: model::Category) -> Self {
        match c {
            model::Category::Analysis => ext::Category::Analysis,
            model::Category::Discovery => ext::Category::Discovery,
            model::Category::Planning => ext::Category::Planning,
            model::Category::Authoring => ext::Category::Authoring,
            model::Category::Review => ext::Category::Review,
        }
    }
}

impl From<model::RunStatus> for ext::RunStatus {
    fn from(s: model::RunStatus) -> Self {
        match s {
            model::RunStatus::Running => ext::RunStatus::Running,
            model::RunStatus::Completed => ext::RunStatus::Completed,
            model::RunStatus::Failed => ext::RunStatus::Failed,
            model::RunStatus::Cancelled => ext::RunStatus::Cancelled,
        }
    }
}

impl From<model::StepStatus> for ext::StepStatus {
    fn from(s: model::StepStatus) -> Self {
        match s {
            model::StepStatus::Pending => ext::StepStatus::Pending,
            model::StepStatus::Running => ext::StepStatus::Running,
            model::StepStatus::Completed => ext::StepStatus::Completed,
            model::StepStatus::Failed => ext::StepStatus::Failed,
            model::StepStatus::Skipped => ext::StepStatus::Skipped,
            model::StepStatus::Cancelled => ext::StepStatus::Cancelled,
        }
    }
}

impl From<model::StepKind> for ext::StepKind {
    fn from(k: model::StepKind) -> Self {
        match k {
            model::StepKind::Agent => ext::StepKind::Agent,
            model::StepKind::Code => ext::StepKind::Code,
            model::StepKind::Script => ext::StepKind::Script,
        }
    }
}

impl From<model::TraceOutcome> for ext::TraceOutcome {
    fn from(o: model::TraceOutcome) -> Self {
        match o {
            model::TraceOutcome::Ok => ext::TraceOutcome::Ok,
            model::TraceOutcome::Error => ext::TraceOutcome::Error,
            model::TraceOutcome::Denied => ext::TraceOutcome::Denied,
        }
    }
}

impl From<model::WireUsage> for ext::Usage {
    fn from(u: model::WireUsage) -> Self {
        let model::WireUsage {
            input_tokens,
            output_tokens,
            cache_read_tokens,
            total_tokens,
            cache_hit_rate,
        } = u;
        ext::Usage {
            input_tokens,
            output_tokens,
            cache_read_tokens,
            total_tokens,
            cache_hit_rate,
        }
    }
}

impl From<model::Usage> for ext::Usage {
    fn from(u: model::Usage) -> Self {
        model::WireUsage::from(u).into()
    }
}

impl From<model::StreamEvent> for ext::StreamEvent {
    fn from(e: model::StreamEvent) -> Self {
        match e {
            model::StreamEvent::Text { text } => ext::StreamEvent::Text { text },
            model::StreamEvent::Thinking { text } => ext::StreamEvent::Thinking { text },
            model::StreamEvent::ToolCall {
                tool_call_id,
                name,
                input,
            } => ext::StreamEvent::ToolCall {
                tool_call_id,
                name,
                input,
            },
            model::StreamEvent::ToolResult {
                tool_call_id,
                is_error,
                content,
            } => ext::StreamEvent::ToolResult {
                tool_call_id,
                is_error,
                content,
            },
            model::StreamEvent::MessageComplete { usage, turn } => {
                ext::StreamEvent::MessageComplete {
                    usage: usage.into(),
                    turn,
                }
            }
        }
    }
}

fn events(v: Vec<model::StreamEvent>) -> Vec<ext::StreamEvent> {
    v.into_iter().map(Into::into).collect()
}

// ---- store rows (request results) -------------------------------------------

impl From<model::RunSummary> for ext::RunSummary {
    fn from(s: model::RunSummary) -> Self {
        let model::RunSummary {
            run_id,
            flow,
            band,
            status,
            question,
            root,
            created_at,
            finished_at,
            kind,
        } = s;
        ext::RunSummary {
            run_id,
            flow,
            band: (kind == "flow").then(|| band.into()),
            status: status.into(),
            question,
            root,
            created_at,
            finished_at,
            kind,
        }
    }
}

impl From<ext::RunStatus> for model::RunStatus {
    fn from(s: ext::RunStatus) -> Self {
        match s {
            ext::RunStatus::Running => model::RunStatus::Running,
            ext::RunStatus::Completed => model::RunStatus::Completed,
            ext::RunStatus::Failed => model::RunStatus::Failed,
            ext::RunStatus::Cancelled => model::RunStatus::Cancelled,
        }
    }
}

/// A listed background agent (`boo/listAgents`).
pub fn agent_summary(
    s: model::RunSummary,
    persona: String,
    usage: model::Usage,
) -> ext::AgentSummary {
    let ext::RunSummary {
        run_id,
        flow,
        band,
        status,
        question,
        root,
        created_at,
        finished_at,
        kind,
    } = s.into();
    ext::AgentSummary {
        run_id,
        flow,
        band,
        status,
        question,
        root,
        created_at,
        finished_at,
        kind,
        persona,
        usage: usage.into(),
        parent_run_id: None,
        parent_step_id: None,
    }
}

impl From<model::Run> for ext::Run {
    fn from(r: model::Run) -> Self {
        let model::Run {
            summary,
            model,
            error,
            usage,
            fast,
            title,
            kind,
        } = r;
        let ext::RunSummary {
            run_id,
            flow,
            band,
            status,
            question,
            root,
            created_at,
            finished_at,
            kind: _,
        } = summary.into();
        ext::Run {
            run_id,
            flow,
            band,
            status,
            question,
            root,
            created_at,
            finished_at,
            model,
            error,
            usage: usage.into(),
            fast,
            title,
            kind,
            workflow: None,
            result: None,
            log: None,
            attachments: Vec::new(),
        }
    }
}

/// A step of `boo/getRun`, with the usage of each of its model turns.
pub fn step(s: model::Step, turns: Vec<ext::TurnUsage>) -> ext::Step {
    let model::Step {
        step_id,
        agent,
        kind,
        label,
        wave,
        chat_id,
        status,
        output,
        error,
        started_at,
        finished_at,
        usage,
        attempt,
        meta,
        transcript,
        last_seq,
        parent_step_id,
        phase,
        cache_key,
    } = s;
    let cached = meta
        .as_ref()
        .and_then(|m| m.get("cached"))
        .and_then(|c| c.as_bool())
        == Some(true);
    ext::Step {
        step_id,
        agent,
        kind: kind.into(),
        label,
        wave,
        chat_id,
        status: status.into(),
        output,
        error,
        started_at,
        finished_at,
        usage: usage.into(),
        attempt,
        meta,
        transcript: transcript.map(events),
        last_seq,
        turns,
        parent_step_id,
        phase,
        cache_key,
        cached,
    }
}

/// The workflow catalog as `boo/listWorkflows` sends it.
pub fn workflows(
    cat: &crate::catalog::workflows::WorkflowCatalog,
    trusted: bool,
) -> ext::ListWorkflowsResult {
    use crate::catalog::workflows::WorkflowSource;
    ext::ListWorkflowsResult {
        workflows: cat
            .workflows
            .values()
            .map(|w| ext::Workflow {
                name: w.name.clone(),
                description: w.meta.description.clone(),
                when_to_use: w.meta.when_to_use.clone(),
                phases: w
                    .meta
                    .phases
                    .iter()
                    .map(|p| ext::WorkflowPhase {
                        title: p.title.clone(),
                        detail: p.detail.clone(),
                    })
                    .collect(),
                source: match w.source {
                    WorkflowSource::Builtin => ext::WorkflowSource::Builtin,
                    WorkflowSource::User => ext::WorkflowSource::User,
                    WorkflowSource::Project => ext::WorkflowSource::Project,
                },
                path: w.path.clone(),
            })
            .collect(),
        errors: cat
            .errors
            .iter()
            .map(|e| ext::WorkflowError {
                file: e.file.clone(),
                line: e.line,
                column: e.column,
                message: e.message.clone(),
            })
            .collect(),
        trusted,
    }
}

impl From<model::Trace> for ext::Trace {
    fn from(t: model::Trace) -> Self {
        let model::Trace {
            trace_id,
            run_id,
            step_id,
            chat_id,
            tool,
            tool_call_id,
            turn,
            input,
            output,
            output_bytes,
            started_at,
            finished_at,
            latency_ms,
            outcome,
            error,
            usage,
        } = t;
        ext::Trace {
            trace_id,
            run_id,
            step_id,
            chat_id,
            tool,
            tool_call_id,
            turn,
            input,
            output,
            output_bytes,
            started_at,
            finished_at,
            latency_ms,
            outcome: outcome.map(Into::into),
            error,
            usage: usage.map(Into::into),
        }
    }
}

/// `boo/listFlows`: every flow with its bands, waves and agents, and the catalog's problems.
pub fn flows(cat: &Catalog, trusted: bool) -> ext::ListFlowsResult {
    let flows = cat
        .flows
        .values()
        .map(|f| {
            let ids = |b: model::Band| {
                engine::roster(f, b)
                    .iter()
                    .map(|s| s.id.clone())
                    .collect::<Vec<_>>()
            };
            let waves = |b: model::Band| engine::plan(f, b).ok().map(|p| p.waves());
            ext::Flow {
                name: f.name.clone(),
                title: f.title.clone(),
                category: f.category.into(),
                description: f.description.clone(),
                bands: ext::FlowBands {
                    small: ids(model::Band::Small),
                    medium: ids(model::Band::Medium),
                    large: ids(model::Band::Large),
                },
                waves: ext::FlowWaves {
                    small: waves(model::Band::Small),
                    medium: waves(model::Band::Medium),
                    large: waves(model::Band::Large),
                },
                agents: f
                    .steps
                    .iter()
                    .filter(|s| s.kind == model::StepKind::Agent)
                    .map(|s| ext::FlowAgent {
                        step_id: s.id.clone(),
                        persona: s.agent.clone(),
                        band: s.band.into(),
                        when: s.when.is_some(),
                    })
                    .collect(),
                source: if cat.is_project(&f.name) {
                    ext::FlowSource::Project
                } else {
                    ext::FlowSource::Builtin
                },
                path: f.source.clone(),
            }
        })
        .collect();
    let errors = cat
        .errors
        .iter()
        .map(|e| {
            let crate::catalog::CatalogError {
                file,
                field,
                message,
            } = e.clone();
            ext::CatalogError {
                file,
                field,
                message,
            }
        })
        .collect();
    ext::ListFlowsResult {
        flows,
        errors,
        trusted,
    }
}

// ---- outbox messages (notifications) ----------------------------------------

impl From<outbox::RosterEntry> for ext::StepInfo {
    fn from(e: outbox::RosterEntry) -> Self {
        let outbox::RosterEntry {
            step_id,
            agent,
            kind,
            label,
            wave,
            chat_id,
            status,
        } = e;
        ext::StepInfo {
            step_id,
            agent,
            kind: kind.into(),
            label,
            wave,
            chat_id,
            status: status.into(),
        }
    }
}

impl From<outbox::RunStarted> for ext::RunStartedParams {
    fn from(m: outbox::RunStarted) -> Self {
        let outbox::RunStarted {
            run_id,
            flow,
            band,
            question,
            root,
            status,
            title,
            created_at,
            resumed,
            steps,
        } = m;
        ext::RunStartedParams {
            run_id,
            flow,
            band: band.map(Into::into),
            question,
            root,
            status: status.into(),
            title,
            created_at,
            resumed,
            steps: steps.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<outbox::StepUpdated> for ext::StepUpdatedParams {
    fn from(m: outbox::StepUpdated) -> Self {
        let outbox::StepUpdated {
            run_id,
            step_id,
            status,
            run_status,
            report,
            error,
            run_error,
            started_at,
            finished_at,
            usage,
            run_usage,
            chat_id,
            agent,
            kind,
            label,
            wave,
            output,
            result,
        } = m;
        ext::StepUpdatedParams {
            run_id,
            step_id,
            status: status.map(Into::into),
            run_status: run_status.map(Into::into),
            report,
            error,
            run_error,
            started_at,
            finished_at,
            usage: usage.map(Into::into),
            run_usage: run_usage.map(Into::into),
            chat_id,
            agent,
            kind: kind.map(Into::into),
            label,
            wave,
            output,
            result,
        }
    }
}

impl From<outbox::StepAdded> for ext::StepAddedParams {
    fn from(m: outbox::StepAdded) -> Self {
        ext::StepAddedParams {
            run_id: m.run_id,
            step: ext::AddedStep {
                step_id: m.step_id,
                agent: m.agent,
                kind: m.kind.into(),
                label: m.label,
                phase: m.phase,
                wave: m.wave,
                chat_id: m.chat_id,
                status: m.status.into(),
                cached: m.cached,
                parent_step_id: m.parent_step_id,
            },
        }
    }
}

impl From<outbox::RunLog> for ext::RunLogParams {
    fn from(m: outbox::RunLog) -> Self {
        ext::RunLogParams {
            run_id: m.run_id,
            seq: m.seq,
            kind: m.kind,
            message: m.message,
            at: m.at,
        }
    }
}

impl From<outbox::AgentStream> for ext::AgentStreamParams {
    fn from(m: outbox::AgentStream) -> Self {
        let outbox::AgentStream {
            run_id,
            step_id,
            chat_id,
            seq,
            events: evs,
        } = m;
        ext::AgentStreamParams {
            run_id,
            step_id,
            chat_id,
            seq,
            events: events(evs),
        }
    }
}

impl From<crate::proxy::record::ModelCall> for ext::ModelCall {
    fn from(m: crate::proxy::record::ModelCall) -> Self {
        let segments =
            serde_json::from_value::<Vec<ext::ModelCallSegment>>(m.segments).unwrap_or_default();
        ext::ModelCall {
            call_id: m.call_id,
            run_id: m.run_id,
            step_id: m.step_id,
            chat_id: m.chat_id,
            turn: m.turn,
            started_at: m.started_at,
            finished_at: Some(m.finished_at).filter(|f| !f.is_empty()),
            ttft_ms: m.ttft_ms,
            duration_ms: Some(m.duration_ms),
            status: m.status.map(u32::from),
            error: m.error,
            prompt_tokens: m.prompt_tokens,
            cached_tokens: m.cached_tokens,
            completion_tokens: m.completion_tokens,
            tokens_per_second: m.tokens_per_second,
            cache_dialect: m.cache_dialect,
            request_bytes: m.request_bytes,
            expected_cached_tokens: m.expected_cached_tokens,
            miss_reason: m.miss_reason,
            segments,
        }
    }
}

impl From<outbox::ModelCallNote> for ext::ModelCallParams {
    fn from(n: outbox::ModelCallNote) -> Self {
        let start = n.phase == "start";
        let c = ext::ModelCall::from(n.call);
        ext::ModelCallParams {
            phase: if start {
                ext::ModelCallPhase::Start
            } else {
                ext::ModelCallPhase::Finish
            },
            call_id: c.call_id,
            run_id: c.run_id,
            step_id: c.step_id,
            chat_id: c.chat_id,
            turn: c.turn,
            started_at: c.started_at,
            finished_at: c.finished_at,
            ttft_ms: c.ttft_ms,
            duration_ms: if start { None } else { c.duration_ms },
            status: c.status,
            error: c.error,
            prompt_tokens: c.prompt_tokens,
            cached_tokens: c.cached_tokens,
            completion_tokens: c.completion_tokens,
            tokens_per_second: c.tokens_per_second,
            cache_dialect: c.cache_dialect,
            request_bytes: c.request_bytes,
            expected_cached_tokens: c.expected_cached_tokens,
            miss_reason: c.miss_reason,
            segments: c.segments,
        }
    }
}

impl From<outbox::TraceNote> for ext::TraceParams {
    fn from(m: outbox::TraceNote) -> Self {
        let outbox::TraceNote { phase, trace } = m;
        let phase = match phase {
            "start" => ext::TracePhase::Start,
            "finish" => ext::TracePhase::Finish,
            other => {
                tracing::warn!("a trace note with phase {other:?} is sent as \"finish\"");
                ext::TracePhase::Finish
            }
        };
        let ext::Trace {
            trace_id,
            run_id,
            step_id,
            chat_id,
            tool,
            tool_call_id,
            turn,
            input,
            output,
            output_bytes,
            started_at,
            finished_at,
            latency_ms,
            outcome,
            error,
            usage,
        } = trace.into();
        ext::TraceParams {
            phase,
            trace_id,
            run_id,
            step_id,
            chat_id,
            tool,
            tool_call_id,
            turn,
            input,
            output,
            output_bytes,
            started_at,
            finished_at,
            latency_ms,
            outcome,
            error,
            usage,
        }
    }
}

/// A verified finding as an LSP diagnostic: Error, Warning or Information (never
/// Hint: editors hide hints from problem lists).
pub fn diagnostic(d: &FindingDiagnostic) -> lsp::Diagnostic {
    let FindingDiagnostic {
        run_id,
        flow,
        path: _,
        start_line,
        end_line,
        severity,
        message,
    } = d;
    let severity = match severity.as_str() {
        "critical" | "high" => lsp::DiagnosticSeverity::ERROR,
        "medium" => lsp::DiagnosticSeverity::WARNING,
        _ => lsp::DiagnosticSeverity::INFORMATION,
    };
    lsp::Diagnostic {
        range: lsp::Range {
            start: lsp::Position::new(start_line.saturating_sub(1), 0),
            end: lsp::Position::new(end_line.saturating_sub(1), u32::MAX / 2),
        },
        severity: Some(severity),
        source: Some("boo".into()),
        message: message.clone(),
        data: Some(serde_json::json!({ "runId": run_id, "flow": flow })),
        ..Default::default()
    }
}

/// A run's progress as standard work-done progress.
pub fn progress(kind: ProgressKind) -> lsp::WorkDoneProgress {
    match kind {
        ProgressKind::Begin { title, message } => {
            lsp::WorkDoneProgress::Begin(lsp::WorkDoneProgressBegin {
                title,
                cancellable: Some(false),
                message: Some(message),
                percentage: Some(0),
            })
        }
        ProgressKind::Report {
            message,
            percentage,
        } => lsp::WorkDoneProgress::Report(lsp::WorkDoneProgressReport {
            cancellable: None,
            message: Some(message),
            percentage: Some(percentage),
        }),
        ProgressKind::End { message } => lsp::WorkDoneProgress::End(lsp::WorkDoneProgressEnd {
            message: Some(message),
        }),
    }
}

/// A run's attachment on the wire.
pub fn attachment(a: crate::attach::AttachmentInfo) -> ext::Attachment {
    let crate::attach::AttachmentInfo {
        attachment_id,
        name,
        mime_type,
        bytes,
        sha256,
        width,
        height,
    } = a;
    ext::Attachment {
        attachment_id,
        name,
        mime_type,
        bytes,
        sha256,
        width,
        height,
    }
}

/// Launch attachments from the wire (`lsp/params.rs` has checked each is
/// `{ name, mimeType?, data }` or `{ path }`).
pub fn launch_attachments(
    given: Option<Vec<ext::LaunchAttachment>>,
) -> Vec<crate::attach::AttachmentInput> {
    given
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            let ext::LaunchAttachment {
                name,
                mime_type,
                data,
                path,
            } = a;
            match (data, path) {
                (Some(data), _) => crate::attach::AttachmentInput::Inline {
                    name: name.unwrap_or_default(),
                    mime_type,
                    data,
                },
                (None, path) => crate::attach::AttachmentInput::Path(std::path::PathBuf::from(
                    path.unwrap_or_default(),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The domain types still serialize to the wire shape they always had: the wire
    //! types must send exactly the same JSON for them.
    use super::*;
    use crate::model::{StreamEvent, WireUsage};
    use serde::Serialize;
    use serde_json::json;

    fn same<D: Serialize, W: Serialize + From<D>>(domain: D) {
        let before = serde_json::to_value(&domain).unwrap();
        let after = serde_json::to_value(W::from(domain)).unwrap();
        assert_eq!(before, after);
    }

    fn usage() -> WireUsage {
        WireUsage::from(model::Usage {
            input_tokens: 100,
            output_tokens: 20,
            cache_read_tokens: 60,
            total_tokens: 120,
        })
    }

    fn events() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Text { text: "a".into() },
            StreamEvent::Thinking { text: "b".into() },
            StreamEvent::ToolCall {
                tool_call_id: "t".into(),
                name: "glob".into(),
                input: json!({"pattern": "*"}),
            },
            StreamEvent::ToolResult {
                tool_call_id: "t".into(),
                is_error: false,
                content: "x".into(),
            },
            StreamEvent::MessageComplete {
                usage: usage(),
                turn: 2,
            },
        ]
    }

    fn trace(full: bool) -> model::Trace {
        model::Trace {
            trace_id: "tr".into(),
            run_id: "r".into(),
            step_id: "s".into(),
            chat_id: "c".into(),
            tool: "glob".into(),
            tool_call_id: "t".into(),
            turn: 1,
            input: json!({"pattern": "*"}),
            output: full.then(|| "out".into()),
            output_bytes: full.then_some(3),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: full.then(|| "2026-01-01T00:00:01.000Z".into()),
            latency_ms: full.then_some(1000),
            outcome: full.then_some(model::TraceOutcome::Denied),
            error: full.then(|| "no".into()),
            usage: full.then(usage),
        }
    }

    fn summary(full: bool) -> model::RunSummary {
        model::RunSummary {
            run_id: "r".into(),
            flow: "code-review".into(),
            band: model::Band::Medium,
            status: model::RunStatus::Cancelled,
            question: "q".into(),
            root: "/p".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: full.then(|| "2026-01-01T00:00:09.000Z".into()),
            kind: "flow".into(),
        }
    }

    #[test]
    fn notifications_send_what_the_outbox_messages_serialize_to() {
        for kind in [model::StepKind::Agent, model::StepKind::Code] {
            same::<_, ext::RunStartedParams>(outbox::RunStarted {
                run_id: "r".into(),
                flow: "code-review".into(),
                band: Some(model::Band::Large),
                question: "q".into(),
                root: "/p".into(),
                status: model::RunStatus::Running,
                title: "Code review".into(),
                created_at: "2026-01-01T00:00:00.000Z".into(),
                resumed: true,
                steps: vec![outbox::RosterEntry {
                    step_id: "s".into(),
                    agent: "a".into(),
                    kind,
                    label: "l".into(),
                    wave: 2,
                    chat_id: Some("c".into()),
                    status: model::StepStatus::Skipped,
                }],
            });
        }
        same::<_, ext::StepUpdatedParams>(outbox::StepUpdated::default());
        same::<_, ext::StepUpdatedParams>(outbox::StepUpdated {
            run_id: "r".into(),
            step_id: "s".into(),
            status: Some(model::StepStatus::Completed),
            run_status: Some(model::RunStatus::Completed),
            report: Some("# r".into()),
            error: Some("e".into()),
            run_error: Some("re".into()),
            started_at: Some("t0".into()),
            finished_at: Some("t1".into()),
            usage: Some(usage()),
            run_usage: Some(WireUsage::default()),
            chat_id: Some("c".into()),
            agent: Some("a".into()),
            kind: Some(model::StepKind::Code),
            label: Some("l".into()),
            wave: Some(3),
            output: Some("o".into()),
            result: Some(serde_json::json!({"k": [1]})),
        });
        same::<_, ext::AgentStreamParams>(outbox::AgentStream {
            run_id: "r".into(),
            step_id: "s".into(),
            chat_id: "c".into(),
            seq: 4,
            events: events(),
        });
        for full in [true, false] {
            for phase in ["start", "finish"] {
                same::<_, ext::TraceParams>(outbox::TraceNote {
                    phase,
                    trace: trace(full),
                });
            }
        }
    }

    #[test]
    fn results_send_what_the_store_rows_serialize_to() {
        for full in [true, false] {
            same::<_, ext::RunSummary>(summary(full));
            same::<_, ext::Trace>(trace(full));
            // `attachments` comes from its own table (`boo/getRun` fills it in).
            let run = model::Run {
                summary: summary(full),
                model: full.then(|| "m".into()),
                error: full.then(|| "e".into()),
                usage: usage(),
                fast: full,
                title: full.then(|| "t".into()),
                kind: "flow".into(),
            };
            let mut before = serde_json::to_value(&run).unwrap();
            before["attachments"] = json!([]);
            assert_eq!(before, serde_json::to_value(ext::Run::from(run)).unwrap());
            let step = model::Step {
                step_id: "s".into(),
                agent: "a".into(),
                kind: model::StepKind::Agent,
                label: "l".into(),
                wave: 1,
                chat_id: full.then(|| "c".into()),
                status: model::StepStatus::Failed,
                output: full.then(|| "o".into()),
                error: full.then(|| "e".into()),
                started_at: full.then(|| "t0".into()),
                finished_at: full.then(|| "t1".into()),
                usage: usage(),
                attempt: 2,
                meta: full.then(|| json!({"qwenVersion": "0.24.4"})),
                transcript: full.then(events),
                last_seq: full.then_some(9),
                parent_step_id: full.then(|| "p".into()),
                phase: full.then(|| "Leads".into()),
                cache_key: full.then(|| "k".into()),
            };
            // boo/getRun sent each step with its `turns` added, and `cached` (from
            // the meta; false here).
            let mut before = serde_json::to_value(&step).unwrap();
            before["turns"] = json!([{ "turn": 1, "usage": usage() }]);
            before["cached"] = json!(false);
            let turns = vec![ext::TurnUsage {
                turn: 1,
                usage: usage().into(),
            }];
            assert_eq!(
                before,
                serde_json::to_value(super::step(step, turns)).unwrap()
            );
        }
        for e in events() {
            same::<_, ext::StreamEvent>(e);
        }
    }

    #[test]
    fn flows_keep_their_shape() {
        let cat = Catalog::builtin(None);
        let got = serde_json::to_value(flows(&cat, false)).unwrap();
        let f = &got["flows"][0];
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "agents",
                "bands",
                "category",
                "description",
                "name",
                "path",
                "source",
                "title",
                "waves"
            ]
        );
        assert!(f["bands"]["small"].is_array() && f["waves"]["small"].is_u64());
        let a = &f["agents"][0];
        assert!(a["stepId"].is_string() && a["persona"].is_string() && a["when"].is_boolean());
        assert!(got["errors"].is_array());
        assert_eq!(f["source"], "builtin");
        assert_eq!(got["trusted"], false);
    }

    #[test]
    fn diagnostics_and_progress_keep_their_shape() {
        let d = diagnostic(&FindingDiagnostic {
            run_id: "r".into(),
            flow: "code-review".into(),
            path: "src/a.rs".into(),
            start_line: 3,
            end_line: 4,
            severity: "high".into(),
            message: "m".into(),
        });
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            json!({
                "range": {
                    "start": { "line": 2, "character": 0 },
                    "end": { "line": 3, "character": u32::MAX / 2 }
                },
                "severity": 1,
                "source": "boo",
                "message": "m",
                "data": { "runId": "r", "flow": "code-review" },
            })
        );
        let begin = progress(ProgressKind::Begin {
            title: "t".into(),
            message: "m".into(),
        });
        assert_eq!(
            serde_json::to_value(begin).unwrap(),
            json!({ "kind": "begin", "title": "t", "message": "m", "cancellable": false, "percentage": 0 })
        );
        let report = progress(ProgressKind::Report {
            message: "m".into(),
            percentage: 40,
        });
        assert_eq!(
            serde_json::to_value(report).unwrap(),
            json!({ "kind": "report", "message": "m", "percentage": 40 })
        );
        let end = progress(ProgressKind::End {
            message: "m".into(),
        });
        assert_eq!(
            serde_json::to_value(end).unwrap(),
            json!({ "kind": "end", "message": "m" })
        );
    }
}
