// Cache-shape bars, run stats and the run timeline (src/modelCalls.ts, src/timeline.ts),
// on the shared fixture of a finished run (tests/fixtures/model-calls/code-review.json)
// and on hand-made calls for the edge cases.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { callBar, mergeCall, percentile, runCallStats, stepCalls } from '../src/modelCalls';
import { cutTranscript, runAtTurn, tickStep, timelineLayout, MIN_BLOCK_PCT } from '../src/timeline';
import type { GetRunResult, ModelCall, ModelCallParams, Trace } from '../src/protocol';
import { emptyState, reduce } from '../src/state';

const FIXTURE = path.resolve(__dirname, '../../../../tests/fixtures/model-calls/code-review.json');
const fx = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as { runId: string; getRun: GetRunResult; traces: Trace[]; calls: ModelCall[] };

function call(over: Partial<ModelCall>): ModelCall {
  return {
    callId: 'c1',
    runId: 'r',
    stepId: 's',
    chatId: 'ch',
    turn: 1,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:01.000Z',
    ttftMs: 100,
    durationMs: 1000,
    status: 200,
    error: null,
    promptTokens: 1000,
    cachedTokens: 500,
    completionTokens: 10,
    tokensPerSecond: 11.1,
    cacheDialect: 'openAi',
    requestBytes: 4000,
    expectedCachedTokens: 500,
    missReason: null,
    segments: [
      { kind: 'system', label: 'system prompt', bytes: 1600, hash: 'a', estTokens: 400, cached: 'full' },
      { kind: 'tools', label: 'tools', bytes: 1600, hash: 'b', estTokens: 400, cached: 'partial' },
      { kind: 'new', label: 'user', bytes: 800, hash: 'c', estTokens: 200, cached: 'none' },
    ],
    ...over,
  };
}

test('callBar: segments scaled to the prompt, coloured by the reported cached prefix', () => {
  const b = callBar(call({}));
  assert.equal(b.tokens, 1000);
  assert.deepEqual(
    b.parts.map((p) => [p.kind, Math.round(p.widthPct), p.reuse, p.tokens]),
    [
      ['system', 40, 'cached', 400],
      ['tools', 40, 'partial', 400],
      ['new', 20, 'uncached', 200],
    ],
  );
  assert.equal(Math.round(b.parts[1].reusedShare * 100), 25);
  assert.equal(b.cachedPct, 50);
  assert.equal(b.expectedPct, 50);
  assert.equal(b.short, false);
  // The estimates (bytes / 4) are scaled to the server's real prompt count.
  const scaled = callBar(call({ promptTokens: 2000, cachedTokens: 2000 }));
  assert.deepEqual(scaled.parts.map((p) => p.tokens), [800, 800, 400]);
  assert.ok(scaled.parts.every((p) => p.reuse === 'cached'));
});

test('callBar: no cache field is "unknown", not "uncached"; nothing cached is all uncached', () => {
  assert.ok(callBar(call({ cachedTokens: null })).parts.every((p) => p.reuse === 'unknown'));
  assert.equal(callBar(call({ cachedTokens: null })).cachedPct, null);
  assert.ok(callBar(call({ cachedTokens: 0 })).parts.every((p) => p.reuse === 'uncached'));
  // More cached than the prompt is clamped.
  assert.equal(callBar(call({ cachedTokens: 5000 })).cachedPct, 100);
  // A start (no counts, no segments yet) has an empty bar.
  assert.deepEqual(callBar(call({ promptTokens: null, cachedTokens: null, segments: [] })).parts, []);
});

test('callBar on the fixture: the evicted call is short, cached ≪ expected', () => {
  const ev = fx.calls.find((c) => c.stepId === 'security' && c.turn === 2)!;
  const b = callBar(ev);
  assert.equal(b.short, true);
  assert.ok(b.expectedPct > 90 && (b.cachedPct ?? 100) < 2, JSON.stringify(b));
  assert.equal(b.parts[0].reuse, 'partial', 'only 64 tokens of the system prompt were reused');
  assert.ok(b.parts.slice(1).every((p) => p.reuse === 'uncached'));
  const hit = callBar(fx.calls.find((c) => c.stepId === 'correctness' && c.turn === 3)!);
  assert.equal(hit.short, false);
  assert.deepEqual(hit.parts.map((p) => p.reuse), ['cached', 'cached', 'cached', 'cached', 'cached', 'cached', 'partial']);
});

test('runCallStats: computed vs reused, hit rate and TTFT p50/p90 as `boo calls` counts them', () => {
  // The Rust test of `boo calls` (src/proxy/report.rs): 3 calls, 2500 computed, 500 reused, 17%, p50 50 p90 100.
  const s = runCallStats([
    call({ callId: 'a', promptTokens: 1000, cachedTokens: 0, ttftMs: 100 }),
    call({ callId: 'b', promptTokens: 1000, cachedTokens: 500, ttftMs: 30 }),
    call({ callId: 'c', promptTokens: 1000, cachedTokens: null, ttftMs: 50, missReason: 'the server reports no cache fields' }),
  ]);
  assert.equal(s.calls, 3);
  assert.equal(s.computed, 2500);
  assert.equal(s.reused, 500);
  assert.equal(Math.round((s.hitRate ?? 0) * 100), 17);
  assert.equal(s.ttftP50, 50);
  assert.equal(s.ttftP90, 100);
  assert.equal(s.misses, 1);
  assert.equal(runCallStats([]).hitRate, null);
  assert.equal(percentile([], 0.5), null);
  const f = runCallStats(fx.calls);
  assert.equal(f.calls, 9);
  assert.equal(f.misses, 4);
  assert.equal(f.reused, fx.calls.reduce((a, c) => a + (c.cachedTokens ?? 0), 0));
});

test('mergeCall: a finish replaces its start by callId; a late start never replaces a finish', () => {
  const start = { ...call({ finishedAt: null, promptTokens: null, cachedTokens: null, segments: [] }), phase: 'start' } as ModelCallParams;
  let list = mergeCall([], start);
  assert.equal(list.length, 1);
  assert.equal((list[0] as unknown as ModelCallParams).phase, undefined, 'the phase is not kept');
  assert.equal(runCallStats(list).running, 1);
  const finish = { ...call({}), phase: 'finish' } as ModelCallParams;
  list = mergeCall(list, finish);
  assert.equal(list.length, 1);
  assert.equal(list[0].cachedTokens, 500);
  assert.equal(runCallStats(list).running, 0);
  assert.equal(mergeCall(list, start)[0].cachedTokens, 500);
  assert.equal(mergeCall(list, { ...start, callId: 'c2' }).length, 2);
  assert.deepEqual(stepCalls([call({ callId: 'x', turn: 2 }), call({ callId: 'y', turn: 1 })], 's').map((c) => c.callId), ['y', 'x']);
});

test('timelineLayout on the fixture: a lane per step, model turns and tool calls placed on one axis', () => {
  const t = timelineLayout(fx.getRun.steps, fx.calls, fx.traces);
  assert.deepEqual(t.lanes.map((l) => l.stepId), fx.getRun.steps.map((s) => s.stepId));
  const lane = (id: string) => t.lanes.find((l) => l.stepId === id)!;
  assert.deepEqual(lane('security').blocks.filter((b) => b.kind === 'model').map((b) => b.label), ['turn 1', 'turn 2', 'turn 3']);
  assert.deepEqual(lane('security').blocks.filter((b) => b.kind === 'tool').map((b) => b.label), ['glob', 'read_file']);
  assert.deepEqual(lane('diff').blocks.map((b) => b.kind), ['step'], 'a code step is one block');
  // Positions: the axis starts at the first time and ends at the last.
  const all = t.lanes.flatMap((l) => l.blocks);
  assert.ok(all.every((b) => b.leftPct >= 0 && b.leftPct + b.widthPct <= 100 + MIN_BLOCK_PCT));
  assert.equal(Math.min(...all.map((b) => b.leftPct)), 0);
  const v1 = lane('verdict').blocks[0];
  const c1 = lane('correctness').blocks[0];
  assert.ok(v1.leftPct > c1.leftPct + 50, 'the verdict runs after the reviewers');
  // Widths follow durations: security turn 2 (5.5 s) is wider than its glob (0.2 s).
  const s2 = lane('security').blocks.find((b) => b.label === 'turn 2')!;
  const glob = lane('security').blocks.find((b) => b.label === 'glob')!;
  assert.ok(s2.widthPct > glob.widthPct * 10);
  assert.ok(glob.leftPct >= lane('security').blocks[0].leftPct + lane('security').blocks[0].widthPct - 0.01, 'the tool runs after its turn');
  assert.ok(t.ticks.length >= 3 && t.ticks[0].label === '0s');
  assert.equal(tickStep(30_000), 5000);
  assert.deepEqual(timelineLayout([], [], []).lanes, []);
});

test('timelineLayout: a running call reaches the axis end at `now`', () => {
  const now = Date.parse('2026-01-01T00:00:10.000Z');
  const t = timelineLayout([], [call({}), call({ callId: 'c2', turn: 2, startedAt: '2026-01-01T00:00:05.000Z', finishedAt: null })], [], now);
  const b = t.lanes[0].blocks[1];
  assert.equal(b.status, 'running');
  assert.equal(Math.round(b.leftPct + b.widthPct), 100);
});

test('runAtTurn: the pane as it was when a turn ended, from the stored transcripts', () => {
  const sec = fx.getRun.steps.find((s) => s.stepId === 'security')!;
  assert.equal(cutTranscript(sec.transcript!, 1).at(-1)?.type, 'messageComplete');
  assert.equal(cutTranscript(sec.transcript!, 1).filter((e) => e.type === 'messageComplete').length, 1);
  assert.equal(cutTranscript(sec.transcript!, 99).length, sec.transcript!.length);

  const r = runAtTurn(fx.getRun, fx.calls, 'security', 2)!;
  assert.ok(r);
  const by = (id: string) => r.result.steps.find((s) => s.stepId === id)!;
  assert.equal(by('security').status, 'running');
  assert.equal(by('security').transcript!.filter((e) => e.type === 'messageComplete').length, 2);
  assert.equal(by('correctness').status, 'running', 'correctness was on its third turn');
  assert.equal(by('correctness').transcript!.filter((e) => e.type === 'messageComplete').length, 2);
  assert.equal(by('diff').status, 'completed');
  assert.equal(by('verdict').status, 'pending');
  assert.deepEqual(by('verdict').transcript, []);
  assert.equal(r.result.run.status, 'running');
  assert.equal(r.result.report, null);
  // The pane reducer takes it like any getRun answer.
  const st = reduce(emptyState(fx.runId), { type: 'hydrate', result: r.result });
  assert.equal(st.steps.find((s) => s.stepId === 'security')!.items.filter((i) => i.kind === 'turn').length, 2);
  // The last turn of the run: everything as stored.
  const last = runAtTurn(fx.getRun, fx.calls, 'verdict', 3)!;
  assert.ok(last.result.steps.filter((s) => s.stepId !== 'verdict').every((s) => s.status === 'completed'));
  assert.equal(runAtTurn(fx.getRun, fx.calls, 'security', 9), null, 'no such turn');
});
