//! The workflow catalog: JavaScript workflows (DESIGN.md, "Workflows") found in four
//! places, in this order:
//!
//! 1. built-in: `workflows/*.js` of this repository, embedded in the binary (or read
//!    from `BOO_CATALOG_DIR/workflows` for catalog authors);
//! 2. user: `$XDG_CONFIG_HOME/boo/workflows/` (the user's own; one there replaces a
//!    built-in of the same name, since the user chose it);
//! 3. project: `<root>/.boo/workflows/` and `<root>/.claude/workflows/` (a team's
//!    Claude Code scripts run unmodified). The repository is untrusted input: a
//!    project workflow never replaces a built-in or user one — whose name is taken is
//!    listed as `project:<name>` — and it runs only in a trusted root (the trust
//!    store's question, answered at launch).
//!
//! Files are `*.js` and `*.mjs`. A workflow's name is its `meta.name`. Every file is
//! checked the way a launch checks it (`meta` read as a pure literal, the whole
//! script compiled), so a broken one is listed as an error with its line and column
//! and never hides the others. Project folders are read like the flow loader reads
//! `.boo/flows`: regular files only (no links, FIFOs or devices, never a blocking
//! open), each at most the catalog's `FILE_CAP`, and the folders themselves must be plain
//! folders inside the root. The user's folder is the user's own: links there are
//! followed, but what they point at must still be a regular file under the cap.
//! Loading reads files: call it off the protocol's thread.

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/workflow_files.rs"));
}

use super::{read_catalog_file, PROJECT_PREFIX};
use crate::workflow::{check_syntax, Meta};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The script API's TypeScript declarations (`boo workflow init` writes it next to a
/// new script).
pub const DECLARATIONS: &str = embedded::DECLARATIONS;

/// The name of [`DECLARATIONS`] on disk.
pub const DECLARATIONS_FILE: &str = "boo-workflow.d.ts";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorkflowSource {
    Builtin,
    User,
    Project,
}

impl WorkflowSource {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowSource::Builtin => "builtin",
            WorkflowSource::User => "user",
            WorkflowSource::Project => "project",
        }
    }
}

/// One workflow of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowEntry {
    /// The name it is listed and launched under (`project:<name>` when a project
    /// workflow's own name is taken).
    pub name: String,
    pub meta: Meta,
    pub source: WorkflowSource,
    /// The file it was read from (`builtin:workflows/<file>` for the copy inside boo).
    pub path: String,
    /// The source text.
    pub script: String,
}

/// A workflow file that cannot be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowError {
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
}

impl std::fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Where workflows are looked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkflowDirs<'a> {
    /// `BOO_CATALOG_DIR`: the built-in catalog from `<dir>/workflows` instead of the
    /// copy inside the binary.
    pub builtin_dir: Option<&'a Path>,
    /// `$XDG_CONFIG_HOME/boo/workflows`.
    pub user_dir: Option<&'a Path>,
    /// The project root (its `.boo/workflows` and `.claude/workflows`).
    pub root: Option<&'a Path>,
}

/// The project folders workflows are read from, relative to the root.
pub const PROJECT_DIRS: [&str; 2] = [".boo/workflows", ".claude/workflows"];

#[derive(Debug, Clone, Default)]
pub struct WorkflowCatalog {
    pub workflows: BTreeMap<String, WorkflowEntry>,
    pub errors: Vec<WorkflowError>,
}

impl WorkflowCatalog {
    /// Every workflow the given places hold.
    pub fn load(dirs: WorkflowDirs<'_>) -> WorkflowCatalog {
        let mut cat = WorkflowCatalog::default();
        match dirs.builtin_dir {
            Some(d) => {
                let files = cat.read_folder(&d.join("workflows"), FollowLinks::No, None);
                cat.add_tier(files, WorkflowSource::Builtin);
            }
            None => {
                let files = embedded::WORKFLOW_FILES
                    .iter()
                    .map(|(n, t)| (format!("builtin:{n}"), t.to_string()))
                    .collect();
                cat.add_tier(files, WorkflowSource::Builtin);
            }
        }
        if let Some(d) = dirs.user_dir {
            let files = cat.read_folder(d, FollowLinks::Yes, None);
            cat.add_tier(files, WorkflowSource::User);
        }
        if let Some(root) = dirs.root {
            let mut files = Vec::new();
            for rel in PROJECT_DIRS {
                files.extend(cat.read_folder(&root.join(rel), FollowLinks::No, Some(root)));
            }
            cat.add_tier(files, WorkflowSource::Project);
        }
        cat
    }

    pub fn get(&self, name: &str) -> Option<&WorkflowEntry> {
        self.workflows.get(name)
    }

    /// The names, for a message listing what exists.
    pub fn names(&self) -> String {
        if self.workflows.is_empty() {
            return "(none)".into();
        }
        self.workflows
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Adds one place's files. Within one tier a name is used once (the first file by
    /// path wins; the other is an error). A user workflow replaces a built-in one; a
    /// project workflow whose name is taken is qualified instead.
    fn add_tier(&mut self, files: Vec<(String, String)>, source: WorkflowSource) {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (file, text) in files {
            let meta = match check_syntax(&text) {
                Ok(m) => m,
                Err(e) => {
                    self.errors.push(WorkflowError {
                        file,
                        line: e.line,
                        column: e.column,
                        message: e.message,
                    });
                    continue;
                }
            };
            if let Some(problem) = name_problem(&meta.name) {
                self.error(&file, format!("meta.name {:?} {problem}", meta.name));
                continue;
            }
            if let Some(first) = seen.get(&meta.name) {
                self.error(
                    &file,
                    format!(
                        "the name {:?} is already used by {first}; give one of them another meta.name",
                        meta.name
                    ),
                );
                continue;
            }
            seen.insert(meta.name.clone(), file.clone());
            let name = match (source, self.workflows.get(&meta.name)) {
                (WorkflowSource::Project, Some(_)) => format!("{PROJECT_PREFIX}{}", meta.name),
                _ => meta.name.clone(),
            };
            self.workflows.insert(
                name.clone(),
                WorkflowEntry {
                    name,
                    meta,
                    source,
                    path: file,
                    script: text,
                },
            );
        }
    }

    fn error(&mut self, file: &str, message: String) {
        self.errors.push(WorkflowError {
            file: file.to_string(),
            line: None,
            column: None,
            message,
        });
    }

    /// The `*.js` / `*.mjs` files of `dir` as (path, text), sorted by name. With a
    /// `root`, every folder from the root down to `dir` must be a plain folder (no
    /// link out of the root).
    fn read_folder(
        &mut self,
        dir: &Path,
        follow: FollowLinks,
        root: Option<&Path>,
    ) -> Vec<(String, String)> {
        let mut files = Vec::new();
        if let Some(root) = root {
            if let Err(why) = plain_folders(root, dir) {
                if let Some(why) = why {
                    self.error(&dir.display().to_string(), why);
                }
                return files;
            }
        } else if !dir.is_dir() {
            return files;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return files;
        };
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("js") | Some("mjs")
                )
            })
            .collect();
        paths.sort();
        for p in paths {
            let read = match follow {
                FollowLinks::No => read_catalog_file(&p),
                FollowLinks::Yes => p
                    .canonicalize()
                    .map_err(|e| e.to_string())
                    .and_then(|real| read_catalog_file(&real)),
            };
            match read {
                Ok(t) => files.push((p.display().to_string(), t)),
                Err(why) => self.error(&p.display().to_string(), format!("cannot read: {why}")),
            }
        }
        files
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FollowLinks {
    Yes,
    No,
}

/// Whether every folder from `root` (exclusive) down to `dir` (inclusive) is a plain
/// folder. `Err(None)`: the folder does not exist (nothing to read, no problem);
/// `Err(Some(why))`: it is a link or not a folder.
fn plain_folders(root: &Path, dir: &Path) -> Result<(), Option<String>> {
    let Ok(rel) = dir.strip_prefix(root) else {
        return Err(Some("is not inside the project root".into()));
    };
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Some(format!(
                    "{} is not a folder (a symbolic link or a file); workflows are read only from plain folders inside the project",
                    at.display()
                )))
            }
            Err(_) => return Err(None),
        }
    }
    Ok(())
}

/// Why a `meta.name` cannot name a workflow, if it cannot.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("is empty")
    } else if name.trim() != name {
        Some("starts or ends with spaces")
    } else if name.starts_with(PROJECT_PREFIX) {
        Some("starts with \"project:\", which boo keeps for qualifying project workflows")
    } else if name.chars().any(char::is_control) {
        Some("holds a control character")
    } else if name.chars().count() > 120 {
        Some("is longer than 120 characters")
    } else {
        None
    }
}

/// A relative file reference of `workflow('./x.js')` read from inside the root: the
/// same rules as the project folders (plain folders, a regular file, the cap).
pub fn read_project_script(root: &Path, rel: &str) -> Result<String, String> {
    let rel_path = Path::new(rel);
    if rel_path.is_absolute()
        || rel_path.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
    {
        return Err(format!(
            "{rel:?} is not a path inside the project; name a workflow or a .js file relative to the project root"
        ));
    }
    let path = root.join(rel_path);
    if let Some(parent) = path.parent() {
        if let Err(why) = plain_folders(root, parent) {
            return Err(why.unwrap_or_else(|| format!("no folder {}", parent.display())));
        }
    }
    read_catalog_file(&path).map_err(|why| format!("cannot read {}: {why}", path.display()))
}

#[cfg(test)]
mod tests;
