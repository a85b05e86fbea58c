//! The outbox: the single exit for everything the server tells clients about runs.
//! One task drains one queue, so notifications leave in the order they were queued.
//! It assigns each agent stream its contiguous `seq`, and every stream batch is
//! COMMITTED with that seq before it is sent (so `getRun {transcript}` always covers
//! what a client saw, even after a kill -9): the batch's snapshots go to the store in
//! one job, the outbox waits for its commit, and a write that fails for a passing
//! reason (a locked or busy database) is retried until it succeeds — delivery waits,
//! nothing is dropped. It coalesces stream deltas only while it is busy: when the
//! queue is idle a message leaves at once; when messages pile up behind a slow client,
//! consecutive deltas of one chat are merged into one notification.

use crate::agent::BoxFuture;
use crate::model::{Band, RunStatus, StepKind, StepStatus, StreamEvent, Trace, WireUsage};
use crate::store::{queries, Store};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RosterEntry {
    pub step_id: String,
    pub agent: String,
    pub kind: StepKind,
    pub label: String,
    pub wave: u32,
    pub chat_id: Option<String>,
    pub status: StepStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    pub run_id: String,
    pub flow: String,
    /// `None` for a workflow run.
    pub band: Option<Band>,
    pub question: String,
    pub root: String,
    pub status: RunStatus,
    pub title: String,
    pub created_at: String,
    pub resumed: bool,
    pub steps: Vec<RosterEntry>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepUpdated {
    pub run_id: String,
    pub step_id: String,
    pub status: Option<StepStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_status: Option<RunStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<WireUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_usage: Option<WireUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<StepKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wave: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// A workflow run's return value, on its last notification when it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// `boo/stepAdded`: a step created while the run runs (a workflow's `agent()` call).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepAdded {
    pub run_id: String,
    pub step_id: String,
    pub agent: String,
    pub kind: StepKind,
    pub label: String,
    pub phase: Option<String>,
    pub wave: u32,
    pub chat_id: Option<String>,
    pub status: StepStatus,
    pub cached: bool,
    pub parent_step_id: Option<String>,
}

/// `boo/runLog`: one line of a workflow run's log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunLog {
    pub run_id: String,
    pub seq: u64,
    /// `log` or `phase`.
    pub kind: String,
    pub message: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStream {
    pub run_id: String,
    pub step_id: String,
    pub chat_id: String,
    pub seq: u64,
    pub events: Vec<StreamEvent>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceNote {
    pub phase: &'static str,
    #[serde(flatten)]
    pub trace: Trace,
}

/// A model call seen by boo's model proxy, as it starts and as it finishes.
#[derive(Debug, Clone)]
pub struct ModelCallNote {
    pub phase: &'static str,
    pub call: crate::proxy::record::ModelCall,
}

/// A diagnostic for a verified finding.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingDiagnostic {
    pub run_id: String,
    pub flow: String,
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub severity: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum ProgressKind {
    Begin { title: String, message: String },
    Report { message: String, percentage: u32 },
    End { message: String },
}

/// What runs and steps queue for clients.
#[derive(Debug, Clone)]
pub enum Out {
    RunStarted(RunStarted),
    StepUpdated(StepUpdated),
    StepAdded(StepAdded),
    RunLog(RunLog),
    /// Stream events of one chat; the outbox assigns `seq` when it sends them.
    Stream(AgentStream),
    Trace(TraceNote),
    ModelCall(ModelCallNote),
    Progress {
        run_id: String,
        kind: ProgressKind,
    },
    Findings {
        root: String,
        flow: String,
        diagnostics: Vec<FindingDiagnostic>,
    },
    /// Internal: a transport finished preparing something asynchronously (e.g. a
    /// progress token the client acknowledged).
    Ready(String),
}

/// A stream message for the outbox (its `seq` is assigned on sending).
pub fn stream(run_id: &str, step_id: &str, chat_id: &str, event: StreamEvent) -> Out {
    Out::Stream(AgentStream {
        run_id: run_id.to_string(),
        step_id: step_id.to_string(),
        chat_id: chat_id.to_string(),
        seq: 0,
        events: vec![event],
    })
}

/// Where the outbox delivers: the LSP client, the CLI's progress printer, a test.
pub trait Transport: Send + 'static {
    fn deliver(&mut self, msg: Out) -> BoxFuture<'_, ()>;
}

pub type OutboxSender = mpsc::UnboundedSender<Out>;

/// The most messages merged in one pass.
const MAX_BATCH: usize = 4096;

/// Runs the outbox until every sender is gone.
pub async fn run_outbox<T: Transport>(
    mut rx: mpsc::UnboundedReceiver<Out>,
    store: Store,
    mut transport: T,
) {
    let mut seqs: HashMap<String, u64> = HashMap::new();
    let mut batch: Vec<Out> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut ready = Vec::with_capacity(batch.len());
        let mut snapshots = Vec::new();
        for msg in coalesce(std::mem::take(&mut batch)) {
            ready.push(match msg {
                Out::Stream(mut m) => {
                    let seq = seqs.entry(m.chat_id.clone()).or_insert(0);
                    *seq += 1;
                    m.seq = *seq;
                    snapshots.push(m.clone());
                    Out::Stream(m)
                }
                Out::StepUpdated(m) => {
                    if m.status.is_some_and(|s| s.is_terminal()) {
                        if let Some(c) = &m.chat_id {
                            seqs.remove(c);
                        }
                    }
                    Out::StepUpdated(m)
                }
                other => other,
            });
        }
        // Committed before sent: getRun always covers what a client saw.
        persist(&store, snapshots).await;
        for out in ready {
            transport.deliver(out).await;
        }
    }
}

/// Writes a batch's stream snapshots in one job and waits for the commit; a write
/// that fails for a passing reason is retried (backing off up to 2 s) until it goes
/// through. A permanent failure is logged and the batch is sent anyway: holding the
/// stream back forever would not bring the rows back.
async fn persist(store: &Store, snapshots: Vec<AgentStream>) {
    if snapshots.is_empty() {
        return;
    }
    let snapshots = std::sync::Arc::new(snapshots);
    let mut wait = Duration::from_millis(50);
    loop {
        let rows = snapshots.clone();
        let written = store
            .call(move |c| {
                for m in rows.iter() {
                    queries::insert_snapshot(
                        c, &m.chat_id, m.seq, &m.run_id, &m.step_id, &m.events,
                    )?;
                }
                Ok(())
            })
            .await;
        match written {
            Ok(()) => return,
            Err(e) if e.is_transient() => {
                tracing::warn!("stream snapshots not saved yet ({e}); trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!("cannot save stream snapshots: {e}");
                return;
            }
        }
    }
}

/// Merges consecutive stream messages of the same chat between two other messages.
/// Order within a chat is kept; a non-stream message is a barrier nothing crosses.
pub fn coalesce(batch: Vec<Out>) -> Vec<Out> {
    let mut out: Vec<Out> = Vec::with_capacity(batch.len());
    let mut open: HashMap<String, usize> = HashMap::new();
    for msg in batch {
        match msg {
            Out::Stream(m) => {
                if let Some(&i) = open.get(&m.chat_id) {
                    if let Out::Stream(prev) = &mut out[i] {
                        for e in m.events {
                            let merged = prev
                                .events
                                .last_mut()
                                .is_some_and(|last| last.try_merge(&e));
                            if !merged {
                                prev.events.push(e);
                            }
                        }
                        continue;
                    }
                }
                open.insert(m.chat_id.clone(), out.len());
                out.push(Out::Stream(m));
            }
            other => {
                open.clear();
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(chat: &str, t: &str) -> Out {
        stream("r", chat, chat, StreamEvent::Text { text: t.into() })
    }

    #[test]
    fn merges_deltas_per_chat_but_not_across_barriers() {
        let batch = vec![
            text("a", "1"),
            text("b", "x"),
            text("a", "2"),
            Out::StepUpdated(StepUpdated {
                run_id: "r".into(),
                step_id: "a".into(),
                ..Default::default()
            }),
            text("a", "3"),
        ];
        let out = coalesce(batch);
        assert_eq!(out.len(), 4);
        match &out[0] {
            Out::Stream(m) => {
                assert_eq!(m.chat_id, "a");
                assert_eq!(m.events, vec![StreamEvent::Text { text: "12".into() }]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&out[1], Out::Stream(m) if m.chat_id == "b"));
        assert!(matches!(&out[2], Out::StepUpdated(_)));
        assert!(
            matches!(&out[3], Out::Stream(m) if m.events == vec![StreamEvent::Text { text: "3".into() }])
        );
    }

    #[test]
    fn keeps_different_event_kinds_apart() {
        let mut a = text("a", "t");
        if let Out::Stream(m) = &mut a {
            m.events.push(StreamEvent::Thinking { text: "h".into() });
        }
        let out = coalesce(vec![a, text("a", "u")]);
        assert_eq!(out.len(), 1);
        match &out[0] {
            Out::Stream(m) => assert_eq!(m.events.len(), 3),
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod persisted_before_sent {
    use super::*;

    /// A transport that, for every stream notification it gets, looks the batch up
    /// through a connection of its own — which sees only COMMITTED rows, as the next
    /// server would after a kill -9.
    struct Checking {
        other: rusqlite::Connection,
        seen: mpsc::UnboundedSender<(u64, bool)>,
    }

    impl Transport for Checking {
        fn deliver(&mut self, msg: Out) -> BoxFuture<'_, ()> {
            Box::pin(async move {
                if let Out::Stream(m) = msg {
                    let stored = queries::transcript(&self.other, &m.chat_id)
                        .map(|(_, last)| last >= m.seq)
                        .unwrap_or(false);
                    let _ = self.seen.send((m.seq, stored));
                }
            })
        }
    }

    #[tokio::test]
    async fn every_stream_batch_is_committed_before_a_client_sees_it() {
        let path = std::env::temp_dir().join(format!(
            "boo-outbox-{}-{}.db",
            std::process::id(),
            crate::clock::now_ms()
        ));
        let store = Store::open(&path).unwrap();
        store
            .call(|c| {
                c.execute_batch(
                    "INSERT INTO flow_runs (run_id, flow, band, project_id, root, input, plan, created_at)
                     VALUES ('r', 'f', 'small', '/p', '/p', '{\"question\":\"q\"}', '{}', '2026-01-01T00:00:00.000Z');",
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_outbox(
            rx,
            store.clone(),
            Checking {
                other: crate::store::open_connection(&path).unwrap(),
                seen: seen_tx,
            },
        ));
        for i in 0..200 {
            tx.send(stream(
                "r",
                "s",
                "chat",
                StreamEvent::Text {
                    text: format!("{i} "),
                },
            ))
            .unwrap();
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        drop(tx);
        task.await.unwrap();
        let mut n = 0;
        while let Ok((seq, stored)) = seen.try_recv() {
            n += 1;
            assert!(stored, "batch {seq} was sent before it was stored");
        }
        assert!(n > 0);
        let _ = std::fs::remove_file(&path);
    }
}
