//! A run's live state, held in memory by its driver. It is loaded once when the run
//! starts here (at launch, or on adoption after a restart) and then kept in step with
//! every write the driver and the scheduler make; step outputs are not held — they
//! load on demand, only for the steps a starting step depends on.

use super::report_input::signals_from_output;
use crate::codesteps::CodeFn;
use crate::engine::{Plan, StepState};
use crate::model::{Band, StepKind, StepStatus};
use crate::store::queries::{self, StepEnd, StepRow};
use crate::store::Store;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

pub struct RunState {
    pub run_id: String,
    pub flow: String,
    /// `"flow"`, `"workflow"` or `"agent"` (the run's `meta.kind`).
    pub kind: String,
    pub title: Option<String>,
    pub band: Band,
    pub question: String,
    pub root: PathBuf,
    pub created_at: String,
    pub model: Option<String>,
    /// Fast mode leaves out every signal-gated specialist.
    pub fast: bool,
    /// The user asked to cancel before this server took the run.
    pub cancel_requested: bool,
    pub plan: Plan,
    /// Every step in roster order, without outputs.
    pub steps: Vec<StepRow>,
    /// What completed `signals` steps found.
    pub signals: BTreeMap<String, bool>,
    /// Where each step is in `steps`.
    index: HashMap<String, usize>,
    /// What the engine decides on, kept in step with `steps` (not rebuilt per event).
    states: HashMap<String, StepState>,
    /// How many steps have a terminal status.
    terminal: usize,
}

impl RunState {
    /// Loads a run: its row, its steps without outputs, and the signals its completed
    /// `signals` steps computed (their outputs are the only ones read).
    pub async fn load(store: &Store, run_id: &str) -> Result<RunState, String> {
        let id = run_id.to_string();
        store
            .call(move |c| {
                let row = queries::get_run(c, &id)?
                    .ok_or_else(|| crate::store::StoreError::Data(format!("run {id} is gone")))?;
                let steps = queries::get_step_states(c, &id)?;
                let signal_steps: Vec<String> = steps
                    .iter()
                    .filter(|s| is_signals_step(s) && s.step.status == StepStatus::Completed)
                    .map(|s| s.step.step_id.clone())
                    .collect();
                let outputs = queries::get_step_outputs(c, &id, &signal_steps)?;
                let mut signals = BTreeMap::new();
                for output in outputs.values().flatten() {
                    signals.extend(signals_from_output(output));
                }
                let summary = row.run.summary;
                let index = steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.step.step_id.clone(), i))
                    .collect();
                let states = steps
                    .iter()
                    .map(|s| {
                        (
                            s.step.step_id.clone(),
                            StepState {
                                status: s.step.status,
                                fatal: s.fatal,
                            },
                        )
                    })
                    .collect();
                let terminal = steps.iter().filter(|s| s.step.status.is_terminal()).count();
                Ok(RunState {
                    index,
                    states,
                    terminal,
                    run_id: summary.run_id,
                    flow: summary.flow,
                    kind: row.run.kind,
                    title: row.run.title,
                    band: summary.band,
                    question: summary.question,
                    root: PathBuf::from(summary.root),
                    created_at: summary.created_at,
                    model: row.run.model,
                    fast: row.run.fast,
                    cancel_requested: row.cancel_requested,
                    plan: row.plan,
                    steps,
                    signals,
                })
            })
            .await
            .map_err(|e| e.to_string())
    }

    pub fn step(&self, id: &str) -> Option<&StepRow> {
        self.index.get(id).and_then(|&i| self.steps.get(i))
    }

    /// What the engine decides on.
    pub fn engine_states(&self) -> &HashMap<String, StepState> {
        &self.states
    }

    /// Sets a step's status and fatal flag everywhere the state keeps them.
    fn set(&mut self, id: &str, status: StepStatus, fatal: bool) -> Option<&mut StepRow> {
        let i = *self.index.get(id)?;
        let row = self.steps.get_mut(i)?;
        let was_terminal = row.step.status.is_terminal();
        row.step.status = status;
        row.fatal = fatal;
        self.terminal =
            self.terminal + usize::from(status.is_terminal()) - usize::from(was_terminal);
        self.states
            .insert(id.to_string(), StepState { status, fatal });
        Some(row)
    }

    /// `(step id, status)` of every step, in roster order.
    pub fn statuses(&self) -> Vec<(String, StepStatus)> {
        self.steps
            .iter()
            .map(|s| (s.step.step_id.clone(), s.step.status))
            .collect()
    }

    pub fn terminal_count(&self) -> usize {
        self.terminal
    }

    /// The signals the engine's `when` conditions see (none in fast mode).
    pub fn signals_for_decisions(&self) -> BTreeMap<String, bool> {
        if self.fast {
            BTreeMap::new()
        } else {
            self.signals.clone()
        }
    }

    /// Takes the background children (runtime steps with a parent, not in the plan) out
    /// of the state: the engine decides over the plan only, and the children are
    /// followed by `children::RunChildren` (they come back in their rows' order).
    pub fn take_children(&mut self) -> Vec<StepRow> {
        let plan = &self.plan;
        let (kids, keep): (Vec<StepRow>, Vec<StepRow>) = std::mem::take(&mut self.steps)
            .into_iter()
            .partition(|s| s.step.parent_step_id.is_some() && plan.step(&s.step.step_id).is_none());
        self.steps = keep;
        self.index = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.step.step_id.clone(), i))
            .collect();
        for k in &kids {
            self.states.remove(&k.step.step_id);
        }
        self.terminal = self
            .steps
            .iter()
            .filter(|s| s.step.status.is_terminal())
            .count();
        kids
    }

    pub fn record_start(&mut self, id: &str, chat_id: Option<String>) {
        if let Some(s) = self.set(id, StepStatus::Running, false) {
            s.step.chat_id = chat_id;
            s.step.attempt += 1;
        }
    }

    /// Keeps the state in step with a persisted end; a completed `signals` step's
    /// output adds its signals.
    pub fn record_end(&mut self, id: &str, end: &StepEnd) {
        let status = end.status.unwrap_or(StepStatus::Failed);
        let mut signals = None;
        if let Some(s) = self.set(id, status, end.fatal) {
            s.step.error = end.error.clone();
            if status == StepStatus::Completed && is_signals_step(s) {
                signals = end.output.as_deref().map(signals_from_output);
            }
        }
        if let Some(found) = signals {
            self.signals.extend(found);
        }
    }
}

fn is_signals_step(s: &StepRow) -> bool {
    s.step.kind == StepKind::Code && s.step.agent == CodeFn::Signals.as_str()
}
