// Background agents without vscode: personas of the catalog, the view's description,
// and which notifications list the view again or tell the user an agent ended.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Flow, Notification } from '../src/protocol';
import { agentDescription, agentEvent, agentKey, agentTokens, personasOf } from '../src/agentEvents';
import { PaneState, emptyState, reduce, runTokens, stepTokens } from '../src/state';

test('personas come from the flows of the catalog, each once, with the flows that use it', () => {
  const flows = [
    { name: 'b', agents: [{ persona: 'x' }, { persona: 'y' }] },
    { name: 'a', agents: [{ persona: 'x' }] },
  ] as unknown as Flow[];
  assert.deepEqual(personasOf(flows), [
    { persona: 'x', flows: ['a', 'b'] },
    { persona: 'y', flows: ['b'] },
  ]);
});

test('an agent is described by status, elapsed time and tokens', () => {
  const a = { status: 'completed' as const, createdAt: '2026-12-01T10:00:00.000Z', finishedAt: '2026-12-01T10:01:05.000Z' };
  assert.equal(agentDescription(a, 3400, 0), 'completed · 1m 05s · 3.4k tok');
  assert.equal(agentDescription({ ...a, status: 'running', finishedAt: null }, null, Date.parse('2026-12-01T10:00:02.500Z')), 'running · 2.5s');
});

test('an agent this window started is told once when its run ends; others only refresh the view', () => {
  const mine = new Map([['r1', { persona: 'edge-case-explorer', prompt: 'what  happens\nwhen it fails?' }]]);
  const c = { mine, told: new Set<string>(), hasPane: () => false, state: () => undefined };
  const end = (runId: string, runStatus: string): Notification => ({ method: 'boo/stepUpdated', params: { runId, stepId: 'agent', status: 'completed', runStatus } as never });
  assert.deepEqual(agentEvent({ method: 'boo/runStarted', params: { runId: 'r9', flow: 'agent' } as never }, c), { refresh: true });
  assert.deepEqual(agentEvent({ method: 'boo/runStarted', params: { runId: 'r8', flow: 'code-review' } as never }, c), { refresh: false });
  assert.deepEqual(agentEvent(end('r1', 'completed'), c), { refresh: true, tell: { text: 'boo: agent edge-case-explorer completed: what happens when it fails?', status: 'completed', runId: 'r1' } });
  assert.deepEqual(agentEvent(end('r1', 'completed'), c), { refresh: true }, 'told once');
  assert.deepEqual(agentEvent(end('r2', 'failed'), c), { refresh: true }, 'not started here: no message');
});

test('a child an agent spawned is told when it ends in a run whose pane is open (flow-children), once; not without a pane', () => {
  const file = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../../tests/protocol-cases/flow-children.json'), 'utf8'));
  const ns: Notification[] = file.input.filter((i: { method?: string }) => i.method);
  let open = true;
  const told: string[] = [];
  const c = { mine: new Map(), told: new Set<string>(), hasPane: () => open, state: () => st };
  let st: PaneState = emptyState(file.runId);
  for (const n of ns) {
    st = reduce(st, { type: 'notification', notification: n, now: 1 });
    const ev = agentEvent(n, c);
    if (ev.tell) told.push(ev.tell.text);
    if (n.method === 'boo/stepAdded') assert.equal(ev.refresh, true, 'a new child lists the view again');
  }
  assert.deepEqual(told, [
    'boo: adversarial-security-analyst (spawned by Security review) completed: Check the session cookie',
    'boo: performance-analyst (spawned by Performance review) completed: Profile the cache',
    'boo: dependency-analyst (spawned by Security review) completed: Audit the lockfile',
  ]);
  // The same run again without a pane: nothing is told.
  open = false;
  c.told.clear();
  const again: string[] = [];
  st = emptyState(file.runId);
  for (const n of ns) {
    st = reduce(st, { type: 'notification', notification: n, now: 1 });
    const ev = agentEvent(n, c);
    if (ev.tell) again.push(ev.tell.text);
  }
  assert.deepEqual(again, []);
});

test('a listed child is keyed, counted and opened by its run and step; an agent run by its run', () => {
  const file = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../../tests/protocol-cases/flow-children.json'), 'utf8'));
  let st: PaneState = emptyState(file.runId);
  for (const n of file.input.filter((i: { method?: string }) => i.method) as Notification[]) st = reduce(st, { type: 'notification', notification: n, now: 1 });
  const tok: Record<string, number> = { 'security.sub-1': 700, 'perf.sub-1': 300 };
  st = { ...st, hydrated: true, steps: st.steps.map((s) => ({ ...s, usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, totalTokens: tok[s.stepId] ?? 1000 } })) };
  const child = { runId: file.runId, stepId: 'security.sub-1', usage: { inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, totalTokens: 2 } };
  const other = { ...child, stepId: 'perf.sub-1' };
  assert.equal(agentKey(child), `${file.runId}/security.sub-1`);
  assert.notEqual(agentKey(child), agentKey(other), 'two children of one run are two rows');
  assert.equal(agentKey({ runId: 'r1', stepId: null }), 'r1');
  const step = (id: string) => st.steps.find((s) => s.stepId === id)!;
  assert.equal(agentTokens(child, st, undefined), stepTokens(step('security.sub-1')), "a followed child: its step's tokens");
  assert.equal(agentTokens(other, st, undefined), stepTokens(step('perf.sub-1')));
  assert.notEqual(stepTokens(step('security.sub-1')), runTokens(st), 'not the whole run');
  assert.equal(agentTokens(child, undefined, 99), 2, 'not followed: what the list says');
  assert.equal(agentTokens({ runId: 'r1', stepId: null, usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, totalTokens: 0 } }, undefined, 1234), 1234, 'an agent run: its fetched total');
  assert.equal(agentTokens({ runId: 'r1', stepId: null, usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, totalTokens: 0 } }, undefined, undefined), null);
});
