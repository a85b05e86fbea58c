use super::*;
use crate::model::{Trace, TraceOutcome};

fn temp_db(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "boo-store-{tag}-{}-{}.db",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ))
}

#[test]
fn the_schema_applied_twice_is_a_no_op() {
    let path = temp_db("twice");
    let c = open_connection(&path).unwrap();
    let objects = |c: &Connection| -> Vec<String> {
        let mut s = c
            .prepare("SELECT type || ' ' || name FROM sqlite_master ORDER BY name")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let before = objects(&c);
    assert!(before.iter().any(|o| o == "table flow_runs"));
    assert!(before.iter().any(|o| o == "index flow_steps_run_status"));
    // The migration path (user_version says done) and the raw file itself.
    migrate(&c, &path).unwrap();
    c.execute_batch(SCHEMA).unwrap();
    assert_eq!(objects(&c), before);
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    drop(c);
    let c = open_connection(&path).unwrap();
    assert_eq!(objects(&c), before);
    let fk: i64 = c
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let mode: String = c
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // A newer database is refused with advice.
    c.pragma_update(None, "user_version", 99).unwrap();
    assert!(matches!(migrate(&c, &path), Err(StoreError::TooNew { .. })));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn constraints_hold() {
    let c = open_connection(&temp_db("constraints")).unwrap();
    let insert = |band: &str, status: &str, input: &str| {
        c.execute(
            "INSERT INTO flow_runs (run_id, flow, band, status, project_id, root, input, plan, created_at, finished_at)
             VALUES (lower(hex(randomblob(8))), 'f', ?1, ?2, '/r', '/r', ?3, '{}', 'now', CASE WHEN ?2 = 'running' THEN NULL ELSE 'x' END)",
            rusqlite::params![band, status, input],
        )
    };
    assert!(insert("small", "running", r#"{"question":"q"}"#).is_ok());
    assert!(insert("huge", "running", r#"{"question":"q"}"#)
        .unwrap_err()
        .to_string()
        .contains("flow_runs_band_check"));
    assert!(insert("small", "paused", r#"{"question":"q"}"#)
        .unwrap_err()
        .to_string()
        .contains("flow_runs_status_check"));
    assert!(insert("small", "running", r#"{"question":""}"#)
        .unwrap_err()
        .to_string()
        .contains("flow_runs_input_check"));
    assert!(insert("small", "running", r#"{}"#).is_err());
}

fn trace(run: &str, i: usize) -> Trace {
    Trace {
        trace_id: format!("t{i}"),
        run_id: run.into(),
        step_id: if i % 2 == 0 { "a".into() } else { "b".into() },
        chat_id: "c".into(),
        tool: "read_file".into(),
        tool_call_id: format!("call{i}"),
        turn: 1,
        input: serde_json::json!({}),
        output: None,
        output_bytes: None,
        started_at: "2026-01-01T00:00:00.000Z".into(),
        finished_at: None,
        latency_ms: None,
        outcome: Some(TraceOutcome::Ok),
        error: None,
        usage: None,
    }
}

fn seed_run(c: &Connection, run: &str, status: &str, created: &str) {
    c.execute(
        "INSERT INTO flow_runs (run_id, flow, band, status, project_id, root, input, plan, created_at, finished_at)
         VALUES (?1, 'f', 'small', ?2, '/r', '/r', '{\"question\":\"q\"}', '{}', ?3, CASE WHEN ?2 = 'running' THEN NULL ELSE ?3 END)",
        rusqlite::params![run, status, created],
    )
    .unwrap();
    c.execute(
        "INSERT INTO flow_steps (run_id, step_id, kind, agent, label, wave, position) VALUES (?1, 'a', 'agent', 'p', 'A', 1, 0)",
        [run],
    )
    .unwrap();
}

#[tokio::test]
async fn trace_pages_are_stable_while_traces_are_added() {
    let store = Store::open(&temp_db("pages")).unwrap();
    store
        .call(|c| {
            seed_run(c, "r", "running", "2026-01-01T00:00:00.000Z");
            Ok(())
        })
        .await
        .unwrap();
    for i in 0..25 {
        let t = trace("r", i);
        store
            .call(move |c| queries::insert_trace(c, &t, 0))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = 0;
    let mut added = 25;
    loop {
        let (page, next) = store
            .call(move |c| queries::list_traces(c, "r", None, cursor, 10))
            .await
            .unwrap();
        seen.extend(page.into_iter().map(|t| t.trace_id));
        // Traces keep arriving between pages (while more pages follow).
        if next.is_some() {
            for _ in 0..3 {
                if added < 40 {
                    let t = trace("r", added);
                    added += 1;
                    store
                        .call(move |c| queries::insert_trace(c, &t, 0))
                        .await
                        .unwrap();
                }
            }
        }
        match next {
            Some(n) => cursor = n,
            None => break,
        }
    }
    let expected: Vec<String> = (0..added).map(|i| format!("t{i}")).collect();
    assert_eq!(seen, expected, "no trace skipped or repeated");
    let (only_b, _) = store
        .call(|c| queries::list_traces(c, "r", Some("b"), 0, 100))
        .await
        .unwrap();
    assert!(only_b.iter().all(|t| t.step_id == "b") && !only_b.is_empty());
}

#[tokio::test]
async fn gc_removes_old_ended_runs_and_never_a_running_one() {
    let store = Store::open(&temp_db("gc")).unwrap();
    store
        .call(|c| {
            seed_run(c, "old-done", "completed", "2020-01-01T00:00:00.000Z");
            seed_run(c, "old-running", "running", "2020-01-01T00:00:00.000Z");
            seed_run(c, "new-done", "completed", "2999-01-01T00:00:00.000Z");
            queries::insert_trace(c, &trace("old-done", 1), 0)?;
            queries::insert_snapshot(c, "chat", 1, "old-done", "a", &[])?;
            Ok(())
        })
        .await
        .unwrap();
    let cutoff = crate::clock::now_ms();
    let (runs, steps, snaps, traces, _) =
        store.call(move |c| queries::gc(c, cutoff)).await.unwrap();
    assert_eq!((runs, steps, snaps, traces), (1, 1, 1, 1));
    let left: Vec<String> = store
        .call(|c| {
            let mut s = c.prepare("SELECT run_id FROM flow_runs ORDER BY run_id")?;
            let v = s
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(v)
        })
        .await
        .unwrap();
    assert_eq!(
        left,
        vec!["new-done".to_string(), "old-running".to_string()]
    );
    let orphans: i64 = store
        .call(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM flow_steps WHERE run_id = 'old-done'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(orphans, 0, "steps cascade");
}

#[tokio::test]
async fn a_write_is_committed_before_its_caller_hears_back() {
    let path = temp_db("commit");
    let store = Store::open(&path).unwrap();
    let other = open_connection(&path).unwrap();
    for i in 0..50 {
        let run = format!("r{i}");
        let r2 = run.clone();
        // Queue some writes around it so they share a batch.
        store.send("noise", |c| queries::register_owner(c, "o", 1, None, "h"));
        store
            .call(move |c| {
                seed_run(c, &r2, "completed", "2026-01-01T00:00:00.000Z");
                Ok(())
            })
            .await
            .unwrap();
        let n: i64 = other
            .query_row(
                "SELECT COUNT(*) FROM flow_runs WHERE run_id = ?1",
                [&run],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            n, 1,
            "another connection sees the write once call() returned"
        );
    }
}

#[test]
fn a_version_1_database_is_upgraded_with_every_row() {
    let path = temp_db("v1");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(include_str!("../../tests/fixtures/schema-v1.sql"))
            .unwrap();
        c.execute_batch(
            "INSERT INTO flow_runs (run_id, flow, band, project_id, root, input, plan, created_at)
               VALUES ('r1', 'code-review', 'small', '/p', '/p', '{\"question\":\"q\"}', '{}', '2026-01-01T00:00:00.000Z');
             INSERT INTO flow_steps (run_id, step_id, kind, agent, label, wave, position, chat_id, status, attempt, output)
               VALUES ('r1', 'security', 'agent', 'adversarial-security-analyst', 'Security', 2, 1, 'c1', 'completed', 1, 'full output');",
        )
        .unwrap();
    }
    let c = open_connection(&path).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let steps = queries::get_steps(&c, "r1").unwrap();
    assert_eq!(steps.len(), 1);
    let s = &steps[0].step;
    assert_eq!(
        (s.step_id.as_str(), s.chat_id.as_deref(), s.attempt),
        ("security", Some("c1"), 1)
    );
    assert_eq!(s.output.as_deref(), Some("full output"));
    assert_eq!((s.parent_step_id.as_ref(), s.phase.as_ref()), (None, None));
    // The new shape holds: a script step at wave 0, a runtime step; bad values refused.
    c.execute(
        "INSERT INTO flow_steps (run_id, step_id, kind, agent, label, wave, position, origin, parent_step_id)
         VALUES ('r1', 'script', 'script', 'wf', 'Workflow', 0, 2, 'runtime', 'security')",
        [],
    )
    .unwrap();
    let bad = c.execute(
        "INSERT INTO flow_steps (run_id, step_id, kind, agent, label, wave, position, origin)
         VALUES ('r1', 'x', 'agent', 'a', 'X', 1, 3, 'elsewhere')",
        [],
    );
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("flow_steps_origin_check"));
    // The index came back with the new table; the old table is gone.
    let names: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE name LIKE 'flow_steps%' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(names, vec!["flow_steps", "flow_steps_run_status"]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn one_unreadable_run_never_breaks_listing_the_others() {
    let c = open_connection(&temp_db("unreadable")).unwrap();
    let plan = serde_json::to_string(&crate::engine::Plan {
        flow: "f".into(),
        band: crate::model::Band::Small,
        steps: vec![],
        answer: vec![],
    })
    .unwrap();
    for (id, plan) in [("a-good", plan.as_str()), ("b-bad", r#"{"not": "a plan"}"#)] {
        c.execute(
            "INSERT INTO flow_runs (run_id, flow, band, project_id, root, input, plan, created_at)
             VALUES (?1, 'f', 'small', '/r', '/r', '{\"question\":\"q\"}', ?2, '2026-01-01T00:00:00.000Z')",
            rusqlite::params![id, plan],
        )
        .unwrap();
    }
    let (runs, _) = queries::list_runs(&c, Some("/r"), 10, None).unwrap();
    assert_eq!(runs.len(), 2, "both runs are listed");
    assert!(queries::get_run(&c, "a-good").unwrap().is_some());
    assert!(
        queries::get_run(&c, "b-bad").is_err(),
        "only that run fails to open"
    );
}

#[test]
fn trust_is_recorded_listed_and_revoked() {
    let path = temp_db("trust");
    let c = open_connection(&path).unwrap();
    assert!(!queries::is_trusted(&c, "/p").unwrap());
    assert!(!queries::set_trusted(&c, "/p", true, "boo trust").unwrap());
    // Trusting again keeps the first record.
    assert!(queries::set_trusted(&c, "/p", true, "an editor").unwrap());
    assert!(queries::is_trusted(&c, "/p").unwrap());
    assert!(!queries::is_trusted(&c, "/p/sub").unwrap());
    let list = queries::trusted_roots(&c).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].root.as_str(), list[0].trusted_by.as_str()),
        ("/p", "boo trust")
    );
    assert!(crate::clock::parse_ms(&list[0].trusted_at).is_some());
    assert!(queries::set_trusted(&c, "/p", false, "boo trust").unwrap());
    assert!(!queries::is_trusted(&c, "/p").unwrap());
    assert!(queries::trusted_roots(&c).unwrap().is_empty());
    drop(c);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_version_2_database_gains_the_trust_table() {
    let path = temp_db("v2");
    {
        let c = open_connection(&path).unwrap();
        c.execute_batch("DROP TABLE trusted_roots; PRAGMA user_version = 2;")
            .unwrap();
    }
    let c = open_connection(&path).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    queries::set_trusted(&c, "/p", true, "boo trust").unwrap();
    assert!(queries::is_trusted(&c, "/p").unwrap());
    drop(c);
    let _ = std::fs::remove_file(&path);
}

fn image(name: &str, data: &[u8]) -> crate::attach::Attachment {
    crate::attach::intake(
        &[crate::attach::AttachmentInput::Inline {
            name: name.into(),
            mime_type: None,
            data: crate::attach::base64_encode(data),
        }],
        std::path::Path::new("/"),
        true,
        None,
    )
    .unwrap()
    .remove(0)
}

#[tokio::test]
async fn attachments_are_stored_once_and_go_with_their_last_run() {
    let png = include_bytes!("../../tests/fixtures/images/red-3x2.png");
    let other = include_bytes!("../../tests/fixtures/images/red-4x4.png");
    let store = Store::open(&temp_db("attachments")).unwrap();
    let (a, b) = (image("shot.png", png), image("same.png", png));
    let c2 = image("other.png", other);
    store
        .call(move |c| {
            seed_run(c, "old-1", "completed", "2020-01-01T00:00:00.000Z");
            seed_run(c, "old-2", "completed", "2020-01-01T00:00:00.000Z");
            seed_run(c, "new", "completed", "2999-01-01T00:00:00.000Z");
            queries::insert_run_attachments(c, "old-1", &[a.clone(), c2])?;
            queries::insert_run_attachments(c, "old-2", &[a])?;
            queries::insert_run_attachments(c, "new", &[b])?;
            Ok(())
        })
        .await
        .unwrap();
    let count = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .call(|c| {
                    Ok(c.query_row("SELECT COUNT(*) FROM attachments", [], |r| {
                        r.get::<_, i64>(0)
                    })?)
                })
                .await
                .unwrap()
        }
    };
    // Three runs attach the same PNG: it is stored once.
    assert_eq!(count(&store).await, 2);
    let listed = store
        .call(|c| queries::run_attachments(c, "old-1"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].name, "shot.png");
    assert_eq!(listed[0].mime_type, "image/png");
    assert_eq!(
        (listed[0].width, listed[0].height, listed[0].bytes),
        (3, 2, png.len() as u64)
    );
    assert_eq!(listed[1].name, "other.png");
    let id = listed[0].attachment_id.clone();
    let (info, data) = store
        .call(move |c| queries::get_attachment(c, &id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (info.name.as_str(), data.as_slice()),
        ("shot.png", &png[..])
    );
    let new = store
        .call(|c| queries::run_attachments(c, "new"))
        .await
        .unwrap();
    assert_eq!(
        (new[0].name.as_str(), &new[0].sha256),
        ("same.png", &listed[0].sha256)
    );

    // gc removes the two old runs: the PNG stays for "new", the other image goes.
    let cutoff = crate::clock::now_ms();
    let (runs, _, _, _, images) = store.call(move |c| queries::gc(c, cutoff)).await.unwrap();
    assert_eq!((runs, images), (2, 1));
    assert_eq!(count(&store).await, 1);
    let gone = listed[1].attachment_id.clone();
    assert!(store
        .call(move |c| queries::get_attachment(c, &gone))
        .await
        .unwrap()
        .is_none());
    // And with the last run, the last image.
    store
        .call(|c| {
            c.execute(
                "UPDATE flow_runs SET created_at = '2020-01-01T00:00:00.000Z' WHERE run_id = 'new'",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let (_, _, _, _, images) = store.call(move |c| queries::gc(c, cutoff)).await.unwrap();
    assert_eq!(images, 1);
    assert_eq!(count(&store).await, 0);
}

#[test]
fn a_version_4_database_gains_the_attachment_and_model_calls_tables() {
    let path = temp_db("v4");
    {
        let c = open_connection(&path).unwrap();
        c.execute_batch(
            "DROP TABLE run_attachments; DROP TABLE attachments; DROP TABLE model_calls; PRAGMA user_version = 4;",
        )
        .unwrap();
        seed_run(&c, "kept", "completed", "2020-01-01T00:00:00.000Z");
    }
    let c = open_connection(&path).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let png = include_bytes!("../../tests/fixtures/images/red-3x2.png");
    queries::insert_run_attachments(&c, "kept", &[image("a.png", png)]).unwrap();
    assert_eq!(queries::run_attachments(&c, "kept").unwrap().len(), 1);
    let (calls, next) = queries::list_model_calls(&c, "no-run", None, 0, 10).unwrap();
    assert!(calls.is_empty() && next.is_none());
    drop(c);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn turn_usage_takes_the_proxy_figures_qwen_reported_as_zero_and_gc_removes_calls() {
    let path = temp_db("proxyturns");
    let c = open_connection(&path).unwrap();
    seed_run(&c, "r", "completed", "2026-01-01T00:00:00.000Z");
    c.execute("UPDATE flow_steps SET chat_id = 'c' WHERE run_id = 'r'", [])
        .unwrap();
    let qwen = crate::model::Usage {
        input_tokens: 1000,
        output_tokens: 20,
        cache_read_tokens: 0, // qwen's reading of a llama.cpp answer
        total_tokens: 1020,
    };
    queries::insert_turn_usage(&c, "r", "a", "c", 1, &qwen).unwrap();
    queries::insert_turn_usage(&c, "r", "a", "c", 2, &qwen).unwrap();
    let call = |id: &str, turn: u64, cached: u64, status: u16| crate::proxy::record::ModelCall {
        call_id: id.into(),
        run_id: "r".into(),
        step_id: "a".into(),
        chat_id: "c".into(),
        turn,
        started_at: "2026-01-01T00:00:00.000Z".into(),
        finished_at: "2026-01-01T00:00:01.000Z".into(),
        ttft_ms: Some(10),
        duration_ms: 100,
        status: Some(status),
        error: None,
        prompt_tokens: Some(1000),
        cached_tokens: Some(cached),
        completion_tokens: Some(20),
        tokens_per_second: Some(10.0),
        cache_dialect: Some("llamaCpp".into()),
        request_bytes: 4000,
        expected_cached_tokens: 900,
        miss_reason: None,
        segments: serde_json::json!([]),
    };
    queries::insert_model_call(&c, &call("x1", 1, 600, 200)).unwrap();
    // A failed call of turn 2 does not count.
    queries::insert_model_call(&c, &call("x2", 2, 700, 500)).unwrap();
    let turns = queries::turn_usages(&c, "r").unwrap();
    assert_eq!(turns[0].2.cache_read_tokens, 600);
    assert_eq!(turns[0].2.input_tokens, 1000);
    assert_eq!(turns[1].2.cache_read_tokens, 0);
    let (calls, _) = queries::list_model_calls(&c, "r", Some("a"), 0, 10).unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], call("x1", 1, 600, 200));
    queries::gc(&c, i64::MAX / 4).unwrap();
    let left: i64 = c
        .query_row("SELECT COUNT(*) FROM model_calls", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    drop(c);
    let _ = std::fs::remove_file(&path);
}
