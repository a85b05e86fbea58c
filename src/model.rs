//! Plain domain types shared by every layer. They serialize to the wire shapes of
//! PROTOCOL.md (camelCase), but nothing here knows about JSON-RPC.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How large a roster a flow runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Small,
    Medium,
    Large,
}

impl Band {
    pub const ALL: [Band; 3] = [Band::Small, Band::Medium, Band::Large];
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Small => "small",
            Band::Medium => "medium",
            Band::Large => "large",
        }
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Band {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "small" => Ok(Band::Small),
            "medium" => Ok(Band::Medium),
            "large" => Ok(Band::Large),
            other => Err(format!(
                "unknown band {other:?}: use one of \"small\", \"medium\", \"large\""
            )),
        }
    }
}

/// The five launcher categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Analysis,
    Discovery,
    Planning,
    Authoring,
    Review,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::Analysis,
        Category::Discovery,
        Category::Planning,
        Category::Authoring,
        Category::Review,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Analysis => "analysis",
            Category::Discovery => "discovery",
            Category::Planning => "planning",
            Category::Authoring => "authoring",
            Category::Review => "review",
        }
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!("unknown category {s:?}: use one of analysis, discovery, planning, authoring, review")
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
    pub fn is_terminal(self) -> bool {
        self != RunStatus::Running
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(RunStatus::Running),
            "completed" => Ok(RunStatus::Completed),
            "failed" => Ok(RunStatus::Failed),
            "cancelled" => Ok(RunStatus::Cancelled),
            other => Err(format!("unknown run status {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }
    pub fn is_terminal(self) -> bool {
        !matches!(self, StepStatus::Pending | StepStatus::Running)
    }
}

impl FromStr for StepStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(StepStatus::Pending),
            "running" => Ok(StepStatus::Running),
            "completed" => Ok(StepStatus::Completed),
            "failed" => Ok(StepStatus::Failed),
            "skipped" => Ok(StepStatus::Skipped),
            "cancelled" => Ok(StepStatus::Cancelled),
            other => Err(format!("unknown step status {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Agent,
    Code,
    /// A workflow's script (one per workflow run, wave 0).
    Script,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Agent => "agent",
            StepKind::Code => "code",
            StepKind::Script => "script",
        }
    }
}

impl FromStr for StepKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "agent" => Ok(StepKind::Agent),
            "code" => Ok(StepKind::Code),
            "script" => Ok(StepKind::Script),
            other => Err(format!(
                "unknown step kind {other:?}: use \"agent\" or \"code\""
            )),
        }
    }
}

/// Token counts. `add` sums turns into steps and steps into runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.total_tokens += other.total_tokens;
    }
    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }
    /// These counts, each one that is 0 taken from `other` instead: what qwen reported,
    /// completed by what the model proxy read (qwen drops some servers' cached counts).
    pub fn or_from(self, other: Usage) -> Usage {
        let pick = |a: u64, b: u64| if a == 0 { b } else { a };
        Usage {
            input_tokens: pick(self.input_tokens, other.input_tokens),
            output_tokens: pick(self.output_tokens, other.output_tokens),
            cache_read_tokens: pick(self.cache_read_tokens, other.cache_read_tokens),
            total_tokens: pick(self.total_tokens, other.total_tokens),
        }
    }
    /// Share of input tokens served from the model server's prompt cache.
    pub fn cache_hit_rate(&self) -> Option<f64> {
        if self.input_tokens == 0 {
            None
        } else {
            Some(self.cache_read_tokens as f64 / self.input_tokens as f64)
        }
    }
}

/// Usage as sent on the wire: the counts plus the prompt-cache hit rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub total_tokens: u64,
    #[serde(default)]
    pub cache_hit_rate: Option<f64>,
}

impl WireUsage {
    /// The counts alone.
    pub fn counts(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_tokens: self.cache_read_tokens,
            total_tokens: self.total_tokens,
        }
    }
}

impl From<Usage> for WireUsage {
    fn from(u: Usage) -> Self {
        WireUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            total_tokens: u.total_tokens,
            cache_hit_rate: u.cache_hit_rate().map(|r| (r * 10000.0).round() / 10000.0),
        }
    }
}

/// One event of an agent's live stream (PROTOCOL.md, `StreamEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum StreamEvent {
    Text {
        text: String,
    },
    Thinking {
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    ToolCall {
        tool_call_id: String,
        name: String,
        input: serde_json::Value,
    },
    #[serde(rename_all = "camelCase")]
    ToolResult {
        tool_call_id: String,
        is_error: bool,
        content: String,
    },
    #[serde(rename_all = "camelCase")]
    MessageComplete {
        usage: WireUsage,
        #[serde(default)]
        turn: u32,
    },
}

impl StreamEvent {
    /// Text deltas of the same kind can be merged without changing meaning.
    pub fn try_merge(&mut self, next: &StreamEvent) -> bool {
        match (self, next) {
            (StreamEvent::Text { text }, StreamEvent::Text { text: more })
            | (StreamEvent::Thinking { text }, StreamEvent::Thinking { text: more }) => {
                text.push_str(more);
                true
            }
            _ => false,
        }
    }
}

/// The question and options a run was launched with (stored as `flow_runs.input`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInput {
    pub question: String,
    #[serde(default)]
    pub fast: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub run_id: String,
    pub flow: String,
    pub band: Band,
    pub status: RunStatus,
    pub question: String,
    pub root: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// `"flow"` or `"workflow"` (from the run's meta).
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub model: Option<String>,
    pub error: Option<String>,
    pub usage: WireUsage,
    pub fast: bool,
    pub title: Option<String>,
    /// `"flow"` or `"workflow"`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    pub usage: WireUsage,
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Vec<StreamEvent>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// The step that started this one (steps created while the run ran).
    #[serde(default)]
    pub parent_step_id: Option<String>,
    /// A workflow's phase label.
    #[serde(default)]
    pub phase: Option<String>,
    /// The content key a workflow agent's result is cached under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
}

/// One tool call of an agent step (PROTOCOL.md, `Trace`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub trace_id: String,
    pub run_id: String,
    pub step_id: String,
    pub chat_id: String,
    pub tool: String,
    pub tool_call_id: String,
    pub turn: u32,
    pub input: serde_json::Value,
    pub output: Option<String>,
    pub output_bytes: Option<u64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub latency_ms: Option<u64>,
    pub outcome: Option<TraceOutcome>,
    pub error: Option<String>,
    pub usage: Option<WireUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceOutcome {
    Ok,
    Error,
    Denied,
}

impl TraceOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceOutcome::Ok => "ok",
            TraceOutcome::Error => "error",
            TraceOutcome::Denied => "denied",
        }
    }
}

impl FromStr for TraceOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(TraceOutcome::Ok),
            "error" => Ok(TraceOutcome::Error),
            "denied" => Ok(TraceOutcome::Denied),
            other => Err(format!("unknown trace outcome {other:?}")),
        }
    }
}
