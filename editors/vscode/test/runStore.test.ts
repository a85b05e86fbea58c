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
