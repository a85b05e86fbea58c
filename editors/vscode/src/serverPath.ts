// Finding the boo binary from the `boo.serverPath` setting (no vscode import: unit-tested).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type Resolved = { ok: true; path: string } | { ok: false; reason: string };

function isExecutableFile(p: string): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves the server command. A value with a slash is a path (`~` expands, relative
 * paths resolve against the first workspace folder); a bare name is looked up on PATH.
 */
export function resolveServerPath(setting: string | undefined, envPath: string | undefined, workspaceDir: string | undefined): Resolved {
  const value = (setting ?? '').trim() || 'boo';
  if (value.includes('/') || value.includes(path.sep)) {
    let p = value.startsWith('~/') ? path.join(os.homedir(), value.slice(2)) : value;
    if (!path.isAbsolute(p)) p = path.resolve(workspaceDir ?? process.cwd(), p);
    if (isExecutableFile(p)) return { ok: true, path: p };
    if (fs.existsSync(p)) return { ok: false, reason: `${p} exists but is not an executable file.` };
    return { ok: false, reason: `${p} does not exist.` };
  }
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, value);
    if (isExecutableFile(candidate)) return { ok: true, path: candidate };
  }
  return { ok: false, reason: `"${value}" was not found on PATH.` };
}

/** Where the server binary came from. */
export type ServerSource = 'setting' | 'bundled' | 'path';

export type ResolvedServer = { ok: true; path: string; source: ServerSource } | { ok: false; reason: string; source: ServerSource };

/** Where a platform-specific package carries the server, relative to the extension. */
export const BUNDLED_SERVER = 'server/boo';

/**
 * The server to start: `boo.serverPath` when it is set, else the binary bundled in the
 * extension (platform packages carry one), else `boo` on PATH.
 */
export function resolveServer(setting: string | undefined, envPath: string | undefined, workspaceDir: string | undefined, extensionDir: string | undefined): ResolvedServer {
  const value = (setting ?? '').trim();
  if (value) return { ...resolveServerPath(value, envPath, workspaceDir), source: 'setting' };
  if (extensionDir) {
    const bundled = path.join(extensionDir, BUNDLED_SERVER);
    if (isExecutableFile(bundled)) return { ok: true, path: bundled, source: 'bundled' };
  }
  const onPath = resolveServerPath('boo', envPath, workspaceDir);
  if (onPath.ok) return { ...onPath, source: 'path' };
  return { ok: false, source: 'path', reason: `this extension carries no server for ${process.platform}-${process.arch} and "boo" was not found on PATH.` };
}

/** One line for people: which server runs, from where. */
export function describeServer(info: { path: string; source: ServerSource; version?: string }): string {
  const from = info.source === 'bundled' ? 'bundled with the extension' : info.source === 'setting' ? 'from boo.serverPath' : 'found on PATH';
  return `boo ${info.version ?? '(version unknown)'} — ${from}: ${info.path}`;
}

/** The message shown when the binary is missing, with the way to fix it. */
export function missingServerMessage(reason: string): string {
  return (
    `boo: the server binary could not be started — ${reason} ` +
    'Set "boo.serverPath" to the boo executable (build it with `cargo build --release` in the boo repository, ' +
    'or put `boo` on PATH), or install the platform-specific boo extension package, which carries the server.'
  );
}
