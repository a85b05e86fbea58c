// Run timeline: one lane per step, its model turns (boo/getModelCalls) and tool calls
// (boo/getTraces) as blocks on the run's time axis. Clicking a block scrolls that agent's
// stream in the Orchestrator pane to the turn; the detail below offers "Restore", the
// pane as it was when that turn ended.

import type { GetRunResult, ModelCall, Trace } from '../src/protocol';
import type { FromTimeline, ToTimeline } from '../src/messages';
import { callBar, formatBytes, formatCount, mergeCall, missAdvice, runCallStats } from '../src/modelCalls';
import { formatOffset, timelineLayout, type TimelineBlock } from '../src/timeline';
import { clear, formatMs, h, vscodeApi } from './common';

const vscode = vscodeApi<{ runId: string } | undefined>();
const post = (m: FromTimeline) => vscode.postMessage(m);
const app = document.getElementById('app') as HTMLElement;

let data: { run: GetRunResult; traces: Trace[]; calls: ModelCall[]; note: string | null } | null = null;
let selected: { kind: string; id: string } | null = null;
let ticker: ReturnType<typeof setInterval> | undefined;

function mergeTrace(list: Trace[], t: Trace): Trace[] {
  const i = list.findIndex((x) => x.traceId === t.traceId);
  if (i < 0) return [...list, t];
  const next = list.slice();
  next[i] = t;
  return next;
}

function detail(b: TimelineBlock): HTMLElement {
  const d = data!;
  const step = d.run.steps.find((s) => s.stepId === b.stepId);
  const who = `${step?.label || b.stepId}${step?.agent ? ` · ${step.agent}` : ''}`;
  const dur = b.end !== null ? formatMs(b.end - b.start) : 'running';
  const at = formatOffset(b.start - layoutT0());
  const box = h('div', { class: 'tl-detail', role: 'region', 'aria-label': 'selected block', 'data-kind': b.kind, 'data-step-id': b.stepId });
  if (b.kind === 'model') {
    const c = d.calls.find((x) => x.callId === b.id);
    box.append(h('h3', null, `${who} — model turn ${b.turn}`), h('div', null, `at ${at} · ${dur}`));
    if (c) {
      const bar = callBar(c);
      const track = h('div', { class: 'seg-bar' });
      for (const p of bar.parts) {
        const seg = h('div', { class: 'seg', 'data-reuse': p.reuse, title: `${p.label} · ≈${formatCount(p.tokens)} tokens · ${formatBytes(p.bytes)}` });
        seg.style.width = `${p.widthPct}%`;
        if (p.reuse === 'partial') seg.style.setProperty('--reused', `${Math.round(p.reusedShare * 100)}%`);
        track.append(seg);
      }
      const parts: (HTMLElement | null)[] = [
        track,
        h('div', { class: 'muted' }, `prompt ${c.promptTokens ?? '–'} · cached ${c.cachedTokens ?? '?'} (expected ≈ ${c.expectedCachedTokens}) · ttft ${formatMs(c.ttftMs)} · ${c.tokensPerSecond !== null ? `${c.tokensPerSecond.toFixed(1)} tok/s` : '– tok/s'}`),
        c.missReason ? h('div', { class: 'call-miss' }, h('span', { class: 'miss-reason' }, `miss: ${c.missReason}`), h('span', { class: 'miss-advice' }, ` — ${missAdvice(c.missReason)}`)) : null,
        c.error ? h('div', { class: 'call-error' }, `error: ${c.error}`) : null,
      ];
      box.append(...parts.filter((x): x is HTMLElement => x !== null));
    }
    box.append(
      h(
        'div',
        { class: 'tl-actions' },
        h('button', { class: 'secondary tl-reveal', onclick: () => post({ type: 'reveal', stepId: b.stepId, turn: b.turn }) }, 'Show in pane'),
        b.end !== null && b.turn !== null ? h('button', { class: 'secondary tl-restore', title: 'Open the pane as it was when this turn ended (read-only)', onclick: () => post({ type: 'restore', stepId: b.stepId, turn: b.turn! }) }, 'Restore pane at this turn') : null,
      ),
    );
  } else if (b.kind === 'tool') {
    const t = d.traces.find((x) => x.traceId === b.id);
    box.append(h('h3', null, `${who} — ${b.label} (turn ${b.turn ?? '?'})`), h('div', null, `at ${at} · ${dur} · ${b.status}`));
    if (t?.error) box.append(h('div', { class: 'call-error' }, t.error));
  } else {
    box.append(h('h3', null, who), h('div', null, `${step?.kind ?? 'step'} · at ${at} · ${dur} · ${b.status}`));
  }
  return box;
}

let currentT0 = 0;
const layoutT0 = () => currentT0;

function render(): void {
  if (!data) return;
  const d = data;
  const r = d.run.run;
  const now = Date.now();
  const layout = timelineLayout(d.run.steps, d.calls, d.traces, now);
  currentT0 = layout.t0;
  const stats = runCallStats(d.calls);
  clear(app);
  app.removeAttribute('aria-busy');
  vscode.setState({ runId: r.runId });
  const span = layout.t1 - layout.t0;
  app.append(
    h(
      'header',
      { class: 'hdr' },
      h('div', { class: 'hdr-main' }, h('span', { class: 'flow-name' }, `Timeline · ${r.flow}`), h('span', { class: 'status-pill', 'data-status': r.status }, r.status)),
      h('div', { class: 'hdr-meta' }, h('span', { class: 'tl-summary' }, `${layout.lanes.length} steps · ${stats.calls} model turns · ${d.traces.length} tool calls · ${formatOffset(Math.max(0, span))}`)),
      h('button', { class: 'icon-btn', title: 'Refresh', 'aria-label': 'Refresh', onclick: () => post({ type: 'refresh' }) }, '↻'),
    ),
    h('p', { class: 'question' }, r.question),
    h(
      'div',
      { class: 'tl-legend' },
      h('span', null, h('span', { class: 'tl-key tl-block-key', 'data-kind': 'model' }), 'model turn'),
      h('span', null, h('span', { class: 'tl-key', 'data-kind': 'tool' }), 'tool call'),
      h('span', null, h('span', { class: 'tl-key', 'data-kind': 'miss' }), 'turn with a cache miss reason'),
      h('span', null, h('span', { class: 'tl-key', 'data-kind': 'step' }), 'code step'),
      h('span', { class: 'muted' }, 'click a block to scroll the pane to it'),
    ),
  );
  if (d.note) app.append(h('div', { class: 'notice' }, d.note));
  if (!layout.lanes.length) {
    app.append(h('div', { class: 'muted' }, 'Nothing to show yet: no step of this run has started.'));
    return;
  }
  const axis = h('div', { class: 'tl-axis', 'aria-hidden': 'true' });
  for (const t of layout.ticks) {
    const tick = h('span', { class: 'tl-tick' }, t.label);
    tick.style.left = `${t.leftPct}%`;
    axis.append(tick);
  }
  const grid = h('div', { class: 'tl-grid', role: 'list' }, axis);
  let sel: TimelineBlock | null = null;
  for (const lane of layout.lanes) {
    const track = h('div', { class: 'tl-track' });
    for (const b of lane.blocks) {
      const c = b.kind === 'model' ? d.calls.find((x) => x.callId === b.id) : undefined;
      const title =
        b.kind === 'model'
          ? `turn ${b.turn} · ${b.end !== null ? formatMs(b.end - b.start) : 'running'}${c ? ` · ttft ${formatMs(c.ttftMs)} · cached ${c.cachedTokens ?? '?'}/${c.promptTokens ?? '?'}` : ''}${c?.missReason ? ` · miss: ${c.missReason}` : ''}`
          : `${b.label} · ${b.end !== null ? formatMs(b.end - b.start) : 'running'} · ${b.status}`;
      const el = h(
        'button',
        {
          class: 'tl-block',
          'data-kind': b.kind,
          'data-id': b.id,
          'data-step-id': b.stepId,
          'data-turn': b.turn ?? '',
          'data-status': b.status,
          'data-row': b.row,
          'data-miss': c?.missReason ? 'true' : 'false',
          title,
          'aria-label': title,
          onclick: () => {
            selected = { kind: b.kind, id: b.id };
            post({ type: 'reveal', stepId: b.stepId, turn: b.turn });
            render();
          },
        },
        b.kind === 'model' ? h('span', { class: 'tl-bl' }, String(b.turn)) : null,
      );
      el.style.left = `${b.leftPct}%`;
      el.style.width = `${b.widthPct}%`;
      if (selected && selected.id === b.id && selected.kind === b.kind) {
        el.classList.add('selected');
        sel = b;
      }
      track.append(el);
    }
    grid.append(
      h(
        'div',
        { class: 'tl-lane', role: 'listitem', 'data-step-id': lane.stepId, 'data-status': lane.status },
        h('div', { class: 'tl-name' }, h('span', { class: 'tl-step', title: lane.label }, lane.label), h('span', { class: 'tl-agent' }, lane.kind === 'agent' ? lane.agent ?? '' : `${lane.kind}${lane.agent ? ` · ${lane.agent}` : ''}`)),
        track,
      ),
    );
  }
  app.append(grid);
  if (sel) app.append(detail(sel));
  const running = d.calls.some((c) => !c.finishedAt) || r.status === 'running';
  if (running && !ticker) ticker = setInterval(render, 1000);
  else if (!running && ticker) {
    clearInterval(ticker);
    ticker = undefined;
  }
}

window.addEventListener('message', (ev: MessageEvent) => {
  const msg = ev.data as ToTimeline;
  if (!msg || typeof msg !== 'object') return;
  if (msg.type === 'timeline') {
    data = { run: msg.run, traces: msg.traces, calls: msg.calls, note: msg.callsNote ?? null };
    render();
  } else if (msg.type === 'modelCall') {
    if (!data || msg.call.runId !== data.run.run.runId) return;
    data.calls = mergeCall(data.calls, msg.call);
    render();
  } else if (msg.type === 'trace') {
    if (!data || msg.trace.runId !== data.run.run.runId) return;
    data.traces = mergeTrace(data.traces, msg.trace);
    render();
  } else if (msg.type === 'error') {
    clear(app);
    app.append(h('div', { class: 'launch-error', role: 'alert' }, msg.message));
  }
});

app.append(h('div', { class: 'muted' }, 'Loading the timeline…'));
post({ type: 'ready' });
