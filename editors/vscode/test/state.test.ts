import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GetRunResult, Notification } from '../src/protocol';
import {
  Action,
  PaneState,
  appendEvents,
  cacheHitRate,
  elapsedMs,
  emptyState,
  expandedStepId,
  formatElapsed,
  formatTokens,
  reduce,
  reduceAll,
  reportSummary,
  runTokens,
  budgetSpent,
  displaySteps,
  phaseGroups,
  childDepth,
  childrenOf,
} from '../src/state';
import { CHAT_COR, CHAT_SEC, REPORT, ROOT, RUN_ID, SEC_EVENTS, fullRun, getRunSnapshot, runStarted, step, stream } from './synthetic';

const n = (notification: Notification, now = 1_000): Action => ({ type: 'notification', notification, now });
const fold = (ns: Notification[], from: PaneState = emptyState(RUN_ID)) => reduceAll(from, ns.map((x) => n(x)));
const stepOf = (s: PaneState, id: string) => {
  const st = s.steps.find((x) => x.stepId === id);
  assert.ok(st, `step ${id} exists`);
  return st;
};
const textOf = (s: PaneState, id: string) =>
  stepOf(s, id)
    .items.filter((i) => i.kind === 'text')
    .map((i) => (i as { text: string }).text)
    .join('');

test('runStarted gives the roster sorted by wave, server order kept within a wave', () => {
  const s = fold([runStarted()]);
  assert.equal(s.hydrated, true);
  assert.equal(s.flow, 'code-review');
  assert.equal(s.status, 'running');
  assert.deepEqual(
    s.steps.map((x) => x.stepId),
    ['diff', 'security', 'correctness', 'verify', 'report'],
  );
  assert.ok(s.steps.every((x) => x.status === 'pending' && x.lastSeq === 0));
});

test('a whole run folds into statuses, merged deltas, paired tool calls and the report', () => {
  const s = fold(fullRun());
  assert.equal(s.status, 'completed');
  assert.equal(s.report, REPORT);
  assert.ok(s.steps.every((x) => x.status === 'completed'));
  const sec = stepOf(s, 'security');
  assert.equal(sec.lastSeq, 5);
  assert.deepEqual(
    sec.items.map((i) => i.kind),
    ['thinking', 'tool', 'text', 'turn'],
  );
  assert.equal((sec.items[0] as { text: string }).text, 'Look at the cache write path first.');
  const tool = sec.items[1];
  assert.equal(tool.kind, 'tool');
  if (tool.kind === 'tool') {
    assert.equal(tool.name, 'glob');
    assert.deepEqual(tool.result, { isError: false, content: 'src/cache.rs\nsrc/main.rs' });
  }
  assert.equal(textOf(s, 'security'), 'The entry is inserted before the write succeeds.');
  assert.equal(sec.output, 'The entry is inserted before the write succeeds.');
  assert.equal(runTokens(s), 1750);
  assert.equal(s.stats.applied, 7);
  assert.equal(s.stats.duplicates, 0);
  assert.equal(s.needsResync, false);
});

test('duplicate seq is dropped, not applied twice', () => {
  const ns = fullRun();
  const dupIdx = ns.findIndex((x) => x.method === 'boo/agentStream' && x.params.seq === 4 && x.params.stepId === 'security');
  const withDup = [...ns.slice(0, dupIdx + 1), ns[dupIdx], ns[dupIdx - 1], ...ns.slice(dupIdx + 1)];
  const s = fold(withDup);
  assert.equal(textOf(s, 'security'), 'The entry is inserted before the write succeeds.');
  assert.equal(s.stats.duplicates, 2);
  assert.equal(s.needsResync, false);
});

test('a gap holds later chunks and asks for a resync; the missing chunk fills it', () => {
  let s = fold([runStarted(), step('security', 'running'), stream('security', CHAT_SEC, 1, SEC_EVENTS[0])]);
  s = reduce(s, n(stream('security', CHAT_SEC, 3, SEC_EVENTS[2])));
  assert.equal(s.needsResync, true);
  assert.equal(stepOf(s, 'security').gap, true);
  assert.equal(stepOf(s, 'security').lastSeq, 1);
  assert.equal(s.stats.gaps, 1);
  // A second early chunk does not count as a new gap.
  s = reduce(s, n(stream('security', CHAT_SEC, 4, SEC_EVENTS[3])));
  assert.equal(s.stats.gaps, 1);
  // The late chunk arrives: everything held is applied in order.
  s = reduce(s, n(stream('security', CHAT_SEC, 2, SEC_EVENTS[1])));
  assert.equal(s.needsResync, false);
  const sec = stepOf(s, 'security');
  assert.equal(sec.lastSeq, 4);
  assert.deepEqual(
    sec.items.map((i) => i.kind),
    ['thinking', 'tool', 'text'],
  );
  assert.equal((sec.items[1] as { result?: unknown }).result !== undefined, true);
});

test('a gap is healed by the getRun transcript; held chunks after lastSeq still apply', () => {
  let s = fold([runStarted(), step('security', 'running'), stream('security', CHAT_SEC, 1, SEC_EVENTS[0])]);
  s = reduce(s, n(stream('security', CHAT_SEC, 5, SEC_EVENTS[4])));
  assert.equal(s.needsResync, true);
  s = reduce(s, { type: 'hydrate', result: getRunSnapshot(4), now: 2_000 });
  assert.equal(s.needsResync, false);
  const sec = stepOf(s, 'security');
  assert.equal(sec.lastSeq, 5);
  assert.deepEqual(
    sec.items.map((i) => i.kind),
    ['thinking', 'tool', 'text', 'turn'],
  );
  assert.equal(textOf(s, 'security'), 'The entry is inserted before the write succeeds.');
});

test('opening a run late: notifications before the getRun answer are buffered and replayed', () => {
  let s = emptyState(RUN_ID);
  assert.equal(s.hydrated, false);
  // Chunks 3..5 arrive while boo/getRun is in flight; the snapshot covers up to 3.
  s = reduceAll(s, [n(stream('security', CHAT_SEC, 3, SEC_EVENTS[2])), n(stream('security', CHAT_SEC, 4, SEC_EVENTS[3])), n(stream('security', CHAT_SEC, 5, SEC_EVENTS[4]))]);
  assert.equal(s.buffer.length, 3);
  assert.equal(s.steps.length, 0);
  s = reduce(s, { type: 'hydrate', result: getRunSnapshot(3), now: 2_000 });
  assert.equal(s.hydrated, true);
  assert.equal(s.buffer.length, 0);
  const sec = stepOf(s, 'security');
  assert.equal(sec.lastSeq, 5);
  assert.equal(s.stats.duplicates, 1, 'seq 3 was already in the transcript');
  assert.deepEqual(
    sec.items.map((i) => i.kind),
    ['thinking', 'tool', 'text', 'turn'],
  );
  assert.equal(s.createdAt, '2026-11-20T23:07:00.000Z');
  assert.equal(s.model, 'qwen3-coder');
});

test('rehydrating a finished run from getRun alone rebuilds the pane', () => {
  const s = reduce(emptyState(RUN_ID), { type: 'hydrate', result: getRunSnapshot(5, 'completed') });
  assert.equal(s.status, 'completed');
  assert.equal(s.report, REPORT);
  assert.equal(stepOf(s, 'security').items.length, 4);
  assert.equal(elapsedMs(s, Date.parse('2030-01-01T00:00:00Z')), 12_000, 'elapsed is frozen at finishedAt');
});

test('a snapshot older than the live stream does not roll the stream back', () => {
  const live = fold(fullRun().slice(0, 11)); // security up to seq 5
  assert.equal(stepOf(live, 'security').lastSeq, 5);
  const s = reduce(live, { type: 'hydrate', result: getRunSnapshot(2) });
  assert.equal(stepOf(s, 'security').lastSeq, 5);
  assert.equal(stepOf(s, 'security').items.length, 4);
});

test('terminal statuses never change again', () => {
  let s = fold(fullRun());
  s = reduce(s, n(step('security', 'running')));
  assert.equal(stepOf(s, 'security').status, 'completed');
  s = reduce(s, n(step('report', 'running', { runStatus: 'running' })));
  assert.equal(s.status, 'completed');
  s = reduce(s, { type: 'hydrate', result: getRunSnapshot(5, 'running') });
  assert.equal(s.status, 'completed');
  assert.equal(stepOf(s, 'security').status, 'completed');
});

test('a failed run keeps the error; a cancelled run has no report', () => {
  const failed = fold([runStarted(), step('security', 'failed', { runStatus: 'failed', error: 'qwen exited with code 1' })]);
  assert.equal(failed.status, 'failed');
  assert.equal(failed.error, 'qwen exited with code 1');
  assert.equal(stepOf(failed, 'security').error, 'qwen exited with code 1');
  const cancelled = fold([runStarted(), step('security', 'cancelled', { runStatus: 'cancelled' })]);
  assert.equal(cancelled.status, 'cancelled');
  assert.equal(cancelled.report, null);
});

test('the pane follows the most recently active running step until the user picks one', () => {
  let s = fold([runStarted(), step('security', 'running'), step('correctness', 'running')]);
  s = reduce(s, n(stream('security', CHAT_SEC, 1, SEC_EVENTS[0])));
  assert.equal(expandedStepId(s), 'security');
  s = reduce(s, n(stream('correctness', CHAT_COR, 1, [{ type: 'text', text: 'x' }])));
  assert.equal(expandedStepId(s), 'correctness');
  s = reduce(s, { type: 'select', stepId: 'diff' });
  s = reduce(s, n(stream('security', CHAT_SEC, 2, SEC_EVENTS[1])));
  assert.equal(expandedStepId(s), 'diff', 'a user choice wins over activity');
  s = reduce(s, { type: 'select', stepId: null });
  assert.equal(expandedStepId(s), null, 'the user may collapse everything');
  s = reduce(s, { type: 'follow' });
  assert.equal(expandedStepId(s), 'security');
});

test('notifications of another run are ignored; unknown events and steps are tolerated', () => {
  const other = { method: 'boo/stepUpdated', params: { runId: 'other', stepId: 'diff', status: 'failed' } } as Notification;
  let s = fold([runStarted(), other]);
  assert.equal(stepOf(s, 'diff').status, 'pending');
  s = reduce(s, n(stream('security', CHAT_SEC, 1, [{ type: 'somethingNew', x: 1 } as never, { type: 'text', text: 'ok' }])));
  assert.equal(textOf(s, 'security'), 'ok');
  s = reduce(s, n(step('late-step', 'running', { label: 'A late step', wave: 9, kind: 'agent', agent: 'risk-analyst', chatId: 'c9' })));
  const late = stepOf(s, 'late-step');
  assert.equal(late.label, 'A late step');
  assert.equal(s.steps[s.steps.length - 1].stepId, 'late-step');
});

test('a tool result without its call still shows; results pair with the latest call of that id', () => {
  const items = appendEvents([], [
    { type: 'toolResult', toolCallId: 'x', isError: true, content: 'denied' },
    { type: 'toolCall', toolCallId: 'a', name: 'read_file', input: { absolute_path: '/p' } },
    { type: 'text', text: '' },
    { type: 'toolResult', toolCallId: 'a', isError: false, content: 'body' },
  ]);
  assert.equal(items.length, 2);
  assert.equal(items[0].kind === 'tool' && items[0].result?.isError, true);
  assert.equal(items[1].kind === 'tool' && items[1].result?.content, 'body');
});

test('derived values: tokens, elapsed, cache rate, summary', () => {
  assert.equal(formatTokens(950), '950');
  assert.equal(formatTokens(1250), '1.3k');
  assert.equal(formatTokens(25_400), '25k');
  assert.equal(formatElapsed(65_000), '1m 05s');
  assert.equal(formatElapsed(86), '86ms');
  assert.equal(formatElapsed(2_440), '2.4s');
  assert.equal(formatElapsed(8_000), '8s');
  assert.equal(formatElapsed(12_900), '12s');
  assert.equal(formatElapsed(null), '–');
  assert.equal(cacheHitRate({ inputTokens: 1000, cacheReadTokens: 600 }), 0.6);
  assert.equal(cacheHitRate({ inputTokens: 0, cacheReadTokens: 0 }), null);
  const sum = reportSummary(REPORT);
  assert.match(sum, /^# code-review/);
  assert.match(sum, /stale entries after a failed write/);
  assert.doesNotMatch(sum, /Verified findings/);
  const live = fold([runStarted()], emptyState(RUN_ID));
  assert.equal(elapsedMs(live, 4_000), 3_000, 'without timestamps, elapsed counts from when the run was seen');
});

// ---- recorded sequences from the real server (tests/vscode/fixtures) ----------------

const FIXTURES = path.resolve(__dirname, '../../../../tests/vscode/fixtures');
const recorded = fs.existsSync(FIXTURES) ? fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.json')) : [];

interface Recording {
  runId: string;
  notifications: Notification[];
  getRun: GetRunResult;
}

for (const file of recorded) {
  test(`recorded ${file}: folding the notifications gives what getRun rebuilds`, () => {
    const rec = JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8')) as Recording;
    const ns = rec.notifications.filter((x) => x.params?.runId === rec.runId);
    assert.ok(ns.length > 0, 'the recording has notifications');
    assert.equal(ns[0].method, 'boo/runStarted', 'runStarted comes first');
    const last = ns[ns.length - 1];
    assert.equal(last.method, 'boo/stepUpdated', 'the last notification is a stepUpdated');
    const live = fold(ns, emptyState(rec.runId));
    const rebuilt = reduce(emptyState(rec.runId), { type: 'hydrate', result: rec.getRun });
    assert.equal(live.status, rec.getRun.run.status);
    assert.equal(live.report, rec.getRun.report);
    assert.equal(live.stats.duplicates, 0);
    assert.equal(live.needsResync, false, 'no gaps in a recorded stream');
    // A workflow's concurrent agents may be announced in another order than the server
    // stored their rows: compare them as sets there.
    const byId = (a: [string, string, number][]) => (rec.getRun.run.kind === 'workflow' ? [...a].sort((x, y) => x[0].localeCompare(y[0])) : a);
    assert.deepEqual(
      byId(live.steps.map((s) => [s.stepId, s.status, s.lastSeq])),
      byId(rebuilt.steps.map((s) => [s.stepId, s.status, s.lastSeq])),
    );
    for (const st of live.steps) {
      const other = rebuilt.steps.find((x) => x.stepId === st.stepId)!;
      assert.deepEqual(st.items, other.items, `stream of ${st.stepId} equals its transcript`);
    }
    // Replaying every notification twice changes nothing.
    const twice = fold(ns.flatMap((x) => [x, x]), emptyState(rec.runId));
    for (const st of twice.steps) assert.deepEqual(st.items, stepOf(live, st.stepId).items);
    if (rec.getRun.run.kind === 'workflow') {
      // A workflow run: what the live notifications showed is what history shows.
      assert.equal(live.kind, 'workflow');
      assert.equal(rebuilt.kind, 'workflow');
      const view = (st: PaneState) => displaySteps(st).map((x) => [x.stepId, x.phase, x.cached] as const).sort((a, b) => a[0].localeCompare(b[0]));
      assert.deepEqual(view(live), view(rebuilt), 'rows, phases and cached marks');
      const groups = (st: PaneState) => phaseGroups(st).map((g) => [g.title, g.steps.map((x) => x.stepId).sort()]);
      assert.deepEqual(groups(live), groups(rebuilt), 'the same agents in the same phase groups');
      assert.deepEqual(phaseGroups(live).map((g) => g.title), phaseGroups(rebuilt).map((g) => g.title));
      assert.deepEqual(live.log.map((l) => [l.seq, l.kind, l.message]), (rec.getRun.run.log ?? []).map((l) => [l.seq, l.kind, l.message]));
      assert.deepEqual(live.result, rec.getRun.run.result);
      assert.equal(budgetSpent(live), budgetSpent(rebuilt));
      const agents = live.steps.filter((x) => x.kind === 'agent');
      assert.ok(agents.length > 0, 'the workflow ran agents');
      if (agents.every((x) => x.cached)) assert.equal(budgetSpent(live), 0, 'an all-cached run spent nothing');
      else assert.ok(budgetSpent(live) > 0, 'agents that ran spent output tokens');
    }
  });
}

test('auto-follow: a code step only before any agent ran; the last agent between agents; nothing once the run ended', () => {
  let s = fold([runStarted(), step('diff', 'running')]);
  assert.equal(expandedStepId(s), 'diff');
  s = reduceAll(s, [n(step('diff', 'completed')), n(step('security', 'running')), n(stream('security', CHAT_SEC, 1, SEC_EVENTS[0]))]);
  assert.equal(expandedStepId(s), 'security');
  s = reduceAll(s, [n(step('security', 'completed')), n(step('verify', 'running'))]);
  assert.equal(expandedStepId(s), 'security', 'a later code step does not steal the focus');
  s = reduce(s, n(step('report', 'completed', { runStatus: 'completed', report: REPORT })));
  assert.equal(expandedStepId(s), null);
});

test('the recorded fixtures are there (so the checks above ran)', () => {
  assert.ok(recorded.length >= 1, `no recording in ${FIXTURES}`);
});

test('a step dispatched again after a server restart (new chatId) restarts its stream at seq 1', () => {
  const CHAT_A = '01a1fb6b-c6bd-71b0-a310-000000000001';
  const CHAT_B = '01a1fb7f-0000-7000-8000-000000000002'; // created later: sorts after A
  const started = runStarted();
  if (started.method !== 'boo/runStarted') throw new Error('unreachable');
  const withChat = (chatId: string, resumed = false): Notification => ({
    method: 'boo/runStarted',
    params: { ...started.params, resumed, steps: started.params.steps.map((x) => (x.stepId === 'security' ? { ...x, chatId } : x)) },
  });
  let s = fold([withChat(CHAT_A), step('security', 'running', { chatId: CHAT_A }), stream('security', CHAT_A, 1, SEC_EVENTS[0]), stream('security', CHAT_A, 2, SEC_EVENTS[1])]);
  assert.equal(stepOf(s, 'security').lastSeq, 2);
  // The server restarts and resumes the run: runStarted again, the step gets a new chat.
  s = reduceAll(s, [n(withChat(CHAT_B, true)), n(step('security', 'running', { chatId: CHAT_B })), n(stream('security', CHAT_B, 1, SEC_EVENTS[3]))]);
  const sec = stepOf(s, 'security');
  assert.equal(sec.chatId, CHAT_B);
  assert.equal(sec.attempt, 2);
  assert.equal(sec.lastSeq, 1);
  assert.deepEqual(
    sec.items.map((i) => i.kind),
    ['text'],
    'the new attempt starts a fresh stream',
  );
  assert.equal(s.needsResync, false);
  // A late chunk of the old attempt is ignored.
  s = reduce(s, n(stream('security', CHAT_A, 3, SEC_EVENTS[2])));
  assert.equal(stepOf(s, 'security').items.length, 1);
  // A stale snapshot still on the old chat does not roll back the new attempt.
  const snap = getRunSnapshot(2);
  snap.steps = snap.steps.map((x) => (x.stepId === 'security' ? { ...x, chatId: CHAT_A } : x));
  s = reduce(s, { type: 'hydrate', result: snap });
  assert.equal(stepOf(s, 'security').chatId, CHAT_B);
});

test('the run error and usage of the last notification are the run’s', () => {
  const s = fold([runStarted(), step('report', 'failed', { runStatus: 'failed', error: 'step error', runError: 'run failed: 2 steps failed', runUsage: { inputTokens: 10, outputTokens: 5, cacheReadTokens: 0, totalTokens: 15 } })]);
  assert.equal(s.error, 'run failed: 2 steps failed');
  assert.equal(runTokens(s), 15);
});

const added = (stepId: string, parentStepId: string | null, extra: Record<string, unknown> = {}): Notification => ({
  method: 'boo/stepAdded',
  params: { runId: RUN_ID, step: { stepId, agent: 'codebase-explorer', kind: 'agent', label: stepId, phase: null, wave: 1, chatId: null, status: 'running', cached: false, parentStepId, ...extra } } as never,
});

test('a child an agent spawned shows under its parent, indented one level, in a flow that stays a flow', () => {
  const s = fold([runStarted(), added('security.sub-1', 'security'), added('correctness.sub-1', 'correctness'), added('security.sub-2', 'security')]);
  assert.equal(s.kind, 'flow');
  assert.deepEqual(
    displaySteps(s).map((x) => x.stepId),
    ['diff', 'security', 'security.sub-1', 'security.sub-2', 'correctness', 'correctness.sub-1', 'verify', 'report'],
  );
  assert.deepEqual(childrenOf(s, 'security').map((x) => x.stepId), ['security.sub-1', 'security.sub-2']);
  assert.equal(childDepth(s, stepOf(s, 'security.sub-2')), 1);
  assert.equal(childDepth(s, stepOf(s, 'security')), 0);
});

test('a child whose parent the pane does not know shows in its own place, not lost', () => {
  const s = fold([runStarted(), added('ghost.sub-1', 'ghost')]);
  assert.ok(displaySteps(s).some((x) => x.stepId === 'ghost.sub-1'));
  assert.equal(childDepth(s, stepOf(s, 'ghost.sub-1')), 0);
  assert.equal(displaySteps(s).length, s.steps.length);
});

test("in a workflow, a child of an agent shows under that agent, not in a phase group of its own", () => {
  const s = fold([
    { method: 'boo/runStarted', params: { runId: RUN_ID, flow: 'wf', band: null, question: '', root: ROOT, status: 'running', steps: [{ stepId: 'script', agent: 'script', kind: 'script', label: 'Script', wave: 0, chatId: null, status: 'running' }] } as never },
    added('a1', 'script', { phase: 'Scan' }),
    added('a2', 'script', { phase: 'Check' }),
    added('a1.sub-1', 'a1'),
  ]);
  assert.equal(s.kind, 'workflow');
  assert.deepEqual(phaseGroups(s).map((g) => g.steps.map((x) => x.stepId)), [['a1'], ['a2']]);
  assert.deepEqual(displaySteps(s).map((x) => x.stepId), ['script', 'a1', 'a1.sub-1', 'a2']);
});

test('Run.attachments of a getRun answer fills the pane; a later runInfo without them keeps them', () => {
  const snap = getRunSnapshot(0);
  const img = { attachmentId: 'a'.repeat(64), name: 'shot.png', mimeType: 'image/png', bytes: 68, sha256: 'a'.repeat(64), width: 1, height: 1 };
  let s = reduce(emptyState(RUN_ID), { type: 'hydrate', result: { ...snap, run: { ...snap.run, attachments: [img] } } });
  assert.deepEqual(s.attachments, [img]);
  s = reduce(s, { type: 'runInfo', run: { ...snap.run, attachments: undefined as never } });
  assert.deepEqual(s.attachments, [img]);
  s = reduce(s, n(runStarted()));
  assert.equal(s.attachments.length, 1);
});
