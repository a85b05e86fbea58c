//! How runs end: a step that never ran is recorded as skipped or cancelled; a run is
//! finished with its report and its last notification (a `boo/stepUpdated` of a real
//! step carrying the terminal `runStatus`); a run stopped by an internal error still
//! ends that way, never with a step the roster does not have.

use super::outbox::{Out, ProgressKind, StepUpdated};
use super::report_input::{build_report_input, diagnostics_for, snapshot_note};
use super::scheduler::{end_update, StepFacts};
use super::state::RunState;
use super::Supervisor;
use crate::clock;
use crate::model::{RunStatus, StepStatus, Usage};
use crate::report;
use crate::store::queries::{self, StepEnd};

/// Records the end of a step that never ran and returns it with its (unsent) update.
pub(super) async fn skip_or_cancel(
    sup: &Supervisor,
    state: &RunState,
    step_id: &str,
    status: StepStatus,
    why: &str,
) -> Result<(StepEnd, StepUpdated), String> {
    let end = StepEnd {
        status: Some(status),
        error: Some(why.into()),
        ..Default::default()
    };
    let (rid, sid, row) = (state.run_id.clone(), step_id.to_string(), end.clone());
    let at = sup
        .store
        .call(move |c| queries::finish_step(c, &rid, &sid, &row))
        .await
        .map_err(|e| e.to_string())?;
    let update = match state.step(step_id) {
        Some(s) => end_update(
            &state.run_id,
            step_id,
            &StepFacts {
                performer: &s.step.agent,
                kind: s.step.kind,
                label: &s.step.label,
                wave: s.step.wave,
            },
            &end,
            None,
            at,
        ),
        None => {
            return Err(format!(
                "step {step_id} is not part of run {}",
                state.run_id
            ))
        }
    };
    Ok((end, update))
}

/// Renders the report, ends the run, and sends the run's last notification: the last
/// held end update (or, when none is held, an update of the roster's last step) with
/// `runStatus`, `report`, `runError` and `runUsage` attached. `error` overrides the
/// error derived from the steps.
pub(super) async fn finish_run(
    sup: &Supervisor,
    state: &RunState,
    status: RunStatus,
    held: Vec<StepUpdated>,
    error: Option<String>,
) -> Result<(), String> {
    finish_run_with(sup, state, status, held, error, Ending::default()).await
}

/// What a workflow run adds to its end: the rendered return value (first in the
/// report) and the value itself (on the last notification).
#[derive(Debug, Default)]
pub(super) struct Ending {
    pub report_head: Option<String>,
    pub result: Option<serde_json::Value>,
}

/// [`finish_run`] with a workflow's [`Ending`].
pub(super) async fn finish_run_with(
    sup: &Supervisor,
    state: &RunState,
    status: RunStatus,
    mut held: Vec<StepUpdated>,
    error: Option<String>,
    ending: Ending,
) -> Result<(), String> {
    let id = state.run_id.clone();
    let (row, steps, attachments) = sup
        .store
        .call(move |c| {
            let run = queries::get_run(c, &id)?
                .ok_or_else(|| crate::store::StoreError::Data(format!("run {id} is gone")))?;
            Ok((
                run,
                queries::get_steps(c, &id)?,
                queries::run_attachments(c, &id)?,
            ))
        })
        .await
        .map_err(|e| e.to_string())?;
    // Citations are checked against the snapshot the agents read; the real tree is only
    // compared with it, to tell what changed meanwhile.
    let snapshot = sup.open_snapshot(&state.run_id);
    let (root, steps2, row2) = (state.root.clone(), steps.clone(), row.clone());
    let (input, findings) = tokio::task::spawn_blocking(move || {
        let files = snapshot
            .as_ref()
            .map(|s| s.workdir.clone())
            .unwrap_or_else(|| root.clone());
        let (mut input, findings) =
            build_report_input(&row2, &steps2, &files, status, &attachments);
        input.snapshot = snapshot.as_ref().map(|s| snapshot_note(s, &root));
        (input, findings)
    })
    .await
    .map_err(|e| e.to_string())?;
    let (mut md, js) = (report::render_markdown(&input), report::render_json(&input));
    if let Some(head) = ending.report_head {
        md = format!("{head}\n\n{md}");
    }
    let error = match (status, error) {
        (_, Some(e)) => Some(e),
        (RunStatus::Failed, None) => Some(
            steps
                .iter()
                .find(|s| s.fatal)
                .or_else(|| steps.iter().find(|s| s.step.status == StepStatus::Failed))
                .and_then(|s| {
                    s.step
                        .error
                        .clone()
                        .map(|e| format!("step {} failed: {e}", s.step.step_id))
                })
                .unwrap_or_else(|| "every agent step failed".into()),
        ),
        _ => None,
    };
    let (rid, md2, js2, err2) = (state.run_id.clone(), md.clone(), js.clone(), error.clone());
    let finished_at = sup
        .store
        .call(move |c| {
            queries::finish_run(c, &rid, status, Some(&md2), Some(&js2), err2.as_deref())
        })
        .await
        .map_err(|e| e.to_string())?;
    // The run has ended: its snapshot is no longer read.
    sup.drop_snapshot(&state.run_id).await;
    if status == RunStatus::Completed {
        sup.emit(Out::Findings {
            root: row.run.summary.root.clone(),
            flow: row.run.summary.flow.clone(),
            diagnostics: diagnostics_for(&state.run_id, &row.run.summary.flow, &findings),
        });
    }
    let mut last = held.pop().unwrap_or_else(|| {
        let s = steps.last();
        StepUpdated {
            run_id: state.run_id.clone(),
            step_id: s.map(|s| s.step.step_id.clone()).unwrap_or_default(),
            status: s.map(|s| s.step.status),
            chat_id: s.and_then(|s| s.step.chat_id.clone()),
            ..Default::default()
        }
    });
    for u in held {
        sup.emit(Out::StepUpdated(u));
    }
    sup.emit(Out::Progress {
        run_id: state.run_id.clone(),
        kind: ProgressKind::End {
            message: format!("run {}", status.as_str()),
        },
    });
    let mut total = Usage::default();
    for s in &steps {
        total.add(&Usage {
            input_tokens: s.step.usage.input_tokens,
            output_tokens: s.step.usage.output_tokens,
            cache_read_tokens: s.step.usage.cache_read_tokens,
            total_tokens: s.step.usage.total_tokens,
        });
    }
    last.run_status = Some(status);
    last.report = matches!(status, RunStatus::Completed | RunStatus::Failed).then_some(md);
    last.run_error = error;
    last.run_usage = Some(total.into());
    last.result = ending.result;
    if last.finished_at.is_none() {
        last.finished_at = Some(finished_at);
    }
    sup.emit(Out::StepUpdated(last));
    Ok(())
}

/// Ends a run whose driver stopped on an internal error: the steps that had not ended
/// are cancelled (their agents are already stopped), and the run fails with `message`
/// through the same last notification as any run. When even that cannot be written,
/// the clients still hear the run end, on a step of its roster.
pub(super) async fn fail_on_internal_error(sup: &Supervisor, run_id: &str, message: String) {
    let state = match RunState::load(&sup.store, run_id).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(run = %run_id, "cannot load the run to record its failure: {e}");
            return;
        }
    };
    let mut held = Vec::new();
    for s in state.steps.iter().filter(|s| !s.step.status.is_terminal()) {
        let why = format!("stopped: the run ended on an internal error ({message})");
        match skip_or_cancel(sup, &state, &s.step.step_id, StepStatus::Cancelled, &why).await {
            Ok((_, update)) => held.push(update),
            Err(e) => tracing::error!(run = %run_id, step = %s.step.step_id, "{e}"),
        }
    }
    let fallback = held.last().cloned();
    if let Err(e) = finish_run(sup, &state, RunStatus::Failed, held, Some(message.clone())).await {
        tracing::error!(run = %run_id, "cannot finish the run after an internal error: {e}");
        let id = run_id.to_string();
        let m2 = message.clone();
        let _ = sup
            .store
            .call(move |c| queries::finish_run(c, &id, RunStatus::Failed, None, None, Some(&m2)))
            .await;
        let last = state.steps.last();
        let mut update = fallback.unwrap_or_else(|| StepUpdated {
            run_id: run_id.to_string(),
            step_id: last.map(|s| s.step.step_id.clone()).unwrap_or_default(),
            status: last.map(|s| s.step.status),
            chat_id: last.and_then(|s| s.step.chat_id.clone()),
            ..Default::default()
        });
        update.run_status = Some(RunStatus::Failed);
        update.run_error = Some(message);
        update.finished_at.get_or_insert_with(clock::now_rfc3339);
        sup.emit(Out::StepUpdated(update));
    }
}
