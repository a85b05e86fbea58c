//! How every qwen process starts, whatever the transport: as `boo agent-guard … --
//! qwen …` in a process group of its own that dies with boo, with boo's settings file,
//! a private scratch space, the model endpoint from boo's configuration only, and the
//! guard's sandbox report on a pipe of its own. The one-shot backend and the ACP pool
//! both call [`spawn_guarded`], so a change to the guard (a new sandbox rule, a new
//! argument) reaches both.
//!
//! **A stable `QWEN_HOME`.** qwen names a file of its home directory in its system
//! prompt (the path of `output-language.md`, relative to the working directory), so a
//! fresh home path per agent changes the prompt of every agent after about 60 % of its
//! length, and a model server's prefix cache misses the rest. Each agent process still
//! gets its own home directory (its writes stay apart from every other process's), but
//! boo hands it over as an open directory on descriptor [`HOME_FD`] and sets
//! `QWEN_HOME=/proc/self/fd/100`: the same string in every agent, resolved by the
//! kernel to each process's own directory.

use super::harden::{AgentHome, SandboxMode};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::task::JoinHandle;

/// The descriptor the guard reports the sandbox on.
pub const GUARD_REPORT_FD: i32 = 3;

/// The descriptor the agent's private home directory is passed on. Node marks the
/// descriptors 3–16 it inherits close-on-exec at start (they would not reach the
/// processes qwen starts itself), so the home sits well above them.
pub const HOME_FD: i32 = 100;

/// The `QWEN_HOME` every agent process gets (see the module doc).
pub fn stable_qwen_home() -> String {
    format!("/proc/self/fd/{HOME_FD}")
}

/// Character devices programs write to; writable under the sandbox (not /dev/shm or
/// the rest of /dev).
const WRITABLE_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/random",
    "/dev/urandom",
];

/// One qwen process to start.
pub struct Launch<'a> {
    /// The qwen executable.
    pub program: &'a Path,
    /// qwen's own arguments.
    pub args: Vec<OsString>,
    /// The working directory (the project root).
    pub cwd: &'a Path,
    /// The process's private scratch space (home, temp, settings file).
    pub home: &'a AgentHome,
    pub sandbox: SandboxMode,
    /// Extra paths the sandbox leaves writable (`BOO_AGENT_WRITABLE`, tests only).
    pub extra_writable: &'a [PathBuf],
    /// Everything the process may read besides what it may write (see
    /// [`super::qwen::readable_paths`]); empty leaves the whole file system readable.
    pub readable: Vec<PathBuf>,
    pub base_url: Option<&'a str>,
    pub api_key: Option<&'a str>,
    /// The model proxy's port: the only TCP port the process may connect to.
    pub connect_port: Option<u16>,
    pub model: Option<&'a str>,
    /// More environment for the process (ids, qwen switches).
    pub env: Vec<(&'static str, OsString)>,
    /// Pipe the process's stdin (else it reads /dev/null).
    pub stdin: bool,
}

/// A started guard (and, under it, qwen).
pub struct Guarded {
    pub child: tokio::process::Child,
    /// The guard's pid, which is also the process group of everything under it.
    pub pid: i64,
    /// The guard's one-line report (read to EOF; empty if it never wrote one).
    pub report: JoinHandle<String>,
}

/// Why a process could not be started. The message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LaunchError(pub String);

/// The absolute form of `p` (relative to boo's working directory).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Checks the settings file qwen will be given: qwen silently ignores a relative or
/// missing `QWEN_CODE_SYSTEM_SETTINGS_PATH` (and then offers every tool), so boo
/// refuses to start an agent without an absolute path to an existing file.
pub fn checked_settings_path(home: &AgentHome) -> Result<PathBuf, LaunchError> {
    let path = absolute(&home.settings);
    if !path.is_file() {
        return Err(LaunchError(format!(
            "the agent settings file {} does not exist, and qwen would silently run without it (offering write tools); check that boo's data directory (XDG_DATA_HOME) is writable and not cleaned while boo runs",
            path.display()
        )));
    }
    Ok(path)
}

/// A pipe for the guard's report: boo keeps the read end; the write end becomes the
/// guard's descriptor [`GUARD_REPORT_FD`].
fn report_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two new descriptors, owned right below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Opens a directory as a descriptor (close-on-exec; the child gets a copy).
fn open_dir(dir: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    Ok(OwnedFd::from(f))
}

/// The guard command line: `boo agent-guard --parent … --sandbox … --report-fd 3
/// --writable … --readable … -- <program> <args>`. The running binary itself is the guard, even if
/// boo was rebuilt or upgraded since it started.
pub fn guard_command(l: &Launch<'_>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("/proc/self/exe");
    cmd.arg("agent-guard")
        .arg("--parent")
        .arg(std::process::id().to_string())
        .arg("--sandbox")
        .arg(l.sandbox.as_str())
        .arg("--report-fd")
        .arg(GUARD_REPORT_FD.to_string())
        .arg("--writable")
        .arg(absolute(&l.home.root));
    for dev in WRITABLE_DEVICES {
        if Path::new(dev).exists() {
            cmd.arg("--writable").arg(dev);
        }
    }
    for p in l.extra_writable {
        cmd.arg("--writable").arg(p);
    }
    // Reads: the project, the system, qwen's own installation, and nothing else (not
    // the user's home, not other projects).
    for p in &l.readable {
        cmd.arg("--readable").arg(p);
    }
    // A step allowed to spawn runs boo itself as its MCP server: that one file, and
    // nothing else of boo's installation, is readable (and executable) for it.
    if let Some((_, program)) = &l.home.mcp {
        cmd.arg("--readable").arg(program);
    }
    if let Some(port) = l.connect_port {
        cmd.arg("--connect-port").arg(port.to_string());
    }
    cmd.arg("--").arg(l.program).args(&l.args);
    cmd
}

/// Starts `l` under the guard (see the module doc). stdout and stderr are piped.
pub fn spawn_guarded(l: Launch<'_>) -> Result<Guarded, LaunchError> {
    let settings = checked_settings_path(l.home)?;
    let home_dir = open_dir(&l.home.qwen_home).map_err(|e| {
        LaunchError(format!(
            "cannot open the agent's home directory {}: {e}",
            l.home.qwen_home.display()
        ))
    })?;
    let (report_read, report_write) = report_pipe()
        .map_err(|e| LaunchError(format!("cannot create the guard's report pipe: {e}")))?;
    let mut cmd = guard_command(&l);
    cmd.current_dir(l.cwd)
        .env("QWEN_HOME", stable_qwen_home())
        .env("QWEN_CODE_SYSTEM_SETTINGS_PATH", &settings)
        .env("HOME", absolute(&l.home.root))
        .env("TMPDIR", absolute(&l.home.tmp))
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_MODEL");
    // The endpoint comes from boo's configuration only, never from a repository's .env.
    if let Some(u) = l.base_url {
        cmd.env("OPENAI_BASE_URL", u);
    }
    if let Some(k) = l.api_key {
        cmd.env("OPENAI_API_KEY", k);
    }
    if let Some(m) = l.model {
        cmd.env("OPENAI_MODEL", m);
    }
    for (k, v) in &l.env {
        cmd.env(k, v);
    }
    // The folder is trusted for this agent only (its own trusted-folders file), and
    // only when it was given boo's MCP server; otherwise qwen finds no such file in
    // the agent's empty home and the folder stays untrusted.
    match &l.home.mcp {
        Some((trusted, _)) => cmd.env("QWEN_CODE_TRUSTED_FOLDERS_PATH", absolute(trusted)),
        None => cmd.env_remove("QWEN_CODE_TRUSTED_FOLDERS_PATH"),
    };
    cmd.stdin(if l.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    super::process::harden_child(&mut cmd);
    let (home_src, report_src) = (home_dir.as_raw_fd(), report_write.as_raw_fd());
    // SAFETY: only fcntl and dup2 (async-signal-safe) between fork and exec. Both
    // sources are first copied above every target, so neither can overwrite the other;
    // dup2 clears close-on-exec on the targets, so the guard (and, for the home, the
    // processes under it) inherit exactly these two.
    unsafe {
        cmd.pre_exec(move || {
            let home = libc::fcntl(home_src, libc::F_DUPFD_CLOEXEC, 512);
            let report = libc::fcntl(report_src, libc::F_DUPFD_CLOEXEC, 512);
            if home < 0 || report < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::dup2(home, HOME_FD) < 0 || libc::dup2(report, GUARD_REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        LaunchError(format!(
            "cannot start the agent guard (boo agent-guard) for qwen at {}: {e}",
            l.program.display()
        ))
    })?;
    // The guard holds its own copies now; the read end sees EOF once it wrote its line.
    drop(report_write);
    drop(home_dir);
    let report = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut text = String::new();
        let _ = std::fs::File::from(report_read)
            .take(4096)
            .read_to_string(&mut text);
        text
    });
    let pid = child.id().map(|p| p as i64).unwrap_or(0);
    Ok(Guarded { child, pid, report })
}

/// What the guard's report line says: `(sandbox, landlock abi)`.
pub fn read_guard_report(text: &str) -> Option<(String, serde_json::Value)> {
    let r = text
        .lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "boo_guard")?;
    Some((
        r["sandbox"].as_str().unwrap_or("unavailable").to_string(),
        r["abi"].clone(),
    ))
}

/// What the guard's report line says about the network rule (absent before it had one).
pub fn guard_network(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "boo_guard")?["network"]
        .as_str()
        .map(String::from)
}

/// Keeps the last few KiB of a stream (qwen's stderr) until it closes.
pub fn tail_reader<R>(mut r: R) -> JoinHandle<String>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > 16 * 1024 {
                        buf.drain(..buf.len() - 8 * 1024);
                    }
                }
            }
        }
        String::from_utf8_lossy(&buf).to_string()
    })
}

/// The last `n` non-empty lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let mut lines: Vec<&str> = text
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .collect();
    lines.reverse();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_path_is_the_same_for_every_agent() {
        assert_eq!(stable_qwen_home(), "/proc/self/fd/100");
        const { assert!(HOME_FD > 16 && HOME_FD != GUARD_REPORT_FD) };
    }

    #[test]
    fn a_missing_settings_file_is_refused_with_its_path() {
        let dir = std::env::temp_dir().join(format!("boo-launch-{}", std::process::id()));
        let home = AgentHome::create_for(&dir, "x", None, false, None).unwrap();
        assert!(checked_settings_path(&home).unwrap().is_absolute());
        std::fs::remove_file(&home.settings).unwrap();
        let e = checked_settings_path(&home).unwrap_err();
        assert!(
            e.0.contains("system-settings.json") && e.0.contains("silently"),
            "{e}"
        );
        home.remove();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_guard_line_is_read_and_anything_else_ignored() {
        let r = read_guard_report(
            "noise\n{\"type\":\"boo_guard\",\"sandbox\":\"enforced\",\"abi\":7}\n",
        );
        assert_eq!(r, Some(("enforced".into(), serde_json::json!(7))));
        assert_eq!(read_guard_report("{\"type\":\"other\"}"), None);
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b\nc");
    }
}
