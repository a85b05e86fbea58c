//! The flow driver: the engine loop of one flow run, and nothing else. It asks the
//! engine what to do next (`Skip` / `Start` / `Wait` / `Finish`) over the run's
//! in-memory state, starts steps only through the scheduler, and holds each step's end
//! update until it knows whether the run ends with it (the run's last notification
//! carries the terminal `runStatus`).

use super::finish::{finish_run, skip_or_cancel};
use super::outbox::{Out, ProgressKind, RosterEntry, RunStarted, StepUpdated};
use super::prompt::{agent_prompts, EarlierStep};
use super::scheduler::{
    AttachmentChoice, Origin, RunCtx, StartError, StepEnded, StepSpec, StepWork,
};
use super::scope::{RunScope, StopReason};
use super::state::RunState;
use super::Supervisor;
use crate::codesteps::{CodeFn, DepOutput};
use crate::engine::{self, Decision, PlannedStep, SkipReason};
use crate::model::{RunStatus, StepKind, StepStatus};
use crate::store::queries;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Drives a flow run until it ends here: finished, or handed over (lease lost,
/// shutdown) with its state left for the next owner.
pub(super) async fn drive(
    sup: &Arc<Supervisor>,
    run_id: &str,
    resumed: bool,
    scope: RunScope,
) -> Result<(), String> {
    let mut state = RunState::load(&sup.store, run_id).await?;
    if state.cancel_requested {
        scope.stop(StopReason::UserCancel);
    }
    // Background children a previous owner started are not in the roster: each comes
    // back under its parent with `boo/stepAdded` once the run's context exists.
    let child_rows = state.take_children();
    announce(sup, &state, resumed);
    let workdir = sup.run_snapshot(run_id, &state.root).await?.workdir;
    let ctx = sup.scheduler.run_ctx(
        run_id,
        state.root.clone(),
        workdir,
        state.model.clone(),
        scope.clone(),
    );
    let children = sup.adopt_children(&ctx, child_rows).await;
    let result = drive_loop(sup, run_id, &mut state, &ctx, &children).await;
    sup.forget_children(run_id);
    result
}

/// The engine loop of [`drive`].
async fn drive_loop(
    sup: &Arc<Supervisor>,
    run_id: &str,
    state: &mut RunState,
    ctx: &RunCtx,
    children: &super::children::RunChildren,
) -> Result<(), String> {
    let scope = ctx.scope.clone();
    let total = state.steps.len();
    let mut tasks: JoinSet<StepEnded> = JoinSet::new();
    // End updates not sent yet: the last one may carry the run's terminal status.
    let mut held: Vec<StepUpdated> = Vec::new();
    let mut stop_seen = false;
    loop {
        if scope.hands_over() {
            while tasks.join_next().await.is_some() {}
            return Ok(());
        }
        let cancelling = scope.is_stopped();
        let decision = engine::decide(
            &state.plan,
            state.engine_states(),
            &state.signals_for_decisions(),
            cancelling,
        );
        match decision {
            Decision::Skip(ids) => {
                for (id, reason) in ids {
                    let why = match reason {
                        SkipReason::InputsFailed => "skipped: every agent step it builds on failed, so it would only repeat their failure",
                        SkipReason::Condition if state.fast => "skipped: fast mode leaves out signal-gated specialists",
                        SkipReason::Condition => "skipped: its condition (`when`) is false for this project",
                    };
                    let (end, update) =
                        skip_or_cancel(sup, state, &id, StepStatus::Skipped, why).await?;
                    state.record_end(&id, &end);
                    held.push(update);
                }
            }
            Decision::Start(ids) => {
                flush(sup, &mut held);
                for id in ids {
                    let Some(planned) = state.plan.step(&id).cloned() else {
                        continue;
                    };
                    let spec = step_spec(sup, state, &planned).await?;
                    match sup.scheduler.start_step(ctx, spec).await {
                        Ok(handle) => {
                            state.record_start(&id, handle.chat_id.clone());
                            tasks.spawn(handle);
                        }
                        Err(StartError::NotOwned) => {
                            tracing::warn!(run = %run_id, step = %id, "lost the run's lease; another server owns it now");
                            scope.stop(StopReason::LeaseLost);
                            break;
                        }
                        Err(StartError::Stopped) => break,
                        Err(e @ StartError::Store(_)) => return Err(e.to_string()),
                    }
                }
            }
            Decision::Wait => {
                flush(sup, &mut held);
                tokio::select! {
                    joined = tasks.join_next() => {
                        let Some(joined) = joined else {
                            return Err("the run waits for steps that are not running".into());
                        };
                        let ended = joined.map_err(|e| format!("a step task failed: {e}"))?;
                        let Some(update) = ended.update else {
                            // Handed over: nothing was recorded; the loop returns.
                            continue;
                        };
                        state.record_end(&ended.step_id, &ended.end);
                        held.push(update);
                        let done = state.terminal_count();
                        sup.emit(Out::Progress {
                            run_id: run_id.to_string(),
                            kind: ProgressKind::Report {
                                message: format!("{done}/{total} steps"),
                                percentage: ((done * 100) / total.max(1)) as u32,
                            },
                        });
                    }
                    _ = scope.stopped(), if !stop_seen => {
                        // A cancel or a hand-over: the next decision handles it.
                        stop_seen = true;
                    }
                }
            }
            Decision::Finish(mut status) => {
                // The run ends only after its background children: a child still
                // running when its parent step ended keeps running until here.
                if children.running_count() > 0 {
                    flush(sup, &mut held);
                    if !children.wait_all(&scope).await {
                        return Ok(());
                    }
                    if scope.is_stopped() && !scope.hands_over() {
                        status = RunStatus::Cancelled;
                    }
                }
                // Every step ends in a terminal status: the ones that never ran (a
                // cancel, or a fatal step that stopped the run) are cancelled.
                for id in engine::to_cancel(&state.statuses()) {
                    let why = if status == RunStatus::Cancelled {
                        "cancelled before it ran"
                    } else {
                        "not run: an earlier step failed the whole run"
                    };
                    let (end, update) =
                        skip_or_cancel(sup, state, &id, StepStatus::Cancelled, why).await?;
                    state.record_end(&id, &end);
                    held.push(update);
                }
                finish_run(sup, state, status, held, None).await?;
                return Ok(());
            }
        }
    }
}

/// `boo/runStarted` (the roster, each agent step with its current chat) and the
/// start of the run's `$/progress`.
fn announce(sup: &Supervisor, state: &RunState, resumed: bool) {
    sup.emit(Out::RunStarted(RunStarted {
        run_id: state.run_id.clone(),
        flow: state.flow.clone(),
        // An agent run has no band.
        band: (state.kind == "flow").then_some(state.band),
        question: state.question.clone(),
        root: state.root.display().to_string(),
        status: RunStatus::Running,
        title: state.title.clone().unwrap_or_default(),
        created_at: state.created_at.clone(),
        resumed,
        steps: state
            .steps
            .iter()
            .map(|s| RosterEntry {
                step_id: s.step.step_id.clone(),
                agent: s.step.agent.clone(),
                kind: s.step.kind,
                label: s.step.label.clone(),
                wave: s.step.wave,
                chat_id: s.step.chat_id.clone(),
                status: s.step.status,
            })
            .collect(),
    }));
    sup.emit(Out::Progress {
        run_id: state.run_id.clone(),
        kind: ProgressKind::Begin {
            title: format!("boo: {}", state.title.clone().unwrap_or(state.flow.clone())),
            message: format!("{}/{} steps", state.terminal_count(), state.steps.len()),
        },
    });
}

fn flush(sup: &Supervisor, held: &mut Vec<StepUpdated>) {
    for u in held.drain(..) {
        sup.emit(Out::StepUpdated(u));
    }
}

/// The scheduler's spec of a planned step, with its dependencies' outputs loaded now
/// (and only theirs).
async fn step_spec(
    sup: &Supervisor,
    state: &RunState,
    planned: &PlannedStep,
) -> Result<StepSpec, String> {
    let (rid, ids) = (state.run_id.clone(), planned.after.clone());
    let mut outputs: HashMap<String, Option<String>> = sup
        .store
        .call(move |c| queries::get_step_outputs(c, &rid, &ids))
        .await
        .map_err(|e| e.to_string())?;
    let work = match planned.kind {
        StepKind::Script => {
            return Err(format!(
                "step {} is a script step, which only workflow runs have",
                planned.id
            ))
        }
        // Code steps see their inputs in roster order; agents in `after` order.
        StepKind::Code => StepWork::Code {
            function: CodeFn::parse(&planned.agent).map_err(|e| e.to_string())?,
            args: planned.args.clone(),
            inputs: state
                .steps
                .iter()
                .filter(|s| planned.after.contains(&s.step.step_id))
                .map(|d| DepOutput {
                    step_id: d.step.step_id.clone(),
                    agent: d.step.agent.clone(),
                    is_agent: d.step.kind == StepKind::Agent,
                    completed: d.step.status == StepStatus::Completed,
                    output: outputs
                        .remove(&d.step.step_id)
                        .flatten()
                        .unwrap_or_default(),
                })
                .collect(),
        },
        StepKind::Agent => {
            let earlier: Vec<EarlierStep> = planned
                .after
                .iter()
                .filter_map(|d| state.step(d))
                .map(|d| EarlierStep {
                    step_id: d.step.step_id.clone(),
                    label: d.step.label.clone(),
                    status: d.step.status,
                    output: outputs
                        .remove(&d.step.step_id)
                        .flatten()
                        .unwrap_or_default(),
                    is_diff: d.step.kind == StepKind::Code
                        && d.step.agent == CodeFn::GitDiff.as_str(),
                })
                .collect();
            StepWork::Agent {
                persona: planned.agent.clone(),
                prompts: agent_prompts(&planned.prompt, &state.question, &earlier),
                attachments: if planned.attachments {
                    AttachmentChoice::All
                } else {
                    AttachmentChoice::Nothing
                },
                spawn: planned.spawn,
            }
        }
    };
    Ok(StepSpec {
        step_id: planned.id.clone(),
        label: planned.label.clone(),
        wave: planned.wave,
        work,
        origin: Origin::Plan,
        parent_step_id: None,
        phase: None,
        cache_key: None,
        meta: None,
    })
}
