--- The boo wire types (protocol version 1) as LuaCATS annotations, and which
--- types each method carries. The server declares the same types in Rust
--- (src/lsp/ext.rs); tests/wire_types.rs fails when a class here and its Rust
--- twin differ: a field missing or extra, optional (`name?`) or nullable
--- (`T|nil`) differently, or of another type.
---
--- `name?` marks a field the server may leave out; `T|nil` one it always sends
--- but may send as null (Neovim decodes a JSON null in an object as nil).

---@alias boo.Band "small"|"medium"|"large"
---@alias boo.Category "analysis"|"discovery"|"planning"|"authoring"|"review"
---@alias boo.RunStatus "running"|"completed"|"failed"|"cancelled"
---@alias boo.StepStatus "pending"|"running"|"completed"|"failed"|"skipped"|"cancelled"
---@alias boo.StepKind "agent"|"code"|"script"
---@alias boo.TraceOutcome "ok"|"error"|"denied"
---@alias boo.TracePhase "start"|"finish"
---@alias boo.ModelCallPhase "start"|"finish"
---@alias boo.ExportFormat "markdown"|"json"
--- Where a flow comes from; a project flow runs only in a trusted root.
---@alias boo.FlowSource "builtin"|"project"
--- Where a workflow comes from; a project workflow runs only in a trusted root.
---@alias boo.WorkflowSource "builtin"|"user"|"project"

--- Token counts of a model turn, a step or a run.
---@class boo.Usage
---@field inputTokens integer
---@field outputTokens integer
---@field cacheReadTokens integer
---@field totalTokens integer
---@field cacheHitRate number|nil cache-read / input; nil without input

--- One event of an agent's live stream.
---@alias boo.StreamEvent boo.StreamEvent.Text|boo.StreamEvent.Thinking|boo.StreamEvent.ToolCall|boo.StreamEvent.ToolResult|boo.StreamEvent.MessageComplete

---@class boo.StreamEvent.Text
---@field type "text"
---@field text string

---@class boo.StreamEvent.Thinking
---@field type "thinking"
---@field text string

---@class boo.StreamEvent.ToolCall
---@field type "toolCall"
---@field toolCallId string
---@field name string
---@field input any

---@class boo.StreamEvent.ToolResult
---@field type "toolResult"
---@field toolCallId string
---@field isError boolean
---@field content string

---@class boo.StreamEvent.MessageComplete
---@field type "messageComplete"
---@field usage boo.Usage
---@field turn integer 1-based model turn of the step

---@class boo.Flow
---@field name string
---@field title string
---@field category boo.Category
---@field description string
---@field bands boo.FlowBands
---@field waves boo.FlowWaves
---@field agents boo.FlowAgent[]
---@field source boo.FlowSource
---@field path string the file it was read from (`builtin:<file>` for the copy inside boo)

--- The step ids each band runs.
---@class boo.FlowBands
---@field small string[]
---@field medium string[]
---@field large string[]

--- How many waves each band plans (a band whose plan fails is left out).
---@class boo.FlowWaves
---@field small? integer
---@field medium? integer
---@field large? integer

---@class boo.FlowAgent
---@field stepId string
---@field persona string
---@field band boo.Band the smallest band that runs it
---@field when boolean whether a `when` condition gates it

---@class boo.CatalogError
---@field file string
---@field field string
---@field message string

--- A workflow of the catalog (boo/listWorkflows).
---@class boo.Workflow
---@field name string the name to launch it by (`project:<name>` when a project workflow's own name is taken)
---@field description string
---@field whenToUse string|nil
---@field phases boo.WorkflowPhase[]
---@field source boo.WorkflowSource
---@field path string the file it was read from (`builtin:workflows/<file>` for the copy inside boo)

--- One entry of a workflow's `meta.phases`.
---@class boo.WorkflowPhase
---@field title string
---@field detail string|nil

--- A workflow file that cannot be listed.
---@class boo.WorkflowError
---@field file string
---@field line? integer
---@field column? integer
---@field message string

---@class boo.RunSummary
---@field runId string
---@field flow string
---@field band boo.Band|nil nil for a workflow run
---@field status boo.RunStatus
---@field question string
---@field root string
---@field createdAt string
---@field kind string "flow", "workflow" or "agent"
---@field finishedAt string|nil

---@class boo.Run : boo.RunSummary
---@field model string|nil
---@field error string|nil
---@field usage boo.Usage
---@field fast boolean
---@field title string|nil
---@field workflow? any a workflow run's { name, source, path, args, budget = { total, spent } }
---@field result? any a completed workflow run's return value
---@field log? boo.RunLogLine[] a workflow run's log
---@field attachments boo.Attachment[] the images the agents get, in launch order

--- An image of a run; its bytes come with boo/getAttachment.
---@class boo.Attachment
---@field attachmentId string
---@field name string
---@field mimeType string read from the bytes
---@field bytes integer
---@field sha256 string
---@field width integer
---@field height integer

--- An image given at launch: { name, mimeType?, data } (base64) or { path }.
---@class boo.LaunchAttachment
---@field name? string
---@field mimeType? string
---@field data? string
---@field path? string

--- One line of Run.log.
---@class boo.RunLogLine
---@field seq integer
---@field kind string
---@field message string
---@field at string

--- A step of the roster in boo/runStarted.
---@class boo.StepInfo
---@field stepId string
---@field agent string
---@field kind boo.StepKind
---@field label string
---@field wave integer
---@field chatId string|nil
---@field status boo.StepStatus

--- A step as boo/getRun returns it.
---@class boo.Step : boo.StepInfo
---@field output string|nil
---@field error string|nil
---@field startedAt string|nil
---@field finishedAt string|nil
---@field usage boo.Usage
---@field attempt integer 1 for the first dispatch, more after a resume
---@field meta? any qwen version, offered tools, sandbox state, exit code, …
---@field transcript? boo.StreamEvent[] with `transcript: true`
---@field lastSeq? integer with `transcript: true`
---@field turns boo.TurnUsage[] every model turn's usage
---@field parentStepId string|nil the step that started this one (steps added while the run ran)
---@field phase string|nil a workflow's phase label
---@field cacheKey? string the content key of a workflow agent's cached result
---@field cached boolean answered from the workflow cache (no agent process ran)

---@class boo.TurnUsage
---@field turn integer
---@field usage boo.Usage

--- One tool call of an agent step.
---@class boo.Trace
---@field traceId string
---@field runId string
---@field stepId string
---@field chatId string
---@field tool string
---@field toolCallId string
---@field turn integer
---@field input any
---@field output string|nil
---@field outputBytes integer|nil the full size when `output` is capped
---@field startedAt string
---@field finishedAt string|nil
---@field latencyMs integer|nil
---@field outcome boo.TraceOutcome|nil
---@field error string|nil
---@field usage boo.Usage|nil

--- One part of a model request: system prompt, tool schemas, a message.
---@class boo.ModelCallSegment
---@field kind string system, tools, history, toolResult, new or image
---@field label string
---@field bytes integer
---@field hash string
---@field estTokens integer
---@field cached string full, partial or none

--- One model call an agent made through boo's model proxy.
---@class boo.ModelCall
---@field callId string
---@field runId string
---@field stepId string
---@field chatId string
---@field turn integer
---@field startedAt string
---@field finishedAt string|nil
---@field ttftMs integer|nil
---@field durationMs integer|nil
---@field status integer|nil
---@field error string|nil
---@field promptTokens integer|nil
---@field cachedTokens integer|nil
---@field completionTokens integer|nil
---@field tokensPerSecond number|nil
---@field cacheDialect string|nil
---@field requestBytes integer
---@field expectedCachedTokens integer
---@field missReason string|nil
---@field segments boo.ModelCallSegment[]

--- initialize → capabilities.experimental.boo
---@class boo.BooCapabilities
---@field protocolVersion integer
---@field methods string[]
---@field notifications string[]
---@field cancelEndedRun string
---@field features string[] the groups of additions this server supports ("workflows")

-- ---- requests --------------------------------------------------------------

---@class boo.ListFlowsParams
---@field root? string

---@class boo.ListFlowsResult
---@field flows boo.Flow[]
---@field errors boo.CatalogError[]
---@field trusted boolean whether the user trusts the root: its project flows run only then

---@class boo.ListWorkflowsParams
---@field root? string

---@class boo.ListWorkflowsResult
---@field workflows boo.Workflow[]
---@field errors boo.WorkflowError[]
---@field trusted boolean whether the user trusts the root: its project workflows run only then

---@class boo.TrustRootParams
---@field root string
---@field trusted boolean false revokes the trust

---@class boo.TrustRootResult
---@field root string the canonical path that was recorded
---@field trusted boolean

---@class boo.LaunchFlowParams
---@field flow string
---@field band? boo.Band
---@field input boo.LaunchInput
---@field root? string
---@field model? string
---@field fast? boolean
---@field attachments? boo.LaunchAttachment[]
---@field visionModel? boolean

---@class boo.LaunchInput
---@field question string

---@class boo.LaunchFlowResult
---@field runId string

--- Exactly one of workflow, script and scriptPath.
---@class boo.LaunchWorkflowParams
---@field workflow? string
---@field script? string
---@field scriptPath? string
---@field args? any
---@field root? string
---@field model? string
---@field budget? integer
---@field fresh? boolean
---@field attachments? boo.LaunchAttachment[]
---@field visionModel? boolean

---@class boo.LaunchWorkflowResult
---@field runId string

---@class boo.AgentSummary : boo.RunSummary
---@field persona string
---@field parentRunId string|nil the run that spawned it (a child of an agent step)
---@field parentStepId string|nil
---@field usage boo.Usage the tokens its agent has used so far

---@class boo.SpawnAgentParams
---@field persona string
---@field prompt string
---@field root? string
---@field model? string
---@field attachments? boo.LaunchAttachment[]
---@field visionModel? boolean

---@class boo.SpawnAgentResult
---@field runId string

---@class boo.ListAgentsParams
---@field root? string|nil absent: the workspace root's agents; vim.NIL: every project's agents
---@field status? boo.RunStatus
---@field limit? integer

---@class boo.ListAgentsResult
---@field agents boo.AgentSummary[]

---@class boo.ListRunsParams
---@field root? string|nil absent: the workspace root's runs; vim.NIL: every project's runs
---@field limit? integer
---@field before? string

---@class boo.ListRunsResult
---@field runs boo.RunSummary[]
---@field next string|nil

---@class boo.GetRunParams
---@field runId string
---@field transcript? boolean

---@class boo.GetRunResult
---@field run boo.Run
---@field steps boo.Step[]
---@field report string|nil

---@class boo.GetAttachmentParams
---@field attachmentId string

---@class boo.GetAttachmentResult
---@field name string
---@field mimeType string
---@field data string base64

---@class boo.CancelRunParams
---@field runId string

---@class boo.CancelRunResult
---@field runId string
---@field status boo.RunStatus

---@class boo.ExportRunParams
---@field runId string
---@field format? boo.ExportFormat

---@class boo.ExportRunResult
---@field content string
---@field fileName string

---@class boo.GetTracesParams
---@field runId string
---@field stepId? string
---@field cursor? string
---@field limit? integer

---@class boo.GetTracesResult
---@field traces boo.Trace[]
---@field nextCursor string|nil

---@class boo.GetModelCallsParams
---@field runId string
---@field stepId? string
---@field cursor? string
---@field limit? integer

---@class boo.GetModelCallsResult
---@field calls boo.ModelCall[]
---@field nextCursor string|nil

-- ---- notifications ---------------------------------------------------------

---@class boo.RunStartedParams
---@field runId string
---@field flow string
---@field band boo.Band|nil nil for a workflow run
---@field question string
---@field root string
---@field status boo.RunStatus
---@field title string
---@field createdAt string
---@field resumed boolean a run that resumes after a restart starts again
---@field steps boo.StepInfo[]

--- A step changed; the run's last notification also carries runStatus.
---@class boo.StepUpdatedParams
---@field runId string
---@field stepId string
---@field status boo.StepStatus|nil nil only on a run that failed before any step
---@field runStatus? boo.RunStatus
---@field report? string
---@field error? string
---@field runError? string
---@field startedAt? string
---@field finishedAt? string
---@field usage? boo.Usage
---@field runUsage? boo.Usage
---@field chatId? string
---@field agent? string
---@field kind? boo.StepKind
---@field label? string
---@field wave? integer
---@field output? string
---@field result? any a workflow run's return value, on its last notification

--- A step the run created while it ran (a workflow's agent() call).
---@class boo.AddedStep
---@field stepId string
---@field agent string
---@field kind boo.StepKind
---@field label string
---@field phase string|nil
---@field wave integer
---@field chatId string|nil
---@field status boo.StepStatus
---@field cached boolean
---@field parentStepId string|nil

--- Sent before the added step's first stepUpdated or agentStream.
---@class boo.StepAddedParams
---@field runId string
---@field step boo.AddedStep

--- One line of a workflow run's log (log() or phase()).
---@class boo.RunLogParams
---@field runId string
---@field seq integer 1, 2, 3, … per run
---@field kind string
---@field message string
---@field at string

---@class boo.AgentStreamParams
---@field runId string
---@field stepId string
---@field chatId string
---@field seq integer 1, 2, 3, … per chatId
---@field events boo.StreamEvent[]

--- A Trace and the phase it is sent in.
---@class boo.TraceParams : boo.Trace
---@field phase boo.TracePhase

---@class boo.ModelCallParams : boo.ModelCall
---@field phase boo.ModelCallPhase

local M = {}

--- Each request's params and result class.
M.requests = {
  ['boo/listFlows'] = { params = 'boo.ListFlowsParams', result = 'boo.ListFlowsResult' },
  ['boo/launchFlow'] = { params = 'boo.LaunchFlowParams', result = 'boo.LaunchFlowResult' },
  ['boo/listWorkflows'] = { params = 'boo.ListWorkflowsParams', result = 'boo.ListWorkflowsResult' },
  ['boo/launchWorkflow'] = { params = 'boo.LaunchWorkflowParams', result = 'boo.LaunchWorkflowResult' },
  ['boo/listRuns'] = { params = 'boo.ListRunsParams', result = 'boo.ListRunsResult' },
  ['boo/spawnAgent'] = { params = 'boo.SpawnAgentParams', result = 'boo.SpawnAgentResult' },
  ['boo/listAgents'] = { params = 'boo.ListAgentsParams', result = 'boo.ListAgentsResult' },
  ['boo/getRun'] = { params = 'boo.GetRunParams', result = 'boo.GetRunResult' },
  ['boo/getAttachment'] = { params = 'boo.GetAttachmentParams', result = 'boo.GetAttachmentResult' },
  ['boo/cancelRun'] = { params = 'boo.CancelRunParams', result = 'boo.CancelRunResult' },
  ['boo/exportRun'] = { params = 'boo.ExportRunParams', result = 'boo.ExportRunResult' },
  ['boo/getTraces'] = { params = 'boo.GetTracesParams', result = 'boo.GetTracesResult' },
  ['boo/getModelCalls'] = { params = 'boo.GetModelCallsParams', result = 'boo.GetModelCallsResult' },
  ['boo/trustRoot'] = { params = 'boo.TrustRootParams', result = 'boo.TrustRootResult' },
}

--- Each notification's params class.
M.notifications = {
  ['boo/runStarted'] = 'boo.RunStartedParams',
  ['boo/stepUpdated'] = 'boo.StepUpdatedParams',
  ['boo/agentStream'] = 'boo.AgentStreamParams',
  ['boo/trace'] = 'boo.TraceParams',
  ['boo/stepAdded'] = 'boo.StepAddedParams',
  ['boo/runLog'] = 'boo.RunLogParams',
  ['boo/modelCall'] = 'boo.ModelCallParams',
}

return M
