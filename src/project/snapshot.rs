//! The run's snapshot: an immutable copy of the project taken when a run is launched, so
//! the agents, the code steps, the read-only proof and the citation checks all read the
//! same files while the user keeps editing the real tree.
//!
//! What is copied: the project as [`super::list_files`] defines it (tracked files plus
//! untracked ones that are not ignored). A regular file is copied (a copy-on-write clone
//! with `FICLONE` where the file system has it, else a kernel-side copy); a symbolic link
//! is recreated as the same link, never followed; a folder entry (a submodule, a nested
//! repository) becomes an empty folder; a FIFO, a socket or a device is left out. Files are
//! made read-only. Hard links are never used: an editor that saves in place writes into
//! the same inode, and a hard-linked snapshot would change with it.
//!
//! Left out on purpose: every `.git` (boo writes the snapshot's own, below) and every
//! `.qwen` folder — qwen reads `<cwd>/.qwen/` (its `output-language.md` even in an
//! untrusted folder) into the agent's system prompt, and none of it is the project's code.
//!
//! The snapshot's repository: boo writes `.git` itself — HEAD, every ref (packed, symbolic
//! ones as loose files), a copy of the index (refreshed against the copies), the shallow
//! list, and `objects/info/alternates` pointing at the user's object store, read only.
//! Its config is boo's own: no filter, textconv, fsmonitor, hook or include of the user's
//! repository exists there, and git commands never write the user's `.git`. A root below
//! the repository's top keeps its place (`tree/<prefix>`), and the index entries outside
//! it are marked skip-worktree so they do not read as deleted.
//!
//! Layout: `<dir>/tree/` (the repository's top, or the root), `<dir>/manifest.json`
//! (written last: a folder without it is an unfinished snapshot). The manifest records each
//! copied entry's stat as it was in the real tree, so [`Snapshot::changes_since`] stats the
//! real tree and compares contents only for files whose stat changed.

use super::{git, list_files, ProjectError, ProjectFile, RootDir};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The manifest's file name inside a snapshot folder.
pub const MANIFEST: &str = "manifest.json";
/// The folder that holds the copied tree.
pub const TREE: &str = "tree";
/// How many left-out entries the manifest names (the count is always kept).
const LEFT_OUT_SHOWN: usize = 50;
/// The manifest's format.
const VERSION: u32 = 1;
/// Threads copying files at once.
const COPY_THREADS: usize = 8;

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Listing(#[from] ProjectError),
    #[error("cannot write the run's snapshot at {path}: {source}; check that boo's data folder ($XDG_DATA_HOME/boo) has room and is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot copy {name} into the run's snapshot: {source}")]
    Copy {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot read the repository's state for the run's snapshot: {0}")]
    Git(#[from] git::GitError),
    #[error("the repository's state cannot be copied into the run's snapshot: {0}")]
    Repository(String),
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// What must stay equal for a file of the real tree to be the one that was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    /// Type and permission bits.
    pub mode: u32,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            size: m.size(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
            ctime_ns: m.ctime().saturating_mul(1_000_000_000) + m.ctime_nsec(),
            ino: m.ino(),
            mode: m.mode(),
        }
    }

    fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
}

/// What a snapshot folder says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub version: u32,
    /// The project root the snapshot was taken of.
    pub root: String,
    /// The root relative to the repository's top folder (empty at the top or without one).
    pub prefix: String,
    /// When it was taken (RFC 3339).
    pub taken_at: String,
    /// Taken again when a run resumed and its first snapshot was gone.
    pub retaken: bool,
    /// Regular files copied, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Of those, how many were copy-on-write clones.
    pub cloned: u64,
    /// How long taking it took.
    pub millis: u64,
    /// Entries not copied, with the reason (the first [`LEFT_OUT_SHOWN`]).
    pub left_out: Vec<String>,
    pub left_out_count: u64,
    /// Every copied entry by name (see `ProjectFile::name`), with its stat in the real tree.
    pub entries: BTreeMap<String, Stamp>,
}

/// A snapshot on disk.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Where the project's root is inside it: what agents and code steps read.
    pub workdir: PathBuf,
    pub manifest: Manifest,
}

/// What changed in the real tree since the snapshot (names sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TreeChanges {
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub removed: Vec<String>,
}

impl TreeChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// The snapshot folders' parent folders in use by this process: git never looks for a
/// repository above a snapshot's tree (a snapshot of a folder without one must not find
/// the repository boo's data folder may live in).
static CEILINGS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Records `base` (created if missing) as a folder holding snapshots; returns it canonical.
pub fn register_base(base: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(base)?;
    let canon = base.canonicalize()?;
    let mut c = CEILINGS.lock().unwrap_or_else(|p| p.into_inner());
    if !c.contains(&canon) {
        c.push(canon.clone());
    }
    Ok(canon)
}

/// `GIT_CEILING_DIRECTORIES` for boo's git commands (empty when no snapshot base exists).
pub(super) fn ceilings() -> Option<std::ffi::OsString> {
    let c = CEILINGS.lock().unwrap_or_else(|p| p.into_inner());
    (!c.is_empty()).then(|| std::env::join_paths(c.iter()).unwrap_or_default())
}

/// Whether a project entry stays out of every snapshot: anything inside a `.git` (the
/// snapshot's repository is boo's own) or a `.qwen` folder (agent configuration qwen
/// would load into its system prompt).
pub fn left_out_by_rule(path: &Path) -> bool {
    path.components()
        .any(|c| matches!(c, Component::Normal(n) if n == ".git" || n == ".qwen"))
}

/// Set once FICLONE failed for lack of support: later files are copied directly.
struct Cloner {
    unsupported: AtomicBool,
}

/// `_IOW(0x94, 9, int)`: clone a whole file (btrfs, XFS, bcachefs, …).
const FICLONE: libc::c_ulong = 0x4004_9409;

impl Cloner {
    /// Clones or copies `src` into `out` (both at offset 0); true when it was a clone.
    fn copy(&self, src: &File, out: &File) -> std::io::Result<bool> {
        if !self.unsupported.load(Ordering::Relaxed) {
            // SAFETY: both descriptors are open for the duration of the call.
            let r = unsafe { libc::ioctl(out.as_raw_fd(), FICLONE as _, src.as_raw_fd()) };
            if r == 0 {
                return Ok(true);
            }
            let e = std::io::Error::last_os_error();
            if let Some(
                libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY | libc::ENOSYS,
            ) = e.raw_os_error()
            {
                self.unsupported.store(true, Ordering::Relaxed);
            }
        }
        // std's File-to-File copy uses copy_file_range(2) (no user-space buffer).
        std::io::copy(&mut &*src, &mut &*out)?;
        Ok(false)
    }
}

impl Snapshot {
    /// Takes a snapshot of the project under `root` into the new folder `dir` (an earlier,
    /// unfinished one there is replaced).
    pub fn take(root: &Path, dir: &Path, retaken: bool) -> Result<Snapshot, SnapshotError> {
        let started = std::time::Instant::now();
        let root = root.canonicalize().map_err(|source| {
            SnapshotError::Listing(ProjectError::RootUnreadable {
                root: root.to_path_buf(),
                source,
            })
        })?;
        if dir.exists() {
            Snapshot::remove(dir);
        }
        let tree = dir.join(TREE);
        std::fs::create_dir_all(&tree).map_err(write_err(&tree))?;
        let layout = git::layout(&root)?;
        let prefix = layout
            .as_ref()
            .map(|l| l.prefix.clone())
            .unwrap_or_default();
        if prefix
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(SnapshotError::Repository(format!(
                "git places the root at {:?} inside its repository",
                prefix.display()
            )));
        }
        let workdir = tree.join(&prefix);
        std::fs::create_dir_all(&workdir).map_err(write_err(&workdir))?;
        let files = list_files(&root)?;
        let dir_fd = RootDir::open(&root).map_err(|source| {
            SnapshotError::Listing(ProjectError::RootUnreadable {
                root: root.clone(),
                source,
            })
        })?;
        let mut manifest = Manifest {
            version: VERSION,
            root: root.display().to_string(),
            prefix: prefix.display().to_string(),
            taken_at: crate::clock::now_rfc3339(),
            retaken,
            files: 0,
            bytes: 0,
            cloned: 0,
            millis: 0,
            left_out: Vec::new(),
            left_out_count: 0,
            entries: BTreeMap::new(),
        };
        let cloner = Cloner {
            unsupported: AtomicBool::new(false),
        };
        // The folders first (one pass), then the files on a few threads: creating files
        // waits on the file system far more than on the CPU.
        let mut made: HashSet<PathBuf> = HashSet::new();
        for file in &files {
            let rel = file.path();
            if rel.components().all(|c| matches!(c, Component::Normal(_))) && !left_out_by_rule(rel)
            {
                if let Some(parent) = workdir.join(rel).parent() {
                    if made.insert(parent.to_path_buf()) {
                        std::fs::create_dir_all(parent).map_err(write_err(parent))?;
                    }
                }
            }
        }
        let chunk = files.len().div_ceil(COPY_THREADS).max(1);
        let results: Vec<Vec<std::io::Result<Copied>>> = std::thread::scope(|s| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    let (root, dir_fd, workdir, cloner) = (&root, &dir_fd, &workdir, &cloner);
                    s.spawn(move || {
                        part.iter()
                            .map(|f| copy_entry(root, dir_fd, workdir, f, cloner))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(std::io::Error::other("a copying thread panicked"))]
                    })
                })
                .collect()
        });
        for (file, result) in files.iter().zip(results.into_iter().flatten()) {
            match result {
                Ok(Copied::Entry {
                    stamp,
                    bytes,
                    cloned,
                }) => {
                    if stamp.kind() == libc::S_IFREG {
                        manifest.files += 1;
                        manifest.bytes += bytes;
                        manifest.cloned += u64::from(cloned);
                    }
                    manifest.entries.insert(file.name().to_string(), stamp);
                }
                Ok(Copied::Absent) => {}
                Ok(Copied::LeftOut(why)) => {
                    manifest.left_out_count += 1;
                    if manifest.left_out.len() < LEFT_OUT_SHOWN {
                        manifest.left_out.push(format!("{} ({why})", file.name()));
                    }
                }
                Err(source) => {
                    return Err(SnapshotError::Copy {
                        name: file.name().to_string(),
                        source,
                    })
                }
            }
        }
        if let Some(layout) = &layout {
            write_repository(&tree, layout)?;
        }
        manifest.millis = started.elapsed().as_millis() as u64;
        let text = serde_json::to_vec(&manifest)
            .map_err(|e| SnapshotError::Repository(format!("the manifest: {e}")))?;
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        std::fs::write(&tmp, text).map_err(write_err(&tmp))?;
        std::fs::rename(&tmp, dir.join(MANIFEST)).map_err(write_err(dir))?;
        Ok(Snapshot { workdir, manifest })
    }

    /// The finished snapshot in `dir`, or `None` when there is none (or it is unfinished).
    pub fn open(dir: &Path) -> Option<Snapshot> {
        let bytes = super::read_regular(&dir.join(MANIFEST), 1 << 30).ok()??;
        let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
        if manifest.version != VERSION {
            return None;
        }
        let prefix = PathBuf::from(&manifest.prefix);
        if prefix
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return None;
        }
        let workdir = dir.join(TREE).join(prefix);
        workdir.is_dir().then_some(Snapshot { workdir, manifest })
    }

    /// Removes a snapshot folder (best effort).
    pub fn remove(dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
    }

    /// What changed in the real tree under `root` since the snapshot: files added,
    /// modified (content, link target or kind) and removed. Only files whose stat changed
    /// are compared by content.
    pub fn changes_since(&self, root: &Path) -> Result<TreeChanges, ProjectError> {
        let files = list_files(root)?;
        let dir_fd = RootDir::open(root).map_err(|source| ProjectError::RootUnreadable {
            root: root.to_path_buf(),
            source,
        })?;
        let mut out = TreeChanges::default();
        let mut seen: HashSet<&str> = HashSet::new();
        for f in &files {
            if left_out_by_rule(f.path()) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(root.join(f.path())) else {
                continue;
            };
            let ft = meta.file_type();
            if !(ft.is_file() || ft.is_symlink() || ft.is_dir()) {
                continue;
            }
            match self.manifest.entries.get(f.name()) {
                None => out.added.push(f.name().to_string()),
                Some(stamp) => {
                    seen.insert(f.name());
                    if *stamp != Stamp::of(&meta) && self.differs(&dir_fd, root, f, stamp, &meta) {
                        out.modified.push(f.name().to_string());
                    }
                }
            }
        }
        out.removed = self
            .manifest
            .entries
            .keys()
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        Ok(out)
    }

    /// Whether a real-tree entry whose stat changed differs from its copy.
    fn differs(
        &self,
        dir_fd: &RootDir,
        root: &Path,
        f: &ProjectFile,
        stamp: &Stamp,
        meta: &std::fs::Metadata,
    ) -> bool {
        if meta.mode() & libc::S_IFMT != stamp.kind() {
            return true;
        }
        let copy = self.workdir.join(f.path());
        if meta.file_type().is_symlink() {
            return std::fs::read_link(root.join(f.path())).ok() != std::fs::read_link(&copy).ok();
        }
        if !meta.is_file() {
            return false;
        }
        if (meta.mode() & 0o100) != (stamp.mode & 0o100) {
            return true;
        }
        let (Ok(Some(mut a)), Ok(mut b)) = (dir_fd.open_file(f.path()), File::open(&copy)) else {
            return true;
        };
        same_content(&mut a, &mut b)
            .map(|same| !same)
            .unwrap_or(true)
    }
}

/// Compares two readers byte for byte.
fn same_content(a: &mut File, b: &mut File) -> std::io::Result<bool> {
    if a.metadata()?.len() != b.metadata()?.len() {
        return Ok(false);
    }
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(a, &mut x)?;
        let m = read_full(b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

enum Copied {
    Entry {
        stamp: Stamp,
        bytes: u64,
        cloned: bool,
    },
    /// Listed (tracked) but not in the working tree.
    Absent,
    LeftOut(&'static str),
}

/// Copies one listed entry of the real tree into the snapshot (see the module doc).
fn copy_entry(
    root: &Path,
    dir_fd: &RootDir,
    workdir: &Path,
    file: &ProjectFile,
    cloner: &Cloner,
) -> std::io::Result<Copied> {
    let rel = file.path();
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Ok(Copied::LeftOut("not a path inside the root"));
    }
    if left_out_by_rule(rel) {
        return Ok(Copied::LeftOut("agent or repository configuration"));
    }
    let src_path = root.join(rel);
    let Ok(meta) = std::fs::symlink_metadata(&src_path) else {
        return Ok(Copied::Absent);
    };
    let dest = workdir.join(rel);
    let ft = meta.file_type();
    if ft.is_symlink() {
        // The link itself, never what it points at; and only when no folder on the way
        // is a link (the entry would then be somewhere else than the listing says).
        let parent = rel.parent().unwrap_or(Path::new(""));
        if root.join(parent).canonicalize().ok() != Some(root.join(parent)) {
            return Ok(Copied::LeftOut("behind a symbolic link"));
        }
        let Ok(target) = std::fs::read_link(&src_path) else {
            return Ok(Copied::LeftOut("cannot be read"));
        };
        std::os::unix::fs::symlink(&target, &dest)?;
        return Ok(Copied::Entry {
            stamp: Stamp::of(&meta),
            bytes: 0,
            cloned: false,
        });
    }
    if ft.is_dir() {
        std::fs::create_dir_all(&dest)?;
        return Ok(Copied::Entry {
            stamp: Stamp::of(&meta),
            bytes: 0,
            cloned: false,
        });
    }
    if !ft.is_file() {
        return Ok(Copied::LeftOut(
            "not a regular file: a FIFO, socket or device",
        ));
    }
    // A file the user cannot read (or that vanished meanwhile) is left out and named in
    // the manifest; only failing to write the snapshot fails it.
    let src = match dir_fd.open_file(rel) {
        Ok(src) => src,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Copied::Absent),
        Err(_) => return Ok(Copied::LeftOut("cannot be read")),
    };
    let Some(src) = src else {
        return Ok(Copied::LeftOut(
            "reached through a symbolic link, or replaced meanwhile",
        ));
    };
    copy_file(&src, &dest, cloner)
}

/// Copies an open regular file, again when it changed while being copied (up to three
/// times; then the last copy stands with the stat it had).
fn copy_file(mut src: &File, dest: &Path, cloner: &Cloner) -> std::io::Result<Copied> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = Stamp::of(&src.metadata()?);
        src.seek(SeekFrom::Start(0))?;
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dest)?;
        let cloned = cloner.copy(src, &out)?;
        let after = src.metadata()?;
        if before == Stamp::of(&after) || attempt >= 3 {
            let mode = if after.mode() & 0o100 != 0 {
                0o555
            } else {
                0o444
            };
            out.set_permissions(std::fs::Permissions::from_mode(mode))?;
            return Ok(Copied::Entry {
                stamp: before,
                bytes: after.size(),
                cloned,
            });
        }
    }
}

/// A ref name boo is willing to write as a file: `refs/…`, plain components.
fn plain_ref(name: &str) -> bool {
    name.starts_with("refs/")
        && !name.contains("..")
        && name
            .split('/')
            .all(|p| !p.is_empty() && p != "." && !p.starts_with('.'))
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
}

fn plain_object(id: &str) -> bool {
    (id.len() == 40 || id.len() == 64) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Writes the snapshot's own `.git` (see the module doc) at the top of `tree`.
fn write_repository(tree: &Path, layout: &git::Layout) -> Result<(), SnapshotError> {
    let g = tree.join(".git");
    let bad = |what: String| SnapshotError::Repository(what);
    for d in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
        std::fs::create_dir_all(g.join(d)).map_err(write_err(&g))?;
    }
    let objects = layout
        .common_dir
        .join("objects")
        .canonicalize()
        .map_err(|e| {
            bad(format!(
                "the object store of the repository cannot be read: {e}"
            ))
        })?;
    let objects_text = objects.to_string_lossy();
    if objects_text.contains('\n') || objects.to_str().is_none() {
        return Err(bad(format!(
            "the object store's path {objects:?} cannot be named in an alternates file"
        )));
    }
    let write = |name: &str, text: &str| {
        let p = g.join(name);
        std::fs::write(&p, text).map_err(write_err(&p))
    };
    write("objects/info/alternates", &format!("{objects_text}\n"))?;
    let sha256 = layout.object_format == "sha256";
    let mut config = format!(
        "[core]\n\trepositoryformatversion = {}\n\tfilemode = true\n\tbare = false\n\tsymlinks = true\n\tlogallrefupdates = false\n[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n",
        if sha256 { 1 } else { 0 }
    );
    if sha256 {
        config.push_str("[extensions]\n\tobjectformat = sha256\n");
    }
    write("config", &config)?;
    let head = match (&layout.head_ref, &layout.head) {
        (Some(r), _) if plain_ref(r) => format!("ref: {r}\n"),
        (_, Some(h)) if plain_object(h) => format!("{h}\n"),
        _ => "ref: refs/heads/main\n".to_string(),
    };
    write("HEAD", &head)?;
    let mut packed = String::from("# pack-refs with: sorted\n");
    let mut refs: Vec<&(String, String, Option<String>)> = layout.refs.iter().collect();
    refs.sort_by(|a, b| a.1.cmp(&b.1));
    for (obj, name, target) in refs {
        if !plain_ref(name) {
            continue;
        }
        match target {
            Some(t) if plain_ref(t) => {
                let p = g.join(name);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(write_err(parent))?;
                }
                std::fs::write(&p, format!("ref: {t}\n")).map_err(write_err(&p))?;
            }
            Some(_) => {}
            None if plain_object(obj) => packed.push_str(&format!("{obj} {name}\n")),
            None => {}
        }
    }
    write("packed-refs", &packed)?;
    // The shallow list and the index are copied as regular files only (never through a
    // link, never a FIFO); a split index brings its shared part along.
    let copy_state = |from: &Path, name: &str| -> Result<(), SnapshotError> {
        if let Ok(Some(bytes)) = super::read_regular(&from.join(name), 2 << 30) {
            let p = g.join(name);
            std::fs::write(&p, bytes).map_err(write_err(&p))?;
        }
        Ok(())
    };
    copy_state(&layout.common_dir, "shallow")?;
    copy_state(&layout.git_dir, "index")?;
    if let Ok(rd) = std::fs::read_dir(&layout.git_dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("sharedindex.") && plain_object(&name["sharedindex.".len()..]) {
                copy_state(&layout.git_dir, &name)?;
            }
        }
    }
    // Index entries outside the root are not in the snapshot: they are not deleted.
    if !layout.prefix.as_os_str().is_empty() {
        let listed = git::git(tree, &["ls-files", "-z", "--cached"])?;
        let mut under = layout.prefix.as_os_str().as_encoded_bytes().to_vec();
        under.push(b'/');
        let outside: Vec<&str> = listed
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty() && !p.starts_with(&under))
            .filter_map(|p| std::str::from_utf8(p).ok())
            .collect();
        for chunk in outside.chunks(500) {
            let mut args = vec!["update-index", "--skip-worktree", "--"];
            args.extend(chunk.iter().copied());
            git::git(tree, &args)?;
        }
    }
    // The copies have new stats: one refresh records them, so later commands compare
    // contents only for files that really differ from the index. A refresh that reports
    // changed files still wrote what it could.
    let _ = git::git(tree, &["update-index", "-q", "--refresh"]);
    Ok(())
}

/// Removes the snapshot folders under `base` whose run is not in `running` and that were
/// last changed more than `grace` ago (a launch in flight writes its snapshot before its
/// run row exists). Returns how many were removed.
pub fn collect(base: &Path, running: &HashSet<String>, grace: Duration) -> usize {
    let Ok(rd) = std::fs::read_dir(base) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if running.contains(&name) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_dir() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or(Duration::MAX);
        if age >= grace {
            Snapshot::remove(&e.path());
            if !e.path().exists() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
