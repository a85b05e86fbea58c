//! The workflow module's pure parts: `meta` and the JSON Schema validator.

use super::*;
use serde_json::json;

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
