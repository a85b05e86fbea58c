use super::*;
use std::io::{BufRead, Write};
use std::time::Duration;

const REAL_KEY: &str = "real-upstream-key-123";

/// A scripted upstream on a thread: answers one SSE stream of `chunks` (each written
/// and flushed apart, `gap` between them) and records the Authorization it saw.
fn upstream(
    chunks: Vec<String>,
    gap: Duration,
) -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for sock in l.incoming() {
            let Ok(mut sock) = sock else { return };
            let mut rd = std::io::BufReader::new(sock.try_clone().unwrap());
            let mut line = String::new();
            rd.read_line(&mut line).unwrap();
            let target = line.split(' ').nth(1).unwrap_or("").to_string();
            let mut auth = String::new();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                rd.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "authorization" => auth = v.trim().to_string(),
                    "content-length" => len = v.trim().parse().unwrap(),
                    _ => {}
                }
            }
            let mut body = vec![0; len];
            std::io::Read::read_exact(&mut rd, &mut body).unwrap();
            let _ = tx.send((target, auth));
            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
            for c in &chunks {
                write!(sock, "{:x}\r\n{c}\r\n", c.len()).unwrap();
                sock.flush().unwrap();
                std::thread::sleep(gap);
            }
            sock.write_all(b"0\r\n\r\n").unwrap();
        }
    });
    (format!("http://127.0.0.1:{port}/v1"), rx)
}

/// Sends one POST through `base` with `key`; returns (status line, body).
async fn post(base: &str, key: &str, path: &str) -> (String, String) {
    let url = format!("{base}{path}");
    let key = key.to_string();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let r = agent
            .post(&url)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .send(r#"{"model":"m","stream":true,"messages":[]}"#)
            .unwrap();
        let status = r.status().as_u16().to_string();
        let body = r.into_body().read_to_string().unwrap();
        (status, body)
    })
    .await
    .unwrap()
}

/// The next finished call on `rx` (start events skipped).
async fn finished(rx: &mut mpsc::UnboundedReceiver<CallEvent>) -> CallRecord {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a call event in time")
            .expect("the sink is open");
        if let CallEvent::Finished(r) = ev {
            return r;
        }
    }
}

fn sse(i: usize) -> String {
    format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"c{i}\"}}}}]}}\n\n")
}

#[tokio::test]
async fn forwards_with_the_real_key_and_keeps_chunk_order() {
    let mut chunks: Vec<String> = (0..50).map(sse).collect();
    chunks.push(
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":50,\"prompt_cache_hit_tokens\":8,\"prompt_cache_miss_tokens\":4}}\n\ndata: [DONE]\n\n".into(),
    );
    let (base, seen) = upstream(chunks.clone(), Duration::from_millis(1));
    let proxy = Proxy::start(Upstream {
        base_url: base,
        api_key: Some(REAL_KEY.into()),
    })
    .await
    .unwrap();
    let (sink, mut calls) = mpsc::unbounded_channel();
    proxy.set_sink(sink);
    let grant = proxy.grant().unwrap();
    assert_ne!(grant.token(), REAL_KEY);
    let _active = grant.begin(Attribution {
        run_id: "r".into(),
        step_id: "s".into(),
        chat_id: "c".into(),
    });
    let (status, body) = post(grant.base_url(), grant.token(), "/chat/completions").await;
    assert_eq!(status, "200");
    assert_eq!(body, chunks.concat(), "every chunk, in order");
    let (target, auth) = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(target, "/v1/chat/completions");
    assert_eq!(auth, format!("Bearer {REAL_KEY}"));
    let started = calls.recv().await.unwrap();
    assert!(matches!(started, CallEvent::Started { .. }));
    let call = finished(&mut calls).await;
    assert_eq!(call.owner.unwrap().step_id, "s");
    assert_eq!(call.status, Some(200));
    assert_eq!(call.counts.cached, Some(8));
    assert_eq!(call.counts.prompt, Some(12));
    assert!(call.ttft_ms.is_some());
    proxy.stop();
}

#[tokio::test]
async fn unknown_wrong_or_revoked_tokens_are_refused() {
    let (base, seen) = upstream(vec![sse(0)], Duration::ZERO);
    let proxy = Proxy::start(Upstream {
        base_url: base,
        api_key: Some(REAL_KEY.into()),
    })
    .await
    .unwrap();
    let a = proxy.grant().unwrap();
    let b = proxy.grant().unwrap();
    let (s, body) = post(a.base_url(), "not-a-token", "/chat/completions").await;
    assert_eq!(s, "401");
    assert!(body.contains("refused"), "{body}");
    // b's token on a's URL.
    let (s, _) = post(a.base_url(), b.token(), "/chat/completions").await;
    assert_eq!(s, "401");
    // The real key is no token either.
    let (s, _) = post(a.base_url(), REAL_KEY, "/chat/completions").await;
    assert_eq!(s, "401");
    let (url, token) = (a.base_url().to_string(), a.token().to_string());
    drop(a);
    let (s, _) = post(&url, &token, "/chat/completions").await;
    assert_eq!(s, "401", "a dropped grant is revoked");
    assert!(seen.try_recv().is_err(), "nothing reached the upstream");
    let (s, _) = post(b.base_url(), b.token(), "/chat/completions").await;
    assert_eq!(s, "200");
    proxy.stop();
}

#[tokio::test]
async fn overlapping_prompts_are_not_guessed() {
    let (base, _seen) = upstream(vec![sse(0)], Duration::ZERO);
    let proxy = Proxy::start(Upstream {
        base_url: base,
        api_key: None,
    })
    .await
    .unwrap();
    let (sink, mut calls) = mpsc::unbounded_channel();
    proxy.set_sink(sink);
    let g = proxy.grant().unwrap();
    let who = |s: &str| Attribution {
        run_id: "r".into(),
        step_id: s.into(),
        chat_id: s.into(),
    };
    let one = g.begin(who("s1"));
    let two = g.begin(who("s2"));
    post(g.base_url(), g.token(), "/chat/completions").await;
    let c = finished(&mut calls).await;
    assert_eq!(c.owner, None);
    drop(one);
    post(g.base_url(), g.token(), "/chat/completions").await;
    let c = finished(&mut calls).await;
    assert_eq!(c.owner.unwrap().step_id, "s2");
    drop(two);
    proxy.stop();
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_naming_the_endpoint() {
    let proxy = Proxy::start(Upstream {
        base_url: "http://127.0.0.1:9/v1".into(),
        api_key: Some(REAL_KEY.into()),
    })
    .await
    .unwrap();
    let g = proxy.grant().unwrap();
    let (s, body) = post(g.base_url(), g.token(), "/models").await;
    assert_eq!(s, "502");
    assert!(body.contains("127.0.0.1:9"), "{body}");
    assert!(!body.contains(REAL_KEY));
    proxy.stop();
}

/// The scripted model server (tests/fixtures/mock-openai.py) reporting the cached
/// count in `dialect`; stopped on drop.
struct Mock {
    child: std::process::Child,
    base: String,
}

impl Mock {
    fn start(dialect: &str) -> Mock {
        Mock::with(&["--usage", "1000,20,600", "--usage-dialect", dialect])
    }

    /// Reporting what a prefix cache would reuse (`--cache prefix`).
    fn prefix_cache() -> Mock {
        Mock::with(&["--cache", "prefix"])
    }

    fn with(args: &[&str]) -> Mock {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mock-openai.py");
        let mut child = std::process::Command::new("python3")
            .args([script, "--port", "0", "--max-seconds", "60"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs the mock model server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .expect("PORT line")
            .to_string();
        Mock {
            child,
            base: format!("http://127.0.0.1:{port}/v1"),
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chat(base: &str, key: &str, system: &str) -> (String, String) {
    let url = format!("{base}/chat/completions");
    let key = key.to_string();
    let body = serde_json::json!({"model": "m", "stream": true, "messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": "Say hello."}]})
    .to_string();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let r = agent
            .post(&url)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .send(body)
            .unwrap();
        (
            r.status().as_u16().to_string(),
            r.into_body().read_to_string().unwrap(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn every_usage_dialect_of_the_mock_server_yields_its_cached_count() {
    for (dialect, want) in [
        ("openai", Some(600)),
        ("toplevel", Some(600)),
        ("deepseek", Some(600)),
        ("llamacpp", Some(600)),
        ("sglang-meta", Some(600)),
        ("none", None),
    ] {
        let mock = Mock::start(dialect);
        let proxy = Proxy::start(Upstream {
            base_url: mock.base.clone(),
            api_key: Some(REAL_KEY.into()),
        })
        .await
        .unwrap();
        let (sink, mut calls) = mpsc::unbounded_channel();
        proxy.set_sink(sink);
        let g = proxy.grant().unwrap();
        let (status, body) = chat(g.base_url(), g.token(), "You review code.").await;
        assert_eq!(status, "200", "{dialect}: {body}");
        assert!(body.contains("data: [DONE]"), "{dialect}: {body}");
        let c = finished(&mut calls).await;
        assert_eq!(c.counts.cached, want, "{dialect}");
        assert_eq!(c.counts.prompt, Some(1000), "{dialect}");
        assert_eq!(c.counts.completion, Some(20), "{dialect}");
        proxy.stop();
    }
}

#[tokio::test]
async fn a_changed_system_prompt_is_named_as_the_miss() {
    // The server reuses all it can: the miss is where the prompt changed, not the server.
    let mock = Mock::prefix_cache();
    let proxy = Proxy::start(Upstream {
        base_url: mock.base.clone(),
        api_key: None,
    })
    .await
    .unwrap();
    let (sink, mut calls) = mpsc::unbounded_channel();
    proxy.set_sink(sink);
    let g = proxy.grant().unwrap();
    let _a = g.begin(Attribution {
        run_id: "r".into(),
        step_id: "s".into(),
        chat_id: "c".into(),
    });
    let head = "You are a careful reviewer of this repository. ".repeat(30);
    let mut memory = shape::PrefixMemory::default();
    let mut reasons = Vec::new();
    for path in ["/home/a/.qwen", "/home/b/.qwen"] {
        chat(
            g.base_url(),
            g.token(),
            &format!("{head} Your notes live in {path}."),
        )
        .await;
        let rec = finished(&mut calls).await;
        let call = record::model_call(&rec, &mut memory).expect("attributed");
        reasons.push(call.miss_reason.unwrap_or_default());
        let segs = call.segments.as_array().unwrap();
        let sum: u64 = segs.iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
        assert!(sum > 0 && sum <= call.request_bytes);
    }
    assert_eq!(reasons[0], "first request of this prefix");
    assert!(
        reasons[1].starts_with("system prompt changed at byte") && reasons[1].contains("b/.qwen"),
        "{reasons:?}"
    );
    proxy.stop();
}

#[tokio::test]
async fn a_chunk_reaches_the_agent_before_the_server_sends_the_next() {
    // The server sends one chunk, then waits until the client has seen it: a proxy
    // that buffered would make the client wait until the server gave up.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}/v1", l.local_addr().unwrap().port());
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let (mut sock, _) = l.accept().unwrap();
        let mut rd = std::io::BufReader::new(sock.try_clone().unwrap());
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            rd.read_line(&mut h).unwrap();
            let h = h.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        std::io::Read::read_exact(&mut rd, &mut body).unwrap();
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
        let first = sse(0);
        write!(sock, "{:x}\r\n{first}\r\n", first.len()).unwrap();
        sock.flush().unwrap();
        let next = match go_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(()) => "data: after-the-client-saw-the-first\n\n",
            Err(_) => "data: buffered\n\n",
        };
        write!(sock, "{:x}\r\n{next}\r\n0\r\n\r\n", next.len()).unwrap();
    });
    let proxy = Proxy::start(Upstream {
        base_url: base,
        api_key: None,
    })
    .await
    .unwrap();
    let g = proxy.grant().unwrap();
    let (url, key) = (
        format!("{}/chat/completions", g.base_url()),
        g.token().to_string(),
    );
    let rest = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let r = agent
            .post(&url)
            .header("authorization", format!("Bearer {key}"))
            .send("{}")
            .unwrap();
        let mut rd = std::io::BufReader::new(r.into_body().into_reader());
        let mut first = String::new();
        rd.read_line(&mut first).unwrap();
        assert!(first.contains("c0"), "{first}");
        go_tx.send(()).unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut rd, &mut rest).unwrap();
        rest
    })
    .await
    .unwrap();
    assert!(rest.contains("after-the-client-saw-the-first"), "{rest}");
    proxy.stop();
}
