import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { missingServerMessage, resolveServerPath } from '../src/serverPath';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boo-serverpath-'));
const exe = path.join(dir, 'boo');
fs.writeFileSync(exe, '#!/bin/sh\n');
fs.chmodSync(exe, 0o755);
const plain = path.join(dir, 'plain');
fs.writeFileSync(plain, '');
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

test('a bare name is looked up on PATH', () => {
  assert.deepEqual(resolveServerPath('boo', `/nonexistent${path.delimiter}${dir}`, undefined), { ok: true, path: exe });
  assert.deepEqual(resolveServerPath('', dir, undefined), { ok: true, path: exe }, 'empty means boo');
  const r = resolveServerPath('boo', '/nonexistent', undefined);
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : '', /"boo" was not found on PATH/);
});

test('paths: absolute, relative to the workspace, missing, not executable', () => {
  assert.deepEqual(resolveServerPath(exe, '', undefined), { ok: true, path: exe });
  assert.deepEqual(resolveServerPath('./boo', '', dir), { ok: true, path: exe });
  const missing = resolveServerPath(path.join(dir, 'nope'), '', undefined);
  assert.equal(missing.ok, false);
  assert.match(!missing.ok ? missing.reason : '', /does not exist/);
  const notExe = resolveServerPath(plain, '', undefined);
  assert.match(!notExe.ok ? notExe.reason : '', /not an executable file/);
  assert.match(missingServerMessage('x.'), /Set "boo.serverPath"/);
});
