// The Orchestrator pane: header, report, roster, and the one expanded step's live stream.
// State comes from the shared reducer (src/state.ts); DOM updates are batched per animation frame.

import { marked } from 'marked';
import DOMPurify from 'dompurify';
import { isRunTerminal } from '../src/protocol';
import type { FromPane, PaneMenuAction, PanePersisted, ToPane } from '../src/messages';
import {
  PaneState,
  StepView,
  StreamItem,
  Action,
  budgetSpent,
  countByStatus,
  displaySteps,
  phaseGroups,
  elapsedMs,
  expandedStepId,
  formatElapsed,
  formatTokens,
  reduce,
  runTokens,
  stepTokens,
  childDepth,
  isChildRow,
} from '../src/state';
import type { Attachment } from '../src/protocol';
import { dataUrl, formatBytes } from '../src/attachments';
import { clear, displayValue, h, summarizeInput, vscodeApi } from './common';

const vscode = vscodeApi<PanePersisted>();
const post = (m: FromPane) => vscode.postMessage(m);

let state: PaneState | null = null;
let emptyMessage: string | null = null;
let framePending = false;
let resyncTimer: ReturnType<typeof setTimeout> | undefined;

// ---- skeleton ---------------------------------------------------------------

const app = document.getElementById('app') as HTMLElement;
const flowEl = h('span', { class: 'flow-name' });
const bandEl = h('span', { class: 'badge band' });
const statusEl = h('span', { class: 'status-pill', 'data-status': 'pending' });
const elapsedEl = h('span', { class: 'elapsed', title: 'Elapsed' });
const tokensEl = h('span', { class: 'tokens', title: 'Tokens used' });
const stepsCountEl = h('span', { class: 'steps-count' });
const budgetSep = h('span', { class: 'sep' }, '·');
const budgetEl = h('span', { class: 'budget', title: 'Output tokens spent against the run\'s budget (cached answers cost nothing)' });
const menuBtn = h('button', { class: 'icon-btn menu-btn', 'aria-haspopup': 'menu', 'aria-expanded': 'false', title: 'More actions', 'aria-label': 'More actions' }, '…');
const menu = h('div', { class: 'menu', role: 'menu', hidden: true });
const questionEl = h('p', { class: 'question' });
const noticeEl = h('div', { class: 'notice', role: 'status', hidden: true });
const attachmentsEl = h('div', { class: 'attachments header-attachments', role: 'list', 'aria-label': 'Attached images', hidden: true });
const reportAttachmentsEl = h('div', { class: 'report-attachments', role: 'list', 'aria-label': 'Images the agents were given', hidden: true });
const reportBody = h('div', { class: 'report-body' });
const reportEl = h('section', { class: 'report markdown-body', 'aria-label': 'Report', hidden: true }, reportAttachmentsEl, reportBody);
const runErrorEl = h('section', { class: 'run-error', role: 'alert', hidden: true });
const logList = h('div', { class: 'log-lines' });
const logEl = h('section', { class: 'run-log', 'aria-label': 'Run log', hidden: true }, h('h2', null, 'Log'), logList);
const followBtn = h('button', { class: 'link-btn follow', hidden: true, title: 'Expand the active step automatically' }, 'Follow live');
const rosterList = h('div', { class: 'steps', role: 'list' });
const roster = h(
  'section',
  { class: 'roster', 'aria-label': 'Roster' },
  h('div', { class: 'roster-head' }, h('h2', null, 'Roster'), followBtn),
  rosterList,
);
const emptyEl = h('section', { class: 'empty', hidden: true });

const MENU_ITEMS: { action: PaneMenuAction; label: string; needsReport?: boolean; whenRunning?: boolean }[] = [
  { action: 'copy', label: 'Copy report', needsReport: true },
  { action: 'saveMarkdown', label: 'Save report as Markdown…', needsReport: true },
  { action: 'saveJson', label: 'Save run as JSON…', needsReport: true },
  { action: 'sendToChat', label: 'Send report to chat', needsReport: true },
  { action: 'traces', label: 'Show traces' },
  { action: 'timeline', label: 'Show run timeline' },
  { action: 'refresh', label: 'Refresh' },
  { action: 'cancel', label: 'Cancel run', whenRunning: true },
];
const menuButtons = new Map<PaneMenuAction, HTMLButtonElement>();
for (const item of MENU_ITEMS) {
  const b = h('button', { class: 'menu-item', role: 'menuitem', 'data-action': item.action }, item.label);
  b.addEventListener('click', () => {
    closeMenu();
    if (state) post({ type: 'menu', action: item.action, runId: state.runId });
  });
  menuButtons.set(item.action, b);
  menu.append(b);
}

const header = h(
  'header',
  { class: 'hdr' },
  h('div', { class: 'hdr-main' }, flowEl, bandEl, statusEl),
  h('div', { class: 'hdr-meta' }, elapsedEl, h('span', { class: 'sep' }, '·'), tokensEl, budgetSep, budgetEl, h('span', { class: 'sep' }, '·'), stepsCountEl),
  h('div', { class: 'menu-wrap' }, menuBtn, menu),
);

clear(app);
app.append(header, questionEl, attachmentsEl, noticeEl, reportEl, runErrorEl, logEl, roster, emptyEl);
app.removeAttribute('aria-busy');

function openMenu(): void {
  menu.hidden = false;
  menuBtn.setAttribute('aria-expanded', 'true');
  const first = menu.querySelector<HTMLButtonElement>('button:not([disabled])');
  first?.focus();
}
function closeMenu(): void {
  menu.hidden = true;
  menuBtn.setAttribute('aria-expanded', 'false');
}
menuBtn.addEventListener('click', (ev) => {
  ev.stopPropagation();
  if (menu.hidden) openMenu();
  else closeMenu();
});
document.addEventListener('click', (ev) => {
  if (!menu.hidden && !menu.contains(ev.target as Node)) closeMenu();
});
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && !menu.hidden) {
    closeMenu();
    menuBtn.focus();
  }
});
followBtn.addEventListener('click', () => dispatch([{ type: 'follow' }]));

// ---- state plumbing -----------------------------------------------------------

function dispatch(actions: Action[]): void {
  if (!state) return;
  for (const a of actions) state = reduce(state, a);
  schedule();
  if (state.needsResync) {
    // The host sees the same gap and refetches; ask again only if it persists.
    if (!resyncTimer) {
      resyncTimer = setTimeout(() => {
        resyncTimer = undefined;
        if (state?.needsResync) post({ type: 'resync', runId: state.runId });
      }, 1500);
    }
  }
}

function schedule(): void {
  if (framePending) return;
  framePending = true;
  requestAnimationFrame(() => {
    framePending = false;
    render();
  });
}

window.addEventListener('message', (ev: MessageEvent) => {
  const msg = ev.data as ToPane;
  if (!msg || typeof msg !== 'object') return;
  switch (msg.type) {
    case 'state': {
      const selection = state && state.runId === msg.state.runId ? state.selection : msg.state.selection;
      state = { ...msg.state, selection };
      emptyMessage = null;
      vscode.setState({ runId: state.runId });
      schedule();
      if (pendingReveal) revealTurn(pendingReveal.stepId, pendingReveal.turn);
      break;
    }
    case 'actions':
      dispatch(msg.actions);
      break;
    case 'empty':
      state = null;
      emptyMessage = msg.message ?? 'No run in this pane yet.';
      vscode.setState({ runId: null });
      schedule();
      break;
    case 'attachmentData':
      thumbs.set(msg.attachmentId, msg.data ? dataUrl(msg.mimeType, msg.data) : null);
      if (!msg.data && msg.error) thumbErrors.set(msg.attachmentId, msg.error);
      schedule();
      break;
    case 'reveal':
      revealTurn(msg.stepId, msg.turn);
      break;
    case 'frozen':
      frozenAt = msg.at;
      schedule();
      break;
    case 'notice':
      noticeEl.hidden = false;
      noticeEl.className = `notice ${msg.level}`;
      noticeEl.textContent = msg.message;
      break;
  }
});

// ---- rendering ----------------------------------------------------------------

let renderedReport: string | null = null;
const stepEls = new Map<string, { root: HTMLElement; row: HTMLButtonElement; dot: HTMLElement; label: HTMLElement; agent: HTMLElement; meta: HTMLElement }>();
let streamStepId: string | null = null;
let streamBody: HTMLElement | null = null;
let streamList: HTMLElement | null = null;
let renderedItems: StreamItem[] = [];
let itemEls: HTMLElement[] = [];
let streamFooter: HTMLElement | null = null;

function render(): void {
  if (!state) {
    header.hidden = true;
    questionEl.hidden = true;
    attachmentsEl.hidden = true;
    reportEl.hidden = true;
    runErrorEl.hidden = true;
    logEl.hidden = true;
    roster.hidden = true;
    emptyEl.hidden = false;
    clear(emptyEl);
    emptyEl.append(
      h('h2', null, 'Orchestrator'),
      h('p', null, emptyMessage ?? 'Loading…'),
      emptyMessage ? h('button', { class: 'primary', onclick: () => post({ type: 'launch' }) }, 'Launch a flow…') : '',
    );
    return;
  }
  emptyEl.hidden = true;
  header.hidden = false;
  roster.hidden = false;
  renderHeader(state);
  renderAttachments(state);
  renderReport(state);
  renderLog(state);
  renderRoster(state);
}

/** A workflow run's narrator lines (log() and phase()), in seq order. */
let renderedLogLen = -1;
function renderLog(s: PaneState): void {
  logEl.hidden = s.kind !== 'workflow' || !s.log.length;
  if (renderedLogLen === s.log.length && logList.childElementCount === s.log.length) return;
  renderedLogLen = s.log.length;
  logList.replaceChildren(
    ...s.log.map((l) =>
      h('div', { class: 'log-line', 'data-kind': l.kind, 'data-seq': l.seq }, l.kind === 'phase' ? h('span', { class: 'log-phase' }, `▸ ${l.message}`) : l.message),
    ),
  );
}

function renderHeader(s: PaneState): void {
  document.title = `${s.flow || 'boo'} — ${s.status}`;
  flowEl.textContent = s.flow || '…';
  bandEl.textContent = s.kind === 'workflow' ? 'workflow' : s.band;
  document.body.setAttribute('data-run-kind', s.kind);
  statusEl.textContent = s.status;
  statusEl.setAttribute('data-status', s.status);
  document.body.setAttribute('data-run-status', s.status);
  updateClock();
  const c = countByStatus(s);
  const done = c.completed + c.failed + c.skipped + c.cancelled;
  stepsCountEl.textContent = `${done}/${s.steps.length} steps`;
  questionEl.hidden = !s.question;
  questionEl.textContent = s.question;
  const hasReport = !!s.report;
  for (const item of MENU_ITEMS) {
    const b = menuButtons.get(item.action)!;
    const enabled = (!item.needsReport || hasReport) && (!item.whenRunning || s.status === 'running');
    b.disabled = !enabled;
    b.hidden = !!item.whenRunning && s.status !== 'running';
  }
  if (s.error && s.status === 'failed') {
    runErrorEl.hidden = false;
    runErrorEl.textContent = s.error;
  } else {
    runErrorEl.hidden = true;
  }
  followBtn.hidden = !(s.selection.mode === 'user' && s.status === 'running');
}

function updateClock(): void {
  if (!state) return;
  elapsedEl.textContent = formatElapsed(elapsedMs(state, paneNow()));
  tokensEl.textContent = `${formatTokens(runTokens(state))} tokens`;
  const wf = state.kind === 'workflow';
  budgetEl.hidden = budgetSep.hidden = !wf;
  if (wf) {
    const spent = budgetSpent(state);
    const total = state.workflow?.budgetTotal ?? null;
    budgetEl.textContent = total !== null ? `budget ${formatTokens(spent)} / ${formatTokens(total)}` : `${formatTokens(spent)} output tokens · no budget`;
    budgetEl.classList.toggle('over', total !== null && spent >= total);
  }
}
setInterval(() => {
  if (state && !isRunTerminal(state.status)) updateClock();
}, 1000);

// ---- the run's images: thumbnails in the header and at the top of the report ----
/** attachmentId → data: URL (null: could not be fetched); absent: not asked yet. */
const thumbs = new Map<string, string | null>();
const thumbErrors = new Map<string, string>();
const asked = new Set<string>();
let renderedAttachmentsKey = '';

function attachmentTile(a: Attachment, big: boolean): HTMLElement {
  const src = thumbs.get(a.attachmentId);
  const size = `${a.width}×${a.height} · ${formatBytes(a.bytes)}`;
  const err = thumbErrors.get(a.attachmentId);
  return h(
    'button',
    {
      class: 'attachment',
      type: 'button',
      role: 'listitem',
      'data-attachment-id': a.attachmentId,
      title: err ? `${a.name}: ${err}` : `${a.name} (${a.mimeType}, ${size}) — open full size`,
      onclick: () => post({ type: 'openAttachment', attachmentId: a.attachmentId }),
    },
    src ? h('img', { class: 'thumb', src, alt: a.name }) : h('span', { class: 'thumb', 'aria-hidden': 'true' }),
    big ? null : h('span', { class: 'attachment-text' }, h('span', { class: 'attachment-name' }, a.name), h('span', { class: 'attachment-size' }, size)),
  );
}

function renderAttachments(s: PaneState): void {
  const list = s.attachments ?? [];
  for (const a of list) {
    if (asked.has(a.attachmentId)) continue;
    asked.add(a.attachmentId);
    post({ type: 'getAttachment', attachmentId: a.attachmentId });
  }
  const key = list.map((a) => `${a.attachmentId}:${thumbs.has(a.attachmentId) ? 1 : 0}`).join(',') + `|${s.report ? 1 : 0}`;
  if (key === renderedAttachmentsKey) return;
  renderedAttachmentsKey = key;
  attachmentsEl.hidden = !list.length;
  attachmentsEl.replaceChildren(...list.map((a) => attachmentTile(a, false)));
  reportAttachmentsEl.hidden = !list.length;
  reportAttachmentsEl.replaceChildren(...list.map((a) => attachmentTile(a, true)));
}

const PATH_LINE = /^([^\s:`'"()]+\.[A-Za-z0-9_]+|[^\s:`'"()]+\/[^\s:`'"()]+):(\d+)(?:[-–](\d+))?$/;

function renderReport(s: PaneState): void {
  if (!s.report) {
    reportEl.hidden = true;
    renderedReport = null;
    return;
  }
  reportEl.hidden = false;
  if (renderedReport === s.report) return;
  renderedReport = s.report;
  const html = marked.parse(s.report, { async: false, gfm: true }) as string;
  reportBody.innerHTML = DOMPurify.sanitize(html, { USE_PROFILES: { html: true } });
  // path:line citations open the file in the editor; an image's name (a finding citing
  // an attachment, the attachments list) opens the image.
  const byName = new Map((s.attachments ?? []).map((a) => [a.name, a.attachmentId] as const));
  for (const code of Array.from(reportBody.querySelectorAll('code'))) {
    const image = byName.get((code.textContent ?? '').trim());
    if (image) {
      code.classList.add('cite', 'cite-image');
      code.setAttribute('role', 'link');
      code.setAttribute('tabindex', '0');
      code.title = 'Open the image full size';
      const openImage = () => post({ type: 'openAttachment', attachmentId: image });
      code.addEventListener('click', openImage);
      code.addEventListener('keydown', (ev) => {
        if ((ev as KeyboardEvent).key === 'Enter') openImage();
      });
      continue;
    }
    const m = PATH_LINE.exec((code.textContent ?? '').trim());
    if (!m) continue;
    code.classList.add('cite');
    code.setAttribute('role', 'link');
    code.setAttribute('tabindex', '0');
    code.title = `Open ${m[1]} at line ${m[2]}`;
    const open = () => post({ type: 'openFile', path: m[1], line: Number(m[2]) });
    code.addEventListener('click', open);
    code.addEventListener('keydown', (ev) => {
      if ((ev as KeyboardEvent).key === 'Enter') open();
    });
  }
  for (const a of Array.from(reportBody.querySelectorAll('a'))) {
    const href = a.getAttribute('href') ?? '';
    if (/^(https?|mailto):/i.test(href)) continue;
    a.addEventListener('click', (ev) => {
      ev.preventDefault();
      const m = /^([^#]+?)(?:#L?(\d+))?$/.exec(href);
      if (m) post({ type: 'openFile', path: decodeURIComponent(m[1]), line: Number(m[2] ?? 1) });
    });
  }
}

function stepMetaText(step: StepView): string {
  const parts: string[] = [];
  if (step.cached) parts.push('cached');
  if (step.startedAt && !step.cached) {
    const start = Date.parse(step.startedAt);
    const end = step.finishedAt ? Date.parse(step.finishedAt) : step.status === 'running' ? paneNow() : NaN;
    if (!Number.isNaN(start) && !Number.isNaN(end)) parts.push(formatElapsed(Math.max(0, end - start)));
  }
  const tokens = stepTokens(step);
  if (tokens) parts.push(`${formatTokens(tokens)} tok`);
  const tools = step.items.filter((i) => i.kind === 'tool').length;
  if (tools) parts.push(`${tools} tool${tools === 1 ? '' : 's'}`);
  if (step.status === 'skipped') parts.push('skipped');
  if (step.attempt > 1 && !step.cached) parts.push(`attempt ${step.attempt}`);
  return parts.join(' · ');
}

function renderRoster(s: PaneState): void {
  const expanded = expandedStepId(s);
  const seen = new Set<string>();
  let lastWave: number | null = null;
  let ordinal = 0;
  const wanted: HTMLElement[] = [];
  // A workflow's agents show by phase (the script step on top); a flow's steps by wave.
  const groupOf = new Map<string, HTMLElement>();
  if (s.kind === 'workflow') {
    const script = s.steps.find((x) => x.kind === 'script');
    if (script) groupOf.set(script.stepId, groupLabel('script', 'Script'));
    for (const g of phaseGroups(s)) {
      const label = groupLabel(g.title === null ? 'no-phase' : `phase:${g.title}`, g.title === null ? 'No phase' : g.title);
      label.setAttribute('data-phase', g.title ?? '');
      groupOf.set(g.steps[0].stepId, label);
    }
  }
  for (const step of displaySteps(s)) {
    seen.add(step.stepId);
    if (s.kind === 'workflow') {
      const label = groupOf.get(step.stepId);
      if (label) wanted.push(label);
    } else if (step.wave !== lastWave) {
      lastWave = step.wave;
      wanted.push(waveLabel(step.wave, ++ordinal));
    }
    let el = stepEls.get(step.stepId);
    if (!el) {
      const dot = h('span', { class: 'dot', 'aria-hidden': 'true' });
      const label = h('span', { class: 'step-label' });
      const agent = h('span', { class: 'step-agent' });
      const meta = h('span', { class: 'step-meta' });
      const row = h('button', { class: 'step-row', 'aria-expanded': 'false' }, dot, label, agent, meta);
      const root = h('div', { class: 'step', role: 'listitem', 'data-step-id': step.stepId }, row);
      const id = step.stepId;
      row.addEventListener('click', () => {
        if (!state) return;
        const cur = expandedStepId(state);
        dispatch([{ type: 'select', stepId: cur === id ? null : id }]);
      });
      el = { root, row, dot, label, agent, meta };
      stepEls.set(step.stepId, el);
    }
    el.root.setAttribute('data-status', step.status);
    el.root.setAttribute('data-kind', step.kind);
    el.root.setAttribute('data-cached', String(step.cached));
    // A child an agent spawned sits under its parent, indented (rule 20).
    const child = isChildRow(s, step);
    el.root.classList.toggle('child', child);
    if (child) {
      el.root.setAttribute('data-depth', String(childDepth(s, step)));
      el.root.setAttribute('data-parent-step-id', step.parentStepId ?? '');
    } else {
      el.root.removeAttribute('data-depth');
      el.root.removeAttribute('data-parent-step-id');
    }
    if (step.phase !== null) el.root.setAttribute('data-phase', step.phase);
    else el.root.removeAttribute('data-phase');
    el.dot.title = step.status;
    el.label.textContent = step.label;
    el.agent.textContent = step.kind === 'agent' ? step.agent ?? '' : `${step.kind}${step.agent ? ` · ${step.agent}` : ''}`;
    el.meta.textContent = stepMetaText(step);
    const isOpen = step.stepId === expanded;
    el.row.setAttribute('aria-expanded', String(isOpen));
    el.root.classList.toggle('expanded', isOpen);
    wanted.push(el.root);
  }
  for (const [id, el] of stepEls) {
    if (!seen.has(id)) {
      el.root.remove();
      stepEls.delete(id);
    }
  }
  // Reorder only when the sequence changed (keeps scroll and focus stable).
  const current = Array.from(rosterList.children);
  if (current.length !== wanted.length || current.some((c, i) => c !== wanted[i])) {
    rosterList.replaceChildren(...wanted);
  }
  renderStream(s, expanded);
}

// A workflow's group labels (the script, then one per phase), kept by key.
const groupEls = new Map<string, HTMLElement>();
function groupLabel(key: string, text: string): HTMLElement {
  let el = groupEls.get(key);
  if (!el) {
    el = h('div', { class: 'wave-label phase-label' });
    groupEls.set(key, el);
  }
  el.textContent = text;
  return el;
}

// Waves are labelled by their position (the server's numbering may start at 0 or 1).
const waveEls = new Map<number, HTMLElement>();
function waveLabel(wave: number, ordinal: number): HTMLElement {
  let el = waveEls.get(wave);
  if (!el) {
    el = h('div', { class: 'wave-label', 'data-wave': wave });
    waveEls.set(wave, el);
  }
  el.textContent = `Wave ${ordinal}`;
  return el;
}

function waveOrdinal(s: PaneState, wave: number): number {
  return [...new Set(s.steps.map((x) => x.wave))].sort((a, b) => a - b).indexOf(wave) + 1;
}

function renderStream(s: PaneState, expanded: string | null): void {
  const step = expanded ? s.steps.find((x) => x.stepId === expanded) : undefined;
  if (!step) {
    streamBody?.remove();
    streamBody = null;
    streamStepId = null;
    return;
  }
  const host = stepEls.get(step.stepId)!.root;
  if (streamStepId !== step.stepId || !streamBody) {
    streamBody?.remove();
    streamList = h('div', { class: 'stream', 'aria-live': 'off' });
    streamFooter = h('div', { class: 'stream-footer' });
    streamBody = h('div', { class: 'step-body' }, streamList, streamFooter);
    streamStepId = step.stepId;
    renderedItems = [];
    itemEls = [];
  }
  if (streamBody.parentElement !== host) host.append(streamBody);
  const list = streamList!;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 32;
  const items = step.items;
  for (let i = 0; i < items.length; i++) {
    if (renderedItems[i] === items[i]) continue;
    const el = renderItem(items[i], itemEls[i]);
    if (itemEls[i] !== el) {
      if (itemEls[i]) itemEls[i].replaceWith(el);
      else list.append(el);
      itemEls[i] = el;
    }
    renderedItems[i] = items[i];
  }
  for (let i = items.length; i < itemEls.length; i++) itemEls[i].remove();
  itemEls.length = Math.min(itemEls.length, items.length);
  renderedItems.length = Math.min(renderedItems.length, items.length);
  // Footer: what there is to say when the stream itself is empty or the step ended badly.
  const footer = streamFooter!;
  clear(footer);
  if (!items.length) {
    if (step.output) footer.append(h('div', { class: 'item output' }, step.output));
    else if (step.status === 'pending') footer.append(h('div', { class: 'muted' }, `Waiting for wave ${waveOrdinal(s, step.wave)}…`));
    else if (step.status === 'running') footer.append(h('div', { class: 'muted' }, step.kind === 'code' ? 'Running…' : step.kind === 'script' ? 'The script is running: its agents show below as it calls them.' : 'Starting agent…'));
    else if (step.status === 'skipped') footer.append(h('div', { class: 'muted' }, step.error ?? 'Skipped: its condition was not met.'));
    else if (step.kind === 'code') footer.append(h('div', { class: 'muted' }, 'Code step finished.'));
  }
  if (step.error && step.status !== 'skipped') footer.append(h('div', { class: 'step-error', role: 'alert' }, step.error));
  if (step.status === 'running' && items.length) footer.append(h('span', { class: 'cursor', 'aria-hidden': 'true' }));
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function renderItem(item: StreamItem, prev: HTMLElement | undefined): HTMLElement {
  switch (item.kind) {
    case 'text':
    case 'thinking': {
      if (prev && prev.dataset.kind === item.kind) {
        prev.querySelector('.item-text')!.textContent = item.text;
        return prev;
      }
      return h(
        'div',
        { class: `item ${item.kind}`, 'data-kind': item.kind },
        item.kind === 'thinking' ? h('span', { class: 'item-tag' }, 'thinking') : null,
        h('div', { class: 'item-text' }, item.text),
      );
    }
    case 'tool': {
      const st = item.result ? (item.result.isError ? 'error' : 'ok') : 'running';
      const wasOpen = prev instanceof HTMLDetailsElement ? prev.open : false;
      const d = h(
        'details',
        { class: 'item tool', 'data-kind': 'tool', 'data-state': st, 'data-tool-call-id': item.toolCallId },
        h(
          'summary',
          null,
          h('span', { class: 'tool-state', 'aria-label': st }),
          h('span', { class: 'tool-name' }, item.name),
          h('code', { class: 'tool-arg' }, summarizeInput(item.input, state?.root)),
        ),
        h('div', { class: 'tool-detail' }, h('div', { class: 'tool-h' }, 'input'), h('pre', { class: 'tool-input' }, displayValue(item.input)), item.result ? h('div', { class: 'tool-h' }, item.result.isError ? 'error' : 'result') : null, item.result ? h('pre', { class: 'tool-result' }, displayValue(item.result.content)) : null),
      );
      d.open = wasOpen;
      return d;
    }
    case 'turn': {
      const t = item.usage?.totalTokens;
      return h('div', { class: 'item turn', 'data-kind': 'turn' }, t ? `turn ended · ${formatTokens(t)} tokens` : 'turn ended');
    }
  }
}

// ---- reveal a model turn (from the run timeline); a restored pane's clock -------

/** A restored pane (the run as it was at a moment) counts elapsed times up to that moment. */
let frozenAt: number | null = null;
function paneNow(): number {
  return frozenAt ?? Date.now();
}

let pendingReveal: { stepId: string; turn: number | null } | null = null;

/** Expands the step and scrolls its stream to the start of model turn `turn` (null: the step). */
function revealTurn(stepId: string, turn: number | null): void {
  if (!state || !state.steps.some((s) => s.stepId === stepId)) {
    pendingReveal = { stepId, turn };
    return;
  }
  pendingReveal = null;
  dispatch([{ type: 'select', stepId }]);
  requestAnimationFrame(() =>
    requestAnimationFrame(() => {
      const host = stepEls.get(stepId)?.root;
      if (!host) return;
      host.scrollIntoView({ block: 'start' });
      const list = host.querySelector<HTMLElement>('.stream');
      if (!list || turn === null) return;
      // Turn k starts after the (k-1)-th "turn ended" item.
      const ends = Array.from(list.querySelectorAll<HTMLElement>(':scope > .item.turn'));
      const target = turn <= 1 ? (list.firstElementChild as HTMLElement | null) : ((ends[turn - 2]?.nextElementSibling as HTMLElement | null) ?? ends[turn - 2] ?? null);
      for (const el of list.querySelectorAll('.turn-focus')) el.classList.remove('turn-focus');
      if (!target) return;
      list.scrollTop = target.offsetTop - list.offsetTop;
      target.classList.add('turn-focus');
      target.setAttribute('data-focus-turn', String(turn));
    }),
  );
}

// ---- start --------------------------------------------------------------------

const persisted = vscode.getState();
render();
post({ type: 'ready', runId: persisted?.runId ?? null });
