// The run timeline: steps as lanes, model turns (model calls) and tool calls (traces) as
// blocks on one time axis; and the "restore" of a pane as it was at the end of a turn.
// Pure (no vscode import): the timeline webview, the host and the unit tests share it.

import type { GetRunResult, ModelCall, Step, StreamEvent, Trace } from './protocol';

export type BlockKind = 'model' | 'tool' | 'step';

export interface TimelineBlock {
  kind: BlockKind;
  /** callId, traceId, or the stepId of a step without calls. */
  id: string;
  stepId: string;
  /** The model turn (model calls and tool calls); null for a step block. */
  turn: number | null;
  label: string;
  start: number;
  /** null while it runs (drawn up to the axis end). */
  end: number | null;
  leftPct: number;
  widthPct: number;
  /** model: ok | error | running; tool: the trace outcome; step: the step status. */
  status: string;
  /** Tool blocks that overlap a model block sit on a second row of the lane. */
  row: 0 | 1;
}

export interface TimelineLane {
  stepId: string;
  label: string;
  agent: string | null;
  kind: string;
  status: string;
  blocks: TimelineBlock[];
}

export interface TimelineTick {
  ms: number;
  leftPct: number;
  label: string;
}

export interface TimelineLayout {
  t0: number;
  t1: number;
  lanes: TimelineLane[];
  ticks: TimelineTick[];
}

/** Narrowest block, in percent of the axis, so a 0 ms tool call stays visible and clickable. */
export const MIN_BLOCK_PCT = 0.6;

const ms = (s: string | null | undefined): number | null => {
  if (!s) return null;
  const v = Date.parse(s);
  return Number.isNaN(v) ? null : v;
};

/** Tick spacing: the first of 1, 2, 5 × 10ⁿ ms that gives at most `max` ticks. */
export function tickStep(spanMs: number, max = 8): number {
  const steps = [100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000];
  return steps.find((s) => spanMs / s <= max) ?? Math.ceil(spanMs / max);
}

export function formatOffset(msValue: number): string {
  if (msValue < 60_000) return `${Math.round(msValue / 100) / 10}s`.replace(/\.0s$/, 's');
  const m = Math.floor(msValue / 60_000);
  const s = Math.round((msValue % 60_000) / 1000);
  return `${m}m${String(s).padStart(2, '0')}s`;
}

/**
 * Lays out a run: one lane per step that has a time (in the run's step order), model turns
 * and tool calls as blocks. `now` ends running blocks and running steps.
 */
export function timelineLayout(steps: Step[], calls: ModelCall[], traces: Trace[], now: number = Date.now()): TimelineLayout {
  const times: number[] = [];
  for (const s of steps) for (const t of [ms(s.startedAt), ms(s.finishedAt)]) if (t !== null) times.push(t);
  for (const c of calls) for (const t of [ms(c.startedAt), ms(c.finishedAt)]) if (t !== null) times.push(t);
  for (const t of traces) for (const v of [ms(t.startedAt), ms(t.finishedAt)]) if (v !== null) times.push(v);
  const anyRunning = calls.some((c) => !c.finishedAt) || steps.some((s) => s.status === 'running');
  if (anyRunning && times.length) times.push(Math.max(now, ...times));
  if (!times.length) return { t0: 0, t1: 0, lanes: [], ticks: [] };
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const span = Math.max(1, t1 - t0);
  const place = (start: number, end: number | null) => {
    const e = end ?? t1;
    return { leftPct: ((start - t0) / span) * 100, widthPct: Math.max(MIN_BLOCK_PCT, ((Math.max(e, start) - start) / span) * 100) };
  };
  const lanes: TimelineLane[] = [];
  const known = new Set(steps.map((s) => s.stepId));
  const extra = [...new Set([...calls.map((c) => c.stepId), ...traces.map((t) => t.stepId)])].filter((id) => !known.has(id));
  const laneSteps: Step[] = [...steps, ...extra.map((stepId) => ({ stepId, label: stepId, agent: null, kind: 'agent', status: 'completed', startedAt: null, finishedAt: null }) as unknown as Step)];
  for (const s of laneSteps) {
    const blocks: TimelineBlock[] = [];
    const model = calls.filter((c) => c.stepId === s.stepId).sort((a, b) => (ms(a.startedAt) ?? 0) - (ms(b.startedAt) ?? 0));
    for (const c of model) {
      const start = ms(c.startedAt);
      if (start === null) continue;
      const end = ms(c.finishedAt);
      const status = !c.finishedAt ? 'running' : c.error || (c.status !== null && c.status >= 400) ? 'error' : 'ok';
      blocks.push({ kind: 'model', id: c.callId, stepId: s.stepId, turn: c.turn, label: `turn ${c.turn}`, start, end, ...place(start, end), status, row: 0 });
    }
    const tools = traces.filter((t) => t.stepId === s.stepId).sort((a, b) => (ms(a.startedAt) ?? 0) - (ms(b.startedAt) ?? 0));
    for (const t of tools) {
      const start = ms(t.startedAt);
      if (start === null) continue;
      const end = ms(t.finishedAt) ?? (t.latencyMs !== null && t.latencyMs !== undefined ? start + t.latencyMs : null);
      const overlaps = blocks.some((b) => b.kind === 'model' && start < (b.end ?? t1) && (end ?? t1) > b.start);
      blocks.push({ kind: 'tool', id: t.traceId, stepId: s.stepId, turn: t.turn ?? null, label: t.tool, start, end, ...place(start, end), status: t.outcome ?? (t.finishedAt ? 'ok' : 'running'), row: overlaps ? 1 : 0 });
    }
    if (!blocks.length) {
      const start = ms(s.startedAt);
      if (start === null) continue;
      const end = ms(s.finishedAt) ?? (s.status === 'running' ? null : start);
      blocks.push({ kind: 'step', id: s.stepId, stepId: s.stepId, turn: null, label: s.agent ?? s.kind, start, end, ...place(start, end), status: s.status, row: 0 });
    }
    lanes.push({ stepId: s.stepId, label: s.label || s.stepId, agent: s.agent, kind: s.kind, status: s.status, blocks });
  }
  const step = tickStep(span);
  const ticks: TimelineTick[] = [];
  for (let t = 0; t <= span; t += step) ticks.push({ ms: t, leftPct: (t / span) * 100, label: formatOffset(t) });
  return { t0, t1, lanes, ticks };
}

/** The events of a transcript up to and including the messageComplete of `turn`. */
export function cutTranscript(events: StreamEvent[], turn: number): StreamEvent[] {
  let seen = 0;
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    if (e?.type === 'messageComplete') {
      seen = typeof e.turn === 'number' ? e.turn : seen + 1;
      if (seen >= turn) return events.slice(0, i + 1);
    }
  }
  return events.slice();
}

/** How many turns of a transcript ended. */
function turnsIn(events: StreamEvent[]): number {
  return events.filter((e) => e?.type === 'messageComplete').length;
}

/**
 * The run as it was when `stepId`'s model turn `turn` ended (rebuilt from the stored
 * transcripts, boo/getRun {transcript: true}): every step's transcript cut at its last
 * turn that ended by then (from its model calls; a step without calls is whole once it
 * finished and empty before it started), statuses as they were, no report yet.
 * Returns null when the turn has no finished model call.
 */
export function runAtTurn(run: GetRunResult, calls: ModelCall[], stepId: string, turn: number): { result: GetRunResult; at: number } | null {
  const call = calls.find((c) => c.stepId === stepId && c.turn === turn && c.finishedAt);
  const at = call ? ms(call.finishedAt) : null;
  if (!call || at === null) return null;
  const steps = run.steps.map((s) => {
    const started = ms(s.startedAt);
    const finished = ms(s.finishedAt);
    const events = s.transcript ?? [];
    let keep: StreamEvent[];
    if (s.stepId === stepId) keep = cutTranscript(events, turn);
    else {
      const mine = calls.filter((c) => c.stepId === s.stepId && c.finishedAt && (ms(c.finishedAt) ?? Infinity) <= at);
      if (finished !== null && finished <= at) keep = events.slice();
      else if (mine.length) keep = cutTranscript(events, Math.max(...mine.map((c) => c.turn)));
      else keep = [];
    }
    const done = finished !== null && finished <= at && !(s.stepId === stepId && turn < turnsIn(events));
    const status = done ? s.status : started !== null && started <= at ? 'running' : 'pending';
    const usage = done ? s.usage : { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, totalTokens: 0 };
    return {
      ...s,
      status,
      transcript: keep,
      lastSeq: undefined,
      output: done ? s.output : null,
      error: done ? s.error : null,
      finishedAt: done ? s.finishedAt : null,
      usage: done ? usage : addTurns(keep),
      turns: (s.turns ?? []).filter((t) => t.turn <= turnsIn(keep)),
    } as Step;
  });
  const runDone = run.run.finishedAt !== null && (ms(run.run.finishedAt) ?? Infinity) <= at;
  return {
    at,
    result: {
      ...run,
      report: runDone ? run.report : null,
      run: { ...run.run, status: runDone ? run.run.status : 'running', finishedAt: runDone ? run.run.finishedAt : null },
      steps,
    },
  };
}

function addTurns(events: StreamEvent[]) {
  const u = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, totalTokens: 0 };
  for (const e of events) {
    if (e?.type !== 'messageComplete' || !e.usage) continue;
    u.inputTokens += e.usage.inputTokens ?? 0;
    u.outputTokens += e.usage.outputTokens ?? 0;
    u.cacheReadTokens += e.usage.cacheReadTokens ?? 0;
    u.totalTokens += e.usage.totalTokens ?? 0;
  }
  return u;
}
