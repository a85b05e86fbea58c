//! The driver seam: the only way a workflow script touches the world.
//!
//! The engine calls the driver from two places:
//!
//! - [`WorkflowDriver::agent`] is called on the caller's tokio runtime (the engine
//!   spawns the returned future there), once per attempt. The first attempt of every
//!   call is requested in the order the script made its calls (so whatever the driver
//!   does synchronously before returning its future follows the script, whatever
//!   order the futures then run in); schema retries are requested later, from the
//!   call's own task. Calls the script makes concurrently (`parallel`, `pipeline`,
//!   `Promise.all`) are in flight concurrently.
//!   When the script ends (or the run is cancelled) while a call is still in flight,
//!   its future is dropped: a driver that started an agent for it must treat the drop
//!   as "stop it".
//! - [`WorkflowDriver::budget`], [`WorkflowDriver::log`] and
//!   [`WorkflowDriver::workflow_source`] are called synchronously from the script's own
//!   thread while JavaScript waits, so they must be quick and must not block on the
//!   async world (queue the message, read a snapshot, read a file).

use crate::agent::BoxFuture;
use serde_json::Value;

/// The world, as a workflow script sees it.
pub trait WorkflowDriver: Send + Sync + 'static {
    /// Run one agent attempt. A schema call may make up to five attempts, each its
    /// own call (same `index`, growing `attempt`).
    fn agent(&self, call: AgentCall) -> BoxFuture<'static, AgentReply>;
    /// The run's token budget right now.
    fn budget(&self) -> Budget;
    /// A narrator line (`log()`), a phase change (`phase()`) or a console line.
    fn log(&self, line: LogLine);
    /// The source of another workflow, for `workflow(nameOrRef)`; `Err` carries a
    /// message for the script ("no workflow named …").
    fn workflow_source(&self, name_or_ref: &str) -> Result<String, String>;
}

/// One attempt of one `agent()` call.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentCall {
    /// 0-based order of the `agent()` call in the run (nested workflows included);
    /// every attempt of a call shares it.
    pub index: u32,
    /// 1 for the first attempt; 2..=5 for schema retries.
    pub attempt: u32,
    /// `opts.label`, else the prompt's first non-blank line (at most 80 characters,
    /// a longer one cut to 79 and `…`).
    pub label: String,
    /// The text to send: the script's prompt, plus (with a schema) the schema
    /// instruction and, on a retry, why the previous reply was refused.
    pub prompt: String,
    /// The prompt exactly as the script passed it.
    pub script_prompt: String,
    /// The call's phase: `opts.phase`, else the title of the latest `phase()` call.
    pub phase: Option<String>,
    /// 1 + the number of `phase()` calls made before this call.
    pub wave: u32,
    pub opts: AgentOpts,
}

/// `agent()`'s options, checked for type. Unknown keys are kept in `raw` only.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentOpts {
    pub label: Option<String>,
    pub phase: Option<String>,
    pub schema: Option<Value>,
    pub model: Option<String>,
    pub effort: Option<String>,
    /// A persona name, when the driver knows one by that name.
    pub agent_type: Option<String>,
    /// `'worktree'` is accepted and means nothing in a read-only server.
    pub isolation: Option<String>,
    pub attachments: Option<Vec<Value>>,
    /// The options object as the script passed it (through JSON).
    pub raw: Value,
}

/// How an agent attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentReply {
    /// The agent's final text.
    Completed { text: String },
    /// The agent failed for good (the driver already retried what it retries):
    /// `agent()` resolves to `null`.
    Failed { error: String },
    /// The run's budget is spent: `agent()` throws.
    BudgetExhausted,
}

/// Output tokens of the run: the ceiling (None without a budget) and what is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    pub total: Option<u64>,
    pub spent: u64,
}

impl Budget {
    pub fn exhausted(&self) -> bool {
        self.total.is_some_and(|t| self.spent >= t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// `log(message)`.
    Log,
    /// `phase(title)`: the message is the title.
    Phase,
    /// `console.log/info/debug/warn/error`.
    Console(ConsoleLevel),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleLevel {
    Log,
    Info,
    Debug,
    Warn,
    Error,
}

/// One line for the run log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub kind: LogKind,
    pub message: String,
    /// The wave at that moment (for a `Phase` line: the wave the new phase opens).
    pub wave: u32,
}
