import * as fs from 'node:fs';
import * as path from 'node:path';
import { launchChromium, REPO } from './lib/harness.mjs';
import { prepareProfile, startCodeServer, processesWith } from './lib/codeserver.mjs';
import { makeProject } from './lib/project.mjs';
const project = makeProject();
const dbDir = fs.mkdtempSync('/tmp/boo-explore/db-');
const dirs = prepareProfile({ vsix: [path.join(REPO, 'editors/vscode/out/boo.vsix'), '/tmp/boo-explore/fake-lm.vsix'], settings: {
  'security.workspace.trust.enabled': false, 'workbench.startupEditor': 'none',
  'boo.serverPath': path.join(REPO, 'target/debug/boo'), 'boo.maxParallelAgents': 2 } });
const cs = await startCodeServer({ dirs, folder: project, env: { BOO_DB: path.join(dbDir, 'boo.db'), BOO_QWEN: path.join(REPO, 'tests/fixtures/fake-qwen'), FAKE_QWEN_DELAY_MS: '100' }, logFile: '/tmp/boo-explore/cs.log' });
const browser = await launchChromium();
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.on('console', (m) => { if (m.type() === 'error') console.log('console:', m.text().slice(0, 200)); });
try {
await page.goto(`${cs.url}/?folder=${encodeURIComponent(project)}`);
await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
await page.waitForTimeout(6000);
const chatInput = page.locator('.interactive-input-editor, .chat-input-part .monaco-editor').first();
await chatInput.click();
await page.keyboard.type('@boo /flow what about eviction?');
await page.waitForTimeout(800);
await page.screenshot({ path: '/tmp/boo-explore/c1.png' });
await page.keyboard.press('Enter');
await page.waitForTimeout(20000);
await page.screenshot({ path: '/tmp/boo-explore/c2.png' });
console.log(await page.locator('.interactive-session').first().innerText().catch(e => e.message));
} catch (e) { console.log('ERR', e.message); await page.screenshot({ path: '/tmp/boo-explore/err.png' }); }
await browser.close();
await cs.stop();
console.log('left', processesWith(dbDir));
