// Wire types of the boo protocol (version 1), as documented in PROTOCOL.md.
// Only what the extension reads is typed; unknown fields are ignored.

export type Band = 'small' | 'medium' | 'large';
export type Category = 'analysis' | 'discovery' | 'planning' | 'authoring' | 'review';
export type RunStatus = 'running' | 'completed' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'running' | 'completed' | 'failed' | 'skipped' | 'cancelled';

export const BANDS: Band[] = ['small', 'medium', 'large'];
export const CATEGORIES: Category[] = ['analysis', 'discovery', 'planning', 'authoring', 'review'];

export interface Usage {
  inputTokens?: number;
  outputTokens?: number;
  cacheReadTokens?: number;
  totalTokens?: number;
}

export interface Flow {
  name: string;
  title: string;
  category: Category;
  description: string;
  bands: Record<Band, string[]>;
}

export interface RunSummary {
  runId: string;
  flow: string;
  band: Band;
  status: RunStatus;
  question: string;
  root: string;
  createdAt: string;
  finishedAt: string | null;
}

export interface Run extends RunSummary {
  model?: string | null;
  error?: string | null;
  usage?: Usage | null;
}

export type StreamEvent =
  | { type: 'text'; text: string }
  | { type: 'thinking'; text: string }
  | { type: 'toolCall'; toolCallId: string; name: string; input: unknown }
  | { type: 'toolResult'; toolCallId: string; isError: boolean; content: unknown }
  | { type: 'messageComplete'; usage?: Usage };

export interface StepInfo {
  stepId: string;
  agent: string | null;
  kind: 'agent' | 'code';
  label: string;
  wave: number;
  chatId: string | null;
  status: StepStatus;
}

export interface Step extends StepInfo {
  output?: string | null;
  error?: string | null;
  startedAt?: string | null;
  finishedAt?: string | null;
  usage?: Usage | null;
  transcript?: StreamEvent[];
  lastSeq?: number;
  /** docs/protocol.md extra: 1 for the first dispatch, more after a resume. */
  attempt?: number;
}

export interface GetRunResult {
  run: Run;
  steps: Step[];
  report: string | null;
}

export interface Trace {
  traceId: string;
  runId: string;
  stepId: string;
  chatId: string | null;
  tool: string;
  input: unknown;
  output: unknown;
  startedAt: string;
  finishedAt: string | null;
  latencyMs: number | null;
  outcome: 'ok' | 'error' | 'denied' | null;
  error: string | null;
  usage?: Usage | null;
}

// ---- notifications -------------------------------------------------------

export interface RunStartedParams {
  runId: string;
  flow: string;
  band: Band;
  question: string;
  root: string;
  status: 'running';
  steps: StepInfo[];
  /** Added by the server (not in PROTOCOL.md v1): when the run was created, and whether this start is a resume. */
  createdAt?: string;
  resumed?: boolean;
}

export interface StepUpdatedParams {
  runId: string;
  stepId: string;
  status: StepStatus;
  runStatus?: RunStatus;
  report?: string | null;
  error?: string | null;
  startedAt?: string | null;
  finishedAt?: string | null;
  usage?: Usage | null;
  // additions documented in the server facts
  chatId?: string | null;
  wave?: number;
  label?: string;
  agent?: string | null;
  kind?: 'agent' | 'code';
  output?: string | null;
  /** On the run's last notification (docs/protocol.md extras). */
  runError?: string | null;
  runUsage?: Usage | null;
}

export interface AgentStreamParams {
  runId: string;
  stepId: string;
  chatId: string;
  seq: number;
  events: StreamEvent[];
}

export interface TraceParams {
  runId: string;
  stepId: string;
  chatId: string | null;
  traceId: string;
  phase: 'start' | 'finish';
  tool: string;
  input: unknown;
  output?: unknown;
  startedAt: string;
  finishedAt?: string | null;
  latencyMs?: number | null;
  outcome?: 'ok' | 'error' | 'denied' | null;
  error?: string | null;
}

export type Notification =
  | { method: 'boo/runStarted'; params: RunStartedParams }
  | { method: 'boo/stepUpdated'; params: StepUpdatedParams }
  | { method: 'boo/agentStream'; params: AgentStreamParams }
  | { method: 'boo/trace'; params: TraceParams };

export const NOTIFICATION_METHODS = ['boo/runStarted', 'boo/stepUpdated', 'boo/agentStream', 'boo/trace'] as const;

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
