// Wire types of the boo protocol (version 1): docs/protocol.md, declared in Rust in
// src/lsp/ext.rs. tests/wire_types.rs fails when a type here and its Rust twin differ
// (a field missing or extra, optional or nullable differently, of another type).

export type Band = 'small' | 'medium' | 'large';
export type Category = 'analysis' | 'discovery' | 'planning' | 'authoring' | 'review';
export type RunStatus = 'running' | 'completed' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'running' | 'completed' | 'failed' | 'skipped' | 'cancelled';

export const BANDS: Band[] = ['small', 'medium', 'large'];
export const CATEGORIES: Category[] = ['analysis', 'discovery', 'planning', 'authoring', 'review'];

/**
 * Token counts. The server always sends every field; here they are optional because
 * the reducer also uses this type for partial sums (tests/wire_types.rs lists that).
 */
export interface Usage {
  inputTokens?: number;
  outputTokens?: number;
  cacheReadTokens?: number;
  totalTokens?: number;
  /** cache-read / input; null without input. */
  cacheHitRate?: number | null;
}

export type StepKind = 'agent' | 'code' | 'script';
export type TraceOutcome = 'ok' | 'error' | 'denied';
export type TracePhase = 'start' | 'finish';
export type ModelCallPhase = 'start' | 'finish';
export type ExportFormat = 'markdown' | 'json';
/** Where a flow comes from; a project flow runs only in a trusted root. */
export type FlowSource = 'builtin' | 'project';
/** Where a workflow comes from; a project workflow runs only in a trusted root. */
export type WorkflowSource = 'builtin' | 'user' | 'project';

export interface Flow {
  name: string;
  title: string;
  category: Category;
  description: string;
  bands: FlowBands;
  waves: FlowWaves;
  agents: FlowAgent[];
  source: FlowSource;
  /** The file it was read from (`builtin:<file>` for the copy inside boo). */
  path: string;
}

/** The step ids each band runs. */
export type FlowBands = Record<Band, string[]>;
/** How many waves each band plans (a band whose plan fails is left out). */
export type FlowWaves = Partial<Record<Band, number>>;

export interface FlowAgent {
  stepId: string;
  persona: string;
  /** The smallest band that runs it. */
  band: Band;
  /** Whether a `when` condition gates it. */
  when: boolean;
}

export interface CatalogError {
  file: string;
  field: string;
  message: string;
}

/** A workflow of the catalog (`boo/listWorkflows`). */
export interface Workflow {
  /** The name to launch it by (`project:<name>` when a project workflow's own name is taken). */
  name: string;
  description: string;
  whenToUse: string | null;
  phases: WorkflowPhase[];
  source: WorkflowSource;
  /** The file it was read from (`builtin:workflows/<file>` for the copy inside boo). */
  path: string;
}

/** One entry of a workflow's `meta.phases`. */
export interface WorkflowPhase {
  title: string;
  detail: string | null;
}

/** A workflow file that cannot be listed. */
export interface WorkflowError {
  file: string;
  line?: number;
  column?: number;
  message: string;
}

export interface RunSummary {
  runId: string;
  flow: string;
  /** null for a workflow run. */
  band: Band | null;
  status: RunStatus;
  question: string;
  root: string;
  createdAt: string;
  finishedAt: string | null;
  /** 'flow', 'workflow' or 'agent'. */
  kind: string;
}

/** A background agent (boo/listAgents). */
export interface AgentSummary extends RunSummary {
  persona: string;
  /** The run and step that spawned it, for a child of an agent step. */
  parentRunId: string | null;
  parentStepId: string | null;
  /** The tokens its agent has used so far. */
  usage: Usage;
}

export interface Run extends RunSummary {
  model: string | null;
  error: string | null;
  usage: Usage;
  fast: boolean;
  title: string | null;
  /** 'flow' or 'workflow'. */
  kind: string;
  /** A workflow run's { name, source, path, args, budget: { total, spent } }. */
  workflow?: unknown;
  /** A completed workflow run's return value. */
  result?: unknown;
  /** A workflow run's log. */
  log?: RunLogLine[];
  /** The images the run's agents get with their prompts, in launch order. */
  attachments: Attachment[];
}

/** An image of a run; its bytes come with boo/getAttachment. */
export interface Attachment {
  attachmentId: string;
  name: string;
  /** Read from the bytes: image/png, image/jpeg, image/gif or image/webp. */
  mimeType: string;
  bytes: number;
  sha256: string;
  width: number;
  height: number;
}

/** An image given at launch: { name, mimeType?, data } (base64) or { path }. */
export interface LaunchAttachment {
  name?: string;
  mimeType?: string;
  data?: string;
  path?: string;
}

/** One line of `Run.log`. */
export interface RunLogLine {
  seq: number;
  kind: string;
  message: string;
  at: string;
}

export type StreamEvent =
  | { type: 'text'; text: string }
  | { type: 'thinking'; text: string }
  | { type: 'toolCall'; toolCallId: string; name: string; input: unknown }
  | { type: 'toolResult'; toolCallId: string; isError: boolean; content: string }
  | { type: 'messageComplete'; usage: Usage; turn: number };

export interface StepInfo {
  stepId: string;
  /** The server always names the agent (or code function); null here for the reducer's placeholders. */
  agent: string | null;
  kind: StepKind;
  label: string;
  wave: number;
  chatId: string | null;
  status: StepStatus;
}

export interface Step extends StepInfo {
  output: string | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  usage: Usage;
  /** 1 for the first dispatch, more after a resume. */
  attempt: number;
  /** qwen version, offered tools, sandbox state, exit code, denied calls, changed paths. */
  meta?: unknown;
  /** With `transcript: true`. */
  transcript?: StreamEvent[];
  lastSeq?: number;
  /** Every model turn's usage. */
  turns: TurnUsage[];
  /** The step that started this one (steps added while the run ran). */
  parentStepId: string | null;
  /** A workflow's phase label. */
  phase: string | null;
  /** The content key of a workflow agent's cached result. */
  cacheKey?: string;
  /** Answered from the workflow cache (no agent process ran). */
  cached?: boolean;
}

export interface TurnUsage {
  turn: number;
  usage: Usage;
}

export interface Trace {
  traceId: string;
  runId: string;
  stepId: string;
  chatId: string;
  tool: string;
  toolCallId: string;
  turn: number;
  input: unknown;
  output: string | null;
  /** The full size when `output` is capped. */
  outputBytes: number | null;
  startedAt: string;
  finishedAt: string | null;
  latencyMs: number | null;
  outcome: TraceOutcome | null;
  error: string | null;
  usage: Usage | null;
}

/** One part of a model request: system prompt, tool schemas, a message. */
export interface ModelCallSegment {
  /** `system`, `tools`, `history`, `toolResult`, `new` or `image`. */
  kind: string;
  label: string;
  bytes: number;
  hash: string;
  estTokens: number;
  /** `full`, `partial` or `none`: its share of the expected cached prefix. */
  cached: string;
}

/** One model call an agent made through boo's model proxy. */
export interface ModelCall {
  callId: string;
  runId: string;
  stepId: string;
  chatId: string;
  turn: number;
  startedAt: string;
  finishedAt: string | null;
  ttftMs: number | null;
  durationMs: number | null;
  status: number | null;
  error: string | null;
  promptTokens: number | null;
  cachedTokens: number | null;
  completionTokens: number | null;
  tokensPerSecond: number | null;
  cacheDialect: string | null;
  requestBytes: number;
  expectedCachedTokens: number;
  missReason: string | null;
  segments: ModelCallSegment[];
}

/** `initialize` → `capabilities.experimental.boo`. */
export interface BooCapabilities {
  protocolVersion: number;
  methods: string[];
  notifications: string[];
  cancelEndedRun: string;
  /** The groups of additions this server supports (`"workflows"`). */
  features: string[];
}

// ---- requests ------------------------------------------------------------

export interface ListFlowsParams {
  root?: string;
}
export interface ListFlowsResult {
  flows: Flow[];
  errors: CatalogError[];
  /** Whether the user trusts the root: its project flows run only then. */
  trusted: boolean;
}

export interface ListWorkflowsParams {
  root?: string;
}
export interface ListWorkflowsResult {
  workflows: Workflow[];
  errors: WorkflowError[];
  /** Whether the user trusts the root: its project workflows run only then. */
  trusted: boolean;
}

export interface TrustRootParams {
  root: string;
  /** false revokes the trust. */
  trusted: boolean;
}
export interface TrustRootResult {
  /** The canonical path that was recorded. */
  root: string;
  trusted: boolean;
}

export interface LaunchFlowParams {
  flow: string;
  band?: Band;
  input: LaunchInput;
  root?: string;
  model?: string;
  fast?: boolean;
  attachments?: LaunchAttachment[];
  visionModel?: boolean;
}
export interface LaunchInput {
  question: string;
}
export interface LaunchFlowResult {
  runId: string;
}

/** Exactly one of `workflow`, `script` and `scriptPath`. */
export interface LaunchWorkflowParams {
  workflow?: string;
  script?: string;
  scriptPath?: string;
  args?: unknown;
  root?: string;
  model?: string;
  budget?: number;
  fresh?: boolean;
  attachments?: LaunchAttachment[];
  visionModel?: boolean;
}
export interface LaunchWorkflowResult {
  runId: string;
}

export interface SpawnAgentParams {
  persona: string;
  prompt: string;
  root?: string;
  model?: string;
  attachments?: LaunchAttachment[];
  visionModel?: boolean;
}
export interface SpawnAgentResult {
  runId: string;
}

export interface ListAgentsParams {
  /** Absent: the workspace root's agents; null: every project's agents. */
  root?: string | null;
  status?: RunStatus;
  limit?: number;
}
export interface ListAgentsResult {
  agents: AgentSummary[];
}

export interface ListRunsParams {
  /** Absent: the workspace root's runs; null: every project's runs. */
  root?: string | null;
  limit?: number;
  before?: string;
}
export interface ListRunsResult {
  runs: RunSummary[];
  next: string | null;
}

export interface GetRunParams {
  runId: string;
  transcript?: boolean;
}
export interface GetRunResult {
  run: Run;
  steps: Step[];
  report: string | null;
}

export interface GetAttachmentParams {
  attachmentId: string;
}
export interface GetAttachmentResult {
  name: string;
  mimeType: string;
  /** The image, base64. */
  data: string;
}

export interface CancelRunParams {
  runId: string;
}
export interface CancelRunResult {
  runId: string;
  status: RunStatus;
}

export interface ExportRunParams {
  runId: string;
  format?: ExportFormat;
}
export interface ExportRunResult {
  content: string;
  fileName: string;
}

export interface GetTracesParams {
  runId: string;
  stepId?: string;
  cursor?: string;
  limit?: number;
}
export interface GetTracesResult {
  traces: Trace[];
  nextCursor: string | null;
}

export interface GetModelCallsParams {
  runId: string;
  stepId?: string;
  cursor?: string;
  limit?: number;
}
export interface GetModelCallsResult {
  calls: ModelCall[];
  nextCursor: string | null;
}

/** Every request: its params and result. */
export interface Requests {
  'boo/listFlows': { params: ListFlowsParams; result: ListFlowsResult };
  'boo/launchFlow': { params: LaunchFlowParams; result: LaunchFlowResult };
  'boo/listWorkflows': { params: ListWorkflowsParams; result: ListWorkflowsResult };
  'boo/launchWorkflow': { params: LaunchWorkflowParams; result: LaunchWorkflowResult };
  'boo/listRuns': { params: ListRunsParams; result: ListRunsResult };
  'boo/spawnAgent': { params: SpawnAgentParams; result: SpawnAgentResult };
  'boo/listAgents': { params: ListAgentsParams; result: ListAgentsResult };
  'boo/getRun': { params: GetRunParams; result: GetRunResult };
  'boo/getAttachment': { params: GetAttachmentParams; result: GetAttachmentResult };
  'boo/cancelRun': { params: CancelRunParams; result: CancelRunResult };
  'boo/exportRun': { params: ExportRunParams; result: ExportRunResult };
  'boo/getTraces': { params: GetTracesParams; result: GetTracesResult };
  'boo/getModelCalls': { params: GetModelCallsParams; result: GetModelCallsResult };
  'boo/trustRoot': { params: TrustRootParams; result: TrustRootResult };
}

// ---- notifications -------------------------------------------------------

export interface RunStartedParams {
  runId: string;
  flow: string;
  /** null for a workflow run. */
  band: Band | null;
  question: string;
  root: string;
  status: RunStatus;
  title: string;
  createdAt: string;
  /** A run that resumes after a restart starts again. */
  resumed: boolean;
  steps: StepInfo[];
}

export interface StepUpdatedParams {
  runId: string;
  stepId: string;
  /** Null only on a run that failed before any step (then `stepId` is empty). */
  status: StepStatus | null;
  runStatus?: RunStatus;
  report?: string;
  error?: string;
  /** On the run's last notification. */
  runError?: string;
  startedAt?: string;
  finishedAt?: string;
  usage?: Usage;
  /** On the run's last notification. */
  runUsage?: Usage;
  chatId?: string;
  agent?: string;
  kind?: StepKind;
  label?: string;
  wave?: number;
  output?: string;
  /** A workflow run's return value, on its last notification when it completed. */
  result?: unknown;
}

/** A step the run created while it ran (a workflow's `agent()` call). */
export interface AddedStep {
  stepId: string;
  agent: string;
  kind: StepKind;
  label: string;
  phase: string | null;
  wave: number;
  chatId: string | null;
  status: StepStatus;
  cached: boolean;
  parentStepId: string | null;
}

/** Sent before the added step's first `boo/stepUpdated` or `boo/agentStream`. */
export interface StepAddedParams {
  runId: string;
  step: AddedStep;
}

/** One line of a workflow run's log (`log()` or `phase()`). */
export interface RunLogParams {
  runId: string;
  /** 1, 2, 3, … per run. */
  seq: number;
  kind: string;
  message: string;
  at: string;
}

export interface AgentStreamParams {
  runId: string;
  stepId: string;
  chatId: string;
  /** 1, 2, 3, … per chatId. */
  seq: number;
  events: StreamEvent[];
}

/** A ModelCall and the phase it is sent in. */
export interface ModelCallParams extends ModelCall {
  phase: ModelCallPhase;
}

/** A Trace and the phase it is sent in. */
export interface TraceParams extends Trace {
  phase: TracePhase;
}

export type Notification =
  | { method: 'boo/runStarted'; params: RunStartedParams }
  | { method: 'boo/stepUpdated'; params: StepUpdatedParams }
  | { method: 'boo/agentStream'; params: AgentStreamParams }
  | { method: 'boo/trace'; params: TraceParams }
  | { method: 'boo/stepAdded'; params: StepAddedParams }
  | { method: 'boo/runLog'; params: RunLogParams }
  | { method: 'boo/modelCall'; params: ModelCallParams };

export const NOTIFICATION_METHODS = ['boo/runStarted', 'boo/stepUpdated', 'boo/agentStream', 'boo/trace', 'boo/stepAdded', 'boo/runLog', 'boo/modelCall'] as const;

export const RUN_TERMINAL: RunStatus[] = ['completed', 'failed', 'cancelled'];
export const STEP_TERMINAL: StepStatus[] = ['completed', 'failed', 'skipped', 'cancelled'];

export function isRunTerminal(s: string | undefined | null): boolean {
  return !!s && (RUN_TERMINAL as string[]).includes(s);
}
export function isStepTerminal(s: string | undefined | null): boolean {
  return !!s && (STEP_TERMINAL as string[]).includes(s);
}

/** Error codes of PROTOCOL.md. */
export const ErrorCodes = {
  InvalidParams: -32602,
  NotFound: -32001,
  AgentUnavailable: -32003,
  InvalidState: -32004,
} as const;
