//! `boo calls <runId>`: a run's model calls as text — per step its turns with a bar of
//! the prompt (cached / uncached), time to first token, tokens per second and the miss
//! reason, then the run's totals.

use super::record::ModelCall;
use std::fmt::Write;

const BAR: usize = 24;

/// The bar of one call: `#` reused from the cache, `.` computed; `?` when the
/// server reported no cache fields.
fn bar(c: &ModelCall) -> String {
    match (c.prompt_tokens, c.cached_tokens) {
        (Some(p), Some(k)) if p > 0 => {
            let full = ((k.min(p) as f64 / p as f64) * BAR as f64).round() as usize;
            format!("{}{}", "#".repeat(full), ".".repeat(BAR - full))
        }
        _ => "?".repeat(BAR),
    }
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied()
}

fn opt<T: std::fmt::Display>(v: Option<T>, unit: &str) -> String {
    v.map(|v| format!("{v}{unit}"))
        .unwrap_or_else(|| "-".into())
}

/// The whole text for `calls` (in the order stored: by step as first seen).
pub fn render(calls: &[ModelCall]) -> String {
    let mut out = String::new();
    if calls.is_empty() {
        out.push_str("no model calls recorded for this run (calls are recorded when agents run through boo's model proxy)\n");
        return out;
    }
    let mut steps: Vec<&str> = Vec::new();
    for c in calls {
        if !steps.contains(&c.step_id.as_str()) {
            steps.push(&c.step_id);
        }
    }
    for step in steps {
        let _ = writeln!(out, "step {step}");
        for c in calls.iter().filter(|c| c.step_id == step) {
            let _ = writeln!(
                out,
                "  turn {:>2} [{}] prompt {} cached {} ttft {} {} status {}{}",
                c.turn,
                bar(c),
                opt(c.prompt_tokens, ""),
                opt(c.cached_tokens, ""),
                opt(c.ttft_ms, "ms"),
                opt(c.tokens_per_second.map(|t| format!("{t:.1}")), " tok/s"),
                opt(c.status, ""),
                c.miss_reason
                    .as_deref()
                    .map(|r| format!("\n           miss: {r}"))
                    .unwrap_or_default(),
            );
            if let Some(e) = &c.error {
                let _ = writeln!(out, "           error: {e}");
            }
        }
    }
    let prompt: u64 = calls.iter().filter_map(|c| c.prompt_tokens).sum();
    let cached: u64 = calls.iter().filter_map(|c| c.cached_tokens).sum();
    let mut ttft: Vec<u64> = calls.iter().filter_map(|c| c.ttft_ms).collect();
    ttft.sort_unstable();
    let _ = writeln!(
        out,
        "total {} calls · prompt tokens {} computed, {} reused · hit rate {} · ttft p50 {} p90 {}",
        calls.len(),
        prompt.saturating_sub(cached),
        cached,
        if prompt > 0 {
            format!("{:.0}%", cached as f64 * 100.0 / prompt as f64)
        } else {
            "-".into()
        },
        opt(percentile(&ttft, 0.5), "ms"),
        opt(percentile(&ttft, 0.9), "ms"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(step: &str, turn: u64, prompt: u64, cached: Option<u64>, ttft: u64) -> ModelCall {
        ModelCall {
            call_id: format!("{step}-{turn}"),
            run_id: "r".into(),
            step_id: step.into(),
            chat_id: step.into(),
            turn,
            started_at: "t".into(),
            finished_at: "t".into(),
            ttft_ms: Some(ttft),
            duration_ms: 100,
            status: Some(200),
            error: None,
            prompt_tokens: Some(prompt),
            cached_tokens: cached,
            completion_tokens: Some(10),
            tokens_per_second: Some(50.0),
            cache_dialect: None,
            request_bytes: 4000,
            expected_cached_tokens: 0,
            miss_reason: cached
                .is_none()
                .then(|| "the server reports no cache fields".into()),
            segments: serde_json::json!([]),
        }
    }

    #[test]
    fn steps_turns_bars_and_totals() {
        let text = render(&[
            call("a", 1, 1000, Some(0), 100),
            call("a", 2, 1000, Some(500), 30),
            call("b", 1, 1000, None, 50),
        ]);
        assert!(
            text.contains("step a\n  turn  1 [........................]"),
            "{text}"
        );
        assert!(text.contains("[############............]"), "{text}");
        assert!(
            text.contains("step b\n  turn  1 [????????????????????????]"),
            "{text}"
        );
        assert!(
            text.contains("miss: the server reports no cache fields"),
            "{text}"
        );
        assert!(
            text.contains("total 3 calls · prompt tokens 2500 computed, 500 reused · hit rate 17% · ttft p50 50ms p90 100ms"),
            "{text}"
        );
        assert!(render(&[]).starts_with("no model calls"));
    }
}
