// Model calls (boo/getModelCalls, boo/modelCall): what the trace view and the run timeline
// compute from them. Pure (no vscode import): the webviews and the unit tests share it.

import type { ModelCall, ModelCallParams, ModelCallSegment } from './protocol';

/** How much of a segment the server reused: from the start of the prompt, as reported. */
export type Reuse = 'cached' | 'partial' | 'uncached' | 'unknown';

export interface BarPart {
  kind: string;
  label: string;
  bytes: number;
  /** The segment's share of the prompt's real token count (its estimate scaled to promptTokens). */
  tokens: number;
  /** Width in percent of the bar. */
  widthPct: number;
  reuse: Reuse;
  /** The share of this segment the server reused (0..1). */
  reusedShare: number;
  /** The segment's share of the expected prefix, as the server computed it. */
  expected: ModelCallSegment['cached'];
}

export interface CallBar {
  parts: BarPart[];
  /** promptTokens, or the sum of the estimates when the server reported none. */
  tokens: number;
  /** Where the reported cached prefix ends, in percent of the bar (null: no cache field). */
  cachedPct: number | null;
  /** Where the expected cacheable prefix ends, in percent of the bar. */
  expectedPct: number;
  /** The server reused clearly less than expected (a miss reason applies). */
  short: boolean;
}

/** Replaces the call with the same callId (a finish replaces its start), else appends. */
export function mergeCall(calls: ModelCall[], call: ModelCall | ModelCallParams): ModelCall[] {
  const { phase: _phase, ...rest } = call as ModelCallParams;
  const c = rest as ModelCall;
  const i = calls.findIndex((x) => x.callId === c.callId);
  if (i < 0) return [...calls, c];
  // A late start never replaces a finish.
  if (calls[i].finishedAt && !c.finishedAt) return calls;
  const next = calls.slice();
  next[i] = { ...c, segments: c.segments?.length ? c.segments : calls[i].segments };
  return next;
}

/** The bar of one call: its segments in request order, coloured by what the server reused. */
export function callBar(call: ModelCall): CallBar {
  const segs = call.segments ?? [];
  const est = segs.reduce((a, s) => a + Math.max(0, s.estTokens || 0), 0);
  const tokens = call.promptTokens ?? est;
  const scale = est > 0 ? tokens / est : 0;
  const known = call.cachedTokens !== null && call.cachedTokens !== undefined;
  const cached = known ? Math.min(call.cachedTokens as number, tokens) : 0;
  let at = 0;
  const parts: BarPart[] = segs.map((s) => {
    const t = Math.max(0, s.estTokens || 0) * scale;
    const reused = Math.max(0, Math.min(t, cached - at));
    at += t;
    const share = t > 0 ? reused / t : 0;
    const reuse: Reuse = !known ? 'unknown' : share >= 0.999 ? 'cached' : share > 0 ? 'partial' : 'uncached';
    return { kind: s.kind, label: s.label, bytes: s.bytes, tokens: Math.round(t), widthPct: tokens > 0 ? (t / tokens) * 100 : 0, reuse, reusedShare: share, expected: s.cached };
  });
  const expected = Math.min(call.expectedCachedTokens ?? 0, tokens);
  return {
    parts,
    tokens,
    cachedPct: known ? (tokens > 0 ? (cached / tokens) * 100 : 0) : null,
    expectedPct: tokens > 0 ? (expected / tokens) * 100 : 0,
    short: call.missReason !== null && call.missReason !== undefined && call.missReason !== '',
  };
}

/** The same index rule as `boo calls` (src/proxy/report.rs): round((n - 1) * p) of the sorted list. */
export function percentile(sorted: number[], p: number): number | null {
  if (!sorted.length) return null;
  return sorted[Math.round((sorted.length - 1) * p)] ?? null;
}

export interface RunCallStats {
  calls: number;
  /** Calls started and not finished yet. */
  running: number;
  promptTokens: number;
  /** Prompt tokens the server computed (prompt − cached). */
  computed: number;
  /** Prompt tokens the server reused from its cache. */
  reused: number;
  /** reused / prompt, null without prompt tokens. */
  hitRate: number | null;
  /** The cacheable prefix boo expected in total (tokens). */
  expected: number;
  ttftP50: number | null;
  ttftP90: number | null;
  /** Calls with a miss reason. */
  misses: number;
  completionTokens: number;
}

/** The run's totals, worded like the last line of `boo calls`. */
export function runCallStats(calls: ModelCall[]): RunCallStats {
  let prompt = 0;
  let cached = 0;
  let expected = 0;
  let completion = 0;
  let misses = 0;
  let running = 0;
  const ttft: number[] = [];
  for (const c of calls) {
    if (!c.finishedAt) running += 1;
    prompt += c.promptTokens ?? 0;
    cached += c.cachedTokens ?? 0;
    expected += c.expectedCachedTokens ?? 0;
    completion += c.completionTokens ?? 0;
    if (c.missReason) misses += 1;
    if (typeof c.ttftMs === 'number') ttft.push(c.ttftMs);
  }
  ttft.sort((a, b) => a - b);
  return {
    calls: calls.length,
    running,
    promptTokens: prompt,
    computed: Math.max(0, prompt - cached),
    reused: cached,
    hitRate: prompt > 0 ? cached / prompt : null,
    expected,
    ttftP50: percentile(ttft, 0.5),
    ttftP90: percentile(ttft, 0.9),
    misses,
    completionTokens: completion,
  };
}

/** Calls of a step in turn order (then start time). */
export function stepCalls(calls: ModelCall[], stepId: string): ModelCall[] {
  return calls.filter((c) => c.stepId === stepId).sort((a, b) => a.turn - b.turn || Date.parse(a.startedAt) - Date.parse(b.startedAt));
}

/** "≈ 1.2k tok" style sizes. */
export function formatCount(n: number): string {
  if (n < 1000) return String(Math.round(n));
  if (n < 10_000) return `${(n / 1000).toFixed(1)}k`;
  return `${Math.round(n / 1000)}k`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** The miss reason in words for a person (the server's text, with what to do next). */
export function missAdvice(reason: string): string {
  if (reason.startsWith('first request')) return 'nothing earlier started the same way; the next call can reuse this one';
  if (reason.startsWith('system prompt changed')) return 'something in the system prompt varies between requests: keep it out of the system prompt';
  if (reason.startsWith('tool list changed')) return 'the tool schemas differ: keep the same tools for every agent of a run';
  if (reason.startsWith('history rewritten')) return 'an earlier message was changed rather than appended to (expected after compaction)';
  if (reason.startsWith('the server evicted')) return "the server's cache is too small for the parallel agents, or prefix caching is off";
  if (reason.startsWith('the server reports no cache fields')) return 'the server cannot tell what it reused; the expected prefix is shown';
  return '';
}
