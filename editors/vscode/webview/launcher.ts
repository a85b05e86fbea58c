// The Flows launcher: category tabs over boo/listFlows, a size choice, a focus box, a fast toggle;
// and a Workflows tab over boo/listWorkflows with an args box and an optional token budget.

import type { Band, Category, Flow } from '../src/protocol';
import { BANDS, CATEGORIES } from '../src/protocol';
import type { FromLauncher, LauncherDefaults, ToLauncher } from '../src/messages';
import type { Workflow } from '../src/workflows';
import { clear, h, vscodeApi } from './common';
import { projectFlowMark } from '../src/trust';
import { MAX_IMAGES, PendingImage, checkImage, dataUrl, defaultName, formatBytes, toBase64 } from '../src/attachments';

type Tab = Category | 'workflows';

interface Persisted {
  category: Tab;
  workflow?: string | null;
  args?: string;
  budget?: string;
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
let workflows: Workflow[] | null = null;
let workflowsError: string | null = null;
let trusted = false;
let root: string | null = null;
let launching = false;
const saved = vscode.getState();
const ui: Persisted = {
  category: saved?.category ?? 'review',
  flow: saved?.flow ?? null,
  band: saved?.band ?? 'small',
  question: saved?.question ?? '',
  fast: saved?.fast ?? false,
  workflow: saved?.workflow ?? null,
  args: saved?.args ?? '',
  budget: saved?.budget ?? '',
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
const argsBox = h('textarea', {
  class: 'args',
  id: 'args',
  rows: 3,
  placeholder: 'The script\'s args: JSON (e.g. {"paths": ["src/"]}) or plain text; empty for none',
  'aria-label': 'Args',
}) as HTMLTextAreaElement;
const budgetBox = h('input', { type: 'text', id: 'budget', class: 'budget', inputmode: 'numeric', placeholder: 'no budget', 'aria-label': 'Token budget' }) as HTMLInputElement;
const argsHint = h('div', { class: 'hint args-hint' });
const launchBtn = h('button', { class: 'primary launch', type: 'button' }, 'Launch');
const cancelBtn = h('button', { class: 'secondary', type: 'button' }, 'Cancel');
const errorEl = h('div', { class: 'launch-error', role: 'alert', hidden: true });
const rootEl = h('div', { class: 'hint root' });
const summaryEl = h('div', { class: 'hint roster-preview' });

const flowFields = [
  h('div', { class: 'field' }, h('div', { class: 'field-label' }, 'Size'), bandGroup, bandHint),
  h('div', { class: 'field' }, h('label', { class: 'field-label', for: 'focus' }, 'Focus'), focusBox),
  h('div', { class: 'field row' }, fastBox, h('label', { for: 'fast' }, 'Fast'), h('span', { class: 'hint' }, '— the core roster only: leave out the specialists that join on a signal in the code')),
];
const workflowFields = [
  h('div', { class: 'field' }, h('label', { class: 'field-label', for: 'args' }, 'Args'), argsBox, argsHint),
  h(
    'div',
    { class: 'field' },
    h('label', { class: 'field-label', for: 'budget' }, 'Token budget'),
    budgetBox,
    h('div', { class: 'hint' }, 'Output tokens for the whole run (e.g. 20000 or 20k); agent() throws once they are spent. Cached answers cost nothing.'),
  ),
];
const titleEl = h('h1', null, 'Launch a flow');

// ---- images (issue 16): picked, dropped or pasted; sent with the launch --------------
// Kept in memory only (not in the persisted state: images are large).
let images: PendingImage[] = [];
let pasted = 0;
let visionTouched = false;
const imageList = h('div', { class: 'image-list', role: 'list', 'aria-label': 'Attached images' });
const imageErr = h('div', { class: 'image-error', role: 'alert', hidden: true });
const addImagesBtn = h('button', { class: 'secondary add-images', type: 'button', title: 'Pick PNG, JPEG, GIF or WebP files' }, 'Add images…');
const dropZone = h(
  'div',
  { class: 'drop-zone', tabindex: 0, 'aria-label': 'Drop images here, or paste them' },
  h('span', { class: 'hint' }, `Drop images here (from outside VS Code hold Shift while dropping), paste one with Ctrl+V, or `),
  addImagesBtn,
  h('span', { class: 'hint' }, ` — PNG, JPEG, GIF or WebP, at most ${MAX_IMAGES}.`),
);
const visionBox = h('input', { type: 'checkbox', id: 'vision', class: 'vision' }) as HTMLInputElement;
const visionRow = h(
  'div',
  { class: 'field row vision-row' },
  visionBox,
  h('label', { for: 'vision' }, 'Vision model'),
  h('span', { class: 'hint' }, '— the model takes images (sends visionModel: true with the images; the boo.visionModel setting is the default)'),
);
const imagesField = h('div', { class: 'field images-field' }, h('div', { class: 'field-label' }, 'Images'), dropZone, imageList, imageErr, visionRow);

function showImageErrors(errors: string[]): void {
  imageErr.hidden = !errors.length;
  imageErr.textContent = errors.join('\n');
}

function renderImages(): void {
  imageList.replaceChildren(
    ...images.map((img, i) =>
      h(
        'div',
        { class: 'image-chip', role: 'listitem', 'data-name': img.name },
        h('img', { class: 'thumb', src: dataUrl(img.mimeType, img.data), alt: img.name }),
        h('span', { class: 'image-name', title: img.path ?? img.name }, img.name),
        h('span', { class: 'image-size' }, formatBytes(img.bytes)),
        h(
          'button',
          {
            class: 'icon-btn image-remove',
            type: 'button',
            title: `Remove ${img.name}`,
            'aria-label': `Remove ${img.name}`,
            onclick: () => {
              images = images.filter((_, k) => k !== i);
              showImageErrors([]);
              renderImages();
            },
          },
          '×',
        ),
      ),
    ),
  );
  visionRow.hidden = !images.length;
}

/** Files from a drop or the clipboard: checked here (the server checks again). */
async function addFiles(files: File[]): Promise<void> {
  const errors: string[] = [];
  for (const f of files) {
    const head = new Uint8Array(await f.slice(0, 16).arrayBuffer());
    let name = f.name;
    if (!name || name === 'image.png') name = defaultName(f.type || 'image/png', ++pasted);
    const c = checkImage(name, head, f.size, images.length);
    if (!c.ok) {
      errors.push(c.message);
      continue;
    }
    images.push({ name, mimeType: c.mimeType, bytes: f.size, data: toBase64(new Uint8Array(await f.arrayBuffer())) });
  }
  showImageErrors(errors);
  renderImages();
}

/** What a launch message carries for images: nothing without any. */
function imagesPart(): { images?: PendingImage[]; vision?: boolean } {
  return images.length ? { images, vision: visionBox.checked } : {};
}

addImagesBtn.addEventListener('click', () => post({ type: 'pickImages', already: images.length }));
visionBox.addEventListener('change', () => {
  visionTouched = true;
});
document.addEventListener('paste', (ev) => {
  const items = Array.from(ev.clipboardData?.items ?? []);
  const files = items.filter((i) => i.kind === 'file').map((i) => i.getAsFile()).filter((f): f is File => !!f);
  if (!files.length) return;
  ev.preventDefault();
  void addFiles(files);
});
document.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  dropZone.classList.add('dragging');
});
document.addEventListener('dragleave', () => dropZone.classList.remove('dragging'));
document.addEventListener('drop', (ev) => {
  ev.preventDefault();
  dropZone.classList.remove('dragging');
  const dt = ev.dataTransfer;
  if (!dt) return;
  if (dt.files && dt.files.length) {
    void addFiles(Array.from(dt.files));
    return;
  }
  // From the Explorer: URIs, read by the host.
  const list = dt.getData('application/vnd.code.uri-list') || dt.getData('text/uri-list');
  const uris = list
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (uris.length) post({ type: 'addUris', uris, already: images.length });
});
renderImages();

clear(app);
app.append(
  titleEl,
  tabList,
  flowList,
  ...flowFields,
  ...workflowFields,
  imagesField,
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
const TABS: Tab[] = [...CATEGORIES, 'workflows'];
for (const cat of TABS) {
  const t = h('button', { class: `tab${cat === 'workflows' ? ' tab-workflows' : ''}`, role: 'tab', 'data-category': cat, type: 'button' }, tabLabel(cat));
  t.addEventListener('click', () => {
    ui.category = cat;
    if (cat === 'workflows') {
      if (!(workflows ?? []).some((w) => w.name === ui.workflow)) ui.workflow = workflows?.[0]?.name ?? null;
    } else {
      const inCat = flows.filter((f) => f.category === cat);
      if (!inCat.some((f) => f.name === ui.flow)) ui.flow = inCat[0]?.name ?? null;
    }
    errorEl.hidden = true;
    save();
    render();
  });
  tabList.append(t);
}
tabList.addEventListener('keydown', (ev) => {
  if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
  const i = TABS.indexOf(ui.category);
  const next = TABS[(i + (ev.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length];
  (tabList.querySelector(`[data-category="${next}"]`) as HTMLButtonElement).click();
  (tabList.querySelector(`[data-category="${next}"]`) as HTMLButtonElement).focus();
});
focusBox.value = ui.question;
fastBox.checked = ui.fast;
argsBox.value = ui.args ?? '';
budgetBox.value = ui.budget ?? '';
argsBox.addEventListener('input', () => {
  ui.args = argsBox.value;
  save();
  renderArgsHint();
});
budgetBox.addEventListener('input', () => {
  ui.budget = budgetBox.value;
  save();
});
for (const box of [argsBox, budgetBox]) {
  box.addEventListener('keydown', (ev) => {
    const e = ev as KeyboardEvent;
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey || box === budgetBox)) {
      e.preventDefault();
      launch();
    }
  });
}
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

function tabLabel(cat: Tab): string {
  return cat === 'workflows' ? 'Workflows' : CATEGORY_LABEL[cat];
}

/** What the args box will send: JSON when it parses, else the text. */
function renderArgsHint(): void {
  const t = (ui.args ?? '').trim();
  if (!t) argsHint.textContent = 'No args: the script sees undefined.';
  else {
    try {
      JSON.parse(t);
      argsHint.textContent = 'Sent as JSON.';
    } catch {
      argsHint.textContent = 'Not JSON: sent as a string.';
    }
  }
}

function launch(): void {
  if (ui.category === 'workflows') {
    if (launching || !ui.workflow) return;
    errorEl.hidden = true;
    post({ type: 'launchWorkflow', workflow: ui.workflow, args: ui.args ?? '', budget: ui.budget ?? '', ...imagesPart() });
    return;
  }
  if (launching || !ui.flow || !ui.question.trim()) {
    if (!ui.question.trim()) {
      showError('Write a focus first: it is the question the agents answer.');
      focusBox.focus();
    }
    return;
  }
  errorEl.hidden = true;
  post({ type: 'launch', flow: ui.flow, band: ui.band, question: ui.question.trim(), fast: ui.fast, ...imagesPart() });
}

function showError(message: string): void {
  errorEl.hidden = false;
  errorEl.textContent = message;
}

function renderButtons(): void {
  launchBtn.disabled = launching || (ui.category === 'workflows' ? !ui.workflow : !ui.flow || !ui.question.trim());
  launchBtn.textContent = launching ? 'Launching…' : 'Launch';
}

function projectMark(source: string | undefined): HTMLElement | null {
  const mark = projectFlowMark({ source: source as Flow['source'] }, trusted);
  if (!mark) return null;
  return h('span', { class: `badge source${trusted ? '' : ' untrusted'}`, 'data-source': mark, title: trusted ? 'From this folder (trusted)' : 'From this folder, which is not trusted: launching asks first' }, mark.replace(', ', ' · '));
}

function renderWorkflows(): void {
  titleEl.textContent = 'Launch a workflow';
  for (const el of flowFields) el.hidden = true;
  for (const el of workflowFields) el.hidden = false;
  clear(flowList);
  if (workflows === null) flowList.append(h('div', { class: 'muted workflows-error' }, workflowsError ?? 'Loading workflows…'));
  else if (!workflows.length) flowList.append(h('div', { class: 'muted' }, 'No workflow: add one to .boo/workflows/ or ~/.config/boo/workflows/.'));
  for (const w of workflows ?? []) {
    const selected = w.name === ui.workflow;
    const phases = (w.phases ?? []).map((p) => p.title).filter(Boolean);
    const card = h(
      'button',
      { class: 'flow-card workflow-card', role: 'radio', 'aria-checked': String(selected), 'data-workflow': w.name, 'data-source': w.source, type: 'button' },
      h('div', { class: 'flow-title' }, w.name, projectMark(w.source), w.source !== 'project' ? h('span', { class: 'flow-name' }, w.source) : null),
      h('div', { class: 'flow-desc' }, w.description ?? ''),
      w.whenToUse ? h('div', { class: 'flow-steps' }, `When: ${w.whenToUse}`) : null,
      phases.length ? h('div', { class: 'flow-steps' }, `Phases: ${phases.join(' → ')}`) : null,
    );
    card.addEventListener('click', () => {
      ui.workflow = w.name;
      save();
      render();
    });
    card.addEventListener('dblclick', () => {
      ui.workflow = w.name;
      launch();
    });
    flowList.append(card);
  }
  const wf = (workflows ?? []).find((w) => w.name === ui.workflow);
  summaryEl.textContent = wf?.path ? `Script: ${wf.path}` : '';
  rootEl.textContent = root ? `Reads ${root} (read-only)` : '';
  renderArgsHint();
  renderButtons();
}

function render(): void {
  for (const t of Array.from(tabList.children) as HTMLElement[]) {
    const cat = t.dataset.category as Tab;
    const selected = cat === ui.category;
    t.setAttribute('aria-selected', String(selected));
    t.setAttribute('tabindex', selected ? '0' : '-1');
    const n = cat === 'workflows' ? (workflows ?? []).length : flows.filter((f) => f.category === cat).length;
    const known = cat === 'workflows' ? workflows !== null : flows.length > 0;
    t.textContent = `${tabLabel(cat)}${known ? ` (${n})` : ''}`;
  }
  if (ui.category === 'workflows') {
    renderWorkflows();
    return;
  }
  titleEl.textContent = 'Launch a flow';
  for (const el of flowFields) el.hidden = false;
  for (const el of workflowFields) el.hidden = true;
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
    const card = h(
      'button',
      { class: 'flow-card', role: 'radio', 'aria-checked': String(selected), 'data-flow': f.name, type: 'button' },
      h('div', { class: 'flow-title' }, f.title || f.name, projectMark(f.source), h('span', { class: 'flow-name' }, f.name)),
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
      workflows = msg.workflows ?? null;
      workflowsError = msg.workflowsError ?? null;
      trusted = msg.trusted === true;
      root = msg.root;
      if (!visionTouched) visionBox.checked = msg.vision === true;
      applyDefaults(msg.defaults);
      launching = false;
      render();
      break;
    }
    case 'images': {
      const room = Math.max(0, MAX_IMAGES - images.length);
      const errors = [...(msg.errors ?? [])];
      const got = msg.images ?? [];
      if (got.length > room) errors.push(`At most ${MAX_IMAGES} images per run: ${got.length - room} left out.`);
      images = [...images, ...got.slice(0, room)];
      showImageErrors(errors);
      renderImages();
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
  if (d.tab === 'workflows') {
    ui.category = 'workflows';
    if (d.workflow) ui.workflow = d.workflow;
    if (!(workflows ?? []).some((w) => w.name === ui.workflow)) ui.workflow = workflows?.[0]?.name ?? null;
    save();
    return;
  }
  if (ui.category === 'workflows') {
    if (!(workflows ?? []).some((w) => w.name === ui.workflow)) ui.workflow = workflows?.[0]?.name ?? null;
    save();
    return;
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
