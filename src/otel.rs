//! OpenTelemetry export of runs as traces, in the OTLP/HTTP JSON encoding.
//!
//! A run is one trace (its id is the run's UUID). The run is the root span; each step
//! is a child span (`invoke_agent <persona>` for agent steps); each model turn of an
//! agent is a `chat <model>` span and each tool call an `execute_tool <tool>` span under
//! its step. Attributes follow the OpenTelemetry GenAI semantic conventions
//! (`gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.usage.input_tokens`,
//! `gen_ai.usage.output_tokens`, `gen_ai.usage.cache_read.input_tokens`,
//! `gen_ai.agent.name`, `gen_ai.tool.name`, …); boo's own are under `boo.*`.
//!
//! `boo export <runId> --format otlp-json` prints a run's spans. With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, boo
//! also sends them while runs go on: each time a step ends, the spans that finished
//! since, and the root span when the run ends. Span ids are derived from the run, so
//! the live export and a later `boo export` name the same spans.

use crate::agent::BoxFuture;
use crate::clock;
use crate::model::{RunStatus, StepKind, StepStatus, StreamEvent, Trace, TraceOutcome, WireUsage};
use crate::runner::outbox::{Out, Transport};
use crate::store::queries::{self, RunRow, StepRow};
use crate::store::{Store, StoreError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::time::Duration;

/// Where and how to send spans (from the standard `OTEL_*` variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelConfig {
    /// The full URL spans are POSTed to (`…/v1/traces`); None: no live export.
    pub traces_url: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS`.
    pub headers: Vec<(String, String)>,
    /// `OTEL_SERVICE_NAME` (default `boo`).
    pub service_name: String,
    /// Per request (`OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds; default 10 s).
    pub timeout: Duration,
}

/// Decodes `%XX` escapes (header values are URL-encoded by the OTel spec).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl OtelConfig {
    /// The configuration a given environment describes. Live export is off (no
    /// `traces_url`) without an endpoint, or with `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`.
    pub fn from_vars(var: &impl Fn(&str) -> Option<OsString>) -> OtelConfig {
        let text = |k: &str| {
            var(k)
                .map(|v| v.to_string_lossy().trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let off = text("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || text("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none");
        let traces_url = text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| {
                text("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
            })
            .filter(|_| !off);
        let mut headers = Vec::new();
        for k in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            for pair in text(k).unwrap_or_default().split(',') {
                if let Some((name, value)) = pair.split_once('=') {
                    let name = percent_decode(name.trim());
                    if !name.is_empty() {
                        headers.retain(|(n, _): &(String, String)| !n.eq_ignore_ascii_case(&name));
                        headers.push((name, percent_decode(value.trim())));
                    }
                }
            }
        }
        let timeout = text("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| text("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(10));
        OtelConfig {
            traces_url,
            headers,
            service_name: text("OTEL_SERVICE_NAME").unwrap_or_else(|| "boo".into()),
            timeout,
        }
    }
}

/// Everything the spans of a run are built from.
#[derive(Debug, Clone)]
pub struct RunData {
    pub run: RunRow,
    pub steps: Vec<StepRow>,
    pub traces: Vec<Trace>,
    /// (step id, turn, usage) of each step's current chat.
    pub turns: Vec<(String, u32, crate::model::Usage)>,
    /// chat id → the times (ms) its model turns ended, in order.
    pub turn_ends: HashMap<String, Vec<i64>>,
}

/// Reads a run and everything under it; None for an unknown run.
pub async fn load(store: &Store, run_id: &str) -> Result<Option<RunData>, StoreError> {
    let id = run_id.to_string();
    store
        .call(move |c| {
            let Some(run) = queries::get_run(c, &id)? else {
                return Ok(None);
            };
            let steps = queries::get_steps(c, &id)?;
            let mut traces = Vec::new();
            let mut cursor = 0;
            loop {
                let (page, next) = queries::list_traces(c, &id, None, cursor, 1000)?;
                traces.extend(page);
                match next {
                    Some(n) => cursor = n,
                    None => break,
                }
            }
            let turns = queries::turn_usages(c, &id)?;
            let mut turn_ends: HashMap<String, Vec<i64>> = HashMap::new();
            let mut stmt = c.prepare(
                "SELECT chat_id, created_ms, events FROM agent_snapshots WHERE run_id = ?1 ORDER BY chat_id, seq",
            )?;
            let rows = stmt.query_map([&id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })?;
            for row in rows {
                let (chat, ms, events) = row?;
                let events: Vec<StreamEvent> = serde_json::from_str(&events).unwrap_or_default();
                for e in events {
                    if matches!(e, StreamEvent::MessageComplete { .. }) {
                        turn_ends.entry(chat.clone()).or_default().push(ms);
                    }
                }
            }
            Ok(Some(RunData {
                run,
                steps,
                traces,
                turns,
                turn_ends,
            }))
        })
        .await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trace id of a run: its UUID's 16 bytes (a hash for ids that are not UUIDs).
pub fn trace_id(run_id: &str) -> String {
    let plain: String = run_id.chars().filter(|c| *c != '-').collect();
    if plain.len() == 32 && plain.chars().all(|c| c.is_ascii_hexdigit()) && plain != "0".repeat(32)
    {
        return plain.to_ascii_lowercase();
    }
    hex(&Sha256::digest(run_id.as_bytes())[..16])
}

/// A span id derived from the run and what the span is (stable across exports).
fn span_id(run_id: &str, what: &str) -> String {
    let mut h = Sha256::new();
    h.update(run_id.as_bytes());
    h.update([0]);
    h.update(what.as_bytes());
    let mut id = Sha256::digest(h.finalize())[..8].to_vec();
    if id.iter().all(|b| *b == 0) {
        id[7] = 1;
    }
    hex(&id)
}

fn nanos(ms: i64) -> String {
    (ms.max(0) as u128 * 1_000_000).to_string()
}

fn s(key: &str, v: impl Into<String>) -> Value {
    json!({ "key": key, "value": { "stringValue": v.into() } })
}

fn i(key: &str, v: u64) -> Value {
    json!({ "key": key, "value": { "intValue": v.to_string() } })
}

fn usage_attrs(u: &WireUsage) -> Vec<Value> {
    vec![
        i("gen_ai.usage.input_tokens", u.input_tokens),
        i("gen_ai.usage.output_tokens", u.output_tokens),
        i("gen_ai.usage.cache_read.input_tokens", u.cache_read_tokens),
    ]
}

/// qwen talks to the model through the OpenAI-compatible API.
const PROVIDER: &str = "openai";
const KIND_INTERNAL: u8 = 1;
const KIND_CLIENT: u8 = 3;
const STATUS_OK: u8 = 1;
const STATUS_ERROR: u8 = 2;

#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    kind: u8,
    start_ms: i64,
    end_ms: i64,
    attributes: Vec<Value>,
    error: Option<&str>,
) -> Value {
    let mut v = json!({
        "traceId": trace,
        "spanId": id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": nanos(start_ms),
        "endTimeUnixNano": nanos(end_ms.max(start_ms)),
        "attributes": attributes,
        "status": match error {
            Some(e) => json!({ "code": STATUS_ERROR, "message": e }),
            None => json!({ "code": STATUS_OK }),
        },
    });
    if let Some(p) = parent {
        v["parentSpanId"] = json!(p);
    }
    v
}

fn ms_of(t: Option<&str>) -> Option<i64> {
    t.and_then(clock::parse_ms)
}

/// The finished spans of a run (spans still open are left out until they end).
pub fn spans(d: &RunData) -> Vec<Value> {
    let summary = &d.run.run.summary;
    let run_id = summary.run_id.as_str();
    let trace = trace_id(run_id);
    let root_id = span_id(run_id, "run");
    let model = d.run.run.model.clone().unwrap_or_default();
    let mut out = Vec::new();

    let run_start = ms_of(Some(&summary.created_at)).unwrap_or(0);
    if let (Some(end), true) = (
        ms_of(summary.finished_at.as_deref()),
        summary.status != RunStatus::Running,
    ) {
        let mut attrs = vec![
            s("gen_ai.operation.name", "invoke_agent"),
            s("gen_ai.agent.name", format!("boo flow {}", summary.flow)),
            s("gen_ai.agent.id", run_id),
            s("boo.run.id", run_id),
            s("boo.flow", summary.flow.clone()),
            s("boo.band", summary.band.as_str()),
            s("boo.question", summary.question.clone()),
            s("boo.root", summary.root.clone()),
            s("boo.run.status", summary.status.as_str()),
        ];
        if !model.is_empty() {
            attrs.push(s("gen_ai.request.model", model.clone()));
        }
        attrs.extend(usage_attrs(&d.run.run.usage));
        let error = match summary.status {
            RunStatus::Failed => Some(
                d.run
                    .run
                    .error
                    .clone()
                    .unwrap_or_else(|| "the run failed".into()),
            ),
            RunStatus::Cancelled => Some("the run was cancelled".into()),
            _ => None,
        };
        out.push(span(
            &trace,
            &root_id,
            None,
            &format!("flow {}", summary.flow),
            KIND_INTERNAL,
            run_start,
            end,
            attrs,
            error.as_deref(),
        ));
    }

    let mut turns_of: BTreeMap<&str, Vec<(u32, &crate::model::Usage)>> = BTreeMap::new();
    for (step, turn, u) in &d.turns {
        turns_of.entry(step.as_str()).or_default().push((*turn, u));
    }
    for row in &d.steps {
        let st = &row.step;
        let (Some(start), Some(end)) = (
            ms_of(st.started_at.as_deref()),
            ms_of(st.finished_at.as_deref()),
        ) else {
            continue; // never ran, or still running
        };
        let step_span = span_id(run_id, &format!("step/{}/{}", st.step_id, st.attempt));
        let error = match st.status {
            StepStatus::Failed => {
                Some(st.error.clone().unwrap_or_else(|| "the step failed".into()))
            }
            StepStatus::Cancelled => Some("the step was cancelled".into()),
            _ => None,
        };
        let mut attrs = vec![
            s("boo.step.id", st.step_id.clone()),
            s("boo.step.kind", st.kind.as_str()),
            s("boo.step.label", st.label.clone()),
            s("boo.step.status", st.status.as_str()),
            i("boo.step.wave", st.wave as u64),
            i("boo.step.attempt", st.attempt as u64),
        ];
        let name = if st.kind == StepKind::Agent {
            attrs.push(s("gen_ai.operation.name", "invoke_agent"));
            attrs.push(s("gen_ai.provider.name", PROVIDER));
            attrs.push(s("gen_ai.agent.name", st.agent.clone()));
            if let Some(chat) = &st.chat_id {
                attrs.push(s("gen_ai.agent.id", chat.clone()));
                attrs.push(s("gen_ai.conversation.id", chat.clone()));
            }
            if !model.is_empty() {
                attrs.push(s("gen_ai.request.model", model.clone()));
            }
            attrs.extend(usage_attrs(&st.usage));
            format!("invoke_agent {}", st.agent)
        } else {
            attrs.push(s("boo.step.function", st.agent.clone()));
            format!("{} {}", st.agent, st.step_id)
        };
        out.push(span(
            &trace,
            &step_span,
            Some(&root_id),
            &name,
            KIND_INTERNAL,
            start,
            end,
            attrs,
            error.as_deref(),
        ));
        if st.kind != StepKind::Agent {
            continue;
        }
        let Some(chat) = st.chat_id.as_deref() else {
            continue;
        };
        let tool_calls: Vec<&Trace> = d
            .traces
            .iter()
            .filter(|t| t.step_id == st.step_id && t.chat_id == chat)
            .collect();
        // Model turns: each ends when its `messageComplete` was stored; it starts when
        // the previous turn ended or the last tool call before it returned.
        let ends = d.turn_ends.get(chat).cloned().unwrap_or_default();
        let mut turns = turns_of
            .get(st.step_id.as_str())
            .cloned()
            .unwrap_or_default();
        turns.sort_by_key(|(n, _)| *n);
        let mut prev_end = start;
        for (k, (turn, u)) in turns.iter().enumerate() {
            let t_end = ends
                .get(k)
                .copied()
                .unwrap_or(end)
                .clamp(start, end.max(start));
            let tools_before = tool_calls
                .iter()
                .filter_map(|t| ms_of(t.finished_at.as_deref()))
                .filter(|f| *f <= t_end && *f >= prev_end)
                .max();
            let t_start = tools_before.unwrap_or(prev_end).min(t_end);
            let mut attrs = vec![
                s("gen_ai.operation.name", "chat"),
                s("gen_ai.provider.name", PROVIDER),
                s("gen_ai.conversation.id", chat),
                i("boo.turn", *turn as u64),
            ];
            if !model.is_empty() {
                attrs.push(s("gen_ai.request.model", model.clone()));
            }
            attrs.extend(usage_attrs(&WireUsage::from(**u)));
            out.push(span(
                &trace,
                &span_id(run_id, &format!("turn/{chat}/{turn}")),
                Some(&step_span),
                &if model.is_empty() {
                    "chat".to_string()
                } else {
                    format!("chat {model}")
                },
                KIND_CLIENT,
                t_start,
                t_end,
                attrs,
                None,
            ));
            prev_end = t_end;
        }
        for t in tool_calls {
            let (Some(t_start), Some(t_end)) =
                (ms_of(Some(&t.started_at)), ms_of(t.finished_at.as_deref()))
            else {
                continue;
            };
            let mut attrs = vec![
                s("gen_ai.operation.name", "execute_tool"),
                s("gen_ai.tool.name", t.tool.clone()),
                s("gen_ai.tool.call.id", t.tool_call_id.clone()),
                s("gen_ai.tool.type", "function"),
                s(
                    "boo.tool.outcome",
                    t.outcome.map(|o| o.as_str()).unwrap_or("open"),
                ),
                i("boo.turn", t.turn as u64),
            ];
            let args = t.input.to_string();
            attrs.push(s(
                "gen_ai.tool.call.arguments",
                args.chars().take(1024).collect::<String>(),
            ));
            let error = match t.outcome {
                Some(TraceOutcome::Error) | Some(TraceOutcome::Denied) => {
                    Some(t.error.clone().unwrap_or_else(|| {
                        format!("{} {}", t.tool, t.outcome.map(|o| o.as_str()).unwrap_or(""))
                    }))
                }
                _ => None,
            };
            out.push(span(
                &trace,
                &span_id(run_id, &format!("tool/{}", t.trace_id)),
                Some(&step_span),
                &format!("execute_tool {}", t.tool),
                KIND_INTERNAL,
                t_start,
                t_end,
                attrs,
                error.as_deref(),
            ));
        }
    }
    out
}

/// An OTLP `ExportTraceServiceRequest` (JSON encoding) holding `spans`.
pub fn request(spans: &[&Value], service_name: &str) -> Value {
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                s("service.name", service_name),
                s("service.version", env!("CARGO_PKG_VERSION")),
            ] },
            "scopeSpans": [{
                "scope": { "name": "boo", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    })
}

/// `boo export <runId> --format otlp-json`.
pub async fn cli_export(config: &crate::config::Config, run_id: &str) -> i32 {
    let store = match crate::app::open_store(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("boo: {e}");
            return 1;
        }
    };
    match load(&store, run_id).await {
        Ok(Some(d)) => {
            let all = spans(&d);
            let refs: Vec<&Value> = all.iter().collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&request(&refs, &config.otel.service_name))
                    .unwrap_or_default()
            );
            0
        }
        Ok(None) => {
            eprintln!("boo: unknown run {run_id}: `boo runs --all` lists them");
            1
        }
        Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}

/// POSTs one request to `url`; the error says what to check.
fn post(config: &OtelConfig, url: &str, body: &[u8]) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(config.timeout))
        .build()
        .into();
    let mut req = agent.post(url).header("Content-Type", "application/json");
    for (k, v) in &config.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    req.send(body).map(|_| ()).map_err(|e| {
        format!(
            "cannot send spans to {url}: {e} — check OTEL_EXPORTER_OTLP_ENDPOINT (an OTLP/HTTP receiver that takes JSON, e.g. http://127.0.0.1:4318)"
        )
    })
}

/// The transport boo's outbox delivers to: the front end's own transport, plus live
/// export of spans as steps and runs end when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub struct Tee<T: Transport> {
    inner: T,
    export: Option<(OtelConfig, String, Store)>,
    /// run id → span ids already sent.
    sent: HashMap<String, HashSet<String>>,
}

impl<T: Transport> Tee<T> {
    pub fn new(inner: T, store: Store, config: &OtelConfig) -> Self {
        Tee {
            inner,
            export: config
                .traces_url
                .clone()
                .map(|url| (config.clone(), url, store)),
            sent: HashMap::new(),
        }
    }

    /// Sends the finished spans of `run_id` not sent yet.
    async fn export(&mut self, run_id: &str, run_ended: bool) {
        let Some((config, url, store)) = &self.export else {
            return;
        };
        // The terminal update may be delivered a moment before the run row says so.
        let mut data = None;
        for _ in 0..20 {
            match load(store, run_id).await {
                Ok(Some(d)) => {
                    let done = d.run.run.summary.status != RunStatus::Running;
                    data = Some(d);
                    if done || !run_ended {
                        break;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("otel: cannot read run {run_id}: {e}");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Some(data) = data else {
            return;
        };
        let sent = self.sent.entry(run_id.to_string()).or_default();
        let all = spans(&data);
        let fresh: Vec<&Value> = all
            .iter()
            .filter(|j| !sent.contains(j["spanId"].as_str().unwrap_or_default()))
            .collect();
        if fresh.is_empty() {
            return;
        }
        let ids: Vec<String> = fresh
            .iter()
            .filter_map(|j| j["spanId"].as_str().map(String::from))
            .collect();
        let body = serde_json::to_vec(&request(&fresh, &config.service_name)).unwrap_or_default();
        let (config, url) = (config.clone(), url.clone());
        let n = ids.len();
        let result = tokio::task::spawn_blocking(move || post(&config, &url, &body))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match result {
            Ok(()) => {
                tracing::debug!("otel: sent {n} span(s) of run {run_id}");
                sent.extend(ids);
            }
            Err(e) => tracing::warn!("otel: {e}"),
        }
        if run_ended {
            self.sent.remove(run_id);
        }
    }
}

impl<T: Transport> Transport for Tee<T> {
    fn deliver(&mut self, msg: Out) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let trigger = match (&self.export, &msg) {
                (Some(_), Out::StepUpdated(u)) => {
                    let run_ended = u.run_status.is_some_and(|r| r != RunStatus::Running);
                    let step_ended = u
                        .status
                        .is_some_and(|s| !matches!(s, StepStatus::Pending | StepStatus::Running));
                    (run_ended || step_ended).then(|| (u.run_id.clone(), run_ended))
                }
                _ => None,
            };
            self.inner.deliver(msg).await;
            if let Some((run_id, run_ended)) = trigger {
                self.export(&run_id, run_ended).await;
            }
        })
    }
}

#[cfg(test)]
mod tests;
