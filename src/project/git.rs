//! Reading the project's repository. Every git command boo runs goes through [`run`]:
//! an argv (never a shell), `GIT_OPTIONAL_LOCKS=0` so that even `status` and `diff` do
//! not refresh the index, a deadline, and a cap on what is kept of the output. Nothing
//! here writes a ref, the index or the working tree.

use super::{split_nul, ProjectError, ProjectFile};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any git command boo runs may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a failing command's stderr its error keeps.
const STDERR_CAP: usize = 8 * 1024;
/// How often a running command checks whether it was asked to stop.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Asks every git command run under [`with_stop`] to end now: the command is killed
/// and gives [`GitError::Stopped`]. A code step's cancel and deadline use it, so a
/// command that hangs (on a FIFO, a slow file system) never outlives its step.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

thread_local! {
    static STOP: std::cell::RefCell<Option<StopFlag>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on this thread with `flag` ending every git command it starts.
pub fn with_stop<R>(flag: StopFlag, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<StopFlag>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let old = self.0.take();
            STOP.with(|s| *s.borrow_mut() = old);
        }
    }
    let _reset = Reset(STOP.with(|s| s.borrow_mut().replace(flag)));
    f()
}

fn stop_requested() -> bool {
    STOP.with(|s| s.borrow().as_ref().is_some_and(StopFlag::is_stopped))
}

/// How long a command may run and how much of its output is kept.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// `None` keeps all of stdout; past `Some(n)` bytes the rest is read and dropped.
    pub max_stdout: Option<usize>,
}

/// The limits of boo's own commands: everything is kept (a listing cut short would
/// hide files).
const OWN: Limits = Limits {
    timeout: GIT_TIMEOUT,
    max_stdout: None,
};

/// What a git command printed.
#[derive(Debug)]
pub struct GitOutput {
    pub stdout: Vec<u8>,
    /// True when stdout went past `Limits::max_stdout` and was cut there.
    pub truncated: bool,
}

/// Why a git command gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot start git ({source}); install git, or put it on the PATH boo runs with")]
    NotStarted { source: std::io::Error },
    #[error("`git {args}` did not finish within {}s and was stopped; a very large repository or a hung file system can cause this", .timeout.as_secs())]
    TimedOut { args: String, timeout: Duration },
    #[error("`git {args}` was stopped because its step was cancelled or ran past its deadline")]
    Stopped { args: String },
    #[error("`git {args}` failed ({status}): {stderr}")]
    Failed {
        args: String,
        /// `exit N`, or `killed by a signal`.
        status: String,
        stderr: String,
    },
    #[error("reading the output of `git {args}` failed: {source}")]
    Io {
        args: String,
        source: std::io::Error,
    },
}

/// Settings given on every git command line (they win over every config file): each
/// switches off a way a repository's own `.git/config` (or a file it includes) could make
/// a read-only command run a program: the fsmonitor hook, hooks, the pager, signature
/// checks (gpg), transports (lazy fetches of a partial clone), an external diff. Filters
/// and textconv drivers need a name from the config; boo's content-reading commands run
/// in the run's snapshot, whose config boo writes itself (`project::snapshot`), and
/// diff-like commands also get `--no-ext-diff --no-textconv`.
pub const SAFE_CONFIG: &[&str] = &[
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.attributesFile=/dev/null",
    "core.untrackedCache=false",
    "core.sshCommand=false",
    "log.showSignature=false",
    "diff.external=",
    "protocol.allow=never",
    "submodule.recurse=false",
];

/// Environment variables boo's own environment may hold that would point git elsewhere
/// or make it run something; removed from every git command.
const UNSAFE_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_EXTERNAL_DIFF",
    "GIT_DIFF_OPTS",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "GIT_EDITOR",
    "GIT_EXEC_PATH",
    "GIT_PROXY_COMMAND",
    "GIT_ATTR_SOURCE",
    "GIT_REPLACE_REF_BASE",
    "GIT_TRACE",
    "GIT_TRACE2",
    "GIT_TRACE2_EVENT",
    "GIT_TRACE2_PERF",
];

/// The excludes file of the user's own global git configuration (`core.excludesFile`),
/// read once: every boo command runs without the global configuration, but which files
/// the user ignores must not change what the project is. `None` when the user set none
/// (git then uses its default, `~/.config/git/ignore`, by itself).
fn user_excludes_file() -> Option<&'static str> {
    static FILE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let out = Command::new("git")
            .args(["config", "--global", "--path", "--get", "core.excludesFile"])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !path.is_empty() && !path.contains('\n')).then_some(path)
    })
    .as_deref()
}

/// What every git command boo runs gets: no system or global configuration (only the
/// repository's, with [`SAFE_CONFIG`] over it), no system attributes, no lazy fetch, no
/// prompt, no optional locks (even `status` and `diff` do not refresh the index).
fn harden(cmd: &mut Command) {
    for k in UNSAFE_ENV {
        cmd.env_remove(k);
    }
    cmd.env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_ATTR_NOSYSTEM", "1")
        .env("GIT_NO_LAZY_FETCH", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PAGER", "cat")
        .arg("--no-pager");
    if let Some(c) = super::snapshot::ceilings() {
        cmd.env("GIT_CEILING_DIRECTORIES", c);
    }
    for c in SAFE_CONFIG {
        cmd.arg("-c").arg(c);
    }
    if let Some(file) = user_excludes_file() {
        cmd.arg("-c").arg(format!("core.excludesFile={file}"));
    }
}

/// Runs `git <args>` in `dir` with extra environment variables `env`, under `limits`.
/// A non-zero exit is an error holding (the start of) git's stderr.
pub fn run(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    limits: Limits,
) -> Result<GitOutput, GitError> {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir);
    harden(&mut cmd);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let shown = || args.join(" ");
    if stop_requested() {
        return Err(GitError::Stopped { args: shown() });
    }
    let mut child = cmd
        .spawn()
        .map_err(|source| GitError::NotStarted { source })?;
    let deadline = Instant::now() + limits.timeout;
    let finished = read_both(&mut child, deadline, limits.max_stdout)
        .and_then(|streams| reap(&mut child, deadline).map(|status| (streams, status)));
    let (streams, status) = match finished {
        Ok(done) => done,
        Err(stopped) => {
            stop(&mut child);
            return Err(match stopped {
                Stopped::Deadline => GitError::TimedOut {
                    args: shown(),
                    timeout: limits.timeout,
                },
                Stopped::Asked => GitError::Stopped { args: shown() },
                Stopped::Io(source) => GitError::Io {
                    args: shown(),
                    source,
                },
            });
        }
    };
    if !status.success() {
        return Err(GitError::Failed {
            args: shown(),
            status: status
                .code()
                .map(|c| format!("exit {c}"))
                .unwrap_or_else(|| "killed by a signal".into()),
            stderr: String::from_utf8_lossy(&streams.stderr).trim().to_string(),
        });
    }
    Ok(GitOutput {
        stdout: streams.stdout,
        truncated: streams.truncated,
    })
}

/// Runs one of boo's own read-only git commands in the root.
pub(super) fn git(root: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    run(root, args, &[], OWN).map(|o| o.stdout)
}

fn git_text(root: &Path, args: &[&str]) -> Result<String, GitError> {
    git(root, args).map(|b| String::from_utf8_lossy(&b).into_owned())
}

enum Stopped {
    Deadline,
    /// The thread's [`StopFlag`] was raised.
    Asked,
    Io(std::io::Error),
}

/// How long to wait in one poll(2): until the deadline, but never longer than
/// [`STOP_CHECK`], so a stop request is seen promptly.
fn wait_slice(deadline: Instant) -> Result<Duration, Stopped> {
    if stop_requested() {
        return Err(Stopped::Asked);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Stopped::Deadline);
    }
    Ok(left.min(STOP_CHECK))
}

struct Streams {
    stdout: Vec<u8>,
    truncated: bool,
    stderr: Vec<u8>,
}

/// Reads stdout and stderr until both end, waiting on both at once with poll(2) so a
/// full stderr pipe never blocks the command, and giving up at the deadline.
fn read_both(
    child: &mut Child,
    deadline: Instant,
    max_stdout: Option<usize>,
) -> Result<Streams, Stopped> {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let mut streams = Streams {
        stdout: Vec::new(),
        truncated: false,
        stderr: Vec::new(),
    };
    let mut chunk = vec![0u8; 64 * 1024];
    while out.is_some() || err.is_some() {
        let left = wait_slice(deadline)?;
        let fd = |s: Option<i32>| libc::pollfd {
            fd: s.unwrap_or(-1), // poll(2) skips negative descriptors
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = [
            fd(out.as_ref().map(|o| o.as_raw_fd())),
            fd(err.as_ref().map(|e| e.as_raw_fd())),
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let ready =
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, poll_ms(left)) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Stopped::Io(e));
        }
        if fds[0].revents != 0 {
            if let Some(o) = out.as_mut() {
                match o.read(&mut chunk) {
                    Ok(0) => out = None,
                    Ok(n) => {
                        let keep = match max_stdout {
                            Some(cap) => n.min(cap.saturating_sub(streams.stdout.len())),
                            None => n,
                        };
                        streams.stdout.extend_from_slice(&chunk[..keep]);
                        streams.truncated |= keep < n;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Stopped::Io(e)),
                }
            }
        }
        if fds[1].revents != 0 {
            if let Some(e) = err.as_mut() {
                match e.read(&mut chunk) {
                    Ok(0) | Err(_) => err = None,
                    Ok(n) => {
                        let keep = n.min(STDERR_CAP.saturating_sub(streams.stderr.len()));
                        streams.stderr.extend_from_slice(&chunk[..keep]);
                    }
                }
            }
        }
    }
    Ok(streams)
}

/// Waits for a command whose output has ended (it is normally gone already, or about
/// to be), but no longer than the deadline: by polling a pidfd for its exit, or where
/// the kernel has no pidfds, by checking with short, growing pauses.
fn reap(child: &mut Child, deadline: Instant) -> Result<ExitStatus, Stopped> {
    if let Some(status) = child.try_wait().map_err(Stopped::Io)? {
        return Ok(status);
    }
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    // The child is not reaped yet, so its pid cannot have been reused.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if let Ok(raw) = i32::try_from(raw) {
        if raw >= 0 {
            // SAFETY: `raw` is a descriptor pidfd_open just returned, owned by nobody else.
            let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
            loop {
                let left = wait_slice(deadline)?;
                let mut fds = [libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }];
                // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
                let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, poll_ms(left)) };
                if ready > 0 {
                    return child.wait().map_err(Stopped::Io);
                }
                if ready < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(Stopped::Io(e));
                    }
                }
            }
        }
    }
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(status) = child.try_wait().map_err(Stopped::Io)? {
            return Ok(status);
        }
        wait_slice(deadline)?;
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// A poll(2) timeout in milliseconds: at least 1, so a sub-millisecond rest still waits.
fn poll_ms(left: Duration) -> i32 {
    left.as_millis().clamp(1, i32::MAX as u128) as i32
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Where the repository keeps its state: `git_dir` holds this worktree's HEAD;
/// `common_dir` the config, refs and hooks shared by all worktrees (the same folder
/// unless the root is a linked worktree). `None` when the root is not in a repository.
pub(super) fn state_dirs(root: &Path) -> Option<(PathBuf, PathBuf)> {
    let out = git_text(
        root,
        &["rev-parse", "--absolute-git-dir", "--git-common-dir"],
    )
    .ok()?;
    let mut lines = out.lines();
    let git_dir = PathBuf::from(lines.next()?.trim());
    // --git-common-dir may be relative to the folder git ran in.
    let common_dir = root.join(lines.next()?.trim());
    Some((git_dir, common_dir))
}

/// Every ref and the object it points at, one `refname objectname` line each.
pub(super) fn refs(root: &Path) -> Result<String, GitError> {
    git_text(root, &["for-each-ref", "--format=%(refname) %(objectname)"])
}

/// The repository's worktrees as `git worktree list --porcelain` prints them.
pub(super) fn worktrees(root: &Path) -> Result<String, GitError> {
    git_text(root, &["worktree", "list", "--porcelain"])
}

/// The default branch: origin's HEAD, else the first of `main`, `master`, `trunk`,
/// `develop` that exists locally.
pub fn default_branch(root: &Path) -> Option<String> {
    if let Ok(s) = git_text(
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

/// What a review compares the working tree against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffBase {
    /// Says which base this is, for people: `merge-base of HEAD with main`.
    pub label: String,
    /// The base commit; `None` while the repository has no commits.
    pub commit: Option<String>,
}

/// The base a review compares against: on a branch other than the default one, the
/// merge-base of HEAD with the default branch; otherwise HEAD itself (so the review
/// covers the uncommitted changes).
pub fn diff_base(root: &Path) -> Result<DiffBase, ProjectError> {
    git(root, &["rev-parse", "--is-inside-work-tree"]).map_err(|e| match e {
        GitError::NotStarted { .. } | GitError::Failed { .. } => ProjectError::NotARepository,
        e => e.into(),
    })?;
    let Ok(head) = git_text(root, &["rev-parse", "--verify", "--quiet", "HEAD"]) else {
        return Ok(DiffBase {
            label: "(no commits yet)".into(),
            commit: None,
        });
    };
    let head = head.trim().to_string();
    let branch = git_text(root, &["rev-parse", "--abbrev-ref", "HEAD"]).unwrap_or_default();
    match default_branch(root) {
        Some(def) if def.trim_start_matches("origin/") != branch.trim() => {
            let base = git_text(root, &["merge-base", "HEAD", &def])
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| head.clone());
            Ok(DiffBase {
                label: format!("merge-base of HEAD with {def}"),
                commit: Some(base),
            })
        }
        _ => Ok(DiffBase {
            label: "HEAD (uncommitted changes)".into(),
            commit: Some(head),
        }),
    }
}

/// What changed against the diff base.
#[derive(Debug, Clone)]
pub struct Changes {
    pub base: DiffBase,
    /// Files that differ from the base (committed since, staged or not), as git names
    /// them: relative to the repository's top folder.
    pub changed: Vec<String>,
    /// New files git does not track yet (and does not ignore), below the root.
    pub untracked: Vec<ProjectFile>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.untracked.is_empty()
    }
}

/// The changes a review looks at: the files changed against [`diff_base`] plus the new
/// untracked files.
pub fn changes(root: &Path) -> Result<Changes, ProjectError> {
    let base = diff_base(root)?;
    let changed = match &base.commit {
        None => Vec::new(),
        Some(commit) => split_nul(&git(root, &["diff", "--name-only", "-z", commit])?)
            .into_iter()
            .map(|f| f.name)
            .collect(),
    };
    let untracked = split_nul(&git(
        root,
        &["ls-files", "-z", "--others", "--exclude-standard"],
    )?);
    Ok(Changes {
        base,
        changed,
        untracked,
    })
}

/// At most this much of a diff is read (beyond it the reviewers could not read it all
/// anyway; the changed files are still all named).
pub const DIFF_TEXT_CAP: usize = 64 * 1024 * 1024;

/// A unified diff, cut at [`DIFF_TEXT_CAP`] when `truncated`.
#[derive(Debug, Clone)]
pub struct DiffText {
    pub text: String,
    pub truncated: bool,
}

/// The unified diff of the working tree against `commit`. Neither external diff
/// programs nor textconv filters run.
pub fn diff_text(root: &Path, commit: &str) -> Result<DiffText, GitError> {
    let out = run(
        root,
        &[
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            commit,
        ],
        &[],
        Limits {
            timeout: GIT_TIMEOUT,
            max_stdout: Some(DIFF_TEXT_CAP),
        },
    )?;
    Ok(DiffText {
        text: String::from_utf8_lossy(&out.stdout).into_owned(),
        truncated: out.truncated,
    })
}

/// Where a repository keeps what a snapshot of a root inside it needs.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The root relative to the repository's top folder (empty at the top).
    pub prefix: PathBuf,
    /// This worktree's own state (HEAD, index).
    pub git_dir: PathBuf,
    /// The state shared by all worktrees (objects, refs, shallow).
    pub common_dir: PathBuf,
    /// `sha1` or `sha256`.
    pub object_format: String,
    /// The branch HEAD names (`refs/heads/x`, possibly unborn), or `None` when detached.
    pub head_ref: Option<String>,
    /// The commit HEAD points at; `None` before the first commit.
    pub head: Option<String>,
    /// Every ref: `(object, name, symbolic target)`.
    pub refs: Vec<(String, String, Option<String>)>,
}

/// The repository around `root`, or `None` when the root is in none (or git is missing).
pub fn layout(root: &Path) -> Result<Option<Layout>, GitError> {
    let out = match git_text(
        root,
        &[
            "rev-parse",
            "--absolute-git-dir",
            "--git-common-dir",
            "--show-object-format",
            "--show-prefix",
        ],
    ) {
        Ok(o) => o,
        Err(GitError::NotStarted { .. } | GitError::Failed { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = out.lines();
    let (Some(git_dir), Some(common), Some(format)) = (lines.next(), lines.next(), lines.next())
    else {
        return Ok(None);
    };
    let prefix = PathBuf::from(lines.next().unwrap_or("").trim_end_matches('/'));
    let head_ref = git_text(root, &["symbolic-ref", "--quiet", "HEAD"])
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    // Resolving the ref reads no commit (a hostile `shallow` FIFO cannot stall it).
    let head = git_text(root, &["rev-parse", "--verify", "--quiet", "HEAD"])
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let refs = git_text(
        root,
        &[
            "for-each-ref",
            "--format=%(objectname) %(refname) %(symref)",
        ],
    )?
    .lines()
    .filter_map(|l| {
        let mut w = l.split(' ');
        let (obj, name) = (w.next()?, w.next()?);
        let target = w.next().filter(|t| !t.is_empty()).map(String::from);
        Some((obj.to_string(), name.to_string(), target))
    })
    .collect();
    Ok(Some(Layout {
        prefix,
        git_dir: PathBuf::from(git_dir),
        common_dir: root.join(common),
        object_format: format.trim().to_string(),
        head_ref,
        head,
        refs,
    }))
}
