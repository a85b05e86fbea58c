//! The agent-run driver: a background agent (`boo/spawnAgent`, `boo ask`) is a run of
//! kind `"agent"` with exactly one agent step, `agent`, whose persona, prompt and
//! root the launch names. The launch records a one-step plan (the step's prompt is
//! the persona's stable prompt; the user's prompt is the run's question, so it comes
//! last like every question) and the run is driven by the flow engine loop over that
//! plan: one agent step is the degenerate flow, and going through the same loop is
//! what gives an agent run the same slots (`Scheduler::start_step`), lease, resume
//! after a restart (a running step starts again on a new chat), cancel, traces and
//! report (the answer and its findings, verified against the snapshot) as every run.

use super::prompt::stable_prompt;
use super::scope::RunScope;
use super::{LaunchError, Supervisor};
use crate::engine::{Plan, PlannedStep};
use crate::model::{Band, RunInput, StepKind};
use crate::store::queries::{self, NewRun};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The one step of an agent run.
pub const AGENT_STEP: &str = "agent";

/// The `flow` column of an agent run (`RunSummary.flow`).
pub const AGENT_FLOW: &str = "agent";

/// What the agent step is asked to do before the user's prompt (which follows as the
/// run's question).
const AGENT_TASK: &str = "Work on the request below on your own: read what you need in the project, verify every claim against the files, and answer it completely. Report each problem you find as a finding with its evidence.";

/// A background agent launch, validated by [`Supervisor::launch_agent`].
#[derive(Debug, Clone)]
pub struct AgentLaunch {
    pub persona: String,
    pub prompt: String,
    pub root: PathBuf,
    pub model: Option<String>,
    /// Images for the agent (checked by [`Supervisor::intake_attachments`]).
    pub attachments: Vec<crate::attach::AttachmentInput>,
    /// This run's model takes images (`None`: `RunnerConfig::vision_model`).
    pub vision: Option<bool>,
}

/// Whether a run row is an agent run.
pub fn is_agent(meta: &Value) -> bool {
    meta.get("kind").and_then(Value::as_str) == Some("agent")
}

/// The one-step plan of an agent run.
fn plan(persona: &str, label: &str, stable: String) -> Plan {
    Plan {
        flow: AGENT_FLOW.into(),
        band: Band::Small,
        steps: vec![PlannedStep {
            id: AGENT_STEP.into(),
            kind: StepKind::Agent,
            agent: persona.into(),
            label: label.into(),
            wave: 1,
            after: vec![],
            when: None,
            prompt: stable,
            args: Value::Null,
            attachments: true,
            spawn: false,
        }],
        answer: vec![AGENT_STEP.into()],
    }
}

impl Supervisor {
    /// Validates a background agent, records its run (one agent step) and starts it.
    /// A project persona (`<root>/.boo/personas/`) is known only in a trusted root.
    pub async fn launch_agent(self: &Arc<Self>, req: AgentLaunch) -> Result<String, LaunchError> {
        let prompt = req.prompt.trim().to_string();
        if prompt.is_empty() {
            return Err(LaunchError::Invalid(
                "prompt: the prompt is missing or empty; say what the agent should do".into(),
            ));
        }
        if prompt.contains('\0') {
            return Err(LaunchError::Invalid(
                "prompt: the prompt holds a NUL character, which no agent can be given; remove it"
                    .into(),
            ));
        }
        let persona = req.persona.trim().to_string();
        if let Some(problem) = req
            .model
            .as_deref()
            .and_then(crate::agent::qwen::model_name_problem)
        {
            return Err(LaunchError::Invalid(format!("model: {problem}")));
        }
        let root = req.root.canonicalize().map_err(|e| {
            LaunchError::Invalid(format!(
                "root: {} is not a readable directory ({e})",
                req.root.display()
            ))
        })?;
        if !root.is_dir() || std::fs::read_dir(&root).is_err() {
            return Err(LaunchError::Invalid(format!(
                "root: {} is not a readable directory",
                root.display()
            )));
        }
        let attachments = self
            .intake_attachments(req.attachments, root.clone(), req.vision, req.model.clone())
            .await?;
        let key = root.display().to_string();
        let trusted = self
            .store
            .call(move |c| queries::is_trusted(c, &key))
            .await
            .map_err(|e| LaunchError::Internal(e.to_string()))?;
        let (me, r2) = (self.clone(), root.clone());
        let catalog = tokio::task::spawn_blocking(move || {
            if trusted {
                me.catalog(Some(&r2))
            } else {
                me.catalog(None)
            }
        })
        .await
        .map_err(|e| LaunchError::Internal(format!("reading the personas failed: {e}")))?;
        let Some(p) = catalog.personas.get(&persona) else {
            return Err(LaunchError::Invalid(format!(
                "persona: unknown persona {persona:?}; known personas: {}{}",
                catalog
                    .personas
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if trusted {
                    ""
                } else {
                    " (a project's own personas in .boo/personas/ count only once the root is trusted: `boo trust <root>`)"
                }
            )));
        };
        self.scheduler
            .backend
            .check()
            .await
            .map_err(|e| LaunchError::Unavailable(e.0))?;
        let stable = stable_prompt(&p.title, &p.brief, &p.title, AGENT_TASK);
        let run_id = uuid::Uuid::now_v7().to_string();
        let input = serde_json::to_value(RunInput {
            question: prompt.clone(),
            fast: false,
        })
        .map_err(|e| LaunchError::Internal(e.to_string()))?;
        let mut first_chats = HashMap::new();
        first_chats.insert(AGENT_STEP.to_string(), uuid::Uuid::now_v7().to_string());
        let new = NewRun {
            run_id: run_id.clone(),
            flow: AGENT_FLOW.into(),
            flow_title: p.title.clone(),
            band: Band::Small,
            root: root.display().to_string(),
            input,
            model: req
                .model
                .clone()
                .or_else(|| self.config.default_model.clone()),
            plan: plan(&persona, &p.title, stable),
            owner_id: self.owner_id.clone(),
            meta: json!({
                "kind": "agent",
                "agent": { "persona": persona, "personaSource": p.source },
            }),
            first_chats,
        };
        self.take_snapshot(&run_id, &root).await?;
        let id = run_id.clone();
        let recorded = self
            .store
            .call(move |c| {
                queries::insert_run(c, &new)?;
                queries::insert_run_attachments(c, &id, &attachments)
            })
            .await;
        if let Err(e) = recorded {
            self.drop_snapshot(&run_id).await;
            return Err(LaunchError::Internal(format!("cannot record the run: {e}")));
        }
        self.spawn_drive(run_id.clone(), false);
        Ok(run_id)
    }
}

/// Drives an agent run until it ends here (or is handed over): the flow engine loop
/// over its one-step plan.
pub(super) async fn drive(
    sup: &Arc<Supervisor>,
    run_id: &str,
    resumed: bool,
    scope: RunScope,
) -> Result<(), String> {
    super::flow::drive(sup, run_id, resumed, scope).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_one_agent_step_that_is_the_answer() {
        let p = plan("codebase-explorer", "Codebase explorer", "stable".into());
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].id, AGENT_STEP);
        assert_eq!(p.steps[0].kind, StepKind::Agent);
        assert_eq!(p.answer, vec![AGENT_STEP.to_string()]);
        // It reads back (insert_run refuses a plan that does not).
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&text).unwrap(), p);
    }
}
