import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUNDLED_SERVER, describeServer, missingServerMessage, resolveServer, resolveServerPath } from '../src/serverPath';

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

test('resolveServer: the setting wins, then the bundled server, then PATH', () => {
  const ext = fs.mkdtempSync(path.join(os.tmpdir(), 'boo-ext-'));
  const onPath = fs.mkdtempSync(path.join(os.tmpdir(), 'boo-path-'));
  process.on('exit', () => {
    fs.rmSync(ext, { recursive: true, force: true });
    fs.rmSync(onPath, { recursive: true, force: true });
  });
  const pathBoo = path.join(onPath, 'boo');
  fs.writeFileSync(pathBoo, '#!/bin/sh\n');
  fs.chmodSync(pathBoo, 0o755);
  // No bundled server: PATH.
  assert.deepEqual(resolveServer('', onPath, undefined, ext), { ok: true, path: pathBoo, source: 'path' });
  const bundled = path.join(ext, BUNDLED_SERVER);
  fs.mkdirSync(path.dirname(bundled), { recursive: true });
  fs.writeFileSync(bundled, '#!/bin/sh\n');
  fs.chmodSync(bundled, 0o755);
  assert.deepEqual(resolveServer(undefined, onPath, undefined, ext), { ok: true, path: bundled, source: 'bundled' }, 'bundled before PATH');
  assert.deepEqual(resolveServer('  ', onPath, undefined, ext), { ok: true, path: bundled, source: 'bundled' }, 'blank means automatic');
  assert.deepEqual(resolveServer(exe, onPath, undefined, ext), { ok: true, path: exe, source: 'setting' }, 'boo.serverPath wins');
  assert.deepEqual(resolveServer('boo', onPath, undefined, ext), { ok: true, path: pathBoo, source: 'setting' }, 'an explicit bare name is looked up on PATH');
  const missing = resolveServer(path.join(ext, 'nope'), onPath, undefined, ext);
  assert.equal(missing.ok, false, 'a wrong setting is reported, not replaced by the bundled server');
  fs.chmodSync(bundled, 0o644);
  const none = resolveServer('', '/nonexistent', undefined, ext);
  assert.equal(none.ok, false);
  assert.match(!none.ok ? none.reason : '', /carries no server .* "boo" was not found on PATH/);
  assert.equal(describeServer({ path: bundled, source: 'bundled', version: '0.1.0' }), `boo 0.1.0 — bundled with the extension: ${bundled}`);
  assert.match(describeServer({ path: pathBoo, source: 'path' }), /version unknown\) — found on PATH/);
});
