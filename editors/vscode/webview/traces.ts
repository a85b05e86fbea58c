// Traces view: per step, one row per tool call with a timing bar, latency and outcome,
// a token breakdown with the cache hit rate (cache-read / input), and per model turn the
// cache shape of its prompt (boo/getModelCalls): a bar of the prompt's segments coloured
// by what the server reused, TTFT, tokens/s and the miss reason; the run's totals on top.

import type { GetRunResult, ModelCall, Step, Trace, Usage } from '../src/protocol';
import type { FromTraces, ToTraces } from '../src/messages';
import { cacheHitRate, formatTokens } from '../src/state';
import { callBar, formatBytes, formatCount, mergeCall, missAdvice, runCallStats, stepCalls } from '../src/modelCalls';
import { clear, formatMs, h, summarizeInput, vscodeApi } from './common';

const vscode = vscodeApi<unknown>();
const post = (m: FromTraces) => vscode.postMessage(m);
const app = document.getElementById('app') as HTMLElement;

function pct(r: number | null): string {
  return r === null ? '–' : `${Math.round(r * 1000) / 10}%`;
}

function usageTable(u: Usage | null | undefined): HTMLElement {
  const rate = cacheHitRate(u);
  const cell = (label: string, value: string, cls = '') => h('div', { class: `tok ${cls}` }, h('div', { class: 'tok-v' }, value), h('div', { class: 'tok-l' }, label));
  const bar = h('div', { class: 'cache-bar', title: `cache hit rate ${pct(rate)}` }, h('div', { class: 'cache-fill' }));
  (bar.firstChild as HTMLElement).style.width = `${Math.round((rate ?? 0) * 100)}%`;
  return h(
    'div',
    { class: 'tokens-row' },
    cell('input', formatTokens(u?.inputTokens ?? 0)),
    cell('output', formatTokens(u?.outputTokens ?? 0)),
    cell('cache read', formatTokens(u?.cacheReadTokens ?? 0)),
    cell('total', formatTokens(u?.totalTokens ?? 0)),
    h('div', { class: 'tok cache' }, h('div', { class: 'tok-v' }, pct(rate)), h('div', { class: 'tok-l' }, 'cache hit rate'), bar),
  );
}

// What is shown, kept for live model calls (re-rendered on each).
let shown: { run: GetRunResult; traces: Trace[]; calls: ModelCall[] | null; note: string | null } | null = null;

function pctOf(n: number | null): string {
  return n === null ? '–' : `${Math.round(n * 100)}%`;
}

/** The run's model-call totals, in the words of `boo calls`. */
function callStats(calls: ModelCall[] | null, note: string | null): HTMLElement {
  if (!calls) return h('section', { class: 'trace-step calls-total' }, h('h2', null, 'Model calls'), h('div', { class: 'muted' }, note ?? 'No model calls.'));
  const s = runCallStats(calls);
  const cell = (label: string, value: string, key: string) => h('div', { class: 'tok', 'data-stat': key }, h('div', { class: 'tok-v' }, value), h('div', { class: 'tok-l' }, label));
  return h(
    'section',
    { class: 'trace-step calls-total' },
    h('h2', null, 'Model calls', s.running ? h('span', { class: 'step-agent' }, `${s.running} running`) : null),
    calls.length
      ? h(
          'div',
          { class: 'tokens-row' },
          cell('calls', String(s.calls), 'calls'),
          cell('prompt tokens computed', formatTokens(s.computed), 'computed'),
          cell('reused from cache', formatTokens(s.reused), 'reused'),
          cell('hit rate', pctOf(s.hitRate), 'hitRate'),
          cell('TTFT p50', formatMs(s.ttftP50), 'ttftP50'),
          cell('TTFT p90', formatMs(s.ttftP90), 'ttftP90'),
          cell('with a miss reason', String(s.misses), 'misses'),
        )
      : h('div', { class: 'muted' }, 'No model calls recorded for this run (calls are recorded when agents run through boo’s model proxy).'),
  );
}

/** One model turn: its prompt as a bar of segments, sizes, TTFT, tokens/s, the miss reason. */
function callRow(c: ModelCall): HTMLElement {
  const bar = callBar(c);
  const track = h('div', { class: 'seg-bar', role: 'img', 'aria-label': `prompt ${bar.tokens} tokens, ${c.cachedTokens ?? 'unknown'} reused` });
  for (const p of bar.parts) {
    const seg = h('div', { class: 'seg', 'data-reuse': p.reuse, 'data-kind': p.kind, title: `${p.label} (${p.kind}) · ≈${formatCount(p.tokens)} tokens · ${formatBytes(p.bytes)} · ${p.reuse === 'partial' ? `${Math.round(p.reusedShare * 100)}% reused` : p.reuse}${p.expected !== 'none' ? ` · expected cacheable: ${p.expected}` : ''}` });
    seg.style.width = `${p.widthPct}%`;
    if (p.reuse === 'partial') seg.style.setProperty('--reused', `${Math.round(p.reusedShare * 100)}%`);
    if (p.widthPct >= 9) seg.append(h('span', { class: 'seg-l' }, `${p.kind} ${formatCount(p.tokens)}`));
    track.append(seg);
  }
  if (!bar.parts.length) track.append(h('div', { class: 'seg', 'data-reuse': c.finishedAt ? 'unknown' : 'running', title: c.finishedAt ? 'no segments recorded' : 'running…' }));
  if (bar.expectedPct > 0) {
    const mark = h('div', { class: 'seg-expected', title: `expected cacheable prefix ≈ ${formatCount(c.expectedCachedTokens)} tokens` });
    mark.style.left = `${Math.min(100, bar.expectedPct)}%`;
    track.append(mark);
  }
  const figures = c.finishedAt
    ? `prompt ${c.promptTokens ?? '–'} · cached ${c.cachedTokens ?? '?'}${c.expectedCachedTokens ? ` (expected ≈ ${c.expectedCachedTokens})` : ''} · out ${c.completionTokens ?? '–'}`
    : 'running…';
  const speed = `ttft ${formatMs(c.ttftMs)} · ${c.tokensPerSecond !== null && c.tokensPerSecond !== undefined ? `${c.tokensPerSecond.toFixed(1)} tok/s` : '– tok/s'}${c.status !== null && c.status !== 200 ? ` · status ${c.status}` : ''}`;
  const advice = c.missReason ? missAdvice(c.missReason) : '';
  return h(
    'div',
    { class: 'call-row', 'data-call-id': c.callId, 'data-turn': c.turn, 'data-state': c.finishedAt ? (c.missReason ? 'miss' : 'ok') : 'running', title: `${formatBytes(c.requestBytes)} request${c.cacheDialect ? ` · usage dialect ${c.cacheDialect}` : ''}` },
    h('span', { class: 'call-turn' }, `turn ${c.turn}`),
    track,
    h('span', { class: 'call-figures' }, figures),
    h('span', { class: 'call-speed' }, speed),
    c.missReason ? h('div', { class: 'call-miss', role: 'note' }, h('span', { class: 'miss-reason' }, `miss: ${c.missReason}`), advice ? h('span', { class: 'miss-advice' }, ` — ${advice}`) : null) : null,
    c.error ? h('div', { class: 'call-error', role: 'alert' }, `error: ${c.error}`) : null,
  );
}

function callsOfStep(calls: ModelCall[] | null, stepId: string): HTMLElement | null {
  if (!calls) return null;
  const mine = stepCalls(calls, stepId);
  if (!mine.length) return null;
  return h('div', { class: 'call-table', 'data-step-id': stepId }, h('div', { class: 'call-head' }, 'Model turns · prompt cache shape'), ...mine.map(callRow));
}

function render(run: GetRunResult, traces: Trace[], calls: ModelCall[] | null = null, note: string | null = null): void {
  shown = { run, traces, calls, note };
  clear(app);
  app.removeAttribute('aria-busy');
  const r = run.run;
  vscode.setState({ runId: r.runId });
  app.append(
    h('header', { class: 'hdr' }, h('div', { class: 'hdr-main' }, h('span', { class: 'flow-name' }, `Traces · ${r.flow}`), h('span', { class: 'badge band' }, r.band), h('span', { class: 'status-pill', 'data-status': r.status }, r.status)), h('div', { class: 'hdr-meta' }, h('span', null, `${traces.length} tool call${traces.length === 1 ? '' : 's'}`)), h('button', { class: 'secondary timeline-btn', title: 'Show the run timeline', onclick: () => post({ type: 'timeline' }) }, 'Timeline'), h('button', { class: 'icon-btn', title: 'Refresh', 'aria-label': 'Refresh', onclick: () => post({ type: 'refresh' }) }, '↻')),
    h('p', { class: 'question' }, r.question),
    callStats(calls, note),
    h('section', { class: 'trace-step run-total' }, h('h2', null, 'Whole run'), usageTable(r.usage ?? sumUsage(run.steps))),
  );
  const byStep = new Map<string, Trace[]>();
  for (const t of traces) {
    const list = byStep.get(t.stepId) ?? [];
    list.push(t);
    byStep.set(t.stepId, list);
  }
  for (const step of run.steps) {
    if (step.kind !== 'agent' && !byStep.has(step.stepId)) continue;
    app.append(stepSection(step, byStep.get(step.stepId) ?? [], r.root, calls));
  }
}

function sumUsage(steps: Step[]): Usage {
  const u: Usage = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, totalTokens: 0 };
  for (const s of steps) {
    u.inputTokens! += s.usage?.inputTokens ?? 0;
    u.outputTokens! += s.usage?.outputTokens ?? 0;
    u.cacheReadTokens! += s.usage?.cacheReadTokens ?? 0;
    u.totalTokens! += s.usage?.totalTokens ?? 0;
  }
  return u;
}

function stepSection(step: Step, traces: Trace[], root: string, calls: ModelCall[] | null): HTMLElement {
  const sorted = traces.slice().sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt));
  const times = sorted.flatMap((t) => [Date.parse(t.startedAt), t.finishedAt ? Date.parse(t.finishedAt) : Date.parse(t.startedAt) + (t.latencyMs ?? 0)]);
  const stepStart = step.startedAt ? Date.parse(step.startedAt) : NaN;
  const stepEnd = step.finishedAt ? Date.parse(step.finishedAt) : NaN;
  const t0 = Math.min(...[stepStart, ...times].filter((n) => !Number.isNaN(n)));
  const t1 = Math.max(...[stepEnd, ...times].filter((n) => !Number.isNaN(n)));
  const span = Math.max(1, t1 - t0);
  const rows = sorted.map((t) => {
    const start = Date.parse(t.startedAt);
    const latency = t.latencyMs ?? (t.finishedAt ? Date.parse(t.finishedAt) - start : null);
    const bar = h('div', { class: 'bar' });
    const track = h('div', { class: 'track' }, bar);
    if (!Number.isNaN(start) && Number.isFinite(t0)) {
      bar.style.left = `${((start - t0) / span) * 100}%`;
      bar.style.width = `${Math.max(0.8, ((latency ?? 0) / span) * 100)}%`;
    }
    const outcome = t.outcome ?? (t.finishedAt ? 'ok' : 'running');
    bar.setAttribute('data-outcome', outcome);
    return h(
      'div',
      { class: 'trace-row', role: 'row', 'data-outcome': outcome, 'data-tool': t.tool, title: t.error ?? '' },
      h('span', { class: 'trace-tool', role: 'cell' }, t.tool),
      h('code', { class: 'trace-input', role: 'cell', title: summarizeInput(t.input) }, summarizeInput(t.input, root)),
      h('span', { class: 'trace-bar', role: 'cell' }, track),
      h('span', { class: 'trace-latency', role: 'cell' }, formatMs(latency)),
      h('span', { class: 'trace-outcome', role: 'cell', 'data-outcome': outcome }, outcome),
    );
  });
  return h(
    'section',
    { class: 'trace-step', 'data-step-id': step.stepId },
    h('h2', null, h('span', { class: 'dot', 'data-status': step.status }), step.label || step.stepId, h('span', { class: 'step-agent' }, step.agent ?? step.kind)),
    usageTable(step.usage),
    callsOfStep(calls, step.stepId),
    rows.length ? h('div', { class: 'trace-table', role: 'table' }, ...rows) : h('div', { class: 'muted' }, 'No tool calls.'),
  );
}

window.addEventListener('message', (ev: MessageEvent) => {
  const msg = ev.data as ToTraces;
  if (!msg || typeof msg !== 'object') return;
  if (msg.type === 'traces') render(msg.run, msg.traces, msg.calls ?? null, msg.callsNote ?? null);
  else if (msg.type === 'modelCall') {
    if (!shown || msg.call.runId !== shown.run.run.runId) return;
    const y = window.scrollY;
    render(shown.run, shown.traces, mergeCall(shown.calls ?? [], msg.call), shown.note);
    window.scrollTo(0, y);
  } else if (msg.type === 'error') {
    clear(app);
    app.append(h('div', { class: 'launch-error', role: 'alert' }, msg.message));
  }
});

app.append(h('div', { class: 'muted' }, 'Loading traces…'));
post({ type: 'ready' });
