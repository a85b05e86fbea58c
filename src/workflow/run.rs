//! The async side of a run: start the script thread, run the agent calls and timers
//! it asks for on the caller's tokio runtime (concurrently), hand their outcomes
//! back, and pass cancellation on.

use super::driver::{AgentCall, AgentReply, WorkflowDriver};
use super::engine::{budget_message, script_thread, FromJs, Outcome, ScriptJob, Shared, ToJs};
use super::meta::parse_meta_spans;
use super::schema;
use super::{ErrorKind, LimitKind, Limits, ScriptError};
use crate::agent::BoxFuture;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Run a workflow script to its end.
///
/// `source` is the whole file; `args` is the launch value (`None` → `undefined` in
/// the script). The result is the script's return value through JSON (`undefined`
/// → `null`). `meta` and syntax are checked first (no agent runs for a script that
/// does not compile). Cancelling `cancel` stops the script wherever it is (running
/// JavaScript or waiting); dropping the returned future does the same.
pub async fn run_workflow(
    source: String,
    args: Option<Value>,
    driver: Arc<dyn WorkflowDriver>,
    limits: Limits,
    cancel: CancellationToken,
) -> Result<Value, ScriptError> {
    let parsed = parse_meta_spans(&source)?;
    let (from_tx, mut from_rx) = mpsc::unbounded_channel();
    let (to_tx, to_rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared::new());
    let stack = limits.stack_bytes + 8 * 1024 * 1024;
    let job = ScriptJob {
        source,
        parsed,
        args,
        driver: driver.clone(),
        limits: limits.clone(),
        from_js: from_tx,
        to_js: to_rx,
        shared: shared.clone(),
    };
    std::thread::Builder::new()
        .name("boo-workflow".into())
        .stack_size(stack)
        .spawn(move || script_thread(job))
        .map_err(|e| {
            ScriptError::new(
                ErrorKind::Internal,
                format!("could not start the script thread: {e}"),
            )
        })?;
    let _stop = StopOnDrop(shared.clone());

    let mut tasks: JoinSet<(u64, Outcome)> = JoinSet::new();
    // Task id → op id, so even a panicking task gets an answer.
    let mut ops: HashMap<tokio::task::Id, u64> = HashMap::new();
    let mut timers: HashMap<u64, AbortHandle> = HashMap::new();
    let mut cancel_sent = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled(), if !cancel_sent => {
                cancel_sent = true;
                shared.cancel();
                let _ = to_tx.send(ToJs::Stop);
            }
            msg = from_rx.recv() => match msg {
                Some(FromJs::Agent { id, call }) => {
                    // The first attempt is handed to the driver here, in the order the
                    // script made its calls (the channel keeps it), so a driver that
                    // counts identical calls counts them in script order.
                    let mut call = *call;
                    let first = first_attempt(driver.as_ref(), &mut call);
                    let handle = tasks.spawn(agent_call(driver.clone(), id, call, first, limits.schema_attempts));
                    ops.insert(handle.id(), id);
                }
                Some(FromJs::Timer { id, delay }) => {
                    let handle = tasks.spawn(async move {
                        tokio::time::sleep(delay).await;
                        (id, Outcome::TimerFired)
                    });
                    ops.insert(handle.id(), id);
                    timers.insert(id, handle);
                }
                Some(FromJs::ClearTimer { id }) => {
                    if let Some(h) = timers.remove(&id) {
                        h.abort();
                    }
                }
                Some(FromJs::Finished(result)) => return result,
                None => {
                    return Err(ScriptError::new(
                        ErrorKind::Internal,
                        "the script thread ended without a result (a bug in boo)",
                    ))
                }
            },
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => match joined {
                Ok((task, (id, outcome))) => {
                    ops.remove(&task);
                    timers.remove(&id);
                    let _ = to_tx.send(ToJs::Settle { id, outcome });
                }
                Err(e) => {
                    let id = ops.remove(&e.id());
                    if let (Some(id), true) = (id, e.is_panic()) {
                        let outcome = Outcome::Throw {
                            message: "agent(): the agent call failed inside boo (a bug); see the server log".into(),
                            limit: None,
                        };
                        let _ = to_tx.send(ToJs::Settle { id, outcome });
                    }
                }
            }
        }
    }
}

/// Stops the script when the run's future is dropped before it ended.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

async fn agent_call(
    driver: Arc<dyn WorkflowDriver>,
    id: u64,
    call: AgentCall,
    first: BoxFuture<'static, AgentReply>,
    max_attempts: u32,
) -> (u64, Outcome) {
    (id, run_agent(driver, call, first, max_attempts).await)
}

/// Attempt 1 of a call: its prompt (with a schema: plus the schema instruction) and
/// the driver's future for it.
fn first_attempt(
    driver: &dyn WorkflowDriver,
    call: &mut AgentCall,
) -> BoxFuture<'static, AgentReply> {
    call.attempt = 1;
    if let Some(schema) = &call.opts.schema {
        call.prompt = format!("{}{}", call.script_prompt, schema::instruction(schema));
    }
    driver.agent(call.clone())
}

fn budget_throw(driver: &dyn WorkflowDriver) -> Outcome {
    Outcome::Throw {
        message: budget_message(driver.budget()),
        limit: Some(LimitKind::Budget),
    }
}

/// One `agent()` call: one attempt (`first`, already handed to the driver), or up to
/// `max_attempts` with a schema.
async fn run_agent(
    driver: Arc<dyn WorkflowDriver>,
    mut call: AgentCall,
    first: BoxFuture<'static, AgentReply>,
    max_attempts: u32,
) -> Outcome {
    let Some(schema) = call.opts.schema.clone() else {
        return match first.await {
            AgentReply::Completed { text } => Outcome::Value(Value::String(text)),
            AgentReply::Failed { .. } => Outcome::Value(Value::Null),
            AgentReply::BudgetExhausted => budget_throw(driver.as_ref()),
        };
    };
    let instruction = schema::instruction(&schema);
    let mut refusal: Option<String> = None;
    let mut first = Some(first);
    for attempt in 1..=max_attempts.max(1) {
        if attempt > 1 && driver.budget().exhausted() {
            return budget_throw(driver.as_ref());
        }
        let reply = match first.take() {
            Some(f) => f.await,
            None => {
                let note = refusal
                    .as_deref()
                    .map(|why| schema::retry_note(attempt, max_attempts, why))
                    .unwrap_or_default();
                call.attempt = attempt;
                call.prompt = format!("{}{instruction}{note}", call.script_prompt);
                driver.agent(call.clone()).await
            }
        };
        match reply {
            AgentReply::Completed { text } => {
                let checked = schema::extract_json(&text).and_then(|v| {
                    schema::validate(&v, &schema).map(|()| v).map_err(|errors| {
                        format!("the JSON does not match the schema: {}", errors.join("; "))
                    })
                });
                match checked {
                    Ok(v) => return Outcome::Value(v),
                    Err(why) => refusal = Some(why),
                }
            }
            AgentReply::Failed { .. } => return Outcome::Value(Value::Null),
            AgentReply::BudgetExhausted => return budget_throw(driver.as_ref()),
        }
    }
    Outcome::Value(Value::Null)
}
