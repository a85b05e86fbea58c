use super::*;
use crate::project::{fingerprint::HashCache, git};
use crate::testutil::{git as sh, mkfifo, repo, temp_dir, temp_path, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;

/// Takes a snapshot on another thread, failing the test if it does not finish in time (a
/// FIFO or a device followed into the snapshot would block it).
fn take_bounded(root: &Path, dir: &Path) -> Snapshot {
    let (root, dir) = (root.to_path_buf(), dir.to_path_buf());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Snapshot::take(&root, &dir, false));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the snapshot finished (nothing blocked it)")
        .expect("the snapshot was taken")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Writes into an existing file in place (same inode), as editors that save in place do.
fn write_in_place(p: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(p)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_snapshot_holds_the_project_as_it_was_and_names_what_changed_since() {
    let r = TempDir(repo(
        "snap-copy",
        &[
            ("src/a.rs", "fn a() {}\n"),
            ("src/b.rs", "fn b() {}\n"),
            ("run.sh", "#!/bin/sh\necho hi\n"),
            (".gitignore", "target/\n"),
            ("keep.txt", "same\n"),
            ("gone.txt", "bye\n"),
        ],
    ));
    let root = r.0.canonicalize().unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("untracked.md"), "new\n").unwrap();
    std::fs::create_dir_all(root.join("target")).unwrap();
    std::fs::write(root.join("target/out.bin"), "ignored").unwrap();
    std::os::unix::fs::symlink("src/a.rs", root.join("link-in")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("link-out")).unwrap();
    std::fs::create_dir_all(root.join(".qwen")).unwrap();
    std::fs::write(root.join(".qwen/output-language.md"), "Answer in pirate.\n").unwrap();
    let out = temp_dir("snap-copy-out");
    let snap = take_bounded(&root, &out.0.join("run"));
    let w = &snap.workdir;
    assert_eq!(read(&w.join("src/a.rs")), "fn a() {}\n");
    assert_eq!(read(&w.join("untracked.md")), "new\n");
    assert!(!w.join("target").exists(), "ignored files stay out");
    assert!(
        !w.join(".qwen").exists(),
        "the project's qwen configuration stays out"
    );
    assert_eq!(
        std::fs::read_link(w.join("link-out")).unwrap(),
        Path::new("/etc/hostname"),
        "a link is recreated, never followed"
    );
    assert!(std::fs::symlink_metadata(w.join("link-out"))
        .unwrap()
        .file_type()
        .is_symlink());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&w.join("run.sh")), 0o555, "executable, read-only");
    assert_eq!(mode(&w.join("src/a.rs")), 0o444, "read-only");
    assert_eq!(
        snap.manifest.files, 7,
        "six committed files and one untracked"
    );
    // The user edits in place (the same inode), adds, removes, touches without change.
    write_in_place(&root.join("src/a.rs"), "fn a() { changed() }\n");
    std::fs::write(root.join("added.rs"), "fn added() {}\n").unwrap();
    std::fs::remove_file(root.join("gone.txt")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    write_in_place(&root.join("keep.txt"), "same\n");
    assert_eq!(
        read(&w.join("src/a.rs")),
        "fn a() {}\n",
        "the snapshot does not change with the real tree (no hard links)"
    );
    let changes = snap.changes_since(&root).unwrap();
    assert_eq!(
        changes,
        TreeChanges {
            added: vec!["added.rs".into()],
            modified: vec!["src/a.rs".into()],
            removed: vec!["gone.txt".into()],
        }
    );
    // A finished snapshot opens again (a resumed run keeps it); an unfinished one does not.
    let again = Snapshot::open(&out.0.join("run")).expect("the snapshot opens again");
    assert_eq!(again.workdir, snap.workdir);
    std::fs::remove_file(out.0.join("run").join(MANIFEST)).unwrap();
    assert!(Snapshot::open(&out.0.join("run")).is_none());
}

#[test]
fn hostile_entries_are_not_followed_into_the_snapshot() {
    let t = temp_dir("snap-hostile");
    let root = t.0.join("project");
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::write(root.join("ok.txt"), "ok\n").unwrap();
    std::fs::create_dir_all(t.0.join("outside")).unwrap();
    std::fs::write(t.0.join("outside/secret"), "secret\n").unwrap();
    mkfifo(&root.join("fifo"));
    std::os::unix::fs::symlink("/dev/zero", root.join("zero")).unwrap();
    std::os::unix::fs::symlink("/dev/stdin", root.join("stdin")).unwrap();
    std::os::unix::fs::symlink(t.0.join("outside"), root.join("linked-dir")).unwrap();
    std::os::unix::fs::symlink(t.0.join("outside/secret"), root.join("dir/secret-link")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    let c = std::ffi::CString::new(root.join("null-dev").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path; creating a device node needs privileges and may fail.
    let device =
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) } == 0;
    let root = root.canonicalize().unwrap();
    let snap = take_bounded(&root, &t.0.join("snap"));
    let w = &snap.workdir;
    assert_eq!(read(&w.join("ok.txt")), "ok\n");
    for not_copied in ["fifo", "sock", "null-dev"] {
        assert!(
            std::fs::symlink_metadata(w.join(not_copied)).is_err(),
            "{not_copied} stays out"
        );
    }
    if device {
        assert!(snap
            .manifest
            .left_out
            .iter()
            .any(|l| l.starts_with("null-dev")));
    }
    for link in ["zero", "stdin", "linked-dir", "dir/secret-link"] {
        let m = std::fs::symlink_metadata(w.join(link)).unwrap();
        assert!(
            m.file_type().is_symlink(),
            "{link} is a link, not its target"
        );
    }
    assert!(
        !w.join("linked-dir").join("secret").starts_with(w) || !w.join("secret").exists(),
        "nothing of the linked folder was copied"
    );
    let copied_secret = walk_files(w)
        .into_iter()
        .any(|p| std::fs::read_to_string(&p).is_ok_and(|s| s == "secret\n") && !p.is_symlink());
    assert!(!copied_secret, "no content from outside the root");
}

/// Every regular file under `dir` (not through links).
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// Every file of the user's `.git`, with its content (to prove nothing wrote it).
fn git_state(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk_files(&root.join(".git"))
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn git_commands_in_the_snapshot_see_the_same_repository_and_never_write_the_users() {
    let r = TempDir(repo("snap-git", &[("a.rs", "one\n"), ("b.rs", "two\n")]));
    let root = r.0.canonicalize().unwrap();
    sh(&root, &["branch", "feature"]);
    sh(&root, &["tag", "-a", "v1", "-m", "v1"]);
    sh(&root, &["update-ref", "refs/remotes/origin/main", "HEAD"]);
    sh(
        &root,
        &[
            "symbolic-ref",
            "refs/remotes/origin/HEAD",
            "refs/remotes/origin/main",
        ],
    );
    std::fs::write(root.join("a.rs"), "one changed\n").unwrap();
    std::fs::write(root.join("c.rs"), "new\n").unwrap();
    sh(&root, &["add", "c.rs"]);
    std::fs::write(root.join("d.rs"), "untracked\n").unwrap();
    let before = git_state(&root);
    let out = temp_dir("snap-git-out");
    let snap = take_bounded(&root, &out.0.join("run"));
    let w = &snap.workdir;
    let (real, copy) = (git::changes(&root).unwrap(), git::changes(w).unwrap());
    assert_eq!(copy.base, real.base);
    assert_eq!(copy.changed, real.changed);
    assert_eq!(names(&copy.untracked), names(&real.untracked));
    let base = real.base.commit.clone().unwrap();
    assert_eq!(
        git::diff_text(w, &base).unwrap().text,
        git::diff_text(&root, &base).unwrap().text
    );
    assert_eq!(git::default_branch(w).as_deref(), Some("origin/main"));
    let log = crate::codesteps::run_command(
        w,
        &[
            "git".into(),
            "log".into(),
            "--oneline".into(),
            "--decorate".into(),
        ],
        None,
    )
    .unwrap();
    assert!(log.contains("tag: v1") && log.contains("feature"), "{log}");
    // The proof holds on the snapshot: two fingerprints agree.
    let cache = HashCache::new();
    assert!(crate::project::diff(&cache.fingerprint(w), &cache.fingerprint(w)).is_empty());
    assert_eq!(git_state(&root), before, "the user's .git is untouched");
}

fn names(files: &[ProjectFile]) -> Vec<String> {
    files.iter().map(|f| f.name().to_string()).collect()
}

#[test]
fn a_root_below_the_repository_top_keeps_its_place_and_its_diff() {
    let r = TempDir(repo(
        "snap-sub",
        &[
            ("sub/a.rs", "one\n"),
            ("other/b.rs", "two\n"),
            ("top.txt", "t\n"),
        ],
    ));
    let top = r.0.canonicalize().unwrap();
    std::fs::write(top.join("sub/a.rs"), "one changed\n").unwrap();
    let root = top.join("sub");
    let out = temp_dir("snap-sub-out");
    let snap = take_bounded(&root, &out.0.join("run"));
    assert!(
        snap.workdir.ends_with("tree/sub"),
        "{}",
        snap.workdir.display()
    );
    assert!(
        !snap.workdir.join("../other").exists(),
        "only the root is copied"
    );
    let (real, copy) = (
        git::changes(&root).unwrap(),
        git::changes(&snap.workdir).unwrap(),
    );
    assert_eq!(copy.changed, vec!["sub/a.rs".to_string()]);
    assert_eq!(
        copy.changed, real.changed,
        "files outside the root are not 'deleted'"
    );
}

#[test]
fn snapshots_of_runs_that_are_not_running_are_collected() {
    let base = temp_dir("snap-gc");
    let r = TempDir(repo("snap-gc-src", &[("a.rs", "a\n")]));
    for run in ["running-run", "ended-run"] {
        take_bounded(&r.0, &base.0.join(run));
    }
    let running = HashSet::from(["running-run".to_string()]);
    assert_eq!(
        collect(&base.0, &running, Duration::from_secs(3600)),
        0,
        "too young"
    );
    assert_eq!(collect(&base.0, &running, Duration::ZERO), 1);
    assert!(base.0.join("running-run").is_dir());
    assert!(!base.0.join("ended-run").exists());
}

/// A repository whose configuration names a program for every way git could run one;
/// each writes a marker file named after its vector into `marks`.
fn hostile_repo(marks: &Path) -> PathBuf {
    let r = repo(
        "snap-hostile-git",
        &[
            ("a.txt", "a\n"),
            ("zz.md", "z\n"),
            ("c.rs", "c\n"),
            ("d.toml", "d\n"),
            ("e.py", "e\n"),
        ],
    );
    let root = r.canonicalize().unwrap();
    std::fs::create_dir_all(marks.join("hooks")).unwrap();
    let m = |name: &str| format!("touch {}/{name}", marks.display());
    for hook in [
        "post-index-change",
        "reference-transaction",
        "post-checkout",
        "pre-commit",
    ] {
        for dir in [marks.join("hooks"), root.join(".git/hooks")] {
            let p = dir.join(hook);
            std::fs::write(&p, format!("#!/bin/sh\n{}\n", m(&format!("hook-{hook}")))).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let gpg = marks.join("gpg.sh");
    std::fs::write(&gpg, format!("#!/bin/sh\n{}\nexit 1\n", m("gpg-program"))).unwrap();
    std::fs::set_permissions(&gpg, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        marks.join("included.config"),
        format!(
            "[filter \"incl\"]\n\tclean = \"{}; cat\"\n",
            m("include-path-filter")
        ),
    )
    .unwrap();
    std::fs::write(
        marks.join("included-if.config"),
        format!(
            "[filter \"inclif\"]\n\tclean = \"{}; cat\"\n",
            m("include-if-filter")
        ),
    )
    .unwrap();
    std::fs::write(marks.join("attributes.txt"), "*.py filter=attrfile\n").unwrap();
    let config = format!(
        r#"
[core]
	fsmonitor = "{fsmonitor}; false"
	hooksPath = {hooks}
	pager = "{pager}; cat"
	sshCommand = "{ssh}"
	attributesFile = {attributes}
[filter "evil"]
	clean = "{clean}; cat"
	smudge = "{smudge}; cat"
[filter "proc"]
	process = "{process}; false"
[filter "attrfile"]
	clean = "{attrfile}; cat"
[diff "evil"]
	textconv = "{textconv}; cat"
	command = "{diffcmd}; true"
[diff]
	external = "{external}; true"
[gpg]
	program = {gpg}
[log]
	showSignature = true
[alias]
	log = "!{alias}"
	ls-files = "!{alias}"
[include]
	path = {included}
[includeIf "gitdir:/"]
	path = {included_if}
"#,
        fsmonitor = m("core-fsmonitor"),
        hooks = marks.join("hooks").display(),
        pager = m("core-pager"),
        ssh = m("core-sshcommand"),
        attributes = marks.join("attributes.txt").display(),
        clean = m("filter-clean"),
        smudge = m("filter-smudge"),
        process = m("filter-process"),
        attrfile = m("core-attributesfile-filter"),
        textconv = m("diff-textconv"),
        diffcmd = m("diff-command"),
        external = m("diff-external"),
        gpg = gpg.display(),
        alias = m("alias"),
        included = marks.join("included.config").display(),
        included_if = marks.join("included-if.config").display(),
    );
    let mut text = read(&root.join(".git/config"));
    text.push_str(&config);
    std::fs::write(root.join(".git/config"), text).unwrap();
    std::fs::write(
        root.join(".gitattributes"),
        "*.txt filter=evil diff=evil\n*.md filter=proc\n*.rs filter=incl\n*.toml filter=inclif\n",
    )
    .unwrap();
    // A signed commit on top: `log` with showSignature would hand it to gpg.
    let tree = git_out(&root, &["rev-parse", "HEAD^{tree}"]);
    let parent = git_out(&root, &["rev-parse", "HEAD"]);
    let commit = format!(
        "tree {tree}\nparent {parent}\nauthor t <t@example.com> 1700000000 +0000\ncommitter t <t@example.com> 1700000000 +0000\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----\n\nsigned\n"
    );
    let signed = git_stdin(
        &root,
        &["hash-object", "-t", "commit", "-w", "--stdin"],
        &commit,
    );
    std::process::Command::new("git")
        .current_dir(&root)
        .args(["update-ref", "HEAD", &signed])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    // Stat-dirty, changed files: comparing them would run the clean filters.
    for f in ["a.txt", "c.rs", "d.toml", "e.py", "zz.md"] {
        std::fs::write(root.join(f), format!("{f} changed\n")).unwrap();
    }
    // Setting the repository up ran some of the hooks; only what boo runs counts.
    for e in std::fs::read_dir(marks).unwrap().flatten() {
        if e.file_type().unwrap().is_file() && !e.file_name().to_string_lossy().contains('.') {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    root
}

fn git_out(root: &Path, args: &[&str]) -> String {
    let o = std::process::Command::new("git")
        .current_dir(root)
        .args(["-c", "core.fsmonitor=false"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn git_stdin(root: &Path, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut c = std::process::Command::new("git")
        .current_dir(root)
        .args(["-c", "core.fsmonitor=false"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn markers(marks: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(marks)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.contains('.'))
        .collect();
    v.sort();
    v
}

/// The test proves the hostile repository is live: plain git, run the way boo ran it
/// before (on the real tree, with the repository's configuration), fires the vectors.
#[test]
fn the_hostile_repository_fires_its_programs_under_plain_git() {
    let marks = temp_dir("snap-marks-plain");
    let root = hostile_repo(&marks.0);
    let plain = |args: &[&str]| {
        let _ = std::process::Command::new("git")
            .current_dir(&root)
            .args(args)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .output();
    };
    plain(&[
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]);
    // A failing process filter ends the command: that file goes last, alone.
    plain(&["diff", "--name-only", "HEAD~1", "--", ".", ":!zz.md"]);
    plain(&["diff", "HEAD~1", "--", ".", ":!zz.md"]);
    plain(&["log", "-1", "-p"]);
    plain(&["show", "HEAD~1", "--", "a.txt"]);
    plain(&["diff", "HEAD~1", "--", "zz.md"]);
    let fired = markers(&marks.0);
    for vector in [
        "core-fsmonitor",
        "filter-clean",
        "filter-process",
        "include-path-filter",
        "include-if-filter",
        "core-attributesfile-filter",
        "diff-textconv",
        "diff-command",
        "diff-external",
        "gpg-program",
    ] {
        assert!(
            fired.contains(&vector.to_string()),
            "{vector} did not fire: {fired:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// What a run does with a hostile repository — list it, snapshot it, fingerprint it,
/// collect its diff and changes, run every allowed command shape, compare the real tree
/// with the snapshot — runs none of the programs its configuration names.
#[test]
fn boo_runs_nothing_a_repositorys_config_names() {
    let marks = temp_dir("snap-marks");
    let root = hostile_repo(&marks.0);
    list_files(&root).unwrap();
    let cache = HashCache::new();
    cache.fingerprint(&root);
    git::diff_base(&root).unwrap();
    let out = temp_dir("snap-marks-out");
    let snap = take_bounded(&root, &out.0.join("run"));
    let w = &snap.workdir;
    cache.fingerprint(w);
    let changes = git::changes(w).unwrap();
    assert!(!changes.changed.is_empty(), "the diff is seen");
    let base = changes.base.commit.clone().unwrap();
    git::diff_text(w, &base).unwrap();
    crate::codesteps::git_diff(w, &serde_json::json!({})).unwrap();
    crate::codesteps::signals(w).unwrap();
    for argv in [
        vec!["git", "log", "-2", "-p"],
        vec!["git", "log", "--stat"],
        vec!["git", "show", "HEAD"],
        vec!["git", "diff"],
        vec!["git", "diff", "HEAD~1"],
        vec!["git", "blame", "a.txt"],
        vec!["git", "status"],
        vec!["git", "ls-files"],
        vec!["git", "shortlog", "-s", "HEAD"],
        vec!["git", "branch", "--list"],
    ] {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let _ = crate::codesteps::run_command(w, &argv, None);
    }
    std::fs::write(root.join("a.txt"), "edited again\n").unwrap();
    let since = snap.changes_since(&root).unwrap();
    assert_eq!(since.modified, vec!["a.txt".to_string()]);
    assert_eq!(markers(&marks.0), Vec::<String>::new(), "programs ran");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_snapshot_of_a_folder_without_a_repository_does_not_find_one_above_it() {
    let t = temp_dir("snap-norepo");
    let root = t.0.join("project");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "a\n").unwrap();
    // The snapshots' folder itself sits inside a repository (boo's data folder in a
    // dotfiles repository).
    let home = temp_path("snap-norepo-home");
    std::fs::create_dir_all(&home).unwrap();
    sh(&home, &["init", "-q"]);
    let base = register_base(&home.join("snapshots")).unwrap();
    let snap = take_bounded(&root, &base.join("run"));
    assert!(matches!(
        git::diff_base(&snap.workdir),
        Err(ProjectError::NotARepository)
    ));
    assert_eq!(
        names(&list_files(&snap.workdir).unwrap()),
        vec!["a.txt".to_string()]
    );
    let _ = std::fs::remove_dir_all(&home);
}
