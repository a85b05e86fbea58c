// The extension's webviews rendered in headless Chromium, fed like the extension host
// feeds them: recorded notification sequences of the real server (tests/vscode/fixtures)
// and a hand-written run for the edge cases. Screenshots go to artifacts/vscode/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ARTIFACTS, REPO as REPO_ROOT, launchChromium, lib, openPage, posted, recordings, send, shot, startStatic, within } from './lib/harness.mjs';

const { reduce, emptyState, synthetic } = lib;
let browser;
let web;

before(async () => {
  browser = await within(60_000, launchChromium(), 'chromium start');
  web = await startStatic();
});
after(async () => {
  await browser?.close();
  await web?.close();
});

/** Sends a run to a pane the way the host does: a snapshot after runStarted, then coalesced actions. */
async function feed(page, runId, notifications, { batch = 4, delayMs = 0 } = {}) {
  const actions = notifications.map((n) => ({ type: 'notification', notification: n, now: Date.now() }));
  for (let i = 0; i < actions.length; i += batch) {
    await send(page, { type: 'actions', actions: actions.slice(i, i + batch) });
    if (delayMs) await page.waitForTimeout(delayMs);
  }
  await nextFrames(page);
}

async function nextFrames(page) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

function snapshotAfterStart(runId, notifications) {
  const started = notifications.find((n) => n.method === 'boo/runStarted' && n.params.runId === runId);
  assert.ok(started, 'the sequence has a runStarted');
  return reduce(emptyState(runId), { type: 'notification', notification: started, now: Date.now() });
}

const recorded = recordings();
const sources = [
  ...recorded.filter((r) => r.getRun.run.kind !== 'workflow').map((r) => ({
    name: r.file.replace(/\.json$/, ''),
    runId: r.runId,
    notifications: r.notifications.filter((n) => n.method?.startsWith('boo/') && n.params?.runId === r.runId),
    report: r.getRun.report,
  })),
  { name: 'synthetic', runId: synthetic.RUN_ID, notifications: synthetic.fullRun(), report: synthetic.REPORT },
];

test('recorded fixtures of the real server are present', () => {
  assert.ok(recorded.length >= 1, `no recording in tests/vscode/fixtures — run: node tests/vscode/record.mjs`);
});

for (const src of sources) {
  describe(`Orchestrator pane — ${src.name}`, () => {
    test('roster, a streamed delta, then the report at the top', async () => {
      const { page, context, problems } = await openPage(browser, web.page(`pane-${src.name}`, 'pane'));
      try {
        const rest = src.notifications.filter((n) => n.method !== 'boo/runStarted');
        await send(page, { type: 'state', state: snapshotAfterStart(src.runId, src.notifications) });
        await nextFrames(page);
        const rows = await page.locator('.step').count();
        const started = src.notifications[0].params;
        assert.equal(rows, started.steps.length, 'one roster row per step');
        assert.equal(await page.locator('.flow-name').textContent(), started.flow);
        assert.equal(await page.locator('.status-pill').textContent(), 'running');
        assert.equal(await page.locator('.step[data-status="pending"]').count(), started.steps.length);

        // Up to the first text delta.
        const firstText = rest.findIndex((n) => n.method === 'boo/agentStream' && n.params.events.some((e) => e.type === 'text' && e.text.trim()));
        assert.ok(firstText >= 0, 'the run streams text');
        await feed(page, src.runId, rest.slice(0, firstText + 1), { batch: 3 });
        const delta = rest[firstText].params.events.find((e) => e.type === 'text' && e.text.trim()).text.trim();
        const expanded = page.locator('.step.expanded');
        assert.equal(await expanded.count(), 1, 'exactly one step is expanded');
        assert.equal(await expanded.getAttribute('data-step-id'), rest[firstText].params.stepId, 'the active step is expanded');
        const streamText = await expanded.locator('.stream').innerText();
        assert.ok(streamText.includes(delta.slice(0, 40)), `the delta "${delta.slice(0, 40)}" is shown`);
        assert.ok((await page.locator('.step[data-status="running"]').count()) >= 1);
        assert.equal(await page.locator('.report').isHidden(), true, 'no report while running');
        await shot(page, `pane-${src.name}-streaming`);

        // The rest of the run.
        await feed(page, src.runId, rest.slice(firstText + 1), { batch: 8 });
        assert.equal(await page.locator('.status-pill').textContent(), 'completed');
        const report = page.locator('.report');
        assert.equal(await report.isVisible(), true, 'the report is shown');
        const reportBox = await report.boundingBox();
        const rosterBox = await page.locator('.roster').boundingBox();
        assert.ok(reportBox.y < rosterBox.y, 'the report is above the roster');
        assert.ok((await report.locator('h1, h2').count()) >= 1, 'the Markdown is rendered');
        assert.equal(await page.locator('.step[data-status="running"]').count(), 0);
        assert.equal(await page.locator('.step .dot').count(), started.steps.length, 'a status dot per step');
        await shot(page, `pane-${src.name}-report`);
        await shot(page, `pane-${src.name}-report-full`, { fullPage: true });

        // One expanded step at a time: picking another collapses the first.
        const ids = await page.locator('.step').evaluateAll((els) => els.map((e) => e.getAttribute('data-step-id')));
        await page.locator(`.step[data-step-id="${ids[0]}"] .step-row`).click();
        await nextFrames(page);
        assert.equal(await page.locator('.step.expanded').count(), 1);
        assert.equal(await page.locator('.step.expanded').getAttribute('data-step-id'), ids[0]);
        await page.locator(`.step[data-step-id="${ids[0]}"] .step-row`).click();
        await nextFrames(page);
        assert.equal(await page.locator('.step.expanded').count(), 0, 'clicking the open step collapses it');

        // The … menu: export actions are enabled once a report exists.
        await page.locator('.menu-btn').click();
        assert.equal(await page.locator('.menu').isVisible(), true);
        assert.equal(await page.locator('.menu-item[data-action="copy"]').isEnabled(), true);
        assert.equal(await page.locator('.menu-item[data-action="cancel"]').isHidden(), true, 'no cancel on a finished run');
        await page.locator('.menu-item[data-action="saveMarkdown"]').click();
        const msgs = await posted(page);
        assert.deepEqual(msgs.at(-1), { type: 'menu', action: 'saveMarkdown', runId: src.runId });
        assert.equal(await page.locator('.menu').isHidden(), true);

        // path:line citations open the file.
        const cites = page.locator('.report code.cite');
        if (await cites.count()) {
          await cites.first().click();
          const m = (await posted(page)).at(-1);
          assert.equal(m.type, 'openFile');
          assert.ok(m.line >= 1 && m.path.length > 0);
        }
        // Kept for a reload.
        assert.deepEqual(await page.evaluate(() => window.__state), { runId: src.runId });
        assert.deepEqual(problems, [], 'no console errors and no CSP violations');
      } finally {
        await context.close();
      }
    });

    test('narrow width: one column, no horizontal scrolling', async () => {
      const { page, context, problems } = await openPage(browser, web.page(`narrow-${src.name}`, 'pane'), { width: 340, height: 900 });
      try {
        const final = src.notifications.reduce((s, n) => reduce(s, { type: 'notification', notification: n, now: Date.now() }), emptyState(src.runId));
        const agent = final.steps.find((s) => s.kind === 'agent');
        await send(page, { type: 'state', state: { ...final, selection: { mode: 'user', stepId: agent.stepId } } });
        await nextFrames(page);
        const overflow = await page.evaluate(() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth);
        assert.ok(overflow <= 1, `no horizontal overflow (got ${overflow}px)`);
        const xs = await page.locator('.step-row').evaluateAll((els) => els.map((e) => Math.round(e.getBoundingClientRect().x)));
        assert.ok(Math.max(...xs) - Math.min(...xs) <= 2, `rows share one column (x: ${xs})`);
        await shot(page, `pane-${src.name}-narrow`, { fullPage: true });
        assert.deepEqual(problems, []);
      } finally {
        await context.close();
      }
    });
  });
}

describe('Orchestrator pane — stream integrity', () => {
  test('duplicates are dropped; a gap asks the host to resync and a getRun snapshot heals it', async () => {
    const { page, context, problems } = await openPage(browser, web.page('pane-gaps', 'pane'));
    try {
      const S = synthetic;
      await send(page, { type: 'state', state: snapshotAfterStart(S.RUN_ID, [S.runStarted()]) });
      await feed(page, S.RUN_ID, [S.step('security', 'running'), S.stream('security', S.CHAT_SEC, 1, S.SEC_EVENTS[0]), S.stream('security', S.CHAT_SEC, 1, S.SEC_EVENTS[0])]);
      const thinking = await page.locator('.step.expanded .thinking .item-text').allTextContents();
      assert.deepEqual(thinking, ['Look at the cache write path first.'], 'the duplicate chunk was not applied');
      // seq 2 and 3 are lost; 4 arrives.
      await feed(page, S.RUN_ID, [S.stream('security', S.CHAT_SEC, 4, S.SEC_EVENTS[3])]);
      assert.equal(await page.locator('.step.expanded .text').count(), 0, 'a chunk after a gap is held back');
      await page.waitForFunction(() => window.__posted.some((m) => m.type === 'resync'), null, { timeout: 5000 });
      assert.deepEqual((await posted(page)).filter((m) => m.type === 'resync'), [{ type: 'resync', runId: S.RUN_ID }]);
      // The host answers with the transcript.
      await send(page, { type: 'actions', actions: [{ type: 'hydrate', result: S.getRunSnapshot(3) }] });
      await nextFrames(page);
      const kinds = await page.locator('.step.expanded .stream > .item').evaluateAll((els) => els.map((e) => e.dataset.kind));
      assert.deepEqual(kinds, ['thinking', 'tool', 'text']);
      assert.equal(await page.locator('.step.expanded .tool').getAttribute('data-state'), 'ok');
      assert.equal(await page.locator('.step.expanded .text .item-text').textContent(), 'The entry is inserted before the write succeeds.');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('the report is sanitized: no script, no event handlers', async () => {
    const { page, context } = await openPage(browser, web.page('pane-xss', 'pane'));
    try {
      const S = synthetic;
      const evil = '# Report\n\n<img src="x" onerror="window.__pwned=1"> <script>window.__pwned=2</script>\n\n<a href="javascript:window.__pwned=3">x</a>';
      let st = snapshotAfterStart(S.RUN_ID, [S.runStarted()]);
      st = reduce(st, { type: 'notification', notification: S.step('report', 'completed', { runStatus: 'completed', report: evil }) });
      await send(page, { type: 'state', state: st });
      await nextFrames(page);
      await page.waitForTimeout(200);
      assert.equal(await page.evaluate(() => window.__pwned), undefined);
      assert.equal(await page.locator('.report script').count(), 0);
      assert.equal(await page.locator('.report [onerror]').count(), 0);
      assert.equal(await page.locator('.report a[href^="javascript:"]').count(), 0);
    } finally {
      await context.close();
    }
  });

  test('an empty pane offers the launcher', async () => {
    const { page, context } = await openPage(browser, web.page('pane-empty', 'pane'));
    try {
      await send(page, { type: 'empty', message: 'No run in this pane yet.' });
      await nextFrames(page);
      await page.getByRole('button', { name: 'Launch a flow…' }).click();
      assert.deepEqual((await posted(page)).at(-1), { type: 'launch' });
      await shot(page, 'pane-empty');
    } finally {
      await context.close();
    }
  });
});

describe('Orchestrator pane — ten agents streaming', () => {
  test('stays smooth: batched updates, no long frames, every delta shown', async () => {
    const { page, context, problems } = await openPage(browser, web.page('pane-ten', 'pane'), { width: 1000, height: 900 });
    try {
      const runId = '0195f3a2-0000-7000-8000-0000000000aa';
      const AGENTS = 10;
      const CHUNKS = 150;
      const steps = Array.from({ length: AGENTS }, (_, i) => ({ stepId: `agent-${i}`, agent: `persona-${i}`, kind: 'agent', label: `Agent ${i}`, wave: 0, chatId: `chat-${i}`, status: 'pending' }));
      const started = { method: 'boo/runStarted', params: { runId, flow: 'load-test', band: 'large', question: 'ten agents at once', root: '/work/project', status: 'running', steps } };
      await send(page, { type: 'state', state: reduce(emptyState(runId), { type: 'notification', notification: started }) });
      // What the host would post: every 50 ms, the chunks of all agents in that window.
      const batches = [[...steps.map((s) => ({ type: 'notification', notification: { method: 'boo/stepUpdated', params: { runId, stepId: s.stepId, status: 'running', startedAt: new Date().toISOString() } } }))]];
      for (let c = 1; c <= CHUNKS; c++) {
        const batch = [];
        for (let a = 0; a < AGENTS; a++) {
          const events =
            c % 25 === 0
              ? [{ type: 'toolCall', toolCallId: `t${a}-${c}`, name: 'read_file', input: { absolute_path: `/work/project/src/file${c}.py` } }, { type: 'toolResult', toolCallId: `t${a}-${c}`, isError: false, content: 'x'.repeat(400) }]
              : [{ type: 'text', text: `agent ${a} chunk ${c} — some streamed words about the cache. ` }, { type: 'thinking', text: `weighing ${c}. ` }];
          batch.push({ type: 'notification', notification: { method: 'boo/agentStream', params: { runId, stepId: `agent-${a}`, chatId: `chat-${a}`, seq: c, events } } });
        }
        batches.push(batch);
      }
      const t0 = Date.now();
      const result = await page.evaluate(async (batches) => {
        window.__longTasks.length = 0;
        const frames0 = window.__frames;
        const start = performance.now();
        let maxHandler = 0;
        for (const actions of batches) {
          const s = performance.now();
          window.postMessage({ type: 'actions', actions }, '*');
          await new Promise((r) => setTimeout(r, 50));
          maxHandler = Math.max(maxHandler, performance.now() - s - 50);
        }
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        return { ms: performance.now() - start, frames: window.__frames - frames0, longTasks: window.__longTasks.slice(), maxHandler };
      }, batches);
      const wall = Date.now() - t0;
      const expandedId = await page.locator('.step.expanded').getAttribute('data-step-id');
      assert.ok(expandedId, 'the most active step is expanded');
      const a = Number(expandedId.split('-')[1]);
      const text = await page.locator('.step.expanded .stream').innerText();
      assert.ok(text.includes(`agent ${a} chunk 1 —`) && text.includes(`agent ${a} chunk ${CHUNKS - 1} —`), 'all deltas of the expanded step are shown');
      const rows = await page.locator('.step-meta').allTextContents();
      assert.equal(rows.filter((r) => /6 tools/.test(r)).length, AGENTS, 'every row counts its tool calls');
      const metrics = { agents: AGENTS, chunksPerAgent: CHUNKS, messages: batches.length, wallMs: wall, ...result, maxLongTaskMs: Math.max(0, ...result.longTasks) };
      fs.writeFileSync(path.join(ARTIFACTS, 'smoothness.json'), JSON.stringify(metrics, null, 2));
      console.log(`# smoothness: ${JSON.stringify({ ...metrics, longTasks: result.longTasks.length })}`);
      assert.ok(metrics.frames > batches.length * 0.5, `frames kept coming (${metrics.frames} frames for ${batches.length} batches)`);
      assert.ok(metrics.maxLongTaskMs < 250, `no long task over 250 ms (max ${metrics.maxLongTaskMs} ms)`);
      await shot(page, 'pane-ten-agents');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
});

// ---- launcher ---------------------------------------------------------------------

const SYNTHETIC_FLOWS = [
  { name: 'code-review', title: 'Code review', category: 'review', description: 'Review the current change for correctness and security.', bands: { small: ['diff', 'security', 'correctness', 'verify', 'report'], medium: ['diff', 'a', 'b', 'c', 'd', 'e'], large: ['diff', 'a', 'b', 'c', 'd', 'e', 'f', 'g'] } },
  { name: 'architectural-analysis', title: 'Architectural analysis', category: 'analysis', description: 'Map the structure and its risks.', bands: { small: ['scan', 'architect', 'report'], medium: ['scan', 'a', 'b', 'report'], large: ['scan', 'a', 'b', 'c', 'd', 'report'] } },
  { name: 'investigate', title: 'Investigate', category: 'analysis', description: 'Chase a symptom to its cause.', bands: { small: ['a', 'b'], medium: ['a', 'b', 'c'], large: ['a', 'b', 'c', 'd'] } },
  { name: 'project-discovery', title: 'Project discovery', category: 'discovery', description: 'What is this codebase?', bands: { small: ['a'], medium: ['a', 'b'], large: ['a', 'b', 'c'] } },
  { name: 'plan-a-feature', title: 'Plan a feature', category: 'planning', description: 'A plan with risks.', bands: { small: ['a'], medium: ['a', 'b'], large: ['a', 'b', 'c'] } },
  { name: 'adr-draft', title: 'ADR draft', category: 'authoring', description: 'Draft a decision record.', bands: { small: ['a'], medium: ['a', 'b'], large: ['a', 'b', 'c'] } },
];
const flowLists = [...recorded.slice(0, 1).map((r) => ({ name: 'recorded', flows: r.listFlows.flows })), { name: 'synthetic', flows: SYNTHETIC_FLOWS }];

for (const fl of flowLists) {
  test(`Flows launcher — ${fl.name}: tabs filter the flows, Small by default, Launch posts the choice`, async () => {
    const { page, context, problems } = await openPage(browser, web.page(`launcher-${fl.name}`, 'launcher'), { width: 900, height: 760 });
    try {
      await send(page, { type: 'flows', flows: fl.flows, defaults: { band: 'small' }, root: '/work/project' });
      await nextFrames(page);
      const tabs = await page.locator('[role="tab"]').allTextContents();
      assert.deepEqual(
        tabs.map((t) => t.replace(/ \(\d+\)$/, '')),
        ['Analysis', 'Discovery', 'Planning', 'Authoring', 'Review', 'Workflows'],
      );
      for (const [i, cat] of ['analysis', 'discovery', 'planning', 'authoring', 'review'].entries()) {
        await page.locator('[role="tab"]').nth(i).click();
        const shown = await page.locator('.flow-card').evaluateAll((els) => els.map((e) => e.dataset.flow));
        const want = fl.flows.filter((f) => f.category === cat).map((f) => f.name);
        assert.deepEqual(shown, want, `tab ${cat} shows exactly its flows`);
        assert.equal(await page.locator('[role="tab"]').nth(i).getAttribute('aria-selected'), 'true');
      }
      await page.locator('[role="tab"]', { hasText: 'Review' }).click();
      assert.equal(await page.locator('.seg[aria-checked="true"]').textContent(), 'Small', 'Small is the default size');
      assert.equal(await page.locator('.launch').isDisabled(), true, 'no launch without a focus');
      await page.locator('.flow-card[data-flow="code-review"]').click();
      assert.equal(await page.locator('.flow-card[aria-checked="true"]').getAttribute('data-flow'), 'code-review');
      await page.locator('.focus').fill('what could break in the cache?');
      await page.locator('#fast').check();
      const steps = fl.flows.find((f) => f.name === 'code-review').bands.small.length;
      assert.match(await page.locator('.flow-card[data-flow="code-review"] .flow-steps').textContent(), new RegExp(`^${steps} steps? at small size$`));
      await shot(page, `launcher-${fl.name}`);
      await page.locator('.launch').click();
      assert.deepEqual((await posted(page)).at(-1), { type: 'launch', flow: 'code-review', band: 'small', question: 'what could break in the cache?', fast: true });
      // Medium, then an error from the server is shown.
      await send(page, { type: 'error', message: 'unknown flow' });
      await page.locator('.seg[data-band="medium"]').click();
      await page.locator('.launch').click();
      assert.equal((await posted(page)).at(-1).band, 'medium');
      await send(page, { type: 'error', message: 'agent unavailable: qwen not found (set BOO_QWEN)' });
      await nextFrames(page);
      assert.match(await page.locator('.launch-error').textContent(), /qwen not found/);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
}

// ---- workflows ----------------------------------------------------------------------

const WORKFLOWS = [
  { name: 'deep-review', description: 'Review with adversarial verification until nothing new turns up.', whenToUse: 'before a release', phases: [{ title: 'Find' }, { title: 'Verify' }], source: 'builtin', path: 'builtin:deep-review.js' },
  { name: 'audit', description: 'The team audit script.', phases: [{ title: 'Survey' }], source: 'project', path: '/work/project/.boo/workflows/audit.js' },
];

test('Workflows tab: lists workflows (an untrusted project one marked), args and budget, Launch posts them', async () => {
  const { page, context, problems } = await openPage(browser, web.page('launcher-workflows', 'launcher'), { width: 900, height: 760 });
  try {
    await send(page, { type: 'flows', flows: SYNTHETIC_FLOWS, defaults: { band: 'small' }, root: '/work/project', workflows: WORKFLOWS, workflowsError: null, trusted: false });
    await nextFrames(page);
    await page.locator('[role="tab"]', { hasText: 'Workflows' }).click();
    assert.equal(await page.locator('h1').textContent(), 'Launch a workflow');
    assert.deepEqual(await page.locator('.workflow-card').evaluateAll((els) => els.map((e) => e.dataset.workflow)), ['deep-review', 'audit']);
    assert.equal(await page.locator('.flow-card:not(.workflow-card)').count(), 0, 'no flow cards on the Workflows tab');
    assert.equal(await page.locator('.workflow-card[data-workflow="audit"] .badge.untrusted').textContent(), 'project · untrusted');
    assert.equal(await page.locator('.workflow-card[data-workflow="deep-review"] .badge.untrusted').count(), 0);
    assert.match(await page.locator('.workflow-card[data-workflow="deep-review"]').innerText(), /Phases: Find → Verify/);
    assert.equal(await page.locator('#focus').isHidden(), true, 'no focus box for a workflow');
    assert.equal(await page.locator('.seg').first().isHidden(), true, 'no size for a workflow');
    await page.locator('.workflow-card[data-workflow="audit"]').click();
    await page.locator('#args').fill('{"depth": 1}');
    assert.equal(await page.locator('.args-hint').textContent(), 'Sent as JSON.');
    await page.locator('#args').fill('look at the cache');
    assert.equal(await page.locator('.args-hint').textContent(), 'Not JSON: sent as a string.');
    await page.locator('#budget').fill('20k');
    await shot(page, 'launcher-workflows');
    await page.locator('.launch').click();
    assert.deepEqual((await posted(page)).at(-1), { type: 'launchWorkflow', workflow: 'audit', args: 'look at the cache', budget: '20k' });
    await send(page, { type: 'error', message: 'The budget is a number of output tokens' });
    await nextFrames(page);
    assert.match(await page.locator('.launch-error').textContent(), /number of output tokens/);
    // A server that cannot list workflows says so on the tab.
    await send(page, { type: 'flows', flows: SYNTHETIC_FLOWS, defaults: { band: 'small', tab: 'workflows' }, root: '/work/project', workflows: null, workflowsError: 'This boo server could not list workflows (boo/listWorkflows): Method not found', trusted: false });
    await nextFrames(page);
    assert.match(await page.locator('.workflows-error').textContent(), /could not list workflows/);
    assert.equal(await page.locator('.launch').isDisabled(), true);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('Orchestrator pane — a workflow run: phases, cached agents, the log, the budget, the result on top', async () => {
  const c = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'tests/protocol-cases/workflow-cached.json'), 'utf8'));
  const notes = c.input.filter((i) => i.method);
  const info = c.input.find((i) => i.getRun).getRun;
  const { page, context, problems } = await openPage(browser, web.page('pane-workflow', 'pane'));
  try {
    let st = reduce(emptyState(c.runId), { type: 'notification', notification: notes[0], now: Date.now() });
    st = reduce(st, { type: 'runInfo', run: info.run });
    await send(page, { type: 'state', state: st });
    // Up to the live agent's first chunk.
    const firstChunk = notes.findIndex((n) => n.method === 'boo/agentStream');
    await feed(page, c.runId, notes.slice(1, firstChunk + 1), { batch: 2 });
    assert.equal(await page.locator('.status-pill').textContent(), 'running');
    assert.equal(await page.locator('.band').textContent(), 'workflow');
    assert.deepEqual(await page.locator('.phase-label').allTextContents(), ['Script', 'Survey']);
    assert.equal(await page.locator('.step[data-step-id="agent-2"]').getAttribute('data-cached'), 'true');
    assert.match(await page.locator('.step[data-step-id="agent-2"] .step-meta').textContent(), /^cached/);
    assert.equal(await page.locator('.step[data-step-id="agent-1"]').getAttribute('data-cached'), 'false');
    assert.equal(await page.locator('.step.expanded').getAttribute('data-step-id'), 'agent-1', 'the live agent is followed');
    assert.equal(await page.locator('.budget').textContent(), 'budget 40 / 1.0k');
    assert.deepEqual(await page.locator('.log-line').allTextContents(), ['▸ Survey']);
    await shot(page, 'pane-workflow-running');
    await feed(page, c.runId, notes.slice(firstChunk + 1), { batch: 3 });
    assert.equal(await page.locator('.status-pill').textContent(), 'completed');
    assert.deepEqual(await page.locator('.log-line').allTextContents(), ['▸ Survey', 'surveyed 2 parts']);
    assert.equal(await page.locator('.budget').textContent(), 'budget 56 / 1.0k');
    const report = page.locator('.report');
    assert.equal(await report.locator('h2').first().textContent(), 'Result');
    assert.ok((await report.boundingBox()).y < (await page.locator('.run-log').boundingBox()).y, 'the result above the log');
    assert.ok((await page.locator('.run-log').boundingBox()).y < (await page.locator('.roster').boundingBox()).y, 'the log above the agents');
    // A cached agent shows its stored answer.
    await page.locator('.step[data-step-id="agent-2"] .step-row').click();
    await nextFrames(page);
    assert.match(await page.locator('.step.expanded .output').textContent(), /Part beta is fine/);
    await shot(page, 'pane-workflow-report', { fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

for (const r of recorded.filter((x) => x.getRun.run.kind === 'workflow')) {
  test(`Orchestrator pane — recorded ${r.file}: the real server's workflow run, live then finished`, async () => {
    const notes = r.notifications.filter((n) => n.method?.startsWith('boo/') && n.params?.runId === r.runId);
    const allCached = r.getRun.steps.filter((x) => x.kind === 'agent').every((x) => x.meta?.cached === true);
    const { page, context, problems } = await openPage(browser, web.page(`pane-${r.file}`, 'pane'));
    try {
      // As the host does: the state after runStarted, the run's facts from getRun, then the rest.
      let st = reduce(emptyState(r.runId), { type: 'notification', notification: notes[0], now: Date.now() });
      st = reduce(st, { type: 'runInfo', run: { ...r.getRun.run, log: [], result: undefined } });
      await send(page, { type: 'state', state: st });
      const firstAdded = notes.findIndex((n) => n.method === 'boo/stepAdded');
      await feed(page, r.runId, notes.slice(1, firstAdded + 2), { batch: 1 });
      assert.equal(await page.locator('.status-pill').textContent(), 'running');
      assert.equal(await page.locator('.step[data-kind="agent"]').count(), 1, 'the first agent appears as the script calls it');
      assert.deepEqual(await page.locator('.phase-label').allTextContents(), ['Script', 'Survey']);
      await feed(page, r.runId, notes.slice(firstAdded + 2), { batch: 6 });
      assert.equal(await page.locator('.status-pill').textContent(), 'completed');
      assert.deepEqual(await page.locator('.phase-label').allTextContents(), ['Script', 'Survey', 'Refine']);
      assert.equal(await page.locator('.step[data-kind="agent"]').count(), 3);
      assert.equal(await page.locator('.step[data-cached="true"]').count(), allCached ? 3 : 0);
      assert.deepEqual(await page.locator('.log-line').allTextContents(), ['▸ Survey', 'surveyed 2 parts', '▸ Refine']);
      assert.match(await page.locator('.budget').textContent(), allCached ? /^budget 0 \/ 20k$/ : /^budget \d+ \/ 20k$/);
      assert.equal(await page.locator('.report h2').first().textContent(), 'Result');
      assert.ok((await page.locator('.report').boundingBox()).y < (await page.locator('.roster').boundingBox()).y, 'the result on top');
      await shot(page, `pane-${r.file.replace(/\.json$/, '')}`, { fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
}

test('Flows launcher — narrow width is one column', async () => {
  const { page, context } = await openPage(browser, web.page('launcher-narrow', 'launcher'), { width: 340, height: 900 });
  try {
    await send(page, { type: 'flows', flows: SYNTHETIC_FLOWS, defaults: { band: 'small' }, root: '/work/project' });
    await page.locator('[role="tab"]', { hasText: 'Analysis' }).click();
    const xs = await page.locator('.flow-card').evaluateAll((els) => els.map((e) => Math.round(e.getBoundingClientRect().x)));
    assert.equal(new Set(xs).size, 1);
    const overflow = await page.evaluate(() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth);
    assert.ok(overflow <= 1, `no horizontal overflow (got ${overflow}px)`);
    await shot(page, 'launcher-narrow', { fullPage: true });
  } finally {
    await context.close();
  }
});

// ---- traces -----------------------------------------------------------------------

function syntheticTraces() {
  const S = synthetic;
  const run = S.getRunSnapshot(5, 'completed');
  for (const st of run.steps) {
    delete st.transcript;
    if (st.stepId === 'security') Object.assign(st, { status: 'completed', startedAt: '2026-11-20T23:07:01.000Z', finishedAt: '2026-11-20T23:07:09.000Z', usage: { inputTokens: 1000, outputTokens: 200, cacheReadTokens: 600, totalTokens: 1200 } });
    if (st.stepId === 'correctness') Object.assign(st, { status: 'completed', startedAt: '2026-11-20T23:07:01.000Z', finishedAt: '2026-11-20T23:07:10.000Z', usage: { inputTokens: 500, outputTokens: 50, cacheReadTokens: 0, totalTokens: 550 } });
  }
  const tr = (id, stepId, tool, input, start, ms, outcome = 'ok', error = null) => ({
    traceId: id,
    runId: S.RUN_ID,
    stepId,
    chatId: stepId === 'security' ? S.CHAT_SEC : S.CHAT_COR,
    tool,
    input,
    output: 'ok',
    startedAt: new Date(Date.parse('2026-11-20T23:07:01.000Z') + start).toISOString(),
    finishedAt: new Date(Date.parse('2026-11-20T23:07:01.000Z') + start + ms).toISOString(),
    latencyMs: ms,
    outcome,
    error,
  });
  return {
    run,
    traces: [
      tr('1', 'security', 'glob', { pattern: 'src/**/*.rs' }, 500, 120),
      tr('2', 'security', 'read_file', { absolute_path: '/work/project/src/cache.rs' }, 900, 2400),
      tr('3', 'security', 'run_shell_command', { command: 'rm -rf /' }, 4000, 15, 'denied', 'denied in plan mode'),
      tr('4', 'correctness', 'grep_search', { pattern: 'evict' }, 1000, 800, 'error', 'no matches'),
    ],
  };
}

const traceSources = [...recorded.slice(0, 1).map((r) => ({ name: 'recorded', run: { ...r.getRun, steps: r.getRun.steps.map(({ transcript, ...s }) => s) }, traces: r.traces })), { name: 'synthetic', ...syntheticTraces() }];

for (const ts of traceSources) {
  test(`Traces view — ${ts.name}: a row per tool call with timing bar, latency, outcome; tokens and cache hit rate`, async () => {
    const { page, context, problems } = await openPage(browser, web.page(`traces-${ts.name}`, 'traces'), { width: 1000, height: 800 });
    try {
      await send(page, { type: 'traces', run: ts.run, traces: ts.traces });
      await nextFrames(page);
      assert.equal(await page.locator('.trace-row').count(), ts.traces.length);
      const widths = await page.locator('.trace-row .bar').evaluateAll((els) => els.map((e) => e.getBoundingClientRect().width));
      assert.ok(widths.every((w) => w > 0), 'every call has a visible bar');
      for (const t of ts.traces) {
        const row = page.locator(`.trace-step[data-step-id="${t.stepId}"] .trace-row[data-tool="${t.tool}"]`).first();
        assert.equal(await row.locator('.trace-outcome').textContent(), t.outcome ?? 'ok');
      }
      const agentSteps = ts.run.steps.filter((s) => s.kind === 'agent');
      assert.equal(await page.locator('.trace-step[data-step-id]').count(), new Set([...agentSteps.map((s) => s.stepId), ...ts.traces.map((t) => t.stepId)]).size);
      const rates = await page.locator('.tok.cache .tok-v').allTextContents();
      assert.equal(rates.length, 1 + (await page.locator('.trace-step[data-step-id]').count()));
      if (ts.name === 'synthetic') {
        assert.equal(await page.locator('.trace-step[data-step-id="security"] .tok.cache .tok-v').textContent(), '60%');
        assert.equal(await page.locator('.trace-step[data-step-id="correctness"] .tok.cache .tok-v').textContent(), '0%');
        assert.equal(await page.locator('.trace-row[data-tool="read_file"] .trace-latency').textContent(), '2.4 s');
        // The long call's bar is wider than the short one's.
        const w = async (tool) => (await page.locator(`.trace-row[data-tool="${tool}"] .bar`).boundingBox()).width;
        assert.ok((await w('read_file')) > (await w('glob')) * 5);
      }
      await shot(page, `traces-${ts.name}`, { fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
}

// ---- images (issue 16) and children of agents (issue 15) ------------------------------

// A real 2×2 PNG (red, green, blue, white), and a BMP the launcher must refuse.
const PNG_2X2 =
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEklEQVR4nGP4z8DAAMIM/4EAAB/uBfsL2WiLAAAAAElFTkSuQmCC';
const BMP_BYTES = [0x42, 0x4d, 0x3a, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0];

/** Drops (or pastes) files on the launcher the way Chromium delivers them: a DataTransfer of Files. */
async function dropFiles(page, files, how = 'drop') {
  await page.evaluate(
    ({ files, how }) => {
      const dt = new DataTransfer();
      for (const f of files) {
        const bytes = f.base64 ? Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0)) : Uint8Array.from(f.bytes);
        dt.items.add(new File([bytes], f.name, { type: f.type }));
      }
      if (how === 'paste') document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      else document.querySelector('.drop-zone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    },
    { files, how },
  );
}

test('Flows launcher — images: drop and paste show thumbnails with name and size, others are refused, Remove works, Launch sends them with the vision toggle', async () => {
  const { page, context, problems } = await openPage(browser, web.page('launcher-images', 'launcher'), { width: 900, height: 900 });
  try {
    await send(page, { type: 'flows', flows: SYNTHETIC_FLOWS, defaults: { band: 'small' }, root: '/work/project', vision: true });
    await nextFrames(page);
    assert.equal(await page.locator('.image-chip').count(), 0);
    assert.equal(await page.locator('.vision-row').isHidden(), true, 'no vision toggle without images');
    await page.locator('[role="tab"]', { hasText: 'Review' }).click();
    await page.locator('.flow-card[data-flow="code-review"]').click();
    await page.locator('.focus').fill('why does the sidebar overlap?');

    await dropFiles(page, [{ name: 'layout.png', type: 'image/png', base64: PNG_2X2 }, { name: 'diagram.bmp', type: 'image/bmp', bytes: BMP_BYTES }]);
    await page.locator('.image-chip[data-name="layout.png"] img.thumb').waitFor();
    assert.equal(await page.locator('.image-chip').count(), 1, 'the BMP is not attached');
    assert.match(await page.locator('.image-error').textContent(), /diagram\.bmp is not a PNG, JPEG, GIF or WebP image/);
    assert.equal(await page.locator('.image-chip[data-name="layout.png"] .image-size').textContent(), '75 B');
    assert.ok(await page.locator('.image-chip img.thumb').evaluate((img) => img.complete && img.naturalWidth === 2), 'the thumbnail is decoded');
    // A pasted image (the clipboard names it image.png) gets a name of its own.
    await dropFiles(page, [{ name: 'image.png', type: 'image/png', base64: PNG_2X2 }], 'paste');
    await page.locator('.image-chip[data-name="pasted-1.png"]').waitFor();
    assert.equal(await page.locator('.vision-row').isVisible(), true);
    assert.equal(await page.locator('#vision').isChecked(), true, 'the toggle starts from boo.visionModel');
    await shot(page, 'launcher-images');
    await page.locator('.image-chip[data-name="pasted-1.png"] .image-remove').click();
    assert.deepEqual(await page.locator('.image-chip').evaluateAll((els) => els.map((e) => e.dataset.name)), ['layout.png']);
    // The host's picker answers with the images it read.
    await send(page, { type: 'images', images: [{ name: 'mock.png', mimeType: 'image/png', bytes: 75, data: PNG_2X2, path: '/work/project/docs/mock.png' }], errors: ['notes.txt is not a PNG, JPEG, GIF or WebP image (.txt): boo attaches only those.'] });
    await page.locator('.image-chip[data-name="mock.png"]').waitFor();
    assert.match(await page.locator('.image-error').textContent(), /notes\.txt/);
    await page.locator('.add-images').click();
    assert.deepEqual((await posted(page)).at(-1), { type: 'pickImages', already: 2 });
    await page.locator('.launch').click();
    const msg = (await posted(page)).at(-1);
    assert.equal(msg.type, 'launch');
    assert.equal(msg.vision, true);
    assert.deepEqual(msg.images.map((i) => [i.name, i.mimeType, i.bytes, i.path ?? null]), [['layout.png', 'image/png', 75, null], ['mock.png', 'image/png', 75, '/work/project/docs/mock.png']]);
    assert.equal(msg.images[0].data, PNG_2X2, 'the bytes, base64, as dropped');
    // The server's refusal is shown as it says it.
    await send(page, { type: 'error', message: 'attachments[0] layout.png: the configured model does not take images; set BOO_VISION_MODEL=1' });
    await nextFrames(page);
    assert.match(await page.locator('.launch-error').textContent(), /does not take images/);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('Orchestrator pane — the run\'s images as thumbnails in the header and the report (fetched once each, click opens), children under their parent', async () => {
  const { page, context, problems } = await openPage(browser, web.page('pane-images', 'pane'), { width: 1000, height: 900 });
  try {
    const caseFile = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'tests/protocol-cases/flow-children.json'), 'utf8'));
    const runId = caseFile.runId;
    const notifications = caseFile.input.filter((i) => i.method);
    let st = reduce(emptyState(runId), { type: 'notification', notification: notifications[0], now: Date.now() });
    const img = { attachmentId: 'a1'.repeat(32), name: 'layout.png', mimeType: 'image/png', bytes: 75, sha256: 'a1'.repeat(32), width: 2, height: 2 };
    st = reduce(st, { type: 'runInfo', run: { runId, kind: 'flow', attachments: [img] } });
    await send(page, { type: 'state', state: st });
    await feed(page, runId, notifications.slice(1, 9));
    // The pane asks the host for the bytes, once.
    await page.waitForFunction(() => window.__posted.some((m) => m.type === 'getAttachment'));
    await send(page, { type: 'attachmentData', attachmentId: img.attachmentId, mimeType: 'image/png', data: PNG_2X2 });
    await page.locator('.header-attachments .attachment img.thumb').waitFor();
    assert.ok(await page.locator('.header-attachments img.thumb').evaluate((i) => i.complete && i.naturalWidth === 2), 'the thumbnail is decoded');
    assert.match(await page.locator('.header-attachments .attachment').innerText(), /layout\.png[\s\S]*2×2 · 75 B/);
    // Children right under their parent, indented.
    const order = await page.locator('.step').evaluateAll((els) => els.map((e) => [e.dataset.stepId, e.classList.contains('child'), e.dataset.parentStepId ?? null]));
    assert.deepEqual(order, [
      ['diff', false, null],
      ['security', false, null],
      ['security.sub-1', true, 'security'],
      ['security.sub-2', true, 'security'],
      ['perf', false, null],
      ['perf.sub-1', true, 'perf'],
      ['report', false, null],
    ]);
    const parentX = (await page.locator('.step[data-step-id="security"] .dot').boundingBox()).x;
    const childX = (await page.locator('.step[data-step-id="security.sub-1"] .dot').boundingBox()).x;
    assert.ok(childX > parentX + 10, `the child is indented (${childX} > ${parentX})`);
    // A child's own stream (followed live: it streamed last), then the parent's on a click.
    assert.equal(await page.locator('.step.expanded').getAttribute('data-step-id'), 'security.sub-1');
    assert.match(await page.locator('.step.expanded').innerText(), /Cookie is HttpOnly\./);
    await page.locator('.step[data-step-id="security"] .step-row').click();
    await nextFrames(page);
    assert.match(await page.locator('.step.expanded').innerText(), /Two leads\./);
    await page.locator('.step[data-step-id="security.sub-1"] .step-row').click();
    await nextFrames(page);
    assert.match(await page.locator('.step.expanded').innerText(), /Cookie is HttpOnly\./);
    await shot(page, 'pane-children-images');
    // The end: the report shows the images on top too.
    await feed(page, runId, notifications.slice(9));
    await page.locator('.report .report-attachments img.thumb').waitFor();
    await shot(page, 'pane-images-report');
    await page.locator('.header-attachments .attachment').click();
    const msgs = await posted(page);
    assert.deepEqual(msgs.at(-1), { type: 'openAttachment', attachmentId: img.attachmentId });
    assert.equal(msgs.filter((m) => m.type === 'getAttachment').length, 1, 'fetched once');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});
// ---- model calls: cache shape in the traces view, the run timeline, reveal in the pane ----
// The shared fixture (tests/fixtures/model-calls/code-review.json) of a finished run.

const MC = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'tests/fixtures/model-calls/code-review.json'), 'utf8'));
const mcRun = { ...MC.getRun, steps: MC.getRun.steps.map(({ transcript, ...s }) => s) };

test('Traces view — model calls: a segment bar per turn (cached / partial / uncached), TTFT, tok/s, miss reasons, run totals', async () => {
  const { page, context, problems } = await openPage(browser, web.page('traces-calls', 'traces'), { width: 1100, height: 900 });
  try {
    await send(page, { type: 'traces', run: mcRun, traces: MC.traces, calls: MC.calls });
    await nextFrames(page);
    assert.equal(await page.locator('.call-row').count(), MC.calls.length, 'one row per model turn');
    assert.equal(await page.locator('.call-table[data-step-id="security"] .call-row').count(), 3);
    // Totals as `boo calls` prints them.
    const stat = async (k) => (await page.locator(`.calls-total .tok[data-stat="${k}"] .tok-v`).textContent()).trim();
    assert.equal(await stat('calls'), '9');
    const prompt = MC.calls.reduce((a, c) => a + c.promptTokens, 0);
    const cached = MC.calls.reduce((a, c) => a + c.cachedTokens, 0);
    assert.equal(await stat('hitRate'), `${Math.round((cached / prompt) * 100)}%`);
    const ttft = MC.calls.map((c) => c.ttftMs).sort((a, b) => a - b);
    assert.equal(ttft[4], 900);
    assert.equal(await stat('ttftP50'), '900 ms');
    assert.equal(await stat('ttftP90'), '3.6 s');
    assert.equal(await stat('misses'), '4');
    // The evicted call: a sliver of its system prompt reused, everything else red; the
    // expected-prefix mark near the end; the reason in words.
    const ev = page.locator('.call-table[data-step-id="security"] .call-row[data-turn="2"]');
    assert.equal(await ev.getAttribute('data-state'), 'miss');
    assert.deepEqual(await ev.locator('.seg').evaluateAll((els) => els.map((e) => e.getAttribute('data-reuse'))), ['partial', 'uncached', 'uncached', 'uncached', 'uncached']);
    assert.match(await ev.locator('.miss-reason').textContent(), /the server evicted or does not cache this prefix \(expected ≈ \d+ tokens, got 64\)/);
    const barBox = await ev.locator('.seg-bar').boundingBox();
    const markBox = await ev.locator('.seg-expected').boundingBox();
    assert.ok(markBox.x - barBox.x > barBox.width * 0.9, 'the expected prefix covers almost the whole prompt');
    // A hit: cached segments take the width of what was reused.
    const hit = page.locator('.call-table[data-step-id="correctness"] .call-row[data-turn="3"]');
    const widths = await hit.locator('.seg').evaluateAll((els) => els.map((e) => ({ reuse: e.getAttribute('data-reuse'), w: e.getBoundingClientRect().width })));
    const total = widths.reduce((a, x) => a + x.w, 0);
    const cachedW = widths.filter((x) => x.reuse === 'cached').reduce((a, x) => a + x.w, 0);
    const c3 = MC.calls.find((c) => c.stepId === 'correctness' && c.turn === 3);
    assert.ok(Math.abs(cachedW / total - c3.cachedTokens / c3.promptTokens) < 0.08, `cached width ${cachedW}/${total}`);
    assert.equal(await hit.locator('.call-miss').count(), 0);
    assert.match(await hit.locator('.call-speed').textContent(), /ttft 900 ms · [\d.]+ tok\/s/);
    await shot(page, 'traces-model-calls', { fullPage: true });

    // Live: a start of a new call shows as running, its finish replaces it.
    const next = { ...MC.calls[0], callId: 'live-1', turn: 4, stepId: 'correctness', finishedAt: null, promptTokens: null, cachedTokens: null, segments: [], missReason: null, phase: 'start' };
    await send(page, { type: 'modelCall', call: next });
    await nextFrames(page);
    assert.equal(await page.locator('.call-row[data-call-id="live-1"]').getAttribute('data-state'), 'running');
    assert.equal(await page.locator('.calls-total h2 .step-agent').textContent(), '1 running');
    await send(page, { type: 'modelCall', call: { ...MC.calls[2], callId: 'live-1', turn: 4, phase: 'finish' } });
    await nextFrames(page);
    assert.equal(await page.locator('.call-row[data-call-id="live-1"]').getAttribute('data-state'), 'ok');
    assert.equal(await page.locator('.call-row').count(), MC.calls.length + 1);
    // The Timeline button asks the host.
    await page.locator('.timeline-btn').click();
    assert.deepEqual((await posted(page)).at(-1), { type: 'timeline' });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('Traces view — a server without model calls says so', async () => {
  const { page, context, problems } = await openPage(browser, web.page('traces-nocalls', 'traces'), { width: 900, height: 600 });
  try {
    await send(page, { type: 'traces', run: mcRun, traces: MC.traces, calls: null, callsNote: 'This boo server does not record model calls' });
    await nextFrames(page);
    assert.equal(await page.locator('.call-row').count(), 0);
    assert.match(await page.locator('.calls-total').textContent(), /does not record model calls/);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('Run timeline — lanes per step, model turns and tool calls on one axis; a click reveals the turn, Restore asks for it', async () => {
  const { page, context, problems } = await openPage(browser, web.page('timeline', 'timeline'), { width: 1200, height: 700 });
  try {
    await send(page, { type: 'timeline', run: mcRun, traces: MC.traces, calls: MC.calls });
    await nextFrames(page);
    const lanes = await page.locator('.tl-lane').evaluateAll((els) => els.map((e) => e.getAttribute('data-step-id')));
    assert.deepEqual(lanes, MC.getRun.steps.map((s) => s.stepId), 'one lane per step, in run order');
    assert.equal(await page.locator('.tl-block[data-kind="model"]').count(), MC.calls.length);
    assert.equal(await page.locator('.tl-block[data-kind="tool"]').count(), MC.traces.length);
    assert.equal(await page.locator('.tl-block[data-kind="step"]').count(), 4, 'the four code steps');
    assert.equal(await page.locator('.tl-block[data-miss="true"]').count(), 4);
    assert.ok((await page.locator('.tl-tick').count()) >= 3);
    // On the axis: the verdict after the reviewers; a 5.5 s turn wider than a 0.2 s tool call.
    const box = async (sel) => page.locator(sel).boundingBox();
    const v1 = await box('.tl-lane[data-step-id="verdict"] .tl-block[data-kind="model"][data-turn="1"]');
    const s3 = await box('.tl-lane[data-step-id="security"] .tl-block[data-kind="model"][data-turn="3"]');
    assert.ok(v1.x > s3.x + s3.width - 1, 'the verdict starts after security ended');
    const s2 = await box('.tl-lane[data-step-id="security"] .tl-block[data-kind="model"][data-turn="2"]');
    const glob = await box('.tl-lane[data-step-id="security"] .tl-block[data-kind="tool"][data-turn="1"]');
    assert.ok(s2.width > glob.width * 10, `turn ${s2.width} px vs glob ${glob.width} px`);
    assert.ok(glob.x >= (await box('.tl-lane[data-step-id="security"] .tl-block[data-kind="model"][data-turn="1"]')).x, 'the tool call follows its turn');
    await shot(page, 'timeline', { fullPage: true });

    // Click a turn: the host is asked to scroll the pane; the detail shows its cache shape.
    await page.locator('.tl-lane[data-step-id="security"] .tl-block[data-kind="model"][data-turn="2"]').click();
    assert.deepEqual((await posted(page)).at(-1), { type: 'reveal', stepId: 'security', turn: 2 });
    const detail = page.locator('.tl-detail');
    assert.match(await detail.locator('h3').textContent(), /model turn 2/);
    assert.match(await detail.locator('.miss-reason').textContent(), /evicted/);
    assert.equal(await detail.locator('.seg').count(), 5);
    await shot(page, 'timeline-selected', { fullPage: true });
    await detail.locator('.tl-restore').click();
    assert.deepEqual((await posted(page)).at(-1), { type: 'restore', stepId: 'security', turn: 2 });
    // A tool block reveals its turn too.
    await page.locator('.tl-lane[data-step-id="correctness"] .tl-block[data-kind="tool"][data-turn="2"]').click();
    assert.deepEqual((await posted(page)).at(-1), { type: 'reveal', stepId: 'correctness', turn: 2 });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('Orchestrator pane — reveal from the timeline expands the step and scrolls its stream to the turn', async () => {
  const { page, context, problems } = await openPage(browser, web.page('pane-reveal', 'pane'), { width: 900, height: 500 });
  try {
    // A long turn 1 so that turn 3 is out of view in the stream.
    const run = structuredClone(MC.getRun);
    const sec = run.steps.find((s) => s.stepId === 'security');
    sec.transcript.splice(1, 0, ...Array.from({ length: 40 }, (_, i) => ({ type: 'text', text: `line ${i}\n\n` })));
    const state = reduceHydrate(run);
    await send(page, { type: 'state', state });
    await nextFrames(page);
    await send(page, { type: 'reveal', stepId: 'security', turn: 3 });
    await nextFrames(page);
    await nextFrames(page);
    assert.equal(await page.locator('.step.expanded').getAttribute('data-step-id'), 'security');
    const focus = page.locator('.stream .turn-focus');
    assert.equal(await focus.count(), 1);
    assert.equal(await focus.getAttribute('data-focus-turn'), '3');
    const list = await page.locator('.step.expanded .stream').boundingBox();
    const f = await focus.boundingBox();
    assert.ok(f.y >= list.y - 1 && f.y < list.y + list.height, 'the turn is in view');
    assert.ok((await page.locator('.step.expanded .stream').evaluate((e) => e.scrollTop)) > 0, 'the stream scrolled');
    await shot(page, 'pane-reveal-turn');
    // A restored pane counts elapsed time up to its moment, not to the clock: the run as
    // it was 12.1 s in (the fixture's security turn 2) shows 12s, however late it is now.
    const cut = structuredClone(MC.getRun);
    cut.run.status = 'running';
    cut.run.finishedAt = null;
    cut.report = null;
    await send(page, { type: 'frozen', at: Date.parse(MC.calls.find((c) => c.stepId === 'security' && c.turn === 2).finishedAt) });
    await send(page, { type: 'state', state: reduceHydrate(cut) });
    await nextFrames(page);
    assert.equal(await page.locator('.elapsed').textContent(), '12s');
    // The pane's … menu opens the timeline too.
    await page.locator('.menu-btn').click();
    await page.locator('.menu-item[data-action="timeline"]').click();
    assert.deepEqual((await posted(page)).at(-1), { type: 'menu', action: 'timeline', runId: MC.runId });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

function reduceHydrate(run) {
  return reduce(emptyState(run.run.runId), { type: 'hydrate', result: run, now: Date.now() });
}
