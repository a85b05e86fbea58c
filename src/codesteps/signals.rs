//! The `signals` code step: facts about the project that decide which conditional
//! steps (`when = "<signal>"`) run. [`Signal`] is the one list of signal names: the
//! step computes exactly these, and the catalog accepts exactly these in `when`.

use crate::project;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

named_enum! {
    /// A signal a `when` condition may name.
    pub enum Signal {
        Concurrency = "concurrency",
        Auth = "auth",
        Schemas = "schemas",
        Infrastructure = "infrastructure",
        Frontend = "frontend",
        Api = "api",
        Tests = "tests",
        Docs = "docs",
        /// The project has changes to review (what `git_diff` shows is not empty).
        Diff = "diff",
    }
    error UnknownSignal: "signal";
}

/// How a signal is computed.
enum Detect {
    /// True when a file's lowercased path contains one of `paths`, or the start of its
    /// content contains one of `needles`.
    Scan {
        paths: &'static [&'static str],
        needles: &'static [&'static str],
    },
    /// True when the project has changes against its diff base, new files included.
    Changes,
}

impl Signal {
    fn detect(self) -> Detect {
        let scan = |paths, needles| Detect::Scan { paths, needles };
        match self {
            Signal::Concurrency => scan(
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
            Signal::Auth => scan(
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
            Signal::Schemas => scan(
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
            Signal::Infrastructure => scan(
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
            Signal::Frontend => scan(
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
            Signal::Api => scan(
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
            Signal::Tests => scan(
                &["test", "spec"],
                &["#[test]", "def test_", "describe(", "it(\""],
            ),
            Signal::Docs => scan(&[".md", ".rst", "docs/"], &[]),
            Signal::Diff => Detect::Changes,
        }
    }
}

/// How much of one file the scan reads.
const HEAD_BYTES: u64 = 64 * 1024;
/// How much file content one scan reads in all; past it, only paths are matched.
const SCAN_BUDGET: usize = 16 * 1024 * 1024;

/// The language a file extension (lowercase) stands for, if it is one we count.
fn language(ext: &str) -> Option<&'static str> {
    Some(match ext {
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
        _ => return None,
    })
}

/// Computes every [`Signal`] over the project's files (as `project::list_files`
/// defines them), plus file counts per language:
/// `{"signals": {name: bool}, "languages": {name: count}, "files": count}`.
pub fn signals(root: &Path) -> Result<Value, String> {
    let files = project::list_files(root).map_err(|e| e.to_string())?;
    let scans: Vec<(Signal, &[&str], &[&str])> = Signal::ALL
        .iter()
        .filter_map(|s| match s.detect() {
            Detect::Scan { paths, needles } => Some((*s, paths, needles)),
            Detect::Changes => None,
        })
        .collect();
    let mut found: BTreeMap<&'static str, bool> =
        Signal::ALL.iter().map(|s| (s.as_str(), false)).collect();
    let mut langs: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut budget = SCAN_BUDGET;
    for f in &files {
        let lower = f.name().to_ascii_lowercase();
        if let Some(lang) = Path::new(&lower)
            .extension()
            .and_then(|e| e.to_str())
            .and_then(language)
        {
            *langs.entry(lang).or_default() += 1;
        }
        for (signal, paths, _) in &scans {
            if paths.iter().any(|p| lower.contains(p)) {
                found.insert(signal.as_str(), true);
            }
        }
        if budget == 0 {
            continue;
        }
        // Only regular files: a link is not followed, even one inside the root.
        let Ok(Some(head)) = project::read_head(root, f, HEAD_BYTES) else {
            continue;
        };
        budget = budget.saturating_sub(head.len());
        if head.contains(&0) {
            continue;
        }
        let text = String::from_utf8_lossy(&head);
        for (signal, _, needles) in &scans {
            let known = found.get(signal.as_str()).copied().unwrap_or(false);
            if !known && needles.iter().any(|n| text.contains(n)) {
                found.insert(signal.as_str(), true);
            }
        }
    }
    // Computed once, and only when some signal needs it.
    let mut has_changes = None;
    for s in Signal::ALL {
        if let Detect::Changes = s.detect() {
            let changed = *has_changes
                .get_or_insert_with(|| project::git::changes(root).is_ok_and(|c| !c.is_empty()));
            found.insert(s.as_str(), changed);
        }
    }
    Ok(json!({ "signals": found, "languages": langs, "files": files.len() }))
}
