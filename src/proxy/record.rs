//! From a forwarded call to a stored [`ModelCall`]: the cache shape is computed
//! against the proxy's [`PrefixMemory`], the row written to `model_calls`.

use super::shape::{self, PrefixMemory, Segment};
use super::{CallEvent, CallRecord};
use crate::store::{queries, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// One model call as stored and as sent on the wire (docs/protocol.md, "Model calls").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCall {
    pub call_id: String,
    pub run_id: String,
    pub step_id: String,
    pub chat_id: String,
    pub turn: u64,
    pub started_at: String,
    pub finished_at: String,
    pub ttft_ms: Option<u64>,
    pub duration_ms: u64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub tokens_per_second: Option<f64>,
    /// Which usage dialect the cached count came from (docs/cache-shape.md).
    pub cache_dialect: Option<String>,
    pub request_bytes: u64,
    pub expected_cached_tokens: u64,
    pub miss_reason: Option<String>,
    pub segments: serde_json::Value,
}

/// Builds the call's row, updating `memory` (every request with a chat body is
/// remembered, attributed or not).
pub fn model_call(rec: &CallRecord, memory: &mut PrefixMemory) -> Option<ModelCall> {
    let layout = shape::layout(&rec.request);
    let shape = layout.map(|l| memory.analyze(l, rec.counts.prompt, rec.counts.cached));
    let owner = rec.owner.as_ref()?;
    let generating_ms = rec
        .duration_ms
        .saturating_sub(rec.ttft_ms.unwrap_or(0))
        .max(1);
    let tokens_per_second = rec
        .counts
        .completion
        .filter(|n| *n > 0)
        .map(|n| n as f64 * 1000.0 / generating_ms as f64);
    let segments: Vec<Segment> = shape
        .as_ref()
        .map(|s| s.segments.clone())
        .unwrap_or_default();
    Some(ModelCall {
        call_id: rec.call_id.clone(),
        run_id: owner.run_id.clone(),
        step_id: owner.step_id.clone(),
        chat_id: owner.chat_id.clone(),
        turn: shape.as_ref().map(|s| s.turn).unwrap_or(0),
        started_at: rec.started_at.clone(),
        finished_at: rec.finished_at.clone(),
        ttft_ms: rec.ttft_ms,
        duration_ms: rec.duration_ms,
        status: rec.status,
        error: rec.error.clone(),
        prompt_tokens: rec.counts.prompt,
        cached_tokens: rec.counts.cached,
        completion_tokens: rec.counts.completion,
        tokens_per_second,
        cache_dialect: rec
            .counts
            .dialect
            .and_then(|d| serde_json::to_value(d).ok())
            .and_then(|v| v.as_str().map(String::from)),
        request_bytes: rec.request.len() as u64,
        expected_cached_tokens: shape
            .as_ref()
            .map(|s| s.expected_cached_tokens)
            .unwrap_or(0),
        miss_reason: shape.and_then(|s| s.miss_reason),
        segments: serde_json::to_value(segments).unwrap_or_default(),
    })
}

/// A call as it starts (no answer yet): the `start` phase of `boo/modelCall`.
fn started(
    call_id: String,
    owner: &super::Attribution,
    started_at: String,
    request: &[u8],
) -> ModelCall {
    let layout = shape::layout(request);
    ModelCall {
        call_id,
        run_id: owner.run_id.clone(),
        step_id: owner.step_id.clone(),
        chat_id: owner.chat_id.clone(),
        turn: layout.as_ref().map(|l| l.turn).unwrap_or(0),
        started_at,
        finished_at: String::new(),
        ttft_ms: None,
        duration_ms: 0,
        status: None,
        error: None,
        prompt_tokens: None,
        cached_tokens: None,
        completion_tokens: None,
        tokens_per_second: None,
        cache_dialect: None,
        request_bytes: request.len() as u64,
        expected_cached_tokens: 0,
        miss_reason: None,
        segments: serde_json::Value::Array(vec![]),
    }
}

/// Stores every finished call; `notify` gets each call as it starts (`"start"`) and
/// once stored (`"finish"`) — the caller sends it through the outbox.
pub async fn run_recorder(
    mut rx: mpsc::UnboundedReceiver<CallEvent>,
    store: Store,
    notify: impl Fn(&'static str, ModelCall) + Send + 'static,
) {
    let mut memory = PrefixMemory::default();
    while let Some(ev) = rx.recv().await {
        let rec = match ev {
            CallEvent::Started {
                call_id,
                owner: Some(owner),
                started_at,
                request,
            } => {
                notify("start", started(call_id, &owner, started_at, &request));
                continue;
            }
            CallEvent::Started { .. } => continue,
            CallEvent::Finished(rec) => rec,
        };
        let Some(call) = model_call(&rec, &mut memory) else {
            tracing::info!(
                "a model call on {} was not attributed (several prompts ran on its process at once); not stored",
                rec.path
            );
            continue;
        };
        let row = call.clone();
        match store
            .call(move |c| queries::insert_model_call(c, &row))
            .await
        {
            Ok(()) => notify("finish", call),
            Err(e) => tracing::warn!("cannot store model call {}: {e}", call.call_id),
        }
    }
}
