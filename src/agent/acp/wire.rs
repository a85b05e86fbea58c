//! The Agent Client Protocol as boo speaks it with `qwen --acp`: newline-delimited
//! JSON-RPC 2.0 on the process's stdin/stdout. Pure: lines in, typed messages out;
//! session updates in, boo's stream events out. Nothing here does IO.
//!
//! Every message qwen 0.24.4 sends, and what boo does with it:
//!
//! | from qwen | boo |
//! | --- | --- |
//! | response to `initialize`, `session/new`, `session/set_mode`, `session/prompt`, `qwen/status/session/context_usage`, `qwen/control/session/close` | routed to the request that is waiting for it |
//! | `session/update` `agent_thought_chunk` | `thinking` event |
//! | `session/update` `agent_message_chunk` with text | `text` event (and the turn's answer text) |
//! | `session/update` `agent_message_chunk` with `_meta.usage` (an empty chunk) | the model call ended: a turn with its usage and a `messageComplete` event |
//! | `session/update` `tool_call` (pending) | remembered; the call is announced once its input is known |
//! | `session/update` `tool_call_update` `in_progress` | `toolCall` event with the full `rawInput` |
//! | `session/update` `tool_call_update` `completed` / `failed` | `toolResult` event (`failed` is an error; a refusal counts as denied in traces) |
//! | `session/update` `plan`, `available_commands_update`, `current_mode_update`, `usage_update`, others | ignored |
//! | request `session/request_permission` | answered with the reject option; the step fails naming the tool (a rejection ends qwen's turn) |
//! | request `craft/drainMidTurnQueue`, any other request | answered "method not found" (-32601) |
//! | other notifications (`qwen/notify/session/mode-update`, …) | ignored |
//! | a line that is not JSON-RPC | counted and skipped |

use crate::model::{StreamEvent, Usage, WireUsage};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The ACP protocol version boo speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// JSON-RPC "method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;

/// An error answer to one of boo's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// qwen puts the useful part (e.g. the endpoint's "401 Incorrect API key") here.
    pub details: Option<String>,
}

impl RpcError {
    /// The most specific text the error carries.
    pub fn text(&self) -> String {
        match &self.details {
            Some(d) if !d.trim().is_empty() => d.clone(),
            _ => format!("{} ({})", self.message, self.code),
        }
    }
}

/// One line from qwen, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The answer to request `id`.
    Response {
        id: u64,
        result: Result<Value, RpcError>,
    },
    /// `session/update` for one session.
    Update { session_id: String, update: Value },
    /// A request qwen makes of boo (it waits for the answer).
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// Any other notification.
    Notification { method: String, params: Value },
}

/// Classifies one stdout line; `None` for a line that is not a JSON-RPC message.
pub fn classify(line: &str) -> Option<Incoming> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    let obj = v.as_object()?;
    let method = obj.get("method").and_then(|m| m.as_str());
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    match (method, obj.get("id")) {
        (Some("session/update"), None) => Some(Incoming::Update {
            session_id: params
                .get("sessionId")
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .to_string(),
            update: params.get("update").cloned().unwrap_or(Value::Null),
        }),
        (Some(m), None) => Some(Incoming::Notification {
            method: m.to_string(),
            params,
        }),
        (Some(m), Some(id)) => Some(Incoming::Request {
            id: id.clone(),
            method: m.to_string(),
            params,
        }),
        (None, Some(id)) => {
            let id = id.as_u64()?;
            let result = match obj.get("error") {
                Some(e) => Err(RpcError {
                    code: e.get("code").and_then(|c| c.as_i64()).unwrap_or(0),
                    message: e
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("error")
                        .to_string(),
                    details: e
                        .pointer("/data/details")
                        .and_then(|d| d.as_str())
                        .map(String::from),
                }),
                None => Ok(obj.get("result").cloned().unwrap_or(Value::Null)),
            };
            Some(Incoming::Response { id, result })
        }
        (None, None) => None,
    }
}

/// A request line.
pub fn request(id: u64, method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// A notification line.
pub fn notification(method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

/// An error answer to one of qwen's requests.
pub fn error_reply(id: &Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

/// A result answer to one of qwen's requests.
pub fn result_reply(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// The `initialize` parameters: boo offers no file system and no terminal.
pub fn initialize_params() -> Value {
    json!({
        "protocolVersion": PROTOCOL_VERSION,
        "clientCapabilities": {"fs": {"readTextFile": false, "writeTextFile": false}, "terminal": false}
    })
}

/// What a permission request asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionAsk {
    pub session_id: String,
    pub tool_call_id: String,
    /// The tool's name (`_meta.toolName`), else its title.
    pub tool: String,
    pub title: String,
    pub input: Value,
}

/// Reads a `session/request_permission` and builds the answer that refuses it: the
/// first option of kind `reject_once`, else any `reject_*` option, else the
/// `cancelled` outcome.
pub fn refuse_permission(params: &Value) -> (PermissionAsk, Value) {
    let call = params.get("toolCall").unwrap_or(&Value::Null);
    let s = |v: &Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let title = s(call, "title");
    let tool = call
        .pointer("/_meta/toolName")
        .and_then(|x| x.as_str())
        .map(String::from)
        .unwrap_or_else(|| title.clone());
    let ask = PermissionAsk {
        session_id: s(params, "sessionId"),
        tool_call_id: s(call, "toolCallId"),
        tool,
        title,
        input: call.get("rawInput").cloned().unwrap_or(Value::Null),
    };
    let options: Vec<&Value> = params
        .get("options")
        .and_then(|o| o.as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let kind = |o: &Value| {
        o.get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string()
    };
    let pick = options
        .iter()
        .find(|o| kind(o) == "reject_once")
        .or_else(|| options.iter().find(|o| kind(o).starts_with("reject")))
        .and_then(|o| o.get("optionId").and_then(|i| i.as_str()));
    let answer = match pick {
        Some(id) => json!({"outcome": {"outcome": "selected", "optionId": id}}),
        None => json!({"outcome": {"outcome": "cancelled"}}),
    };
    (ask, answer)
}

/// The tools a session offers the model, from `qwen/status/session/context_usage`
/// (`detail: true`): the built-in tools and the MCP tools. `None` when the answer
/// does not say.
pub fn offered_tools(context_usage: &Value) -> Option<Vec<String>> {
    let usage = context_usage.get("usage")?;
    let names = |k: &str| -> Option<Vec<String>> {
        Some(
            usage
                .get(k)?
                .as_array()?
                .iter()
                .filter_map(|t| t.get("name").and_then(|n| n.as_str()).map(String::from))
                .collect(),
        )
    };
    let mut tools = names("builtinTools")?;
    tools.extend(names("mcpTools").unwrap_or_default());
    Some(tools)
}

/// Whether `qwen/status/session/supported_commands` lists `/clear` for ACP sessions
/// (qwen 0.24.4: `availableCommands[].name == "clear"` with `"acp"` among
/// `_meta.supportedModes`). boo sends `/clear` only to a qwen that says it knows it:
/// anything else would send the text to the model as a prompt.
pub fn supports_clear(supported_commands: &Value) -> bool {
    supported_commands
        .get("availableCommands")
        .and_then(|c| c.as_array())
        .is_some_and(|cmds| {
            cmds.iter().any(|c| {
                c.get("name").and_then(|n| n.as_str()) == Some("clear")
                    && c.pointer("/_meta/supportedModes")
                        .and_then(|m| m.as_array())
                        .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("acp")))
            })
        })
}

/// How many conversation messages a session holds, from
/// `qwen/status/session/context_usage` (`usage.breakdown.messages`, in tokens; 0 for a
/// session with no history). `None` when qwen does not say.
pub fn history_tokens(context_usage: &Value) -> Option<u64> {
    context_usage
        .pointer("/usage/breakdown/messages")
        .and_then(|m| m.as_u64())
}

/// What an update meant for boo.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    Stream(StreamEvent),
    /// A model call ended with this usage.
    Turn {
        turn: u32,
        usage: Usage,
    },
}

#[derive(Debug, Default)]
struct Call {
    name: String,
    input: Value,
    announced: bool,
}

/// Turns one session's updates into boo's events, in the order the one-shot stream
/// gives them: a model call's tool calls (with their inputs) before its
/// `messageComplete`, the results after. qwen sends a call's input only after the
/// usage chunk that ends the model call, so that end is held back until the calls it
/// made are known (or the next model call begins).
#[derive(Debug)]
pub struct UpdateMapper {
    turn: u32,
    calls: HashMap<String, Call>,
    /// Calls of the model call in progress that are not announced yet.
    current: Vec<String>,
    /// A finished model call whose end waits for its calls: usage and call ids.
    held: Option<(Usage, Vec<String>)>,
    /// Results that arrived while a model call's end was held.
    deferred: Vec<Mapped>,
    text_this_turn: String,
    last_text: String,
    /// Tool calls that ended `failed`.
    pub failed_calls: Vec<String>,
}

impl Default for UpdateMapper {
    fn default() -> Self {
        UpdateMapper {
            turn: 1,
            calls: HashMap::new(),
            current: Vec::new(),
            held: None,
            deferred: Vec::new(),
            text_this_turn: String::new(),
            last_text: String::new(),
            failed_calls: Vec::new(),
        }
    }
}

fn usage_of(meta_usage: &Value) -> Usage {
    let n = |k: &str| meta_usage.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    let (input, output) = (n("inputTokens"), n("outputTokens"));
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: n("cachedReadTokens"),
        total_tokens: meta_usage
            .get("totalTokens")
            .and_then(|x| x.as_u64())
            .unwrap_or(input + output),
    }
}

/// The text of a tool call's `content` (text blocks, diffs by path), else `rawOutput`.
fn call_content(update: &Value) -> String {
    let mut parts = Vec::new();
    for item in update
        .get("content")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
    {
        match item.get("type").and_then(|t| t.as_str()) {
            Some("content") => {
                if let Some(t) = item.pointer("/content/text").and_then(|t| t.as_str()) {
                    parts.push(t.to_string());
                }
            }
            Some("diff") => parts.push(format!(
                "(diff of {})",
                item.get("path").and_then(|p| p.as_str()).unwrap_or("?")
            )),
            _ => {}
        }
    }
    if parts.is_empty() {
        if let Some(s) = update.get("rawOutput").and_then(|o| o.as_str()) {
            return s.to_string();
        }
    }
    parts.join("\n")
}

fn is_empty_input(v: &Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
}

impl UpdateMapper {
    pub fn new() -> Self {
        Self::default()
    }

    /// The answer of the prompt: the text of the last model call that wrote any.
    pub fn output(&self) -> String {
        if !self.text_this_turn.trim().is_empty() {
            self.text_this_turn.clone()
        } else {
            self.last_text.clone()
        }
    }

    /// The input a permission request showed for a call (qwen sends no
    /// `in_progress` update for a call it never ran).
    pub fn note_input(&mut self, tool_call_id: &str, input: &Value) {
        if let Some(c) = self.calls.get_mut(tool_call_id) {
            if is_empty_input(&c.input) && !is_empty_input(input) {
                c.input = input.clone();
            }
        }
    }

    /// Maps one `session/update`.
    pub fn feed(&mut self, update: &Value) -> Vec<Mapped> {
        let mut out = Vec::new();
        let kind = update
            .get("sessionUpdate")
            .and_then(|k| k.as_str())
            .unwrap_or("");
        let text = update
            .pointer("/content/text")
            .and_then(|t| t.as_str())
            .unwrap_or("");
        match kind {
            "agent_thought_chunk" if !text.is_empty() => {
                self.flush_held(&mut out);
                out.push(Mapped::Stream(StreamEvent::Thinking {
                    text: text.to_string(),
                }));
            }
            "agent_message_chunk" => {
                if !text.is_empty() {
                    self.flush_held(&mut out);
                    self.text_this_turn.push_str(text);
                    out.push(Mapped::Stream(StreamEvent::Text {
                        text: text.to_string(),
                    }));
                }
                if let Some(u) = update.pointer("/_meta/usage") {
                    self.end_model_call(usage_of(u), &mut out);
                }
            }
            "tool_call" | "tool_call_update" => self.tool_update(update, &mut out),
            _ => {}
        }
        out
    }

    /// The prompt ended: anything held back goes out.
    pub fn finish(&mut self) -> Vec<Mapped> {
        let mut out = Vec::new();
        self.flush_held(&mut out);
        for id in std::mem::take(&mut self.current) {
            self.announce(&id, &mut out);
        }
        out
    }

    fn end_model_call(&mut self, usage: Usage, out: &mut Vec<Mapped>) {
        self.flush_held(out);
        if !self.text_this_turn.trim().is_empty() {
            self.last_text = std::mem::take(&mut self.text_this_turn);
        }
        self.text_this_turn.clear();
        if self.current.is_empty() {
            self.close_turn(usage, out);
        } else {
            self.held = Some((usage, std::mem::take(&mut self.current)));
        }
    }

    fn close_turn(&mut self, usage: Usage, out: &mut Vec<Mapped>) {
        out.push(Mapped::Turn {
            turn: self.turn,
            usage,
        });
        out.push(Mapped::Stream(StreamEvent::MessageComplete {
            usage: WireUsage::from(usage),
            turn: self.turn,
        }));
        self.turn += 1;
    }

    /// Ends the held model call: its calls not announced yet go out with the input
    /// known so far, then its end, then the results that waited for it.
    fn flush_held(&mut self, out: &mut Vec<Mapped>) {
        if let Some((usage, ids)) = self.held.take() {
            for id in ids {
                self.announce(&id, out);
            }
            self.close_turn(usage, out);
            out.append(&mut self.deferred);
        }
    }

    /// Ends the held model call once every call it made is announced.
    fn close_if_complete(&mut self, out: &mut Vec<Mapped>) {
        if self.held.as_ref().is_some_and(|(_, ids)| ids.is_empty()) {
            self.flush_held(out);
        }
    }

    fn announce(&mut self, id: &str, out: &mut Vec<Mapped>) {
        if let Some(c) = self.calls.get_mut(id) {
            if !c.announced {
                c.announced = true;
                out.push(Mapped::Stream(StreamEvent::ToolCall {
                    tool_call_id: id.to_string(),
                    name: c.name.clone(),
                    input: if c.input.is_null() {
                        json!({})
                    } else {
                        c.input.clone()
                    },
                }));
            }
        }
        self.current.retain(|u| u != id);
        if let Some((_, ids)) = self.held.as_mut() {
            ids.retain(|u| u != id);
        }
    }

    fn tool_update(&mut self, u: &Value, out: &mut Vec<Mapped>) {
        let Some(id) = u.get("toolCallId").and_then(|x| x.as_str()) else {
            return;
        };
        let id = id.to_string();
        if !self.calls.contains_key(&id) {
            // A new call belongs to the model call in progress, so a held one ended.
            self.flush_held(out);
            let name = u
                .pointer("/_meta/toolName")
                .and_then(|x| x.as_str())
                .or_else(|| u.get("title").and_then(|x| x.as_str()))
                .unwrap_or("tool")
                .to_string();
            self.calls.insert(
                id.clone(),
                Call {
                    name,
                    input: Value::Null,
                    announced: false,
                },
            );
            self.current.push(id.clone());
        }
        if let Some(input) = u.get("rawInput") {
            self.note_input(&id, input);
        }
        match u.get("status").and_then(|s| s.as_str()) {
            Some("in_progress") => {
                self.announce(&id, out);
                self.close_if_complete(out);
            }
            Some(status @ ("completed" | "failed")) => {
                self.announce(&id, out);
                self.close_if_complete(out);
                let failed = status == "failed";
                if failed {
                    self.failed_calls.push(id.clone());
                }
                let result = Mapped::Stream(StreamEvent::ToolResult {
                    tool_call_id: id,
                    is_error: failed,
                    content: call_content(u),
                });
                if self.held.is_some() {
                    self.deferred.push(result);
                } else {
                    out.push(result);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str =
        include_str!("../../../tests/fixtures/captures/acp/acp-basic.transcript.jsonl");
    const OUTSIDE: &str =
        include_str!("../../../tests/fixtures/captures/acp/acp-outside-cwd.transcript.jsonl");
    const CONCURRENT: &str =
        include_str!("../../../tests/fixtures/captures/acp/acp-concurrent-tools.transcript.jsonl");

    /// The messages qwen sent in a capture (`dir` "<"), as lines.
    fn from_qwen(capture: &str) -> Vec<String> {
        capture
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["dir"] == "<")
            .map(|v| v["msg"].to_string())
            .collect()
    }

    /// Every event of one session of a capture, through the mapper.
    fn session_events(capture: &str, prompt_ids: &[u64]) -> (Vec<Mapped>, UpdateMapper) {
        let mut m = UpdateMapper::new();
        let mut out = Vec::new();
        let mut session = None;
        for line in from_qwen(capture) {
            match classify(&line).expect("every line of a capture is JSON-RPC") {
                Incoming::Update { session_id, update }
                    if session.get_or_insert(session_id.clone()) == &session_id =>
                {
                    out.extend(m.feed(&update));
                }
                Incoming::Response { id, .. } if prompt_ids.contains(&id) => {
                    out.extend(m.finish());
                }
                _ => {}
            }
        }
        (out, m)
    }

    fn kinds(events: &[Mapped]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Mapped::Turn { turn, .. } => format!("turn{turn}"),
                Mapped::Stream(StreamEvent::Text { .. }) => "text".into(),
                Mapped::Stream(StreamEvent::Thinking { .. }) => "thinking".into(),
                Mapped::Stream(StreamEvent::ToolCall { name, .. }) => format!("call:{name}"),
                Mapped::Stream(StreamEvent::ToolResult { is_error, .. }) => {
                    format!("result:{}", if *is_error { "error" } else { "ok" })
                }
                Mapped::Stream(StreamEvent::MessageComplete { turn, .. }) => {
                    format!("complete{turn}")
                }
            })
            .collect()
    }

    #[test]
    fn a_read_comes_out_like_the_one_shot_stream() {
        let (events, m) = session_events(BASIC, &[4]);
        let k = kinds(&events);
        let first_prompt: Vec<&str> = k.iter().take(8).map(String::as_str).collect();
        assert_eq!(
            first_prompt,
            [
                "thinking",
                "text",
                "call:read_file",
                "turn1",
                "complete1",
                "result:ok",
                "text",
                "text"
            ]
        );
        // The call carries the full input from its in_progress update.
        let call = events
            .iter()
            .find_map(|e| match e {
                Mapped::Stream(StreamEvent::ToolCall { input, .. }) => Some(input.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(call["file_path"], "/workspace/ws1/hello.txt");
        let result = events
            .iter()
            .find_map(|e| match e {
                Mapped::Stream(StreamEvent::ToolResult { content, .. }) => Some(content.clone()),
                _ => None,
            })
            .unwrap();
        assert!(result.contains("hello world from ws1"), "{result}");
        // Usage per model call comes from the empty chunks' _meta.usage.
        let turns: Vec<Usage> = events
            .iter()
            .filter_map(|e| match e {
                Mapped::Turn { usage, .. } => Some(*usage),
                _ => None,
            })
            .collect();
        assert_eq!(
            turns.len(),
            8,
            "2 calls for the read, 6 for the hostile prompt"
        );
        assert_eq!(turns[0].input_tokens, 1234);
        assert_eq!(turns[0].cache_read_tokens, 1000);
        assert_eq!(turns[0].total_tokens, 1290);
        // Every refused write shows as a failed call.
        assert_eq!(m.failed_calls.len(), 5, "{k:?}");
        assert_eq!(m.output(), "hostile done");
    }

    #[test]
    fn the_answer_is_the_last_model_call_that_wrote_text() {
        let mut m = UpdateMapper::new();
        let chunk = |t: &str| json!({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": t}});
        let usage = json!({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": ""},
            "_meta": {"usage": {"inputTokens": 10, "outputTokens": 2}}});
        m.feed(&chunk("I will read it."));
        m.feed(&usage);
        m.feed(&chunk("The answer"));
        m.feed(&chunk(" is 42."));
        let ev = m.feed(&usage);
        assert_eq!(m.output(), "The answer is 42.");
        assert!(matches!(ev[0], Mapped::Turn { turn: 2, usage } if usage.total_tokens == 12));
        // A model call that ends with no text keeps the previous answer.
        m.feed(&usage);
        assert_eq!(m.output(), "The answer is 42.");
    }

    #[test]
    fn concurrent_sessions_keep_their_own_calls_and_turns() {
        let lines = from_qwen(CONCURRENT);
        let mut mappers: HashMap<String, UpdateMapper> = HashMap::new();
        let mut events: HashMap<String, Vec<Mapped>> = HashMap::new();
        for line in &lines {
            if let Some(Incoming::Update { session_id, update }) = classify(line) {
                let m = mappers.entry(session_id.clone()).or_default();
                events
                    .entry(session_id)
                    .or_default()
                    .extend(m.feed(&update));
            }
        }
        let with_calls: Vec<&Vec<Mapped>> = events
            .values()
            .filter(|e| {
                e.iter()
                    .any(|x| matches!(x, Mapped::Stream(StreamEvent::ToolCall { .. })))
            })
            .collect();
        assert!(with_calls.len() >= 4, "four sessions read at the same time");
        for e in with_calls {
            let k = kinds(e);
            let call = k.iter().position(|x| x.starts_with("call:")).unwrap();
            let complete = k.iter().position(|x| x == "complete1").unwrap();
            let result = k.iter().position(|x| x.starts_with("result:")).unwrap();
            assert!(call < complete && complete < result, "{k:?}");
        }
    }

    #[test]
    fn a_permission_request_is_refused_with_the_reject_option() {
        let req = from_qwen(OUTSIDE)
            .into_iter()
            .find_map(|l| match classify(&l) {
                Some(Incoming::Request { method, params, .. })
                    if method == "session/request_permission" =>
                {
                    Some(params)
                }
                _ => None,
            })
            .unwrap();
        let (ask, answer) = refuse_permission(&req);
        assert_eq!(ask.tool, "read_file");
        assert_eq!(ask.input["file_path"], "/workspace/ws1/hello.txt");
        assert_eq!(answer["outcome"]["optionId"], "cancel");
        // Without a reject option the request is answered as cancelled.
        let (_, answer) =
            refuse_permission(&json!({"options": [{"optionId": "ok", "kind": "allow_once"}]}));
        assert_eq!(answer["outcome"]["outcome"], "cancelled");
        // The refused call ends failed ("canceled by the user").
        let (events, _) = session_events(OUTSIDE, &[3, 4]);
        assert!(events.iter().any(|e| matches!(e,
            Mapped::Stream(StreamEvent::ToolResult { is_error: true, content, .. })
                if content.contains("canceled by the user"))));
    }

    #[test]
    fn lines_are_classified_and_junk_is_not() {
        assert_eq!(classify("not json"), None);
        assert_eq!(classify("[1,2]"), None);
        assert_eq!(classify("{\"jsonrpc\":\"2.0\"}"), None);
        let e = classify(
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"Internal error","data":{"details":"401 Incorrect API key provided"}}}"#,
        );
        match e {
            Some(Incoming::Response {
                id: 7,
                result: Err(err),
            }) => {
                assert_eq!(err.text(), "401 Incorrect API key provided")
            }
            other => panic!("{other:?}"),
        }
        let r =
            classify(r#"{"jsonrpc":"2.0","id":0,"method":"craft/drainMidTurnQueue","params":{}}"#);
        assert!(
            matches!(r, Some(Incoming::Request { method, .. }) if method == "craft/drainMidTurnQueue")
        );
        let reply = error_reply(&json!(0), METHOD_NOT_FOUND, "method not found");
        assert!(reply.contains("-32601"), "{reply}");
    }

    #[test]
    fn clear_is_used_only_when_qwen_lists_it_for_acp() {
        let listed = |modes: Value| {
            json!({"availableCommands": [{"name": "status"},
                {"name": "clear", "_meta": {"supportedModes": modes}}]})
        };
        assert!(supports_clear(&listed(json!(["interactive", "acp"]))));
        assert!(!supports_clear(&listed(json!(["interactive"]))));
        assert!(!supports_clear(
            &json!({"availableCommands": [{"name": "status"}]})
        ));
        assert!(!supports_clear(&json!({})));
        let usage = |m: Value| json!({"usage": {"breakdown": {"messages": m}}});
        assert_eq!(history_tokens(&usage(json!(0))), Some(0));
        assert_eq!(history_tokens(&usage(json!(812))), Some(812));
        assert_eq!(history_tokens(&json!({"usage": {}})), None);
    }

    #[test]
    fn offered_tools_come_from_the_context_usage_detail() {
        let v = json!({"usage": {"builtinTools": [{"name": "glob"}, {"name": "read_file"}],
                                  "mcpTools": [{"name": "mcp__x__y"}]}});
        assert_eq!(
            offered_tools(&v).unwrap(),
            vec!["glob", "read_file", "mcp__x__y"]
        );
        assert_eq!(offered_tools(&json!({"usage": {}})), None);
    }
}
