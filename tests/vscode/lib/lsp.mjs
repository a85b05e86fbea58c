// A minimal LSP client over stdio (Content-Length framing), to record what the real
// boo server sends and to prepare end-to-end fixtures.

import { spawn } from 'node:child_process';

export class LspProcess {
  constructor(command, args, options) {
    this.proc = spawn(command, args, { ...options, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.nextId = 1;
    this.pending = new Map();
    this.notifications = [];
    this.listeners = new Set();
    this.stderr = '';
    this.buf = Buffer.alloc(0);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    this.proc.stdout.on('data', (d) => this.onData(d));
    this.proc.stderr.on('data', (d) => {
      this.stderr += d.toString();
      if (this.stderr.length > 200_000) this.stderr = this.stderr.slice(-100_000);
    });
  }

  onData(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const headerEnd = this.buf.indexOf('\r\n\r\n');
      if (headerEnd < 0) return;
      const header = this.buf.subarray(0, headerEnd).toString('ascii');
      const m = /Content-Length: *(\d+)/i.exec(header);
      if (!m) throw new Error(`bad header from server: ${header}`);
      const len = Number(m[1]);
      if (this.buf.length < headerEnd + 4 + len) return;
      const body = this.buf.subarray(headerEnd + 4, headerEnd + 4 + len).toString('utf8');
      this.buf = this.buf.subarray(headerEnd + 4 + len);
      this.onMessage(JSON.parse(body));
    }
  }

  onMessage(msg) {
    if (msg.id !== undefined && (msg.result !== undefined || msg.error !== undefined) && msg.method === undefined) {
      const p = this.pending.get(msg.id);
      if (p) {
        this.pending.delete(msg.id);
        if (msg.error) p.reject(Object.assign(new Error(msg.error.message), { code: msg.error.code, data: msg.error.data }));
        else p.resolve(msg.result);
      }
      return;
    }
    if (msg.id !== undefined && msg.method) {
      // Server → client request (e.g. window/workDoneProgress/create): answer null.
      this.write({ jsonrpc: '2.0', id: msg.id, result: null });
      this.notifications.push({ method: msg.method, params: msg.params, request: true });
      return;
    }
    this.notifications.push({ method: msg.method, params: msg.params });
    for (const l of this.listeners) l(msg);
  }

  write(msg) {
    const body = Buffer.from(JSON.stringify(msg), 'utf8');
    this.proc.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
    this.proc.stdin.write(body);
  }

  request(method, params, timeoutMs = 30_000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(t), resolve(v)),
        reject: (e) => (clearTimeout(t), reject(e)),
      });
      this.write({ jsonrpc: '2.0', id, method, params });
    });
  }

  notify(method, params) {
    this.write({ jsonrpc: '2.0', method, params });
  }

  /** Resolves when a notification matching `pred` has arrived (already or later). */
  waitFor(pred, timeoutMs, what = 'notification') {
    const found = this.notifications.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.listeners.delete(l);
        reject(new Error(`timeout after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const l = (msg) => {
        if (pred(msg)) {
          clearTimeout(t);
          this.listeners.delete(l);
          resolve(msg);
        }
      };
      this.listeners.add(l);
    });
  }

  async shutdown(timeoutMs = 5000) {
    try {
      await this.request('shutdown', null, timeoutMs);
      this.notify('exit', null);
    } catch {
      /* fall through to kill */
    }
    const done = await Promise.race([this.exited, new Promise((r) => setTimeout(() => r(null), timeoutMs))]);
    if (!done) this.kill();
    return done;
  }

  kill() {
    try {
      process.kill(-this.proc.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export function initializeParams(root, initializationOptions = {}) {
  return {
    processId: process.pid,
    clientInfo: { name: 'boo-vscode-tests' },
    rootUri: `file://${root}`,
    workspaceFolders: [{ uri: `file://${root}`, name: 'project' }],
    capabilities: { window: { workDoneProgress: true }, textDocument: { publishDiagnostics: {} } },
    initializationOptions,
  };
}
