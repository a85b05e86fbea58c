use super::*;

use crate::testutil::{git as sh, repo, temp_dir, TempDir};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

fn names(files: &[ProjectFile]) -> Vec<&str> {
    files.iter().map(ProjectFile::name).collect()
}

#[test]
fn a_repository_lists_tracked_and_untracked_files_but_not_ignored_ones() {
    let r = TempDir(repo(
        "pj-git",
        &[
            ("src/a.rs", "fn a() {}\n"),
            (".gitignore", "ignored/\n*.log\n"),
            ("with space.txt", "s\n"),
        ],
    ));
    std::fs::write(r.0.join("new.txt"), "n\n").unwrap();
    std::fs::write(r.0.join("line\nbreak.txt"), "n\n").unwrap();
    std::fs::write(r.0.join("debug.log"), "ignored\n").unwrap();
    std::fs::create_dir_all(r.0.join("ignored")).unwrap();
    std::fs::write(r.0.join("ignored/x"), "x").unwrap();
    // A tracked file deleted in the working tree is still part of the project.
    std::fs::remove_file(r.0.join("with space.txt")).unwrap();
    let files = list_files(&r.0).unwrap();
    assert_eq!(
        names(&files),
        vec![
            ".gitignore",
            "line\nbreak.txt",
            "new.txt",
            "src/a.rs",
            "with space.txt"
        ]
    );
    assert_eq!(files[1].path(), Path::new("line\nbreak.txt"));
    // A folder inside the repository lists only its own files, relative to itself.
    assert_eq!(names(&list_files(&r.0.join("src")).unwrap()), vec!["a.rs"]);
}

#[test]
fn a_file_with_merge_conflicts_is_listed_once() {
    let r = TempDir(repo("pj-conflict", &[("a.txt", "base\n")]));
    sh(&r.0, &["checkout", "-qb", "side"]);
    std::fs::write(r.0.join("a.txt"), "side\n").unwrap();
    sh(&r.0, &["commit", "-qam", "side"]);
    sh(&r.0, &["checkout", "-q", "main"]);
    std::fs::write(r.0.join("a.txt"), "main\n").unwrap();
    sh(&r.0, &["commit", "-qam", "main"]);
    let merge = std::process::Command::new("git")
        .current_dir(&r.0)
        .args(["merge", "-q", "side"])
        .output()
        .unwrap();
    assert!(!merge.status.success(), "the merge conflicts");
    assert_eq!(names(&list_files(&r.0).unwrap()), vec!["a.txt"]);
}

#[test]
fn outside_a_repository_every_entry_is_listed_and_linked_folders_are_not_entered() {
    let d = temp_dir("pj-walk");
    let outside = temp_dir("pj-walk-outside");
    std::fs::write(outside.0.join("secret.txt"), "outside\n").unwrap();
    std::fs::create_dir_all(d.0.join("a/b")).unwrap();
    std::fs::create_dir_all(d.0.join("node_modules/x")).unwrap();
    std::fs::write(d.0.join("a/b/deep.rs"), "fn d() {}\n").unwrap();
    std::fs::write(d.0.join(".env"), "hidden\n").unwrap();
    std::fs::write(d.0.join("node_modules/x/index.js"), "x\n").unwrap();
    std::fs::write(d.0.join("two words\nand a line.md"), "w\n").unwrap();
    std::os::unix::fs::symlink(&outside.0, d.0.join("linked-dir")).unwrap();
    std::os::unix::fs::symlink(outside.0.join("secret.txt"), d.0.join("linked-file")).unwrap();
    let files = list_files(&d.0).unwrap();
    assert_eq!(
        names(&files),
        vec![
            ".env",
            "a/b/deep.rs",
            "linked-dir",
            "linked-file",
            "node_modules/x/index.js",
            "two words\nand a line.md",
        ]
    );
    // A root that is not a folder is an error that names it.
    let e = list_files(&d.0.join("missing")).unwrap_err().to_string();
    assert!(
        e.contains("missing") && e.contains("not a readable folder"),
        "{e}"
    );
}

#[test]
fn a_file_name_that_is_not_utf8_is_listed_and_read_exactly() {
    let r = TempDir(repo("pj-bytes", &[("a.txt", "a\n")]));
    let odd = OsStr::from_bytes(b"odd-\xff.txt");
    std::fs::write(r.0.join(odd), "odd\n").unwrap();
    let files = list_files(&r.0).unwrap();
    let f = files.iter().find(|f| f.path() == Path::new(odd)).unwrap();
    assert_eq!(f.name(), "odd-\\xff.txt");
    assert_eq!(read_head(&r.0, f, 100).unwrap().unwrap(), b"odd\n");
    let cache = HashCache::new();
    let before = cache.fingerprint(&r.0);
    std::fs::write(r.0.join(odd), "changed\n").unwrap();
    assert_eq!(
        diff(&before, &cache.fingerprint(&r.0)),
        vec!["odd-\\xff.txt (changed)".to_string()]
    );
}

#[test]
fn a_link_out_of_the_root_is_never_read_as_content() {
    let r = TempDir(repo("pj-link", &[("a.txt", "a\n")]));
    let outside = temp_dir("pj-link-outside");
    std::fs::write(outside.0.join("secret.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink(outside.0.join("secret.txt"), r.0.join("leak")).unwrap();
    let files = list_files(&r.0).unwrap();
    let leak = files.iter().find(|f| f.name() == "leak").unwrap();
    assert_eq!(read_head(&r.0, leak, 1024).unwrap(), None);
    let a = files.iter().find(|f| f.name() == "a.txt").unwrap();
    assert_eq!(read_head(&r.0, a, 1).unwrap().unwrap(), b"a");
    // The fingerprint records where the link points, not what it points at.
    let cache = HashCache::new();
    let before = cache.fingerprint(&r.0);
    std::fs::write(outside.0.join("secret.txt"), "changed outside\n").unwrap();
    assert!(diff(&before, &cache.fingerprint(&r.0)).is_empty());
    std::fs::remove_file(r.0.join("leak")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", r.0.join("leak")).unwrap();
    assert_eq!(
        diff(&before, &cache.fingerprint(&r.0)),
        vec!["leak (changed)".to_string()]
    );
}

#[test]
fn detects_every_kind_of_change() {
    let d = temp_dir("pj-fp");
    let d = &d.0;
    std::fs::write(d.join("a.txt"), "a\n").unwrap();
    std::fs::write(d.join(".gitignore"), "ignored/\n").unwrap();
    sh(d, &["init", "-q"]);
    sh(d, &["add", "-A"]);
    sh(d, &["commit", "-qm", "i"]);
    let cache = HashCache::new();
    let base = cache.fingerprint(d);
    assert!(
        diff(&base, &cache.fingerprint(d)).is_empty(),
        "a fingerprint is stable"
    );
    // Touching without changing content is not a change.
    let f = std::fs::File::options()
        .write(true)
        .open(d.join("a.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);
    assert!(diff(&base, &cache.fingerprint(d)).is_empty());
    std::fs::write(d.join("a.txt"), "b\n").unwrap();
    assert_eq!(
        diff(&base, &cache.fingerprint(d)),
        vec!["a.txt (changed)".to_string()]
    );
    std::fs::write(d.join("a.txt"), "a\n").unwrap();
    std::fs::write(d.join("new.txt"), "n\n").unwrap();
    assert_eq!(
        diff(&base, &cache.fingerprint(d)),
        vec!["new.txt (created)".to_string()]
    );
    std::fs::remove_file(d.join("new.txt")).unwrap();
    // Ignored files are not part of the fingerprint.
    std::fs::create_dir_all(d.join("ignored")).unwrap();
    std::fs::write(d.join("ignored/x"), "x").unwrap();
    assert!(diff(&base, &cache.fingerprint(d)).is_empty());
    // A new branch or worktree changes the repository state.
    sh(d, &["branch", "side"]);
    assert!(diff(&base, &cache.fingerprint(d))
        .iter()
        .any(|l| l.contains(".git refs")));
}

#[test]
fn in_a_linked_worktree_the_shared_config_and_hooks_are_watched() {
    let r = TempDir(repo("pj-wt", &[("a.txt", "a\n")]));
    let wt = crate::testutil::temp_path("pj-wt-linked");
    let _cleanup = TempDir(wt.clone());
    sh(
        &r.0,
        &["worktree", "add", "-q", "-b", "wt", &wt.to_string_lossy()],
    );
    std::fs::create_dir_all(r.0.join(".git/hooks")).unwrap();
    let cache = HashCache::new();
    let before = cache.fingerprint(&wt);
    assert!(before.files.contains_key("a.txt"));
    assert!(diff(&before, &cache.fingerprint(&wt)).is_empty());
    let hook = r.0.join(".git/hooks/post-checkout");
    std::fs::write(&hook, "#!/bin/sh\n").unwrap();
    assert_eq!(
        diff(&before, &cache.fingerprint(&wt)),
        vec![".git hooks (changed)".to_string()]
    );
    std::fs::remove_file(&hook).unwrap();
    sh(&r.0, &["config", "boo.test", "1"]);
    assert_eq!(
        diff(&before, &cache.fingerprint(&wt)),
        vec![".git config (changed)".to_string()]
    );
}

#[test]
fn a_fingerprint_that_could_not_list_the_files_proves_nothing() {
    let d = temp_dir("pj-gone");
    let cache = HashCache::new();
    let fine = cache.fingerprint(&d.0);
    let gone = cache.fingerprint(&d.0.join("missing"));
    assert!(gone.listing_error.is_some());
    let lines = diff(&fine, &gone);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("could not be listed after the step"),
        "{lines:?}"
    );
}

#[test]
fn the_content_digest_is_stable_and_follows_content_only() {
    let r = TempDir(repo("pj-digest", &[("a.txt", "a\n"), ("b/c.txt", "c\n")]));
    let cache = HashCache::new();
    let first = cache.fingerprint(&r.0).digest();
    assert_eq!(first.len(), 64);
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(first, cache.fingerprint(&r.0).digest(), "stable");
    assert_eq!(
        first,
        HashCache::new().fingerprint(&r.0).digest(),
        "cache-free"
    );
    // Repository state and modes are not content.
    sh(&r.0, &["branch", "other"]);
    let mut perms = std::fs::metadata(r.0.join("a.txt")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(r.0.join("a.txt"), perms).unwrap();
    assert_eq!(first, cache.fingerprint(&r.0).digest());
    std::fs::write(r.0.join("a.txt"), "A\n").unwrap();
    let changed = cache.fingerprint(&r.0).digest();
    assert_ne!(first, changed, "a content change changes the digest");
    std::fs::write(r.0.join("a.txt"), "a\n").unwrap();
    assert_eq!(first, cache.fingerprint(&r.0).digest(), "and back");
    std::fs::write(r.0.join("new.txt"), "").unwrap();
    assert_ne!(
        first,
        cache.fingerprint(&r.0).digest(),
        "a new empty file too"
    );
}

#[test]
fn git_commands_are_bounded() {
    let r = TempDir(repo("pj-run", &[("a.txt", "a\n")]));
    let e = git::run(
        &r.0,
        &["rev-parse", "--verify", "no-such-ref"],
        &[],
        git::Limits {
            timeout: Duration::from_secs(10),
            max_stdout: None,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("git rev-parse --verify no-such-ref") && e.contains("exit 128"),
        "{e}"
    );
    let out = git::run(
        &r.0,
        &["log", "--format=%s%n%s%n%s"],
        &[],
        git::Limits {
            timeout: Duration::from_secs(10),
            max_stdout: Some(6),
        },
    )
    .unwrap();
    assert_eq!(
        (out.stdout.as_slice(), out.truncated),
        (&b"init\ni"[..], true)
    );
    // A command that outlives its deadline is stopped, even when a process it started
    // keeps the output pipes open.
    let t = std::time::Instant::now();
    let e = git::run(
        &r.0,
        &["-c", "alias.hang=!sleep 5", "hang"],
        &[],
        git::Limits {
            timeout: Duration::from_millis(300),
            max_stdout: None,
        },
    )
    .unwrap_err();
    assert!(matches!(e, GitError::TimedOut { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn changes_cover_the_diff_base_and_new_files() {
    let r = TempDir(repo("pj-changes", &[("a.txt", "a\n")]));
    let c = git::changes(&r.0).unwrap();
    assert_eq!(c.base.label, "HEAD (uncommitted changes)");
    assert!(c.is_empty());
    sh(&r.0, &["checkout", "-qb", "feature"]);
    std::fs::write(r.0.join("a.txt"), "b\n").unwrap();
    sh(&r.0, &["commit", "-qam", "b"]);
    std::fs::write(r.0.join("new file.txt"), "n\n").unwrap();
    let c = git::changes(&r.0).unwrap();
    assert_eq!(c.base.label, "merge-base of HEAD with main");
    assert_eq!(c.changed, vec!["a.txt".to_string()]);
    assert_eq!(names(&c.untracked), vec!["new file.txt"]);
    let d = temp_dir("pj-changes-plain");
    let e = git::changes(&d.0).unwrap_err();
    assert!(matches!(e, ProjectError::NotARepository), "{e}");
}

#[test]
fn a_tracked_file_behind_a_linked_folder_is_not_read() {
    let r = TempDir(repo(
        "pj-linked-dir",
        &[("dir/file.rs", "fn inside() {}\n")],
    ));
    let outside = temp_dir("pj-linked-dir-outside");
    std::fs::write(outside.0.join("file.rs"), "outside\n").unwrap();
    std::fs::remove_dir_all(r.0.join("dir")).unwrap();
    std::os::unix::fs::symlink(&outside.0, r.0.join("dir")).unwrap();
    let files = list_files(&r.0).unwrap();
    assert_eq!(names(&files), vec!["dir", "dir/file.rs"]);
    assert_eq!(read_head(&r.0, &files[1], 1024).unwrap(), None);
    assert_eq!(read_head(&r.0, &files[0], 1024).unwrap(), None);
    let fp = HashCache::new().fingerprint(&r.0);
    assert_eq!(
        fp.files["dir/file.rs"].hash, [0; 32],
        "no content vouched for"
    );
    // Nor does a path that climbs out name a project file.
    let up = ProjectFile::from_bytes(b"../x");
    assert_eq!(read_head(&r.0, &up, 10).unwrap(), None);
}

#[test]
fn both_ways_of_opening_a_file_refuse_every_link() {
    let r = TempDir(repo("pj-open", &[("a.txt", "a\n"), ("dir/file.rs", "f\n")]));
    let outside = temp_dir("pj-open-outside");
    std::fs::write(outside.0.join("secret.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink(outside.0.join("secret.txt"), r.0.join("link-file")).unwrap();
    std::os::unix::fs::symlink(&outside.0, r.0.join("link-dir")).unwrap();
    std::os::unix::fs::symlink("a.txt", r.0.join("dir/inner-link")).unwrap();
    let root = RootDir::open(&r.0).unwrap();
    type Open = fn(&RootDir, &Path, libc::c_int) -> std::io::Result<Option<OwnedFd>>;
    let ways: [(&str, Open); 2] = [
        ("openat2", RootDir::open_in_one_call),
        ("openat", RootDir::open_folder_by_folder),
    ];
    for (way, open) in ways {
        let opens = |p: &str| open(&root, Path::new(p), FILE_FLAGS).unwrap().is_some();
        assert!(opens("a.txt"), "{way}");
        assert!(opens("dir/file.rs"), "{way}");
        assert!(!opens("link-file"), "{way}");
        assert!(!opens("link-dir/secret.txt"), "{way}");
        assert!(
            !opens("dir/inner-link"),
            "{way}: even a link inside the root"
        );
        assert!(
            open(&root, Path::new("missing"), FILE_FLAGS).is_err(),
            "{way}"
        );
    }
}

#[test]
fn a_stop_request_ends_a_running_git_command_at_once() {
    let r = TempDir(repo("pj-stop", &[("a.txt", "a\n")]));
    let flag = git::StopFlag::new();
    let f2 = flag.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        f2.stop();
    });
    let t = std::time::Instant::now();
    let e = git::with_stop(flag.clone(), || {
        git::run(
            &r.0,
            &["-c", "alias.hang=!sleep 30", "hang"],
            &[],
            git::Limits {
                timeout: Duration::from_secs(60),
                max_stdout: None,
            },
        )
    })
    .unwrap_err();
    assert!(matches!(e, GitError::Stopped { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Once stopped, nothing more starts under the flag; outside it, git runs.
    let again = git::with_stop(flag, || {
        git::run(
            &r.0,
            &["status"],
            &[],
            git::Limits {
                timeout: Duration::from_secs(10),
                max_stdout: None,
            },
        )
    });
    assert!(matches!(again, Err(GitError::Stopped { .. })), "{again:?}");
    assert!(git::run(
        &r.0,
        &["status"],
        &[],
        git::Limits {
            timeout: Duration::from_secs(10),
            max_stdout: None,
        }
    )
    .is_ok());
}

/// A FIFO in place of `.git/packed-refs` once hung the fingerprint for good (it read
/// the file with a blocking open). Now it is recorded as "not a regular file", and the
/// git command that would wait on it ends when the step is stopped.
#[test]
fn the_fingerprint_never_blocks_on_a_fifo_in_the_repository() {
    let r = TempDir(repo("pj-fifo", &[("a.txt", "a\n")]));
    crate::testutil::mkfifo(&r.0.join(".git/packed-refs"));
    crate::testutil::mkfifo(&r.0.join("pipe"));
    let flag = git::StopFlag::new();
    let f2 = flag.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        f2.stop();
    });
    let root = r.0.clone();
    let fp = crate::testutil::within(Duration::from_secs(15), move || {
        git::with_stop(flag, || HashCache::new().fingerprint(&root))
    })
    .expect("the fingerprint ends although the repository holds FIFOs");
    assert_eq!(
        fp.git.get("packed-refs").map(String::as_str),
        Some("(not a regular file)")
    );
    assert!(fp.files.contains_key("a.txt"), "{:?}", fp.files.keys());
}
