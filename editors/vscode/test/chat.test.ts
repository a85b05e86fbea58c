import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createFlowChatHandler, ChatDeps, OPEN_RUN_COMMAND } from '../src/chat';
import type { LaunchParams } from '../src/client';
import type { GetRunResult, Notification } from '../src/protocol';
import { RunStore } from '../src/runStore';
import { RUN_ID, ROOT, fullRun, getRunSnapshot } from './synthetic';

/** Records what the handler writes into the chat response. */
class FakeStream {
  parts: { kind: 'markdown' | 'progress' | 'button'; value: unknown }[] = [];
  markdown(v: unknown) {
    this.parts.push({ kind: 'markdown', value: v });
  }
  progress(v: string) {
    this.parts.push({ kind: 'progress', value: v });
  }
  button(v: unknown) {
    this.parts.push({ kind: 'button', value: v });
  }
  text(): string {
    return this.parts
      .filter((p) => p.kind === 'markdown')
      .map((p) => (typeof p.value === 'string' ? p.value : (p.value as { value: string }).value))
      .join('');
  }
  progresses(): string[] {
    return this.parts.filter((p) => p.kind === 'progress').map((p) => p.value as string);
  }
}

class FakeToken {
  isCancellationRequested = false;
  private listeners: ((e: unknown) => unknown)[] = [];
  onCancellationRequested = (l: (e: unknown) => unknown) => {
    this.listeners.push(l);
    return { dispose: () => (this.listeners = this.listeners.filter((x) => x !== l)) };
  };
  cancel() {
    this.isCancellationRequested = true;
    for (const l of this.listeners) l(undefined);
  }
}

interface Harness {
  deps: ChatDeps;
  store: RunStore;
  launched: LaunchParams[];
  cancelled: string[];
  getRuns: number;
  trusted: { value: string; commands: string[] }[];
}

function harness(opts: { launchError?: Error; snapshot?: GetRunResult; feed?: (store: RunStore) => void } = {}): Harness {
  const h: Harness = { launched: [], cancelled: [], getRuns: 0, trusted: [] } as unknown as Harness;
  h.store = new RunStore({
    getRun: async () => {
      h.getRuns++;
      return opts.snapshot ?? getRunSnapshot(0);
    },
  });
  h.deps = {
    launch: async (p) => {
      h.launched.push(p);
      if (opts.launchError) throw opts.launchError;
      // Like the server: runStarted may come before the launch answer; the rest after.
      setTimeout(() => opts.feed?.(h.store), 5);
      return { runId: RUN_ID };
    },
    launchWorkflow: async () => assert.fail('no workflow launched by /flow'),
    watch: (runId, l, e) => h.store.watch(runId, l, e),
    cancel: async (runId) => {
      h.cancelled.push(runId);
      return { runId, status: 'cancelled' };
    },
    flowName: () => 'code-review',
    root: () => ROOT,
    model: () => undefined,
    trustedMarkdown: (value, commands) => {
      h.trusted.push({ value, commands });
      return { value, isTrusted: { enabledCommands: commands } } as never;
    },
    errorMessage: (err) => (err instanceof Error ? err.message : String(err)),
    now: () => Date.parse('2026-11-20T23:08:00.000Z'),
  };
  return h;
}

const feedAll = (notifications: Notification[]) => (store: RunStore) => {
  for (const x of notifications) store.handle(x);
};

test('/flow launches at once with the defaults and streams the run into the chat', async () => {
  const h = harness({ feed: feedAll(fullRun()) });
  const stream = new FakeStream();
  const handler = createFlowChatHandler(h.deps);
  const result = await handler({ prompt: '  what could break in the cache?  ', command: 'flow' }, {}, stream as never, new FakeToken());
  assert.deepEqual(h.launched, [{ flow: 'code-review', band: 'small', input: { question: 'what could break in the cache?' }, root: ROOT }]);
  assert.deepEqual(result.metadata, { runId: RUN_ID, status: 'completed', command: 'flow' });
  const text = stream.text();
  // A command link to the pane, trusted for that one command only.
  assert.ok(h.trusted.length >= 1);
  assert.ok(h.trusted.every((t) => t.commands.length === 1 && t.commands[0] === OPEN_RUN_COMMAND));
  assert.match(text, new RegExp(`\\(command:${OPEN_RUN_COMMAND}\\?${encodeURIComponent(JSON.stringify([RUN_ID])).replace(/[%[\]]/g, '\\$&')}\\)`));
  assert.match(text, /Roster: `adversarial-security-analyst`, `edge-case-explorer` \(5 steps in 4 waves\)/);
  assert.match(text, /✓ Security review · adversarial-security-analyst · 8s/);
  assert.match(text, /\*\*Completed\*\*/);
  assert.match(text, /The cache keeps stale entries after a failed write/, 'ends with the report summary');
  assert.doesNotMatch(text, /## Roster/, 'only the summary, not the whole report');
  assert.ok(stream.progresses().some((p) => /Security review \(adversarial-security-analyst\) is running/.test(p)));
  const button = stream.parts.find((p) => p.kind === 'button')?.value as { command: string; arguments: unknown[] };
  assert.deepEqual(button, { command: OPEN_RUN_COMMAND, title: 'Open Orchestrator', arguments: [RUN_ID] });
});

test('/flow on a run that finished before the handler watched it still reports it', async () => {
  const h = harness({ snapshot: getRunSnapshot(5, 'completed') });
  const stream = new FakeStream();
  const result = await createFlowChatHandler(h.deps)({ prompt: 'q', command: 'flow' }, {}, stream as never, new FakeToken());
  assert.equal(result.metadata?.status, 'completed');
  assert.equal(h.getRuns, 1, 'the handler fetched the run it had not seen');
  assert.match(stream.text(), /stale entries/);
});

test('stopping the chat request cancels the run', async () => {
  const h = harness({ feed: feedAll(fullRun().slice(0, 6)) });
  const stream = new FakeStream();
  const token = new FakeToken();
  const pending = createFlowChatHandler(h.deps)({ prompt: 'q', command: 'flow' }, {}, stream as never, token);
  await new Promise((r) => setTimeout(r, 30));
  token.cancel();
  const result = await pending;
  assert.deepEqual(h.cancelled, [RUN_ID]);
  assert.equal(result.metadata?.status, 'cancelled');
  assert.match(stream.text(), /Cancelled the run/);
});

test('a launch error is shown with the server message and reported as an error', async () => {
  const h = harness({ launchError: new Error('qwen not found: looked for "qwen" on PATH; set BOO_QWEN') });
  const stream = new FakeStream();
  const result = await createFlowChatHandler(h.deps)({ prompt: 'q', command: 'flow' }, {}, stream as never, new FakeToken());
  assert.equal(result.errorDetails?.message, 'qwen not found: looked for "qwen" on PATH; set BOO_QWEN');
  assert.match(stream.text(), /could not launch `code-review`/);
});

test('without /flow or without a focus the participant explains itself and launches nothing', async () => {
  for (const req of [
    { prompt: 'hello', command: undefined },
    { prompt: '   ', command: 'flow' },
  ]) {
    const h = harness();
    const stream = new FakeStream();
    await createFlowChatHandler(h.deps)(req, {}, stream as never, new FakeToken());
    assert.equal(h.launched.length, 0);
    assert.match(stream.text(), /@boo \/flow/);
  }
});

test('a failed run ends with its error', async () => {
  const failed: Notification[] = [fullRun()[0], { method: 'boo/stepUpdated', params: { runId: RUN_ID, stepId: 'security', status: 'failed', runStatus: 'failed', error: 'agent timed out after 600 s' } }];
  const h = harness({ feed: feedAll(failed) });
  const stream = new FakeStream();
  const result = await createFlowChatHandler(h.deps)({ prompt: 'q', command: 'flow' }, {}, stream as never, new FakeToken());
  assert.equal(result.metadata?.status, 'failed');
  assert.match(stream.text(), /✗ Security review · adversarial-security-analyst — agent timed out after 600 s/);
  assert.match(stream.text(), /\*\*Error:\*\* agent timed out after 600 s/);
});

test('/flow sends the images among the references (and visionModel with the setting), and says so', async () => {
  const h = harness({ feed: feedAll(fullRun()) });
  const seen: unknown[][] = [];
  const withImagesRun: string[] = [];
  h.deps.images = async (refs) => {
    seen.push([...refs]);
    return { images: [{ path: 'docs/layout.png' }], errors: [] };
  };
  h.deps.vision = () => true;
  h.deps.onImages = (runId) => withImagesRun.push(runId);
  const stream = new FakeStream();
  const refs = [{ id: 'file', value: 'docs/layout.png' }];
  await createFlowChatHandler(h.deps)({ prompt: 'why does the sidebar overlap?', command: 'flow', references: refs }, {}, stream as never, new FakeToken());
  assert.deepEqual(seen, [refs]);
  assert.deepEqual(h.launched[0].attachments, [{ path: 'docs/layout.png' }]);
  assert.equal(h.launched[0].visionModel, true);
  assert.deepEqual(withImagesRun, [RUN_ID]);
  assert.match(stream.text(), /with 1 image —/);
});

test('/flow with a refused image reference launches nothing and says why', async () => {
  const h = harness();
  h.deps.images = async () => ({ images: [], errors: ['notes.bmp is not a PNG, JPEG, GIF or WebP image (.bmp): boo attaches only those.'] });
  const stream = new FakeStream();
  const result = await createFlowChatHandler(h.deps)({ prompt: 'look', command: 'flow', references: [{ id: 'x', value: 'notes.bmp' }] }, {}, stream as never, new FakeToken());
  assert.equal(h.launched.length, 0);
  assert.equal(result.metadata?.status, 'not-launched');
  assert.match(stream.text(), /did not launch.*notes\.bmp is not a PNG/);
});

test('/flow without references sends no attachments and no visionModel', async () => {
  const h = harness({ feed: feedAll(fullRun()) });
  h.deps.images = async () => assert.fail('no references to read');
  h.deps.vision = () => true;
  await createFlowChatHandler(h.deps)({ prompt: 'q', command: 'flow' }, {}, new FakeStream() as never, new FakeToken());
  assert.equal(h.launched[0].attachments, undefined);
  assert.equal(h.launched[0].visionModel, undefined);
});
