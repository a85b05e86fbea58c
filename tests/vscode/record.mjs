#!/usr/bin/env node
// Records a real run of the boo server (with the scripted fake qwen) into a fixture the
// reducer and webview tests replay:
//
//   node tests/vscode/record.mjs [--flow code-review] [--band small] [--name code-review-small]
//   node tests/vscode/record.mjs --script tests/vscode/fixtures/audit.workflow.js --args '{"depth":1}' --budget 20000 [--repeat 2] --name workflow-audit
//
// With --script, a workflow run of that script (copied into the project, launched by
// scriptPath) is recorded instead; --repeat N launches it N times and records the last
// run (the second one of the same script is answered from the cache).
//
// Writes tests/vscode/fixtures/<name>.json: the listFlows answer, every notification in
// arrival order, then getRun {transcript: true}, getTraces and exportRun (markdown).
// The temporary project path is replaced by /work/project so fixtures are stable.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LspProcess, initializeParams } from './lib/lsp.mjs';
import { makeProject } from './lib/project.mjs';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const flow = arg('flow', 'code-review');
const band = arg('band', 'small');
const question = arg('question', 'what could break in the cache?');
const script = arg('script', null);
const wfArgs = arg('args', null);
const wfBudget = arg('budget', null);
const repeat = Number(arg('repeat', '1'));
const name = arg('name', script ? `workflow-${path.basename(script).replace(/\..*$/, '')}` : `${flow}-${band}`);
const bin = path.resolve(REPO, process.env.BOO_BIN || 'target/debug/boo');
const fakeQwen = path.join(REPO, 'tests/fixtures/fake-qwen');

const project = makeProject('boo-record-');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boo-record-db-'));
// A private copy of the fake qwen: the shared checkout may be edited while we run.
fs.copyFileSync(fakeQwen, path.join(tmp, 'fake-qwen'));
fs.chmodSync(path.join(tmp, 'fake-qwen'), 0o755);
// A private copy of the server too (a concurrent `cargo build` may replace it).
fs.copyFileSync(bin, path.join(tmp, 'boo'));
fs.chmodSync(path.join(tmp, 'boo'), 0o755);
const server = new LspProcess(path.join(tmp, 'boo'), ['serve'], {
  cwd: project,
  env: {
    ...process.env,
    BOO_DB: path.join(tmp, 'boo.db'),
    BOO_QWEN: path.join(tmp, 'fake-qwen'),
    BOO_MAX_PARALLEL: '2',
    BOO_LOG: 'warn',
    // The server wants a model endpoint; the fake qwen never calls it (port 9: discard).
    OPENAI_BASE_URL: 'http://127.0.0.1:9/v1',
    OPENAI_API_KEY: 'unused-by-fake-qwen',
    OPENAI_MODEL: 'fake-qwen-model',
    FAKE_QWEN_DELAY_MS: process.env.FAKE_QWEN_DELAY_MS ?? '15',
  },
});

let exitCode = 0;
try {
  const init = await server.request('initialize', initializeParams(project, { diagnostics: true }), 30_000);
  server.notify('initialized', {});
  const flows = await server.request('boo/listFlows', {});
  let launch;
  let runId;
  if (script) {
    fs.mkdirSync(path.join(project, 'wf'), { recursive: true });
    const target = path.join(project, 'wf', path.basename(script));
    fs.copyFileSync(path.resolve(REPO, script), target);
    launch = { scriptPath: target, root: project };
    if (wfArgs !== null) launch.args = JSON.parse(wfArgs);
    if (wfBudget !== null) launch.budget = Number(wfBudget);
    for (let i = 0; i < repeat; i++) {
      ({ runId } = await server.request('boo/launchWorkflow', launch));
      await server.waitFor((m) => m.method === 'boo/stepUpdated' && m.params?.runId === runId && ['completed', 'failed', 'cancelled'].includes(m.params?.runStatus), 180_000, 'the terminal stepUpdated');
    }
  } else {
    launch = { flow, band, input: { question }, root: project };
    ({ runId } = await server.request('boo/launchFlow', launch));
    await server.waitFor((m) => m.method === 'boo/stepUpdated' && m.params?.runId === runId && ['completed', 'failed', 'cancelled'].includes(m.params?.runStatus), 180_000, 'the terminal stepUpdated');
  }
  // Give trailing notifications (diagnostics, progress end) a moment.
  await new Promise((r) => setTimeout(r, 300));
  const getRun = await server.request('boo/getRun', { runId, transcript: true });
  const traces = [];
  let cursor;
  for (let i = 0; i < 50; i++) {
    const page = await server.request('boo/getTraces', { runId, cursor, limit: 200 });
    traces.push(...page.traces);
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  const exported = await server.request('boo/exportRun', { runId, format: 'markdown' });
  const record = {
    format: 1,
    recordedAt: new Date().toISOString(),
    serverInfo: init.serverInfo,
    capabilities: init.capabilities,
    runId,
    launch,
    listFlows: flows,
    // Only this run's notifications (and the ones that name no run) when earlier runs were launched.
    notifications: server.notifications.filter((n) => !n.params?.runId || n.params.runId === runId),
    getRun,
    traces,
    exportMarkdown: exported,
  };
  const text = JSON.stringify(record, null, 1).split(project).join('/work/project');
  const outDir = path.join(REPO, 'tests/vscode/fixtures');
  fs.mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, `${name}.json`);
  fs.writeFileSync(out, text + '\n');
  const counts = {};
  for (const n of server.notifications) counts[n.method] = (counts[n.method] ?? 0) + 1;
  console.log(`recorded ${out}: run ${getRun.run.status}, ${server.notifications.length} notifications ${JSON.stringify(counts)}`);
} catch (err) {
  console.error(`record failed: ${err.stack || err}\n--- server stderr ---\n${server.stderr.slice(-4000)}`);
  exitCode = 1;
} finally {
  await server.shutdown();
  fs.rmSync(project, { recursive: true, force: true });
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(exitCode);
