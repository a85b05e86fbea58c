//! Leases: this server registers as an owner, renews the leases of the runs it drives
//! (the heartbeat), hears about lost leases and remote cancel requests, adopts runs
//! whose owner is gone (completed steps kept, running ones reset for a fresh attempt,
//! stale agent process groups killed), and gives its leases up at shutdown.

use super::scope::StopReason;
use super::{lock, Supervisor};
use crate::clock;
use crate::engine;
use crate::model::RunStatus;
use crate::store::queries;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl Supervisor {
    /// Records this process as an owner of runs.
    pub async fn register(&self) -> Result<(), String> {
        let (owner, host) = (self.owner_id.clone(), self.host.clone());
        let pid = std::process::id() as i64;
        let start = crate::agent::process::pid_start_time(pid);
        self.store
            .call(move |c| queries::register_owner(c, &owner, pid, start, &host))
            .await
            .map_err(|e| e.to_string())
    }

    /// Adopts running runs whose owner is gone: their finished steps are kept, the
    /// steps that were running start again fresh, pending ones continue.
    pub async fn adopt_orphans(self: &Arc<Self>) -> Vec<String> {
        let owner_id = self.owner_id.clone();
        let rows = match self
            .store
            .call(move |c| queries::foreign_running_runs(c, &owner_id))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot look for orphaned runs: {e}");
                return Vec::new();
            }
        };
        let now = clock::now_ms();
        let timeout = self.config.lease_timeout.as_millis() as i64;
        let mut adopted = Vec::new();
        for (run_id, owner, lease_hb) in rows {
            if lock(&self.runs).contains_key(&run_id) {
                continue;
            }
            let gone = match &owner {
                None => lease_hb.is_none_or(|hb| now - hb > timeout),
                Some(o) => {
                    (o.host == self.host
                        && !crate::agent::process::same_process(o.pid, o.pid_start))
                        || now - o.heartbeat_ms > timeout
                }
            };
            if !gone {
                continue;
            }
            let (rid, new_owner, expected) = (
                run_id.clone(),
                self.owner_id.clone(),
                owner.as_ref().map(|o| o.owner_id.clone()),
            );
            let had_lease = lease_hb.is_some();
            let taken = self
                .store
                .call(move |c| {
                    if had_lease && expected.is_none() {
                        // A lease whose owner row is gone: replace it.
                        c.execute("DELETE FROM run_leases WHERE run_id = ?1", [&rid])?;
                    }
                    let ok = queries::take_lease(
                        c,
                        &rid,
                        &new_owner,
                        expected.as_deref().filter(|_| had_lease),
                    )?;
                    if !ok {
                        return Ok((false, Vec::new()));
                    }
                    let run = queries::get_run(c, &rid)?;
                    let steps = queries::get_step_states(c, &rid)?;
                    let status = run
                        .map(|r| r.run.summary.status)
                        .unwrap_or(RunStatus::Failed);
                    let reset = engine::reconcile(
                        status,
                        &steps
                            .iter()
                            .map(|s| (s.step.step_id.clone(), s.step.status))
                            .collect::<Vec<_>>(),
                    );
                    let groups = queries::reset_steps(c, &rid, &reset)?;
                    Ok((true, groups))
                })
                .await;
            match taken {
                Ok((true, groups)) => {
                    for (pgid, start) in groups {
                        if crate::agent::process::kill_stale_group(pgid, start) {
                            tracing::info!(run = %run_id, pgid, "killed a stale agent process group");
                        }
                    }
                    tracing::info!(run = %run_id, "adopted an orphaned run");
                    self.spawn_drive(run_id.clone(), true);
                    adopted.push(run_id);
                }
                Ok((false, _)) => {}
                Err(e) => tracing::error!(run = %run_id, "cannot adopt: {e}"),
            }
        }
        adopted
    }

    /// Heartbeat: keeps leases alive, notices lost leases and remote cancel requests,
    /// and (when `adopt` is on) adopts orphaned runs. Runs until `shutdown` fires.
    pub async fn heartbeat_loop(self: Arc<Self>, adopt: bool, shutdown: CancellationToken) {
        loop {
            let held: Vec<String> = lock(&self.runs).keys().cloned().collect();
            let owner_id = self.owner_id.clone();
            match self
                .store
                .call(move |c| queries::heartbeat(c, &owner_id, &held))
                .await
            {
                Ok((lost, cancelled)) => {
                    let runs = lock(&self.runs);
                    for r in lost {
                        if let Some(h) = runs.get(&r) {
                            tracing::warn!(run = %r, "lease lost; stopping here");
                            h.scope.stop(StopReason::LeaseLost);
                        }
                    }
                    for r in cancelled {
                        if let Some(h) = runs.get(&r) {
                            h.scope.stop(StopReason::UserCancel);
                        }
                    }
                }
                Err(e) => tracing::error!("heartbeat failed: {e}"),
            }
            if adopt {
                self.adopt_orphans().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.heartbeat) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Stops every local run without ending it (its agents are killed; the run stays
    /// `running` and the next server resumes it) and gives up this owner's leases.
    pub async fn shutdown(&self) {
        let handles: Vec<_> = lock(&self.runs)
            .values()
            .map(|h| (h.scope.clone(), h.done.clone()))
            .collect();
        for (scope, _) in &handles {
            scope.stop(StopReason::Shutdown);
        }
        for (_, mut done) in handles {
            let _ = tokio::time::timeout(Duration::from_secs(5), done.wait_for(|d| *d)).await;
        }
        // Warm agent processes (the ACP pool) end with the server.
        self.scheduler.backend.shutdown().await;
        let owner_id = self.owner_id.clone();
        let _ = self
            .store
            .call(move |c| queries::release_owner(c, &owner_id))
            .await;
    }
}
