//! boo's extensions to LSP, typed: every `boo/*` request and notification with its
//! method name, params and result, and every type they carry, exactly as the wire
//! spells them (docs/protocol.md). Nothing here knows the runner or the store:
//! `convert.rs` turns domain values into these types, and `tests/wire_types.rs` holds
//! the editor clients' declarations (`editors/vscode/src/protocol.ts`,
//! `editors/nvim/lua/boo/protocol.lua`) against them.
//!
//! Fields may be added, never renamed. A field that is sometimes left out carries
//! `skip_serializing_if`; a field that is always sent but may be null is an `Option`
//! without it.

use serde_json::Value;
pub use tower_lsp_server::ls_types::notification::Notification;
pub use tower_lsp_server::ls_types::request::Request;

/// The protocol version in `initialize` → `capabilities.experimental.boo`.
pub const PROTOCOL_VERSION: u32 = 1;

// ---- values ---------------------------------------------------------------

wire_enum! {
    /// How large a roster a flow runs with.
    pub enum Band { Small = "small", Medium = "medium", Large = "large" }

    /// The launcher categories.
    pub enum Category {
        Analysis = "analysis",
        Discovery = "discovery",
        Planning = "planning",
        Authoring = "authoring",
        Review = "review",
    }

    pub enum RunStatus {
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }

    pub enum StepStatus {
        Pending = "pending",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Skipped = "skipped",
        Cancelled = "cancelled",
    }

    pub enum StepKind { Agent = "agent", Code = "code", Script = "script" }

    pub enum TraceOutcome { Ok = "ok", Error = "error", Denied = "denied" }

    /// `boo/trace` is sent when a tool call starts and again when it finishes.
    pub enum TracePhase { Start = "start", Finish = "finish" }

    /// `boo/modelCall` is sent when a model call starts and again when it finishes.
    pub enum ModelCallPhase { Start = "start", Finish = "finish" }

    pub enum ExportFormat { Markdown = "markdown", Json = "json" }

    /// Where a flow comes from: boo itself, or the project's `<root>/.boo/` (which
    /// runs only in a trusted root).
    pub enum FlowSource { Builtin = "builtin", Project = "project" }

    /// Where a workflow comes from: boo itself, the user's
    /// `$XDG_CONFIG_HOME/boo/workflows/`, or the project's `.boo/workflows/` and
    /// `.claude/workflows/` (which run only in a trusted root).
    pub enum WorkflowSource { Builtin = "builtin", User = "user", Project = "project" }
}

wire_struct! {
    /// Token counts of a model turn, a step or a run.
    pub struct Usage {
        pub input_tokens: u64,
        pub output_tokens: u64,
        pub cache_read_tokens: u64,
        pub total_tokens: u64,
        /// cache-read / input; null without input.
        pub cache_hit_rate: Option<f64>,
    }
}

wire_union! {
    /// One event of an agent's live stream.
    pub enum StreamEvent by "type" {
        /// Assistant text delta.
        Text = "text" { text: String },
        /// Reasoning delta.
        Thinking = "thinking" { text: String },
        ToolCall = "toolCall" { tool_call_id: String, name: String, input: Value },
        ToolResult = "toolResult" { tool_call_id: String, is_error: bool, content: String },
        /// One model turn ended; `turn` is 1-based within the step.
        MessageComplete = "messageComplete" { usage: Usage, turn: u32 },
    }
}

// ---- shared shapes ----------------------------------------------------------

wire_struct! {
    /// A flow of the catalog.
    pub struct Flow {
        pub name: String,
        pub title: String,
        pub category: Category,
        pub description: String,
        pub bands: FlowBands,
        pub waves: FlowWaves,
        pub agents: Vec<FlowAgent>,
        pub source: FlowSource,
        /// The file it was read from (`builtin:<file>` for the copy inside boo).
        pub path: String,
    }

    /// The step ids each band runs.
    pub struct FlowBands {
        pub small: Vec<String>,
        pub medium: Vec<String>,
        pub large: Vec<String>,
    }

    /// How many waves each band plans (a band whose plan fails is left out).
    pub struct FlowWaves {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub small: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub medium: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub large: Option<u32>,
    }

    /// An agent step of a flow.
    pub struct FlowAgent {
        pub step_id: String,
        pub persona: String,
        /// The smallest band that runs it.
        pub band: Band,
        /// Whether a `when` condition gates it.
        pub when: bool,
    }

    /// A workflow of the catalog (`boo/listWorkflows`).
    pub struct Workflow {
        /// The name to launch it by (`project:<name>` when a project workflow's own
        /// name is taken by a built-in or user one).
        pub name: String,
        pub description: String,
        pub when_to_use: Option<String>,
        pub phases: Vec<WorkflowPhase>,
        pub source: WorkflowSource,
        /// The file it was read from (`builtin:workflows/<file>` for the copy inside boo).
        pub path: String,
    }

    /// One entry of a workflow's `meta.phases`.
    pub struct WorkflowPhase {
        pub title: String,
        pub detail: Option<String>,
    }

    /// A workflow file that cannot be listed (it does not load, or its name is taken).
    pub struct WorkflowError {
        pub file: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub line: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub column: Option<u32>,
        pub message: String,
    }

    /// A problem with one catalog file.
    pub struct CatalogError {
        pub file: String,
        pub field: String,
        pub message: String,
    }

    pub struct RunSummary {
        pub run_id: String,
        pub flow: String,
        /// `null` for a workflow run (workflows have no band).
        pub band: Option<Band>,
        pub status: RunStatus,
        pub question: String,
        pub root: String,
        pub created_at: String,
        pub finished_at: Option<String>,
        /// `"flow"`, `"workflow"` or `"agent"`.
        pub kind: String,
    }

    /// A background agent (`boo/listAgents`): `RunSummary` and its persona, and for
    /// a child spawned by an agent step the run and step that spawned it.
    pub struct AgentSummary {
        pub run_id: String,
        pub flow: String,
        /// Always `null`: an agent run has no band.
        pub band: Option<Band>,
        pub status: RunStatus,
        /// The agent's prompt.
        pub question: String,
        pub root: String,
        pub created_at: String,
        pub finished_at: Option<String>,
        /// `"agent"`.
        pub kind: String,
        pub persona: String,
        pub parent_run_id: Option<String>,
        pub parent_step_id: Option<String>,
        /// The tokens its agent has used so far.
        pub usage: Usage,
    }

    /// `RunSummary` and more (`boo/getRun`).
    pub struct Run {
        pub run_id: String,
        pub flow: String,
        /// `null` for a workflow run.
        pub band: Option<Band>,
        pub status: RunStatus,
        pub question: String,
        pub root: String,
        pub created_at: String,
        pub finished_at: Option<String>,
        pub model: Option<String>,
        pub error: Option<String>,
        pub usage: Usage,
        pub fast: bool,
        pub title: Option<String>,
        /// `"flow"` or `"workflow"`.
        pub kind: String,
        /// A workflow run's `{ name, source, path, args, budget: { total, spent } }`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub workflow: Option<Value>,
        /// A completed workflow run's return value.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub result: Option<Value>,
        /// A workflow run's log.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub log: Option<Vec<RunLogLine>>,
        /// The images the run's agents get with their prompts, in launch order.
        pub attachments: Vec<Attachment>,
    }

    /// An image of a run (`Run.attachments`); its bytes come with `boo/getAttachment`.
    pub struct Attachment {
        pub attachment_id: String,
        pub name: String,
        /// Read from the bytes: `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
        pub mime_type: String,
        pub bytes: u64,
        pub sha256: String,
        pub width: u32,
        pub height: u32,
    }

    /// An image given at launch: `{ name, mimeType?, data }` (base64) or `{ path }`
    /// (absolute, or relative to the run's root).
    pub struct LaunchAttachment {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub mime_type: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub data: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub path: Option<String>,
    }

    /// One line of `Run.log`.
    pub struct RunLogLine {
        pub seq: u64,
        pub kind: String,
        pub message: String,
        pub at: String,
    }

    /// A step of the roster in `boo/runStarted`.
    pub struct StepInfo {
        pub step_id: String,
        pub agent: String,
        pub kind: StepKind,
        pub label: String,
        pub wave: u32,
        pub chat_id: Option<String>,
        pub status: StepStatus,
    }

    /// A step as `boo/getRun` returns it.
    pub struct Step {
        pub step_id: String,
        pub agent: String,
        pub kind: StepKind,
        pub label: String,
        pub wave: u32,
        pub chat_id: Option<String>,
        pub status: StepStatus,
        pub output: Option<String>,
        pub error: Option<String>,
        pub started_at: Option<String>,
        pub finished_at: Option<String>,
        pub usage: Usage,
        /// 1 for the first dispatch, more after a resume.
        pub attempt: u32,
        /// qwen version, offered tools, sandbox state, exit code, denied calls, changed paths.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub meta: Option<Value>,
        /// With `transcript: true`: every stream event so far.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub transcript: Option<Vec<StreamEvent>>,
        /// With `transcript: true`: the last `seq` the transcript covers.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub last_seq: Option<u64>,
        /// Every model turn's usage.
        pub turns: Vec<TurnUsage>,
        /// The step that started this one (steps added while the run ran).
        pub parent_step_id: Option<String>,
        /// A workflow's phase label.
        pub phase: Option<String>,
        /// The content key of a workflow agent's cached result.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cache_key: Option<String>,
        /// Answered from the workflow cache (no agent process ran).
        #[serde(default)]
        pub cached: bool,
    }

    pub struct TurnUsage {
        pub turn: u32,
        pub usage: Usage,
    }

    /// One tool call of an agent step.
    pub struct Trace {
        pub trace_id: String,
        pub run_id: String,
        pub step_id: String,
        pub chat_id: String,
        pub tool: String,
        pub tool_call_id: String,
        pub turn: u32,
        pub input: Value,
        pub output: Option<String>,
        /// The full size when `output` is capped.
        pub output_bytes: Option<u64>,
        pub started_at: String,
        pub finished_at: Option<String>,
        pub latency_ms: Option<u64>,
        pub outcome: Option<TraceOutcome>,
        pub error: Option<String>,
        pub usage: Option<Usage>,
    }

    /// One part of a model request: system prompt, tool schemas, a message.
    pub struct ModelCallSegment {
        /// `system`, `tools`, `history`, `toolResult`, `new` or `image`.
        pub kind: String,
        pub label: String,
        pub bytes: u64,
        pub hash: String,
        pub est_tokens: u64,
        /// `full`, `partial` or `none`: its share of the expected cached prefix.
        pub cached: String,
    }

    /// One model call an agent made through boo's model proxy.
    pub struct ModelCall {
        pub call_id: String,
        pub run_id: String,
        pub step_id: String,
        pub chat_id: String,
        /// The model turn of the step's conversation this call opened (from 1).
        pub turn: u64,
        pub started_at: String,
        pub finished_at: Option<String>,
        /// Time to the first byte of the answer.
        pub ttft_ms: Option<u64>,
        pub duration_ms: Option<u64>,
        /// The model server's HTTP status.
        pub status: Option<u32>,
        pub error: Option<String>,
        pub prompt_tokens: Option<u64>,
        /// What the server reported reused from its prefix cache (any dialect).
        pub cached_tokens: Option<u64>,
        pub completion_tokens: Option<u64>,
        pub tokens_per_second: Option<f64>,
        /// The usage dialect `cachedTokens` came from (docs/cache-shape.md).
        pub cache_dialect: Option<String>,
        pub request_bytes: u64,
        /// The longest prefix shared with an earlier request to the endpoint, in tokens.
        pub expected_cached_tokens: u64,
        pub miss_reason: Option<String>,
        pub segments: Vec<ModelCallSegment>,
    }

    /// `initialize` → `capabilities.experimental.boo`.
    pub struct BooCapabilities {
        pub protocol_version: u32,
        pub methods: Vec<String>,
        pub notifications: Vec<String>,
        pub cancel_ended_run: String,
        /// The groups of additions this server supports (`"workflows"`).
        pub features: Vec<String>,
    }
}

// ---- requests ---------------------------------------------------------------

wire_struct! {
    pub struct ListFlowsParams {
        /// Default: the workspace root (project flows come from `<root>/.boo/`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub root: Option<String>,
    }
    pub struct ListFlowsResult {
        pub flows: Vec<Flow>,
        pub errors: Vec<CatalogError>,
        /// Whether the user trusts the root: its project flows run only then.
        pub trusted: bool,
    }

    pub struct ListWorkflowsParams {
        /// Default: the workspace root (project workflows come from its
        /// `.boo/workflows/` and `.claude/workflows/`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub root: Option<String>,
    }
    pub struct ListWorkflowsResult {
        pub workflows: Vec<Workflow>,
        pub errors: Vec<WorkflowError>,
        /// Whether the user trusts the root: its project workflows run only then.
        pub trusted: bool,
    }

    pub struct TrustRootParams {
        pub root: String,
        /// false revokes the trust.
        pub trusted: bool,
    }
    pub struct TrustRootResult {
        /// The canonical path that was recorded.
        pub root: String,
        pub trusted: bool,
    }

    pub struct LaunchFlowParams {
        pub flow: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub band: Option<Band>,
        pub input: LaunchInput,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub root: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub model: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub fast: Option<bool>,
        /// Images for the agents (PROTOCOL.md, "Attachments").
        #[serde(skip_serializing_if = "Option::is_none")]
        pub attachments: Option<Vec<LaunchAttachment>>,
        /// This run's model takes images (default: the server's `visionModel`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub vision_model: Option<bool>,
    }
    pub struct LaunchInput {
        pub question: String,
    }
    pub struct LaunchFlowResult {
        pub run_id: String,
    }

    /// Exactly one of `workflow`, `script` and `scriptPath`.
    pub struct LaunchWorkflowParams {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub workflow: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub script: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub script_path: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub args: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub root: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub model: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub budget: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub fresh: Option<bool>,
        /// Images for the agents (PROTOCOL.md, "Attachments").
        #[serde(skip_serializing_if = "Option::is_none")]
        pub attachments: Option<Vec<LaunchAttachment>>,
        /// This run's model takes images (default: the server's `visionModel`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub vision_model: Option<bool>,
    }
    pub struct LaunchWorkflowResult {
        pub run_id: String,
    }

    pub struct SpawnAgentParams {
        /// A persona name (`boo/listFlows` rosters name them; `boo personas` lists them).
        pub persona: String,
        pub prompt: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub root: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub model: Option<String>,
        /// Images for the agent (PROTOCOL.md, "Attachments").
        #[serde(skip_serializing_if = "Option::is_none")]
        pub attachments: Option<Vec<LaunchAttachment>>,
        /// This run's model takes images (default: the server's `visionModel`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub vision_model: Option<bool>,
    }
    pub struct SpawnAgentResult {
        pub run_id: String,
    }

    pub struct ListAgentsParams {
        /// Absent: the workspace root's agents; null: every project's agents.
        #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
        pub root: Option<Option<String>>,
        /// A run status: only the agents in it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<RunStatus>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub limit: Option<u32>,
    }
    pub struct ListAgentsResult {
        pub agents: Vec<AgentSummary>,
    }

    pub struct ListRunsParams {
        /// Absent: the workspace root's runs; null: every project's runs.
        #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
        pub root: Option<Option<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub limit: Option<u32>,
        /// The `next` of the previous page.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub before: Option<String>,
    }
    pub struct ListRunsResult {
        pub runs: Vec<RunSummary>,
        pub next: Option<String>,
    }

    pub struct GetRunParams {
        pub run_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub transcript: Option<bool>,
    }
    pub struct GetRunResult {
        pub run: Run,
        pub steps: Vec<Step>,
        pub report: Option<String>,
    }

    pub struct GetAttachmentParams {
        pub attachment_id: String,
    }
    pub struct GetAttachmentResult {
        pub name: String,
        pub mime_type: String,
        /// The image, base64.
        pub data: String,
    }

    pub struct CancelRunParams {
        pub run_id: String,
    }
    pub struct CancelRunResult {
        pub run_id: String,
        pub status: RunStatus,
    }

    pub struct ExportRunParams {
        pub run_id: String,
        /// Default: markdown.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub format: Option<ExportFormat>,
    }
    pub struct ExportRunResult {
        pub content: String,
        pub file_name: String,
    }

    pub struct GetTracesParams {
        pub run_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_id: Option<String>,
        /// The `nextCursor` of the previous page.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cursor: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub limit: Option<u32>,
    }
    pub struct GetTracesResult {
        pub traces: Vec<Trace>,
        pub next_cursor: Option<String>,
    }

    pub struct GetModelCallsParams {
        pub run_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_id: Option<String>,
        /// The `nextCursor` of the previous page.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cursor: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub limit: Option<u32>,
    }
    pub struct GetModelCallsResult {
        pub calls: Vec<ModelCall>,
        pub next_cursor: Option<String>,
    }
}

/// A field that may be absent (outer `None`) or null (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

// ---- notifications ----------------------------------------------------------

wire_struct! {
    pub struct RunStartedParams {
        pub run_id: String,
        pub flow: String,
        /// `null` for a workflow run.
        pub band: Option<Band>,
        pub question: String,
        pub root: String,
        pub status: RunStatus,
        pub title: String,
        pub created_at: String,
        /// A run that resumes after a restart starts again.
        pub resumed: bool,
        pub steps: Vec<StepInfo>,
    }

    /// A step changed; the run's last notification also carries `runStatus`.
    pub struct StepUpdatedParams {
        pub run_id: String,
        pub step_id: String,
        /// Null only on a run that failed before any step (then `stepId` is empty).
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
        pub usage: Option<Usage>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub run_usage: Option<Usage>,
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
        pub result: Option<Value>,
    }

    /// `boo/stepAdded`: a step the run created while it ran (a workflow's `agent()`).
    pub struct StepAddedParams {
        pub run_id: String,
        pub step: AddedStep,
    }
    pub struct AddedStep {
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

    /// `boo/runLog`: one line of a workflow run's log (`log()` or `phase()`).
    pub struct RunLogParams {
        pub run_id: String,
        pub seq: u64,
        pub kind: String,
        pub message: String,
        pub at: String,
    }

    pub struct AgentStreamParams {
        pub run_id: String,
        pub step_id: String,
        pub chat_id: String,
        /// 1, 2, 3, … per `chatId`.
        pub seq: u64,
        pub events: Vec<StreamEvent>,
    }

    /// A `ModelCall` and the `phase` it is sent in (`start`: no result fields yet).
    pub struct ModelCallParams {
        pub phase: ModelCallPhase,
        pub call_id: String,
        pub run_id: String,
        pub step_id: String,
        pub chat_id: String,
        /// The model turn of the step's conversation this call opened (from 1).
        pub turn: u64,
        pub started_at: String,
        pub finished_at: Option<String>,
        /// Time to the first byte of the answer.
        pub ttft_ms: Option<u64>,
        pub duration_ms: Option<u64>,
        /// The model server's HTTP status.
        pub status: Option<u32>,
        pub error: Option<String>,
        pub prompt_tokens: Option<u64>,
        /// What the server reported reused from its prefix cache (any dialect).
        pub cached_tokens: Option<u64>,
        pub completion_tokens: Option<u64>,
        pub tokens_per_second: Option<f64>,
        /// The usage dialect `cachedTokens` came from (docs/cache-shape.md).
        pub cache_dialect: Option<String>,
        pub request_bytes: u64,
        /// The longest prefix shared with an earlier request to the endpoint, in tokens.
        pub expected_cached_tokens: u64,
        pub miss_reason: Option<String>,
        pub segments: Vec<ModelCallSegment>,
    }

    /// A `Trace` and the `phase` it is sent in.
    pub struct TraceParams {
        pub phase: TracePhase,
        pub trace_id: String,
        pub run_id: String,
        pub step_id: String,
        pub chat_id: String,
        pub tool: String,
        pub tool_call_id: String,
        pub turn: u32,
        pub input: Value,
        pub output: Option<String>,
        pub output_bytes: Option<u64>,
        pub started_at: String,
        pub finished_at: Option<String>,
        pub latency_ms: Option<u64>,
        pub outcome: Option<TraceOutcome>,
        pub error: Option<String>,
        pub usage: Option<Usage>,
    }
}

// ---- methods ----------------------------------------------------------------

/// Declares the requests: `Type = "method", Params => Result;`.
macro_rules! requests {
    ($($(#[$meta:meta])* $name:ident = $method:literal, $params:ty => $result:ty;)*) => {
        $(
            $(#[$meta])*
            #[derive(Debug)]
            pub enum $name {}
            impl Request for $name {
                type Params = $params;
                type Result = $result;
                const METHOD: &'static str = $method;
            }
        )*
        /// Every request a client may send, by method name.
        pub const REQUESTS: &[&str] = &[$($method),*];

        /// (method, params type, result type) of every request, for the client check.
        #[cfg(test)]
        pub fn describe_requests(reg: &mut super::shape::Registry) -> Vec<(&'static str, &'static str, &'static str)> {
            use super::shape::Describe;
            let mut out = Vec::new();
            $(
                <$params>::register(reg);
                <$result>::register(reg);
                out.push(($method, stringify!($params), stringify!($result)));
            )*
            out
        }
    };
}

/// Declares the notifications: `Type = "method", Params;`.
macro_rules! notifications {
    ($($(#[$meta:meta])* $name:ident = $method:literal, $params:ty;)*) => {
        $(
            $(#[$meta])*
            #[derive(Debug)]
            pub enum $name {}
            impl Notification for $name {
                type Params = $params;
                const METHOD: &'static str = $method;
            }
        )*
        /// Every notification the server sends, by method name.
        pub const NOTIFICATIONS: &[&str] = &[$($method),*];

        /// (method, params type) of every notification, for the client check.
        #[cfg(test)]
        pub fn describe_notifications(reg: &mut super::shape::Registry) -> Vec<(&'static str, &'static str)> {
            use super::shape::Describe;
            let mut out = Vec::new();
            $(
                <$params>::register(reg);
                out.push(($method, stringify!($params)));
            )*
            out
        }
    };
}

requests! {
    /// The catalog, with its problems.
    ListFlows = "boo/listFlows", ListFlowsParams => ListFlowsResult;
    /// Answers as soon as the run row exists; the run reports through notifications.
    LaunchFlow = "boo/launchFlow", LaunchFlowParams => LaunchFlowResult;
    /// The workflow catalog, with its problems.
    ListWorkflows = "boo/listWorkflows", ListWorkflowsParams => ListWorkflowsResult;
    /// A workflow script as a run; a script that does not compile is `-32602`; a
    /// project workflow in an untrusted root is `-32005`.
    LaunchWorkflow = "boo/launchWorkflow", LaunchWorkflowParams => LaunchWorkflowResult;
    ListRuns = "boo/listRuns", ListRunsParams => ListRunsResult;
    /// A background agent: a run of kind `"agent"` with one agent step `agent`;
    /// answers as soon as the run row exists.
    SpawnAgent = "boo/spawnAgent", SpawnAgentParams => SpawnAgentResult;
    /// Agent runs, newest first.
    ListAgents = "boo/listAgents", ListAgentsParams => ListAgentsResult;
    GetRun = "boo/getRun", GetRunParams => GetRunResult;
    /// An attachment's bytes; an unknown id is `-32001`.
    GetAttachment = "boo/getAttachment", GetAttachmentParams => GetAttachmentResult;
    /// Answers once the run has ended; a run that already ended is `-32004`.
    CancelRun = "boo/cancelRun", CancelRunParams => CancelRunResult;
    ExportRun = "boo/exportRun", ExportRunParams => ExportRunResult;
    GetTraces = "boo/getTraces", GetTracesParams => GetTracesResult;
    /// The model calls of a run (or one step), paged like `boo/getTraces`.
    GetModelCalls = "boo/getModelCalls", GetModelCallsParams => GetModelCallsResult;
    /// Trusts a root (its project flows may run) or revokes that trust.
    TrustRoot = "boo/trustRoot", TrustRootParams => TrustRootResult;
}

notifications! {
    /// A run's first notification.
    RunStarted = "boo/runStarted", RunStartedParams;
    StepUpdated = "boo/stepUpdated", StepUpdatedParams;
    AgentStream = "boo/agentStream", AgentStreamParams;
    TraceNote = "boo/trace", TraceParams;
    /// Sent before the added step's first `boo/stepUpdated` or `boo/agentStream`.
    StepAdded = "boo/stepAdded", StepAddedParams;
    RunLog = "boo/runLog", RunLogParams;
    ModelCallNote = "boo/modelCall", ModelCallParams;
}

/// `workspace/executeCommand` commands (for generic LSP clients): the argument is the
/// same object as the request's params.
pub const LAUNCH_FLOW_COMMAND: &str = "boo.launchFlow";
pub const CANCEL_RUN_COMMAND: &str = "boo.cancelRun";

/// The other types clients read (outside any request or notification).
#[cfg(test)]
pub fn describe_others(reg: &mut super::shape::Registry) -> Vec<&'static str> {
    use super::shape::Describe;
    BooCapabilities::register(reg);
    vec!["BooCapabilities"]
}

// ---- internal ---------------------------------------------------------------
// Stand-ins for frames the input filter refused; no client ever sends them.

wire_struct! {
    /// Why the input filter refused a frame.
    pub struct RefusedFrame {
        pub reason: String,
    }
}

/// A refused frame that carried an id: answered `-32600`.
#[derive(Debug)]
pub enum InvalidRequest {}
impl Request for InvalidRequest {
    type Params = RefusedFrame;
    type Result = Value;
    const METHOD: &'static str = "boo/internal/invalidRequest";
}

/// A refused frame without an id: logged.
#[derive(Debug)]
pub enum MalformedMessage {}
impl Notification for MalformedMessage {
    type Params = RefusedFrame;
    const METHOD: &'static str = "boo/internal/malformedMessage";
}

#[cfg(test)]
mod tests {
    use super::super::shape::{Def, Registry};

    #[test]
    fn every_wire_type_describes_itself_with_samples() {
        let mut reg = Registry::default();
        let requests = super::describe_requests(&mut reg);
        let notes = super::describe_notifications(&mut reg);
        let others = super::describe_others(&mut reg);
        assert_eq!(requests.len(), super::REQUESTS.len());
        assert_eq!(notes.len(), super::NOTIFICATIONS.len());
        assert!(!others.is_empty());
        for (name, info) in &reg.types {
            assert!(!info.samples.is_empty(), "{name}");
            if let Def::Struct(fields) = &info.def {
                assert!(
                    info.samples[0].as_object().map(|o| o.len()) == Some(fields.len()),
                    "{name}: a full sample sends every field"
                );
            }
        }
    }
}
