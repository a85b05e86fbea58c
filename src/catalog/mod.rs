//! Loading and validating the catalog: flows (`flows/*.toml`) and personas
//! (`personas/*.md`). The built-in catalog is embedded in the binary; a project may add
//! flows and personas in `<root>/.boo/flows/` and `<root>/.boo/personas/`. A project
//! entry never replaces a built-in one: one whose name is taken is kept under
//! `project:<name>` (and the project's flows are pointed at the project's persona).
//! Whether a project flow may run is the trust store's question, not the catalog's.
//! One broken file never hides the others: every problem is collected with its file
//! and field.

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/catalog_files.rs"));
}
pub mod workflows;

use crate::codesteps::{CodeFn, Signal};
use crate::engine::{self, Cond, FlowDef, StepDef};
use crate::model::{Band, Category, StepKind};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    pub name: String,
    pub title: String,
    pub lens: String,
    pub brief: String,
    pub source: String,
}

/// A problem with one catalog file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogError {
    pub file: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.field, self.message)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub flows: BTreeMap<String, FlowDef>,
    pub personas: BTreeMap<String, Persona>,
    pub errors: Vec<CatalogError>,
    /// The keys of `flows` that came from the project (`<root>/.boo/`).
    pub project_flows: BTreeSet<String>,
}

/// The prefix of a project entry whose name a built-in one already has.
pub const PROJECT_PREFIX: &str = "project:";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    name: String,
    title: String,
    category: String,
    description: String,
    #[serde(default)]
    answer: Option<toml::Value>,
    #[serde(default)]
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    kind: String,
    #[serde(default)]
    persona: Option<String>,
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    args: Option<toml::Table>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    band: Option<String>,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    /// Agent steps: `false` leaves the run's attached images out of its prompts.
    #[serde(default)]
    attachments: Option<bool>,
    /// Agent steps: `true` gives the agent boo's tools to start background children.
    #[serde(default)]
    spawn: Option<bool>,
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn stem(file: &str) -> &str {
    let base = file.rsplit('/').next().unwrap_or(file);
    base.split('.').next().unwrap_or(base)
}

/// Parses a persona file: front matter (`name`, `title`, `lens`) then the brief.
pub fn parse_persona(file: &str, text: &str) -> Result<Persona, Vec<CatalogError>> {
    let err = |field: &str, message: String| CatalogError {
        file: file.to_string(),
        field: field.to_string(),
        message,
    };
    let text = text.replace("\r\n", "\n");
    let Some(rest) = text.strip_prefix("---\n") else {
        return Err(vec![err(
            "front matter",
            "the file must start with a `---` line, then `name:`, `title:` and `lens:` lines, then `---`".into(),
        )]);
    };
    let Some(end) = rest.find("\n---") else {
        return Err(vec![err("front matter", "no closing `---` line".into())]);
    };
    let (head, body) = rest.split_at(end);
    let body = body.trim_start_matches("\n---").trim().to_string();
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut errors = Vec::new();
    for line in head.lines().filter(|l| !l.trim().is_empty()) {
        match line.split_once(':') {
            Some((k, v)) => {
                fields.insert(k.trim().to_string(), v.trim().to_string());
            }
            None => errors.push(err(
                "front matter",
                format!("{line:?} is not a `key: value` line"),
            )),
        }
    }
    let mut get = |k: &str| match fields.get(k) {
        Some(v) if !v.is_empty() => v.clone(),
        _ => {
            errors.push(err(k, "missing or empty".into()));
            String::new()
        }
    };
    let (name, title, lens) = (get("name"), get("title"), get("lens"));
    if !name.is_empty() && name != stem(file) {
        errors.push(err(
            "name",
            format!("{name:?} must equal the file name {:?}", stem(file)),
        ));
    }
    if body.is_empty() {
        errors.push(err(
            "brief",
            "the persona has no brief after the front matter".into(),
        ));
    }
    if errors.is_empty() {
        Ok(Persona {
            name,
            title,
            lens,
            brief: body,
            source: file.to_string(),
        })
    } else {
        Err(errors)
    }
}

/// Parses and validates one flow file against the known personas.
pub fn parse_flow(
    file: &str,
    text: &str,
    personas: &BTreeMap<String, Persona>,
) -> Result<FlowDef, Vec<CatalogError>> {
    let err = |field: String, message: String| CatalogError {
        file: file.to_string(),
        field,
        message,
    };
    let raw: RawFlow = toml::from_str(text).map_err(|e| {
        vec![err(
            String::new(),
            format!("not a valid flow file: {}", e.to_string().trim()),
        )]
    })?;
    let mut errors = Vec::new();
    if !is_slug(&raw.name) {
        errors.push(err(
            "name".into(),
            format!("{:?} must use only a-z, 0-9 and -", raw.name),
        ));
    } else if raw.name != stem(file) {
        errors.push(err(
            "name".into(),
            format!("{:?} must equal the file name {:?}", raw.name, stem(file)),
        ));
    }
    let category = match raw.category.parse::<Category>() {
        Ok(c) => Some(c),
        Err(e) => {
            errors.push(err("category".into(), e));
            None
        }
    };
    if raw.title.trim().is_empty() {
        errors.push(err("title".into(), "must not be empty".into()));
    }
    if raw.steps.is_empty() {
        errors.push(err("steps".into(), "a flow needs at least one step".into()));
    }
    let mut seen = BTreeSet::new();
    let mut steps = Vec::new();
    for (i, s) in raw.steps.iter().enumerate() {
        let at = |f: &str| format!("steps[{i}] ({}).{f}", s.id);
        if !is_slug(&s.id) {
            errors.push(err(
                at("id"),
                format!("{:?} must use only a-z, 0-9 and -", s.id),
            ));
        }
        if !seen.insert(s.id.clone()) {
            errors.push(err(at("id"), format!("duplicate step id {:?}", s.id)));
        }
        let kind = match s.kind.parse::<StepKind>() {
            Ok(StepKind::Script) => {
                errors.push(err(
                    at("kind"),
                    "a flow step is \"agent\" or \"code\"; \"script\" steps belong to workflow runs".into(),
                ));
                continue;
            }
            Ok(k) => k,
            Err(e) => {
                errors.push(err(at("kind"), e));
                continue;
            }
        };
        let band = match s.band.as_deref().unwrap_or("small").parse::<Band>() {
            Ok(b) => b,
            Err(e) => {
                errors.push(err(at("band"), e));
                Band::Small
            }
        };
        let agent = match kind {
            StepKind::Agent => {
                if s.function.is_some() {
                    errors.push(err(
                        at("function"),
                        "agent steps name a persona, not a function".into(),
                    ));
                }
                match &s.persona {
                    Some(p) if personas.contains_key(p) => p.clone(),
                    Some(p) => {
                        errors.push(err(
                            at("persona"),
                            format!("unknown persona {p:?} (no personas/{p}.md)"),
                        ));
                        p.clone()
                    }
                    None => {
                        errors.push(err(at("persona"), "an agent step needs a persona".into()));
                        String::new()
                    }
                }
            }
            StepKind::Code => {
                if s.persona.is_some() {
                    errors.push(err(
                        at("persona"),
                        "code steps name a function, not a persona".into(),
                    ));
                }
                match &s.function {
                    Some(f) => match CodeFn::parse(f) {
                        Ok(function) => function.as_str().to_string(),
                        Err(e) => {
                            errors.push(err(at("function"), e.to_string()));
                            f.clone()
                        }
                    },
                    None => {
                        errors.push(err(at("function"), "a code step needs a function".into()));
                        String::new()
                    }
                }
            }
            // Refused above.
            StepKind::Script => continue,
        };
        let prompt = s.prompt.clone().unwrap_or_default();
        if kind == StepKind::Agent && prompt.trim().is_empty() {
            errors.push(err(at("prompt"), "an agent step needs a prompt".into()));
        }
        if kind == StepKind::Code && s.attachments.is_some() {
            errors.push(err(
                at("attachments"),
                "only agent steps take the run's images; remove `attachments` from this code step"
                    .into(),
            ));
        }
        if kind == StepKind::Code && s.spawn.is_some() {
            errors.push(err(
                at("spawn"),
                "only agent steps can start background agents; remove `spawn` from this code step"
                    .into(),
            ));
        }
        let when = match &s.when {
            None => None,
            Some(w) => match Cond::parse(w) {
                Ok(c) => {
                    let mut names = Vec::new();
                    c.signals(&mut names);
                    for n in names {
                        if let Err(e) = Signal::parse(&n) {
                            errors.push(err(at("when"), e.to_string()));
                        }
                    }
                    Some(c)
                }
                Err(e) => {
                    errors.push(err(at("when"), format!("{w:?}: {e}")));
                    None
                }
            },
        };
        let args = match &s.args {
            Some(t) => serde_json::to_value(t).unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::Object(Default::default()),
        };
        steps.push(StepDef {
            id: s.id.clone(),
            kind,
            agent,
            label: s.label.clone().unwrap_or_else(|| s.id.clone()),
            after: s.after.clone(),
            band,
            when,
            prompt,
            args,
            attachments: s.attachments.unwrap_or(true),
            spawn: s.spawn.unwrap_or(false),
        });
    }
    // Dependencies: known, within the band, acyclic; conditions need a signals step upstream.
    let by_id: BTreeMap<&str, &StepDef> = steps.iter().map(|s| (s.id.as_str(), s)).collect();
    for s in &steps {
        for d in &s.after {
            // A dependency on a larger band is optional: dropped where it does not run.
            if !by_id.contains_key(d.as_str()) {
                errors.push(err(
                    format!("steps ({}).after", s.id),
                    format!("unknown step {d:?}"),
                ));
            }
        }
    }
    if errors.is_empty() {
        if let Err(e) = engine::levels(steps.iter().map(|s| (s.id.as_str(), s.after.as_slice()))) {
            errors.push(err("steps".into(), e));
        }
    }
    if errors.is_empty() {
        for s in steps.iter().filter(|s| s.when.is_some()) {
            let signals_upstream = upstream(&by_id, &s.id).iter().any(|u| {
                by_id.get(u.as_str()).is_some_and(|d| {
                    d.kind == StepKind::Code
                        && d.agent == CodeFn::Signals.as_str()
                        && d.band <= s.band
                })
            });
            if !signals_upstream {
                errors.push(err(
                    format!("steps ({}).when", s.id),
                    "a condition needs the `signals` code step among the step's dependencies"
                        .into(),
                ));
            }
        }
        for band in Band::ALL {
            if !steps
                .iter()
                .any(|s| s.band <= band && s.kind == StepKind::Agent)
            {
                errors.push(err(
                    "steps".into(),
                    format!("band {band} has no agent step"),
                ));
            }
        }
    }
    let answer: Vec<String> = match &raw.answer {
        None => Vec::new(),
        Some(toml::Value::String(s)) => vec![s.clone()],
        Some(toml::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(_) => {
            errors.push(err(
                "answer".into(),
                "a step id or a list of step ids".into(),
            ));
            Vec::new()
        }
    };
    for a in &answer {
        if !by_id.contains_key(a.as_str()) {
            errors.push(err("answer".into(), format!("unknown step {a:?}")));
        }
    }
    match (errors.is_empty(), category) {
        (true, Some(category)) => Ok(FlowDef {
            name: raw.name,
            title: raw.title,
            category,
            description: raw.description,
            answer,
            steps,
            source: file.to_string(),
        }),
        _ => Err(errors),
    }
}

fn upstream(by_id: &BTreeMap<&str, &StepDef>, id: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![id.to_string()];
    while let Some(cur) = stack.pop() {
        if let Some(s) = by_id.get(cur.as_str()) {
            for d in &s.after {
                if out.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
    }
    out
}

impl Catalog {
    /// Builds a catalog from (file name, text) pairs: personas first, then flows.
    pub fn from_sources(personas: &[(String, String)], flows: &[(String, String)]) -> Catalog {
        let mut cat = Catalog::default();
        cat.add_sources(personas, flows);
        cat
    }

    fn add_sources(&mut self, personas: &[(String, String)], flows: &[(String, String)]) {
        for (file, text) in personas {
            match parse_persona(file, text) {
                Ok(p) => {
                    self.personas.insert(p.name.clone(), p);
                }
                Err(e) => self.errors.extend(e),
            }
        }
        for (file, text) in flows {
            match parse_flow(file, text, &self.personas) {
                Ok(f) => {
                    self.flows.insert(f.name.clone(), f);
                }
                Err(e) => self.errors.extend(e),
            }
        }
    }

    /// The built-in catalog (embedded at build time), or the files under `dir` when
    /// one is configured (`BOO_CATALOG_DIR`, for catalog authors).
    pub fn builtin(dir: Option<&Path>) -> Catalog {
        if let Some(dir) = dir {
            let mut cat = Catalog::default();
            let (p, f) = (
                read_dir(&dir.join("personas"), "md"),
                read_dir(&dir.join("flows"), "toml"),
            );
            cat.add_sources(&p.0, &f.0);
            cat.errors.extend(p.1);
            cat.errors.extend(f.1);
            return cat;
        }
        let own = |files: &[(&str, &str)]| -> Vec<(String, String)> {
            files
                .iter()
                .map(|(n, t)| (format!("builtin:{n}"), t.to_string()))
                .collect()
        };
        Catalog::from_sources(&own(embedded::PERSONA_FILES), &own(embedded::FLOW_FILES))
    }

    /// The built-in catalog plus the project's own flows and personas under `<root>/.boo/`.
    pub fn for_root(root: &Path, builtin_dir: Option<&Path>) -> Catalog {
        let mut cat = Catalog::builtin(builtin_dir);
        let (p, perr) = read_dir(&root.join(".boo").join("personas"), "md");
        let (f, ferr) = read_dir(&root.join(".boo").join("flows"), "toml");
        cat.errors.extend(perr);
        cat.errors.extend(ferr);
        cat.add_project_sources(&p, &f);
        cat
    }

    /// Adds the project's personas and flows beside the built-in ones, never over
    /// them: a taken name is qualified with [`PROJECT_PREFIX`].
    fn add_project_sources(&mut self, personas: &[(String, String)], flows: &[(String, String)]) {
        // What the project's flows see: the built-in personas, then the project's own
        // under their plain names.
        let mut seen_by_project = self.personas.clone();
        let mut renamed = BTreeSet::new();
        for (file, text) in personas {
            match parse_persona(file, text) {
                Ok(p) => {
                    let key = if self.personas.contains_key(&p.name) {
                        renamed.insert(p.name.clone());
                        format!("{PROJECT_PREFIX}{}", p.name)
                    } else {
                        p.name.clone()
                    };
                    seen_by_project.insert(p.name.clone(), p.clone());
                    self.personas.insert(key, p);
                }
                Err(e) => self.errors.extend(e),
            }
        }
        for (file, text) in flows {
            match parse_flow(file, text, &seen_by_project) {
                Ok(mut f) => {
                    for s in f.steps.iter_mut() {
                        if s.kind == StepKind::Agent && renamed.contains(&s.agent) {
                            s.agent = format!("{PROJECT_PREFIX}{}", s.agent);
                        }
                    }
                    if self.flows.contains_key(&f.name) {
                        f.name = format!("{PROJECT_PREFIX}{}", f.name);
                    }
                    self.project_flows.insert(f.name.clone());
                    self.flows.insert(f.name.clone(), f);
                }
                Err(e) => self.errors.extend(e),
            }
        }
    }

    pub fn flow(&self, name: &str) -> Option<&FlowDef> {
        self.flows.get(name)
    }

    /// Whether the flow `name` came from the project (and so needs a trusted root).
    pub fn is_project(&self, name: &str) -> bool {
        self.project_flows.contains(name)
    }
}

/// The largest flow or persona file the loader reads.
pub const FILE_CAP: u64 = 256 * 1024;

/// The `*.{ext}` files of `dir` as (path, text), sorted by name. A project's catalog
/// folder is untrusted input: only regular files are read (never through a symbolic
/// link, never a FIFO or a device, and opening never blocks), each up to
/// [`FILE_CAP`]; anything else is an error naming the file, and the rest still load.
fn read_dir(dir: &Path, ext: &str) -> (Vec<(String, String)>, Vec<CatalogError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    // The folder itself must not be a link out of the root either.
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            errors.push(unreadable(
                dir,
                "is not a folder (a symbolic link or a file); make it a plain folder",
            ));
            return (files, errors);
        }
        Err(_) => return (files, errors),
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (files, errors);
    };
    let mut paths: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    paths.sort();
    for p in paths {
        match read_catalog_file(&p) {
            Ok(t) => files.push((p.display().to_string(), t)),
            Err(why) => errors.push(unreadable(&p, &why)),
        }
    }
    (files, errors)
}

fn unreadable(p: &Path, why: &str) -> CatalogError {
    CatalogError {
        file: p.display().to_string(),
        field: String::new(),
        message: format!("cannot read: {why}"),
    }
}

/// The text of one catalog file, or why it is refused.
fn read_catalog_file(p: &Path) -> Result<String, String> {
    match crate::project::read_regular(p, FILE_CAP + 1) {
        Ok(Some(bytes)) if bytes.len() as u64 > FILE_CAP => Err(format!(
            "larger than {} KiB; a flow, persona or workflow file is a few KiB",
            FILE_CAP / 1024
        )),
        Ok(Some(bytes)) => String::from_utf8(bytes)
            .map_err(|_| "not UTF-8 text; save it as UTF-8".to_string()),
        Ok(None) => Err(
            "not a regular file (a symbolic link, a FIFO or a device); replace it with the file itself"
                .to_string(),
        ),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
