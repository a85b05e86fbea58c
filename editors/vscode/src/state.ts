// The Orchestrator pane state and its reducer: notifications and getRun results in,
// pane state out. Pure (no IO, no clock, no DOM, no vscode): the extension host and
// the webview run the very same code, and the unit tests feed it plain data.
// It follows the same rules as the Neovim plugin's reducer: both are checked against the
// shared corpus tests/protocol-cases/ (see its README.md).

import {
  Attachment,
  Band,
  GetRunResult,
  Notification,
  Run,
  RunLogLine,
  RunStatus,
  Step,
  StepInfo,
  StepStatus,
  StepAddedParams,
  StepUpdatedParams,
  StreamEvent,
  Usage,
  isRunTerminal,
  isStepTerminal,
} from './protocol';

export type StreamItem =
  | { kind: 'text'; text: string }
  | { kind: 'thinking'; text: string }
  | { kind: 'tool'; toolCallId: string; name: string; input: unknown; result?: { isError: boolean; content: unknown } }
  | { kind: 'turn'; usage?: Usage };

export interface StepView extends StepInfo {
  startedAt: string | null;
  finishedAt: string | null;
  usage: Usage | null;
  error: string | null;
  output: string | null;
  /** Highest stream seq applied for this step's chatId (0 = none). */
  lastSeq: number;
  items: StreamItem[];
  /** Usage summed over the stream's messageComplete events (live token count). */
  streamUsage: Usage;
  /** Stream chunks that arrived ahead of a missing seq, waiting for it. */
  pending: { seq: number; events: StreamEvent[] }[];
  /** A seq is missing: the client must refetch the transcript (boo/getRun). */
  gap: boolean;
  /** State activity counter value of the last stream chunk (for auto-follow). */
  lastActivity: number;
  /** 1, then 2… when the step is dispatched again (after a server restart) with a new chatId. */
  attempt: number;
  /** A workflow agent's phase (`phase()` or `opts.phase`); null outside any phase. */
  phase: string | null;
  /** A workflow agent answered from the content-addressed cache (no agent process ran). */
  cached: boolean;
  /** The step that started this one (a workflow's agents: the script step). */
  parentStepId: string | null;
  /** Order of first appearance in this pane (workflow agents show by phase, then by it). */
  order: number;
}

/** What the pane knows of a workflow run beyond the notifications (`Run.workflow`). */
export interface WorkflowInfo {
  name: string | null;
  source: string | null;
  path: string | null;
  args: unknown;
  /** The token budget (output tokens); null without one. */
  budgetTotal: number | null;
  /** `meta.phases` titles, in the script's order. */
  phases: string[];
}

export type Selection = { mode: 'auto' } | { mode: 'user'; stepId: string | null };

export interface PaneState {
  runId: string;
  /** false until boo/runStarted or a getRun result gave the roster. */
  hydrated: boolean;
  flow: string;
  band: Band;
  question: string;
  root: string;
  status: RunStatus;
  /** 'workflow' for a workflow run (a script step, a stepAdded, or getRun says so). */
  kind: 'flow' | 'workflow';
  workflow: WorkflowInfo | null;
  /** A workflow run's log (`log()` and `phase()` lines), by seq. */
  log: RunLogLine[];
  /** A completed workflow run's return value (undefined until known). */
  result?: unknown;
  /** The run's images (`Run.attachments` of a getRun answer), in launch order; [] for none. */
  attachments: Attachment[];
  model: string | null;
  error: string | null;
  report: string | null;
  usage: Usage | null;
  createdAt: string | null;
  finishedAt: string | null;
  /** Client clock (ms) when the run was first seen, used when createdAt is unknown. */
  seenAtMs: number | null;
  steps: StepView[];
  selection: Selection;
  /** The step the pane follows when the user has not picked one. */
  autoStepId: string | null;
  /** Some step has a seq gap: refetch with boo/getRun {transcript: true}. */
  needsResync: boolean;
  /** Notifications received before the roster was known; replayed on hydration. */
  buffer: Notification[];
  /** Monotonic counter bumped by every applied stream chunk. */
  activity: number;
  /** Counters for tests and diagnostics. */
  stats: { duplicates: number; gaps: number; applied: number };
  /** The next step's order of first appearance. */
  nextOrder: number;
}

export type Action =
  | { type: 'notification'; notification: Notification; now?: number }
  | { type: 'hydrate'; result: GetRunResult; now?: number }
  /** Run-level facts of a getRun answer (workflow, log, result) without touching the steps. */
  | { type: 'runInfo'; run: Run }
  | { type: 'select'; stepId: string | null }
  | { type: 'follow' };

/** A placeholder for a run whose roster is not known yet (e.g. opened from history). */
export function emptyState(runId: string): PaneState {
  return {
    runId,
    hydrated: false,
    flow: '',
    band: 'small',
    question: '',
    root: '',
    status: 'running',
    kind: 'flow',
    workflow: null,
    log: [],
    attachments: [],
    model: null,
    error: null,
    report: null,
    usage: null,
    createdAt: null,
    finishedAt: null,
    seenAtMs: null,
    steps: [],
    selection: { mode: 'auto' },
    autoStepId: null,
    needsResync: false,
    buffer: [],
    activity: 0,
    stats: { duplicates: 0, gaps: 0, applied: 0 },
    nextOrder: 0,
  };
}

type NewStepInfo = Partial<StepInfo> & { stepId: string; phase?: string | null; cached?: boolean; parentStepId?: string | null };

function newStep(info: NewStepInfo, order = 0): StepView {
  return {
    stepId: info.stepId,
    agent: info.agent ?? null,
    kind: info.kind ?? 'agent',
    label: info.label ?? info.stepId,
    wave: info.wave ?? 0,
    chatId: info.chatId ?? null,
    status: info.status ?? 'pending',
    startedAt: null,
    finishedAt: null,
    usage: null,
    error: null,
    output: null,
    lastSeq: 0,
    items: [],
    streamUsage: {},
    pending: [],
    gap: false,
    lastActivity: 0,
    attempt: 1,
    phase: info.phase ?? null,
    cached: info.cached === true,
    parentStepId: info.parentStepId ?? null,
    order,
  };
}

/** Adds a step in its place (and counts its order of first appearance). */
function pushStep(state: PaneState, info: NewStepInfo): PaneState {
  const created = newStep(info, state.nextOrder);
  return { ...state, nextOrder: state.nextOrder + 1, steps: sortSteps([...state.steps, created]) };
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Whether `chatId` is a newer attempt of the step than its current chat. A step that is
 * dispatched again (a run resumed after a server restart) gets a new chatId whose seq
 * starts at 1 again. Time-ordered (v7) ids tell a newer chat from a stale one.
 */
function isNewerChat(current: string | null, chatId: string | null | undefined): boolean {
  if (!chatId || !current || chatId === current) return false;
  if (UUID_V7.test(current) && UUID_V7.test(chatId)) return chatId.toLowerCase() > current.toLowerCase();
  return true;
}

/** The step's stream restarts for a new attempt (new chatId). */
function newAttempt(step: StepView, chatId: string): StepView {
  return { ...step, chatId, lastSeq: 0, items: [], streamUsage: {}, pending: [], gap: false, attempt: step.attempt + 1, usage: null, output: null, error: null, finishedAt: null };
}

/**
 * An update naming a chat the step does not have, that is not a newer attempt of a step
 * still running, is about an earlier attempt (or a finished step): nothing of it applies
 * to the step.
 */
function isOtherAttempt(step: StepView, chatId: string | null | undefined): boolean {
  if (!chatId || !step.chatId || chatId === step.chatId) return false;
  return isStepTerminal(step.status) || !isNewerChat(step.chatId, chatId);
}

/** The wave a step joins when it first shows up without one: the last wave. */
function lastWave(state: PaneState): number {
  return state.steps.reduce((w, s) => Math.max(w, s.wave), 0);
}

/** A stepId that names a step: updates without one (absent or "") are about the run only. */
function namesStep(stepId: unknown): stepId is string {
  return typeof stepId === 'string' && stepId !== '';
}

function sortSteps(steps: StepView[]): StepView[] {
  // Stable: the server's order within a wave is kept.
  return steps
    .map((s, i) => ({ s, i }))
    .sort((a, b) => a.s.wave - b.s.wave || a.i - b.i)
    .map((x) => x.s);
}

function addUsage(a: Usage, b: Usage | undefined | null): Usage {
  if (!b) return a;
  return {
    inputTokens: (a.inputTokens ?? 0) + (b.inputTokens ?? 0),
    outputTokens: (a.outputTokens ?? 0) + (b.outputTokens ?? 0),
    cacheReadTokens: (a.cacheReadTokens ?? 0) + (b.cacheReadTokens ?? 0),
    totalTokens: (a.totalTokens ?? 0) + (b.totalTokens ?? 0),
  };
}

/** Folds stream events into display items (text deltas merge into one block). */
export function appendEvents(items: StreamItem[], events: StreamEvent[]): StreamItem[] {
  const out = items.slice();
  for (const ev of events) {
    const last = out[out.length - 1];
    switch (ev?.type) {
      case 'text':
      case 'thinking':
        if (typeof ev.text !== 'string' || ev.text === '') break;
        if (last && last.kind === ev.type) {
          out[out.length - 1] = { kind: ev.type, text: last.text + ev.text };
        } else {
          out.push({ kind: ev.type, text: ev.text });
        }
        break;
      case 'toolCall':
        out.push({ kind: 'tool', toolCallId: ev.toolCallId, name: ev.name, input: ev.input });
        break;
      case 'toolResult': {
        let idx = -1;
        for (let i = out.length - 1; i >= 0; i--) {
          const it = out[i];
          if (it.kind === 'tool' && it.toolCallId === ev.toolCallId) {
            idx = i;
            break;
          }
        }
        const result = { isError: !!ev.isError, content: ev.content };
        if (idx >= 0) {
          out[idx] = { ...(out[idx] as Extract<StreamItem, { kind: 'tool' }>), result };
        } else {
          out.push({ kind: 'tool', toolCallId: ev.toolCallId, name: '(unknown tool)', input: null, result });
        }
        break;
      }
      case 'messageComplete':
        out.push({ kind: 'turn', usage: ev.usage });
        break;
      default:
        // Unknown event types are ignored (the wire is append-only).
        break;
    }
  }
  return out;
}

function usageOfEvents(events: StreamEvent[]): Usage {
  let u: Usage = {};
  for (const ev of events) if (ev?.type === 'messageComplete') u = addUsage(u, ev.usage);
  return u;
}

/**
 * The step to follow: the running agent with the latest stream activity. Code steps are
 * followed only before any agent ran; between agents the last one stays open; once the
 * run has ended nothing is expanded (the report is on top).
 */
function recomputeAuto(state: PaneState): PaneState {
  let best: StepView | null = null;
  for (const s of state.steps) {
    if (s.status !== 'running' || s.kind !== 'agent') continue;
    if (!best || s.lastActivity > best.lastActivity) best = s;
  }
  let autoStepId: string | null;
  if (isRunTerminal(state.status)) autoStepId = null;
  else if (best) autoStepId = best.stepId;
  else if (state.autoStepId) autoStepId = state.autoStepId;
  else autoStepId = state.steps.find((s) => s.status === 'running')?.stepId ?? null;
  const needsResync = state.steps.some((s) => s.gap);
  if (autoStepId === state.autoStepId && needsResync === state.needsResync) return state;
  return { ...state, autoStepId, needsResync };
}

function replaceStep(state: PaneState, idx: number, step: StepView): PaneState {
  const steps = state.steps.slice();
  steps[idx] = step;
  return { ...state, steps };
}

function findStep(state: PaneState, stepId: string, chatId?: string | null): number {
  let idx = state.steps.findIndex((s) => s.stepId === stepId);
  if (idx < 0 && chatId) idx = state.steps.findIndex((s) => s.chatId === chatId);
  return idx;
}

/** Applies a stream chunk to a step: drops duplicates, holds chunks after a gap. */
function applyChunk(step: StepView, seq: number, events: StreamEvent[]): { step: StepView; dup: boolean; gapNow: boolean; applied: number } {
  if (!Number.isInteger(seq) || seq <= step.lastSeq || step.pending.some((p) => p.seq === seq)) {
    return { step, dup: true, gapNow: false, applied: 0 };
  }
  // A chunk of its chat proves the step runs.
  const status: StepStatus = step.status === 'pending' ? 'running' : step.status;
  if (seq > step.lastSeq + 1) {
    const pending = [...step.pending, { seq, events }].sort((a, b) => a.seq - b.seq);
    return { step: { ...step, pending, gap: true, status }, dup: false, gapNow: !step.gap, applied: 0 };
  }
  let items = appendEvents(step.items, events);
  let streamUsage = addUsage(step.streamUsage, usageOfEvents(events));
  let lastSeq = seq;
  let applied = 1;
  let pending = step.pending;
  while (pending.length && pending[0].seq <= lastSeq + 1) {
    const [head, ...rest] = pending;
    if (head.seq === lastSeq + 1) {
      items = appendEvents(items, head.events);
      streamUsage = addUsage(streamUsage, usageOfEvents(head.events));
      lastSeq = head.seq;
      applied++;
    }
    pending = rest;
  }
  return { step: { ...step, items, streamUsage, lastSeq, pending, gap: pending.length > 0, status }, dup: false, gapNow: false, applied };
}

/**
 * The run-level fields of a stepUpdated. The update that ends the run gives its status,
 * finish time, error (runError, else the named step's error for a failed run), usage
 * (runUsage) and report; once the run has ended nothing of it changes again. A report on
 * any other update only fills in a run that has none.
 */
function applyRunFields(state: PaneState, p: StepUpdatedParams, now: number | undefined): PaneState {
  if (isRunTerminal(state.status)) return state;
  let s = state;
  if (p.runStatus) s = { ...s, status: p.runStatus };
  if (isRunTerminal(s.status)) {
    s.finishedAt = p.finishedAt ?? s.finishedAt ?? (now !== undefined ? new Date(now).toISOString() : null);
    if (typeof p.report === 'string') s.report = p.report;
    if (p.runError) s.error = p.runError;
    else if (s.status === 'failed' && p.error) s.error = p.error;
    if (p.runUsage) s.usage = p.runUsage;
    if (p.result !== undefined) s.result = p.result;
  } else if (typeof p.report === 'string' && !s.report) {
    s = { ...s, report: p.report };
  }
  return s;
}

function applyStepUpdate(state: PaneState, p: StepUpdatedParams, now: number | undefined): PaneState {
  let s = state;
  if (namesStep(p.stepId)) {
    let idx = s.steps.findIndex((x) => x.stepId === p.stepId);
    if (idx < 0) {
      // A step the roster did not list: added, as an agent step labelled by its id in the
      // last wave unless the update says otherwise.
      s = pushStep(s, { stepId: p.stepId, agent: p.agent, kind: p.kind, label: p.label, wave: p.wave ?? lastWave(s), chatId: p.chatId });
      idx = s.steps.findIndex((x) => x.stepId === p.stepId);
    }
    let old = s.steps[idx];
    if (!isOtherAttempt(old, p.chatId)) {
      if (isNewerChat(old.chatId, p.chatId)) old = newAttempt(old, p.chatId!);
      const step: StepView = { ...old };
      // A terminal status never changes again (stale updates replayed after a refetch are ignored).
      if (!isStepTerminal(old.status) && p.status) step.status = p.status;
      if (p.startedAt !== undefined && p.startedAt !== null) step.startedAt = p.startedAt;
      if (p.finishedAt !== undefined && p.finishedAt !== null) step.finishedAt = p.finishedAt;
      if (p.usage) step.usage = p.usage;
      if (p.error !== undefined && p.error !== null) step.error = p.error;
      if (typeof p.output === 'string') step.output = p.output;
      if (p.chatId && !step.chatId) step.chatId = p.chatId;
      if (p.agent && !step.agent) step.agent = p.agent;
      if (p.label && step.label === step.stepId) step.label = p.label;
      s = replaceStep(s, idx, step);
    }
  }
  return applyRunFields(s, p, now);
}

function applyNotification(state: PaneState, n: Notification, now: number | undefined): PaneState {
  if (!n || !n.params || n.params.runId !== state.runId) return state;
  if (!state.hydrated && n.method !== 'boo/runStarted') {
    return { ...state, buffer: [...state.buffer, n] };
  }
  switch (n.method) {
    case 'boo/runStarted': {
      const p = n.params;
      const known = new Map(state.steps.map((s) => [s.stepId, s] as const));
      let nextOrder = state.nextOrder;
      const steps = sortSteps(
        (p.steps ?? []).map((info) => {
          const prev = known.get(info.stepId);
          if (prev) {
            if (isOtherAttempt(prev, info.chatId)) return prev;
            const base = isNewerChat(prev.chatId, info.chatId) ? newAttempt(prev, info.chatId!) : prev;
            return {
              ...base,
              agent: info.agent ?? prev.agent,
              kind: info.kind ?? prev.kind,
              label: info.label ?? prev.label,
              wave: info.wave ?? prev.wave,
              chatId: base.chatId ?? info.chatId,
              // The roster of a resumed run says where each unfinished step stands.
              status: isStepTerminal(base.status) ? base.status : (info.status ?? base.status),
            };
          }
          return newStep(info, nextOrder++);
        }),
      );
      // Keep steps we knew that the roster does not list (defensive).
      for (const prev of state.steps) if (!steps.some((s) => s.stepId === prev.stepId)) steps.push(prev);
      const isWorkflow = state.kind === 'workflow' || (p.steps ?? []).some((x) => x?.kind === 'script');
      let s: PaneState = {
        ...state,
        nextOrder,
        kind: isWorkflow ? 'workflow' : state.kind,
        hydrated: true,
        flow: p.flow ?? state.flow,
        band: p.band ?? state.band,
        question: p.question ?? state.question,
        root: p.root ?? state.root,
        createdAt: state.createdAt ?? p.createdAt ?? null,
        status: isRunTerminal(state.status) ? state.status : 'running',
        seenAtMs: state.seenAtMs ?? now ?? null,
        steps,
        buffer: [],
      };
      for (const b of state.buffer) s = applyNotification(s, b, now);
      return recomputeAuto(s);
    }
    case 'boo/stepUpdated':
      return recomputeAuto(applyStepUpdate(state, n.params, now));
    case 'boo/agentStream': {
      const p = n.params;
      let s = state;
      let idx = findStep(s, namesStep(p.stepId) ? p.stepId : '', p.chatId);
      if (idx < 0) {
        // No stepId and no known chat: nothing to show the chunk in.
        if (!namesStep(p.stepId)) return state;
        s = pushStep(s, { stepId: p.stepId, chatId: p.chatId, kind: 'agent', status: 'running', wave: lastWave(s) });
        idx = findStep(s, p.stepId, p.chatId);
      }
      let target = s.steps[idx];
      if (p.chatId && target.chatId && p.chatId !== target.chatId) {
        // Only a step update starts a new attempt: a chunk of another chat is a late one
        // of an earlier attempt, with nothing to show any more.
        return { ...s, stats: { ...s.stats, duplicates: s.stats.duplicates + 1 } };
      } else if (p.chatId && !target.chatId) {
        target = { ...target, chatId: p.chatId };
      }
      const r = applyChunk(target, p.seq, Array.isArray(p.events) ? p.events : []);
      const stats = {
        duplicates: s.stats.duplicates + (r.dup ? 1 : 0),
        gaps: s.stats.gaps + (r.gapNow ? 1 : 0),
        applied: s.stats.applied + r.applied,
      };
      if (r.dup) return { ...s, stats };
      const activity = r.applied ? s.activity + 1 : s.activity;
      const step = r.applied ? { ...r.step, lastActivity: activity } : r.step;
      s = { ...replaceStep(s, idx, step), activity, stats };
      return recomputeAuto(s);
    }
    case 'boo/stepAdded':
      return recomputeAuto(applyStepAdded(state, n.params.step));
    case 'boo/runLog':
      return { ...state, kind: 'workflow', log: mergeLog(state.log, [n.params]) };
    case 'boo/trace':
      return state;
    default:
      return state;
  }
}

/**
 * A step the run created while it ran (a workflow's `agent()` call): added in its place
 * with its phase, cached mark and parent; a step already known (the same stepId again,
 * e.g. after the script re-ran from the top on a restart) is updated like a stepUpdated
 * would: a newer chat starts a new attempt, a terminal status stays.
 */
function applyStepAdded(state: PaneState, info: StepAddedParams['step'] | undefined): PaneState {
  if (!info || !namesStep(info.stepId)) return state;
  // A child of an agent (spawn_subagent) leaves the run's kind as it is (rule 20); any
  // other added step is a workflow's agent.
  let s: PaneState = isChildOf(info.parentStepId) ? { ...state } : { ...state, kind: 'workflow' };
  const idx = s.steps.findIndex((x) => x.stepId === info.stepId);
  if (idx < 0) {
    return pushStep(s, {
      stepId: info.stepId,
      agent: info.agent,
      kind: info.kind ?? 'agent',
      label: info.label,
      wave: info.wave ?? lastWave(s),
      chatId: info.chatId,
      status: info.status ?? 'pending',
      phase: info.phase ?? null,
      cached: info.cached === true,
      parentStepId: info.parentStepId ?? null,
    });
  }
  let old = s.steps[idx];
  if (isOtherAttempt(old, info.chatId)) return s;
  if (isNewerChat(old.chatId, info.chatId)) old = newAttempt(old, info.chatId!);
  const step: StepView = {
    ...old,
    agent: info.agent ?? old.agent,
    kind: info.kind ?? old.kind,
    label: info.label ?? old.label,
    wave: info.wave ?? old.wave,
    chatId: old.chatId ?? info.chatId ?? null,
    phase: info.phase ?? old.phase,
    cached: info.cached === true || old.cached,
    parentStepId: info.parentStepId ?? old.parentStepId,
    status: isStepTerminal(old.status) || !info.status ? old.status : info.status,
  };
  s = replaceStep(s, idx, step);
  return { ...s, steps: sortSteps(s.steps) };
}

/** A parent that makes a step a child row: a step other than a workflow's script. */
function isChildOf(parentStepId: string | null | undefined): parentStepId is string {
  return typeof parentStepId === 'string' && parentStepId !== '' && parentStepId !== 'script';
}

/** The run's images from `Run.attachments` (kept as they were when the answer has none). */
function attachmentsOf(raw: unknown, prev: Attachment[]): Attachment[] {
  if (!Array.isArray(raw)) return prev;
  return raw
    .filter((a): a is Attachment => !!a && typeof a === 'object' && typeof (a as Attachment).attachmentId === 'string')
    .map((a) => ({
      attachmentId: a.attachmentId,
      name: String(a.name ?? a.attachmentId),
      mimeType: String(a.mimeType ?? ''),
      bytes: Number(a.bytes ?? 0),
      sha256: String(a.sha256 ?? ''),
      width: Number(a.width ?? 0),
      height: Number(a.height ?? 0),
    }));
}

/** Log lines by seq; a seq already there is kept (lines never change). */
function mergeLog(log: RunLogLine[], lines: unknown[] | null | undefined): RunLogLine[] {
  if (!Array.isArray(lines) || !lines.length) return log;
  const bySeq = new Map(log.map((l) => [l.seq, l] as const));
  let changed = false;
  for (const raw of lines) {
    const l = raw as Partial<RunLogLine> | null;
    if (!l || !Number.isInteger(l.seq) || bySeq.has(l.seq!)) continue;
    bySeq.set(l.seq!, { seq: l.seq!, kind: String(l.kind ?? 'log'), message: String(l.message ?? ''), at: String(l.at ?? '') });
    changed = true;
  }
  if (!changed) return log;
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** `Run.workflow` (or the same object on runStarted) folded into what the pane knows. */
function mergeWorkflow(prev: WorkflowInfo | null, raw: unknown): WorkflowInfo | null {
  if (!raw || typeof raw !== 'object') return prev;
  const w = raw as { name?: unknown; source?: unknown; path?: unknown; args?: unknown; budget?: { total?: unknown } | null; phases?: unknown };
  const phases = Array.isArray(w.phases)
    ? w.phases.map((x) => (typeof x === 'string' ? x : x && typeof x === 'object' ? (x as { title?: unknown }).title : null)).filter((t): t is string => typeof t === 'string')
    : null;
  const total = w.budget && typeof w.budget === 'object' ? w.budget.total : undefined;
  return {
    name: typeof w.name === 'string' ? w.name : prev?.name ?? null,
    source: typeof w.source === 'string' ? w.source : prev?.source ?? null,
    path: typeof w.path === 'string' ? w.path : prev?.path ?? null,
    args: 'args' in w ? w.args : prev?.args,
    budgetTotal: typeof total === 'number' ? total : total === null ? null : prev?.budgetTotal ?? null,
    phases: phases ?? prev?.phases ?? [],
  };
}

/** The run-level facts of a getRun answer: kind, workflow, log, result. */
function applyRunInfo(state: PaneState, run: Run | undefined | null): PaneState {
  if (!run || run.runId !== state.runId) return state;
  const isWorkflow = run.kind === 'workflow' || state.kind === 'workflow';
  return {
    ...state,
    kind: isWorkflow ? 'workflow' : 'flow',
    workflow: mergeWorkflow(state.workflow, run.workflow),
    log: mergeLog(state.log, run.log),
    result: run.result !== undefined && run.result !== null ? run.result : state.result,
    attachments: attachmentsOf(run.attachments, state.attachments),
  };
}

function stepFromRun(step: Step, prev: StepView | undefined, order: number): StepView {
  const transcript = Array.isArray(step.transcript) ? step.transcript : null;
  const meta = step.meta && typeof step.meta === 'object' ? (step.meta as { cached?: unknown }) : null;
  const cached = (step as { cached?: unknown }).cached === true || meta?.cached === true;
  const fromServer: StepView = {
    ...newStep({ ...step, cached }, prev?.order ?? order),
    startedAt: step.startedAt ?? null,
    finishedAt: step.finishedAt ?? null,
    usage: step.usage ?? null,
    error: step.error ?? null,
    output: step.output ?? null,
    lastSeq: typeof step.lastSeq === 'number' ? step.lastSeq : 0,
    attempt: typeof step.attempt === 'number' && step.attempt > 0 ? step.attempt : 1,
    items: transcript ? appendEvents([], transcript) : [],
    streamUsage: transcript ? usageOfEvents(transcript) : {},
  };
  if (!prev) return fromServer;
  if (prev.chatId && fromServer.chatId && prev.chatId !== fromServer.chatId) {
    // Different attempts: the newer one wins as a whole.
    return isNewerChat(prev.chatId, fromServer.chatId) ? { ...fromServer, attempt: Math.max(fromServer.attempt, prev.attempt + 1) } : prev;
  }
  // The client already holds a longer stream than the snapshot (notifications raced
  // ahead of the getRun answer): keep the client's stream, take the server's metadata.
  const keepStream = prev.lastSeq > fromServer.lastSeq || !transcript;
  const merged: StepView = {
    ...fromServer,
    status: isStepTerminal(prev.status) && !isStepTerminal(fromServer.status) ? prev.status : fromServer.status,
    items: keepStream ? prev.items : fromServer.items,
    streamUsage: keepStream ? prev.streamUsage : fromServer.streamUsage,
    lastSeq: keepStream ? prev.lastSeq : fromServer.lastSeq,
    pending: prev.pending.filter((p) => p.seq > (keepStream ? prev.lastSeq : fromServer.lastSeq)),
    lastActivity: prev.lastActivity,
    cached: fromServer.cached || prev.cached,
    phase: fromServer.phase ?? prev.phase,
    startedAt: fromServer.startedAt ?? prev.startedAt,
    finishedAt: fromServer.finishedAt ?? prev.finishedAt,
    usage: fromServer.usage ?? prev.usage,
    error: fromServer.error ?? prev.error,
    output: fromServer.output ?? prev.output,
  };
  // Drain what was waiting behind the gap, if it now connects.
  if (merged.pending.length) {
    const waiting = merged.pending;
    let st: StepView = { ...merged, pending: [], gap: false };
    for (const p of waiting) st = applyChunk(st, p.seq, p.events).step;
    return st;
  }
  return { ...merged, gap: false };
}

function hydrate(state: PaneState, result: GetRunResult, now: number | undefined): PaneState {
  const run = result?.run;
  if (!run || run.runId !== state.runId) return state;
  const prevById = new Map(state.steps.map((s) => [s.stepId, s] as const));
  let nextOrder = state.nextOrder;
  const steps = sortSteps((result.steps ?? []).map((st) => stepFromRun(st, prevById.get(st.stepId), prevById.has(st.stepId) ? 0 : nextOrder++)));
  const status: RunStatus = isRunTerminal(state.status) && !isRunTerminal(run.status) ? state.status : run.status;
  let s: PaneState = {
    ...state,
    hydrated: true,
    flow: run.flow,
    band: run.band ?? state.band,
    question: run.question,
    root: run.root,
    status,
    model: run.model ?? null,
    error: run.error ?? state.error,
    usage: run.usage ?? null,
    createdAt: run.createdAt ?? state.createdAt,
    finishedAt: run.finishedAt ?? state.finishedAt,
    seenAtMs: state.seenAtMs ?? now ?? null,
    report: result.report ?? state.report,
    steps,
    nextOrder,
    buffer: [],
  };
  s = applyRunInfo(s, run);
  for (const b of state.buffer) s = applyNotification(s, b, now);
  return recomputeAuto(s);
}

export function reduce(state: PaneState, action: Action): PaneState {
  switch (action.type) {
    case 'notification':
      return applyNotification(state, action.notification, action.now);
    case 'hydrate':
      return hydrate(state, action.result, action.now);
    case 'runInfo':
      return applyRunInfo(state, action.run);
    case 'select':
      return { ...state, selection: { mode: 'user', stepId: action.stepId } };
    case 'follow':
      return { ...state, selection: { mode: 'auto' } };
    default:
      return state;
  }
}

export function reduceAll(state: PaneState, actions: Action[]): PaneState {
  return actions.reduce(reduce, state);
}

// ---- derived values (used by the webview, the chat participant and the tests) ----

/** One group of a workflow run's agents: a phase (null: agents outside any phase). */
export interface PhaseGroup {
  title: string | null;
  steps: StepView[];
}

/**
 * A workflow run's agents grouped by phase: the phases of `meta.phases` first, in its
 * order, then the others by their first agent's appearance (agents outside any phase
 * form one group like the others); within a group, agents by first appearance. The
 * script step (and any other non-agent step) is not in a group.
 */
export function phaseGroups(state: PaneState): PhaseGroup[] {
  const meta = state.workflow?.phases ?? [];
  const groups = new Map<string | null, StepView[]>();
  const agents = state.steps.filter((s) => s.kind !== 'script' && !isChildRow(state, s)).sort((a, b) => a.order - b.order);
  for (const s of agents) {
    const key = s.phase ?? null;
    let list = groups.get(key);
    if (!list) groups.set(key, (list = []));
    list.push(s);
  }
  const rank = (title: string | null, first: number) => {
    const i = title === null ? -1 : meta.indexOf(title);
    return i >= 0 ? [0, i] : [1, first];
  };
  return [...groups.entries()]
    .map(([title, steps]) => ({ title, steps, r: rank(title, steps[0].order) }))
    .sort((a, b) => a.r[0] - b.r[0] || a.r[1] - b.r[1])
    .map(({ title, steps }) => ({ title, steps }));
}

/**
 * A row shown under its parent (rule 20): a step whose parent is a step of the run other
 * than a workflow's script (a child an agent spawned). A child whose parent the pane
 * does not know shows in its own place.
 */
export function isChildRow(state: PaneState, step: StepView): boolean {
  return isChildOf(step.parentStepId) && step.parentStepId !== step.stepId && state.steps.some((x) => x.stepId === step.parentStepId);
}

/** The children of a step, in order of appearance. */
export function childrenOf(state: PaneState, stepId: string): StepView[] {
  return state.steps.filter((s) => s.parentStepId === stepId && s.stepId !== stepId && isChildOf(s.parentStepId)).sort((a, b) => a.order - b.order);
}

/**
 * The rows of the pane in display order: a flow's by wave; a workflow's script first,
 * then its phase groups; every child right under its parent, after the parent's
 * earlier children.
 */
export function displaySteps(state: PaneState): StepView[] {
  const base =
    state.kind !== 'workflow'
      ? state.steps.filter((s) => !isChildRow(state, s))
      : [...state.steps.filter((s) => s.kind === 'script'), ...phaseGroups(state).flatMap((g) => g.steps)];
  if (base.length === state.steps.length) return base;
  const out: StepView[] = [];
  const placed = new Set<string>();
  const place = (s: StepView, depth: number) => {
    if (placed.has(s.stepId)) return;
    placed.add(s.stepId);
    out.push(s);
    if (depth < 8) for (const c of childrenOf(state, s.stepId)) place(c, depth + 1);
  };
  for (const s of base) place(s, 0);
  // A cycle of parents (never sent by the server) would leave rows out: they go last.
  for (const s of state.steps) if (!placed.has(s.stepId)) out.push(s);
  return out;
}

/** How deep a row sits under parents (0: a top-level row). */
export function childDepth(state: PaneState, step: StepView): number {
  let d = 0;
  let cur: StepView | undefined = step;
  const seen = new Set<string>();
  while (cur && isChildRow(state, cur) && !seen.has(cur.stepId) && d < 8) {
    seen.add(cur.stepId);
    d++;
    cur = state.steps.find((x) => x.stepId === cur!.parentStepId);
  }
  return d;
}

/**
 * Output tokens a workflow run has spent against its budget: the agents that ran
 * (final usage when known, else the stream's so far); cached answers cost nothing.
 */
export function budgetSpent(state: PaneState): number {
  let n = 0;
  for (const s of state.steps) {
    if (s.kind !== 'agent' || s.cached) continue;
    n += s.usage?.outputTokens ?? s.streamUsage.outputTokens ?? 0;
  }
  return n;
}

/** The one step whose stream is shown expanded. */
export function expandedStepId(state: PaneState): string | null {
  return state.selection.mode === 'user' ? state.selection.stepId : state.autoStepId;
}

export function stepTokens(step: StepView): number {
  return step.usage?.totalTokens ?? step.streamUsage.totalTokens ?? 0;
}

export function runTokens(state: PaneState): number {
  if (isRunTerminal(state.status) && state.usage?.totalTokens) return state.usage.totalTokens;
  return state.steps.reduce((n, s) => n + stepTokens(s), 0);
}

export function runStartMs(state: PaneState): number | null {
  const created = state.createdAt ? Date.parse(state.createdAt) : NaN;
  if (!Number.isNaN(created)) return created;
  const starts = state.steps.map((s) => (s.startedAt ? Date.parse(s.startedAt) : NaN)).filter((n) => !Number.isNaN(n));
  if (starts.length) return Math.min(...starts);
  return state.seenAtMs;
}

/** Elapsed milliseconds of the run at `now` (frozen once it finished). */
export function elapsedMs(state: PaneState, now: number): number | null {
  const start = runStartMs(state);
  if (start === null) return null;
  let end = now;
  if (isRunTerminal(state.status)) {
    const fin = state.finishedAt ? Date.parse(state.finishedAt) : NaN;
    const stepEnds = state.steps.map((s) => (s.finishedAt ? Date.parse(s.finishedAt) : NaN)).filter((n) => !Number.isNaN(n));
    end = !Number.isNaN(fin) ? fin : stepEnds.length ? Math.max(...stepEnds) : now;
  }
  return Math.max(0, end - start);
}

export function formatElapsed(ms: number | null): string {
  if (ms === null) return '–';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 10_000) return `${Math.round(ms / 100) / 10}s`;
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m ${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

export function formatTokens(n: number): string {
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  if (n >= 10_000) return `${Math.round(n / 1000)}k`;
  if (n >= 1000) return `${(n / 1000).toFixed(1)}k`;
  return String(n);
}

/** Share of the input tokens served from the model server's prompt cache (null without input). */
export function cacheHitRate(u: Usage | null | undefined): number | null {
  const input = u?.inputTokens ?? 0;
  if (!input) return null;
  return (u?.cacheReadTokens ?? 0) / input;
}

export function countByStatus(state: PaneState): Record<StepStatus, number> {
  const c: Record<StepStatus, number> = { pending: 0, running: 0, completed: 0, failed: 0, skipped: 0, cancelled: 0 };
  for (const s of state.steps) c[s.status] = (c[s.status] ?? 0) + 1;
  return c;
}

/** The first paragraph(s) of a report, up to the first second-level heading after the answer. */
export function reportSummary(report: string, maxChars = 1200): string {
  const lines = report.split(/\r?\n/);
  const out: string[] = [];
  let headings = 0;
  for (const line of lines) {
    if (/^##\s/.test(line)) {
      headings++;
      if (headings > 1) break;
    }
    out.push(line);
  }
  let text = out.join('\n').trim();
  if (text.length > maxChars) text = text.slice(0, maxChars).replace(/\s+\S*$/, '') + ' …';
  return text;
}
