use super::*;

use crate::testutil::{git as sh, repo as make_repo, temp_dir, TempDir};

fn repo() -> TempDir {
    TempDir(make_repo(
        "cs",
        &[
            ("lib.rs", "pub fn a() -> u32 { 1 }\n"),
            ("README.md", "# x\n"),
        ],
    ))
}

#[test]
fn git_diff_against_the_merge_base_of_a_branch() {
    let r = repo();
    sh(&r.0, &["checkout", "-qb", "feature"]);
    std::fs::write(r.0.join("lib.rs"), "pub fn a() -> u32 { 2 }\n").unwrap();
    sh(&r.0, &["commit", "-qam", "change"]);
    std::fs::write(r.0.join("new.rs"), "fn n() {}\n").unwrap();
    std::fs::write(r.0.join("README.md"), "# y\n").unwrap();
    let out = git_diff(&r.0, &serde_json::json!({})).unwrap();
    assert!(out.contains("merge-base of HEAD with main"), "{out}");
    assert!(
        out.contains("-pub fn a() -> u32 { 1 }") && out.contains("+pub fn a() -> u32 { 2 }"),
        "{out}"
    );
    assert!(
        out.contains("-# x"),
        "working-tree changes are included: {out}"
    );
    assert!(
        out.contains("New untracked files") && out.contains("+fn n() {}"),
        "{out}"
    );
    // A size cap never drops content silently (a diff this small stays in one piece;
    // splitting is covered by a_large_diff_is_split_by_file_and_hunk_never_truncated).
    let capped = git_diff(&r.0, &serde_json::json!({"max_bytes": 10})).unwrap();
    assert!(
        capped.contains("+pub fn a() -> u32 { 2 }") && capped.contains("+fn n() {}"),
        "{capped}"
    );
}

#[test]
fn git_diff_on_the_default_branch_shows_uncommitted_changes() {
    let r = repo();
    let out = git_diff(&r.0, &serde_json::json!({})).unwrap();
    assert!(out.contains("no changes"), "{out}");
    std::fs::write(r.0.join("lib.rs"), "pub fn a() -> u32 { 3 }\n").unwrap();
    let out = git_diff(&r.0, &serde_json::json!({})).unwrap();
    assert!(
        out.contains("HEAD (uncommitted changes)") && out.contains("{ 3 }"),
        "{out}"
    );
}

#[test]
fn signals_detect_what_decides_specialists() {
    let r = repo();
    std::fs::write(r.0.join("worker.rs"), "use std::sync::Mutex;\n").unwrap();
    std::fs::create_dir_all(r.0.join("migrations")).unwrap();
    std::fs::write(r.0.join("migrations/1.sql"), "CREATE TABLE t (id int);\n").unwrap();
    std::fs::write(r.0.join("Dockerfile"), "FROM scratch\n").unwrap();
    let v = signals(&r.0).unwrap();
    let s = &v["signals"];
    assert_eq!(s["concurrency"], true);
    assert_eq!(s["schemas"], true);
    assert_eq!(s["infrastructure"], true);
    assert_eq!(s["docs"], true);
    assert_eq!(s["frontend"], false);
    assert_eq!(s["auth"], false);
    assert_eq!(v["languages"]["rust"], 2);
}

#[test]
fn run_command_is_bounded_and_allow_listed() {
    let r = repo();
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(run_command(&r.0, &argv(&["git", "log", "--oneline"]), None)
        .unwrap()
        .contains("init"));
    assert!(run_command(&r.0, &argv(&["rm", "-rf", "/"]), None)
        .unwrap_err()
        .contains("not allowed"));
    assert!(run_command(&r.0, &argv(&["git", "push"]), None)
        .unwrap_err()
        .contains("not allowed"));
    assert!(
        run_command(&r.0, &argv(&["git", "log", "; rm -rf ."]), None)
            .unwrap_err()
            .contains("neither a revision nor a path")
    );
    assert!(run_command(&r.0, &argv(&["git", "log", "$(id)"]), None)
        .unwrap_err()
        .contains("neither a revision nor a path"));
    assert!(
        run_command(&r.0, &argv(&["git", "diff", "--output=x"]), None)
            .unwrap_err()
            .contains("does not accept")
    );
    assert!(run_command(&r.0, &argv(&["git", "log"]), Some(".."))
        .unwrap_err()
        .contains("not a folder inside the project"));
    assert!(run_command(&r.0, &argv(&["git", "log"]), Some("/"))
        .unwrap_err()
        .contains("not a folder inside the project"));
    // A long output is capped at 32 KiB and says so.
    let big: String = (0..5000)
        .map(|i| format!("line {i} with some padding text\n"))
        .collect();
    std::fs::write(r.0.join("big.txt"), big).unwrap();
    sh(&r.0, &["add", "big.txt"]);
    sh(&r.0, &["commit", "-qm", "big"]);
    let out = run_command(&r.0, &argv(&["git", "show", "HEAD:big.txt"]), None).unwrap();
    assert!(
        out.len() <= OUTPUT_CAP + 100 && out.contains("output cut at 32 KiB"),
        "{}",
        out.len()
    );
}

#[test]
fn verify_and_merge_steps_describe_findings() {
    let r = repo();
    let out = "Prose.\n```findings\n[{\"title\": \"One\", \"severity\": \"low\", \"claim\": \"c\", \"evidence\": [{\"path\": \"lib.rs\", \"lines\": [1, 1], \"quote\": \"pub fn a()\"}]}, {\"title\": \"Two\", \"claim\": \"d\"}]\n```";
    let deps = vec![DepOutput {
        step_id: "s".into(),
        agent: "structural-analyst".into(),
        is_agent: true,
        completed: true,
        output: out.into(),
    }];
    let v = run(CodeFn::VerifyEvidence, &serde_json::json!({}), &r.0, &deps).unwrap();
    assert!(
        v.contains("Verified findings: 1") && v.contains("Findings without evidence: 1"),
        "{v}"
    );
    assert!(CodeFn::parse("nope").is_err());
}

#[test]
fn a_large_diff_is_split_by_file_and_hunk_never_truncated() {
    let mut diff = String::new();
    for f in 0..6 {
        diff.push_str(&format!(
            "diff --git a/f{f}.rs b/f{f}.rs\n--- a/f{f}.rs\n+++ b/f{f}.rs\n"
        ));
        for h in 0..4 {
            diff.push_str(&format!("@@ -{h},3 +{h},3 @@\n"));
            for l in 0..40 {
                diff.push_str(&format!(
                    "+file {f} hunk {h} line {l} padding padding padding\n"
                ));
            }
        }
    }
    let (parts, left) = split_diff(&diff, 4096, 100);
    assert!(left.is_empty());
    assert!(
        parts.len() > 6,
        "big files are split by hunk: {}",
        parts.len()
    );
    for p in &parts {
        assert!(p.len() <= 4096 + 200, "{}", p.len());
        assert!(
            p.starts_with("diff --git "),
            "every part starts with a file header"
        );
    }
    // Every added line is in exactly one part, in order.
    let joined: String = parts.concat();
    for f in 0..6 {
        for h in 0..4 {
            for l in 0..40 {
                let line = format!("+file {f} hunk {h} line {l} padding");
                assert_eq!(joined.matches(&line).count(), 1, "{line}");
            }
        }
    }
    // Past the part limit, the remaining files are named, not dropped silently.
    let (parts, left) = split_diff(&diff, 4096, 2);
    assert_eq!(parts.len(), 2);
    assert!(!left.is_empty());
    // The git_diff output marks the parts, and diff_parts recovers them.
    let r = repo();
    let big: String = (0..3000)
        .map(|i| format!("line {i} of a big change\n"))
        .collect();
    std::fs::write(r.0.join("lib.rs"), &big).unwrap();
    std::fs::write(r.0.join("README.md"), &big).unwrap();
    let out = git_diff(&r.0, &serde_json::json!({"max_bytes": 40000})).unwrap();
    let (header, parts) = diff_parts(&out).expect("split");
    assert!(header.contains("Changed files: 2"));
    assert!(parts.len() >= 3, "{}", parts.len());
    assert!(parts[0].starts_with(DIFF_PART_MARK));
    assert!(
        diff_parts(&git_diff(&r.0, &serde_json::json!({})).unwrap()).is_none(),
        "a diff under the cap is one piece"
    );
}

#[test]
fn code_functions_parse_from_their_names_and_only_those() {
    for f in CodeFn::ALL {
        assert_eq!(CodeFn::parse(f.as_str()), Ok(*f));
        assert_eq!(f.to_string(), f.as_str());
    }
    let names: Vec<&str> = CodeFn::ALL.iter().map(|f| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "git_diff",
            "signals",
            "run_command",
            "verify_evidence",
            "merge_findings",
            "render_report"
        ]
    );
    let e = CodeFn::parse("rm_rf").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown code function \"rm_rf\": use one of git_diff, signals, run_command, verify_evidence, merge_findings, render_report"
    );
    assert!(CodeFn::parse("Signals").is_err(), "names are exact");
    let e = Signal::parse("weather").unwrap_err().to_string();
    assert!(
        e.starts_with("unknown signal \"weather\": use one of concurrency, auth,"),
        "{e}"
    );
}

#[test]
fn the_signals_step_computes_exactly_the_signal_list() {
    for s in Signal::ALL {
        assert_eq!(Signal::parse(s.as_str()), Ok(*s));
    }
    let r = repo();
    let v = signals(&r.0).unwrap();
    let computed: Vec<&str> = v["signals"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut listed: Vec<&str> = Signal::ALL.iter().map(|s| s.as_str()).collect();
    listed.sort();
    assert_eq!(computed, listed);
}

/// The string literals of the Python list assigned to `name` in scripts/check-catalog.py.
fn python_list(name: &str) -> Vec<String> {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/check-catalog.py"
    ))
    .expect("read scripts/check-catalog.py");
    let start = format!("\n{name} = [");
    let at = script
        .find(&start)
        .unwrap_or_else(|| panic!("scripts/check-catalog.py has no `{name} = [` line"));
    let rest = &script[at + start.len()..];
    let list = &rest[..rest.find(']').expect("the list ends")];
    list.split(',')
        .map(|item| item.trim().trim_matches('"').to_string())
        .filter(|item| !item.is_empty())
        .collect()
}

#[test]
fn the_catalog_checker_knows_the_same_names() {
    let strs = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
    assert_eq!(
        python_list("FUNCTIONS"),
        strs(CodeFn::ALL.iter().map(|f| f.as_str()).collect()),
        "scripts/check-catalog.py FUNCTIONS must list codesteps::CodeFn"
    );
    assert_eq!(
        python_list("SIGNALS"),
        strs(Signal::ALL.iter().map(|s| s.as_str()).collect()),
        "scripts/check-catalog.py SIGNALS must list codesteps::Signal"
    );
    assert_eq!(
        python_list("GIT_SUBCOMMANDS"),
        strs(ALLOWED_GIT.to_vec()),
        "scripts/check-catalog.py GIT_SUBCOMMANDS must list codesteps::ALLOWED_GIT"
    );
}

#[test]
fn signals_never_read_through_a_link() {
    let r = repo();
    let outside = temp_dir("cs-outside");
    std::fs::write(outside.0.join("pool.rs"), "use std::sync::Mutex;\n").unwrap();
    std::os::unix::fs::symlink(outside.0.join("pool.rs"), r.0.join("pool.rs")).unwrap();
    let v = signals(&r.0).unwrap();
    assert_eq!(v["signals"]["concurrency"], false, "{v}");
    assert_eq!(v["files"], 3, "the link is a project file: {v}");
}

#[test]
fn signals_outside_a_repository_use_the_same_files_as_the_fingerprint() {
    let d = temp_dir("cs-plain");
    std::fs::create_dir_all(d.0.join("src")).unwrap();
    std::fs::write(d.0.join("src/lib.rs"), "async fn a() {}\n").unwrap();
    std::fs::write(d.0.join("odd name\n.py"), "x = 1\n").unwrap();
    let v = signals(&d.0).unwrap();
    assert_eq!(v["signals"]["concurrency"], true, "{v}");
    assert_eq!(v["signals"]["diff"], false, "no repository, no diff: {v}");
    assert_eq!(v["languages"]["python"], 1, "{v}");
    let fp = crate::project::HashCache::new().fingerprint(&d.0);
    assert_eq!(v["files"], fp.files.len(), "{v}");
}

#[test]
fn new_files_count_as_changes_in_the_diff_and_the_diff_signal() {
    let r = repo();
    assert_eq!(signals(&r.0).unwrap()["signals"]["diff"], false);
    std::fs::write(r.0.join("new file \u{e9}.rs"), "fn n() {}\n").unwrap();
    assert_eq!(signals(&r.0).unwrap()["signals"]["diff"], true);
    let out = git_diff(&r.0, &serde_json::json!({})).unwrap();
    assert!(
        out.contains("- new file \u{e9}.rs\n")
            && out.contains("+++ b/new file \u{e9}.rs\n")
            && out.contains("\n+fn n() {}\n"),
        "{out}"
    );
}

/// The refs and their objects, to prove a command left them alone.
fn refs(root: &Path) -> String {
    let out = std::process::Command::new("git")
        .current_dir(root)
        .args(["for-each-ref", "--format=%(refname) %(objectname)"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A repository with a branch and a tag to attack, a secret outside it and a link
/// from inside it to the secret's folder.
fn attacked_repo() -> (TempDir, TempDir) {
    let r = repo();
    sh(&r.0, &["branch", "victim"]);
    sh(&r.0, &["tag", "v1"]);
    let outside = temp_dir("cs-secret");
    std::fs::write(outside.0.join("secret.txt"), "TOP-SECRET-CONTENT\n").unwrap();
    sh(&outside.0, &["init", "-q"]);
    std::os::unix::fs::symlink(&outside.0, r.0.join("outlink")).unwrap();
    (r, outside)
}

/// Every command of `tests/corpus/commands/` (an argv that once wrote to the
/// repository or read a file outside it) is refused before git runs: the refs stay
/// as they were, nothing is written, and nothing of the secret comes back.
#[test]
fn every_hostile_command_of_the_corpus_is_refused() {
    let (r, outside) = attacked_repo();
    let before = refs(&r.0);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/commands");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus is there: {}", files.len());
    for f in files {
        let text = std::fs::read_to_string(&f)
            .unwrap()
            .replace("@OUTSIDE@", &outside.0.display().to_string());
        let argv: Vec<String> = serde_json::from_str(&text).unwrap();
        let got = run_command(&r.0, &argv, None);
        let shown = format!("{}: {argv:?} gave {got:?}", f.display());
        let err = got.expect_err(&shown);
        assert!(!err.contains("TOP-SECRET"), "{shown}");
        assert!(!err.is_empty(), "{shown}");
        assert_eq!(refs(&r.0), before, "{shown}");
        assert!(!r.0.join("written.txt").exists(), "{shown}");
    }
}

/// The read-only shapes flows use keep working.
#[test]
fn read_only_shapes_still_run() {
    let (r, _outside) = attacked_repo();
    let ok = |a: &[&str]| {
        let argv: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        run_command(&r.0, &argv, None).unwrap_or_else(|e| panic!("{a:?}: {e}"))
    };
    assert!(ok(&[
        "git",
        "log",
        "-n",
        "20",
        "--stat",
        "--oneline",
        "--no-color"
    ])
    .contains("init"));
    assert!(ok(&["git", "log", "-n5", "--format=%H %s", "--", "lib.rs"]).contains("init"));
    assert!(ok(&["git", "show", "HEAD:lib.rs"]).contains("pub fn a"));
    assert!(ok(&["git", "show", "--stat", "HEAD"]).contains("lib.rs"));
    assert!(ok(&["git", "blame", "-L", "1,1", "lib.rs"]).contains("pub fn a"));
    assert!(ok(&["git", "blame", "-L1,1", "--porcelain", "--", "lib.rs"]).contains("pub fn a"));
    assert!(ok(&["git", "branch", "--list", "-v"]).contains("victim"));
    assert!(ok(&["git", "branch", "--list", "vic*"]).contains("victim"));
    assert!(ok(&["git", "branch"]).contains("main"));
    assert!(ok(&["git", "tag", "-l"]).contains("v1"));
    assert!(ok(&["git", "tag"]).contains("v1"));
    assert!(ok(&["git", "rev-parse", "--abbrev-ref", "HEAD"]).contains("main"));
    assert!(ok(&["git", "ls-files", "-z", "--cached"]).contains("lib.rs"));
    assert!(ok(&["git", "shortlog", "-sn", "HEAD"]).contains('1'));
    std::fs::write(r.0.join("lib.rs"), "pub fn a() -> u32 { 2 }\n").unwrap();
    assert!(ok(&["git", "diff", "--stat", "HEAD"]).contains("lib.rs"));
    assert!(ok(&["git", "diff", "HEAD~0..HEAD"]).is_empty());
    assert!(ok(&["git", "diff", "-U1", "--", "lib.rs"]).contains("+pub fn a() -> u32 { 2 }"));
    assert!(ok(&["git", "status", "--short"]).contains("lib.rs"));
}
