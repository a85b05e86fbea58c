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

/** The message shown when the binary is missing, with the way to fix it. */
export function missingServerMessage(reason: string): string {
  return (
    `boo: the server binary could not be started — ${reason} ` +
    'Set "boo.serverPath" to the boo executable (build it with `cargo build --release` in the boo repository, ' +
    'or put `boo` on PATH).'
  );
}
