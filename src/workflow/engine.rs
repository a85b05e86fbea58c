//! The script's own thread: one QuickJS runtime per run. Nothing JavaScript leaves
//! this thread; it exchanges plain Rust data (JSON values) with the async side
//! ([`super::run`]) over two channels.
//!
//! How a script runs:
//!
//! 1. The body is wrapped, on its first line, in
//!    `(function (args, workflow) { return (async function () {"use strict"; …
//!    \n})(); })`, so top-level `await` and `return` work and every line keeps its
//!    number (columns on line 1 are corrected for the prefix). The `export` before
//!    `meta` is blanked out with spaces. `args` and `workflow` are parameters of the
//!    outer function, so a workflow started by `workflow()` gets its own `args` and a
//!    `workflow` that refuses to nest, and a script may still declare its own
//!    `const args = …` in the inner one.
//! 2. The prelude (`prelude.js`) installs the globals on top of native `host`
//!    functions and replaces the forbidden ones with functions that throw and say why.
//! 3. The loop: run QuickJS jobs until none is left; if the script's promise has
//!    settled, answer; otherwise block until the async side settles an agent call or
//!    a timer (blocked time is no CPU time), settle it in JavaScript, repeat. A script
//!    that waits while nothing is pending can never finish and fails at once.
//!
//! Limits: the heap through [`CountingAllocator`]; the stack through QuickJS's own
//! check; CPU time and cancellation through the interrupt handler, which reads this
//! thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`), so waiting for agents never
//! counts. Once a stop reason is set the handler keeps interrupting, and the loop
//! checks it after every step, so a script cannot catch its way past a limit.

use super::alloc::CountingAllocator;
use super::driver::{AgentCall, AgentOpts, ConsoleLevel, LogKind, LogLine, WorkflowDriver};
use super::meta::{parse_meta_spans, Meta, ParsedMeta};
use super::schema;
use super::{human_bytes, human_count, human_duration, ErrorKind, LimitKind, Limits, ScriptError};
use rquickjs::context::EvalOptions;
use rquickjs::loader::{Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::promise::PromiseState;
use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Exception, Function, Module, Object, Promise,
    Runtime,
};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

const PRELUDE: &str = include_str!("prelude.js");
/// Put in front of the script's first line (see the module docs).
const PREFIX: &str = "(function (args, workflow) { return (async function () {\"use strict\"; ";
const SUFFIX: &str = "\n})(); })";
const MAIN_FILE: &str = "script";
const PRELUDE_FILE: &str = "boo-prelude";

/// From the script thread to the async side.
pub(crate) enum FromJs {
    Agent { id: u64, call: Box<AgentCall> },
    Timer { id: u64, delay: Duration },
    ClearTimer { id: u64 },
    Finished(Result<Value, ScriptError>),
}

/// From the async side to the script thread.
pub(crate) enum ToJs {
    Settle { id: u64, outcome: Outcome },
    Stop,
}

/// How an agent call or a timer ended.
pub(crate) enum Outcome {
    /// `agent()` resolves to this value.
    Value(Value),
    /// `agent()` rejects with this message (a limit, when named).
    Throw {
        message: String,
        limit: Option<LimitKind>,
    },
    /// A `setTimeout` delay passed.
    TimerFired,
}

const STOP_NONE: u8 = 0;
const STOP_CANCELLED: u8 = 1;
const STOP_CPU: u8 = 2;
const STOP_HEAP: u8 = 3;

/// Flags shared by the script thread, its interrupt handler, its allocator and the
/// async side.
pub(crate) struct Shared {
    cancelled: AtomicBool,
    heap_tripped: Arc<AtomicBool>,
    stop: AtomicU8,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            cancelled: AtomicBool::new(false),
            heap_tripped: Arc::new(AtomicBool::new(false)),
            stop: AtomicU8::new(STOP_NONE),
        }
    }

    /// Ask the script to stop (cancellation, or the caller went away).
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    fn set_stop(&self, reason: u8) {
        let _ = self
            .stop
            .compare_exchange(STOP_NONE, reason, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The interrupt handler's question: stop now?
    fn should_stop(&self, cpu_start: Duration, cpu_limit: Duration) -> bool {
        if self.stop.load(Ordering::SeqCst) != STOP_NONE {
            return true;
        }
        if self.cancelled.load(Ordering::SeqCst) {
            self.set_stop(STOP_CANCELLED);
        } else if self.heap_tripped.load(Ordering::SeqCst) {
            self.set_stop(STOP_HEAP);
        } else if thread_cpu_time().saturating_sub(cpu_start) > cpu_limit {
            self.set_stop(STOP_CPU);
        } else {
            return false;
        }
        true
    }

    /// The stop reason, also noticing a heap refusal or a cancel the handler has not
    /// seen yet.
    fn stop_reason(&self) -> u8 {
        if self.stop.load(Ordering::SeqCst) == STOP_NONE {
            if self.heap_tripped.load(Ordering::SeqCst) {
                self.set_stop(STOP_HEAP);
            } else if self.cancelled.load(Ordering::SeqCst) {
                self.set_stop(STOP_CANCELLED);
            }
        }
        self.stop.load(Ordering::SeqCst)
    }
}

/// CPU time used by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid place for the result.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// `import` and `import()`: a resolver that always refuses, with the reason.
struct NoModules;

const NO_MODULES: &str = "import is not available in a workflow: a workflow is one self-contained script (modules cannot be loaded); put helper code in the script, or run another workflow with workflow(name)";

impl Resolver for NoModules {
    fn resolve<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        _base: &str,
        _name: &str,
    ) -> rquickjs::Result<String> {
        Err(Exception::throw_message(ctx, NO_MODULES))
    }
}

impl Loader for NoModules {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        _name: &str,
    ) -> rquickjs::Result<Module<'js, Declared>> {
        Err(Exception::throw_message(ctx, NO_MODULES))
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> ScriptError {
    ScriptError::new(ErrorKind::Internal, format!("{what}: {e}"))
}

/// Parse `meta` and compile the whole script (without running it), so a launch can
/// refuse a broken script with its line and column before any run exists.
pub fn check_syntax(source: &str) -> Result<Meta, ScriptError> {
    let parsed = parse_meta_spans(source)?;
    let limits = Limits::default();
    let rt = Runtime::new().map_err(|e| internal("could not start QuickJS", e))?;
    rt.set_memory_limit(limits.heap_bytes);
    rt.set_max_stack_size(limits.stack_bytes);
    let ctx = Context::full(&rt).map_err(|e| internal("could not start QuickJS", e))?;
    ctx.with(|ctx| compile(&ctx, source, &parsed, MAIN_FILE).map(|_| ()))?;
    Ok(parsed.meta)
}

/// The script as QuickJS compiles it (see the module docs). Line numbers do not move.
fn wrap(body: &str) -> String {
    format!("{PREFIX}{body}{SUFFIX}")
}

/// The script with `export` blanked out and a `#!` line turned into a comment.
fn blank(source: &str, parsed: &ParsedMeta) -> String {
    let mut body = source.to_string();
    if let Some((start, end)) = parsed.export_span {
        body.replace_range(start..end, &" ".repeat(end - start));
    }
    if body.starts_with("#!") {
        body.replace_range(0..2, "//");
    }
    body
}

/// Compile a (top-level or nested) script into its async function.
fn compile<'js>(
    ctx: &Ctx<'js>,
    source: &str,
    parsed: &ParsedMeta,
    file: &str,
) -> Result<Function<'js>, ScriptError> {
    let mut opts = EvalOptions::default();
    opts.strict = true;
    opts.filename = Some(file.to_string());
    let body = blank(source, parsed);
    let compiled: rquickjs::Result<Function> = ctx.eval_with_options(wrap(&body), opts);
    match compiled.catch(ctx) {
        Ok(f) => Ok(f),
        Err(CaughtError::Exception(e)) => {
            let message = e.message().unwrap_or_default();
            let name: String = e.get("name").unwrap_or_else(|_| "SyntaxError".to_string());
            let line = e
                .stack()
                .and_then(|s| frames(&s).into_iter().find(|f| f.file == file))
                .map(|f| f.line);
            let text = line
                .and_then(|l| body.lines().nth(l.saturating_sub(1) as usize))
                .unwrap_or_default();
            let column = line.map(|_| syntax_column(text, &message));
            let mut message = format!("{name}: {message}");
            if let Some(hint) = statement_hint(text) {
                message = hint.to_string();
            }
            Err(ScriptError {
                kind: ErrorKind::Syntax,
                message,
                line,
                column,
            })
        }
        Err(other) => Err(ScriptError::new(
            ErrorKind::Syntax,
            format!("the script does not compile: {other}"),
        )),
    }
}

/// The column of a syntax error. QuickJS (as bundled with rquickjs 0.11) reports the
/// line of a syntax error reliably but not its column, so the column is worked out
/// from the line's text: where the token QuickJS names (`unexpected token: 'x'`)
/// appears, when it appears exactly once; otherwise the line's first non-blank
/// character.
fn syntax_column(text: &str, message: &str) -> u32 {
    let first_non_blank = text
        .chars()
        .position(|c| !c.is_whitespace())
        .map_or(1, |p| p as u32 + 1);
    let token = message
        .strip_suffix('\'')
        .and_then(|m| m.rfind('\'').map(|i| &m[i + 1..]))
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return first_non_blank;
    };
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let word_token = token.chars().all(is_word);
    let hits: Vec<usize> = text
        .match_indices(token)
        .map(|(i, _)| i)
        .filter(|&i| {
            !word_token
                || (!text[..i].chars().next_back().is_some_and(is_word)
                    && !text[i + token.len()..].chars().next().is_some_and(is_word))
        })
        .collect();
    match hits.as_slice() {
        [only] => text[..*only].chars().count() as u32 + 1,
        _ => first_non_blank,
    }
}

/// A clearer message for module syntax, which QuickJS reports as a bare syntax error.
fn statement_hint(text: &str) -> Option<&'static str> {
    let text = text.trim_start();
    let keyword = |k: &str| {
        text.strip_prefix(k)
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c.is_whitespace() || matches!(c, '{' | '*' | '"' | '\''))
    };
    if keyword("import") {
        Some(NO_MODULES)
    } else if keyword("export") {
        Some("export is only allowed on `meta`: a workflow is a script, not a module; remove `export` here")
    } else {
        None
    }
}

/// One `at …(file:line:column)` frame of a QuickJS stack.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    file: String,
    line: u32,
    column: u32,
}

fn frames(stack: &str) -> Vec<Frame> {
    let mut out = Vec::new();
    for raw in stack.lines() {
        let Some(rest) = raw.trim().strip_prefix("at ") else {
            continue;
        };
        let location = match (rest.rfind('('), rest.ends_with(')')) {
            (Some(open), true) => &rest[open + 1..rest.len() - 1],
            _ => rest,
        };
        let mut parts = location.rsplitn(3, ':');
        let (Some(c), Some(l), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(line), Ok(column)) = (l.parse::<u32>(), c.parse::<u32>()) else {
            continue;
        };
        // Line 1 carries the wrapper's prefix.
        let column = if line == 1 {
            column.saturating_sub(PREFIX.chars().count() as u32).max(1)
        } else {
            column
        };
        out.push(Frame {
            file: file.to_string(),
            line,
            column,
        });
    }
    out
}

/// Everything the script thread needs.
pub(crate) struct ScriptJob {
    pub source: String,
    pub parsed: ParsedMeta,
    pub args: Option<Value>,
    pub driver: Arc<dyn WorkflowDriver>,
    pub limits: Limits,
    pub from_js: UnboundedSender<FromJs>,
    pub to_js: Receiver<ToJs>,
    pub shared: Arc<Shared>,
}

/// The script thread's body: run, then report (a panic becomes an internal error).
pub(crate) fn script_thread(job: ScriptJob) {
    let tx = job.from_js.clone();
    let result = catch_unwind(AssertUnwindSafe(|| run_script(job))).unwrap_or_else(|_| {
        Err(ScriptError::new(
            ErrorKind::Internal,
            "the workflow engine failed unexpectedly (a bug in boo)",
        ))
    });
    let _ = tx.send(FromJs::Finished(result));
}

fn run_script(job: ScriptJob) -> Result<Value, ScriptError> {
    let rt = Runtime::new_with_alloc(CountingAllocator::new(
        job.limits.heap_bytes,
        job.shared.heap_tripped.clone(),
    ))
    .map_err(|e| internal("could not start QuickJS", e))?;
    rt.set_max_stack_size(job.limits.stack_bytes);
    rt.set_loader(NoModules, NoModules);
    let ctx = Context::full(&rt).map_err(|e| internal("could not start QuickJS", e))?;
    let cpu_start = thread_cpu_time();
    let shared = job.shared.clone();
    let cpu_limit = job.limits.cpu_time;
    rt.set_interrupt_handler(Some(Box::new(move || {
        shared.should_stop(cpu_start, cpu_limit)
    })));
    ctx.with(|ctx| Session::new(ctx, &job).run())
}

/// Bookkeeping of the host functions (shared by the closures on this thread).
struct HostState {
    next_op: u64,
    /// Agent calls and timers the async side still owes an answer for.
    live: HashSet<u64>,
    agent_calls: u32,
    phase: Option<String>,
    wave: u32,
    /// Nested workflows: file name → workflow name (for error positions).
    nested_files: HashMap<String, String>,
}

struct Session<'a, 'js> {
    ctx: Ctx<'js>,
    job: &'a ScriptJob,
    state: Rc<RefCell<HostState>>,
}

impl<'a, 'js> Session<'a, 'js> {
    fn new(ctx: Ctx<'js>, job: &'a ScriptJob) -> Self {
        Session {
            ctx,
            job,
            state: Rc::new(RefCell::new(HostState {
                next_op: 1,
                live: HashSet::new(),
                agent_calls: 0,
                phase: None,
                wave: 1,
                nested_files: HashMap::new(),
            })),
        }
    }

    /// `e`, unless the script was told to stop (a cancel or a limit) meanwhile: then
    /// the stop is the reason, whatever QuickJS made of the interrupt.
    fn stopped_or(&self, e: ScriptError) -> ScriptError {
        match self.job.shared.stop_reason() {
            STOP_NONE => e,
            reason => stop_error(reason, &self.job.limits),
        }
    }

    fn run(&self) -> Result<Value, ScriptError> {
        // A cancel that arrives while the engine prepares interrupts the prelude or
        // the compile; it is still a cancel.
        let internals = self
            .install()
            .map_err(|e| self.stopped_or(internal("could not prepare the script", e)))?;
        let main = compile(&self.ctx, &self.job.source, &self.job.parsed, MAIN_FILE)
            .map_err(|e| self.stopped_or(e))?;
        let args = match &self.job.args {
            None => rquickjs::Value::new_undefined(self.ctx.clone()),
            Some(v) => self
                .ctx
                .json_parse(v.to_string())
                .map_err(|e| self.stopped_or(internal("could not pass `args` to the script", e)))?,
        };
        let workflow: Function = internals
            .get("workflow")
            .map_err(|e| internal("could not prepare the script", e))?;
        let settle: Function = internals
            .get("settle")
            .map_err(|e| internal("could not prepare the script", e))?;
        let fire: Function = internals
            .get("fire")
            .map_err(|e| internal("could not prepare the script", e))?;
        let drain: Function = internals
            .get("drain")
            .map_err(|e| internal("could not prepare the script", e))?;
        let started: rquickjs::Result<Promise> = main.call((args, workflow));
        let promise = match started.catch(&self.ctx) {
            Ok(p) => p,
            Err(e) => return Err(self.failure(&internals, e)),
        };
        // Once the script returned: the background agents it never collected, which
        // the run still waits for (their steps land in the run).
        let mut draining: Option<Promise> = None;
        loop {
            while self.ctx.execute_pending_job() {
                if self.job.shared.stop_reason() != STOP_NONE {
                    break;
                }
            }
            self.check_stop()?;
            match promise.state() {
                PromiseState::Resolved => {
                    if draining.is_none() {
                        let left: rquickjs::Result<Option<Promise>> = drain.call(());
                        match left.catch(&self.ctx) {
                            Ok(Some(p)) => draining = Some(p),
                            Ok(None) => return self.answer(&internals, &promise),
                            Err(e) => return Err(self.failure(&internals, e)),
                        }
                        continue;
                    }
                    if draining
                        .as_ref()
                        .is_some_and(|d| d.state() != PromiseState::Pending)
                    {
                        return self.answer(&internals, &promise);
                    }
                }
                PromiseState::Rejected => {
                    let rejected: Option<rquickjs::Result<rquickjs::Value>> = promise.result();
                    let err = match rejected {
                        Some(r) => match r.catch(&self.ctx) {
                            Ok(v) => CaughtError::Value(v),
                            Err(e) => e,
                        },
                        None => CaughtError::Error(rquickjs::Error::Unknown),
                    };
                    return Err(self.failure(&internals, err));
                }
                PromiseState::Pending => {}
            }
            if self.state.borrow().live.is_empty() {
                return Err(ScriptError::new(
                    ErrorKind::Runtime,
                    "the script is waiting for a promise that nothing will settle (no agent call or timer is pending)",
                ));
            }
            match self.job.to_js.recv() {
                Ok(ToJs::Settle { id, outcome }) => {
                    if !self.state.borrow_mut().live.remove(&id) {
                        continue; // a timer cleared after it fired
                    }
                    let done: rquickjs::Result<()> = match outcome {
                        Outcome::Value(v) => settle.call((id as f64, true, v.to_string())),
                        Outcome::Throw { message, limit } => {
                            let payload =
                                json!({ "message": message, "limit": limit.map(LimitKind::name) });
                            settle.call((id as f64, false, payload.to_string()))
                        }
                        Outcome::TimerFired => fire.call((id as f64,)),
                    };
                    if let Err(e) = done.catch(&self.ctx) {
                        self.check_stop()?;
                        return Err(self.failure(&internals, e));
                    }
                }
                Ok(ToJs::Stop) | Err(_) => {
                    self.job.shared.cancel();
                    return Err(stop_error(STOP_CANCELLED, &self.job.limits));
                }
            }
        }
    }

    fn check_stop(&self) -> Result<(), ScriptError> {
        match self.job.shared.stop_reason() {
            STOP_NONE => Ok(()),
            reason => Err(stop_error(reason, &self.job.limits)),
        }
    }

    /// The script's return value through JSON.
    fn answer(
        &self,
        internals: &Object<'js>,
        promise: &Promise<'js>,
    ) -> Result<Value, ScriptError> {
        let value: Option<rquickjs::Result<rquickjs::Value>> = promise.result();
        let value = match value {
            Some(Ok(v)) => v,
            _ => rquickjs::Value::new_undefined(self.ctx.clone()),
        };
        let to_json: Function = internals
            .get("toJson")
            .map_err(|e| internal("could not read the result", e))?;
        let text: rquickjs::Result<String> = to_json.call((value,));
        match text.catch(&self.ctx) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                ScriptError::new(
                    ErrorKind::Runtime,
                    format!("the script's return value is not JSON: {e}"),
                )
            }),
            Err(e) => {
                self.check_stop()?;
                let why = match e {
                    CaughtError::Exception(x) => x.message().unwrap_or_default(),
                    other => other.to_string(),
                };
                Err(ScriptError::new(
                    ErrorKind::Runtime,
                    format!("the script's return value cannot be turned into JSON: {why}"),
                ))
            }
        }
    }

    /// A thrown value (or a stop) as a ScriptError.
    fn failure(&self, internals: &Object<'js>, caught: CaughtError<'js>) -> ScriptError {
        if let Err(stop) = self.check_stop() {
            return stop;
        }
        let value = match caught {
            CaughtError::Exception(e) => e.into_value(),
            CaughtError::Value(v) => v,
            CaughtError::Error(e) => {
                return ScriptError::new(ErrorKind::Runtime, format!("the script failed: {e}"))
            }
        };
        let described: rquickjs::Result<String> = internals
            .get::<_, Function>("describe")
            .and_then(|d| d.call((value,)));
        let described = described
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .unwrap_or(Value::Null);
        let nested = self.state.borrow().nested_files.clone();
        describe_error(&described, &nested, &self.job.limits)
    }

    /// The prelude and the native `host` functions; returns the prelude's internals.
    fn install(&self) -> rquickjs::Result<Object<'js>> {
        let ctx = &self.ctx;
        let host = Object::new(ctx.clone())?;
        let job = self.job;

        let (state, driver, tx, limits) = (
            self.state.clone(),
            job.driver.clone(),
            job.from_js.clone(),
            job.limits.clone(),
        );
        host.set(
            "agent",
            Function::new(ctx.clone(), move |prompt: String, opts: String| -> String {
                host_agent(&state, driver.as_ref(), &tx, &limits, prompt, &opts).to_string()
            })?,
        )?;

        let (state, tx) = (self.state.clone(), job.from_js.clone());
        host.set(
            "timer",
            Function::new(ctx.clone(), move |ms: f64| -> f64 {
                let mut st = state.borrow_mut();
                let id = st.next_op;
                st.next_op += 1;
                st.live.insert(id);
                // Clamped like browsers: no negative delays, at most 2^31-1 ms.
                let ms = if ms.is_finite() {
                    ms.clamp(0.0, 2_147_483_647.0)
                } else {
                    0.0
                };
                let _ = tx.send(FromJs::Timer {
                    id,
                    delay: Duration::from_millis(ms as u64),
                });
                id as f64
            })?,
        )?;

        let (state, tx) = (self.state.clone(), job.from_js.clone());
        host.set(
            "clearTimer",
            Function::new(ctx.clone(), move |id: f64| {
                let id = id as u64;
                if state.borrow_mut().live.remove(&id) {
                    let _ = tx.send(FromJs::ClearTimer { id });
                }
            })?,
        )?;

        let (state, driver) = (self.state.clone(), job.driver.clone());
        host.set(
            "log",
            Function::new(ctx.clone(), move |kind: String, message: String| {
                let kind = match kind.as_str() {
                    "console.log" => LogKind::Console(ConsoleLevel::Log),
                    "console.info" => LogKind::Console(ConsoleLevel::Info),
                    "console.debug" => LogKind::Console(ConsoleLevel::Debug),
                    "console.warn" => LogKind::Console(ConsoleLevel::Warn),
                    "console.error" => LogKind::Console(ConsoleLevel::Error),
                    _ => LogKind::Log,
                };
                let wave = state.borrow().wave;
                driver.log(LogLine {
                    kind,
                    message,
                    wave,
                });
            })?,
        )?;

        let (state, driver) = (self.state.clone(), job.driver.clone());
        host.set(
            "phase",
            Function::new(ctx.clone(), move |title: String| {
                let wave = {
                    let mut st = state.borrow_mut();
                    st.wave += 1;
                    st.phase = Some(title.clone());
                    st.wave
                };
                driver.log(LogLine {
                    kind: LogKind::Phase,
                    message: title,
                    wave,
                });
            })?,
        )?;

        let driver = job.driver.clone();
        host.set(
            "budget",
            Function::new(ctx.clone(), move || -> String {
                let b = driver.budget();
                json!({ "total": b.total, "spent": b.spent }).to_string()
            })?,
        )?;

        let (state, driver) = (self.state.clone(), job.driver.clone());
        host.set(
            "load",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, name: String| -> rquickjs::Result<Function<'js>> {
                    load_workflow(&ctx, &state, driver.as_ref(), &name)
                        .map_err(|message| Exception::throw_message(&ctx, &message))
                },
            )?,
        )?;

        let mut opts = EvalOptions::default();
        opts.strict = true;
        opts.filename = Some(PRELUDE_FILE.to_string());
        let prelude: Function = ctx.eval_with_options(PRELUDE, opts)?;
        prelude.call((host, job.limits.items_per_call))
    }
}

/// `workflow(nameOrRef)`: fetch, check and compile another workflow.
fn load_workflow<'js>(
    ctx: &Ctx<'js>,
    state: &Rc<RefCell<HostState>>,
    driver: &dyn WorkflowDriver,
    name: &str,
) -> Result<Function<'js>, String> {
    let source = driver
        .workflow_source(name)
        .map_err(|e| format!("workflow('{name}'): {e}"))?;
    let parsed = parse_meta_spans(&source).map_err(|e| format!("workflow('{name}'): {e}"))?;
    let file = {
        let mut st = state.borrow_mut();
        let file = format!("workflow-{}", st.nested_files.len() + 1);
        st.nested_files.insert(file.clone(), name.to_string());
        file
    };
    compile(ctx, &source, &parsed, &file).map_err(|e| format!("workflow('{name}'): {e}"))
}

/// `agent(prompt, opts)` on the script thread: check, count, and hand the call to
/// the async side. Answers `{id}` or `{error, type?, limit?}` (JSON).
fn host_agent(
    state: &Rc<RefCell<HostState>>,
    driver: &dyn WorkflowDriver,
    tx: &UnboundedSender<FromJs>,
    limits: &Limits,
    prompt: String,
    opts_json: &str,
) -> Value {
    let raw: Value = serde_json::from_str(opts_json).unwrap_or(Value::Null);
    let opts = match parse_opts(raw) {
        Ok(o) => o,
        Err(message) => return json!({ "error": message, "type": "TypeError" }),
    };
    let mut st = state.borrow_mut();
    if st.agent_calls >= limits.agent_calls {
        return json!({
            "error": format!(
                "agent(): this run has reached its limit of {} agent() calls",
                human_count(limits.agent_calls.into())
            ),
            "limit": LimitKind::AgentCalls.name(),
        });
    }
    let budget = driver.budget();
    if budget.exhausted() {
        return json!({ "error": budget_message(budget), "limit": LimitKind::Budget.name() });
    }
    let index = st.agent_calls;
    st.agent_calls += 1;
    let id = st.next_op;
    st.next_op += 1;
    st.live.insert(id);
    let label = opts.label.clone().unwrap_or_else(|| default_label(&prompt));
    let call = AgentCall {
        index,
        attempt: 1,
        label,
        prompt: prompt.clone(),
        script_prompt: prompt,
        phase: opts.phase.clone().or_else(|| st.phase.clone()),
        wave: st.wave,
        opts,
    };
    let _ = tx.send(FromJs::Agent {
        id,
        call: Box::new(call),
    });
    json!({ "id": id })
}

/// A call without `opts.label`: the prompt's first non-blank line, cut to 80
/// characters.
fn default_label(prompt: &str) -> String {
    let line = prompt
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    if line.chars().count() > 80 {
        let cut: String = line.chars().take(79).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

pub(crate) fn budget_message(b: super::Budget) -> String {
    format!(
        "agent(): the run's token budget is spent ({} of {} output tokens); no more agents can start",
        b.spent,
        b.total.unwrap_or(0)
    )
}

fn parse_opts(raw: Value) -> Result<AgentOpts, String> {
    let map = match &raw {
        Value::Object(m) => m,
        _ => return Err("agent(prompt, opts?): opts must be an object".to_string()),
    };
    let type_of = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "an array",
        Value::Object(_) => "object",
    };
    let string = |key: &str| -> Result<Option<String>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!(
                "agent(prompt, opts?): opts.{key} must be a string, got {}",
                type_of(other)
            )),
        }
    };
    let schema = match map.get("schema") {
        None | Some(Value::Null) => None,
        Some(s) => {
            schema::check_schema(s).map_err(|e| {
                format!("agent(prompt, opts?): opts.schema is not a usable JSON Schema: {e}")
            })?;
            Some(s.clone())
        }
    };
    let attachments = match map.get("attachments") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(items.clone()),
        Some(other) => {
            return Err(format!(
                "agent(prompt, opts?): opts.attachments must be an array, got {}",
                type_of(other)
            ))
        }
    };
    Ok(AgentOpts {
        label: string("label")?,
        phase: string("phase")?,
        schema,
        model: string("model")?,
        effort: string("effort")?,
        agent_type: string("agentType")?,
        isolation: string("isolation")?,
        attachments,
        raw,
    })
}

fn stop_error(reason: u8, limits: &Limits) -> ScriptError {
    match reason {
        STOP_CPU => ScriptError::new(
            ErrorKind::Limit(LimitKind::CpuTime),
            format!(
                "the script used more than its CPU-time limit of {} (time spent waiting for agents is not counted)",
                human_duration(limits.cpu_time)
            ),
        ),
        STOP_HEAP => ScriptError::new(
            ErrorKind::Limit(LimitKind::Heap),
            format!(
                "the script passed its heap limit of {}",
                human_bytes(limits.heap_bytes)
            ),
        ),
        _ => ScriptError::new(ErrorKind::Cancelled, "the run was cancelled"),
    }
}

/// The prelude's description of a thrown value, as a ScriptError.
fn describe_error(d: &Value, nested: &HashMap<String, String>, limits: &Limits) -> ScriptError {
    let text = |k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if d.get("error") != Some(&Value::Bool(true)) {
        return ScriptError::new(
            ErrorKind::Runtime,
            format!("the script threw {}", text("message")),
        );
    }
    let (name, message) = (text("name"), text("message"));
    let stack = frames(&text("stack"));
    let limit = d
        .get("limit")
        .and_then(Value::as_str)
        .and_then(LimitKind::from_name);
    let (kind, mut message) = if let Some(limit) = limit {
        (ErrorKind::Limit(limit), message)
    } else if name == "RangeError" && message == "Maximum call stack size exceeded" {
        (
            ErrorKind::Limit(LimitKind::Stack),
            format!(
                "the script passed its stack limit of {} (too deep a recursion?)",
                human_bytes(limits.stack_bytes)
            ),
        )
    } else if name == "InternalError" && message == "out of memory" {
        (
            ErrorKind::Limit(LimitKind::Heap),
            format!(
                "the script passed its heap limit of {}",
                human_bytes(limits.heap_bytes)
            ),
        )
    } else if name == "Error" || name.is_empty() {
        (ErrorKind::Runtime, message)
    } else {
        (ErrorKind::Runtime, format!("{name}: {message}"))
    };
    // The position: the innermost frame of the top-level script; if the error was
    // thrown inside a nested workflow, say where.
    let user_frames: Vec<&Frame> = stack
        .iter()
        .filter(|f| f.file == MAIN_FILE || nested.contains_key(&f.file))
        .collect();
    if let Some(first) = user_frames.first() {
        if let Some(wf) = nested.get(&first.file) {
            message = format!(
                "{message} (in workflow '{wf}' at {}:{})",
                first.line, first.column
            );
        }
    }
    let main = user_frames.iter().find(|f| f.file == MAIN_FILE);
    ScriptError {
        kind,
        message,
        line: main.map(|f| f.line),
        column: main.map(|f| f.column),
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn workflow_frames_parse_and_correct_line_one() {
        let prefix = PREFIX.chars().count() as u32;
        let stack = format!(
            "    at g (script:2:27)\n    at <anonymous> (script:1:{})\n    at script:4:1\n    at weird\n",
            prefix + 5
        );
        let f = frames(&stack);
        assert_eq!(
            f,
            vec![
                Frame {
                    file: "script".into(),
                    line: 2,
                    column: 27
                },
                Frame {
                    file: "script".into(),
                    line: 1,
                    column: 5
                },
                Frame {
                    file: "script".into(),
                    line: 4,
                    column: 1
                },
            ]
        );
    }
}
