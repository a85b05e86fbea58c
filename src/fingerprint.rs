//! The proof that a step left the project alone: a fingerprint of the root (every file
//! git tracks plus untracked, non-ignored files: path, size, mode, content hash; and the
//! repository's HEAD, refs, worktrees, config and hooks) taken before and after each
//! agent step. Hashes are cached by (size, mtime, ctime, inode, mode), so a fingerprint
//! stats every file but hashes only files that changed since the last one.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StatKey {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    pub mode: u32,
    pub hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub files: BTreeMap<String, Entry>,
    /// Repository state: HEAD, refs, worktrees, config, hooks.
    pub git: BTreeMap<String, String>,
}

/// Remembers content hashes between fingerprints.
#[derive(Default)]
pub struct HashCache {
    map: Mutex<HashMap<PathBuf, (StatKey, [u8; 32])>>,
}

fn stat_key(m: &std::fs::Metadata) -> StatKey {
    StatKey {
        size: m.size(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        ino: m.ino(),
        mode: m.mode(),
    }
}

fn hash_path(p: &Path, meta: &std::fs::Metadata) -> std::io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    if meta.file_type().is_symlink() {
        h.update(b"link:");
        h.update(std::fs::read_link(p)?.as_os_str().as_encoded_bytes());
    } else if meta.is_file() {
        let mut f = std::fs::File::open(p)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    } else {
        h.update(b"other");
    }
    Ok(h.finalize().into())
}

fn git(root: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("git")
        .current_dir(root)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

fn list_files(root: &Path) -> Vec<String> {
    if let Some(out) = git(
        root,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    ) {
        let mut v: Vec<String> = out
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).to_string())
            .collect();
        v.sort();
        v.dedup();
        return v;
    }
    // Not a git repository: every file under the root.
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => {
                    if let Ok(rel) = p.strip_prefix(root) {
                        out.push(rel.display().to_string());
                    }
                }
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

impl HashCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn hash(&self, p: &Path, meta: &std::fs::Metadata) -> [u8; 32] {
        let key = stat_key(meta);
        if let Ok(map) = self.map.lock() {
            if let Some((k, h)) = map.get(p) {
                if *k == key {
                    return *h;
                }
            }
        }
        let h = hash_path(p, meta).unwrap_or([0; 32]);
        if let Ok(mut map) = self.map.lock() {
            map.insert(p.to_path_buf(), (key, h));
        }
        h
    }

    /// Takes the fingerprint of `root`.
    pub fn take(&self, root: &Path) -> Fingerprint {
        let mut fp = Fingerprint::default();
        for rel in list_files(root) {
            let p = root.join(&rel);
            match std::fs::symlink_metadata(&p) {
                Ok(m) => {
                    let hash = self.hash(&p, &m);
                    fp.files.insert(
                        rel,
                        Entry {
                            size: m.size(),
                            mode: m.mode(),
                            hash,
                        },
                    );
                }
                Err(_) => {
                    // Tracked but deleted in the working tree: part of the state too.
                    fp.files.insert(
                        rel,
                        Entry {
                            size: 0,
                            mode: 0,
                            hash: [0; 32],
                        },
                    );
                }
            }
        }
        if let Some(gitdir) = git(root, &["rev-parse", "--absolute-git-dir"]) {
            let gitdir = PathBuf::from(String::from_utf8_lossy(&gitdir).trim());
            let read = |name: &str| std::fs::read_to_string(gitdir.join(name)).unwrap_or_default();
            fp.git.insert("HEAD".into(), read("HEAD"));
            fp.git.insert("config".into(), read("config"));
            fp.git.insert("packed-refs".into(), read("packed-refs"));
            let refs = git(root, &["for-each-ref", "--format=%(refname) %(objectname)"])
                .unwrap_or_default();
            fp.git
                .insert("refs".into(), String::from_utf8_lossy(&refs).to_string());
            let wt = git(root, &["worktree", "list", "--porcelain"]).unwrap_or_default();
            fp.git
                .insert("worktrees".into(), String::from_utf8_lossy(&wt).to_string());
            if let Ok(rd) = std::fs::read_dir(gitdir.join("hooks")) {
                let mut hooks: Vec<String> = Vec::new();
                for e in rd.flatten() {
                    if let Ok(m) = e.metadata() {
                        let h = self.hash(&e.path(), &m);
                        hooks.push(format!(
                            "{} {:o} {}",
                            e.file_name().to_string_lossy(),
                            m.mode(),
                            hex(&h)
                        ));
                    }
                }
                hooks.sort();
                fp.git.insert("hooks".into(), hooks.join("\n"));
            }
        }
        fp
    }
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// What differs between two fingerprints, as human-readable lines.
pub fn diff(before: &Fingerprint, after: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    for (p, a) in &before.files {
        match after.files.get(p) {
            None => out.push(format!("{p} (deleted)")),
            Some(b) if b.hash != a.hash || b.size != a.size => out.push(format!("{p} (changed)")),
            Some(b) if b.mode != a.mode => out.push(format!("{p} (mode changed)")),
            _ => {}
        }
    }
    for p in after.files.keys() {
        if !before.files.contains_key(p) {
            out.push(format!("{p} (created)"));
        }
    }
    for (k, v) in &before.git {
        if after.git.get(k) != Some(v) {
            out.push(format!(".git {k} (changed)"));
        }
    }
    for k in after.git.keys() {
        if !before.git.contains_key(k) {
            out.push(format!(".git {k} (created)"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::git as sh;

    #[test]
    fn detects_every_kind_of_change() {
        let d = std::env::temp_dir().join(format!("boo-fp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.txt"), "a\n").unwrap();
        std::fs::write(d.join(".gitignore"), "ignored/\n").unwrap();
        sh(&d, &["init", "-q"]);
        sh(&d, &["add", "-A"]);
        sh(&d, &["commit", "-qm", "i"]);
        let cache = HashCache::new();
        let base = cache.take(&d);
        assert!(
            diff(&base, &cache.take(&d)).is_empty(),
            "a fingerprint is stable"
        );
        // Touching without changing content is not a change.
        let f = std::fs::File::options()
            .write(true)
            .open(d.join("a.txt"))
            .unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
        drop(f);
        assert!(diff(&base, &cache.take(&d)).is_empty());
        std::fs::write(d.join("a.txt"), "b\n").unwrap();
        assert_eq!(
            diff(&base, &cache.take(&d)),
            vec!["a.txt (changed)".to_string()]
        );
        std::fs::write(d.join("a.txt"), "a\n").unwrap();
        std::fs::write(d.join("new.txt"), "n\n").unwrap();
        assert_eq!(
            diff(&base, &cache.take(&d)),
            vec!["new.txt (created)".to_string()]
        );
        std::fs::remove_file(d.join("new.txt")).unwrap();
        // Ignored files are not part of the fingerprint.
        std::fs::create_dir_all(d.join("ignored")).unwrap();
        std::fs::write(d.join("ignored/x"), "x").unwrap();
        assert!(diff(&base, &cache.take(&d)).is_empty());
        // A new branch or worktree changes the repository state.
        sh(&d, &["branch", "side"]);
        assert!(diff(&base, &cache.take(&d))
            .iter()
            .any(|l| l.contains(".git refs")));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
