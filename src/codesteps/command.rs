//! `run_command`: one git command of a shape proven read-only. This is an allow-list:
//! every argument must match a shape written here (a subcommand, a flag of that
//! subcommand, a revision, or a path inside the project); anything else is refused
//! before git starts. The shapes are listed for users in `docs/catalog.md`.
//!
//! What the shapes rule out, by construction:
//! - writing: no ref-changing forms (`branch`/`tag` only list; a name is taken as a
//!   pattern only after `--list`), no `--output`/`-o`, no global options before the
//!   subcommand (`-c`, `-C`, `--git-dir`, `--work-tree`, `--exec-path`);
//! - running programs: no `--ext-diff`, no `--textconv` (boo adds `--no-ext-diff` and
//!   `--no-textconv` itself), no pager, no fsmonitor;
//! - reading outside the project: no option that names a file (`--contents`,
//!   `--no-index`, `-O`, `--exclude-from`, `--ignore-revs-file`), no absolute path, no
//!   `..` component, nothing at or below a symbolic link.

use crate::project::{self, git::Limits};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// How long `run_command` lets its command run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of `run_command`'s output is kept.
pub const OUTPUT_CAP: usize = 32 * 1024;

/// Read-only git subcommands `run_command` accepts.
pub const ALLOWED_GIT: &[&str] = &[
    "log",
    "show",
    "blame",
    "shortlog",
    "ls-files",
    "status",
    "diff",
    "rev-parse",
    "branch",
    "tag",
];

/// What the value of a flag may look like.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// Digits only.
    Number,
    /// `N` or `N,M` / `N,+M` / `N,-M` (a blame line range).
    LineRange,
    /// Any text without control characters (a date, a format, an author).
    Text,
    /// A revision (see [`is_revision`]).
    Revision,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A commit format: a built-in format name, or a template holding `%` (so git never
    /// looks it up as a `pretty.<name>` alias from the repository's config) without
    /// `%G` (signature placeholders run gpg).
    Format,
}

/// One allowed flag.
#[derive(Debug, Clone, Copy)]
enum Flag {
    /// Exactly this argument.
    Switch(&'static str),
    /// `--name=value` (long) or `-Xvalue` (short), the value of the given shape.
    Glued(&'static str, Value),
    /// Like `Glued`, or the name alone followed by the value as the next argument.
    Split(&'static str, Value),
}

use Flag::{Glued, Split, Switch};
use Value::{Format, LineRange, Number, OneOf, Revision, Text};

/// The flags every history-reading subcommand (`log`, `show`) shares.
const HISTORY: &[Flag] = &[
    Switch("--oneline"),
    Switch("--stat"),
    Switch("--shortstat"),
    Switch("--numstat"),
    Switch("--name-only"),
    Switch("--name-status"),
    Switch("--summary"),
    Switch("-p"),
    Switch("--patch"),
    Switch("-s"),
    Switch("--no-patch"),
    Switch("--no-merges"),
    Switch("--merges"),
    Switch("--first-parent"),
    Switch("--reverse"),
    Switch("--graph"),
    Switch("--decorate"),
    Switch("--no-decorate"),
    Switch("--abbrev-commit"),
    Switch("--no-abbrev-commit"),
    Switch("--no-color"),
    Switch("--follow"),
    Switch("--all"),
    Switch("-w"),
    Switch("--ignore-all-space"),
    Switch("-i"),
    Switch("--regexp-ignore-case"),
    Split("-n", Number),
    Glued("--max-count", Number),
    Glued("--skip", Number),
    Glued("-U", Number),
    Glued("--unified", Number),
    Glued("--since", Text),
    Glued("--until", Text),
    Glued("--after", Text),
    Glued("--before", Text),
    Glued("--author", Text),
    Glued("--committer", Text),
    Glued("--grep", Text),
    Glued("--format", Format),
    Glued("--pretty", Format),
    Glued("--date", Text),
    Glued("-S", Text),
    Glued("-G", Text),
];

const DIFF: &[Flag] = &[
    Switch("--stat"),
    Switch("--shortstat"),
    Switch("--numstat"),
    Switch("--name-only"),
    Switch("--name-status"),
    Switch("--summary"),
    Switch("--raw"),
    Switch("-p"),
    Switch("--patch"),
    Switch("--cached"),
    Switch("--staged"),
    Switch("--merge-base"),
    Switch("--no-color"),
    Switch("-w"),
    Switch("--ignore-all-space"),
    Switch("-b"),
    Switch("--ignore-space-change"),
    Switch("-R"),
    Switch("-M"),
    Switch("--find-renames"),
    Switch("--no-renames"),
    Switch("--minimal"),
    Switch("--patience"),
    Switch("--histogram"),
    Switch("--check"),
    Switch("-z"),
    Glued("-U", Number),
    Glued("--unified", Number),
    Glued("--diff-filter", Text),
];

const BLAME: &[Flag] = &[
    Switch("-w"),
    Switch("-M"),
    Switch("-C"),
    Switch("-s"),
    Switch("-e"),
    Switch("-l"),
    Switch("-t"),
    Switch("-f"),
    Switch("-n"),
    Switch("-p"),
    Switch("--porcelain"),
    Switch("--line-porcelain"),
    Switch("--root"),
    Switch("--show-email"),
    Switch("--show-name"),
    Switch("--show-number"),
    Split("-L", LineRange),
];

const SHORTLOG: &[Flag] = &[
    Switch("-s"),
    Switch("--summary"),
    Switch("-n"),
    Switch("--numbered"),
    Switch("-sn"),
    Switch("-ns"),
    Switch("-e"),
    Switch("--email"),
    Switch("--no-merges"),
    Switch("--all"),
    Glued("--since", Text),
    Glued("--until", Text),
];

const LS_FILES: &[Flag] = &[
    Switch("-z"),
    Switch("--cached"),
    Switch("--others"),
    Switch("--exclude-standard"),
    Switch("--modified"),
    Switch("--deleted"),
    Switch("--stage"),
    Switch("--full-name"),
    Switch("--eol"),
    Switch("--directory"),
    Switch("--error-unmatch"),
];

const STATUS: &[Flag] = &[
    Switch("-s"),
    Switch("--short"),
    Switch("--long"),
    Switch("-b"),
    Switch("--branch"),
    Switch("--porcelain"),
    Switch("-z"),
    Switch("--ignored"),
    Switch("--no-renames"),
    Glued("--porcelain", OneOf(&["v1", "v2"])),
    Glued("--untracked-files", OneOf(&["no", "normal", "all"])),
];

const REV_PARSE: &[Flag] = &[
    Switch("--abbrev-ref"),
    Switch("--short"),
    Switch("--verify"),
    Switch("--quiet"),
    Switch("-q"),
    Switch("--symbolic-full-name"),
    Switch("--is-inside-work-tree"),
    Switch("--show-prefix"),
    Glued("--short", Number),
];

/// `branch` and `tag` list; a positional argument is a pattern, and only after
/// `--list`/`-l` (without it, a name would create a ref).
const REF_LIST: &[Flag] = &[
    Switch("--list"),
    Switch("-l"),
    Switch("--no-color"),
    Switch("--no-column"),
    Glued("--contains", Revision),
    Glued("--no-contains", Revision),
    Glued("--merged", Revision),
    Glued("--no-merged", Revision),
    Glued("--points-at", Revision),
    Glued("--sort", Text),
    Glued("--format", Text),
];

/// `branch` only (for `tag`, `-v` verifies signatures, which runs gpg).
const BRANCH: &[Flag] = &[
    Switch("-a"),
    Switch("--all"),
    Switch("-r"),
    Switch("--remotes"),
    Switch("-v"),
    Switch("-vv"),
    Switch("--verbose"),
    Switch("--show-current"),
];

/// `tag` only: `-n` prints annotation lines.
const TAG: &[Flag] = &[Switch("-n"), Glued("-n", Number)];

/// What a subcommand accepts besides its flags.
struct Shape {
    flags: &'static [&'static [Flag]],
    /// Positional arguments are list patterns (`branch`, `tag`), allowed only after
    /// `--list`/`-l`.
    patterns: bool,
    /// `--` and paths after it are accepted.
    paths: bool,
    /// Arguments boo adds right after the subcommand.
    forced: &'static [&'static str],
}

fn shape(sub: &str) -> Option<Shape> {
    let s = |flags, patterns, paths, forced| {
        Some(Shape {
            flags,
            patterns,
            paths,
            forced,
        })
    };
    const NO_PROGRAMS: &[&str] = &["--no-ext-diff", "--no-textconv"];
    match sub {
        "log" | "show" => s(&[HISTORY, DIFF], false, true, NO_PROGRAMS),
        "diff" => s(&[DIFF], false, true, NO_PROGRAMS),
        "blame" => s(&[BLAME], false, true, &["--no-textconv"]),
        "shortlog" => s(&[SHORTLOG], false, true, &[]),
        "ls-files" => s(&[LS_FILES], false, true, &[]),
        "status" => s(&[STATUS], false, true, &[]),
        "rev-parse" => s(&[REV_PARSE], false, false, &[]),
        "branch" => s(&[REF_LIST, BRANCH], true, false, &[]),
        "tag" => s(&[REF_LIST, TAG], true, false, &[]),
        _ => None,
    }
}

/// Why `run_command` refused or could not run a command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("run_command needs `args.argv`, e.g. [\"git\", \"log\", \"--oneline\"]")]
    Empty,
    #[error("{0:?} is not allowed: run_command only runs read-only git commands (git {sub})", sub = ALLOWED_GIT.join(", "))]
    NotGit(String),
    #[error("`git {0}` is not allowed: the subcommand comes right after `git` and is one of {sub}; options before it (-c, -C, --git-dir, --work-tree, --exec-path) are refused", sub = ALLOWED_GIT.join(", "))]
    Subcommand(String),
    #[error("`git {sub}` does not accept {arg:?}: only the read-only options listed in docs/catalog.md are allowed (no --output, --ext-diff, --textconv, --no-index, --contents or other options that write, run programs or read files)")]
    Flag { sub: String, arg: String },
    #[error("`git {sub}` takes a name only after --list (a bare name would create or change a ref): {arg:?}")]
    RefName { sub: String, arg: String },
    #[error("the argument {0:?} is neither a revision nor a path inside the project: use a path relative to the project without `..`, and no shell syntax")]
    Argument(String),
    #[error("the path {0:?} is outside the project or behind a symbolic link: run_command reads only the project's own files")]
    Outside(String),
    #[error("`git {0}` takes no paths")]
    NoPaths(String),
    #[error("the working directory {0:?} is not a folder inside the project")]
    Cwd(String),
    #[error("the project's folder cannot be read: {0}")]
    Root(String),
    #[error("{0}")]
    Git(String),
}

/// Runs a command of an allowed shape in `root` (or the folder `cwd` inside it):
/// argv only (no shell), [`COMMAND_TIMEOUT`], [`OUTPUT_CAP`] of output.
pub fn run_command(root: &Path, argv: &[String], cwd: Option<&str>) -> Result<String, String> {
    run_checked(root, argv, cwd).map_err(|e| e.to_string())
}

fn run_checked(root: &Path, argv: &[String], cwd: Option<&str>) -> Result<String, CommandError> {
    let dir = working_dir(root, cwd)?;
    let args = check(&dir, argv)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = project::git::run(
        &dir,
        &args,
        &[("GIT_PAGER", "cat"), ("GIT_CONFIG_NOSYSTEM", "1")],
        Limits {
            timeout: COMMAND_TIMEOUT,
            max_stdout: Some(OUTPUT_CAP),
        },
    )
    .map_err(|e| CommandError::Git(e.to_string()))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.truncated {
        text.push_str(&format!("\n[output cut at {} KiB]\n", OUTPUT_CAP / 1024));
    }
    Ok(text)
}

/// The folder the command runs in: the root, or a folder inside it (links resolved).
fn working_dir(root: &Path, cwd: Option<&str>) -> Result<PathBuf, CommandError> {
    let canon_root = root
        .canonicalize()
        .map_err(|e| CommandError::Root(e.to_string()))?;
    let Some(c) = cwd else {
        return Ok(canon_root);
    };
    let d = canon_root
        .join(c)
        .canonicalize()
        .map_err(|_| CommandError::Cwd(c.to_string()))?;
    if !d.starts_with(&canon_root) || !d.is_dir() {
        return Err(CommandError::Cwd(c.to_string()));
    }
    Ok(d)
}

/// Checks `argv` against the allowed shapes; returns git's arguments (without
/// `git`), with boo's own safety options added.
fn check(dir: &Path, argv: &[String]) -> Result<Vec<String>, CommandError> {
    let (prog, rest) = argv.split_first().ok_or(CommandError::Empty)?;
    if prog != "git" {
        return Err(CommandError::NotGit(prog.clone()));
    }
    let (sub, rest) = rest
        .split_first()
        .ok_or_else(|| CommandError::Subcommand(String::new()))?;
    let shape = shape(sub).ok_or_else(|| CommandError::Subcommand(sub.clone()))?;
    let listing = rest.iter().any(|a| a == "--list" || a == "-l");
    // The repository's own config must not run programs for a read either.
    let mut out: Vec<String> = [
        "-c",
        "core.fsmonitor=false",
        "-c",
        "log.showSignature=false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    out.push(sub.clone());
    out.extend(shape.forced.iter().map(|s| s.to_string()));
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        i += 1;
        if a.chars().any(char::is_control) {
            return Err(CommandError::Argument(a.clone()));
        }
        if a == "--" {
            if !shape.paths {
                return Err(CommandError::NoPaths(sub.clone()));
            }
            out.push(a.clone());
            for p in &rest[i..] {
                if p.chars().any(char::is_control) || p.starts_with(':') {
                    return Err(CommandError::Argument(p.clone()));
                }
                inside(dir, p)?;
                out.push(p.clone());
            }
            return Ok(out);
        }
        if a.starts_with('-') {
            match flag(shape.flags, a) {
                Some(FlagMatch::Whole) => out.push(a.clone()),
                Some(FlagMatch::NeedsValue(v)) => {
                    let value =
                        rest.get(i)
                            .filter(|x| fits(v, x))
                            .ok_or_else(|| CommandError::Flag {
                                sub: sub.clone(),
                                arg: a.clone(),
                            })?;
                    i += 1;
                    out.push(a.clone());
                    out.push(value.clone());
                }
                None => {
                    return Err(CommandError::Flag {
                        sub: sub.clone(),
                        arg: a.clone(),
                    })
                }
            }
            continue;
        }
        if shape.patterns {
            if !listing {
                return Err(CommandError::RefName {
                    sub: sub.clone(),
                    arg: a.clone(),
                });
            }
            if !a.chars().all(|c| is_revision_char(c) || c == '*') {
                return Err(CommandError::Argument(a.clone()));
            }
            out.push(a.clone());
            continue;
        }
        // A revision, or a path git may take it for: both shapes must hold.
        if !is_revision(a) {
            return Err(CommandError::Argument(a.clone()));
        }
        inside(dir, a)?;
        out.push(a.clone());
    }
    Ok(out)
}

enum FlagMatch {
    /// The argument is the whole flag (with its value, if any).
    Whole,
    /// The flag's value is the next argument.
    NeedsValue(Value),
}

fn flag(groups: &[&[Flag]], a: &str) -> Option<FlagMatch> {
    for f in groups.iter().flat_map(|g| g.iter()) {
        match *f {
            Switch(name) if a == name => return Some(FlagMatch::Whole),
            Split(name, v) if a == name => return Some(FlagMatch::NeedsValue(v)),
            Glued(name, v) | Split(name, v) => {
                let value = if name.starts_with("--") {
                    a.strip_prefix(name).and_then(|r| r.strip_prefix('='))
                } else {
                    a.strip_prefix(name).filter(|r| !r.is_empty())
                };
                if value.is_some_and(|value| fits(v, value)) {
                    return Some(FlagMatch::Whole);
                }
            }
            Switch(_) => {}
        }
    }
    None
}

fn fits(v: Value, s: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match v {
        Number => digits(s),
        LineRange => match s.split_once(',') {
            None => digits(s),
            Some((a, b)) => digits(a) && digits(b.strip_prefix(['+', '-']).unwrap_or(b)),
        },
        Text => !s.chars().any(char::is_control),
        Revision => is_revision(s),
        OneOf(words) => words.contains(&s),
        Format => {
            const NAMES: &[&str] = &[
                "oneline",
                "short",
                "medium",
                "full",
                "fuller",
                "reference",
                "email",
                "raw",
            ];
            NAMES.contains(&s)
                || (s.contains('%') && !s.contains("%G") && !s.chars().any(char::is_control))
        }
    }
}

fn is_revision_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._/~^@{}:+-".contains(c)
}

/// A revision: `main`, `HEAD~2`, `v1..v2`, `a...b`, `HEAD@{1}`, `HEAD:src/x.rs`; no
/// leading `-`, no `..` path component, not absolute.
fn is_revision(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.starts_with('/')
        && s.chars().all(is_revision_char)
        && !s.split(['/', ':']).any(|part| part == "..")
}

/// A path git may read must stay inside the project: relative, no `..`, and neither
/// it nor a folder above it (below `dir`) a symbolic link.
fn inside(dir: &Path, p: &str) -> Result<(), CommandError> {
    let outside = || CommandError::Outside(p.to_string());
    let path = Path::new(p);
    if !path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(outside());
    }
    let mut at = dir.to_path_buf();
    for c in path.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(outside()),
            Ok(_) => {}
            // A name that does not exist is no file to read (a revision, a deleted path).
            Err(_) => break,
        }
    }
    Ok(())
}
