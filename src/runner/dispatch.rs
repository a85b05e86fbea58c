//! Dispatch: running one step's work. An agent step takes a slot, is bracketed by the
//! project's fingerprint (the read-only proof), opens one agent session and sends it
//! the step's prompts in turn, forwarding every event; a code step runs its built-in
//! function on a blocking thread, inside the same proof, with a deadline and a cancel.

use super::forward::Forwarder;
use super::prompt::combine_parts;
use super::scheduler::{AttachmentChoice, RunCtx, Scheduler};
use super::scope::RunScope;
use crate::agent::{AgentError, AgentEvent, AgentOutcome, ContentBlock, SessionSpec};
use crate::codesteps::{self, CodeFn, DepOutput};
use crate::model::{StepStatus, Usage};
use crate::project::git::{with_stop, StopFlag};
use crate::store::queries::StepEnd;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How a step's work ended.
#[derive(Debug, Clone)]
pub enum StepResult {
    Done {
        output: String,
        usage: Usage,
        meta: serde_json::Value,
    },
    Failed {
        error: String,
        usage: Usage,
        meta: serde_json::Value,
        /// The run cannot be trusted any more (the project was modified).
        fatal: bool,
    },
    Cancelled {
        usage: Usage,
    },
}

impl StepResult {
    fn failed(error: impl Into<String>) -> StepResult {
        StepResult::Failed {
            error: error.into(),
            usage: Usage::default(),
            meta: json!({}),
            fatal: false,
        }
    }

    pub fn into_end(self) -> StepEnd {
        match self {
            StepResult::Done {
                output,
                usage,
                meta,
            } => StepEnd {
                status: Some(StepStatus::Completed),
                output: Some(output),
                usage,
                meta: Some(meta),
                ..Default::default()
            },
            StepResult::Failed {
                error,
                usage,
                meta,
                fatal,
            } => StepEnd {
                status: Some(StepStatus::Failed),
                error: Some(error),
                usage,
                meta: Some(meta),
                fatal,
                ..Default::default()
            },
            StepResult::Cancelled { usage } => StepEnd {
                status: Some(StepStatus::Cancelled),
                error: Some("cancelled".into()),
                usage,
                ..Default::default()
            },
        }
    }
}

/// Runs a code step's function on a blocking thread in the run's snapshot (`root` is
/// `RunCtx::workdir`), bracketed by its fingerprint like an agent step (a change fails
/// the step as fatal; a cancelled step's output is dropped unproven), and bounded: a
/// stop of the scope ends it as cancelled, and past `sched.code_deadline` it fails.
/// Either way the git command it runs is killed (see [`StopFlag`]); the thread itself
/// is left to finish its bounded work.
pub async fn run_code(
    sched: &Arc<Scheduler>,
    root: &Path,
    function: CodeFn,
    args: &serde_json::Value,
    inputs: &[DepOutput],
    scope: &RunScope,
) -> StepResult {
    let (args, root_owned, inputs) = (args.clone(), root.to_path_buf(), inputs.to_vec());
    bracket_code(sched, root, scope, move || {
        codesteps::run(function, &args, &root_owned, &inputs)
    })
    .await
}

/// The bracket of [`run_code`] around any blocking work (tests pass their own).
pub(super) async fn bracket_code<F>(
    sched: &Arc<Scheduler>,
    root: &Path,
    scope: &RunScope,
    work: F,
) -> StepResult
where
    F: FnOnce() -> Result<String, String> + Send + 'static,
{
    let before = fingerprint(sched, root).await;
    let stop = StopFlag::new();
    let flag = stop.clone();
    let mut task = tokio::task::spawn_blocking(move || with_stop(flag, work));
    let deadline = sched.code_deadline;
    let outcome = tokio::select! {
        r = &mut task => Some(r.unwrap_or_else(|e| Err(format!("the code step crashed: {e}")))),
        _ = scope.stopped() => None,
        _ = tokio::time::sleep(deadline) => Some(Err(format!(
            "the code step did not finish within {}s and was stopped; a hung file system or a very large repository can cause this (the limit is RunnerConfig::code_deadline)",
            deadline.as_secs()
        ))),
    };
    stop.stop();
    if scope.hands_over() || outcome.is_none() {
        // The next owner runs the step again, the proof is its to take; or the step was
        // cancelled: its output is dropped, and its run may already have ended and
        // removed the snapshot the proof would read.
        return StepResult::Cancelled {
            usage: Usage::default(),
        };
    }
    let after = fingerprint(sched, root).await;
    if let Some(modified) = modified(&before, &after, Usage::default()) {
        return modified;
    }
    match outcome {
        None => StepResult::Cancelled {
            usage: Usage::default(),
        },
        Some(Ok(output)) => StepResult::Done {
            output,
            usage: Usage::default(),
            meta: json!({}),
        },
        Some(Err(error)) => StepResult::failed(error),
    }
}

/// A digest of a project fingerprint: equal digests, equal project state (contents,
/// modes and repository state; a pool's spare session is reused only for an equal
/// one). A fingerprint whose listing failed proves nothing and gives `None`.
fn project_state(fp: &crate::project::fingerprint::Fingerprint) -> Option<String> {
    if fp.listing_error.is_some() {
        return None;
    }
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (path, e) in &fp.files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(e.size.to_le_bytes());
        h.update(e.mode.to_le_bytes());
        h.update(e.hash);
    }
    for (k, v) in &fp.git {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    Some(format!("{:x}", h.finalize()))
}

/// The project's fingerprint, taken on a blocking thread (`None` when that failed).
async fn fingerprint(
    sched: &Arc<Scheduler>,
    root: &Path,
) -> Option<crate::project::fingerprint::Fingerprint> {
    let (s2, root) = (sched.clone(), root.to_path_buf());
    tokio::task::spawn_blocking(move || s2.fingerprints.fingerprint(&root))
        .await
        .ok()
}

/// The fatal failure of a step that left the project changed, or `None` when the two
/// fingerprints agree.
fn modified(
    before: &Option<crate::project::fingerprint::Fingerprint>,
    after: &Option<crate::project::fingerprint::Fingerprint>,
    usage: Usage,
) -> Option<StepResult> {
    let changed = match (before, after) {
        (Some(b), Some(a)) => crate::project::diff(b, a),
        _ => vec!["(the fingerprint could not be taken)".to_string()],
    };
    if changed.is_empty() {
        return None;
    }
    let shown: Vec<&str> = changed.iter().take(20).map(String::as_str).collect();
    let more = changed.len().saturating_sub(shown.len());
    Some(StepResult::Failed {
        error: format!(
            "the project was modified while this step ran: {}{}. boo never writes to the project; find out what changed these files before trusting this run.",
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ),
        usage,
        meta: json!({ "modified": changed }),
        fatal: true,
    })
}

/// The image blocks of the run's attachments the step takes, in launch order.
async fn step_images(
    sched: &Arc<Scheduler>,
    run_id: &str,
    choice: &AttachmentChoice,
) -> Result<Vec<ContentBlock>, String> {
    if *choice == AttachmentChoice::Nothing {
        return Ok(Vec::new());
    }
    let id = run_id.to_string();
    let all = sched
        .store
        .call(move |c| crate::store::queries::run_attachment_data(c, &id))
        .await
        .map_err(|e| e.to_string())?;
    let images: Vec<ContentBlock> = all
        .into_iter()
        .filter(|(name, _, _)| choice.takes(name))
        .map(|(name, mime_type, data)| ContentBlock::Image {
            name,
            mime_type,
            data: Arc::new(data),
        })
        .collect();
    if images.is_empty() {
        return Ok(images);
    }
    let names: Vec<String> = images
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Image { name, .. } => Some(format!("`{name}`")),
            ContentBlock::Text(_) => None,
        })
        .collect();
    // After the prompt (its stable part stays first), before the images themselves.
    let mut blocks = vec![ContentBlock::Text(format!(
        "\n\nThe user attached {} image(s), given below in this order: {}. A finding may cite one as evidence with {{\"attachment\": \"<name>\", \"region\": \"<where in the image>\"}} in place of a file citation.\n",
        names.len(),
        names.join(", ")
    ))];
    blocks.extend(images);
    Ok(blocks)
}

/// Runs an agent step: slot, fingerprint before, one session for every prompt,
/// fingerprint after. Any change to the project fails the step as fatal.
#[allow(clippy::too_many_arguments)]
pub async fn run_agent(
    sched: &Arc<Scheduler>,
    ctx: &RunCtx,
    step_id: &str,
    chat_id: &str,
    prompts: &[Vec<ContentBlock>],
    attachments: &AttachmentChoice,
    mcp: Option<crate::agent::McpServer>,
    scope: &RunScope,
) -> StepResult {
    if prompts.is_empty() {
        return StepResult::failed("the step has no prompt to send");
    }
    // The run's images go with every prompt of the step (read from the store, never
    // written into the project or its snapshot).
    let images = match step_images(sched, &ctx.run_id, attachments).await {
        Ok(i) => i,
        Err(e) => return StepResult::failed(format!("cannot read the run's attachments: {e}")),
    };
    let with_images: Vec<Vec<ContentBlock>>;
    let prompts = if images.is_empty() {
        prompts
    } else {
        with_images = prompts
            .iter()
            .map(|p| p.iter().cloned().chain(images.iter().cloned()).collect())
            .collect();
        &with_images[..]
    };
    let Some(slot) = sched.agent_slot(scope).await else {
        return StepResult::Cancelled {
            usage: Usage::default(),
        };
    };
    let before = fingerprint(sched, &ctx.workdir).await;
    let mut forward = Forwarder::new(
        sched.store.clone(),
        sched.out.clone(),
        ctx.redactor.clone(),
        &ctx.run_id,
        step_id,
        chat_id,
    );
    let project = before.as_ref().and_then(project_state);
    let result = run_session(
        sched,
        ctx,
        step_id,
        chat_id,
        prompts,
        scope,
        &mut forward,
        project,
        mcp,
    )
    .await;
    forward.close_open_calls();
    drop(slot);
    let after = fingerprint(sched, &ctx.workdir).await;
    let usage = forward.usage;
    if let Some(modified) = modified(&before, &after, usage) {
        return modified;
    }
    let init_meta = forward.init_meta;
    let with_init = |mut m: serde_json::Value| {
        if let (Some(obj), Some(init)) = (m.as_object_mut(), init_meta.as_object()) {
            for (k, v) in init {
                obj.entry(k.clone()).or_insert(v.clone());
            }
        }
        m
    };
    match result {
        Ok(o) => StepResult::Done {
            output: o.output,
            usage: if usage.is_zero() { o.usage } else { usage },
            meta: with_init(o.meta),
        },
        Err(AgentError::Cancelled) => StepResult::Cancelled { usage },
        Err(AgentError::Failed { message, meta } | AgentError::Lost { message, meta }) => {
            StepResult::Failed {
                error: message,
                usage,
                meta: with_init(meta),
                fatal: false,
            }
        }
    }
}

/// Runs the step's prompts in one session. When the process serving the session dies
/// under it ([`AgentError::Lost`]: another session's crash, a kill), the step starts
/// over once in a fresh session; the read-only proof still brackets the whole step.
#[allow(clippy::too_many_arguments)]
async fn run_session(
    sched: &Arc<Scheduler>,
    ctx: &RunCtx,
    step_id: &str,
    chat_id: &str,
    prompts: &[Vec<ContentBlock>],
    scope: &RunScope,
    forward: &mut Forwarder,
    project: Option<String>,
    mcp: Option<crate::agent::McpServer>,
) -> Result<AgentOutcome, AgentError> {
    let images = prompts
        .iter()
        .flatten()
        .any(|b| matches!(b, ContentBlock::Image { .. }));
    let attempt = |isolated: bool| SessionSpec {
        run_id: ctx.run_id.clone(),
        step_id: step_id.to_string(),
        chat_id: chat_id.to_string(),
        // The agent reads the run's snapshot, never the user's working tree.
        root: ctx.workdir.clone(),
        model: ctx.model.clone(),
        deadline: sched.deadline,
        isolated,
        project: project.clone(),
        images,
        mcp: mcp.clone(),
    };
    let first = run_attempt(sched, attempt(false), prompts, scope, forward).await;
    let Err(AgentError::Lost { message: lost, .. }) = first else {
        return first;
    };
    if scope.is_stopped() {
        return Err(AgentError::Cancelled);
    }
    tracing::warn!(run = %ctx.run_id, step = step_id, "retrying the step in a fresh session: {lost}");
    // The lost attempt's open tool calls end as errors before the new attempt starts.
    forward.close_open_calls();
    match run_attempt(sched, attempt(true), prompts, scope, forward).await {
        Ok(mut o) => {
            if let Some(m) = o.meta.as_object_mut() {
                m.insert("retriedAfter".into(), json!(lost));
            }
            Ok(o)
        }
        Err(AgentError::Lost { message, mut meta }) => {
            meta["retriedAfter"] = json!(lost);
            Err(AgentError::Failed {
                message: format!(
                    "{message}; the step had already been retried once in a fresh session after: {lost}"
                ),
                meta,
            })
        }
        Err(e) => Err(e),
    }
}

/// Opens the step's session, sends each prompt in turn (stopping at the first that
/// fails) and closes it. A stop of the scope cancels the session explicitly.
async fn run_attempt(
    sched: &Arc<Scheduler>,
    spec: SessionSpec,
    prompts: &[Vec<ContentBlock>],
    scope: &RunScope,
    forward: &mut Forwarder,
) -> Result<AgentOutcome, AgentError> {
    let mut session = tokio::select! {
        s = sched.backend.open(spec) => s?,
        _ = scope.stopped() => return Err(AgentError::Cancelled),
    };
    let canceller = session.canceller();
    let mut outputs = Vec::with_capacity(prompts.len());
    let mut failure = None;
    for prompt in prompts {
        let (tx, mut rx) = mpsc::unbounded_channel::<AgentEvent>();
        let offset = forward.turn_offset();
        let work = session.prompt(prompt.clone(), tx);
        let relay = async {
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(ev) => forward.forward(ev, offset),
                        None => break,
                    },
                    _ = scope.stopped(), if !canceller.is_cancelled() => canceller.cancel(),
                }
            }
        };
        let (result, ()) = tokio::join!(work, relay);
        match result {
            Ok(o) => outputs.push(o),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    session.close().await;
    match failure {
        Some(e) => Err(e),
        None => Ok(combine_parts(outputs)),
    }
}
