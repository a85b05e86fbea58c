// The platform-specific package in code-server 4.139.1: only the .vsix that carries the
// server is installed, nothing named boo is on PATH and boo.serverPath is not set. The
// extension starts its bundled server, says so (status bar tooltip, Boo: Show Server
// Info) and runs a flow with it (agents: the scripted fake qwen).
//
//   BOO_VSIX_PLATFORM=editors/vscode/out/boo-vscode-linux-x64-0.1.0.vsix node --test tests/vscode/bundled.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ARTIFACTS, REPO, launchChromium, within } from './lib/harness.mjs';
import { prepareProfile, processesWith, startCodeServer } from './lib/codeserver.mjs';
import { makeProject } from './lib/project.mjs';
import { command, webview } from './lib/workbench.mjs';

const VSIX = path.resolve(REPO, process.env.BOO_VSIX_PLATFORM || '');
const FAKE_QWEN = path.join(REPO, 'tests/fixtures/fake-qwen');

let project, work, dirs, cs, browser, page;

/** PATH without any folder that holds a `boo`. */
function pathWithoutBoo() {
  return (process.env.PATH || '')
    .split(':')
    .filter((d) => d && !fs.existsSync(path.join(d, 'boo')))
    .join(':');
}

before(async () => {
  assert.ok(process.env.BOO_VSIX_PLATFORM && fs.existsSync(VSIX), `platform package missing: ${VSIX} (scripts/package-vsix.sh)`);
  const listing = execFileSync('unzip', ['-Z1', VSIX], { encoding: 'utf8' });
  assert.match(listing, /^extension\/server\/boo$/m, 'the package carries the server');
  project = makeProject('boo-bundled-project-');
  work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'boo-bundled-work-')));
  const fakeQwen = path.join(work, 'fake-qwen');
  fs.copyFileSync(FAKE_QWEN, fakeQwen);
  fs.chmodSync(fakeQwen, 0o755);
  dirs = prepareProfile({
    vsix: [VSIX],
    settings: {
      'security.workspace.trust.enabled': false,
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'chat.disableAIFeatures': true,
      'boo.env': { OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', OPENAI_API_KEY: 'unused-by-fake-qwen', OPENAI_MODEL: 'fake-qwen-model' },
    },
  });
  const PATH = pathWithoutBoo();
  cs = await startCodeServer({
    dirs,
    folder: project,
    env: { PATH, BOO_DB: path.join(work, 'boo.db'), BOO_QWEN: fakeQwen, FAKE_QWEN_DELAY_MS: '40' },
    logFile: path.join(ARTIFACTS, 'bundled-code-server.log'),
  });
  browser = await within(60_000, launchChromium(), 'chromium start');
  page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  page.setDefaultTimeout(20_000);
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

const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `bundled-${name}.png`) });

describe('the platform .vsix in code-server, no boo on PATH', () => {
  test('Boo: Show Server Info names the bundled server and its version', async () => {
    await page.goto(`${cs.url}/?folder=${encodeURIComponent(project)}`, { timeout: 60_000 });
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await page.locator('.activitybar [aria-label^="Boo"]').first().waitFor({ timeout: 60_000 });
    await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } });
    await command(page, 'Boo: Show Server Info');
    const toast = page.locator('.notification-toast', { hasText: 'bundled with the extension' }).first();
    await toast.waitFor({ timeout: 60_000 });
    const text = await toast.innerText();
    assert.match(text, /boo 0\.1\.0 — bundled with the extension: \S*\/extensions\/boo\.boo-vscode-0\.1\.0(-linux-x64)?\/server\/boo/);
    assert.match(text, /protocol 1/);
    await shot('01-server-info');
    // The status bar item carries the same line in its tooltip.
    const item = page.locator('.statusbar-item', { hasText: /\bboo\b/ }).first();
    await item.waitFor();
    const label = (await item.getAttribute('aria-label')) ?? '';
    const hoverText = async () => {
      await item.hover();
      const hover = page.locator('.monaco-hover, .workbench-hover', { hasText: 'Server: boo' }).first();
      await hover.waitFor({ timeout: 5000 });
      return hover.innerText();
    };
    const tip = /Server: boo/.test(label) ? label : await hoverText();
    assert.match(tip, /Server: boo 0\.1\.0 — bundled with the extension/);
    await shot('02-tooltip');
  });

  test('a flow launched from the launcher runs on the bundled server to its report', async () => {
    await command(page, 'Boo: Launch Flow…');
    const launcher = await webview(page, 'launcher');
    for (const tab of await launcher.locator('[role="tab"]').all()) {
      if (await launcher.locator('.flow-card[data-flow="code-review"]').count()) break;
      await tab.click();
    }
    await launcher.locator('.flow-card[data-flow="code-review"]').click();
    await launcher.locator('.focus').fill('does the bundled server work?');
    await launcher.locator('.launch').click();
    const pane = await webview(page, 'pane', { pred: async (f) => (await f.locator('.flow-name').textContent()) === 'code-review' });
    await pane.locator('.report').waitFor({ state: 'visible', timeout: 120_000 });
    assert.equal(await pane.locator('.status-pill').textContent(), 'completed');
    assert.match(await pane.locator('.report h1').first().textContent(), /does the bundled server work\?/);
    await shot('03-report');
    // The server that ran is the one inside the extension.
    const servers = processesWith(path.join(work, 'boo.db')).filter((p) => / serve( |$)/.test(p.cmd));
    assert.ok(servers.length >= 1, 'a boo server runs');
    for (const s of servers) assert.match(s.cmd, /\/server\/boo serve/, `started from the extension: ${s.cmd}`);
  });
});
