use super::*;
use crate::model::StreamEvent;

fn transcript(name: &str) -> Vec<Parsed> {
    let path = format!(
        "{}/tests/fixtures/qwen-0.24.4/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut p = StreamParser::new();
    text.lines().flat_map(|l| p.feed(l)).collect()
}

fn streams(parsed: &[Parsed]) -> Vec<StreamEvent> {
    parsed
        .iter()
        .filter_map(|p| match p {
            Parsed::Stream(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn text_of(evs: &[StreamEvent]) -> String {
    evs.iter()
        .filter_map(|e| match e {
            StreamEvent::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn turns(parsed: &[Parsed]) -> Vec<(u32, u64)> {
    parsed
        .iter()
        .filter_map(|p| match p {
            Parsed::Turn { turn, usage } => Some((*turn, usage.input_tokens)),
            _ => None,
        })
        .collect()
}

fn result(parsed: &[Parsed]) -> ResultLine {
    parsed
        .iter()
        .find_map(|p| match p {
            Parsed::Result(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a result line")
}

#[test]
fn partial_messages_are_streamed_once() {
    let parsed = transcript("run-read-partial.jsonl");
    let evs = streams(&parsed);
    // Text is emitted from the deltas, never a second time from the assistant repeat.
    assert_eq!(
        text_of(&evs),
        "Let me look for files.FINAL: the file says: [{\"type\": \"text\", \"text\": \"hello world from the workspace\\n\"}]"
    );
    let thinking: String = evs
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Thinking { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(thinking, "I should list files first.");
    let calls: Vec<(String, String)> = evs
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCall {
                tool_call_id,
                name,
                input,
            } => Some((tool_call_id.clone(), format!("{name} {input}"))),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                "call_96eaa0cb".into(),
                "glob {\"pattern\":\"*.txt\"}".into()
            ),
            (
                "call_08c11856".into(),
                "read_file {\"file_path\":\"/workspace/hello.txt\"}".into()
            ),
        ]
    );
    let results: Vec<bool> = evs
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolResult { is_error, .. } => Some(*is_error),
            _ => None,
        })
        .collect();
    assert_eq!(results, vec![false, false]);
    assert_eq!(turns(&parsed), vec![(1, 1234), (2, 1234), (3, 1234)]);
    assert!(
        matches!(parsed[0], Parsed::Init { ref version, ref tools, .. } if version.as_deref() == Some("0.24.4") && tools.contains(&"read_file".to_string()))
    );
    let r = result(&parsed);
    assert!(!r.is_error);
    assert_eq!(r.num_turns, Some(3));
    assert_eq!(r.usage.input_tokens, 3702);
    assert_eq!(r.usage.cache_read_tokens, 3000);
}

#[test]
fn non_partial_runs_emit_text_from_assistant_lines() {
    let parsed = transcript("run-text.jsonl");
    let evs = streams(&parsed);
    assert_eq!(
        text_of(&evs),
        "Hello from the mock model. This is a plain answer."
    );
    assert!(evs.iter().any(
        |e| matches!(e, StreamEvent::Thinking { text } if text == "Thinking about greeting.")
    ));
    assert_eq!(turns(&parsed), vec![(1, 1234)]);
    assert!(evs.iter().any(|e| matches!(e, StreamEvent::MessageComplete { turn: 1, usage } if usage.cache_read_tokens == 1000)));
}

#[test]
fn denied_writes_are_visible() {
    for (file, tool) in [
        ("run-write.jsonl", "write_file"),
        ("run-hard-worktree.jsonl", "enter_worktree"),
    ] {
        let parsed = transcript(file);
        let evs = streams(&parsed);
        assert!(
            evs.iter()
                .any(|e| matches!(e, StreamEvent::ToolCall { name, .. } if name == tool)),
            "{file}"
        );
        let denied = evs.iter().find_map(|e| match e {
            StreamEvent::ToolResult {
                is_error: true,
                content,
                ..
            } => Some(content.clone()),
            _ => None,
        });
        assert!(
            denied.as_deref().is_some_and(is_denial),
            "{file}: {denied:?}"
        );
        let r = result(&parsed);
        assert_eq!(r.denials.len(), 1, "{file}");
        assert_eq!(turns(&parsed).len(), 2, "{file}");
    }
}

#[test]
fn api_errors_become_an_error_result() {
    let parsed = transcript("run-err401.jsonl");
    let r = result(&parsed);
    assert!(r.is_error);
    assert_eq!(r.error.as_deref(), Some("[API Error: 401 mock error 401]"));
    assert!(text_of(&streams(&parsed)).contains("401"));
}

#[test]
fn garbage_is_skipped_not_fatal() {
    let mut p = StreamParser::new();
    assert!(p.feed("not json").is_empty());
    assert!(p.feed("{\"type\":\"mystery\"}").is_empty());
    assert!(p.feed("{\"type\":\"assistant\"").is_empty());
    assert!(p.feed("").is_empty());
    assert_eq!(p.skipped_lines, 3);
    let out = p.feed(r#"{"type":"assistant","message":{"content":[{"type":"text","text":"ok"}],"usage":{"input_tokens":5,"output_tokens":1}}}"#);
    assert!(out.contains(&Parsed::Stream(StreamEvent::Text { text: "ok".into() })));
    assert!(out
        .iter()
        .any(|o| matches!(o, Parsed::Turn { usage, .. } if usage.total_tokens == 6)));
}

#[test]
fn an_agent_cannot_pose_as_the_sandbox_guard() {
    // The guard reports on its own descriptor; the same line on the agent's stdout is
    // just an unknown event, never a sandbox state.
    let mut p = StreamParser::new();
    let out = p.feed(r#"{"type":"boo_guard","sandbox":"enforced","abi":7,"mode":"required"}"#);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn refusals_over_acp_count_as_denials_and_other_errors_do_not() {
    assert!(is_denial("Tool \"write_file\" not found in registry."));
    assert!(is_denial("Tool \"read_file\" was canceled by the user."));
    assert!(!is_denial("params must have required property 'file_path'"));
    assert!(!is_denial("File not found: src/x.rs"));
}
