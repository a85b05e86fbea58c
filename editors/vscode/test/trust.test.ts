import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUntrusted, launchOrOfferTrust, projectFlowMark } from '../src/trust';
import type { LaunchFlowParams } from '../src/protocol';

const params: LaunchFlowParams = { flow: 'solo', input: { question: 'q' }, root: '/p' };
const refusal = Object.assign(new Error('flow "solo" ... boo trust /p'), { code: -32005 });

function fakeServer() {
  const calls: string[] = [];
  let trusted = false;
  return {
    calls,
    launchFlow: async () => {
      calls.push('launch');
      if (!trusted) throw refusal;
      return { runId: 'r1' };
    },
    trustRoot: async (root: string, t: boolean) => {
      calls.push(`trust ${root} ${t}`);
      trusted = t;
      return { root, trusted: t };
    },
  };
}

test('an untrusted project flow asks, trusts the folder and launches again', async () => {
  const s = fakeServer();
  const asked: string[] = [];
  const got = await launchOrOfferTrust(s, params, async (m) => (asked.push(m), true));
  assert.deepEqual(got, { runId: 'r1' });
  assert.deepEqual(s.calls, ['launch', 'trust /p true', 'launch']);
  assert.equal(asked.length, 1);
  assert.match(asked[0], /not trusted/);
});

test('declining the prompt trusts nothing and rethrows the refusal', async () => {
  const s = fakeServer();
  await assert.rejects(launchOrOfferTrust(s, params, async () => false), (e) => e === refusal);
  assert.deepEqual(s.calls, ['launch']);
});

test('other errors are not a trust question', async () => {
  const other = Object.assign(new Error('bad band'), { code: -32602 });
  const s = { launchFlow: async () => { throw other; }, trustRoot: async () => assert.fail('no trust') };
  let asked = false;
  await assert.rejects(launchOrOfferTrust(s, params, async () => (asked = true)), (e) => e === other);
  assert.equal(asked, false);
  assert.equal(isUntrusted(refusal), true);
  assert.equal(isUntrusted(other), false);
});

test('the launcher marks project flows, and untrusted ones as such', () => {
  assert.equal(projectFlowMark({ source: 'builtin' }, false), null);
  assert.equal(projectFlowMark({ source: 'project' }, false), 'project, untrusted');
  assert.equal(projectFlowMark({ source: 'project' }, true), 'project');
});
