//! Built-in code steps: deterministic work done without a model. They read the
//! project; none of them writes to it. [`CodeFn`] is the one list of their names.

use crate::evidence::{self, CheckedFinding, Source, Verdict};
use crate::project;
use serde_json::Value;
use std::borrow::Cow;
use std::path::Path;

/// Declares a field-less enum whose variants each have one fixed name, with `ALL`
/// (every variant, in declaration order), `as_str`, `parse` (whose error lists every
/// name) and `Display`. Each name is written once, in the declaration.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident {
            $( $(#[$vmeta:meta])* $var:ident = $name:literal, )+
        }
        error $err:ident: $what:literal;
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $ty {
            $( $(#[$vmeta])* $var, )+
        }

        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$var),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$var => $name,)+
                }
            }

            pub fn parse(name: &str) -> Result<$ty, $err> {
                $ty::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == name)
                    .ok_or_else(|| $err { name: name.to_string() })
            }

            /// Every name, comma-separated.
            pub fn names() -> String {
                $ty::ALL
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[doc = concat!("A name that is no ", $what, ".")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $err {
            pub name: String,
        }

        impl std::fmt::Display for $err {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    concat!("unknown ", $what, " {:?}: use one of {}"),
                    self.name,
                    $ty::names()
                )
            }
        }

        impl std::error::Error for $err {}
    };
}

mod command;
mod signals;
pub use command::run_command;
#[cfg(test)]
pub use command::ALLOWED_GIT;
#[cfg(test)]
use command::OUTPUT_CAP;
pub use signals::{signals, Signal};

named_enum! {
    /// A built-in function a code step runs (`function = "…"` in a flow).
    pub enum CodeFn {
        /// The changes against the diff base, split into parts when large.
        GitDiff = "git_diff",
        /// The [`Signal`]s and the languages of the project.
        Signals = "signals",
        /// One allow-listed, read-only git command (`args.argv`).
        RunCommand = "run_command",
        /// The findings of the completed agent dependencies, with their citations checked.
        VerifyEvidence = "verify_evidence",
        /// The same, with findings reported by several agents merged into one.
        MergeFindings = "merge_findings",
        /// The same as `merge_findings`.
        RenderReport = "render_report",
    }
    error UnknownCodeFn: "code function";
}

/// What a code step gets from a step it depends on.
#[derive(Debug, Clone)]
pub struct DepOutput {
    pub step_id: String,
    pub agent: String,
    pub is_agent: bool,
    pub completed: bool,
    pub output: String,
}

/// Default cap of the diff handed to agents.
pub const DIFF_CAP: usize = 160 * 1024;

/// Runs a code step. The error is the step's error text, shown to the user.
pub fn run(
    function: CodeFn,
    args: &Value,
    root: &Path,
    deps: &[DepOutput],
) -> Result<String, String> {
    match function {
        CodeFn::GitDiff => git_diff(root, args),
        CodeFn::Signals => {
            signals(root).map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        CodeFn::RunCommand => {
            let argv: Vec<String> = args
                .get("argv")
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let cwd = args.get("cwd").and_then(|c| c.as_str());
            run_command(root, &argv, cwd)
        }
        CodeFn::VerifyEvidence => Ok(describe(&check_deps(root, deps), false)),
        CodeFn::MergeFindings | CodeFn::RenderReport => {
            Ok(describe(&evidence::merge(check_deps(root, deps)), true))
        }
    }
}

/// A file name for a list line: quoted when it holds a line break or another control
/// character.
fn shown(name: &str) -> Cow<'_, str> {
    if name.chars().any(char::is_control) {
        Cow::Owned(format!("{name:?}"))
    } else {
        Cow::Borrowed(name)
    }
}

/// An untracked file larger than this is named but not shown as an added file.
const UNTRACKED_SHOWN_MAX: u64 = 1024 * 1024;

/// The `git_diff` step: the changes against the diff base (committed on the branch,
/// staged, unstaged, and new untracked text files shown as added), with a header that
/// names every changed file. Larger than `args.max_bytes` (default [`DIFF_CAP`]), the
/// diff is split into parts by file and hunk.
pub fn git_diff(root: &Path, args: &Value) -> Result<String, String> {
    let cap = args
        .get("max_bytes")
        .and_then(|m| m.as_u64())
        .map(|m| m as usize)
        .unwrap_or(DIFF_CAP);
    let changes = project::git::changes(root).map_err(|e| e.to_string())?;
    let (mut diff, cut) = match &changes.base.commit {
        None => (String::new(), false),
        Some(commit) => {
            let d = project::git::diff_text(root, commit).map_err(|e| e.to_string())?;
            (d.text, d.truncated)
        }
    };
    // New files are part of the change: show them as added files (text, up to 1 MiB).
    for f in &changes.untracked {
        let Ok(Some(bytes)) = project::read_head(root, f, UNTRACKED_SHOWN_MAX + 1) else {
            continue;
        };
        if bytes.len() as u64 > UNTRACKED_SHOWN_MAX || bytes.contains(&0) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        let n = text.lines().count();
        let name = shown(f.name());
        diff.push_str(&format!("diff --git a/{name} b/{name}\nnew file (untracked)\n--- /dev/null\n+++ b/{name}\n@@ -0,0 +1,{n} @@\n"));
        for line in text.lines() {
            diff.push('+');
            diff.push_str(line);
            diff.push('\n');
        }
    }
    let base = changes.base.commit.as_deref().unwrap_or("");
    let mut out = format!(
        "Base: {} ({})\n",
        changes.base.label,
        if base.is_empty() {
            "none"
        } else {
            &base[..base.len().min(12)]
        }
    );
    out.push_str(&format!("Changed files: {}\n", changes.changed.len()));
    for f in &changes.changed {
        out.push_str(&format!("- {}\n", shown(f)));
    }
    if !changes.untracked.is_empty() {
        out.push_str(&format!(
            "New untracked files (shown below as added files): {}\n",
            changes.untracked.len()
        ));
        for f in &changes.untracked {
            out.push_str(&format!("- {}\n", shown(f.name())));
        }
    }
    if diff.is_empty() {
        out.push_str("\nThere are no changes against the base.\n");
        return Ok(out);
    }
    let (parts, left_out) = split_diff(&diff, cap, MAX_DIFF_PARTS);
    if parts.len() == 1 {
        out.push_str("\n```diff\n");
        out.push_str(&parts[0]);
        out.push_str("```\n");
    } else {
        out.push_str(&format!(
            "\nThe diff is larger than {} KiB, so it is split by file into {} parts. Each reviewer reads every part in turn, one part per pass.\n",
            cap / 1024,
            parts.len()
        ));
        for (i, p) in parts.iter().enumerate() {
            out.push_str(&format!(
                "\n{DIFF_PART_MARK}{}/{}\n```diff\n{p}```\n",
                i + 1,
                parts.len()
            ));
        }
    }
    if cut {
        out.push_str(&format!(
            "\nThe diff is larger than {} MiB and was cut there: the changed files listed above are all part of the change; read the ones the diff does not reach directly.\n",
            project::git::DIFF_TEXT_CAP / (1024 * 1024)
        ));
    }
    if !left_out.is_empty() {
        out.push_str(&format!(
            "\nThe diff is larger than {} parts: these {} file diffs are NOT shown above; read the files directly:\n",
            MAX_DIFF_PARTS,
            left_out.len()
        ));
        for n in left_out {
            out.push_str(&format!("- {n}\n"));
        }
    }
    Ok(out)
}

/// Marks the start of one part of a split diff (followed by `i/k`).
pub const DIFF_PART_MARK: &str = "<<<boo diff part ";
/// More parts than this and the remaining files are only named.
pub const MAX_DIFF_PARTS: usize = 12;

/// Splits a unified diff into parts of at most `cap` bytes without cutting a file
/// silently: whole files where they fit, a large file by hunks (its header repeated),
/// a huge hunk by lines (marked as continued). Returns the parts and the files that
/// did not fit in `max_parts`.
pub fn split_diff(diff: &str, cap: usize, max_parts: usize) -> (Vec<String>, Vec<String>) {
    let cap = cap.max(1024);
    let mut files: Vec<&str> = Vec::new();
    let mut start = 0;
    for (i, _) in diff.match_indices("diff --git ") {
        if i > start && (i == 0 || diff.as_bytes()[i - 1] == b'\n') {
            files.push(&diff[start..i]);
            start = i;
        }
    }
    files.push(&diff[start..]);
    // Pieces no larger than the cap.
    let mut pieces: Vec<(String, String)> = Vec::new(); // (file name, text)
    for f in files.into_iter().filter(|f| !f.is_empty()) {
        let name = f
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("diff --git ")
            .to_string();
        if f.len() <= cap {
            pieces.push((name, f.to_string()));
            continue;
        }
        let header_end = f.find("\n@@").map(|p| p + 1).unwrap_or(f.len());
        let header = &f[..header_end];
        let mut hunks: Vec<&str> = Vec::new();
        let body = &f[header_end..];
        let mut hs = 0;
        for (i, _) in body.match_indices("\n@@") {
            hunks.push(&body[hs..=i]);
            hs = i + 1;
        }
        hunks.push(&body[hs..]);
        let mut cur = header.to_string();
        for h in hunks {
            if cur.len() + h.len() > cap && cur.len() > header.len() {
                pieces.push((
                    name.clone(),
                    std::mem::replace(&mut cur, header.to_string()),
                ));
            }
            if header.len() + h.len() <= cap {
                cur.push_str(h);
            } else {
                for line in h.split_inclusive('\n') {
                    if cur.len() + line.len() > cap && cur.len() > header.len() {
                        pieces.push((
                            name.clone(),
                            std::mem::replace(
                                &mut cur,
                                format!("{header}@@ (hunk continued) @@\n"),
                            ),
                        ));
                    }
                    cur.push_str(line);
                }
            }
        }
        if cur.len() > header.len() {
            pieces.push((name, cur));
        }
    }
    let mut parts: Vec<String> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for (name, text) in pieces {
        let fits_last = parts.last().is_some_and(|l| l.len() + text.len() <= cap);
        if fits_last {
            if let Some(last) = parts.last_mut() {
                last.push_str(&text);
            }
        } else if parts.len() < max_parts {
            parts.push(text);
        } else if !left_out.contains(&name) {
            left_out.push(name);
        }
    }
    for p in parts.iter_mut() {
        if !p.ends_with('\n') {
            p.push('\n');
        }
    }
    if parts.is_empty() {
        parts.push(String::new());
    }
    (parts, left_out)
}

/// Splits a `git_diff` output into (shared header, parts); None when it is not split.
pub fn diff_parts(output: &str) -> Option<(String, Vec<String>)> {
    let first = output.find(DIFF_PART_MARK)?;
    let header = output[..first].to_string();
    let parts = output[first..]
        .split(DIFF_PART_MARK)
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("{DIFF_PART_MARK}{p}"))
        .collect::<Vec<_>>();
    (parts.len() > 1).then_some((header, parts))
}

fn check_deps(root: &Path, deps: &[DepOutput]) -> Vec<CheckedFinding> {
    let mut all = Vec::new();
    for d in deps.iter().filter(|d| d.is_agent && d.completed) {
        let parsed = evidence::parse_answer(&d.output);
        for f in &parsed.findings {
            all.push(evidence::check_finding(
                root,
                f,
                Source {
                    step_id: d.step_id.clone(),
                    agent: d.agent.clone(),
                },
            ));
        }
    }
    all
}

fn describe(findings: &[CheckedFinding], merged: bool) -> String {
    let mut out = String::new();
    for (title, v) in [
        ("Verified findings", Verdict::Verified),
        (
            "Unverified findings (a citation did not check out)",
            Verdict::Unverified,
        ),
        ("Findings without evidence", Verdict::NoEvidence),
    ] {
        let group: Vec<&CheckedFinding> = findings.iter().filter(|f| f.verdict == v).collect();
        out.push_str(&format!("## {title}: {}\n", group.len()));
        for f in group {
            let refs = f
                .evidence
                .iter()
                .map(|e| match (&e.attachment, e.lines) {
                    (Some(a), _) => format!("image {}", a.name),
                    (None, Some((a, b))) => format!("{}:{a}-{b}", e.path),
                    (None, None) => e.path.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let who = f
                .sources
                .iter()
                .map(|s| s.agent.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "- [{}] {} — {} ({refs})",
                f.severity.as_str(),
                f.title,
                f.claim
            ));
            if merged || f.sources.len() > 1 {
                out.push_str(&format!(" — reported by {who}"));
            }
            if let Some(r) = &f.reason {
                out.push_str(&format!(" — {r}"));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    let json = serde_json::to_string(findings).unwrap_or_default();
    out.push_str("```json\n");
    out.push_str(&json);
    out.push_str("\n```\n");
    out
}

#[cfg(test)]
mod tests;
