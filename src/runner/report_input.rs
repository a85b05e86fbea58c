//! What the report needs from a run: every agent answer parsed, every citation
//! checked against the files, findings merged, the roster with durations and tokens;
//! and the editor diagnostics of the verified findings.

use super::outbox::FindingDiagnostic;
use crate::clock;
use crate::evidence::{self, CheckedFinding, Source, Verdict};
use crate::model::{RunStatus, StepKind, StepStatus, Usage};
use crate::report::{ReportInput, StepSummary};
use crate::store::queries::{self, StepRow};
use std::collections::BTreeMap;
use std::path::Path;

/// Editor diagnostics for the verified findings of a run: one per verified citation.
pub fn diagnostics_for(
    run_id: &str,
    flow: &str,
    findings: &[CheckedFinding],
) -> Vec<FindingDiagnostic> {
    findings
        .iter()
        .filter(|f| f.verdict == Verdict::Verified)
        .flat_map(|f| {
            let who = f
                .sources
                .iter()
                .map(|s| s.agent.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            f.evidence
                .iter()
                .filter(|e| e.ok)
                .map(move |e| FindingDiagnostic {
                    run_id: run_id.to_string(),
                    flow: flow.to_string(),
                    path: e.path.clone(),
                    start_line: e.lines.map(|l| l.0).unwrap_or(1),
                    end_line: e.lines.map(|l| l.1).unwrap_or(1),
                    severity: f.severity.as_str().to_string(),
                    message: format!("[{flow}/{who}] {}: {}", f.title, f.claim),
                })
        })
        .collect()
}

/// The signals a completed `signals` code step computed (its output is JSON with a
/// `signals` object of booleans); nothing for any other output.
pub fn signals_from_output(output: &str) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(output) {
        if let Some(m) = v.get("signals").and_then(|m| m.as_object()) {
            for (k, b) in m {
                out.insert(k.clone(), b.as_bool().unwrap_or(false));
            }
        }
    }
    out
}

/// What the report says about the run's snapshot: when it was taken and what changed in
/// the real tree under `root` since.
pub fn snapshot_note(
    snapshot: &crate::project::snapshot::Snapshot,
    root: &Path,
) -> crate::report::SnapshotNote {
    let (changes, error) = match snapshot.changes_since(root) {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(e.to_string())),
    };
    crate::report::SnapshotNote {
        taken_at: snapshot.manifest.taken_at.clone(),
        retaken: snapshot.manifest.retaken,
        files: snapshot.manifest.files,
        changes,
        error,
    }
}

/// Gathers what the report needs from the run's steps: answers, checked and merged
/// findings. Citations are checked against the files under `root` (the run's snapshot)
/// and the run's `attachments` (images are cited by name).
pub fn build_report_input(
    row: &queries::RunRow,
    steps: &[StepRow],
    root: &Path,
    status: RunStatus,
    attachments: &[crate::attach::AttachmentInfo],
) -> (ReportInput, Vec<CheckedFinding>) {
    let images: Vec<String> = attachments.iter().map(|a| a.name.clone()).collect();
    let mut findings = Vec::new();
    let mut summaries = Vec::new();
    let mut alerts = Vec::new();
    for s in steps {
        let st = &s.step;
        if s.fatal {
            alerts.push(format!(
                "step `{}` ({}) failed the run: {}",
                st.step_id,
                st.agent,
                st.error.clone().unwrap_or_default()
            ));
        }
        let mut answer = None;
        let mut problem = None;
        if st.kind == StepKind::Agent && st.status == StepStatus::Completed {
            let parsed = evidence::parse_answer(st.output.as_deref().unwrap_or_default());
            for f in &parsed.findings {
                let mut checked = evidence::check_finding(
                    root,
                    f,
                    Source {
                        step_id: st.step_id.clone(),
                        agent: st.agent.clone(),
                    },
                );
                evidence::check_images(&mut checked, &images);
                findings.push(checked);
            }
            if !parsed.had_block {
                problem = Some("the answer had no `findings` block".to_string());
            } else {
                problem = parsed.problem.clone();
            }
            if row.plan.answer.contains(&st.step_id) {
                answer = Some(parsed.prose);
            }
        }
        let duration_ms = match (
            st.started_at.as_deref().and_then(clock::parse_ms),
            st.finished_at.as_deref().and_then(clock::parse_ms),
        ) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        summaries.push(StepSummary {
            step_id: st.step_id.clone(),
            agent: st.agent.clone(),
            kind: st.kind,
            label: st.label.clone(),
            wave: st.wave,
            status: st.status,
            duration_ms,
            usage: Usage {
                input_tokens: st.usage.input_tokens,
                output_tokens: st.usage.output_tokens,
                cache_read_tokens: st.usage.cache_read_tokens,
                total_tokens: st.usage.total_tokens,
            },
            error: st.error.clone(),
            answer,
            findings_problem: problem,
        });
    }
    let unsandboxed: Vec<&str> = steps
        .iter()
        .filter(|s| s.step.kind == StepKind::Agent)
        .filter(|s| {
            s.step
                .meta
                .as_ref()
                .and_then(|m| m.get("sandbox"))
                .and_then(|x| x.as_str())
                .is_some_and(|x| x == "unavailable" || x == "partial")
        })
        .map(|s| s.step.step_id.as_str())
        .collect();
    if !unsandboxed.is_empty() {
        alerts.push(format!(
            "sandbox: unavailable — the OS sandbox (Landlock) could not be fully applied on this system for {}; those agents ran with boo's other read-only layers only (set BOO_SANDBOX=required to refuse instead)",
            unsandboxed.join(", ")
        ));
    }
    // The network lock-down (agents connect only to boo's model proxy), when it was off.
    let open_network: Vec<&str> = steps
        .iter()
        .filter(|s| s.step.kind == StepKind::Agent)
        .filter(|s| {
            s.step
                .meta
                .as_ref()
                .and_then(|m| m.get("network"))
                .and_then(|x| x.as_str())
                .is_some_and(|x| x.starts_with("off"))
        })
        .map(|s| s.step.step_id.as_str())
        .collect();
    if !open_network.is_empty() {
        alerts.push(format!(
            "network: the lock-down was off for {} — those agents could open TCP connections beyond boo's model proxy (it needs Landlock ABI 4 and a configured endpoint)",
            open_network.join(", ")
        ));
    }
    let merged = evidence::merge(findings);
    let input = ReportInput {
        run_id: row.run.summary.run_id.clone(),
        flow: row.run.summary.flow.clone(),
        flow_title: row
            .run
            .title
            .clone()
            .unwrap_or(row.run.summary.flow.clone()),
        band: row.run.summary.band.as_str().to_string(),
        kind: row.run.summary.kind.clone(),
        question: row.run.summary.question.clone(),
        status: status.as_str().to_string(),
        alerts,
        steps: summaries,
        findings: merged.clone(),
        snapshot: None,
        attachments: attachments.to_vec(),
    };
    (input, merged)
}
