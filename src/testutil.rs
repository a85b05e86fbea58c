//! Shared helpers of the unit tests: temp directories and git repositories.

use std::path::{Path, PathBuf};

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh, unique temp path (not created).
pub fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "boo-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ))
}

pub fn temp_dir(tag: &str) -> TempDir {
    let p = temp_path(tag);
    std::fs::create_dir_all(&p).expect("create a temp dir");
    TempDir(p)
}

/// Runs git in `dir` with a test identity; panics with git's message on failure.
pub fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A git repository with `files` committed on `main` (the caller owns its lifetime).
pub fn repo(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let p = temp_path(tag);
    std::fs::create_dir_all(&p).expect("create a temp repo");
    git(&p, &["init", "-q"]);
    for (name, text) in files {
        let f = p.join(name);
        if let Some(dir) = f.parent() {
            std::fs::create_dir_all(dir).expect("create dirs");
        }
        std::fs::write(f, text).expect("write a file");
    }
    git(&p, &["add", "-A"]);
    git(&p, &["commit", "-qm", "init"]);
    p
}

/// Makes a FIFO at `path` (a file whose open blocks until someone writes to it).
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("a path without NUL");
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Runs `f` on its own thread and gives its result, or `None` when it takes longer
/// than `limit` (the thread is then left behind).
pub fn within<R: Send + 'static>(
    limit: std::time::Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}
