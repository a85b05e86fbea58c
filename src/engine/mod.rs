//! The pure core: plan a flow for a band, decide what happens next, reconcile after a
//! restart. No IO, no clocks, no async: plain data in, plain data out.

pub mod cond;

use crate::model::{Band, Category, RunStatus, StepKind, StepStatus};
pub use cond::Cond;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A validated flow definition (what `flows/<name>.toml` describes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowDef {
    pub name: String,
    pub title: String,
    pub category: Category,
    pub description: String,
    /// Steps whose prose leads the report; empty = the last wave's agent steps.
    pub answer: Vec<String>,
    pub steps: Vec<StepDef>,
    /// Where the definition came from (`builtin:flows/x.toml` or a path).
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDef {
    pub id: String,
    pub kind: StepKind,
    /// Persona name for agent steps, function name for code steps.
    pub agent: String,
    pub label: String,
    pub after: Vec<String>,
    /// The smallest band that runs this step.
    pub band: Band,
    pub when: Option<Cond>,
    /// Agent steps: the step's task text. Code steps: empty.
    pub prompt: String,
    /// Code steps: the function's arguments.
    pub args: serde_json::Value,
    /// Agent steps: whether the run's attached images go with the prompts
    /// (`attachments = false` in the flow file leaves them out).
    pub attachments: bool,
    /// Agent steps: the agent may hand work to background children through boo's
    /// MCP tools (`spawn = true` in the flow file).
    pub spawn: bool,
}

/// A step as planned for one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub id: String,
    pub kind: StepKind,
    /// Who performs the step: a persona name (agent steps) or a `codesteps::CodeFn`
    /// name (code steps). Named `agent` because the stored plans and the wire's `Step`
    /// call it that; the scheduler turns it into a typed `StepWork` before dispatch.
    pub agent: String,
    pub label: String,
    /// 1-based dependency level.
    pub wave: u32,
    pub after: Vec<String>,
    pub when: Option<Cond>,
    pub prompt: String,
    pub args: serde_json::Value,
    /// Whether the run's attached images go with the prompts (plans stored before
    /// attachments existed read as `true`).
    #[serde(default = "yes")]
    pub attachments: bool,
    /// The agent gets boo's MCP tools to spawn background children (plans stored
    /// before spawning existed read as `false`).
    #[serde(default)]
    pub spawn: bool,
}

fn yes() -> bool {
    true
}

/// The roster and waves of a flow for a band. Stored with the run so a resumed run
/// follows exactly the plan it started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub flow: String,
    pub band: Band,
    pub steps: Vec<PlannedStep>,
    pub answer: Vec<String>,
}

impl Plan {
    pub fn step(&self, id: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.id == id)
    }
    pub fn waves(&self) -> u32 {
        self.steps.iter().map(|s| s.wave).max().unwrap_or(0)
    }
}

/// Steps of `flow` that join `band`, in definition order.
pub fn roster(flow: &FlowDef, band: Band) -> Vec<&StepDef> {
    flow.steps.iter().filter(|s| s.band <= band).collect()
}

/// Plans `flow` for `band`. A dependency on a step of a larger band is optional: it is
/// dropped in the bands that do not run that step (so a synthesizer can read the
/// specialists that joined). Fails only on definitions the loader refuses (unknown
/// dependency, cycle).
pub fn plan(flow: &FlowDef, band: Band) -> Result<Plan, String> {
    let all: BTreeMap<&str, Band> = flow.steps.iter().map(|s| (s.id.as_str(), s.band)).collect();
    let steps: Vec<StepDef> = roster(flow, band)
        .into_iter()
        .map(|s| {
            let mut s = s.clone();
            s.after
                .retain(|d| all.get(d.as_str()).is_none_or(|b| *b <= band));
            s
        })
        .collect();
    let ids: BTreeSet<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    let waves = levels(steps.iter().map(|s| (s.id.as_str(), s.after.as_slice())))?;
    let planned = steps
        .iter()
        .map(|s| PlannedStep {
            id: s.id.clone(),
            kind: s.kind,
            agent: s.agent.clone(),
            label: s.label.clone(),
            wave: waves[s.id.as_str()],
            after: s.after.clone(),
            when: s.when.clone(),
            prompt: s.prompt.clone(),
            args: s.args.clone(),
            attachments: s.attachments,
            spawn: s.spawn,
        })
        .collect::<Vec<_>>();
    let last = planned.iter().map(|s| s.wave).max().unwrap_or(0);
    let answer = if flow.answer.iter().any(|a| ids.contains(a.as_str())) {
        flow.answer
            .iter()
            .filter(|a| ids.contains(a.as_str()))
            .cloned()
            .collect()
    } else {
        planned
            .iter()
            .filter(|s| s.wave == last && s.kind == StepKind::Agent)
            .map(|s| s.id.clone())
            .collect()
    };
    Ok(Plan {
        flow: flow.name.clone(),
        band,
        steps: planned,
        answer,
    })
}

/// Dependency levels (1-based). Errors name a step on a cycle.
pub fn levels<'a>(
    steps: impl Iterator<Item = (&'a str, &'a [String])>,
) -> Result<HashMap<&'a str, u32>, String> {
    let deps: BTreeMap<&str, &[String]> = steps.collect();
    let mut level: HashMap<&str, u32> = HashMap::new();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut mark: HashMap<&str, u8> = HashMap::new();
    fn visit<'a>(
        id: &'a str,
        deps: &BTreeMap<&'a str, &'a [String]>,
        level: &mut HashMap<&'a str, u32>,
        mark: &mut HashMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Result<u32, String> {
        match mark.get(id) {
            Some(2) => return Ok(level[id]),
            Some(1) => {
                let start = path.iter().position(|p| *p == id).unwrap_or(0);
                let mut cycle: Vec<&str> = path[start..].to_vec();
                cycle.push(id);
                return Err(format!("dependency cycle: {}", cycle.join(" -> ")));
            }
            _ => {}
        }
        mark.insert(id, 1);
        path.push(id);
        let mut lv = 1;
        if let Some(ds) = deps.get(id) {
            for d in ds.iter() {
                let Some((key, _)) = deps.get_key_value(d.as_str()) else {
                    return Err(format!("step {id:?} depends on unknown step {d:?}"));
                };
                lv = lv.max(visit(key, deps, level, mark, path)? + 1);
            }
        }
        path.pop();
        mark.insert(id, 2);
        level.insert(id, lv);
        Ok(lv)
    }
    let keys: Vec<&str> = deps.keys().copied().collect();
    for id in keys {
        visit(id, &deps, &mut level, &mut mark, &mut Vec::new())?;
    }
    Ok(level)
}

/// What the engine knows about one step of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepState {
    pub status: StepStatus,
    /// The step failed in a way that must fail the whole run (e.g. the project was modified).
    pub fatal: bool,
}

/// Why a step does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Its `when` condition is false (or fast mode leaves it out).
    Condition,
    /// Every agent step it builds on failed: running it would only repeat the failure.
    InputsFailed,
}

/// The agent steps a step reads, directly or through code steps.
fn agent_inputs<'a>(
    by_id: &HashMap<&str, &'a PlannedStep>,
    step: &PlannedStep,
) -> Vec<&'a PlannedStep> {
    let mut out: Vec<&PlannedStep> = Vec::new();
    let mut stack: Vec<&str> = step.after.iter().map(String::as_str).collect();
    let mut seen = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(d) = by_id.get(id).copied() else {
            continue;
        };
        match d.kind {
            StepKind::Agent => out.push(d),
            StepKind::Code => stack.extend(d.after.iter().map(String::as_str)),
            StepKind::Script => {}
        }
    }
    out
}

/// What the runner should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Mark these steps skipped, then ask again.
    Skip(Vec<(String, SkipReason)>),
    /// Start these steps (all of the current wave that are pending).
    Start(Vec<String>),
    /// Steps are running: wait for one to end.
    Wait,
    /// Every step is terminal: render the report and end the run with this status.
    Finish(RunStatus),
}

/// Decides the next move of a run. Waves run one after the other; within a wave every
/// step may run at once (the runner bounds agent parallelism).
pub fn decide(
    plan: &Plan,
    states: &HashMap<String, StepState>,
    signals: &BTreeMap<String, bool>,
    cancel_requested: bool,
) -> Decision {
    let status = |id: &str| {
        states
            .get(id)
            .map(|s| s.status)
            .unwrap_or(StepStatus::Pending)
    };
    let any_running = plan
        .steps
        .iter()
        .any(|s| status(&s.id) == StepStatus::Running);
    if cancel_requested {
        return if any_running {
            Decision::Wait
        } else {
            Decision::Finish(RunStatus::Cancelled)
        };
    }
    if plan
        .steps
        .iter()
        .any(|s| states.get(&s.id).is_some_and(|st| st.fatal))
    {
        return if any_running {
            Decision::Wait
        } else {
            Decision::Finish(RunStatus::Failed)
        };
    }
    let current = plan
        .steps
        .iter()
        .filter(|s| !status(&s.id).is_terminal())
        .map(|s| s.wave)
        .min();
    let Some(wave) = current else {
        return Decision::Finish(outcome(plan, states));
    };
    let pending: Vec<&PlannedStep> = plan
        .steps
        .iter()
        .filter(|s| s.wave == wave && status(&s.id) == StepStatus::Pending)
        .collect();
    // Built once per decision: looking steps up stays linear in the plan's size.
    let by_id: HashMap<&str, &PlannedStep> =
        plan.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let skip: Vec<(String, SkipReason)> = pending
        .iter()
        .filter_map(|s| {
            if s.when.as_ref().is_some_and(|c| !c.eval(signals)) {
                return Some((s.id.clone(), SkipReason::Condition));
            }
            if s.kind != StepKind::Agent {
                return None;
            }
            // An agent whose every agent input failed would only repeat the failure
            // (a dead endpoint, a broken CLI): skip it. Skipped inputs do not count.
            let inputs: Vec<StepStatus> = agent_inputs(&by_id, s)
                .iter()
                .map(|d| status(&d.id))
                .filter(|st| *st != StepStatus::Skipped)
                .collect();
            let starved = !inputs.is_empty() && inputs.iter().all(|st| *st == StepStatus::Failed);
            starved.then(|| (s.id.clone(), SkipReason::InputsFailed))
        })
        .collect();
    if !skip.is_empty() {
        return Decision::Skip(skip);
    }
    if !pending.is_empty() {
        return Decision::Start(pending.iter().map(|s| s.id.clone()).collect());
    }
    Decision::Wait
}

/// The run's final status once every step is terminal. Policy (ARCHITECTURE.md): a run
/// completes when at least one agent step completed, or when no agent step failed; it
/// fails when agent steps ran and every one of them failed, or a step was fatal.
pub fn outcome(plan: &Plan, states: &HashMap<String, StepState>) -> RunStatus {
    let st = |id: &str| states.get(id);
    if plan
        .steps
        .iter()
        .any(|s| st(&s.id).is_some_and(|x| x.fatal))
    {
        return RunStatus::Failed;
    }
    let agents: Vec<StepStatus> = plan
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Agent)
        .map(|s| st(&s.id).map(|x| x.status).unwrap_or(StepStatus::Pending))
        .collect();
    let completed = agents.contains(&StepStatus::Completed);
    let failed = agents.contains(&StepStatus::Failed);
    if agents.contains(&StepStatus::Cancelled) && !completed {
        return RunStatus::Cancelled;
    }
    if failed && !completed {
        RunStatus::Failed
    } else {
        RunStatus::Completed
    }
}

/// After a restart: steps that were running are dispatched again fresh; everything
/// else is kept. Returns the steps to reset to `pending`.
pub fn reconcile(run_status: RunStatus, steps: &[(String, StepStatus)]) -> Vec<String> {
    if run_status.is_terminal() {
        return Vec::new();
    }
    steps
        .iter()
        .filter(|(_, s)| *s == StepStatus::Running)
        .map(|(id, _)| id.clone())
        .collect()
}

/// The steps that never ran when a run is cancelled.
pub fn to_cancel(steps: &[(String, StepStatus)]) -> Vec<String> {
    steps
        .iter()
        .filter(|(_, s)| !s.is_terminal())
        .map(|(id, _)| id.clone())
        .collect()
}

#[cfg(test)]
mod tests;
