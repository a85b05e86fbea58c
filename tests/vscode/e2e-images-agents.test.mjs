// Images (issue 16) and background agents (issue 15) end to end in code-server 4.139.1
// with the packaged .vsix, the real boo binary and the scripted fake qwen, driven by
// headless Chromium. Screenshots: artifacts/vscode/e2e-images-*.png, e2e-agents-*.png.
//
//   BOO_BIN=target/debug/boo node --test tests/vscode/e2e-images-agents.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { solidPng } from './lib/png.mjs';
import { ARTIFACTS, EXT, REPO, launchChromium, within } from './lib/harness.mjs';
import { prepareProfile, processesWith, startCodeServer } from './lib/codeserver.mjs';
import { makeProject } from './lib/project.mjs';
import { command, webview } from './lib/workbench.mjs';

const BOO_BIN = path.resolve(REPO, process.env.BOO_BIN || 'target/debug/boo');
const VSIX = process.env.BOO_VSIX || path.join(EXT, 'out/boo.vsix');
const FAKE_QWEN = path.join(REPO, 'tests/fixtures/fake-qwen');

let project, work, dirs, cs, browser, page;
const consoleErrors = [];

before(async () => {
  assert.ok(fs.existsSync(BOO_BIN), `boo binary missing: ${BOO_BIN} (cargo build)`);
  assert.ok(fs.existsSync(VSIX), `extension package missing: ${VSIX} (npm run package in editors/vscode)`);
  project = makeProject('boo-e2e-images-project-');
  // An image of the workspace, attached through the file picker (sent as { path }).
  fs.mkdirSync(path.join(project, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(project, 'docs', 'mock.png'), solidPng(24, 16, [40, 120, 220]));
  work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'boo-e2e-images-work-')));
  const fakeQwen = path.join(work, 'fake-qwen');
  fs.copyFileSync(FAKE_QWEN, fakeQwen);
  fs.chmodSync(fakeQwen, 0o755);
  const booBin = path.join(work, 'boo');
  fs.copyFileSync(BOO_BIN, booBin);
  fs.chmodSync(booBin, 0o755);
  dirs = prepareProfile({
    vsix: [VSIX],
    settings: {
      'security.workspace.trust.enabled': false,
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'extensions.ignoreRecommendations': true,
      'chat.disableAIFeatures': true,
      'boo.serverPath': booBin,
      'boo.maxParallelAgents': 2,
      'boo.visionModel': true,
      'boo.env': { OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', OPENAI_API_KEY: 'unused-by-fake-qwen', OPENAI_MODEL: 'fake-qwen-model' },
    },
  });
  cs = await startCodeServer({
    dirs,
    folder: project,
    env: { BOO_DB: path.join(work, 'boo.db'), BOO_QWEN: fakeQwen, BOO_LOG: 'info', FAKE_QWEN_DELAY_MS: '60' },
    logFile: path.join(ARTIFACTS, 'e2e-images-code-server.log'),
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
  const left = work ? processesWith(path.join(work, 'boo.db')) : [];
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (project) fs.rmSync(project, { recursive: true, force: true });
  if (work) fs.rmSync(work, { recursive: true, force: true });
  if (dirs) fs.rmSync(dirs.base, { recursive: true, force: true });
  assert.deepEqual(left, [], 'no process outlived the test');
});

const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `e2e-${name}.png`) });

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

describe('images and background agents in code-server', () => {
  step('the launcher attaches a dropped PNG and a picked workspace PNG; the pane shows both as loaded thumbnails', async () => {
    await page.goto(`${cs.url}/?folder=${encodeURIComponent(project)}`, { timeout: 60_000 });
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await page.locator('.activitybar [aria-label^="Boo"]').first().waitFor({ timeout: 60_000 });
    await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } });
    await command(page, 'Boo: Launch Flow…');
    const f = await webview(page, 'launcher', { pred: async (x) => (await x.locator('.flow-card').count()) > 0 });
    for (const tab of await f.locator('[role="tab"]').all()) {
      if (await f.locator('.flow-card[data-flow="code-review"]').count()) break;
      await tab.click();
    }
    await f.locator('.flow-card[data-flow="code-review"]').click();
    await f.locator('.focus').fill('why does the sidebar overlap?');
    // A file dropped from outside VS Code arrives in the webview as a File.
    const png = solidPng(32, 20, [220, 60, 60]).toString('base64');
    await f.evaluate((b64) => {
      const dt = new DataTransfer();
      dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'layout.png', { type: 'image/png' }));
      document.querySelector('.drop-zone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, png);
    await f.locator('.image-chip[data-name="layout.png"] img.thumb').waitFor();
    // The file picker (code-server's simple dialog): a PNG of the workspace.
    await f.locator('.add-images').click();
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    // The dialog fills in its folder asynchronously: wait for it, then replace it.
    await page.waitForFunction((p) => (document.querySelector('.quick-input-widget input')?.value ?? '').startsWith(p), project, { timeout: 10_000 });
    const picked = path.join(project, 'docs', 'mock.png');
    await input.fill(picked);
    await page.waitForFunction((t) => document.querySelector('.quick-input-widget input')?.value === t, picked);
    await page.waitForTimeout(300);
    await page.keyboard.press('Enter');
    await f.locator('.image-chip[data-name="mock.png"] img.thumb').waitFor({ timeout: 15_000 });
    assert.equal(await f.locator('#vision').isChecked(), true, 'boo.visionModel sets the toggle');
    await shot('images-01-launcher');
    await f.locator('.launch').click();

    const pane = await webview(page, 'pane', { pred: async (x) => (await x.locator('.flow-name').textContent()) === 'code-review' });
    const thumbs = pane.locator('.header-attachments .attachment img.thumb');
    const end = Date.now() + 30_000;
    while ((await thumbs.count()) < 2 && Date.now() < end) await page.waitForTimeout(250);
    assert.equal(await thumbs.count(), 2, 'two thumbnails in the pane header');
    const sizes = await thumbs.evaluateAll((imgs) => imgs.map((i) => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]));
    assert.deepEqual(sizes, [
      ['layout.png', true, 32, 20],
      ['mock.png', true, 24, 16],
    ], 'both thumbnails are loaded with the images the server stored');
    assert.match(await pane.locator('.header-attachments').innerText(), /layout\.png[\s\S]*32×20[\s\S]*mock\.png[\s\S]*24×16/);
    await shot('images-02-pane-thumbnails');
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 120_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'completed');
    assert.equal(await pane.locator('.report .report-attachments img.thumb').count(), 2, 'the report shows them on top');
    assert.match(await pane.locator('.report').innerText(), /Attachments[\s\S]*layout\.png[\s\S]*mock\.png/);
    await shot('images-03-report');
  });

  step('a thumbnail opens the image full size (a copy outside the workspace); export carries the attachments', async () => {
    const pane = await webview(page, 'pane', { pred: async (x) => (await x.locator('.flow-name').textContent()) === 'code-review' });
    await pane.locator('.header-attachments .attachment').first().click();
    const tab = page.locator('.tab', { hasText: /layout-[0-9a-f-]{12}\.png/ }).first();
    await tab.waitFor({ timeout: 15_000 });
    assert.equal(fs.existsSync(path.join(project, 'layout.png')), false, 'nothing written into the workspace');
    await shot('images-04-full-size');
    await page.locator('.tab', { hasText: 'boo: code-review' }).first().click();
    await command(page, 'Boo: Export Run');
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Copy report to clipboard' }).first();
    await row.waitFor();
    await row.click();
    await page.locator('.notification-toast', { hasText: 'report copied' }).first().waitFor({ timeout: 15_000 });
    const md = await page.evaluate(() => navigator.clipboard.readText());
    assert.match(md, /\*\*Attachments\*\*[\s\S]*`layout\.png` — image\/png, 32×20 px[\s\S]*`mock\.png`/);

    // Saved as Markdown: the images are written beside the report and shown in it.
    const pane2 = await webview(page, 'pane', { pred: async (x) => (await x.locator('.flow-name').textContent()) === 'code-review' });
    await pane2.locator('.menu-btn').click();
    await pane2.locator('.menu-item[data-action="saveMarkdown"]').click();
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await page.waitForFunction(() => /boo-code-review-[^/]*\.md$/.test(document.querySelector('.quick-input-widget input')?.value ?? ''), null, { timeout: 10_000 });
    const target = path.join(work, 'images-report.md');
    await input.fill(target);
    await page.waitForFunction((t) => document.querySelector('.quick-input-widget input')?.value === t, target);
    await page.waitForTimeout(300);
    await page.keyboard.press('Enter');
    const end = Date.now() + 15_000;
    while (!fs.existsSync(target) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    const saved = fs.readFileSync(target, 'utf8');
    assert.match(saved, /## Attached images[\s\S]*!\[layout\.png\]\(images-report\.images\/layout\.png\)[\s\S]*!\[mock\.png\]\(images-report\.images\/mock\.png\)/);
    assert.deepEqual(fs.readFileSync(path.join(work, 'images-report.images', 'mock.png')), fs.readFileSync(path.join(project, 'docs', 'mock.png')), 'byte-identical');
    assert.equal(fs.readFileSync(path.join(work, 'images-report.images', 'layout.png')).subarray(0, 8).toString('hex'), '89504e470d0a1a0a');
  });

  step('Boo: Ask an Agent in the Background… starts one; the Background Agents view lists it; a message with Open says when it finished', async () => {
    await command(page, 'View: Close All Editors');
    await command(page, 'Notifications: Clear All Notifications', 'Clear All Notifications');
    await command(page, 'Boo: Ask an Agent in the Background…', 'Ask an Agent in the Background');
    const input = page.locator('.quick-input-widget input');
    await page.locator('.quick-input-widget', { hasText: 'ask an agent in the background (1/2)' }).waitFor();
    await input.fill('edge-case-explorer');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'edge-case-explorer' }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.quick-input-widget', { hasText: 'ask edge-case-explorer in the background (2/2)' }).waitFor();
    await input.fill('what happens when the write fails? [[fake:slow]]');
    await page.keyboard.press('Enter');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Start the agent now' }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.notification-toast', { hasText: 'edge-case-explorer is working in the background' }).first().waitFor({ timeout: 20_000 });
    // The view: the Boo container's Background Agents section.
    const section = page.locator('.pane', { hasText: 'Background Agents' });
    if (!(await section.locator('.monaco-list').isVisible().catch(() => false))) {
      if (!(await page.locator('.pane-header', { hasText: 'Background Agents' }).isVisible().catch(() => false))) await page.locator('.activitybar [aria-label^="Boo"]').first().click();
      const header = page.locator('.pane-header', { hasText: 'Background Agents' }).first();
      await header.waitFor();
      if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
    }
    const row = section.locator('.monaco-list-row', { hasText: 'edge-case-explorer' }).first();
    await row.waitFor({ timeout: 20_000 });
    assert.match(await row.innerText(), /running[\s\S]*what happens when the write fails/);
    await shot('agents-01-running');
    const done = page.locator('.notification-toast', { hasText: 'boo: agent edge-case-explorer completed' }).first();
    await done.waitFor({ timeout: 120_000 });
    await section.locator('.monaco-list-row', { hasText: 'edge-case-explorer' }).filter({ hasText: 'completed' }).first().waitFor({ timeout: 20_000 });
    assert.match(await section.locator('.monaco-list-row', { hasText: 'edge-case-explorer' }).first().innerText(), /completed · [\d.]+m?s/);
    await shot('agents-02-finished');
    await done.getByRole('button', { name: 'Open' }).click();
    const pane = await webview(page, 'pane', { pred: async (x) => (await x.locator('.question').textContent()).startsWith('what happens when the write fails') });
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 30_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'completed');
    assert.equal(await pane.locator('.step[data-kind="agent"]').count(), 1, 'one agent step');
    assert.match(await pane.locator('.step[data-kind="agent"]').innerText(), /edge-case-explorer/);
    await shot('agents-03-pane');
  });

  step('no Content Security Policy violation and no boo error in the browser console', async () => {
    const bad = consoleErrors
      .map((t) => t.replace(/\/tmp\/boo-[\w.-]+/g, '<tmp>'))
      .filter((t) => /Content Security Policy|Refused to (load|execute|apply)/i.test(t) || /\bboo\b/.test(t));
    assert.deepEqual(bad, []);
  });
});
