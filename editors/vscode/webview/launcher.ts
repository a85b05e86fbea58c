// The Flows launcher: category tabs over boo/listFlows, a size choice, a focus box, a fast toggle.

import type { Band, Category, Flow } from '../src/protocol';
import { BANDS, CATEGORIES } from '../src/protocol';
import type { FromLauncher, LauncherDefaults, ToLauncher } from '../src/messages';
import { clear, h, vscodeApi } from './common';
import { projectFlowMark } from '../src/trust';

interface Persisted {
  category: Category;
  flow: string | null;
  band: Band;
  question: string;
  fast: boolean;
}

const vscode = vscodeApi<Persisted>();
const post = (m: FromLauncher) => vscode.postMessage(m);

const CATEGORY_LABEL: Record<Category, string> = {
  analysis: 'Analysis',
  discovery: 'Discovery',
  planning: 'Planning',
  authoring: 'Authoring',
  review: 'Review',
};
const BAND_LABEL: Record<Band, string> = { small: 'Small', medium: 'Medium', large: 'Large' };
const BAND_HINT: Record<Band, string> = {
  small: 'the minimum roster that covers correctness and security',
  medium: 'adds two or three specialists',
  large: 'adds four to six specialists',
};

let flows: Flow[] = [];
let root: string | null = null;
let trusted = false;
let launching = false;
const saved = vscode.getState();
const ui: Persisted = {
  category: saved?.category ?? 'review',
  flow: saved?.flow ?? null,
  band: saved?.band ?? 'small',
  question: saved?.question ?? '',
  fast: saved?.fast ?? false,
};

const app = document.getElementById('app') as HTMLElement;
const tabList = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Flow categories' });
const flowList = h('div', { class: 'flow-list', role: 'radiogroup', 'aria-label': 'Flows' });
const bandGroup = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Size' });
const bandHint = h('div', { class: 'hint band-hint' });
const focusBox = h('textarea', {
  class: 'focus',
  id: 'focus',
  rows: 3,
  placeholder: 'What should the agents look at? e.g. what could break in the new cache?',
  'aria-label': 'Focus',
}) as HTMLTextAreaElement;
const fastBox = h('input', { type: 'checkbox', id: 'fast', class: 'fast' }) as HTMLInputElement;
const launchBtn = h('button', { class: 'primary launch', type: 'button' }, 'Launch');
const cancelBtn = h('button', { class: 'secondary', type: 'button' }, 'Cancel');
const errorEl = h('div', { class: 'launch-error', role: 'alert', hidden: true });
const rootEl = h('div', { class: 'hint root' });
const summaryEl = h('div', { class: 'hint roster-preview' });

clear(app);
app.append(
  h('h1', null, 'Launch a flow'),
  tabList,
  flowList,
  h('div', { class: 'field' }, h('div', { class: 'field-label' }, 'Size'), bandGroup, bandHint),
  h('div', { class: 'field' }, h('label', { class: 'field-label', for: 'focus' }, 'Focus'), focusBox),
  h('div', { class: 'field row' }, fastBox, h('label', { for: 'fast' }, 'Fast'), h('span', { class: 'hint' }, '— the core roster only: leave out the specialists that join on a signal in the code')),
  summaryEl,
  rootEl,
  errorEl,
  h('div', { class: 'actions' }, launchBtn, cancelBtn),
);
app.removeAttribute('aria-busy');

for (const band of BANDS) {
  const b = h('button', { class: 'seg', role: 'radio', 'data-band': band, type: 'button' }, BAND_LABEL[band]);
  b.addEventListener('click', () => {
    ui.band = band;
    save();
    render();
  });
  bandGroup.append(b);
}
for (const cat of CATEGORIES) {
  const t = h('button', { class: 'tab', role: 'tab', 'data-category': cat, type: 'button' }, CATEGORY_LABEL[cat]);
  t.addEventListener('click', () => {
    ui.category = cat;
    const inCat = flows.filter((f) => f.category === cat);
    if (!inCat.some((f) => f.name === ui.flow)) ui.flow = inCat[0]?.name ?? null;
    save();
    render();
  });
  tabList.append(t);
}
tabList.addEventListener('keydown', (ev) => {
  if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
  const i = CATEGORIES.indexOf(ui.category);
  const next = CATEGORIES[(i + (ev.key === 'ArrowRight' ? 1 : CATEGORIES.length - 1)) % CATEGORIES.length];
  (tabList.querySelector(`[data-category="${next}"]`) as HTMLButtonElement).click();
  (tabList.querySelector(`[data-category="${next}"]`) as HTMLButtonElement).focus();
});
focusBox.value = ui.question;
fastBox.checked = ui.fast;
focusBox.addEventListener('input', () => {
  ui.question = focusBox.value;
  save();
  renderButtons();
});
focusBox.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    launch();
  }
});
fastBox.addEventListener('change', () => {
  ui.fast = fastBox.checked;
  save();
});
launchBtn.addEventListener('click', launch);
cancelBtn.addEventListener('click', () => post({ type: 'cancel' }));

function save(): void {
  vscode.setState(ui);
}

function launch(): void {
  if (launching || !ui.flow || !ui.question.trim()) {
    if (!ui.question.trim()) {
      showError('Write a focus first: it is the question the agents answer.');
      focusBox.focus();
    }
    return;
  }
  errorEl.hidden = true;
  post({ type: 'launch', flow: ui.flow, band: ui.band, question: ui.question.trim(), fast: ui.fast });
}

function showError(message: string): void {
  errorEl.hidden = false;
  errorEl.textContent = message;
}

function renderButtons(): void {
  launchBtn.disabled = launching || !ui.flow || !ui.question.trim();
  launchBtn.textContent = launching ? 'Launching…' : 'Launch';
}

function render(): void {
  for (const t of Array.from(tabList.children) as HTMLElement[]) {
    const cat = t.dataset.category as Category;
    const selected = cat === ui.category;
    t.setAttribute('aria-selected', String(selected));
    t.setAttribute('tabindex', selected ? '0' : '-1');
    const n = flows.filter((f) => f.category === cat).length;
    t.textContent = `${CATEGORY_LABEL[cat]}${flows.length ? ` (${n})` : ''}`;
  }
  for (const b of Array.from(bandGroup.children) as HTMLElement[]) {
    b.setAttribute('aria-checked', String(b.dataset.band === ui.band));
  }
  bandHint.textContent = BAND_HINT[ui.band];
  clear(flowList);
  const inCat = flows.filter((f) => f.category === ui.category);
  if (!flows.length) flowList.append(h('div', { class: 'muted' }, 'Loading flows…'));
  else if (!inCat.length) flowList.append(h('div', { class: 'muted' }, 'No flow in this category.'));
  for (const f of inCat) {
    const selected = f.name === ui.flow;
    const steps = f.bands?.[ui.band]?.length ?? 0;
    const mark = projectFlowMark(f, trusted);
    const card = h(
      'button',
      { class: 'flow-card', role: 'radio', 'aria-checked': String(selected), 'data-flow': f.name, type: 'button' },
      h(
        'div',
        { class: 'flow-title' },
        f.title || f.name,
        h('span', { class: 'flow-name' }, f.name),
        mark ? h('span', { class: 'flow-source', 'data-source': mark }, `[${mark}]`) : null,
      ),
      h('div', { class: 'flow-desc' }, f.description ?? ''),
      h('div', { class: 'flow-steps' }, `${steps} step${steps === 1 ? '' : 's'} at ${BAND_LABEL[ui.band].toLowerCase()} size`),
    );
    card.addEventListener('click', () => {
      ui.flow = f.name;
      save();
      render();
    });
    card.addEventListener('dblclick', () => {
      ui.flow = f.name;
      launch();
    });
    flowList.append(card);
  }
  const flow = flows.find((f) => f.name === ui.flow);
  summaryEl.textContent = flow ? `Roster: ${(flow.bands?.[ui.band] ?? []).join(', ') || '—'}` : '';
  rootEl.textContent = root ? `Reads ${root} (read-only)` : '';
  renderButtons();
}

window.addEventListener('message', (ev: MessageEvent) => {
  const msg = ev.data as ToLauncher;
  if (!msg || typeof msg !== 'object') return;
  switch (msg.type) {
    case 'flows': {
      flows = msg.flows ?? [];
      root = msg.root;
      trusted = msg.trusted === true;
      applyDefaults(msg.defaults);
      launching = false;
      render();
      break;
    }
    case 'launching':
      launching = true;
      renderButtons();
      break;
    case 'error':
      launching = false;
      showError(msg.message);
      renderButtons();
      break;
  }
});

function applyDefaults(d: LauncherDefaults): void {
  if (d.band && !saved?.band) ui.band = d.band;
  if (d.question && !ui.question) {
    ui.question = d.question;
    focusBox.value = d.question;
  }
  if (d.fast !== undefined && saved?.fast === undefined) {
    ui.fast = d.fast;
    fastBox.checked = d.fast;
  }
  const wanted = d.flow ? flows.find((f) => f.name === d.flow) : undefined;
  if (wanted) {
    ui.flow = wanted.name;
    ui.category = wanted.category;
  } else if (d.category && (CATEGORIES as string[]).includes(d.category) && !saved?.category) {
    ui.category = d.category as Category;
  }
  if (!flows.some((f) => f.name === ui.flow && f.category === ui.category)) {
    ui.flow = flows.find((f) => f.category === ui.category)?.name ?? null;
  }
  save();
}

render();
post({ type: 'ready' });
