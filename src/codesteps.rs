//! Built-in code steps: deterministic work done without a model. They read the
//! project; none of them writes to it.

use crate::evidence::{self, CheckedFinding, Source, Verdict};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a code step gets from a step it depends on.
#[derive(Debug, Clone)]
pub struct DepOutput {
    pub step_id: String,
    pub agent: String,
    pub is_agent: bool,
    pub completed: bool,
    pub output: String,
}

pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
pub const OUTPUT_CAP: usize = 32 * 1024;
/// Default cap of the diff handed to agents.
pub const DIFF_CAP: usize = 160 * 1024;

pub fn run(
    function: &str,
    args: &Value,
    root: &Path,
    deps: &[DepOutput],
) -> Result<String, String> {
    match function {
        "git_diff" => git_diff(root, args),
        "signals" => signals(root).map(|v| serde_json::to_string_pretty(&v).unwrap_or_default()),
        "run_command" => {
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
        "verify_evidence" => Ok(describe(&check_deps(root, deps), false)),
        "merge_findings" => Ok(describe(&evidence::merge(check_deps(root, deps)), true)),
        "render_report" => Ok(describe(&evidence::merge(check_deps(root, deps)), true)),
        other => Err(format!("unknown code function {other:?}")),
    }
}

/// Runs a command with a timeout and an output cap, returning (stdout, stderr, status).
fn bounded(
    cmd: &mut Command,
    timeout: Duration,
    cap: usize,
) -> Result<(String, bool, Option<i32>), String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the command: {e}"))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut err = child.stderr.take().ok_or("no stderr")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let mut truncated = false;
        loop {
            match out.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if buf.len() < cap {
                        let take = n.min(cap - buf.len());
                        buf.extend_from_slice(&chunk[..take]);
                        truncated |= take < n;
                    } else {
                        truncated = true;
                    }
                }
            }
        }
        (buf, truncated)
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.by_ref().take(8192).read_to_end(&mut s);
        String::from_utf8_lossy(&s).to_string()
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for the command failed: {e}")),
        }
    };
    let (buf, truncated) = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(format!(
            "the command did not finish within {}s and was stopped",
            timeout.as_secs()
        ));
    };
    if !status.success() {
        return Err(format!(
            "the command failed ({}): {}",
            status
                .code()
                .map(|c| format!("exit {c}"))
                .unwrap_or_else(|| "killed".into()),
            stderr.trim()
        ));
    }
    Ok((
        String::from_utf8_lossy(&buf).to_string(),
        truncated,
        status.code(),
    ))
}

fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.current_dir(root)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0");
    bounded(&mut cmd, COMMAND_TIMEOUT, 64 * 1024 * 1024).map(|(s, _, _)| s)
}

/// The default branch: origin's HEAD, else `main`, else `master`.
pub fn default_branch(root: &Path) -> Option<String> {
    if let Ok(s) = git(
        root,
        &[
            "symbolic-ref",
            "--quiet",
            "--short",
            "refs/remotes/origin/HEAD",
        ],
    ) {
        let s = s.trim();
        if !s.is_empty() {
            return Some(s.to_string());
        }
    }
    ["main", "master", "trunk", "develop"]
        .into_iter()
        .find(|b| {
            git(
                root,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{b}"),
                ],
            )
            .is_ok()
        })
        .map(String::from)
}

/// The base a review compares against: the merge-base of HEAD with the default branch.
pub fn diff_base(root: &Path) -> Result<(String, String), String> {
    git(root, &["rev-parse", "--is-inside-work-tree"]).map_err(|_| {
        "the project is not a git repository, so there is no diff to review".to_string()
    })?;
    let head =
        git(root, &["rev-parse", "--verify", "--quiet", "HEAD"]).map(|s| s.trim().to_string());
    let Ok(head) = head else {
        return Ok(("(no commits yet)".into(), String::new()));
    };
    let branch = git(root, &["rev-parse", "--abbrev-ref", "HEAD"]).unwrap_or_default();
    match default_branch(root) {
        Some(def) if def.trim_start_matches("origin/") != branch.trim() => {
            let base = git(root, &["merge-base", "HEAD", &def])
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| head.clone());
            Ok((format!("merge-base of HEAD with {def}"), base))
        }
        _ => Ok(("HEAD (uncommitted changes)".into(), head)),
    }
}

pub fn git_diff(root: &Path, args: &Value) -> Result<String, String> {
    let cap = args
        .get("max_bytes")
        .and_then(|m| m.as_u64())
        .map(|m| m as usize)
        .unwrap_or(DIFF_CAP);
    let (label, base) = diff_base(root)?;
    let mut files: Vec<String> = Vec::new();
    let diff = if base.is_empty() {
        String::new()
    } else {
        let names = git(root, &["diff", "--name-only", &base])?;
        files.extend(names.lines().map(String::from));
        git(root, &["diff", "--no-color", "--no-ext-diff", &base])?
    };
    let untracked = git(root, &["ls-files", "--others", "--exclude-standard"]).unwrap_or_default();
    let untracked: Vec<&str> = untracked.lines().filter(|l| !l.is_empty()).collect();
    // New files are part of the change: show them as added files (text, up to 1 MiB).
    let mut diff = diff;
    for f in &untracked {
        let Ok(meta) = std::fs::symlink_metadata(root.join(f)) else {
            continue;
        };
        if !meta.is_file() || meta.len() > 1024 * 1024 {
            continue;
        }
        let Ok(bytes) = std::fs::read(root.join(f)) else {
            continue;
        };
        if bytes.contains(&0) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        let n = text.lines().count();
        diff.push_str(&format!("diff --git a/{f} b/{f}\nnew file (untracked)\n--- /dev/null\n+++ b/{f}\n@@ -0,0 +1,{n} @@\n"));
        for line in text.lines() {
            diff.push('+');
            diff.push_str(line);
            diff.push('\n');
        }
    }
    let mut out = format!(
        "Base: {label} ({})\n",
        if base.is_empty() {
            "none"
        } else {
            &base[..base.len().min(12)]
        }
    );
    out.push_str(&format!("Changed files: {}\n", files.len()));
    for f in &files {
        out.push_str(&format!("- {f}\n"));
    }
    if !untracked.is_empty() {
        out.push_str(&format!(
            "New untracked files (shown below as added files): {}\n",
            untracked.len()
        ));
        for f in &untracked {
            out.push_str(&format!("- {f}\n"));
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

const SIGNAL_RULES: &[(&str, &[&str], &[&str])] = &[
    // (signal, path fragments, content needles)
    (
        "concurrency",
        &[],
        &[
            "Mutex",
            "RwLock",
            "std::thread",
            "tokio::spawn",
            "async fn",
            "threading",
            "asyncio",
            "goroutine",
            "go func",
            "sync.WaitGroup",
            "Atomic",
            "synchronized",
            "ConcurrentHashMap",
            "pthread",
            "chan ",
            "Promise.all",
            "Worker(",
        ],
    ),
    (
        "auth",
        &[
            "auth", "login", "session", "oauth", "jwt", "password", "crypto",
        ],
        &[
            "password",
            "jwt",
            "oauth",
            "bcrypt",
            "Authorization",
            "session",
            "csrf",
            "login",
            "api_key",
            "secret",
        ],
    ),
    (
        "schemas",
        &[
            "migration",
            "schema",
            ".sql",
            ".proto",
            "openapi",
            "models.py",
            "prisma",
        ],
        &[
            "CREATE TABLE",
            "ALTER TABLE",
            "migrate",
            "@Entity",
            "Column(",
            "proto3",
        ],
    ),
    (
        "infrastructure",
        &[
            "dockerfile",
            "docker-compose",
            ".github/workflows",
            ".gitlab-ci",
            "k8s",
            "kubernetes",
            ".tf",
            "helm",
            "ansible",
            "deploy",
            ".ci/",
        ],
        &[],
    ),
    (
        "frontend",
        &[
            ".html",
            ".css",
            ".scss",
            ".jsx",
            ".tsx",
            ".vue",
            ".svelte",
            "components/",
        ],
        &[],
    ),
    (
        "api",
        &["routes", "handlers", "controllers", "api/"],
        &[
            "@app.route",
            "router.",
            "app.get(",
            "app.post(",
            "#[get(",
            "HandleFunc",
            "@GetMapping",
            "express()",
            "FastAPI",
            "axum::",
            "actix_web",
        ],
    ),
    (
        "tests",
        &["test", "spec"],
        &["#[test]", "def test_", "describe(", "it(\""],
    ),
    ("docs", &[".md", ".rst", "docs/"], &[]),
];

/// Scans the project's files (tracked and untracked, not ignored) for the signals that
/// decide conditional specialists.
pub fn signals(root: &Path) -> Result<Value, String> {
    let listing = git(
        root,
        &["ls-files", "--cached", "--others", "--exclude-standard"],
    );
    let files: Vec<String> = match listing {
        Ok(s) => s.lines().map(String::from).collect(),
        Err(_) => walk(root, 20_000),
    };
    let mut sig: BTreeMap<&str, bool> = SIGNAL_RULES.iter().map(|(s, _, _)| (*s, false)).collect();
    let mut langs: BTreeMap<String, u64> = BTreeMap::new();
    let mut budget: usize = 16 * 1024 * 1024;
    for f in &files {
        let lower = f.to_ascii_lowercase();
        if let Some(ext) = Path::new(&lower).extension().and_then(|e| e.to_str()) {
            let lang = match ext {
                "rs" => "rust",
                "py" => "python",
                "js" | "mjs" | "cjs" | "jsx" => "javascript",
                "ts" | "tsx" => "typescript",
                "go" => "go",
                "java" | "kt" => "jvm",
                "c" | "h" | "cc" | "cpp" | "hpp" => "c/c++",
                "rb" => "ruby",
                "php" => "php",
                "cs" => "csharp",
                "swift" => "swift",
                "lua" => "lua",
                "sh" | "bash" => "shell",
                "sql" => "sql",
                _ => "",
            };
            if !lang.is_empty() {
                *langs.entry(lang.to_string()).or_default() += 1;
            }
        }
        for (name, paths, _) in SIGNAL_RULES {
            if paths.iter().any(|p| lower.contains(p)) {
                sig.insert(name, true);
            }
        }
        if budget == 0 {
            continue;
        }
        let path = root.join(f);
        let Ok(mut file) = std::fs::File::open(&path) else {
            continue;
        };
        let mut buf = Vec::new();
        let _ = file.by_ref().take(64 * 1024).read_to_end(&mut buf);
        budget = budget.saturating_sub(buf.len());
        if buf.contains(&0) {
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        for (name, _, needles) in SIGNAL_RULES {
            if !sig[name] && needles.iter().any(|n| text.contains(n)) {
                sig.insert(name, true);
            }
        }
    }
    let has_diff = diff_base(root)
        .ok()
        .filter(|(_, b)| !b.is_empty())
        .and_then(|(_, base)| git(root, &["diff", "--name-only", &base]).ok())
        .is_some_and(|s| !s.trim().is_empty());
    let mut signals: BTreeMap<String, bool> =
        sig.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    signals.insert("diff".into(), has_diff);
    Ok(json!({ "signals": signals, "languages": langs, "files": files.len() }))
}

fn walk(root: &Path, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name == "node_modules" || name == "target" {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.display().to_string());
                if out.len() >= limit {
                    return out;
                }
            }
        }
    }
    out.sort();
    out
}

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

/// Runs an allow-listed read-only command: argv only (no shell), 30 s, 32 KiB of output.
pub fn run_command(root: &Path, argv: &[String], cwd: Option<&str>) -> Result<String, String> {
    let Some(prog) = argv.first() else {
        return Err("run_command needs `argv`, e.g. [\"git\", \"log\", \"--oneline\"]".into());
    };
    if prog != "git" {
        return Err(format!(
            "{prog:?} is not allowed: run_command only runs read-only git commands ({})",
            ALLOWED_GIT.join(", ")
        ));
    }
    let sub = argv.get(1).map(String::as_str).unwrap_or("");
    if !ALLOWED_GIT.contains(&sub) {
        return Err(format!(
            "`git {sub}` is not allowed: use one of {}",
            ALLOWED_GIT.join(", ")
        ));
    }
    for a in argv {
        if a.chars().any(|c| ";|&$`<>\n\\*?(){}".contains(c)) {
            return Err(format!("the argument {a:?} holds a shell metacharacter; run_command takes plain arguments only"));
        }
        if a.starts_with("--output")
            || a == "-o"
            || a.starts_with("--ext-diff")
            || a.starts_with("-c") && a.len() > 2
        {
            return Err(format!(
                "the option {a:?} could write or run programs and is refused"
            ));
        }
    }
    let dir = match cwd {
        None => root.to_path_buf(),
        Some(c) => {
            let canon_root = root
                .canonicalize()
                .map_err(|e| format!("the root cannot be read: {e}"))?;
            let d = canon_root
                .join(c)
                .canonicalize()
                .map_err(|_| format!("the working directory {c:?} does not exist"))?;
            if !d.starts_with(&canon_root) {
                return Err(format!(
                    "the working directory {c:?} is outside the project"
                ));
            }
            d
        }
    };
    let mut cmd = Command::new("git");
    cmd.current_dir(&dir)
        .args(&argv[1..])
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_PAGER", "cat")
        .env("GIT_EXTERNAL_DIFF", "")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    let (out, truncated, _) = bounded(&mut cmd, COMMAND_TIMEOUT, OUTPUT_CAP)?;
    let mut out = out;
    if truncated {
        out.push_str(&format!("\n[output cut at {} KiB]\n", OUTPUT_CAP / 1024));
    }
    Ok(out)
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
                .map(|e| match e.lines {
                    Some((a, b)) => format!("{}:{a}-{b}", e.path),
                    None => e.path.clone(),
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
