import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RunStore } from '../src/runStore';
import type { PaneState, Action } from '../src/state';
import { CHAT_SEC, RUN_ID, SEC_EVENTS, fullRun, getRunSnapshot, runStarted, step, stream } from './synthetic';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

test('runStarted creates the run; listeners get each change with its actions', () => {
  const store = new RunStore({ getRun: async () => assert.fail('no fetch needed') });
  store.handle(runStarted());
  const seen: { state: PaneState; actions: Action[] }[] = [];
  const sub = store.watch(RUN_ID, (state, actions) => seen.push({ state, actions }));
  assert.equal(seen.length, 1, 'the current state is delivered at once');
  assert.deepEqual(seen[0].actions, []);
  store.handle(step('security', 'running'));
  assert.equal(seen.length, 2);
  assert.equal(seen[1].actions[0].type, 'notification');
  sub.dispose();
});

test('watching an unknown run fetches it with transcripts', async () => {
  const calls: [string, boolean][] = [];
  const store = new RunStore({
    getRun: async (id, transcript) => {
      calls.push([id, transcript]);
      return getRunSnapshot(3);
    },
  });
  const states: PaneState[] = [];
  store.watch(RUN_ID, (s) => states.push(s));
  await tick();
  assert.deepEqual(calls, [[RUN_ID, true]]);
  assert.equal(states.at(-1)!.hydrated, true);
  assert.equal(states.at(-1)!.steps.find((s) => s.stepId === 'security')!.lastSeq, 3);
});

test('a seq gap triggers one refetch that heals it', async () => {
  let fetches = 0;
  const store = new RunStore({
    getRun: async () => {
      fetches++;
      return getRunSnapshot(4);
    },
  });
  for (const x of [runStarted(), step('security', 'running'), stream('security', CHAT_SEC, 1, SEC_EVENTS[0]), stream('security', CHAT_SEC, 5, SEC_EVENTS[4])]) store.handle(x);
  assert.equal(store.get(RUN_ID)!.needsResync, true);
  await tick(10);
  assert.equal(fetches, 1);
  assert.equal(store.resyncCount, 1);
  const st = store.get(RUN_ID)!;
  assert.equal(st.needsResync, false);
  assert.equal(st.steps.find((s) => s.stepId === 'security')!.lastSeq, 5);
});

test('a finished run nobody watches is forgotten; a watched one is kept', () => {
  const store = new RunStore({ getRun: async () => getRunSnapshot(0) });
  for (const x of fullRun()) store.handle(x);
  assert.equal(store.get(RUN_ID), undefined);
  const store2 = new RunStore({ getRun: async () => getRunSnapshot(0) });
  store2.handle(runStarted());
  const sub = store2.watch(RUN_ID, () => undefined);
  for (const x of fullRun().slice(1)) store2.handle(x);
  assert.equal(store2.get(RUN_ID)?.status, 'completed');
  sub.dispose();
  assert.equal(store2.get(RUN_ID), undefined);
});

test('a failing fetch reaches the error listener instead of throwing', async () => {
  const store = new RunStore({
    getRun: async () => {
      throw new Error('run not found');
    },
  });
  const errors: string[] = [];
  store.watch('nope', () => undefined, (m) => errors.push(m));
  await tick();
  assert.equal(errors.length, 1);
  assert.match(errors[0], /run not found/);
});

test('wantRunInfo fetches a flow run once (no transcripts) for its attachments, also when asked before runStarted', async () => {
  const calls: [string, boolean][] = [];
  const snap = getRunSnapshot(0);
  const img = { attachmentId: 'b'.repeat(64), name: 'mock.webp', mimeType: 'image/webp', bytes: 40, sha256: 'b'.repeat(64), width: 2, height: 2 };
  const store = new RunStore({
    getRun: async (id, transcript) => {
      calls.push([id, transcript]);
      return { ...snap, run: { ...snap.run, attachments: [img] } };
    },
  });
  store.wantRunInfo(RUN_ID);
  assert.deepEqual(calls, [], 'nothing to fetch before the run is known');
  store.handle(runStarted());
  const sub = store.watch(RUN_ID, () => undefined);
  await tick();
  assert.deepEqual(calls, [[RUN_ID, false]]);
  assert.deepEqual(store.get(RUN_ID)!.attachments.map((a) => a.name), ['mock.webp']);
  store.handle(runStarted());
  await tick();
  assert.equal(calls.length, 1, 'asked once');
  sub.dispose();
});

test('a flow run nobody asked about is not fetched on runStarted', async () => {
  let calls = 0;
  const store = new RunStore({ getRun: async () => (calls++, getRunSnapshot(0)) });
  store.handle(runStarted());
  await tick();
  assert.equal(calls, 0);
});
