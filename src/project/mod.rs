//! The project's files: the one definition of which files make up the project under a
//! root, how to read one of them without leaving the root, the repository state around
//! them (`git`) and the fingerprint over them (`fingerprint`). The `signals` code step,
//! the fingerprint and the cache keys all list files through [`list_files`], so they
//! can never disagree about what the project is.
//!
//! - In a git repository (the root or any folder inside one): every file git tracks
//!   plus every untracked file that is not ignored, below the root (`git ls-files -z
//!   --cached --others --exclude-standard`). Ignored files are not part of the project.
//! - Elsewhere (no repository, or git is missing): every entry under the root, hidden
//!   files and build folders included.
//!
//! Either way a symbolic link is one entry: the listing never descends into a linked
//! folder, and [`read_head`] never reads through a link, so nothing outside the root is
//! ever read as project content.

pub mod fingerprint;
pub mod git;

pub use fingerprint::{diff, HashCache};
pub use git::GitError;

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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
/// blocks.
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

/// The first `limit` bytes of a project file; `None` when it is not a regular file
/// (see [`open_regular`]).
pub fn read_head(root: &Path, file: &ProjectFile, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    read_regular(&root.join(&file.path), limit)
}

/// The first `limit` bytes of the file at `path`; `None` when it is not a regular file
/// (see [`open_regular`]). Every file boo itself reads under a root is read this way.
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
