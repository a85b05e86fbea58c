// Traces view: per step, one row per tool call with a timing bar, latency and outcome,
// and a token breakdown with the cache hit rate (cache-read / input).

import type { GetRunResult, Step, Trace, Usage } from '../src/protocol';
import type { FromTraces, ToTraces } from '../src/messages';
import { cacheHitRate, formatTokens } from '../src/state';
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

function render(run: GetRunResult, traces: Trace[]): void {
  clear(app);
  app.removeAttribute('aria-busy');
  const r = run.run;
  vscode.setState({ runId: r.runId });
  app.append(
    h('header', { class: 'hdr' }, h('div', { class: 'hdr-main' }, h('span', { class: 'flow-name' }, `Traces · ${r.flow}`), h('span', { class: 'badge band' }, r.band), h('span', { class: 'status-pill', 'data-status': r.status }, r.status)), h('div', { class: 'hdr-meta' }, h('span', null, `${traces.length} tool call${traces.length === 1 ? '' : 's'}`)), h('button', { class: 'icon-btn', title: 'Refresh', 'aria-label': 'Refresh', onclick: () => post({ type: 'refresh' }) }, '↻')),
    h('p', { class: 'question' }, r.question),
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
    app.append(stepSection(step, byStep.get(step.stepId) ?? [], r.root));
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

function stepSection(step: Step, traces: Trace[], root: string): HTMLElement {
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
    rows.length ? h('div', { class: 'trace-table', role: 'table' }, ...rows) : h('div', { class: 'muted' }, 'No tool calls.'),
  );
}

window.addEventListener('message', (ev: MessageEvent) => {
  const msg = ev.data as ToTraces;
  if (!msg || typeof msg !== 'object') return;
  if (msg.type === 'traces') render(msg.run, msg.traces);
  else if (msg.type === 'error') {
    clear(app);
    app.append(h('div', { class: 'launch-error', role: 'alert' }, msg.message));
  }
});

app.append(h('div', { class: 'muted' }, 'Loading traces…'));
post({ type: 'ready' });
