// Workflow runs on the client side: the launcher's args/budget parsing, `/workflow` in
// chat, the run store asking for a workflow run's facts, the trust prompt for project
// workflows. The reducer's rules are in the shared corpus (protocolCases.test.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createFlowChatHandler } from '../src/chat';
import type { GetRunResult, LaunchWorkflowParams, Notification } from '../src/protocol';
import { RunStore } from '../src/runStore';
import { budgetSpent, displaySteps, phaseGroups } from '../src/state';
import { launchWorkflowOrOfferTrust } from '../src/trust';
import { parseArgs, parseBudget, parseWorkflowCommand } from '../src/workflows';

const CASES = path.resolve(__dirname, '../../../../tests/protocol-cases');
interface CaseFile {
  runId: string;
  input: ({ method: string; params: unknown } | { getRun: GetRunResult } | { expect: unknown })[];
}
const corpus = (name: string) => JSON.parse(fs.readFileSync(path.join(CASES, name), 'utf8')) as CaseFile;
const notificationsOf = (c: CaseFile) => c.input.filter((i): i is { method: string; params: unknown } => 'method' in i) as unknown as Notification[];
const getRunOf = (c: CaseFile) => (c.input.find((i) => 'getRun' in i) as { getRun: GetRunResult }).getRun;

test('args: valid JSON is sent as JSON, anything else as the text, empty as nothing', () => {
  assert.deepEqual(parseArgs('{"paths": ["src/"]}'), { args: { paths: ['src/'] } });
  assert.deepEqual(parseArgs(' 42 '), { args: 42 });
  assert.deepEqual(parseArgs('"quoted"'), { args: 'quoted' });
  assert.deepEqual(parseArgs('review the cache, please'), { args: 'review the cache, please' });
  assert.deepEqual(parseArgs('{not json'), { args: '{not json' });
  assert.deepEqual(parseArgs('   '), {});
});

test('budget: empty is none; numbers, separators and k are accepted; anything else says what to type', () => {
  assert.deepEqual(parseBudget(''), {});
  assert.deepEqual(parseBudget('20000'), { budget: 20000 });
  assert.deepEqual(parseBudget('20,000'), { budget: 20000 });
  assert.deepEqual(parseBudget('20k'), { budget: 20000 });
  assert.deepEqual(parseBudget('1.5k'), { budget: 1500 });
  for (const bad of ['0', '-5', 'lots', '12 tokens']) {
    const r = parseBudget(bad);
    assert.equal(r.budget, undefined, bad);
    assert.match(r.error ?? '', /number of output tokens/, bad);
  }
});

test('/workflow <name> <args>: the first word names the workflow, the rest is its args', () => {
  assert.deepEqual(parseWorkflowCommand('deep-review {"paths": ["src/"]}'), { name: 'deep-review', args: { paths: ['src/'] } });
  assert.deepEqual(parseWorkflowCommand('  research how does eviction work? '), { name: 'research', args: 'how does eviction work?' });
  assert.deepEqual(parseWorkflowCommand('audit'), { name: 'audit' });
  assert.equal(parseWorkflowCommand('   '), null);
});

test('/workflow in chat launches the named workflow with its args and reports agents, cached marks and the result', async () => {
  const c = corpus('workflow-cached.json');
  const store = new RunStore({ getRun: async () => getRunOf(c) });
  const launched: LaunchWorkflowParams[] = [];
  const parts: string[] = [];
  const handler = createFlowChatHandler({
    launch: async () => assert.fail('/workflow launches no flow'),
    launchWorkflow: async (p) => {
      launched.push(p);
      setTimeout(() => {
        for (const n of notificationsOf(c)) store.handle(n);
      }, 5);
      return { runId: c.runId };
    },
    watch: (runId, l, e) => store.watch(runId, l, e),
    cancel: async () => undefined,
    flowName: () => 'code-review',
    root: () => '/work/project',
    model: () => undefined,
    trustedMarkdown: (value) => value,
    errorMessage: (err) => String(err),
    now: () => Date.parse('2026-12-01T06:00:10.000Z'),
  });
  const stream = {
    markdown: (v: unknown) => parts.push(String(v)),
    progress: (v: string) => parts.push(`(progress) ${v}`),
    button: () => undefined,
  };
  const token = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose: () => undefined }) };
  const result = await handler({ prompt: 'audit {"depth": 1}', command: 'workflow' }, {}, stream as never, token as never);
  assert.deepEqual(launched, [{ workflow: 'audit', args: { depth: 1 }, root: '/work/project' }]);
  assert.deepEqual(result.metadata, { runId: c.runId, status: 'completed', command: 'workflow' });
  const text = parts.join('');
  assert.match(text, /Launched \*\*audit\*\* \(workflow\)/);
  assert.match(text, /✓ agent agent-2 · workflow-agent · Survey · cached\n/);
  assert.match(text, /✓ agent agent-1 · workflow-agent · Survey\b/);
  assert.doesNotMatch(text, /survey then refine · audit/, 'the script step is the run, not a line of its own');
  assert.match(text, /## Result[\s\S]*"parts": 2/, 'ends with the result');
});

test('/workflow without a name asks for one and launches nothing', async () => {
  const parts: string[] = [];
  const handler = createFlowChatHandler({
    launch: async () => assert.fail('nothing launched'),
    launchWorkflow: async () => assert.fail('nothing launched'),
    watch: () => assert.fail('nothing watched'),
    cancel: async () => undefined,
    flowName: () => 'code-review',
    root: () => undefined,
    model: () => undefined,
    trustedMarkdown: (v) => v,
    errorMessage: String,
  });
  const r = await handler({ prompt: '  ', command: 'workflow' }, {}, { markdown: (v: unknown) => parts.push(String(v)), progress: () => undefined, button: () => undefined } as never, {
    isCancellationRequested: false,
    onCancellationRequested: () => ({ dispose: () => undefined }),
  } as never);
  assert.equal(r.metadata?.command, 'workflow');
  assert.match(parts.join(''), /Name the workflow to run/);
});

test('the run store asks once for a workflow run\'s facts (budget, meta.phases, log) when it starts; never for a flow', async () => {
  const c = corpus('workflow-phases.json');
  const asked: [string, boolean][] = [];
  const store = new RunStore({
    getRun: async (runId, transcript) => {
      asked.push([runId, transcript]);
      return getRunOf(c);
    },
  });
  const notes = notificationsOf(c);
  store.handle(notes[0]); // runStarted with the script step
  store.handle(notes[0]);
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(asked, [[c.runId, false]], 'one getRun without transcripts');
  for (const n of notes.slice(1)) store.handle(n);
  const st = store.get(c.runId)!;
  assert.deepEqual(st.workflow?.phases, ['Survey', 'Refine']);
  assert.deepEqual(phaseGroups(st).map((g) => g.title), ['Survey', 'Refine', null, 'Extra']);
  assert.equal(displaySteps(st)[0].stepId, 'script');
  assert.equal(budgetSpent(st), 0);

  const flows: string[] = [];
  const flowStore = new RunStore({ getRun: async (id) => (flows.push(id), assert.fail('no getRun for a flow')) });
  flowStore.handle({ method: 'boo/runStarted', params: { runId: 'f1', flow: 'code-review', band: 'small', question: 'q', root: '/p', status: 'running', title: '', createdAt: '', resumed: false, steps: [{ stepId: 'a', agent: 'x', kind: 'agent', label: 'A', wave: 1, chatId: null, status: 'pending' }] } });
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(flows, []);
});

test('a project workflow in an untrusted folder asks, trusts and launches again; declining rethrows', async () => {
  const refusal = Object.assign(new Error('untrusted: boo trust /p'), { code: -32005 });
  let trusted = false;
  const calls: string[] = [];
  const server = {
    launchWorkflow: async () => {
      calls.push('launch');
      if (!trusted) throw refusal;
      return { runId: 'w1' };
    },
    trustRoot: async (root: string, t: boolean) => {
      calls.push(`trust ${root}`);
      trusted = t;
      return { root, trusted: t };
    },
  };
  const asked: string[] = [];
  await assert.rejects(launchWorkflowOrOfferTrust(server, { workflow: 'audit', root: '/p' }, async () => false), (e) => e === refusal);
  assert.deepEqual(calls, ['launch']);
  const got = await launchWorkflowOrOfferTrust(server, { workflow: 'audit', root: '/p' }, async (m) => (asked.push(m), true));
  assert.deepEqual(got, { runId: 'w1' });
  assert.deepEqual(calls, ['launch', 'launch', 'trust /p', 'launch']);
  assert.match(asked[0], /"audit" is this folder's own workflow[\s\S]*not trusted/);
});
