//! One cancellation tree per run. A run has a [`RunScope`]; every step (and, next,
//! every script and child agent) takes a child scope. Stopping a scope stops its
//! children, and every scope can say WHY it stopped — which decides what happens to
//! the run's state.

use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Why a scope stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The user cancelled: running steps end `cancelled`, the run finishes cancelled.
    UserCancel,
    /// Another server owns the run now: stop here and touch nothing.
    LeaseLost,
    /// This server is going away: stop here and touch nothing; the next server resumes.
    Shutdown,
    /// The step (or run) that started this one ended first.
    ParentEnded,
}

impl StopReason {
    /// The run's state is left as it is for the owner that resumes it.
    pub fn hands_over(self) -> bool {
        matches!(self, StopReason::LeaseLost | StopReason::Shutdown)
    }

    fn strength(self) -> u8 {
        if self.hands_over() {
            2
        } else {
            1
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunScope {
    token: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
    parent: Option<Arc<RunScope>>,
}

impl Default for RunScope {
    fn default() -> Self {
        RunScope::new()
    }
}

impl RunScope {
    /// A root scope (one per run).
    pub fn new() -> RunScope {
        RunScope {
            token: CancellationToken::new(),
            reason: Arc::new(Mutex::new(None)),
            parent: None,
        }
    }

    /// A scope that stops when this one stops, and can also be stopped alone.
    pub fn child(&self) -> RunScope {
        RunScope {
            token: self.token.child_token(),
            reason: Arc::new(Mutex::new(None)),
            parent: Some(Arc::new(self.clone())),
        }
    }

    /// Stops this scope and every scope below it. The first reason is kept, except
    /// that a hand-over (lease lost, shutdown) overrides a cancel: once the run is no
    /// longer ours, nothing may finish it here.
    pub fn stop(&self, why: StopReason) {
        {
            let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            match *r {
                Some(old) if old.strength() >= why.strength() => {}
                _ => *r = Some(why),
            }
        }
        self.token.cancel();
    }

    /// Why this scope stopped (its own reason or, failing that, the nearest
    /// ancestor's, whichever is stronger); `None` while it runs.
    pub fn reason(&self) -> Option<StopReason> {
        if !self.token.is_cancelled() {
            return None;
        }
        let own = *self.reason.lock().unwrap_or_else(|p| p.into_inner());
        let inherited = self.parent.as_ref().and_then(|p| p.reason());
        match (own, inherited) {
            (Some(a), Some(b)) => Some(if b.strength() > a.strength() { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The run is no longer this server's to change (see [`StopReason::hands_over`]).
    pub fn hands_over(&self) -> bool {
        self.reason().is_some_and(StopReason::hands_over)
    }

    /// Resolves once the scope stopped.
    pub async fn stopped(&self) {
        self.token.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_reaches_every_child_with_its_reason() {
        let run = RunScope::new();
        let step = run.child();
        let grandchild = step.child();
        assert_eq!(step.reason(), None);
        run.stop(StopReason::UserCancel);
        assert!(step.is_stopped() && grandchild.is_stopped());
        assert_eq!(grandchild.reason(), Some(StopReason::UserCancel));
        assert!(!grandchild.hands_over());
    }

    #[test]
    fn a_child_stops_alone() {
        let run = RunScope::new();
        let a = run.child();
        let b = run.child();
        a.stop(StopReason::ParentEnded);
        assert!(a.is_stopped());
        assert!(!b.is_stopped() && !run.is_stopped());
        assert_eq!(a.reason(), Some(StopReason::ParentEnded));
    }

    #[test]
    fn a_hand_over_overrides_a_cancel_but_not_the_reverse() {
        let run = RunScope::new();
        let step = run.child();
        step.stop(StopReason::UserCancel);
        run.stop(StopReason::Shutdown);
        assert_eq!(step.reason(), Some(StopReason::Shutdown));
        assert!(step.hands_over());
        let run = RunScope::new();
        run.stop(StopReason::LeaseLost);
        run.stop(StopReason::UserCancel);
        assert_eq!(run.reason(), Some(StopReason::LeaseLost));
    }

    #[tokio::test]
    async fn stopped_resolves_when_an_ancestor_stops() {
        let run = RunScope::new();
        let step = run.child();
        let waiter = tokio::spawn({
            let step = step.clone();
            async move { step.stopped().await }
        });
        run.stop(StopReason::Shutdown);
        tokio::time::timeout(std::time::Duration::from_secs(2), waiter)
            .await
            .expect("the child heard the stop")
            .unwrap();
    }
}
