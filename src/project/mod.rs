//! The project's files: the one definition of which files make up the project under a
//! root, how to read one of them without leaving the root, the repository state around
//! them (`git`) and the fingerprint over them (`fingerprint`). The `signals` code step
//! and the fingerprint (whose `digest` is the content key for caches) both list files
//! through [`list_files`], so they can never disagree about what the project is.
//!
//! - In a git repository (the root or any folder inside one): every file git tracks
//!   plus every untracked file that is not ignored, below the root (`git ls-files -z
//!   --cached --others --exclude-standard`). Ignored files are not part of the project.
//! - Elsewhere (no repository, or git is missing): every entry under the root, hidden
//!   files and build folders included.
//!
//! Either way a symbolic link is one entry: the listing never descends into a linked
//! folder, and neither [`read_head`] nor the fingerprint reads content through a link
//! (at the end of a path or anywhere on it), so nothing outside the root is ever read
//! as project content.

pub mod fingerprint;
pub mod git;
pub mod snapshot;

pub use fingerprint::{diff, HashCache};
pub use git::GitError;

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// One file of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFile {
    /// Relative to the root, byte for byte as on disk.
    path: PathBuf,
    /// The path as text: the path itself when it is UTF-8, otherwise its bytes with
    /// the invalid ones escaped (`\xff`). Names the file in fingerprints and messages.
    name: String,
}

impl ProjectFile {
    fn from_bytes(bytes: &[u8]) -> ProjectFile {
        let name = match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => bytes.escape_ascii().to_string(),
        };
        ProjectFile {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(bytes)),
            name,
        }
    }

    /// The path relative to the root (exact bytes; join it with the root to open it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as text.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Why the project's files could not be listed or its repository not read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot list the project's files: {root} is not a readable folder ({source}); start the run from the project's folder", root = .root.display())]
    RootUnreadable {
        root: PathBuf,
        source: std::io::Error,
    },
    #[error("the project is not a git repository, so there is no diff to review; commit the project to git first, or pick a flow that does not review a diff")]
    NotARepository,
    #[error(transparent)]
    Git(#[from] GitError),
}

/// The files that make up the project under `root`, sorted by their bytes, each once.
pub fn list_files(root: &Path) -> Result<Vec<ProjectFile>, ProjectError> {
    let listing = git::git(
        root,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    );
    let mut files: Vec<ProjectFile> = match listing {
        Ok(out) => split_nul(&out),
        // Not a repository, or no git at all: the root's every entry.
        Err(GitError::NotStarted { .. } | GitError::Failed { .. }) => walk(root)?,
        // A git that hangs or breaks mid-way must not silently shrink the project.
        Err(e) => return Err(e.into()),
    };
    files.sort_by(|a, b| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });
    // A file with merge conflicts is listed once per stage.
    files.dedup_by(|a, b| a.path == b.path);
    Ok(files)
}

/// Splits git's `-z` output into files.
fn split_nul(out: &[u8]) -> Vec<ProjectFile> {
    out.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(ProjectFile::from_bytes)
        .collect()
}

/// Every entry under `root` that is not a folder; linked folders are entries, not
/// descended into. A sub-folder that cannot be read is left out.
fn walk(root: &Path) -> Result<Vec<ProjectFile>, ProjectError> {
    let top = std::fs::read_dir(root).map_err(|source| ProjectError::RootUnreadable {
        root: root.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    let mut pending = vec![top];
    while let Some(entries) = pending.pop() {
        for entry in entries.flatten() {
            // `DirEntry::file_type` does not follow links.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if let Ok(rd) = std::fs::read_dir(&path) {
                    pending.push(rd);
                }
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(ProjectFile::from_bytes(rel.as_os_str().as_bytes()));
            }
        }
    }
    Ok(out)
}

/// Opens `path` for reading only when it is a regular file: a symbolic link (even to a
/// file inside the root), a folder, a FIFO or a device gives `None`, and opening never
/// blocks. Links among the folders on the way are followed; see `RootDir::open_file`.
fn open_regular(path: &Path) -> std::io::Result<Option<File>> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(file.metadata()?.is_file().then_some(file))
}

/// The root folder, open, to open project files below it without passing a link.
struct RootDir {
    fd: OwnedFd,
}

/// How project files are opened: read-only, never through a link at the end of the
/// path, never blocking (a FIFO), not inherited by child processes.
const FILE_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

/// Set once openat2(2) turned out to be missing (a kernel before 5.6, or a seccomp
/// filter that does not know it): from then on files are opened folder by folder.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

impl RootDir {
    fn open(root: &Path) -> std::io::Result<RootDir> {
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(root)?;
        Ok(RootDir {
            fd: OwnedFd::from(dir),
        })
    }

    /// Opens `rel` for reading only when it is a regular file reached without passing a
    /// symbolic link: neither at the end of the path nor on the way (say a tracked
    /// `dir/file` whose `dir` is now a link out of the root). A link, a `..`, a folder,
    /// a FIFO or a device gives `None`; opening never blocks.
    fn open_file(&self, rel: &Path) -> std::io::Result<Option<File>> {
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Ok(None);
        }
        let flags = FILE_FLAGS;
        let opened = match NO_OPENAT2.load(Ordering::Relaxed) {
            false => match self.open_in_one_call(rel, flags) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    self.open_folder_by_folder(rel, flags)
                }
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    self.open_folder_by_folder(rel, flags)
                }
                other => other,
            },
            true => self.open_folder_by_folder(rel, flags),
        }?;
        let Some(fd) = opened else {
            return Ok(None);
        };
        let file = File::from(fd);
        Ok(file.metadata()?.is_file().then_some(file))
    }

    /// openat2(2) refusing every link on the path and any way out of the root.
    fn open_in_one_call(&self, rel: &Path, flags: libc::c_int) -> std::io::Result<Option<OwnedFd>> {
        let name = CString::new(rel.as_os_str().as_bytes())?;
        let how = OpenHow {
            flags: flags as u64,
            mode: 0,
            resolve: libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH,
        };
        // SAFETY: the descriptor is open, `name` is NUL-terminated and `how` is an
        // open_how whose size is passed along; all live for the duration of the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.fd.as_raw_fd(),
                name.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        owned_or_refused(fd)
    }

    /// The same with openat(2), one folder at a time, each with O_NOFOLLOW.
    fn open_folder_by_folder(
        &self,
        rel: &Path,
        flags: libc::c_int,
    ) -> std::io::Result<Option<OwnedFd>> {
        let mut names = Vec::new();
        for part in rel.components() {
            if let Component::Normal(name) = part {
                names.push(CString::new(name.as_bytes())?);
            }
        }
        let Some((file_name, folders)) = names.split_last() else {
            return Ok(None);
        };
        let mut dir: Option<OwnedFd> = None;
        for name in folders {
            let at = dir.as_ref().unwrap_or(&self.fd);
            let folder_flags =
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            let Some(next) = open_at(at, name, folder_flags)? else {
                return Ok(None);
            };
            dir = Some(next);
        }
        open_at(dir.as_ref().unwrap_or(&self.fd), file_name, flags)
    }
}

/// openat2(2)'s `struct open_how` (the first version, which every kernel with openat2
/// accepts).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// A descriptor a system call returned, or `None` when it refused a link or a way out
/// of the root (ELOOP; ENOTDIR for a link to a file where a folder was expected; EXDEV).
fn owned_or_refused(fd: libc::c_long) -> std::io::Result<Option<OwnedFd>> {
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR | libc::EXDEV) => Ok(None),
            _ => Err(e),
        };
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("descriptor out of range"))?;
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// openat(2), refusing links like [`owned_or_refused`].
fn open_at(dir: &OwnedFd, name: &CStr, flags: libc::c_int) -> std::io::Result<Option<OwnedFd>> {
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, both valid
    // for the duration of the call.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    owned_or_refused(fd.into())
}

/// The first `limit` bytes of a project file; `None` when it is not a regular file
/// reached without passing a link (see `RootDir::open_file`).
pub fn read_head(root: &Path, file: &ProjectFile, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let Some(f) = RootDir::open(root)?.open_file(&file.path)? else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    f.take(limit).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// The first `limit` bytes of the file at `path`; `None` when it is not a regular file
/// (see [`open_regular`]): no FIFO, device or link is ever opened for reading.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let Some(f) = open_regular(path)? else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    f.take(limit).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests;
