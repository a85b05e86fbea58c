// End to end in code-server 4.139.1 (VS Code 1.139) with the packaged .vsix, the REAL boo
// binary (boo.serverPath) and the scripted fake qwen (BOO_QWEN in code-server's env),
// driven by headless Chromium. Screenshots of every stage go to artifacts/vscode/e2e-*.png.
//
//   BOO_BIN=target/debug/boo node --test tests/vscode/e2e.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ARTIFACTS, EXT, HERE, REPO, launchChromium, within } from './lib/harness.mjs';
import { prepareProfile, processesWith, startCodeServer } from './lib/codeserver.mjs';
import { makeProject } from './lib/project.mjs';
import { command as paletteCommand } from './lib/workbench.mjs';

const BOO_BIN = path.resolve(REPO, process.env.BOO_BIN || 'target/debug/boo');
const VSIX = process.env.BOO_VSIX || path.join(EXT, 'out/boo.vsix');
const FAKE_QWEN = path.join(REPO, 'tests/fixtures/fake-qwen');

let project;
let work; // private BOO_DB, export target, logs
let cs;
let browser;
let page;
let workDirs; // the private code-server profile
let booBin; // the private copy of the server binary
const consoleErrors = [];

before(async () => {
  assert.ok(fs.existsSync(BOO_BIN), `boo binary missing: ${BOO_BIN} (cargo build)`);
  assert.ok(fs.existsSync(VSIX), `extension package missing: ${VSIX} (npm run package in editors/vscode)`);
  project = makeProject('boo-e2e-project-');
  work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'boo-e2e-work-')));
  // A private copy of the fake qwen: the shared checkout may be edited while we run.
  const fakeQwen = path.join(work, 'fake-qwen');
  fs.copyFileSync(FAKE_QWEN, fakeQwen);
  fs.chmodSync(fakeQwen, 0o755);
  // And a private copy of the server: `cargo build` may replace target/debug/boo meanwhile,
  // and boo starts helpers from its own executable.
  booBin = path.join(work, 'boo');
  fs.copyFileSync(BOO_BIN, booBin);
  fs.chmodSync(booBin, 0o755);
  // Test fixture: an offline stand-in language model (see tests/vscode/fake-lm/extension.js).
  // Without a default model code-server's chat never calls a participant.
  const standIn = path.join(work, 'fake-lm.vsix');
  execFileSync(path.join(EXT, 'node_modules/.bin/vsce'), ['package', '--no-dependencies', '--skip-license', '--allow-missing-repository', '-o', standIn], {
    cwd: path.join(HERE, '../fake-lm'),
    stdio: 'pipe',
    timeout: 60_000,
  });
  const dirs = prepareProfile({
    vsix: [VSIX, standIn],
    settings: {
      'security.workspace.trust.enabled': false,
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'extensions.ignoreRecommendations': true,
      'boo.serverPath': booBin,
      'boo.maxParallelAgents': 2,
      // The server wants a model endpoint; the fake qwen never calls it (port 9: discard).
      'boo.env': { OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', OPENAI_API_KEY: 'unused-by-fake-qwen', OPENAI_MODEL: 'fake-qwen-model' },
    },
  });
  workDirs = dirs;
  cs = await startCodeServer({
    dirs,
    folder: project,
    env: { BOO_DB: path.join(work, 'boo.db'), BOO_QWEN: fakeQwen, BOO_LOG: 'info', FAKE_QWEN_DELAY_MS: '150', FAKE_QWEN_SLEEP_MS: '4000' },
    logFile: path.join(ARTIFACTS, 'e2e-code-server.log'),
    extraArgs: ['--enable-proposed-api', 'boo-tests.boo-test-fake-language-model'],
  });
  browser = await within(60_000, launchChromium(), 'chromium start');
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'] });
  page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
});
after(async () => {
  await browser?.close().catch(() => undefined);
  await cs?.stop();
  // Nothing that ran with our private database may survive (code-server, extension host, boo, agents).
  const left = work ? processesWith(path.join(work, 'boo.db')) : [];
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  fs.writeFileSync(path.join(ARTIFACTS, 'e2e-console-errors.txt'), consoleErrors.join('\n'));
  // Keep the extension's output channel (it carries the server's stderr) with the artifacts.
  if (workDirs) {
    const logs = [];
    const walk = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(d, e.name));
        else if (e.name === 'boo.log') logs.push(path.join(d, e.name));
      }
    };
    walk(path.join(workDirs.userData, 'logs'));
    fs.writeFileSync(path.join(ARTIFACTS, 'e2e-boo-output.log'), logs.sort().map((f) => `==> ${path.relative(workDirs.userData, f)}\n${fs.readFileSync(f, 'utf8')}`).join('\n'));
  }
  if (project) fs.rmSync(project, { recursive: true, force: true });
  if (work) fs.rmSync(work, { recursive: true, force: true });
  if (workDirs) fs.rmSync(workDirs.base, { recursive: true, force: true });
  assert.deepEqual(left, [], 'no process outlived the test');
});

// ---- helpers ---------------------------------------------------------------------------

const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `e2e-${name}.png`) });
/** A smaller picture of one workbench part, for the README (artifacts/vscode/docs-*.png). */
const docShot = (name, selector = '.part.editor') => page.locator(selector).first().screenshot({ path: path.join(ARTIFACTS, `docs-${name}.png`) });

/** The webview frame of a boo view whose content satisfies `pred`, visible on screen. */
async function webview(view, { pred = async () => true, timeout = 30_000 } = {}) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    for (const f of page.frames()) {
      try {
        if (!(await f.locator(`body[data-view="${view}"]`).count())) continue;
        const el = await f.frameElement();
        const box = await el.boundingBox();
        if (!box || box.width < 50) continue;
        const outer = f.parentFrame() ? await (await f.parentFrame().frameElement()).boundingBox() : box;
        if (!outer || outer.width < 50) continue;
        if (await pred(f)) return f;
      } catch {
        /* frame went away */
      }
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`no visible ${view} webview within ${timeout} ms`);
}

const paneOf = (flow, timeout) => webview('pane', { timeout, pred: async (f) => (await f.locator('.flow-name').textContent()) === flow });

/** Runs a command through the command palette (opened from the title bar, whatever has focus). */
function command(title, match = title) {
  return paletteCommand(page, title, match);
}

/** Shows the Runs view of the Boo container (the activity bar icon toggles, so check first). */
async function showHistory() {
  const tree = page.locator('.pane', { hasText: 'Runs' }).locator('.monaco-list');
  if (!(await tree.isVisible().catch(() => false))) await page.locator('.activitybar [aria-label^="Boo"]').first().click();
  await tree.waitFor({ state: 'visible' });
  return tree;
}

async function launchFromLauncher(launcher, flow, focus) {
  const f = await launcher;
  // Find the tab holding the flow.
  for (const tab of await f.locator('[role="tab"]').all()) {
    if (await f.locator(`.flow-card[data-flow="${flow}"]`).count()) break;
    await tab.click();
  }
  await f.locator(`.flow-card[data-flow="${flow}"]`).click();
  assert.equal(await f.locator('.seg[aria-checked="true"]').textContent(), 'Small');
  await f.locator('.focus').fill(focus);
  return f;
}

/** A test that leaves a screenshot of the workbench when it fails. */
function step(name, fn) {
  test(name, async () => {
    try {
      await fn();
    } catch (err) {
      const slug = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
      await page?.screenshot({ path: path.join(ARTIFACTS, `e2e-FAILED-${slug}.png`) }).catch(() => undefined);
      throw err;
    }
  });
}

// ---- the scenario ------------------------------------------------------------------------

describe('boo in code-server', () => {
  step('the workbench starts with the Boo view container; boo is not activated before it is used', async () => {
    await page.goto(`${cs.url}/?folder=${encodeURIComponent(project)}`, { timeout: 60_000 });
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await page.locator('.activitybar [aria-label^="Boo"]').first().waitFor({ timeout: 60_000 });
    await page.waitForTimeout(2000);
    assert.equal(await page.locator('.statusbar-item', { hasText: /^boo/ }).count(), 0, 'no activation at startup (no "*" activation event)');
    await shot('01-workbench');
  });

  step('Boo: Launch Flow… from the palette opens the launcher; Launch streams into a pane, then the report is on top', async () => {
    await command('Boo: Launch Flow…');
    const launcher = await launchFromLauncher(webview('launcher'), 'code-review', 'what could break in the cache? [[fake:slow]]');
    await shot('02-launcher');
    await docShot('launcher');
    await launcher.locator('.launch').click();
    const pane = await paneOf('code-review');
    const steps = await pane.locator('.step').count();
    assert.ok(steps >= 3, `a roster (${steps} steps)`);
    await pane.locator('.step.expanded .stream .text .item-text').first().waitFor({ timeout: 60_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'running', 'the delta arrived while the run was running');
    assert.ok((await pane.locator('.step.expanded .stream .text .item-text').first().textContent()).trim().length > 0);
    await page.locator('.statusbar-item', { hasText: 'boo: 1 running' }).first().waitFor({ timeout: 5000 });
    await shot('03-streaming');
    await docShot('streaming');
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 120_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'completed');
    assert.match(await pane.locator('.report h1').first().textContent(), /what could break in the cache/);
    const reportY = (await pane.locator('.report').boundingBox()).y;
    const rosterY = (await pane.locator('.roster').boundingBox()).y;
    assert.ok(reportY < rosterY, 'the report is at the top');
    await shot('04-report');
    await docShot('report');
  });

  step('the verified finding is a diagnostic in the Problems panel', async () => {
    await command('Focus on Problems View', 'Problems');
    const problems = page.locator('.markers-panel');
    await problems.locator('.monaco-list-row', { hasText: 'First line of README.md' }).first().waitFor({ timeout: 30_000 });
    const text = await problems.innerText();
    assert.match(text, /README\.md/);
    assert.match(text, /\[code-review\//);
    assert.match(text, /boo/);
    await shot('05-problems');
    await docShot('problems', '.part.panel');
    // Inline too: opening the problem shows the file with the finding underlined.
    await problems.locator('.monaco-list-row', { hasText: 'First line of README.md' }).first().dblclick();
    await page.locator('.tab', { hasText: 'README.md' }).first().waitFor();
    await page.locator('.monaco-editor .squiggly-info').first().waitFor({ timeout: 10_000 });
    await shot('05b-inline');
  });

  step('Boo: New Orchestrator → Launch a flow… runs a second flow in that pane', async () => {
    await command('Boo: New Orchestrator');
    const empty = await webview('pane', { pred: async (f) => (await f.locator('.empty:not([hidden])').count()) > 0 });
    await empty.getByRole('button', { name: 'Launch a flow…' }).click();
    const launcher = await launchFromLauncher(webview('launcher'), 'architectural-analysis', 'how is the cache structured?');
    await launcher.locator('.launch').click();
    const pane = await paneOf('architectural-analysis');
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 120_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'completed');
    await shot('06-second-run');
  });

  step('the Runs history lists both runs; opening one rebuilds its pane from boo/getRun', async () => {
    await command('View: Close All Editors');
    const tree = await showHistory();
    await tree.locator('.monaco-list-row').nth(1).waitFor({ timeout: 30_000 });
    const rows = await tree.locator('.monaco-list-row').allInnerTexts();
    assert.equal(rows.length, 2, `two runs listed: ${JSON.stringify(rows)}`);
    assert.match(rows[0], /how is the cache structured\?[\s\S]*architectural-analysis · small · completed/);
    assert.match(rows[1], /what could break in the cache\?[\s\S]*code-review · small · completed/);
    await shot('07-history');
    await docShot('history', '.part.sidebar');
    await tree.locator('.monaco-list-row').nth(1).click();
    const pane = await paneOf('code-review');
    await pane.locator('.report').waitFor({ state: 'visible' });
    // Streams come back from the transcript: expand the first agent step.
    const agentRow = pane.locator('.step[data-kind="agent"] .step-row').first();
    await agentRow.click();
    await pane.locator('.step.expanded .stream .item').first().waitFor();
    assert.ok((await pane.locator('.step.expanded .stream .item').count()) >= 3, 'thinking, tool calls and text are back');
    assert.ok((await pane.locator('.step.expanded .tool[data-state="ok"]').count()) >= 1);
    await shot('08-reopened');
  });

  step('export from the pane … menu saves the report to a file', async () => {
    const pane = await paneOf('code-review');
    await pane.locator('.menu-btn').click();
    await pane.locator('.menu-item[data-action="saveMarkdown"]').click();
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    // The dialog fills in the server's file name asynchronously: wait for it, then replace it.
    await page.waitForFunction(() => /boo-code-review-[^/]*\.md$/.test(document.querySelector('.quick-input-widget input')?.value ?? ''), null, { timeout: 10_000 });
    assert.match(await input.inputValue(), new RegExp(`^${project.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/boo-code-review-`), 'proposed in the workspace folder');
    const target = path.join(work, 'exported-report.md');
    await input.fill(target);
    await page.waitForFunction((t) => document.querySelector('.quick-input-widget input')?.value === t, target);
    await page.waitForTimeout(300);
    await shot('09-save-dialog');
    await page.keyboard.press('Enter');
    const end = Date.now() + 15_000;
    while (!fs.existsSync(target) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    assert.ok(fs.existsSync(target), 'the file was written');
    const text = fs.readFileSync(target, 'utf8');
    assert.match(text, /^# Code review — what could break in the cache\?/);
    assert.match(text, /README\.md:1/);
    await page.locator('.notifications-toasts', { hasText: 'saved' }).first().waitFor({ timeout: 10_000 });
  });

  step('Boo: Export Run → Copy puts the report on the clipboard', async () => {
    await command('Boo: Export Run');
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Copy report to clipboard' }).first();
    await row.waitFor();
    await row.click();
    await page.locator('.notification-toast', { hasText: 'report copied' }).first().waitFor({ timeout: 15_000 });
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    assert.match(clip, /^# Code review — what could break in the cache\?/);
  });

  step('Boo: Show Traces shows the tool calls of the pane’s run', async () => {
    await command('Boo: Show Traces');
    const traces = await webview('traces', { pred: async (f) => (await f.locator('.trace-row').count()) > 0 });
    const rows = await traces.locator('.trace-row').count();
    assert.ok(rows >= 2, `tool calls listed (${rows})`);
    assert.ok((await traces.locator('.tok.cache .tok-v').first().textContent()).endsWith('%'));
    await shot('10-traces');
    await docShot('traces');
  });

  step('after a window reload the pane and the traces view come back from their run id', async () => {
    await command('Developer: Reload Window');
    await page.waitForTimeout(1500);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    // The traces view was the active editor: it comes back first, with its rows.
    const traces = await webview('traces', { timeout: 60_000, pred: async (f) => (await f.locator('.trace-row').count()) > 0 });
    assert.ok((await traces.locator('.trace-row').count()) >= 2);
    await page.locator('.tab', { hasText: 'boo: code-review' }).first().click();
    const pane = await paneOf('code-review', 30_000);
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 30_000 });
    await shot('11-after-reload');
  });

  // Model calls: the fake qwen calls no model, so nothing goes through boo's model proxy
  // in this scenario. The calls of the shared fixture (tests/fixtures/model-calls) are
  // written into the server's own database for the finished code-review run, their
  // times mapped onto each agent step's real span; the real server then answers
  // boo/getModelCalls with them, and the views are the extension's.
  step('traces view shows the cache shape of each model turn; the run timeline shows lanes and blocks, a click scrolls the pane, Restore rebuilds it', async () => {
    const db = path.join(work, 'boo.db');
    const sql = (q) => execFileSync('sqlite3', ['-cmd', '.timeout 5000', '-json', db, q], { encoding: 'utf8', timeout: 20_000 });
    const runId = JSON.parse(sql("SELECT run_id FROM flow_runs WHERE flow = 'code-review' AND status = 'completed' ORDER BY run_id LIMIT 1"))[0].run_id;
    const steps = JSON.parse(sql(`SELECT step_id, chat_id, started_at, finished_at FROM flow_steps WHERE run_id = '${runId}' AND kind = 'agent'`));
    const fx = JSON.parse(fs.readFileSync(path.join(REPO, 'tests/fixtures/model-calls/code-review.json'), 'utf8'));
    const q = (v) => (v === null || v === undefined ? 'NULL' : typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`);
    const rows = [];
    for (const st of steps) {
      const fs0 = fx.getRun.steps.find((s) => s.stepId === st.step_id);
      if (!fs0) continue;
      const [a0, a1] = [Date.parse(fs0.startedAt), Date.parse(fs0.finishedAt)];
      const [b0, b1] = [Date.parse(st.started_at), Date.parse(st.finished_at)];
      const map = (t) => new Date(b0 + ((Date.parse(t) - a0) / (a1 - a0)) * (b1 - b0)).toISOString();
      for (const c of fx.calls.filter((x) => x.stepId === st.step_id)) {
        const started = map(c.startedAt);
        const finished = map(c.finishedAt);
        const dur = Date.parse(finished) - Date.parse(started);
        rows.push(`(${[`${c.callId.slice(0, -4)}${String(rows.length).padStart(4, '0')}`, runId, st.step_id, st.chat_id, c.turn, started, finished, Math.round(c.ttftMs * (dur / c.durationMs)), dur, c.status, c.error, c.promptTokens, c.cachedTokens, c.completionTokens, c.tokensPerSecond, c.cacheDialect, c.requestBytes, c.expectedCachedTokens, c.missReason, JSON.stringify(c.segments)].map(q).join(', ')})`);
      }
    }
    assert.equal(rows.length, 9, 'three turns for each of the three agents');
    sql(`INSERT INTO model_calls (call_id, run_id, step_id, chat_id, turn, started_at, finished_at, ttft_ms, duration_ms, status, error, prompt_tokens, cached_tokens, completion_tokens, tokens_per_second, cache_dialect, request_bytes, expected_cached_tokens, miss_reason, segments) VALUES ${rows.join(', ')}`);

    await command('Boo: Show Traces');
    const traces = await webview('traces', { pred: async (f) => (await f.locator('.call-row').count()) === 9 });
    assert.equal(await traces.locator('.calls-total .tok[data-stat="calls"] .tok-v').textContent(), '9');
    assert.equal(await traces.locator('.calls-total .tok[data-stat="misses"] .tok-v').textContent(), '4');
    const ev = traces.locator('.call-table[data-step-id="security"] .call-row[data-turn="2"]');
    assert.match(await ev.locator('.miss-reason').textContent(), /the server evicted or does not cache this prefix/);
    const segs = await ev.locator('.seg').evaluateAll((els) => els.map((e) => ({ reuse: e.getAttribute('data-reuse'), w: e.getBoundingClientRect().width })));
    // Only 64 tokens of its system prompt were reused: that segment is partial, the rest computed.
    assert.deepEqual(segs.map((x) => x.reuse), ['partial', 'uncached', 'uncached', 'uncached', 'uncached']);
    assert.ok(segs.slice(1).reduce((a, x) => a + x.w, 0) > segs.reduce((a, x) => a + x.w, 0) * 0.7, 'the computed part is most of the bar');
    const hit = await traces.locator('.call-table[data-step-id="correctness"] .call-row[data-turn="3"] .seg').evaluateAll((els) => els.map((e) => ({ reuse: e.getAttribute('data-reuse'), w: e.getBoundingClientRect().width })));
    assert.ok(hit.filter((x) => x.reuse === 'cached').reduce((a, x) => a + x.w, 0) > hit.reduce((a, x) => a + x.w, 0) * 0.8, 'the hit is mostly cached');
    await shot('11b-traces-model-calls');
    await docShot('traces-model-calls');

    await traces.locator('.timeline-btn').click();
    const tl = await webview('timeline', { pred: async (f) => (await f.locator('.tl-block[data-kind="model"]').count()) === 9 });
    const lanes = await tl.locator('.tl-lane').evaluateAll((els) => els.map((e) => e.getAttribute('data-step-id')));
    for (const id of ['diff', 'correctness', 'security', 'verdict']) assert.ok(lanes.includes(id), `lane ${id} in ${lanes}`);
    assert.ok((await tl.locator('.tl-block[data-kind="tool"]').count()) >= 6, 'the real tool calls');
    const v1 = await tl.locator('.tl-lane[data-step-id="verdict"] .tl-block[data-kind="model"]').first().boundingBox();
    const s1 = await tl.locator('.tl-lane[data-step-id="security"] .tl-block[data-kind="model"]').first().boundingBox();
    assert.ok(v1.x > s1.x, 'the verdict runs after the reviewers');
    await shot('11c-timeline');
    await docShot('timeline');

    // A click on security's turn 2: the pane comes forward with that turn in view.
    await tl.locator('.tl-lane[data-step-id="security"] .tl-block[data-kind="model"][data-turn="2"]').click();
    const pane = await paneOf('code-review', 30_000);
    await pane.locator('.step.expanded[data-step-id="security"] .stream .turn-focus[data-focus-turn="2"]').waitFor({ timeout: 15_000 });
    await shot('11d-pane-at-turn');

    // Restore: a read-only pane of the run when that turn ended.
    await page.locator('.tab', { hasText: 'boo timeline' }).first().click();
    const tl2 = await webview('timeline', { pred: async (f) => (await f.locator('.tl-detail .tl-restore').count()) === 1 });
    await tl2.locator('.tl-detail .tl-restore').click();
    const restored = await webview('pane', { pred: async (f) => (await f.locator('.notice', { hasText: 'Restored from the stored transcript' }).count()) > 0 });
    assert.equal(await restored.locator('.status-pill').textContent(), 'running', 'the run had not ended then');
    const into = (await restored.locator('.notice').textContent()).match(/as it was ([\d.]+)s into the run/)?.[1];
    assert.ok(into, 'the notice says when');
    assert.ok(Math.abs(parseFloat(await restored.locator('.elapsed').textContent()) - parseFloat(into)) < 1, 'elapsed stops at that moment');
    assert.equal(await restored.locator('.report').isHidden(), true, 'no report yet');
    assert.equal(await restored.locator('.step.expanded').getAttribute('data-step-id'), 'security');
    assert.equal(await restored.locator('.step.expanded .stream .item.turn').count(), 2, 'the stream ends with turn 2');
    assert.equal(await restored.locator('.step[data-step-id="verdict"]').getAttribute('data-status'), 'pending');
    await shot('11e-restored-pane');
    await command('View: Close All Editors');
  });

  step('Boo: Cancel Run stops a hanging run', async () => {
    await command('Boo: Launch Flow…');
    const launcher = await launchFromLauncher(webview('launcher'), 'code-review', 'this one hangs [[fake:hang]]');
    await launcher.locator('.launch').click();
    const pane = await paneOf('code-review', 30_000).then(async (p) => {
      // The reloaded code-review pane may also be open: wait for the running one.
      await p.locator('.status-pill').textContent();
      return webview('pane', { pred: async (f) => (await f.locator('.question').textContent()).includes('[[fake:hang]]') });
    });
    await pane.locator('.step[data-status="running"][data-kind="agent"]').first().waitFor({ timeout: 30_000 });
    await command('Boo: Cancel Run');
    await pane.locator('.status-pill[data-status="cancelled"]').waitFor({ timeout: 30_000 });
    assert.equal(await pane.locator('.step[data-status="running"]').count(), 0);
    await shot('12-cancelled');
  });

  step('@boo /flow in the chat launches at once, reports progress and the summary, and links to the pane', async () => {
    const input = page.locator('.interactive-input-part .monaco-editor, .chat-input-part .monaco-editor').first();
    if (!(await input.isVisible())) await command('Chat: Open Chat', 'Chat');
    await input.waitFor({ state: 'visible' });
    await input.click();
    await page.keyboard.type('@boo /flow what about eviction?');
    await page.waitForTimeout(500);
    await page.keyboard.press('Enter');
    const response = page.locator('.interactive-item-container.interactive-response').last();
    // The chat renders Markdown progressively: wait for the last part (the button) first.
    await response.getByRole('button', { name: 'Open Orchestrator' }).waitFor({ timeout: 90_000 });
    await response.locator('h1', { hasText: 'what about eviction?' }).waitFor();
    await page.waitForTimeout(1000);
    const text = await response.innerText();
    assert.match(text, /Completed/);
    assert.match(text, /Answer/);
    assert.doesNotMatch(text, /Language model unavailable/);
    await response.locator('a', { hasText: 'Open the full report in the Orchestrator pane' }).waitFor();
    await shot('13-chat');
    await docShot('chat', '.part.auxiliarybar');
    await response.getByRole('button', { name: 'Open Orchestrator' }).click();
    const pane = await webview('pane', { pred: async (f) => (await f.locator('.question').textContent()) === 'what about eviction?' });
    await pane.locator('.report').waitFor({ state: 'visible' });
    assert.equal(await pane.locator('.band').textContent(), 'small', 'the chat launches with band small');
    assert.equal(await pane.locator('.flow-name').textContent(), 'code-review', 'the flow of boo.chatFlow');
    await shot('14-chat-pane');
  });

  step('Send report to chat opens the chat with the report attached', async () => {
    const pane = await webview('pane', { pred: async (f) => (await f.locator('.question').textContent()) === 'what about eviction?' });
    await pane.locator('.menu-btn').click();
    await pane.locator('.menu-item[data-action="sendToChat"]').click();
    const inputPart = page.locator('.interactive-input-part, .chat-input-part').first();
    await inputPart.locator('.monaco-editor', { hasText: 'Here is the boo code-review report' }).waitFor({ timeout: 15_000 });
    await inputPart.getByText(/boo-code-review-[0-9a-f]{8}\.md/).first().waitFor({ timeout: 15_000 });
    await shot('15-send-to-chat');
  });

  step('Boo: Runs History (quick pick) opens a run', async () => {
    await command('View: Close All Editors');
    await command('Boo: Runs History');
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'how is the cache structured?' }).first();
    await row.waitFor();
    assert.match(await row.innerText(), /architectural-analysis · small · completed/);
    await row.click();
    const pane = await paneOf('architectural-analysis');
    await pane.locator('.report').waitFor({ state: 'visible' });
  });

  step('Boo: Run Workflow File runs a script: agents live under their phases, the log, the budget, the result on top', async () => {
    fs.mkdirSync(path.join(project, 'wf'), { recursive: true });
    fs.writeFileSync(
      path.join(project, 'wf', 'audit.js'),
      [
        "export const meta = { name: 'audit', description: 'survey then refine', phases: [{ title: 'Survey' }, { title: 'Refine' }] };",
        "phase('Survey');",
        "const parts = await parallel(['alpha', 'beta'].map(p => () => agent('Describe part ' + p + ' of src/cache.py [[fake:sleep]]', { label: 'part ' + p })));",
        "log('surveyed ' + parts.filter(Boolean).length + ' parts');",
        "phase('Refine');",
        "await agent('Refine the survey', { label: 'refine' });",
        'return { parts: parts.filter(Boolean).length, args };',
        '',
      ].join('\n'),
    );
    await command('View: Close All Editors');
    const run = async () => {
      // Make the script the active editor (a webview may hold the keyboard focus: no Ctrl+P).
      const tab = page.locator('.tab', { hasText: 'audit.js' }).first();
      if (await tab.count()) await tab.click();
      else {
        await command('Go to File...', 'Go to File');
        const quick = page.locator('.quick-input-widget input');
        await quick.waitFor({ state: 'visible' });
        await quick.fill('wf/audit.js');
        await page.locator('.quick-input-list .monaco-list-row', { hasText: 'audit.js' }).first().waitFor();
        await page.keyboard.press('Enter');
      }
      await page.locator('.tab.active', { hasText: 'audit.js' }).first().waitFor();
      await command('Boo: Run Workflow File…', 'Run Workflow File');
      const input = page.locator('.quick-input-widget input');
      await page.locator('.quick-input-widget', { hasText: 'Args for the script' }).waitFor();
      await input.fill('{"depth": 1}');
      await page.keyboard.press('Enter');
      await page.locator('.quick-input-widget', { hasText: 'Token budget' }).waitFor();
      await input.fill('20k');
      await page.keyboard.press('Enter');
    };
    await run();
    const pane = await webview('pane', { pred: async (f) => (await f.locator('.flow-name').textContent()) === 'audit' && (await f.locator('.step[data-cached="true"]').count()) === 0 });
    await pane.locator('.step[data-kind="agent"][data-status="running"]').first().waitFor({ timeout: 30_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'running', 'an agent shows while the script runs');
    await shot('21-workflow-live');
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 120_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'completed');
    assert.equal(await pane.locator('.band').textContent(), 'workflow');
    assert.deepEqual(await pane.locator('.phase-label').allTextContents(), ['Script', 'Survey', 'Refine'], 'phases in meta order');
    assert.equal(await pane.locator('.step[data-kind="agent"]').count(), 3);
    assert.equal(await pane.locator('.step[data-cached="true"]').count(), 0);
    assert.deepEqual(await pane.locator('.log-line').allTextContents(), ['▸ Survey', 'surveyed 2 parts', '▸ Refine']);
    assert.match(await pane.locator('.budget').textContent(), /^budget [\d.]+k? \/ 20k$/);
    assert.equal(await pane.locator('.report h2').first().textContent(), 'Result');
    assert.match(await pane.locator('.report').innerText(), /"parts": 2/);
    await shot('22-workflow-report');
    await docShot('workflow');

    // The same script again: every agent from the cache.
    await run();
    const cached = await webview('pane', { timeout: 60_000, pred: async (f) => (await f.locator('.flow-name').textContent()) === 'audit' && (await f.locator('.step[data-cached="true"]').count()) > 0 });
    await cached.locator('.report').waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(await cached.locator('.step[data-cached="true"]').count(), 3, 'three cached agents');
    assert.equal(await cached.locator('.budget').textContent(), 'budget 0 / 20k', 'cached answers cost nothing');
    await shot('23-workflow-cached');
  });

  step('a workflow run from the history: its pane, its traces and its export', async () => {
    await command('View: Close All Editors');
    await command('Boo: Runs History');
    const rows = page.locator('.quick-input-list .monaco-list-row', { hasText: '{"depth":1}' });
    await rows.nth(1).waitFor();
    // "workflow" once the server's RunSummary carries kind (or band null); its band until then.
    assert.match(await rows.nth(1).innerText(), /audit · (workflow|small) · completed/);
    await rows.nth(1).click(); // the older, live run
    const pane = await webview('pane', { pred: async (f) => (await f.locator('.flow-name').textContent()) === 'audit' });
    await pane.locator('.report').waitFor({ state: 'visible' });
    assert.deepEqual(await pane.locator('.phase-label').allTextContents(), ['Script', 'Survey', 'Refine']);
    assert.equal(await pane.locator('.log-line').count(), 3, 'the log came back from boo/getRun');
    await command('Boo: Show Traces');
    const traces = await webview('traces', { pred: async (f) => (await f.locator('.trace-row').count()) > 0 });
    assert.ok((await traces.locator('.trace-row').count()) >= 6, 'two tool calls per agent');
    await shot('24-workflow-traces');
    await page.locator('.tab', { hasText: 'boo: audit' }).first().click();
    await command('Boo: Export Run');
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Copy report to clipboard' }).first();
    await row.waitFor();
    await row.click();
    await page.locator('.notification-toast', { hasText: 'report copied' }).first().waitFor({ timeout: 15_000 });
    assert.match(await page.evaluate(() => navigator.clipboard.readText()), /## Result[\s\S]*"parts": 2/);
  });

  step('a project flow in the untrusted folder: Launch asks to trust the folder; accepting trusts it and the run completes', async () => {
    fs.mkdirSync(path.join(project, '.boo', 'flows'), { recursive: true });
    fs.writeFileSync(
      path.join(project, '.boo', 'flows', 'solo.toml'),
      ['name = "solo"', 'title = "Solo"', 'category = "analysis"', 'description = "One look"', '', '[[steps]]', 'id = "solo"', 'kind = "agent"', 'persona = "structural-analyst"', 'prompt = "Look."', ''].join('\n'),
    );
    await command('View: Close All Editors');
    await command('Boo: Launch Flow…');
    const launcher = await launchFromLauncher(webview('launcher'), 'solo', 'is the folder trusted?');
    assert.equal(await launcher.locator('.flow-card[data-flow="solo"] .badge.source.untrusted').count(), 1, 'marked untrusted in the launcher');
    await launcher.locator('.launch').click();
    const dialog = page.locator('.monaco-dialog-box');
    await dialog.waitFor({ state: 'visible', timeout: 15_000 });
    assert.match(await dialog.innerText(), /"solo" is this folder's own flow[\s\S]*not trusted/);
    await shot('25-trust-prompt');
    await dialog.getByRole('button', { name: 'Trust Folder and Launch' }).click();
    const pane = await paneOf('solo');
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'completed', 'the project flow ran after the trust');
    assert.equal(await pane.locator('.step[data-kind="agent"]').count(), 1);
    await shot('26-trusted-run');
    // The server keeps the trust: the launcher marks the flow "project", no longer untrusted.
    await command('Boo: Launch Flow…');
    const again = await launchFromLauncher(webview('launcher'), 'solo', 'again');
    await again.locator('.flow-card[data-flow="solo"] .badge.source[data-source="project"]').waitFor({ timeout: 10_000 });
    assert.equal(await again.locator('.badge.untrusted').count(), 0, 'no untrusted mark once trusted');
    await again.getByRole('button', { name: 'Cancel' }).click();
  });

  step('a built-in workflow by name from the launcher\'s Workflows tab: its agents under its phases and the report', async () => {
    await command('View: Close All Editors');
    await command('Boo: Launch Flow…');
    const f = await webview('launcher');
    await f.locator('[role="tab"][data-category="workflows"]').click();
    const card = f.locator('.workflow-card[data-workflow="research-question"]');
    await card.click();
    assert.equal(await card.getAttribute('data-source'), 'builtin');
    assert.match(await card.innerText(), /Plan → Investigate → Answer/);
    await f.locator('.args').fill('how does the cache evict entries?');
    await shot('27-workflows-tab');
    await f.locator('.launch').click();
    const pane = await paneOf('research-question');
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 90_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'completed');
    assert.equal(await pane.locator('.band').textContent(), 'workflow');
    assert.deepEqual(await pane.locator('.phase-label').allTextContents(), ['Script', 'Plan', 'Investigate', 'Answer'], 'its phases in meta order');
    const agents = await pane.locator('.step[data-kind="agent"]').allInnerTexts();
    // The plan, one investigator per sub-question (the log says how many), the answer.
    const subs = Number((await pane.locator('.log-line').allTextContents()).map((t) => /^(\d+) sub-question\(s\)$/.exec(t)?.[1]).find(Boolean));
    assert.ok(subs >= 1, 'the log names the sub-questions');
    assert.equal(agents.length, subs + 2, `plan, ${subs} investigators, answer: ${JSON.stringify(agents)}`);
    assert.match(agents[0], /split the question/);
    assert.ok(agents.slice(1, -1).every((a) => /sub-question \d/.test(a)), 'the investigators');
    assert.match(agents.at(-1), /write the answer/);
    const report = await pane.locator('.report').innerText();
    assert.match(report, /Verified findings/);
    assert.match(report, /Snapshot[\s\S]*has not changed since/, 'the snapshot note');
    await shot('28-builtin-workflow-report');
  });

  step('a running run reopened from the history keeps streaming until its report; a file edited meanwhile is named in its Snapshot note', async () => {
    await command('Boo: Launch Flow…');
    const launcher = await launchFromLauncher(webview('launcher'), 'code-review', 'follow me after a close [[fake:slow]]');
    await launcher.locator('.launch').click();
    const first = await webview('pane', { pred: async (f) => (await f.locator('.question').textContent()).startsWith('follow me') });
    await first.locator('.step[data-status="running"][data-kind="agent"]').first().waitFor({ timeout: 30_000 });
    // The user edits a file while the agents read the snapshot taken at launch.
    fs.appendFileSync(path.join(project, 'src', 'cache.py'), '# edited while the run ran\n');
    await command('View: Close All Editors');
    const tree = await showHistory();
    const row = tree.locator('.monaco-list-row', { hasText: 'follow me after a close' }).first();
    await row.waitFor({ timeout: 15_000 });
    assert.match(await row.innerText(), /code-review · small · running/);
    await row.click();
    const pane = await webview('pane', { pred: async (f) => (await f.locator('.question').textContent()).startsWith('follow me') });
    assert.equal(await pane.locator('.status-pill').textContent(), 'running', 'reopened while running');
    await pane.locator('.step.expanded .stream .item').first().waitFor({ timeout: 30_000 });
    await shot('16-reopened-running');
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 120_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'completed');
    assert.match(await pane.locator('.report').innerText(), /Snapshot[\s\S]*modified \(1\): src\/cache\.py/, 'the report names the file edited during the run');
    await tree.locator('.monaco-list-row', { hasText: 'follow me after a close' }).filter({ hasText: 'completed' }).first().waitFor({ timeout: 10_000 });
  });

  step('Boo: Restart Server in the middle of a run: the new server resumes it and the pane follows to the report', async () => {
    await command('View: Close All Editors');
    await command('Boo: Launch Flow…');
    const launcher = await launchFromLauncher(webview('launcher'), 'code-review', 'survive a restart [[fake:slow]]');
    await launcher.locator('.launch').click();
    const pane = await webview('pane', { pred: async (f) => (await f.locator('.question').textContent()).startsWith('survive a restart') });
    await pane.locator('.step.expanded .stream .item').first().waitFor({ timeout: 30_000 });
    await command('Boo: Restart Server');
    await page.locator('.notification-toast', { hasText: 'server restarted' }).first().waitFor({ timeout: 30_000 });
    await shot('19-restarted');
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 150_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'completed');
    const metas = await pane.locator('.step-meta').allTextContents();
    await shot('20-resumed-report');
    console.log(`# resumed steps: ${JSON.stringify(metas)}`);
    assert.ok(metas.some((m) => /attempt 2/.test(m)), 'the interrupted agent steps ran again under a new chat and the pane shows it');
  });

  step('a missing server binary is reported with a button to the setting', async () => {
    // Change boo.serverPath in the Settings editor, as a user would.
    await command('Preferences: Open Settings (UI)', 'Settings');
    const search = page.locator('.settings-editor .suggest-input-container .monaco-editor, .settings-editor .settings-header .monaco-editor').first();
    await search.waitFor();
    await search.click();
    await page.keyboard.type('boo.serverPath');
    const field = page.locator('.settings-editor .setting-item-contents', { hasText: 'Server Path' }).locator('input').first();
    await field.waitFor({ timeout: 15_000 });
    await field.fill(path.join(work, 'no-such-boo'));
    await field.press('Tab');
    const toast = page.locator('.notification-toast', { hasText: 'the server binary could not be started' }).first();
    await toast.waitFor({ timeout: 30_000 });
    assert.match(await toast.innerText(), /no-such-boo does not exist/);
    await shot('17-missing-binary');
    await toast.getByRole('button', { name: 'Open Setting' }).click();
    await page.locator('.settings-editor .setting-item-contents', { hasText: 'Server Path' }).first().waitFor({ timeout: 15_000 });
    await shot('18-setting');
  });

  step('no Content Security Policy violation and no unexpected boo error in the browser console', async () => {
    // The test's own temp folders are named boo-…: a VS Code error that only mentions
    // such a path (e.g. its offline chat-editing storage) is not an error of boo's.
    const bad = consoleErrors
      .map((t) => t.replace(/\/tmp\/boo-[\w.-]+/g, '<tmp>'))
      .filter((t) => /Content Security Policy|Refused to (load|execute|apply)/i.test(t) || (/\bboo\b/.test(t) && !/no-such-boo/.test(t)));
    assert.deepEqual(bad, []);
  });
});
