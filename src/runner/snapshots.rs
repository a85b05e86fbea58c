//! A run's snapshot of its project (`project::snapshot`): taken at launch before the run
//! row exists, opened again by the driver (a resumed run keeps the one it had; when that
//! is gone it takes a new one, marked `retaken`), read by the report, removed when the
//! run ends. Snapshots live under `RunnerConfig::snapshot_dir`, one folder per run id;
//! whatever a crash leaves there is collected when a server starts and by `boo gc`.

use super::{LaunchError, Supervisor};
use crate::project::snapshot::{self, Snapshot};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How old an orphaned snapshot folder must be before it is collected: a launch in
/// flight writes its snapshot before its run row exists.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(600);

impl Supervisor {
    /// The folder of a run's snapshot.
    pub fn snapshot_path(&self, run_id: &str) -> PathBuf {
        self.snapshot_base.join(run_id)
    }

    /// Takes the snapshot of `root` for a run being launched.
    pub(super) async fn take_snapshot(
        &self,
        run_id: &str,
        root: &Path,
    ) -> Result<Snapshot, LaunchError> {
        let (dir, root) = (self.snapshot_path(run_id), root.to_path_buf());
        tokio::task::spawn_blocking(move || Snapshot::take(&root, &dir, false))
            .await
            .map_err(|e| LaunchError::Internal(format!("taking the run's snapshot failed: {e}")))?
            .map_err(|e| LaunchError::Internal(e.to_string()))
    }

    /// The run's snapshot, or a new one when it is gone (see the module doc).
    pub(super) async fn run_snapshot(&self, run_id: &str, root: &Path) -> Result<Snapshot, String> {
        let (dir, root) = (self.snapshot_path(run_id), root.to_path_buf());
        let (id, r2) = (run_id.to_string(), root.clone());
        tokio::task::spawn_blocking(move || match Snapshot::open(&dir) {
            Some(s) if Path::new(&s.manifest.root) == r2 => Ok(s),
            _ => {
                tracing::info!(run = %id, "the run's snapshot is gone; taking a new one");
                Snapshot::take(&r2, &dir, true).map_err(|e| e.to_string())
            }
        })
        .await
        .map_err(|e| format!("opening the run's snapshot failed: {e}"))?
    }

    /// The run's snapshot if it exists (the report of a run that ends reads it).
    pub(super) fn open_snapshot(&self, run_id: &str) -> Option<Snapshot> {
        Snapshot::open(&self.snapshot_path(run_id))
    }

    /// Removes the run's snapshot (the run ended).
    pub(super) async fn drop_snapshot(&self, run_id: &str) {
        let dir = self.snapshot_path(run_id);
        // The warm agents of this run worked in the snapshot; none can serve another.
        self.scheduler.backend.release_root(&dir);
        let _ = tokio::task::spawn_blocking(move || Snapshot::remove(&dir)).await;
    }
}

/// Removes the snapshots under `base` whose run is not running (older than
/// [`ORPHAN_GRACE`]). Returns how many were removed.
pub fn collect_snapshots(base: &Path, running: &HashSet<String>) -> usize {
    snapshot::collect(base, running, ORPHAN_GRACE)
}
