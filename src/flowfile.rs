//! Authoring flow files: the JSON Schema editors use while you type (taplo, Even
//! Better TOML), `boo flow check FILE` (every rule of the loader, with file and field)
//! and `boo flow new NAME` (a commented starter that passes the check).

use crate::catalog::{parse_flow, Catalog};
use crate::config::Config;
use crate::model::{Band, StepKind};
use clap::Subcommand;
use std::path::{Path, PathBuf};

/// The flow-file schema, as shipped in `schemas/flow.schema.json`.
pub const SCHEMA: &str = include_str!("../schemas/flow.schema.json");

/// The schema's file name next to a project's flows (`<root>/.boo/flow.schema.json`).
pub const SCHEMA_FILE: &str = "flow.schema.json";

#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Check a flow file with every rule boo applies when it loads flows.
    Check {
        /// The flow file (its project's personas in ../personas are known too).
        file: PathBuf,
    },
    /// Write a commented starter flow to ROOT/.boo/flows/NAME.toml (and the schema beside it).
    New {
        /// The flow's name: lower-case letters, digits and '-'.
        name: String,
        /// The project (default: the current directory).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Replace an existing file of that name.
        #[arg(long)]
        force: bool,
    },
    /// Print the JSON Schema of flow files.
    Schema,
}

pub fn run(config: &Config, cmd: FlowCommand) -> i32 {
    match cmd {
        FlowCommand::Check { file } => check(config, &file),
        FlowCommand::New { name, root, force } => {
            let root = root.unwrap_or_else(|| PathBuf::from("."));
            new(config, &name, &root, force)
        }
        FlowCommand::Schema => {
            print!("{SCHEMA}");
            0
        }
    }
}

/// The project a flow file belongs to, when it sits in `<root>/.boo/flows/`.
fn project_of(file: &Path) -> Option<PathBuf> {
    let flows = file.parent()?;
    let dot_boo = flows.parent()?;
    (flows.file_name()? == "flows" && dot_boo.file_name()? == ".boo")
        .then(|| dot_boo.parent().map(Path::to_path_buf))
        .flatten()
}

/// Checks one flow file; prints what it found. 0 when it loads, 1 when it does not.
pub fn check(config: &Config, file: &Path) -> i32 {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("boo: cannot read {}: {e}", file.display());
            return 1;
        }
    };
    let builtin = config.catalog_dir.as_deref();
    let catalog = match project_of(file) {
        Some(root) => Catalog::for_root(&root, builtin),
        None => Catalog::builtin(builtin),
    };
    let shown = file.display().to_string();
    match parse_flow(&shown, &text, &catalog.personas) {
        Ok(flow) => {
            let sizes: Vec<String> = Band::ALL
                .iter()
                .map(|b| {
                    let agents = crate::engine::roster(&flow, *b)
                        .iter()
                        .filter(|s| s.kind == StepKind::Agent)
                        .count();
                    format!("{b} {agents}")
                })
                .collect();
            println!(
                "ok {shown}: flow `{}` ({}), {} steps; agents per band: {}",
                flow.name,
                flow.category.as_str(),
                flow.steps.len(),
                sizes.join(", ")
            );
            if !text.lines().any(|l| l.trim_start().starts_with("#:schema")) {
                println!(
                    "note: no `#:schema` line; add `#:schema ../{SCHEMA_FILE}` at the top (`boo flow new` writes the schema to .boo/{SCHEMA_FILE}) so your editor completes and checks the file"
                );
            }
            0
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "boo: {} problem(s) in {shown}; fix them and run `boo flow check {shown}` again",
                errors.len()
            );
            1
        }
    }
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The commented starter flow `boo flow new NAME` writes.
pub fn starter(name: &str) -> String {
    STARTER.replace("{{name}}", name)
}

const STARTER: &str = r#"#:schema ../flow.schema.json
# A boo flow. `boo flow check` checks this file; `boo flows --root .` lists it;
# `boo run {{name}} --root . "your question"` runs it. Editors that read `#:schema`
# (taplo, Even Better TOML) complete and check it as you type.

# Must equal the file name. Lower-case letters, digits and '-'.
name = "{{name}}"
title = "My flow"
# One of: analysis, discovery, planning, authoring, review (the launcher's tabs).
category = "analysis"
description = "What this flow answers, in one line. More detail may follow on later lines."
# The step whose prose leads the report.
answer = "answer"

# Code steps run boo's built-in functions: git_diff, signals, run_command,
# verify_evidence, merge_findings, render_report.
[[steps]]
id = "signals"
kind = "code"
function = "signals"
label = "Scan the project for signals"

# Agent steps: a persona (personas/*.md, or .boo/personas/*.md in this project) played
# by qwen in read-only plan mode. Write the prompt as plain instructions: boo appends
# the question and the earlier steps' outputs itself.
[[steps]]
id = "analysis"
kind = "agent"
persona = "behavioral-analyst"
after = ["signals"]
label = "Trace the behaviour the question asks about"
prompt = """
Find the code the question is about and follow its main paths from entry point to result. Report what each path does,
where it can go wrong, and the exact lines that show it.
"""

[[steps]]
id = "security"
kind = "agent"
persona = "adversarial-security-analyst"
after = ["signals"]
label = "Security of the same code"
prompt = """
Look at the code the question is about as an attacker would. Name the inputs it trusts and the sensitive actions it
takes, and report every path from such an input to such an action that nothing guards.
"""

# A step with `band = "medium"` (or "large") runs only in that band and above; `when`
# runs it only when the project shows a signal (concurrency, auth, schemas,
# infrastructure, frontend, api, tests, docs, diff).
[[steps]]
id = "tests"
kind = "agent"
persona = "test-engineer"
after = ["signals"]
band = "medium"
when = "tests"
label = "Do the tests cover it?"
prompt = """
Find the tests that exercise the code the question is about and decide whether they would fail if it broke. Report the
behaviour no test would catch, with the test to add for each.
"""

# Checks every citation of the agents before the answer relies on it.
[[steps]]
id = "verify"
kind = "code"
function = "verify_evidence"
after = ["analysis", "security", "tests"]
label = "Check the citations"

[[steps]]
id = "answer"
kind = "agent"
persona = "plan-synthesizer"
after = ["analysis", "security", "tests", "verify"]
label = "Answer"
prompt = """
Answer the question from the earlier steps. Rely on the findings the verification marked verified and list the others
as points to check by hand. End with the next steps, most important first.
"""
"#;

/// Writes `<root>/.boo/flows/<name>.toml` (a starter) and `<root>/.boo/flow.schema.json`.
pub fn new(config: &Config, name: &str, root: &Path, force: bool) -> i32 {
    if !is_slug(name) {
        eprintln!(
            "boo: {name:?} is not a flow name: use lower-case letters, digits and '-' (e.g. cache-review)"
        );
        return 2;
    }
    if !root.is_dir() {
        eprintln!(
            "boo: {} is not a folder: pass the project with --root DIR",
            root.display()
        );
        return 2;
    }
    let dot_boo = root.join(".boo");
    let flows = dot_boo.join("flows");
    let file = flows.join(format!("{name}.toml"));
    if file.exists() && !force {
        eprintln!(
            "boo: {} already exists: edit it, or pass --force to replace it with a new starter",
            file.display()
        );
        return 1;
    }
    let text = starter(name);
    // The starter must load with this binary's catalog: a broken starter is boo's bug.
    let personas = Catalog::for_root(root, config.catalog_dir.as_deref()).personas;
    if let Err(errors) = parse_flow(&format!("{name}.toml"), &text, &personas) {
        for e in errors {
            eprintln!("boo: the starter does not load here: {e}");
        }
        return 1;
    }
    let written = std::fs::create_dir_all(&flows)
        .and_then(|()| std::fs::write(dot_boo.join(SCHEMA_FILE), SCHEMA))
        .and_then(|()| std::fs::write(&file, text));
    match written {
        Ok(()) => {
            println!(
                "wrote {} (and .boo/{SCHEMA_FILE} for your editor); check it with `boo flow check {}`",
                file.display(),
                file.display()
            );
            0
        }
        Err(e) => {
            eprintln!(
                "boo: cannot write {}: {e} — check the folder's permissions",
                file.display()
            );
            1
        }
    }
}

#[cfg(test)]
mod tests;
