//! `boo mcp`: the MCP server qwen starts for an agent step allowed to spawn
//! (`spawn = true`). It speaks MCP over stdio (JSON-RPC 2.0, one message per line)
//! to qwen, offers exactly three read-only tools, and carries each call over the
//! private channel to the boo server that runs the step: a Unix socket in boo's 0700
//! runtime folder, one connection per call, one JSON line each way
//! (`{"token", "tool", "arguments"}` → `{"result"}` or `{"error"}`). The token is the
//! step's secret (from the MCP server entry of that agent's settings, as
//! `BOO_MCP_TOKEN`); the server answers nothing without it.
//!
//! This process holds no state and decides nothing: limits, persona checks and the
//! children themselves live in the server (`runner::children`).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;

/// MCP protocol versions this server speaks, newest first. A client asking for one of
/// them gets it back; any other request gets the newest (the client then decides).
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-06-18", "2025-03-26", "2024-11-05"];

/// How long a call may take on the channel: the longest wait a tool allows (30 s)
/// plus room for the server to start a child.
const CALL_TIMEOUT: Duration = Duration::from_secs(45);

/// The three tools, as `tools/list` gives them.
pub fn tools() -> Value {
    let ro = json!({
        "readOnlyHint": true,
        "destructiveHint": false,
        "idempotentHint": false,
        "openWorldHint": false
    });
    json!([
        {
            "name": "spawn_subagent",
            "title": "Start a background agent",
            "description": "Hand one lead to a read-only background agent (a specialist persona) and keep working. Returns {agentId} at once; collect the answer later with subagent_result. At most 4 per step and 16 per run by default; children cannot spawn.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "persona": { "type": "string", "description": "A boo persona name (for example security-analyst); default: your own persona." },
                    "prompt": { "type": "string", "description": "The task, self-contained: what to look at and what to report." },
                    "label": { "type": "string", "description": "A short title shown to the user." }
                },
                "required": ["prompt"],
                "additionalProperties": false
            },
            "annotations": ro
        },
        {
            "name": "subagent_status",
            "title": "Status of a background agent",
            "description": "Where a background agent you started is: {status, elapsedMs, tokens}.",
            "inputSchema": {
                "type": "object",
                "properties": { "agentId": { "type": "string" } },
                "required": ["agentId"],
                "additionalProperties": false
            },
            "annotations": ro
        },
        {
            "name": "subagent_result",
            "title": "Result of a background agent",
            "description": "Waits up to waitSeconds (at most 30, default 0) for a background agent you started, then returns {status, output?}. While it still runs, call again later.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "agentId": { "type": "string" },
                    "waitSeconds": { "type": "number", "minimum": 0, "maximum": 30 }
                },
                "required": ["agentId"],
                "additionalProperties": false
            },
            "annotations": ro
        }
    ])
}

/// The protocol version to answer `initialize` with.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| PROTOCOL_VERSIONS.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(PROTOCOL_VERSIONS[0])
}

/// Answers one line from the client; `None` for notifications and blank lines.
/// `call` carries a tool call to the boo server (`Err` is a message for the model).
pub fn handle_line(
    line: &str,
    call: &mut dyn FnMut(&str, &Value) -> Result<Value, String>,
) -> Option<Value> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let msg: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return Some(json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": -32700, "message": format!("parse error: {e}")}}))
        }
    };
    let id = msg.get("id").cloned()?;
    let reply = |result: Value| Some(json!({"jsonrpc": "2.0", "id": id, "result": result}));
    let error = |code: i64, message: String| {
        Some(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
    };
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    match msg.get("method").and_then(Value::as_str) {
        Some("initialize") => reply(json!({
            "protocolVersion": negotiate(params.get("protocolVersion").and_then(Value::as_str)),
            "capabilities": { "tools": { "listChanged": false } },
            "serverInfo": { "name": "boo", "version": env!("CARGO_PKG_VERSION") },
            "instructions": "Background agents of boo: hand a lead to a read-only specialist with spawn_subagent, keep working, collect its answer with subagent_result."
        })),
        Some("ping") => reply(json!({})),
        Some("tools/list") => reply(json!({ "tools": tools() })),
        Some("tools/call") => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            let known = tools()
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == name));
            if !known {
                return error(
                    -32602,
                    format!("unknown tool {name:?}: boo offers spawn_subagent, subagent_status and subagent_result"),
                );
            }
            let args = params
                .get("arguments")
                .cloned()
                .unwrap_or_else(|| json!({}));
            match call(name, &args) {
                Ok(v) => reply(json!({
                    "content": [{ "type": "text", "text": v.to_string() }],
                    "isError": false
                })),
                Err(message) => reply(json!({
                    "content": [{ "type": "text", "text": message }],
                    "isError": true
                })),
            }
        }
        Some(other) => error(-32601, format!("method not found: {other}")),
        None => error(-32600, "invalid request: no method".into()),
    }
}

/// One call over the channel.
pub fn call_channel(socket: &Path, token: &str, tool: &str, args: &Value) -> Result<Value, String> {
    use std::os::unix::net::UnixStream;
    let unreachable = |e: std::io::Error| {
        format!(
            "boo's server cannot be reached ({e}); the run may have ended or its server stopped"
        )
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(CALL_TIMEOUT))
        .map_err(unreachable)?;
    let mut line = json!({"token": token, "tool": tool, "arguments": args}).to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(unreachable)?;
    let mut answer = String::new();
    BufReader::new(stream.take(4 << 20))
        .read_line(&mut answer)
        .map_err(unreachable)?;
    let v: Value = serde_json::from_str(answer.trim())
        .map_err(|_| "boo's server gave no answer; call again".to_string())?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(e.to_string());
    }
    Ok(v.get("result").cloned().unwrap_or(Value::Null))
}

/// `boo mcp --socket <path>` with `BOO_MCP_TOKEN` set: serves until stdin closes.
pub fn serve(socket: &Path, token: Option<String>) -> i32 {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        eprintln!("boo mcp: BOO_MCP_TOKEN is not set; this command is started by qwen for an agent step boo runs, with the token boo wrote into that agent's settings");
        return 2;
    };
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut call = |tool: &str, args: &Value| call_channel(socket, &token, tool, args);
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if let Some(answer) = handle_line(&line, &mut call) {
            let text = format!("{answer}\n");
            if stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush())
                .is_err()
            {
                break;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_call(_: &str, _: &Value) -> Result<Value, String> {
        Err("no server".into())
    }

    #[test]
    fn negotiates_the_version_the_client_asks_for_when_known() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2024-11-05")), "2024-11-05");
        assert_eq!(negotiate(Some("1999-01-01")), PROTOCOL_VERSIONS[0]);
        assert_eq!(negotiate(None), PROTOCOL_VERSIONS[0]);
        let a = handle_line(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05"}}"#,
            &mut no_call,
        )
        .unwrap();
        assert_eq!(a["result"]["protocolVersion"], "2024-11-05");
        assert_eq!(a["result"]["serverInfo"]["name"], "boo");
    }

    #[test]
    fn lists_exactly_three_read_only_tools() {
        let a = handle_line(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            &mut no_call,
        )
        .unwrap();
        let tools = a["result"]["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["spawn_subagent", "subagent_status", "subagent_result"]
        );
        assert!(tools
            .iter()
            .all(|t| t["annotations"]["readOnlyHint"] == json!(true)));
        for (t, name) in tools.iter().zip(crate::agent::harden::MCP_TOOLS) {
            assert_eq!(t["name"], *name);
        }
    }

    #[test]
    fn notifications_get_no_answer_and_tool_errors_are_tool_results() {
        assert!(handle_line(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            &mut no_call
        )
        .is_none());
        let a = handle_line(
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"spawn_subagent","arguments":{"prompt":"x"}}}"#,
            &mut no_call,
        )
        .unwrap();
        assert_eq!(a["result"]["isError"], json!(true));
        assert_eq!(a["result"]["content"][0]["text"], "no server");
        let a = handle_line(
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"write_file"}}"#,
            &mut no_call,
        )
        .unwrap();
        assert_eq!(a["error"]["code"], -32602);
        let mut ok = |_: &str, a: &Value| Ok(json!({"agentId": a["prompt"]}));
        let a = handle_line(
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"spawn_subagent","arguments":{"prompt":"p"}}}"#,
            &mut ok,
        )
        .unwrap();
        assert_eq!(a["result"]["content"][0]["text"], r#"{"agentId":"p"}"#);
        assert_eq!(a["id"], 5);
    }
}
