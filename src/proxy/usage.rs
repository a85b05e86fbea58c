//! Token counts from a model server's answer, in every usage dialect boo knows.
//!
//! Pure: a JSON value in, counts out. The dialects (see docs/cache-shape.md):
//!
//! | dialect | prompt | cached | completion |
//! | --- | --- | --- | --- |
//! | OpenAI | `usage.prompt_tokens` | `usage.prompt_tokens_details.cached_tokens` | `usage.completion_tokens` |
//! | top-level cached (vLLM, some gateways) | `usage.prompt_tokens` | `usage.cached_tokens` | `usage.completion_tokens` |
//! | DeepSeek | `usage.prompt_tokens` (or hit + miss) | `usage.prompt_cache_hit_tokens` | `usage.completion_tokens` |
//! | llama.cpp | `timings.prompt_n + timings.cache_n` | `timings.cache_n` | `timings.predicted_n` |
//! | SGLang | `usage.prompt_tokens` | `usage.prompt_tokens_details.cached_tokens` or `meta_info.cached_tokens` | `usage.completion_tokens` |
//! | Anthropic-style gateways | `usage.input_tokens` | `usage.cache_read_input_tokens` | `usage.output_tokens` |

use serde_json::Value;

/// Which dialect the cached count came from (`None`: the answer carries no cache field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CacheDialect {
    OpenAi,
    TopLevel,
    DeepSeek,
    LlamaCpp,
    SgLang,
    Anthropic,
}

/// What one answer (or one SSE chunk) says about tokens. Absent fields stay `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub prompt: Option<u64>,
    pub completion: Option<u64>,
    pub cached: Option<u64>,
    pub dialect: Option<CacheDialect>,
}

impl Counts {
    /// Later chunks win field by field (a stream's usage comes in its last chunk, but
    /// llama.cpp puts `timings` on a chunk of its own).
    pub fn merge(&mut self, later: Counts) {
        if later.prompt.is_some() {
            self.prompt = later.prompt;
        }
        if later.completion.is_some() {
            self.completion = later.completion;
        }
        if later.cached.is_some() {
            self.cached = later.cached;
            self.dialect = later.dialect;
        }
    }
}

fn num(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_u64()
        .or_else(|| cur.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Reads the counts of one JSON answer or stream chunk.
pub fn parse(v: &Value) -> Counts {
    let mut c = Counts::default();
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        c.prompt = num(u, &["prompt_tokens"]).or_else(|| num(u, &["input_tokens"]));
        c.completion = num(u, &["completion_tokens"]).or_else(|| num(u, &["output_tokens"]));
        let cached = [
            (
                &["prompt_tokens_details", "cached_tokens"][..],
                CacheDialect::OpenAi,
            ),
            (&["cached_tokens"][..], CacheDialect::TopLevel),
            (&["prompt_cache_hit_tokens"][..], CacheDialect::DeepSeek),
            (&["cache_read_input_tokens"][..], CacheDialect::Anthropic),
        ];
        for (path, dialect) in cached {
            if let Some(n) = num(u, path) {
                c.cached = Some(n);
                c.dialect = Some(dialect);
                break;
            }
        }
        if c.prompt.is_none() {
            if let (Some(hit), Some(miss)) = (
                num(u, &["prompt_cache_hit_tokens"]),
                num(u, &["prompt_cache_miss_tokens"]),
            ) {
                c.prompt = Some(hit + miss);
            }
        }
    }
    if c.cached.is_none() {
        if let Some(n) = num(v, &["meta_info", "cached_tokens"]) {
            c.cached = Some(n);
            c.dialect = Some(CacheDialect::SgLang);
        }
    }
    if let Some(t) = v.get("timings").filter(|t| t.is_object()) {
        let cache_n = num(t, &["cache_n"]);
        let prompt_n = num(t, &["prompt_n"]);
        if let Some(n) = cache_n {
            if c.cached.is_none() {
                c.cached = Some(n);
                c.dialect = Some(CacheDialect::LlamaCpp);
            }
        }
        if c.prompt.is_none() {
            if let Some(p) = prompt_n {
                // llama.cpp's prompt_n counts only the tokens it evaluated.
                c.prompt = Some(p + cache_n.unwrap_or(0));
            }
        }
        if c.completion.is_none() {
            c.completion = num(t, &["predicted_n"]);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_dialect_reads_its_cached_count() {
        use CacheDialect::*;
        let cases: Vec<(&str, Value, Counts)> = vec![
            (
                "openai",
                json!({"usage": {"prompt_tokens": 100, "completion_tokens": 7,
                    "prompt_tokens_details": {"cached_tokens": 64}}}),
                Counts {
                    prompt: Some(100),
                    completion: Some(7),
                    cached: Some(64),
                    dialect: Some(OpenAi),
                },
            ),
            (
                "top-level",
                json!({"usage": {"prompt_tokens": 100, "completion_tokens": 7, "cached_tokens": 32}}),
                Counts {
                    prompt: Some(100),
                    completion: Some(7),
                    cached: Some(32),
                    dialect: Some(TopLevel),
                },
            ),
            (
                "deepseek",
                json!({"usage": {"prompt_tokens": 100, "completion_tokens": 7,
                    "prompt_cache_hit_tokens": 80, "prompt_cache_miss_tokens": 20}}),
                Counts {
                    prompt: Some(100),
                    completion: Some(7),
                    cached: Some(80),
                    dialect: Some(DeepSeek),
                },
            ),
            (
                "deepseek without prompt_tokens",
                json!({"usage": {"completion_tokens": 7,
                    "prompt_cache_hit_tokens": 80, "prompt_cache_miss_tokens": 20}}),
                Counts {
                    prompt: Some(100),
                    completion: Some(7),
                    cached: Some(80),
                    dialect: Some(DeepSeek),
                },
            ),
            (
                "llama.cpp timings only",
                json!({"timings": {"cache_n": 90, "prompt_n": 10, "predicted_n": 5}}),
                Counts {
                    prompt: Some(100),
                    completion: Some(5),
                    cached: Some(90),
                    dialect: Some(LlamaCpp),
                },
            ),
            (
                "llama.cpp with usage",
                json!({"usage": {"prompt_tokens": 100, "completion_tokens": 5},
                    "timings": {"cache_n": 90, "prompt_n": 10}}),
                Counts {
                    prompt: Some(100),
                    completion: Some(5),
                    cached: Some(90),
                    dialect: Some(LlamaCpp),
                },
            ),
            (
                "sglang meta_info",
                json!({"usage": {"prompt_tokens": 100, "completion_tokens": 5},
                    "meta_info": {"cached_tokens": 48}}),
                Counts {
                    prompt: Some(100),
                    completion: Some(5),
                    cached: Some(48),
                    dialect: Some(SgLang),
                },
            ),
            (
                "anthropic-style",
                json!({"usage": {"input_tokens": 100, "output_tokens": 5, "cache_read_input_tokens": 60}}),
                Counts {
                    prompt: Some(100),
                    completion: Some(5),
                    cached: Some(60),
                    dialect: Some(Anthropic),
                },
            ),
            (
                "no cache field",
                json!({"usage": {"prompt_tokens": 100, "completion_tokens": 5}}),
                Counts {
                    prompt: Some(100),
                    completion: Some(5),
                    cached: None,
                    dialect: None,
                },
            ),
            (
                "a content chunk",
                json!({"choices": [{"delta": {"content": "hi"}}]}),
                Counts::default(),
            ),
            ("usage null", json!({"usage": null}), Counts::default()),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse(&input), want, "{name}");
        }
    }

    #[test]
    fn later_chunks_fill_in_fields() {
        let mut c = parse(&json!({"usage": {"prompt_tokens": 10, "completion_tokens": 2}}));
        c.merge(parse(&json!({"timings": {"cache_n": 4, "prompt_n": 6}})));
        assert_eq!(c.prompt, Some(10));
        assert_eq!(c.cached, Some(4));
        assert_eq!(c.dialect, Some(CacheDialect::LlamaCpp));
    }
}
