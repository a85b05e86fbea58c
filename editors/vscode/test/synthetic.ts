// A small run written by hand from PROTOCOL.md, for edge cases the real server never
// produces on purpose (duplicates, gaps, stale updates). Realistic sequences recorded
// from the real server live in tests/vscode/fixtures/ (see tests/vscode/record.mjs).

import type { GetRunResult, Notification, RunStartedParams, StreamEvent } from '../src/protocol';

export const RUN_ID = '0195f3a2-0000-7000-8000-000000000001';
export const ROOT = '/work/project';
export const CHAT_SEC = '0195f3a2-0000-7000-8000-00000000c001';
export const CHAT_COR = '0195f3a2-0000-7000-8000-00000000c002';

export const REPORT = [
  '# code-review: what could break in the cache?',
  '',
  '## Answer',
  '',
  'The cache keeps stale entries after a failed write (`src/cache.rs:41`).',
  '',
  '## Verified findings',
  '',
  '### high — Stale entry after failed write',
  '',
  '`src/cache.rs:41` — the entry is inserted before the write succeeds.',
  '',
  '## Roster',
  '',
  '| step | agent | status |',
  '| --- | --- | --- |',
  '| security | adversarial-security-analyst | completed |',
].join('\n');

export function runStarted(): Notification {
  return {
    method: 'boo/runStarted',
    params: {
      runId: RUN_ID,
      flow: 'code-review',
      band: 'small',
      question: 'what could break in the cache?',
      root: ROOT,
      status: 'running',
      steps: [
        { stepId: 'report', agent: null, kind: 'code', label: 'Render the report', wave: 3, chatId: null, status: 'pending' },
        { stepId: 'diff', agent: null, kind: 'code', label: 'Collect the diff', wave: 0, chatId: null, status: 'pending' },
        { stepId: 'security', agent: 'adversarial-security-analyst', kind: 'agent', label: 'Security review', wave: 1, chatId: CHAT_SEC, status: 'pending' },
        { stepId: 'correctness', agent: 'edge-case-explorer', kind: 'agent', label: 'Correctness review', wave: 1, chatId: CHAT_COR, status: 'pending' },
        { stepId: 'verify', agent: null, kind: 'code', label: 'Verify evidence', wave: 2, chatId: null, status: 'pending' },
      ],
      // PROTOCOL.md's fields only: boo's additions (title, createdAt, resumed) are left
      // out on purpose, to show the reducer copes without them.
    } as RunStartedParams,
  };
}

export function step(stepId: string, status: string, extra: Record<string, unknown> = {}): Notification {
  return { method: 'boo/stepUpdated', params: { runId: RUN_ID, stepId, status, ...extra } as never };
}

export function stream(stepId: string, chatId: string, seq: number, events: StreamEvent[]): Notification {
  return { method: 'boo/agentStream', params: { runId: RUN_ID, stepId, chatId, seq, events } };
}

export const SEC_EVENTS: StreamEvent[][] = [
  [{ type: 'thinking', text: 'Look at the cache ' }, { type: 'thinking', text: 'write path first.' }],
  [{ type: 'toolCall', toolCallId: 't1', name: 'glob', input: { pattern: 'src/**/*.rs' } }],
  [{ type: 'toolResult', toolCallId: 't1', isError: false, content: 'src/cache.rs\nsrc/main.rs' }],
  [{ type: 'text', text: 'The entry is inserted ' }, { type: 'text', text: 'before the write succeeds.' }],
  [{ type: 'messageComplete', usage: { inputTokens: 1000, outputTokens: 200, cacheReadTokens: 600, totalTokens: 1200, cacheHitRate: 0.6 }, turn: 1 }],
];

/** The whole run in protocol order, both agents interleaved. */
export function fullRun(): Notification[] {
  const t = (s: number) => `2026-11-20T23:07:${String(s).padStart(2, '0')}.000Z`;
  return [
    runStarted(),
    step('diff', 'running', { startedAt: t(0) }),
    step('diff', 'completed', { startedAt: t(0), finishedAt: t(1) }),
    step('security', 'running', { startedAt: t(1), chatId: CHAT_SEC }),
    step('correctness', 'running', { startedAt: t(1), chatId: CHAT_COR }),
    stream('security', CHAT_SEC, 1, SEC_EVENTS[0]),
    stream('correctness', CHAT_COR, 1, [{ type: 'text', text: 'Checking eviction.' }]),
    stream('security', CHAT_SEC, 2, SEC_EVENTS[1]),
    stream('security', CHAT_SEC, 3, SEC_EVENTS[2]),
    stream('security', CHAT_SEC, 4, SEC_EVENTS[3]),
    stream('security', CHAT_SEC, 5, SEC_EVENTS[4]),
    step('security', 'completed', {
      startedAt: t(1),
      finishedAt: t(9),
      usage: { inputTokens: 1000, outputTokens: 200, cacheReadTokens: 600, totalTokens: 1200 },
      output: 'The entry is inserted before the write succeeds.',
    }),
    stream('correctness', CHAT_COR, 2, [{ type: 'messageComplete', usage: { inputTokens: 500, outputTokens: 50, cacheReadTokens: 0, totalTokens: 550, cacheHitRate: 0 }, turn: 1 }]),
    step('correctness', 'completed', { startedAt: t(1), finishedAt: t(10), usage: { inputTokens: 500, outputTokens: 50, cacheReadTokens: 0, totalTokens: 550 } }),
    step('verify', 'running', { startedAt: t(10) }),
    step('verify', 'completed', { startedAt: t(10), finishedAt: t(11) }),
    step('report', 'running', { startedAt: t(11) }),
    step('report', 'completed', { startedAt: t(11), finishedAt: t(12), runStatus: 'completed', report: REPORT }),
  ];
}

const NO_USAGE = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, totalTokens: 0, cacheHitRate: null };

/** What boo/getRun {transcript: true} answers after the security agent's first `upTo` chunks. */
export function getRunSnapshot(upTo: number, status: 'running' | 'completed' = 'running'): GetRunResult {
  const started = runStarted();
  if (started.method !== 'boo/runStarted') throw new Error('unreachable');
  const events = SEC_EVENTS.slice(0, upTo).flat();
  return {
    run: {
      runId: RUN_ID,
      flow: 'code-review',
      band: 'small',
      status,
      question: 'what could break in the cache?',
      root: ROOT,
      createdAt: '2026-11-20T23:07:00.000Z',
      finishedAt: status === 'completed' ? '2026-11-20T23:07:12.000Z' : null,
      model: 'qwen3-coder',
      error: null,
      usage: NO_USAGE,
      fast: false,
      title: 'Code review',
      kind: 'flow',
      attachments: [],
    },
    steps: started.params.steps.map((s) => ({
      ...s,
      status: s.stepId === 'diff' ? 'completed' : s.stepId === 'security' || s.stepId === 'correctness' ? 'running' : 'pending',
      output: null,
      error: null,
      startedAt: null,
      finishedAt: null,
      parentStepId: null,
      phase: null,
      usage: NO_USAGE,
      attempt: 1,
      transcript: s.stepId === 'security' ? events : [],
      lastSeq: s.stepId === 'security' ? upTo : 0,
      turns: [],
    })),
    report: status === 'completed' ? REPORT : null,
  };
}
