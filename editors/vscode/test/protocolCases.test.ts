// The shared corpus of protocol cases (tests/protocol-cases/*.json, format in its
// README.md): every case's notifications go through the pane reducer (src/state.ts)
// and the pane state, projected into the corpus's shape, must equal the case's
// expectations at every checkpoint and at the end. A new case file is picked up with
// no change here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GetRunResult, Notification } from '../src/protocol';
import { PaneState, budgetSpent, displaySteps, emptyState, phaseGroups, reduce } from '../src/state';

const CASES = path.resolve(__dirname, '../../../../tests/protocol-cases');
const files = fs.existsSync(CASES) ? fs.readdirSync(CASES).filter((f) => f.endsWith('.json')).sort() : [];

const RUN_REQUIRED = ['status', 'error', 'report', 'needsResync'] as const;
const RUN_OPTIONAL = ['usage', 'kind', 'phases', 'log', 'budget', 'result', 'attachments'] as const;
const STEP_REQUIRED = ['stepId', 'status', 'chatId', 'text'] as const;
const STEP_OPTIONAL = ['kind', 'agent', 'label', 'wave', 'thinking', 'lastSeq', 'needsResync', 'error', 'phase', 'cached', 'parentStepId'] as const;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };
interface Expected {
  run: Obj;
  steps: Obj[];
}
type Item = { method: string; params: Obj } | { expect: Expected } | { getRun: Obj };
interface Case {
  description: string;
  runId: string;
  input: Item[];
  expect: Expected;
}

/** The pane state in the corpus's shape. */
function project(s: PaneState): { run: Obj; steps: Obj[] } {
  const joined = (items: PaneState['steps'][number]['items'], kind: 'text' | 'thinking') =>
    items
      .filter((i) => i.kind === kind)
      .map((i) => (i as { text: string }).text)
      .join('');
  return {
    run: {
      status: s.status,
      error: s.error,
      report: s.report,
      // A pane without its roster has to fetch the run (the run store does, on open).
      needsResync: s.needsResync || !s.hydrated,
      usage: (s.usage ?? null) as Json,
      kind: s.kind,
      phases: s.kind === 'workflow' ? phaseGroups(s).map((g) => g.title) : [],
      log: s.log.map((l) => ({ seq: l.seq, kind: l.kind, message: l.message })),
      budget: { total: s.workflow?.budgetTotal ?? null, spent: budgetSpent(s) },
      result: (s.result ?? null) as Json,
      attachments: s.attachments.map((a) => ({ attachmentId: a.attachmentId, name: a.name, mimeType: a.mimeType, bytes: a.bytes, width: a.width, height: a.height })),
    },
    steps: displaySteps(s).map((st) => ({
      stepId: st.stepId,
      kind: st.kind,
      agent: st.agent,
      label: st.label,
      wave: st.wave,
      status: st.status,
      chatId: st.chatId,
      text: joined(st.items, 'text'),
      thinking: joined(st.items, 'thinking'),
      lastSeq: st.lastSeq,
      needsResync: st.gap,
      error: st.error,
      phase: st.phase,
      cached: st.cached,
      parentStepId: st.parentStepId,
    })),
  };
}

const show = (v: Json | undefined) => JSON.stringify(v ?? null);
const same = (a: Json | undefined, b: Json | undefined) => {
  try {
    assert.deepStrictEqual(a ?? null, b ?? null);
    return true;
  } catch {
    return false;
  }
};

/** Differences between a projected and an expected state; each names the place and field. */
function compare(got: { run: Obj; steps: Obj[] }, want: Expected, where: string): string[] {
  const fails: string[] = [];
  const field = (prefix: string, w: Obj, g: Obj, name: string) => {
    if (!same(w[name], g[name])) fails.push(`${where}: ${prefix}${name}: expected ${show(w[name])}, got ${show(g[name])}`);
  };
  for (const k of RUN_REQUIRED) field('run.', want.run, got.run, k);
  for (const k of RUN_OPTIONAL) if (k in want.run) field('run.', want.run, got.run, k);
  const idsW = want.steps.map((s) => s.stepId);
  const idsG = got.steps.map((s) => s.stepId);
  if (!same(idsW, idsG)) {
    fails.push(`${where}: roster (stepIds in display order): expected ${show(idsW)}, got ${show(idsG)}`);
    return fails;
  }
  want.steps.forEach((sw, i) => {
    const prefix = `steps[${String(sw.stepId)}].`;
    for (const k of STEP_REQUIRED) field(prefix, sw, got.steps[i], k);
    for (const k of STEP_OPTIONAL) if (k in sw) field(prefix, sw, got.steps[i], k);
  });
  return fails;
}

/** A case must name every required field (so it cannot pass by saying nothing). */
function validate(c: Case, file: string): string[] {
  const problems: string[] = [];
  const need = (ok: boolean, what: string) => {
    if (!ok) problems.push(`${file}: ${what}`);
  };
  const checkState = (st: Expected | undefined, where: string) => {
    const ok = !!st && typeof st.run === 'object' && st.run !== null && Array.isArray(st.steps);
    need(ok, `${where} needs run and steps`);
    if (!ok) return;
    for (const k of RUN_REQUIRED) need(k in st!.run, `${where}: run.${k} is required (null is a value)`);
    st!.steps.forEach((s, i) => {
      for (const k of STEP_REQUIRED) need(k in s, `${where}: steps[${i + 1}].${k} is required (null is a value)`);
    });
  };
  need(typeof c.description === 'string' && c.description !== '', 'description is required');
  need(typeof c.runId === 'string', 'runId is required');
  need(Array.isArray(c.input) && c.input.length > 0, 'input must list notifications');
  (Array.isArray(c.input) ? c.input : []).forEach((item, i) => {
    if ('expect' in item) checkState(item.expect, `input[${i + 1}].expect`);
    else if ('getRun' in item) need(typeof item.getRun === 'object' && item.getRun !== null && typeof item.getRun.run === 'object', `input[${i + 1}].getRun needs run (a boo/getRun answer)`);
    else need(typeof item.method === 'string' && typeof item.params === 'object', `input[${i + 1}] is neither a notification nor a checkpoint`);
  });
  checkState(c.expect, 'expect');
  return problems;
}

test('the corpus is there', () => {
  assert.ok(files.length >= 9, `at least the 9 required cases in ${CASES}, found ${files.length}`);
});

for (const file of files) {
  test(`case ${file}`, () => {
    const c = JSON.parse(fs.readFileSync(path.join(CASES, file), 'utf8')) as Case;
    const problems = validate(c, file);
    if (problems.length) assert.fail(`malformed case:\n  ${problems.join('\n  ')}`);
    let st = emptyState(c.runId);
    let now = 1_000;
    const fails: string[] = [];
    c.input.forEach((item, i) => {
      if ('expect' in item) {
        fails.push(...compare(project(st), item.expect, `${file}, checkpoint input[${i + 1}]`));
      } else if ('getRun' in item) {
        now += 10;
        st = reduce(st, { type: 'hydrate', result: item.getRun as unknown as GetRunResult, now });
      } else {
        now += 10;
        st = reduce(st, { type: 'notification', notification: item as unknown as Notification, now });
      }
    });
    fails.push(...compare(project(st), c.expect, `${file}, final state`));
    if (fails.length) assert.fail(fails.join('\n'));
  });
}
