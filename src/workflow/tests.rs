//! The workflow engine through a fake driver: scripted replies, recorded calls,
//! logs and events. Every API function, limit and forbidden global, each with its
//! exact message.

use super::driver::{AgentOpts, ConsoleLevel};
use super::meta::{parse_meta, MetaPhase};
use super::*;
use crate::agent::BoxFuture;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

type Responder =
    Arc<dyn Fn(AgentCall, Arc<Events>) -> BoxFuture<'static, AgentReply> + Send + Sync>;

/// "start:<prompt>" / "end:<prompt>" in the order they happened.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Events {
    fn push(&self, e: String) {
        self.0.lock().unwrap().push(e);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn position(&self, e: &str) -> Option<usize> {
        self.all().iter().position(|x| x == e)
    }
    /// Wait (polling) until `e` happened; false after `timeout`.
    async fn wait_for(&self, e: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.position(e).is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    }
    fn count_prefix(&self, p: &str) -> usize {
        self.all().iter().filter(|x| x.starts_with(p)).count()
    }
}

struct Fake {
    respond: Responder,
    calls: Mutex<Vec<AgentCall>>,
    events: Arc<Events>,
    logs: Mutex<Vec<LogLine>>,
    budget: Arc<Mutex<Budget>>,
    workflows: Mutex<HashMap<String, String>>,
}

impl Fake {
    fn with(respond: Responder) -> Arc<Self> {
        Arc::new(Fake {
            respond,
            calls: Mutex::default(),
            events: Arc::default(),
            logs: Mutex::default(),
            budget: Arc::default(),
            workflows: Mutex::default(),
        })
    }

    /// Answers at once with `f(call)`.
    fn replies(f: impl Fn(&AgentCall) -> AgentReply + Send + Sync + 'static) -> Arc<Self> {
        Fake::with(Arc::new(move |call, _| {
            let r = f(&call);
            Box::pin(async move { r })
        }))
    }

    /// Answers "echo: <script prompt>".
    fn echo() -> Arc<Self> {
        Fake::replies(|c| AgentReply::Completed {
            text: format!("echo: {}", c.script_prompt),
        })
    }

    fn calls(&self) -> Vec<AgentCall> {
        self.calls.lock().unwrap().clone()
    }

    fn logs(&self) -> Vec<LogLine> {
        self.logs.lock().unwrap().clone()
    }

    fn set_budget(&self, total: Option<u64>, spent: u64) {
        *self.budget.lock().unwrap() = Budget { total, spent };
    }

    fn add_workflow(&self, name: &str, source: &str) {
        self.workflows
            .lock()
            .unwrap()
            .insert(name.to_string(), source.to_string());
    }
}

impl WorkflowDriver for Fake {
    fn agent(&self, call: AgentCall) -> BoxFuture<'static, AgentReply> {
        self.calls.lock().unwrap().push(call.clone());
        let events = self.events.clone();
        let name = call.script_prompt.clone();
        events.push(format!("start:{name}"));
        let reply = (self.respond)(call, events.clone());
        Box::pin(async move {
            let r = reply.await;
            events.push(format!("end:{name}"));
            r
        })
    }
    fn budget(&self) -> Budget {
        *self.budget.lock().unwrap()
    }
    fn log(&self, line: LogLine) {
        self.logs.lock().unwrap().push(line);
    }
    fn workflow_source(&self, name_or_ref: &str) -> Result<String, String> {
        self.workflows
            .lock()
            .unwrap()
            .get(name_or_ref)
            .cloned()
            .ok_or_else(|| format!("no workflow named '{name_or_ref}'"))
    }
}

const META: &str = "export const meta = { name: 'test', description: 'a test workflow' };";

/// A script whose body starts on line 2.
fn script(body: &str) -> String {
    format!("{META}\n{body}")
}

async fn run(body: &str, fake: &Arc<Fake>) -> Result<Value, ScriptError> {
    run_with(
        body,
        None,
        fake,
        Limits::default(),
        CancellationToken::new(),
    )
    .await
}

async fn run_with(
    body: &str,
    args: Option<Value>,
    fake: &Arc<Fake>,
    limits: Limits,
    cancel: CancellationToken,
) -> Result<Value, ScriptError> {
    let driver: Arc<dyn WorkflowDriver> = fake.clone();
    run_workflow(script(body), args, driver, limits, cancel).await
}

fn err(kind: ErrorKind, message: &str, line: Option<u32>, column: Option<u32>) -> ScriptError {
    ScriptError {
        kind,
        message: message.to_string(),
        line,
        column,
    }
}

fn meta_err(message: &str, line: u32, column: u32) -> ScriptError {
    err(ErrorKind::Meta, message, Some(line), Some(column))
}

const NOT_PURE_TAIL: &str =
    " (only objects, arrays, strings, numbers, booleans and null are allowed)";

// ---------------------------------------------------------------- meta

#[test]
fn workflow_meta_accepts_every_literal_form() {
    let src = r#"#!/usr/bin/env boo
// a comment
/* another */ 'use strict';
export const meta = {
  name: 'review',          // single quotes
  "description": "Reviews \"things\"\u0021",
  whenToUse: `when
asked`,
  phases: [
    { title: 'Scan', detail: 'find', },
    { 'title': "Fix" },
  ],
  n: [0x1F, -2.5e3, .5, 1_000, 0b11, 0o7, +3],
  flags: { on: true, off: false, none: null, },
  42: 'numeric key',
};
await agent('x');
"#;
    let meta = parse_meta(src).unwrap();
    assert_eq!(meta.name, "review");
    assert_eq!(meta.description, "Reviews \"things\"!");
    assert_eq!(meta.when_to_use.as_deref(), Some("when\nasked"));
    assert_eq!(
        meta.phases,
        vec![
            MetaPhase {
                title: "Scan".into(),
                detail: Some("find".into())
            },
            MetaPhase {
                title: "Fix".into(),
                detail: None
            },
        ]
    );
    assert_eq!(meta.value["n"], json!([31, -2500, 0.5, 1000, 3, 7, 3]));
    assert_eq!(
        meta.value["flags"],
        json!({"on": true, "off": false, "none": null})
    );
    assert_eq!(meta.value["42"], json!("numeric key"));
    // `const meta` without `export` is accepted too.
    assert_eq!(
        parse_meta("const meta = { name: 'a', description: 'b' }\nreturn 1")
            .unwrap()
            .name,
        "a"
    );
}

#[test]
fn workflow_meta_missing() {
    let missing = "missing `meta`: a workflow must begin with `export const meta = { name: '…', description: '…' }`";
    assert_eq!(parse_meta("").unwrap_err(), meta_err(missing, 1, 1));
    assert_eq!(
        parse_meta("// hello\n\n  const x = 1;").unwrap_err(),
        meta_err(missing, 3, 3)
    );
    assert_eq!(
        parse_meta("export const other = {};").unwrap_err(),
        meta_err(missing, 1, 1)
    );
}

#[test]
fn workflow_meta_refuses_anything_but_a_pure_literal() {
    let cases: &[(&str, &str, u32, u32)] = &[
        ("{ name: foo }", "the identifier `foo`", 1, 29),
        ("{ name: make('x') }", "a call (`make(`)", 1, 29),
        ("{ ...base, name: 'a' }", "a spread (`...`)", 1, 23),
        ("{ tags: [...more] }", "a spread (`...`)", 1, 30),
        ("{ [key]: 'a' }", "a computed key (`[`)", 1, 23),
        ("{ name: `a${b}` }", "a template substitution (`${`)", 1, 31),
        (
            "{ name }",
            "the shorthand property `name` (write `name: value`)",
            1,
            23,
        ),
        ("{ name() {} }", "a method (`name(`)", 1, 23),
        (
            "{ get name() {} }",
            "an accessor or method (`get …`)",
            1,
            23,
        ),
        ("{ name: 'a' + 'b' }", "an expression (`+`)", 1, 33),
        ("{ n: 10n }", "the BigInt `10n`", 1, 26),
        (
            "{ n: -x }",
            "an expression (a sign not followed by a number)",
            1,
            27,
        ),
        (
            "{ name: 'a' }.name",
            "an expression continuing after the literal (`.`)",
            1,
            34,
        ),
        (
            "{\n  name: 'a',\n  description: undefined,\n}",
            "the identifier `undefined`",
            3,
            16,
        ),
    ];
    for (lit, found, line, column) in cases {
        let src = format!("export const meta = {lit};");
        let got = parse_meta(&src).unwrap_err();
        let want = meta_err(
            &format!("`meta` is not a pure literal: found {found}{NOT_PURE_TAIL}"),
            *line,
            *column,
        );
        assert_eq!(got, want, "for {lit}");
    }
    assert_eq!(
        parse_meta("export const meta = { name: 'a").unwrap_err(),
        meta_err("unterminated string in `meta`", 1, 29)
    );
    assert_eq!(
        parse_meta("export const meta = { name: 'a',").unwrap_err(),
        meta_err("unexpected end of the script inside `meta`", 1, 33)
    );
}

#[test]
fn workflow_meta_requires_name_and_description() {
    assert_eq!(
        parse_meta("export const meta = {\n  description: 'd',\n};").unwrap_err(),
        meta_err("`meta.name` is missing", 1, 21)
    );
    assert_eq!(
        parse_meta("export const meta = { name: '  ', description: 'd' };").unwrap_err(),
        meta_err("`meta.name` must be a non-empty string", 1, 29)
    );
    assert_eq!(
        parse_meta("export const meta = { name: 'n' };").unwrap_err(),
        meta_err("`meta.description` is missing", 1, 21)
    );
    assert_eq!(
        parse_meta("export const meta = { name: 'n', description: 3 };").unwrap_err(),
        meta_err("`meta.description` must be a non-empty string", 1, 47)
    );
    assert_eq!(
        parse_meta(
            "export const meta = { name: 'n', description: 'd', phases: [{ detail: 'x' }] };"
        )
        .unwrap_err(),
        meta_err("`meta.phases[0].title` is missing", 1, 61)
    );
    assert_eq!(
        parse_meta("export const meta = { name: 'n', description: 'd', whenToUse: 1 };")
            .unwrap_err(),
        meta_err("`meta.whenToUse` must be a string", 1, 63)
    );
    assert_eq!(
        parse_meta("export const meta = [];").unwrap_err(),
        meta_err(
            "`meta` must be an object literal: `{ name: '…', description: '…' }`",
            1,
            21
        )
    );
    // Display carries the position.
    assert_eq!(
        parse_meta("export const meta = { name: 'n' };")
            .unwrap_err()
            .to_string(),
        "`meta.description` is missing (at 1:21)"
    );
}

// ---------------------------------------------------------------- syntax

#[test]
fn workflow_check_syntax_names_line_and_column() {
    let meta: Meta = check_syntax(&script("const a = await agent('x');\nreturn a;")).unwrap();
    assert_eq!(meta.name, "test");

    let got = check_syntax(&script("const a = 1;\nif (a) {\n  let y = ;\n}")).unwrap_err();
    assert_eq!(
        got,
        err(
            ErrorKind::Syntax,
            "SyntaxError: unexpected token in expression: ';'",
            Some(4),
            Some(11)
        )
    );
    // On line 1 the column is the original file's, not the wrapped one's.
    let got = check_syntax(&format!("{META} let y = );")).unwrap_err();
    assert_eq!(
        got.message,
        "SyntaxError: unexpected token in expression: ')'"
    );
    assert_eq!(got.line, Some(1));
    assert_eq!(got.column, Some(META.len() as u32 + 10));
    // A token QuickJS names more than once on the line: the line's first character.
    let got = check_syntax(&script(
        "const a = [1,
    2, , ;];",
    ))
    .unwrap_err();
    assert_eq!((got.line, got.column), (Some(3), Some(5)));

    // A meta problem is reported before compiling.
    assert_eq!(
        check_syntax("export const meta = { name: x };\nlet = ;")
            .unwrap_err()
            .kind,
        ErrorKind::Meta
    );
}

#[test]
fn workflow_import_and_export_say_why() {
    let got = check_syntax(&script("const a = 1;\nimport fs from 'fs';")).unwrap_err();
    assert_eq!(
        got,
        err(
            ErrorKind::Syntax,
            "import is not available in a workflow: a workflow is one self-contained script (modules cannot be loaded); put helper code in the script, or run another workflow with workflow(name)",
            Some(3),
            Some(1)
        )
    );
    let got = check_syntax(&script("export function helper() {}")).unwrap_err();
    assert_eq!(
        got.message,
        "export is only allowed on `meta`: a workflow is a script, not a module; remove `export` here"
    );
    assert_eq!(got.line, Some(2));
}

#[tokio::test]
async fn workflow_syntax_error_fails_before_any_agent() {
    let fake = Fake::echo();
    let got = run("await agent('x');\nlet = ;", &fake).await.unwrap_err();
    assert_eq!(got.kind, ErrorKind::Syntax);
    assert_eq!(got.line, Some(3));
    assert!(fake.calls().is_empty());
}

// ---------------------------------------------------------------- agent

#[tokio::test]
async fn workflow_agent_resolves_to_text_and_passes_options() {
    let fake = Fake::echo();
    let out = run(
        "const a = await agent('hello\\nworld', { label: 'Greet', model: 'm', effort: 'high', agentType: 'reviewer', isolation: 'worktree', attachments: [{ path: 'a.png' }], extra: 1 });\n\
         const b = await agent('second');\n\
         return [a, b];",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(out, json!(["echo: hello\nworld", "echo: second"]));
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    let c = &calls[0];
    assert_eq!((c.index, c.attempt, c.wave), (0, 1, 1));
    assert_eq!(c.prompt, "hello\nworld");
    assert_eq!(c.script_prompt, "hello\nworld");
    assert_eq!(c.phase, None);
    assert_eq!(c.label, "Greet");
    assert_eq!(c.opts.label.as_deref(), Some("Greet"));
    assert_eq!(c.opts.model.as_deref(), Some("m"));
    assert_eq!(c.opts.effort.as_deref(), Some("high"));
    assert_eq!(c.opts.agent_type.as_deref(), Some("reviewer"));
    assert_eq!(c.opts.isolation.as_deref(), Some("worktree"));
    assert_eq!(c.opts.attachments, Some(vec![json!({"path": "a.png"})]));
    assert_eq!(c.opts.raw["extra"], json!(1));
    assert_eq!(calls[1].index, 1);
    assert_eq!(calls[1].label, "second");
    assert_eq!(
        calls[1].opts,
        AgentOpts {
            raw: json!({}),
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn workflow_agent_checks_its_arguments() {
    let fake = Fake::echo();
    let out = run(
        "const msgs = [];\n\
         for (const f of [() => agent(42), () => agent('x', 'opts'), () => agent('x', { label: 3 }),\n\
                          () => agent('x', { schema: { type: 'strng' } }), () => agent('x', { n: 1n })]) {\n\
           try { await f(); } catch (e) { msgs.push(e.name + ': ' + e.message); }\n\
         }\n\
         return msgs;",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!([
            "TypeError: agent(prompt, opts?): prompt must be a string, got number",
            "TypeError: agent(prompt, opts?): opts must be an object, got string",
            "TypeError: agent(prompt, opts?): opts.label must be a string, got number",
            "TypeError: agent(prompt, opts?): opts.schema is not a usable JSON Schema: schema.type: unknown type \"strng\" (use one of null, boolean, object, array, number, integer, string)",
            "TypeError: agent(prompt, opts?): opts must be plain JSON data (BigInt are forbidden in JSON.stringify)",
        ])
    );
    assert!(
        fake.calls().is_empty(),
        "no refused call reaches the driver"
    );
}

const SCHEMA_SCRIPT: &str = "return await agent('Rate it', { schema: { type: 'object', properties: { score: { type: 'integer', minimum: 0, maximum: 10 } }, required: ['score'], additionalProperties: false } });";

#[tokio::test]
async fn workflow_agent_schema_valid_first_time() {
    let fake = Fake::replies(|_| AgentReply::Completed {
        text: "Thinking…\n```json\n{\"score\": 7}\n```".into(),
    });
    assert_eq!(
        run(SCHEMA_SCRIPT, &fake).await.unwrap(),
        json!({"score": 7})
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    let schema = calls[0].opts.schema.clone().unwrap();
    assert_eq!(
        calls[0].prompt,
        format!("Rate it{}", schema::instruction(&schema))
    );
    assert!(calls[0]
        .prompt
        .contains("\"required\": [\n    \"score\"\n  ]"));
}

#[tokio::test]
async fn workflow_agent_schema_invalid_then_valid() {
    let fake = Fake::replies(|c| AgentReply::Completed {
        text: if c.attempt == 1 {
            "```json\n{\"score\": 11, \"why\": \"x\"}\n```".into()
        } else {
            "{\"score\": 3}".into()
        },
    });
    assert_eq!(
        run(SCHEMA_SCRIPT, &fake).await.unwrap(),
        json!({"score": 3})
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[1].index, calls[1].attempt), (0, 2));
    let instruction = schema::instruction(calls[1].opts.schema.as_ref().unwrap());
    assert_eq!(
        calls[1].prompt,
        format!(
            "Rate it{instruction}\n\nYour previous answer was refused: the JSON does not match the schema: $.score: must be <= 10, got 11; $: unexpected property `why` (additionalProperties is false)\nThis is attempt 2 of 5. Reply again, finishing with one ```json block whose value conforms to the schema."
        )
    );
}

#[tokio::test]
async fn workflow_agent_schema_five_invalid_replies_give_null() {
    let fake = Fake::replies(|_| AgentReply::Completed {
        text: "no JSON here".into(),
    });
    assert_eq!(run(SCHEMA_SCRIPT, &fake).await.unwrap(), Value::Null);
    let calls = fake.calls();
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.index, c.attempt))
            .collect::<Vec<_>>(),
        vec![(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]
    );
    assert!(calls[4].prompt.contains(
        "Your previous answer was refused: the reply has no ```json block and is not JSON itself (expected ident at line 1 column 2)\nThis is attempt 5 of 5."
    ));
}

#[tokio::test]
async fn workflow_agent_failure_gives_null() {
    let fake = Fake::replies(|_| AgentReply::Failed {
        error: "deadline".into(),
    });
    let out = run(
        &format!("const a = await agent('plain');\nconst b = await (async () => {{ {SCHEMA_SCRIPT} }})();\nreturn [a, b];"),
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(out, json!([null, null]));
    // A failed schema call is not retried.
    assert_eq!(fake.calls().len(), 2);
}

// ---------------------------------------------------------------- parallel, pipeline

#[tokio::test]
async fn workflow_parallel_turns_throwing_thunks_into_null() {
    let fake = Fake::echo();
    let out = run(
        "return await parallel([\n\
           () => agent('a'),\n\
           () => { throw new Error('sync'); },\n\
           async () => { await agent('b'); throw 1; },\n\
           () => agent('c'),\n\
           () => 5,\n\
           Promise.resolve(6),\n\
           Promise.reject(new Error('x')),\n\
         ]);",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(out, json!(["echo: a", null, null, "echo: c", 5, 6, null]));
}

#[tokio::test]
async fn workflow_parallel_calls_are_in_flight_together() {
    // Each call waits until all three have started; if they ran one after another,
    // the first would give up after 5 s and resolve to null.
    let fake = Fake::with(Arc::new(|call, events| {
        Box::pin(async move {
            for p in ["a", "b", "c"] {
                if !events
                    .wait_for(&format!("start:{p}"), Duration::from_secs(5))
                    .await
                {
                    return AgentReply::Failed {
                        error: "not concurrent".into(),
                    };
                }
            }
            AgentReply::Completed {
                text: call.script_prompt,
            }
        })
    }));
    let out = run(
        "return await parallel(['a', 'b', 'c'].map((p) => () => agent(p)));",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(out, json!(["a", "b", "c"]));
}

#[tokio::test]
async fn workflow_pipeline_has_no_barrier_between_stages() {
    // Item 1's second stage must start while item 2's first stage is still held:
    // the driver holds `s1-2` until `s2-1` has started (or gives up after 5 s).
    let fake = Fake::with(Arc::new(|call, events| {
        Box::pin(async move {
            if call.script_prompt == "s1-2" {
                events.wait_for("start:s2-1", Duration::from_secs(5)).await;
            }
            AgentReply::Completed {
                text: call.script_prompt,
            }
        })
    }));
    let out = run(
        "return await pipeline([1, 2],\n\
           (prev, item, i) => agent('s1-' + item),\n\
           (prev, item, i) => agent('s2-' + item),\n\
         );",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(out, json!(["s2-1", "s2-2"]));
    let ev = &fake.events;
    let started = ev.position("start:s2-1").unwrap();
    let held_end = ev.position("end:s1-2").unwrap();
    assert!(
        started < held_end,
        "stage 2 of item 1 started only after stage 1 of item 2 ended: {:?}",
        ev.all()
    );
}

#[tokio::test]
async fn workflow_pipeline_stage_arguments_and_a_throw_skipping_later_stages() {
    let fake = Fake::echo();
    let out = run(
        "const seen = [];\n\
         const out = await pipeline(['a', 'b', 'c'],\n\
           (prev, item, i) => { seen.push(['1', prev, item, i]); return prev + '1'; },\n\
           async (prev, item, i) => { seen.push(['2', prev, item, i]); if (item === 'b') throw new Error('no'); return prev + '2'; },\n\
           (prev, item, i) => { seen.push(['3', prev, item, i]); return agent(prev); },\n\
         );\n\
         const plain = await pipeline([1, 2]);\n\
         const nulls = await pipeline([1], () => null, (prev, item) => [prev, item]);\n\
         return { out, seen: seen.sort(), plain, nulls };",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(out["out"], json!(["echo: a12", null, "echo: c12"]));
    assert_eq!(
        out["seen"],
        json!([
            ["1", "a", "a", 0],
            ["1", "b", "b", 1],
            ["1", "c", "c", 2],
            ["2", "a1", "a", 0],
            ["2", "b1", "b", 1],
            ["2", "c1", "c", 2],
            ["3", "a12", "a", 0],
            ["3", "c12", "c", 2],
        ])
    );
    assert_eq!(out["plain"], json!([1, 2]));
    assert_eq!(out["nulls"], json!([[null, 1]]));
    assert_eq!(fake.calls().len(), 2);
}

#[tokio::test]
async fn workflow_item_limit_is_4096_per_call() {
    let fake = Fake::echo();
    let out = run(
        "const ok = await parallel(Array.from({ length: 4096 }, (_, i) => () => i));\n\
         const msgs = [];\n\
         try { await parallel(Array.from({ length: 4097 }, () => () => 1)); } catch (e) { msgs.push(e.message); }\n\
         try { await pipeline(new Array(4097).fill(0), (x) => x); } catch (e) { msgs.push(e.message); }\n\
         return [ok.length, ok[4095], msgs];",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!([4096, 4095, [
            "parallel(): 4,097 items is more than the limit of 4,096 items per call; split the work into smaller calls",
            "pipeline(): 4,097 items is more than the limit of 4,096 items per call; split the work into smaller calls",
        ]])
    );
    // Uncaught, it fails the run as a limit, at the line of the call.
    let got = run("\n\nawait parallel(new Array(5000).fill(() => 1));", &fake)
        .await
        .unwrap_err();
    assert_eq!(got.kind, ErrorKind::Limit(LimitKind::Items));
    assert_eq!(
        got.message,
        "parallel(): 5,000 items is more than the limit of 4,096 items per call; split the work into smaller calls"
    );
    // QuickJS gives a call's frame the column of the last token it marked in the
    // call expression; the line is what matters.
    assert_eq!(got.line, Some(4));
}

// ---------------------------------------------------------------- phase, log, console

#[tokio::test]
async fn workflow_phase_log_and_console_reach_the_driver_with_waves() {
    let fake = Fake::echo();
    run(
        "log('start');\n\
         phase('Scan');\n\
         console.log('a', { b: 1 }, [1], undefined);\n\
         await agent('x');\n\
         phase('Fix');\n\
         console.warn('w'); console.error(new TypeError('bad')); console.info('i'); console.debug('d');\n\
         await agent('y', { phase: 'Custom' });\n\
         log(42, 'n');",
        &fake,
    )
    .await
    .unwrap();
    let line = |kind, message: &str, wave| LogLine {
        kind,
        message: message.to_string(),
        wave,
    };
    assert_eq!(
        fake.logs(),
        vec![
            line(LogKind::Log, "start", 1),
            line(LogKind::Phase, "Scan", 2),
            line(
                LogKind::Console(ConsoleLevel::Log),
                "a {\"b\":1} [1] undefined",
                2
            ),
            line(LogKind::Phase, "Fix", 3),
            line(LogKind::Console(ConsoleLevel::Warn), "w", 3),
            line(LogKind::Console(ConsoleLevel::Error), "TypeError: bad", 3),
            line(LogKind::Console(ConsoleLevel::Info), "i", 3),
            line(LogKind::Console(ConsoleLevel::Debug), "d", 3),
            line(LogKind::Log, "42 n", 3),
        ]
    );
    let calls = fake.calls();
    assert_eq!(
        (calls[0].phase.as_deref(), calls[0].wave),
        (Some("Scan"), 2)
    );
    assert_eq!(
        (calls[1].phase.as_deref(), calls[1].wave),
        (Some("Custom"), 3)
    );

    let got = run("phase('');", &fake).await.unwrap_err();
    assert_eq!(
        got.message,
        "TypeError: phase(title): title must be a non-empty string, got string"
    );
}

// ---------------------------------------------------------------- workflow()

const CHILD: &str = "export const meta = { name: 'child', description: 'nested' };\n\
                     const answer = await agent('child ' + args.n);\n\
                     return { got: args, answer, budget: budget.total };";

#[tokio::test]
async fn workflow_runs_another_workflow_inline_one_level_deep() {
    let fake = Fake::echo();
    fake.add_workflow("child", CHILD);
    fake.add_workflow(
        "deeper",
        "export const meta = { name: 'deeper', description: 'nests again' };\nreturn await workflow('child', { n: 9 });",
    );
    fake.add_workflow(
        "broken",
        "export const meta = { name: 'b', description: 'd' };\n\nlet = ;",
    );
    fake.add_workflow("nometa", "return 1;");
    let out = run(
        "await agent('parent');\n\
         const child = await workflow('child', { n: 1 });\n\
         const msgs = [];\n\
         for (const name of ['deeper', 'missing', 'broken', 'nometa']) {\n\
           try { await workflow(name); } catch (e) { msgs.push(e.message); }\n\
         }\n\
         return { child, msgs, args: typeof args };",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!({
            "child": { "got": { "n": 1 }, "answer": "echo: child 1", "budget": null },
            "msgs": [
                "workflow() cannot be called from a workflow that was itself started by workflow(): one level of nesting is allowed; call both workflows from the top-level script instead",
                "workflow('missing'): no workflow named 'missing'",
                "workflow('broken'): SyntaxError: variable name expected (at 3:1)",
                "workflow('nometa'): missing `meta`: a workflow must begin with `export const meta = { name: '…', description: '…' }` (at 1:1)",
            ],
            "args": "undefined",
        })
    );
    // The nested call shares the run's numbering.
    let calls = fake.calls();
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.index, c.script_prompt.as_str()))
            .collect::<Vec<_>>(),
        vec![(0, "parent"), (1, "child 1")]
    );
}

#[tokio::test]
async fn workflow_nested_error_names_the_nested_workflow() {
    let fake = Fake::echo();
    fake.add_workflow(
        "thrower",
        "export const meta = { name: 'thrower', description: 'throws' };\n\n\nnull.x;",
    );
    let got = run("const a = 1;\nawait workflow('thrower');", &fake)
        .await
        .unwrap_err();
    assert_eq!(got.kind, ErrorKind::Runtime);
    assert_eq!(
        got.message,
        "TypeError: cannot read property 'x' of null (in workflow 'thrower' at 4:1)"
    );
}

// ---------------------------------------------------------------- args, budget, return

#[tokio::test]
async fn workflow_args_are_verbatim_or_undefined() {
    let fake = Fake::echo();
    let body = "return [typeof args, args === undefined ? 'absent' : args];";
    let none = run_with(
        body,
        None,
        &fake,
        Limits::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(none, json!(["undefined", "absent"]));
    let value = json!({ "files": ["a.rs"], "n": 2.5, "deep": { "x": null } });
    let some = run_with(
        body,
        Some(value.clone()),
        &fake,
        Limits::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(some, json!(["object", value]));
    let s = run_with(
        body,
        Some(json!("text")),
        &fake,
        Limits::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(s, json!(["string", "text"]));
}

#[tokio::test]
async fn workflow_script_may_declare_its_own_args_and_workflow() {
    let fake = Fake::echo();
    let out = run_with(
        "const args = 'mine';\nfunction workflow() { return 'local'; }\nreturn [args, workflow()];",
        Some(json!(1)),
        &fake,
        Limits::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(out, json!(["mine", "local"]));
}

#[tokio::test]
async fn workflow_default_label_is_the_first_line_cut_to_80() {
    let fake = Fake::echo();
    let long = "x".repeat(100);
    run(
        &format!("await agent('\\n  first line  \\nsecond');\nawait agent('{long}');"),
        &fake,
    )
    .await
    .unwrap();
    let calls = fake.calls();
    assert_eq!(calls[0].label, "first line");
    assert_eq!(calls[1].label, format!("{}…", "x".repeat(79)));
}

#[tokio::test]
async fn workflow_budget_reads_the_driver() {
    let fake = Fake::echo();
    let body = "return [budget.total, budget.spent(), budget.remaining(), budget.remaining() === Infinity];";
    assert_eq!(
        run(body, &fake).await.unwrap(),
        json!([null, 0, null, true])
    );
    fake.set_budget(Some(100), 40);
    assert_eq!(run(body, &fake).await.unwrap(), json!([100, 40, 60, false]));
}

#[tokio::test]
async fn workflow_budget_spent_makes_agent_throw() {
    let fake = Fake::echo();
    fake.set_budget(Some(100), 100);
    let message = "agent(): the run's token budget is spent (100 of 100 output tokens); no more agents can start";
    let out = run(
        "try { await agent('x'); } catch (e) { return [e.message, budget.remaining()]; }",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(out, json!([message, 0]));
    assert!(fake.calls().is_empty());
    // Uncaught: the run fails as the budget limit, at the call's line.
    let got = run("const x = 1;\n  await agent('x');", &fake)
        .await
        .unwrap_err();
    assert_eq!(
        got,
        err(
            ErrorKind::Limit(LimitKind::Budget),
            message,
            Some(3),
            Some(9)
        )
    );

    // The driver may also report the budget spent mid-call.
    let fake = Fake::replies(|_| AgentReply::BudgetExhausted);
    fake.set_budget(Some(10), 12);
    let driver: Arc<dyn WorkflowDriver> = fake.clone();
    // The budget check before the call passes when spent < total; set it so.
    fake.set_budget(Some(10), 5);
    let got = run_workflow(
        script("await agent('a');"),
        None,
        driver,
        Limits::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(got.kind, ErrorKind::Limit(LimitKind::Budget));
    assert_eq!(
        got.message,
        "agent(): the run's token budget is spent (5 of 10 output tokens); no more agents can start"
    );
    assert_eq!(got.line, Some(2));
}

#[tokio::test]
async fn workflow_budget_spent_between_schema_attempts_throws() {
    // The first (invalid) reply spends the whole budget: no second attempt starts.
    let budget = Arc::new(Mutex::new(Budget {
        total: Some(50),
        spent: 0,
    }));
    let spend = budget.clone();
    let mut fake = Fake::replies(move |_| {
        spend.lock().unwrap().spent = 50;
        AgentReply::Completed {
            text: "not json".into(),
        }
    });
    Arc::get_mut(&mut fake).unwrap().budget = budget;
    let got = run(SCHEMA_SCRIPT, &fake).await.unwrap_err();
    assert_eq!(
        got,
        err(
            ErrorKind::Limit(LimitKind::Budget),
            "agent(): the run's token budget is spent (50 of 50 output tokens); no more agents can start",
            Some(2),
            Some(14)
        )
    );
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn workflow_the_1001st_agent_call_throws() {
    let fake = Fake::echo();
    let out = run(
        "const all = await Promise.all(Array.from({ length: 1000 }, (_, i) => agent('n' + i)));\n\
         try { await agent('one too many'); } catch (e) { return [all.length, all[999], e.message]; }",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!([
            1000,
            "echo: n999",
            "agent(): this run has reached its limit of 1,000 agent() calls"
        ])
    );
    assert_eq!(fake.calls().len(), 1000);
    // Uncaught, the run fails naming the limit.
    let limits = Limits {
        agent_calls: 2,
        ..Limits::default()
    };
    let got = run_with(
        "await agent('a');\nawait agent('b');\nawait agent('c');",
        None,
        &fake,
        limits,
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        got,
        err(
            ErrorKind::Limit(LimitKind::AgentCalls),
            "agent(): this run has reached its limit of 2 agent() calls",
            Some(4),
            Some(7)
        )
    );
}

#[tokio::test]
async fn workflow_return_value_crosses_json() {
    let fake = Fake::echo();
    let out = run(
        "return { a: undefined, b: [1, undefined, () => 1, Symbol('s')], c: 10n, d: new Date(0), e: NaN, f: Infinity, g: 'x', h: new Map([[1, 2]]), i: -0, j: 1.5 };",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!({ "b": [1, null, null, null], "c": "10", "d": "1970-01-01T00:00:00.000Z", "e": null, "f": null, "g": "x", "h": {}, "i": 0, "j": 1.5 })
    );
    assert_eq!(run("return undefined;", &fake).await.unwrap(), Value::Null);
    assert_eq!(run("const x = 1;", &fake).await.unwrap(), Value::Null);
    assert_eq!(run("return () => 1;", &fake).await.unwrap(), Value::Null);
    assert_eq!(run("return 'text';", &fake).await.unwrap(), json!("text"));
    let got = run("const o = {}; o.self = o; return o;", &fake)
        .await
        .unwrap_err();
    assert_eq!(
        got,
        err(
            ErrorKind::Runtime,
            "the script's return value cannot be turned into JSON: circular reference",
            None,
            None
        )
    );
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn workflow_script_errors_carry_line_and_column() {
    let fake = Fake::echo();
    let got = run("const a = 1;\n\n  null.foo;", &fake).await.unwrap_err();
    assert_eq!(
        got,
        err(
            ErrorKind::Runtime,
            "TypeError: cannot read property 'foo' of null",
            Some(4),
            Some(3)
        )
    );
    assert_eq!(
        got.to_string(),
        "TypeError: cannot read property 'foo' of null (at 4:3)"
    );
    // After an await, inside a helper.
    let got = run(
        "function check(x) {\n  if (!x) throw new Error('empty answer');\n}\ncheck(await agent('x') === 'nope');",
        &fake,
    )
    .await
    .unwrap_err();
    // QuickJS places a `throw new Error(…)` at `Error`.
    assert_eq!(
        got,
        err(ErrorKind::Runtime, "empty answer", Some(3), Some(21))
    );
    // A thrown non-Error has no position.
    let got = run("throw 'oops';", &fake).await.unwrap_err();
    assert_eq!(
        got,
        err(ErrorKind::Runtime, "the script threw oops", None, None)
    );
    let got = run("throw { code: 7 };", &fake).await.unwrap_err();
    assert_eq!(got.message, "the script threw {\"code\":7}");
}

#[tokio::test]
async fn workflow_ends_without_waiting_for_calls_it_did_not_await() {
    // The driver never answers; the script does not wait: the run ends at once and
    // the call's future is dropped (never completed).
    let never = Fake::with(Arc::new(|_, _| Box::pin(std::future::pending())));
    let started = Instant::now();
    let out = run("agent('fire and forget');\nreturn 'done';", &never)
        .await
        .unwrap();
    assert_eq!(out, json!("done"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(never.events.count_prefix("end:"), 0);
}

#[tokio::test]
async fn workflow_atomics_wait_cannot_block_the_script_thread() {
    let fake = Fake::echo();
    let out = run(
        "try { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); } catch (e) { return e.message; }",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(out, json!("cannot block in this thread"));
}

#[tokio::test]
async fn workflow_waiting_on_nothing_fails_instead_of_hanging() {
    let fake = Fake::echo();
    let got = run("await new Promise(() => {});", &fake)
        .await
        .unwrap_err();
    assert_eq!(
        got,
        err(
            ErrorKind::Runtime,
            "the script is waiting for a promise that nothing will settle (no agent call or timer is pending)",
            None,
            None
        )
    );
}

#[tokio::test]
async fn workflow_set_timeout_uses_a_real_timer() {
    let fake = Fake::echo();
    let out = run(
        "const order = [];\n\
         const t = setTimeout(() => order.push('cleared'), 5);\n\
         clearTimeout(t);\n\
         await new Promise((resolve) => setTimeout((a, b) => { order.push(a + b); resolve(); }, 20, 'x', 'y'));\n\
         await new Promise((resolve) => setTimeout(resolve, -5));\n\
         let msg; try { setTimeout('code', 1); } catch (e) { msg = e.message; }\n\
         return [order, msg];",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!([
            ["xy"],
            "setTimeout(fn, ms): fn must be a function (strings of code are not run)"
        ])
    );
    // An error thrown by a timer callback fails the run.
    let got = run(
        "setTimeout(() => { throw new Error('late'); }, 1);\nawait new Promise((r) => setTimeout(r, 200));",
        &fake,
    )
    .await
    .unwrap_err();
    assert_eq!(got, err(ErrorKind::Runtime, "late", Some(2), Some(30)));
}

// ---------------------------------------------------------------- forbidden globals

#[tokio::test]
async fn workflow_forbidden_globals_throw_and_say_why() {
    let fake = Fake::echo();
    let out = run(
        "const probes = {\n\
           'Date.now': () => Date.now(),\n\
           'Math.random': () => Math.random(),\n\
           'new Date()': () => new Date(),\n\
           'Date()': () => Date(),\n\
           'eval': () => eval('1 + 1'),\n\
           'indirect eval': () => (0, globalThis.eval)('1'),\n\
           'new Function': () => new Function('return 1'),\n\
           'Function': () => Function('return 1'),\n\
           'constructor': () => (function () {}).constructor('return 1'),\n\
           'async constructor': () => (async function () {}).constructor('return 1'),\n\
           'performance.now': () => performance.now(),\n\
         };\n\
         const out = {};\n\
         for (const [k, f] of Object.entries(probes)) {\n\
           try { f(); out[k] = 'no error'; } catch (e) { out[k] = e.message; }\n\
         }\n\
         try { await import('fs'); } catch (e) { out['import()'] = e.message; }\n\
         out.allowed = [new Date(0).toISOString(), new Date('2024-01-02T00:00:00Z').getTime(), Date.UTC(2020, 0, 1),\n\
                        (() => 1) instanceof Function, new Date(5) instanceof Date, typeof Math.floor(2.5)];\n\
         return out;",
        &fake,
    )
    .await
    .unwrap();
    let time = "the current time would make a resumed run differ";
    assert_eq!(
        out,
        json!({
            "Date.now": format!("Date.now() is not available in a workflow: {time}; pass a timestamp in `args` and use new Date(value)"),
            "Math.random": "Math.random() is not available in a workflow: random numbers would make a resumed run differ; derive variation from `args` or an item's index instead",
            "new Date()": format!("new Date() without an argument is not available in a workflow: {time}; pass a timestamp in `args` and use new Date(value)"),
            "Date()": "Date() is not available in a workflow: called without `new` it returns the current time, which would make a resumed run differ; use new Date(value)",
            "eval": "eval() is not available in a workflow: code must be written in the script itself, where a run can be reviewed and resumed; write the code directly instead",
            "indirect eval": "eval() is not available in a workflow: code must be written in the script itself, where a run can be reviewed and resumed; write the code directly instead",
            "new Function": "new Function() / Function() is not available in a workflow: code must be written in the script itself; write a function expression (`(a, b) => …`) instead",
            "Function": "new Function() / Function() is not available in a workflow: code must be written in the script itself; write a function expression (`(a, b) => …`) instead",
            "constructor": "new Function() / Function() is not available in a workflow: code must be written in the script itself; write a function expression (`(a, b) => …`) instead",
            "async constructor": "new Function() / Function() is not available in a workflow: code must be written in the script itself; write a function expression (`(a, b) => …`) instead",
            "performance.now": format!("performance.now() is not available in a workflow: {time}; count agent calls or items instead of measuring time"),
            "import()": "import is not available in a workflow: a workflow is one self-contained script (modules cannot be loaded); put helper code in the script, or run another workflow with workflow(name)",
            "allowed": ["1970-01-01T00:00:00.000Z", 1704153600000i64, 1577836800000i64, true, true, "number"],
        })
    );
}

// ---------------------------------------------------------------- limits

#[tokio::test]
async fn workflow_cpu_limit_stops_an_endless_loop() {
    let fake = Fake::echo();
    let limits = Limits {
        cpu_time: Duration::from_millis(200),
        ..Limits::default()
    };
    let want = err(
        ErrorKind::Limit(LimitKind::CpuTime),
        "the script used more than its CPU-time limit of 200 ms (time spent waiting for agents is not counted)",
        None,
        None,
    );
    let got = run_with(
        "while (true) {}",
        None,
        &fake,
        limits.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(got, want);
    // Catching does not help, and a loop inside a later job is stopped too.
    let got = run_with(
        "await agent('x');\ntry { for (;;) {} } catch (e) {}\nreturn 'escaped';",
        None,
        &fake,
        limits,
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(got, want);
}

#[tokio::test]
async fn workflow_cpu_time_excludes_agent_waits() {
    let fake = Fake::with(Arc::new(|call, _| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            AgentReply::Completed {
                text: call.script_prompt,
            }
        })
    }));
    let limits = Limits {
        cpu_time: Duration::from_millis(100),
        ..Limits::default()
    };
    let out = run_with(
        "const a = await agent('a');\nconst b = await agent('b');\nawait new Promise((r) => setTimeout(r, 100));\nreturn a + b;",
        None,
        &fake,
        limits,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(out, json!("ab"));
}

#[tokio::test]
async fn workflow_cancel_stops_a_running_loop_and_a_waiting_script() {
    let fake = Fake::echo();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.cancel();
    });
    let started = Instant::now();
    let got = run_with("while (true) {}", None, &fake, Limits::default(), cancel)
        .await
        .unwrap_err();
    assert_eq!(
        got,
        err(ErrorKind::Cancelled, "the run was cancelled", None, None)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped well before the 10 s CPU limit"
    );

    // Waiting for an agent that never answers.
    let never = Fake::with(Arc::new(|_, _| Box::pin(std::future::pending())));
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.cancel();
    });
    let got = run_with(
        "await agent('forever');",
        None,
        &never,
        Limits::default(),
        cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(got.kind, ErrorKind::Cancelled);
    assert_eq!(never.events.count_prefix("end:"), 0);
}

#[tokio::test]
async fn workflow_heap_limit_stops_a_memory_bomb() {
    let fake = Fake::echo();
    let want = err(
        ErrorKind::Limit(LimitKind::Heap),
        "the script passed its heap limit of 64 MiB",
        None,
        None,
    );
    let got = run(
        "const a = [];\nwhile (true) a.push('x'.repeat(1 << 20) + a.length);",
        &fake,
    )
    .await
    .unwrap_err();
    assert_eq!(got, want);
    // Catching the out-of-memory error does not let the script go on.
    let got = run(
        "const a = [];\ntry { while (true) a.push(new Array(1 << 20).fill(a.length)); } catch (e) { a.length = 0; }\nreturn 'escaped';",
        &fake,
    )
    .await
    .unwrap_err();
    assert_eq!(got, want);
}

#[tokio::test]
async fn workflow_stack_limit_names_the_limit() {
    let fake = Fake::echo();
    let got = run("function f(n) { return f(n + 1) + 1; }\nf(0);", &fake)
        .await
        .unwrap_err();
    assert_eq!(got.kind, ErrorKind::Limit(LimitKind::Stack));
    assert_eq!(
        got.message,
        "the script passed its stack limit of 1 MiB (too deep a recursion?)"
    );
    assert_eq!(got.line, Some(2));
}

// ---------------------------------------------------------------- schema module

#[test]
fn workflow_schema_validator_names_paths() {
    let schema = json!({
        "type": "object",
        "required": ["name", "tags", "kind"],
        "additionalProperties": false,
        "properties": {
            "name": { "type": "string", "minLength": 2, "maxLength": 4 },
            "tags": { "type": "array", "minItems": 1, "maxItems": 2, "items": { "type": ["string", "null"] } },
            "kind": { "enum": ["bug", "smell"] },
            "v": { "const": 1 },
            "n": { "type": "number", "minimum": 0, "maximum": 1 },
            "x": { "anyOf": [{ "type": "string" }, { "type": "integer" }] },
            "y": { "oneOf": [{ "type": "integer" }, { "type": "number" }] },
            "odd key": { "type": "boolean" }
        }
    });
    schema::check_schema(&schema).unwrap();
    let ok = json!({ "name": "ab", "tags": ["t", null], "kind": "bug", "v": 1.0, "n": 0.5, "x": 3, "y": 1.5, "odd key": true });
    assert_eq!(schema::validate(&ok, &schema), Ok(()));
    let bad = json!({ "name": "a", "tags": [1, "a", "b"], "kind": "other", "v": 2, "n": 2, "x": 1.5, "y": 1, "odd key": 1, "extra": 0 });
    assert_eq!(
        schema::validate(&bad, &schema).unwrap_err(),
        vec![
            "$: unexpected property `extra` (additionalProperties is false)",
            "$.kind: must be one of \"bug\", \"smell\" (got \"other\")",
            "$.n: must be <= 1, got 2",
            "$.name: expected at least 2 characters, got 1",
            "$[\"odd key\"]: expected boolean, got number",
            "$.tags: expected at most 2 items, got 3",
            "$.tags[0]: expected string or null, got number",
            "$.v: must be 1 (got 2)",
            "$.x: matches none of the anyOf alternatives (#1: $.x: expected string, got number; #2: $.x: expected integer, got number)",
            "$.y: matches 2 of the oneOf alternatives (#1, #2); exactly one must match",
        ]
    );
    assert_eq!(
        schema::validate(&json!({}), &schema).unwrap_err(),
        vec![
            "$: missing required property `name`",
            "$: missing required property `tags`",
            "$: missing required property `kind`",
        ]
    );
    assert_eq!(
        schema::validate(&json!([1]), &json!({ "type": "object" })).unwrap_err(),
        vec!["$: expected object, got array"]
    );
    assert_eq!(
        schema::check_schema(&json!({ "properties": { "a": { "minItems": -1 } } })).unwrap_err(),
        "schema.properties.a.minItems must be a non-negative integer"
    );
    assert_eq!(
        schema::check_schema(&json!({ "items": [{}] })).unwrap_err(),
        "schema.items must be one schema (tuple forms are not supported)"
    );
    assert_eq!(
        schema::check_schema(&json!(3)).unwrap_err(),
        "schema must be an object (or true/false)"
    );
}

#[test]
fn workflow_schema_reads_json_from_replies() {
    assert_eq!(schema::extract_json(" {\"a\": 1} "), Ok(json!({"a": 1})));
    assert_eq!(
        schema::extract_json("first\n```json\n{\"a\": 1}\n```\nthen\n```JSON\n[2]\n```\n"),
        Ok(json!([2]))
    );
    assert_eq!(
        schema::extract_json("look:\n```\n{\"b\": true}\n```"),
        Ok(json!({"b": true}))
    );
    assert_eq!(
        schema::extract_json("```json\n{oops}\n```").unwrap_err(),
        "the last ```json block is not valid JSON (key must be a string at line 1 column 2)"
    );
    assert_eq!(
        schema::extract_json("sure!").unwrap_err(),
        "the reply has no ```json block and is not JSON itself (expected value at line 1 column 1)"
    );
}

#[tokio::test]
async fn workflow_cancelled_before_the_script_starts_is_cancelled_not_internal() {
    // A cancel that lands while the engine is still preparing (its prelude, the
    // compile) must read as a cancel, not as a failure of boo.
    for _ in 0..20 {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let got = run_with(
            "await agent('a');",
            None,
            &Fake::echo(),
            Limits::default(),
            cancel,
        )
        .await
        .unwrap_err();
        assert_eq!(
            got,
            err(ErrorKind::Cancelled, "the run was cancelled", None, None)
        );
    }
}

// ---------------------------------------------------------------- background agents

#[tokio::test]
async fn workflow_background_agent_returns_an_id_at_once_and_result_collects_it() {
    let fake = Fake::with(Arc::new(|call, _| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            AgentReply::Completed {
                text: format!("done: {}", call.script_prompt),
            }
        })
    }));
    let out = run(
        "const id = agent('slow', { background: true, label: 'L' });\n\
         if (typeof id !== 'string') throw new Error('not an id: ' + typeof id);\n\
         const quick = await agent('quick');\n\
         const late = await result(id);\n\
         return [id, quick, late, await result(id)];",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!(["agent-1", "done: quick", "done: slow", "done: slow"])
    );
    // The background agent started before the foreground one, and `background` is not
    // part of the call (nor of its cache key); its other options are.
    let calls = fake.calls();
    assert_eq!(calls[0].script_prompt, "slow");
    assert!(calls[0].opts.raw.get("background").is_none());
    assert_eq!(calls[0].opts.label.as_deref(), Some("L"));
    assert!(
        fake.events.position("start:quick").unwrap() < fake.events.position("end:slow").unwrap()
    );
}

#[tokio::test]
async fn workflow_an_uncollected_background_agent_is_waited_for_before_the_run_ends() {
    let fake = Fake::with(Arc::new(|call, _| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            AgentReply::Failed {
                error: call.script_prompt,
            }
        })
    }));
    let out = run(
        "agent('forgotten', { background: true });\nreturn 'script done';",
        &fake,
    )
    .await
    .unwrap();
    assert_eq!(out, json!("script done"));
    assert!(
        fake.events.position("end:forgotten").is_some(),
        "the run ended before its background agent: {:?}",
        fake.events.all()
    );
}

#[tokio::test]
async fn workflow_result_of_an_unknown_id_and_a_bad_background_flag_say_what_to_pass() {
    let fake = Fake::echo();
    let e = run("return await result('agent-9');", &fake)
        .await
        .unwrap_err();
    assert!(
        e.message
            .contains("result(id): agent-9 is not the id of a background agent of this script"),
        "{e:?}"
    );
    let e = run("agent('x', { background: 'yes' });", &fake)
        .await
        .unwrap_err();
    assert!(
        e.message
            .contains("opts.background must be a boolean, got string"),
        "{e:?}"
    );
    // `background: false` is an ordinary call.
    let out = run("return await agent('x', { background: false });", &fake)
        .await
        .unwrap();
    assert_eq!(out, json!("echo: x"));
}
