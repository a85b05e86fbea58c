//! Workflows: JavaScript scripts in Claude Code's dynamic-workflow format
//! (DESIGN.md, "Workflows"; PROTOCOL.md, "Workflows"), run by QuickJS.
//!
//! - [`meta`]: `export const meta = { … }`, parsed from the text before anything runs
//!   ([`parse_meta`]); [`check_syntax`] also compiles the whole script, so a launch
//!   can refuse a broken script with its line and column before a run row exists.
//! - [`engine`]: one QuickJS runtime per run on its own thread; only JSON crosses to
//!   the async world. Limits: heap, stack, the script's own CPU time, agent calls per
//!   run, items per `parallel`/`pipeline` call.
//! - [`driver`]: the [`WorkflowDriver`] trait, the only way a script touches the world
//!   (agents, budget, log, other workflows' sources).
//! - [`schema`]: the small JSON Schema validator behind `agent(prompt, { schema })`.
//!
//! Entry point: [`run_workflow`].
//!
//! # Semantics decided here (DESIGN.md leaves them open)
//!
//! - `agent(prompt, opts?)` always returns a promise; every refusal (bad arguments,
//!   the call cap, a spent budget) is a rejection, so `await` sees it as a throw.
//!   The cap counts `agent()` calls, not schema attempts. With `opts.schema` the
//!   prompt gets [`schema::instruction`]; a refused reply is retried with
//!   [`schema::retry_note`] appended (at most `Limits::schema_attempts` attempts, each
//!   its own driver call); the value is read from the reply's last ```json block,
//!   else the whole reply. A `Failed` reply resolves to `null` at once (no retry).
//! - `parallel(thunks)`: every thunk starts at once; the result keeps their order; a
//!   thunk that throws or rejects becomes `null`. A non-function item is awaited as
//!   it is (so a promise passed by mistake still works).
//! - `pipeline(items, ...stages)`: each item moves through the stages on its own (no
//!   barrier); a stage is called `(previous, item, index)`, and the FIRST stage gets
//!   `(item, item, index)`. A stage that throws turns the item into `null` and its
//!   later stages do not run; a stage that returns `null` does not stop the item. No
//!   stages: the items come back as they are.
//! - `setTimeout(fn, ms, ...args)` is a real timer on the caller's tokio runtime
//!   (`tokio::time`, so a paused test clock controls it); `ms` is clamped to
//!   0..=2^31-1. `clearTimeout` works. Waiting for a timer is not CPU time. An error
//!   thrown by a timer callback fails the run (as an uncaught exception does in
//!   Node). Strings of code are refused.
//! - The return value crosses with `JSON.stringify` semantics, plus: `undefined` (or
//!   a function or symbol) at the top → `null`; a BigInt → its decimal string; a
//!   cycle fails the run with a message saying so.
//! - `console.*` and `log(...)` join their arguments with spaces: strings as they
//!   are, errors as `Name: message`, other values as JSON when they have a JSON form.
//! - A rejected promise that nobody awaits is ignored; only the script's own result
//!   counts. When the script ends, agent calls still in flight are dropped.
//! - A script that waits while no agent call or timer is pending can never finish:
//!   it fails at once instead of hanging.
//! - The CPU-time and heap limits cannot be caught by the script (the run ends);
//!   a stack overflow is an ordinary `RangeError` the script may catch, and names
//!   the stack limit when it ends the run. The agent-call, item and budget errors
//!   are ordinary errors too; uncaught, they end the run as that limit.

mod alloc;
pub mod driver;
pub mod engine;
pub mod meta;
mod run;
pub mod schema;
#[cfg(test)]
mod tests;

pub use driver::{AgentCall, AgentReply, Budget, LogKind, LogLine, WorkflowDriver};
pub use engine::check_syntax;
pub use meta::Meta;
pub use run::run_workflow;

use std::fmt;
use std::time::Duration;

/// The limits of one run (PROTOCOL.md, "Workflows").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes QuickJS may allocate (64 MiB).
    pub heap_bytes: usize,
    /// Native stack QuickJS may use (1 MiB; the script thread gets this plus a margin).
    pub stack_bytes: usize,
    /// CPU time of the script thread itself; waiting for agents and timers is not
    /// counted (10 s).
    pub cpu_time: Duration,
    /// `agent()` calls per run, nested workflows included (1,000).
    pub agent_calls: u32,
    /// Items per `parallel`/`pipeline` call (4,096).
    pub items_per_call: u32,
    /// Attempts of one schema call (5).
    pub schema_attempts: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            heap_bytes: 64 * 1024 * 1024,
            stack_bytes: 1024 * 1024,
            cpu_time: Duration::from_secs(10),
            agent_calls: 1000,
            items_per_call: 4096,
            schema_attempts: 5,
        }
    }
}

/// Why a script could not start or did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScriptError {
    pub kind: ErrorKind,
    /// What went wrong, without the position.
    pub message: String,
    /// 1-based line of the top-level script, when known.
    pub line: Option<u32>,
    /// 1-based column, when known.
    pub column: Option<u32>,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{} (at {l}:{c})", self.message),
            (Some(l), None) => write!(f, "{} (at line {l})", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl ScriptError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ScriptError {
            kind,
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `meta` is missing, not a pure literal, or lacks `name`/`description`.
    Meta,
    /// The script does not compile.
    Syntax,
    /// The script threw (or its return value cannot cross to JSON).
    Runtime,
    /// A limit was passed.
    Limit(LimitKind),
    /// The run was cancelled.
    Cancelled,
    /// The engine itself failed (could not start QuickJS, its thread died).
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    CpuTime,
    Heap,
    Stack,
    AgentCalls,
    Items,
    Budget,
}

impl LimitKind {
    /// The name used in JavaScript errors and messages.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::CpuTime => "cpuTime",
            LimitKind::Heap => "heap",
            LimitKind::Stack => "stack",
            LimitKind::AgentCalls => "agentCalls",
            LimitKind::Items => "items",
            LimitKind::Budget => "budget",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        [
            LimitKind::CpuTime,
            LimitKind::Heap,
            LimitKind::Stack,
            LimitKind::AgentCalls,
            LimitKind::Items,
            LimitKind::Budget,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// "64 MiB", "512 KiB", "100 bytes".
pub(crate) fn human_bytes(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n % MIB == 0 {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n % 1024 == 0 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// "10 s", "250 ms".
pub(crate) fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// "1,000", "4,096".
pub(crate) fn human_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
