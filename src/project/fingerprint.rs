//! The proof that a step left the project alone: a fingerprint of the root (every
//! project file as [`super::list_files`] defines it: path, size, mode, content hash; and
//! the repository's HEAD, refs, packed refs, worktrees, config and hooks) taken before
//! and after each agent step. Content hashes are cached by (size, mtime, ctime, inode,
//! mode), so a fingerprint stats every file but hashes only files that changed since
//! the last one.

use super::{git, list_files, open_regular, read_regular, RootDir};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How much of one of the repository's own files (HEAD, config, packed-refs) the
/// fingerprint keeps; the refs are also compared through `git for-each-ref`.
const GIT_FILE_CAP: u64 = 16 * 1024 * 1024;

/// What must stay equal for a cached content hash to still hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StatKey {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    mode: u32,
}

/// One file of a fingerprint. A file git tracks but the working tree lacks has size 0,
/// mode 0 and an all-zero hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    pub mode: u32,
    /// SHA-256 of the content (of the target path for a symbolic link).
    pub hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// By file name (see `ProjectFile::name`).
    pub files: BTreeMap<String, Entry>,
    /// Repository state: HEAD, refs, packed-refs, worktrees, config, hooks.
    pub git: BTreeMap<String, String>,
    /// Set when the project's files could not be listed: such a fingerprint proves
    /// nothing, and [`diff`] says so.
    pub listing_error: Option<String>,
}

impl Fingerprint {
    /// A digest of the project's content: SHA-256 (hex) over every file's name and
    /// content hash, in name order. Equal contents give equal digests whatever the
    /// repository state, modes or timestamps; any change of a file's content, a new
    /// file or a removed one gives another digest.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"boo project content v1\n");
        for (name, entry) in &self.files {
            // Names never hold NUL, and the hash has a fixed length: no two lists of
            // entries feed the same bytes.
            h.update(name.as_bytes());
            h.update([0]);
            h.update(entry.hash);
        }
        hex(&h.finalize().into())
    }
}

/// Remembers content hashes between fingerprints, by absolute path.
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

/// Hashes what `p` is: a link's target path, a regular file's content (opened with
/// `open`, which refuses links), or the word `other` (a folder such as a submodule, a
/// FIFO, a device).
fn hash_path(
    p: &Path,
    meta: &std::fs::Metadata,
    open: impl FnOnce() -> std::io::Result<Option<File>>,
) -> std::io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    if meta.file_type().is_symlink() {
        h.update(b"link:");
        h.update(std::fs::read_link(p)?.as_os_str().as_encoded_bytes());
    } else if meta.is_file() {
        // Replaced since the stat, or reached through a link: no content to vouch for.
        let Some(mut f) = open()? else {
            return Err(std::io::Error::other(
                "not a regular file reached without links",
            ));
        };
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

impl HashCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The content hash of `p`, from the cache while its stat is unchanged. A file
    /// that cannot be read hashes to all zeros.
    fn hash(
        &self,
        p: &Path,
        meta: &std::fs::Metadata,
        open: impl FnOnce() -> std::io::Result<Option<File>>,
    ) -> [u8; 32] {
        let key = stat_key(meta);
        if let Ok(map) = self.map.lock() {
            if let Some((k, h)) = map.get(p) {
                if *k == key {
                    return *h;
                }
            }
        }
        let h = hash_path(p, meta, open).unwrap_or([0; 32]);
        if let Ok(mut map) = self.map.lock() {
            map.insert(p.to_path_buf(), (key, h));
        }
        h
    }

    /// Takes the fingerprint of the project under `root`.
    pub fn fingerprint(&self, root: &Path) -> Fingerprint {
        let mut fp = Fingerprint::default();
        match list_files(root) {
            Ok(files) => {
                let dir = RootDir::open(root);
                for file in files {
                    let p = root.join(file.path());
                    let entry = match std::fs::symlink_metadata(&p) {
                        Ok(m) => Entry {
                            size: m.size(),
                            mode: m.mode(),
                            hash: self.hash(&p, &m, || match &dir {
                                Ok(dir) => dir.open_file(file.path()),
                                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                            }),
                        },
                        // Tracked but deleted in the working tree: part of the state too.
                        Err(_) => Entry {
                            size: 0,
                            mode: 0,
                            hash: [0; 32],
                        },
                    };
                    fp.files.insert(file.name, entry);
                }
            }
            Err(e) => fp.listing_error = Some(e.to_string()),
        }
        if let Some((git_dir, common_dir)) = git::state_dirs(root) {
            // The repository's own files are project input too: read as regular files
            // only (a FIFO or a link to a device must not hang or flood the proof),
            // capped; what is not a regular file is recorded as such.
            let read = |dir: &Path, name: &str| match read_regular(&dir.join(name), GIT_FILE_CAP) {
                Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                Ok(None) => "(not a regular file)".to_string(),
                Err(_) => String::new(),
            };
            fp.git.insert("HEAD".into(), read(&git_dir, "HEAD"));
            fp.git.insert("config".into(), read(&common_dir, "config"));
            fp.git
                .insert("packed-refs".into(), read(&common_dir, "packed-refs"));
            fp.git
                .insert("refs".into(), git::refs(root).unwrap_or_default());
            fp.git
                .insert("worktrees".into(), git::worktrees(root).unwrap_or_default());
            if let Ok(rd) = std::fs::read_dir(common_dir.join("hooks")) {
                let mut hooks: Vec<String> = Vec::new();
                for e in rd.flatten() {
                    // `DirEntry::metadata` does not follow links.
                    if let Ok(m) = e.metadata() {
                        let path = e.path();
                        let h = self.hash(&path, &m, || open_regular(&path));
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

/// What differs between two fingerprints, as human-readable lines. A fingerprint whose
/// files could not be listed differs from everything.
pub fn diff(before: &Fingerprint, after: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    for (when, fp) in [("before", before), ("after", after)] {
        if let Some(e) = &fp.listing_error {
            out.push(format!(
                "(the project's files could not be listed {when} the step: {e})"
            ));
        }
    }
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
