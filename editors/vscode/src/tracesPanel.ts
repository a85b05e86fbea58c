// The Traces view of one run: boo/getRun for the steps' usage, boo/getTraces (all pages) for
// tool calls, boo/getModelCalls (all pages) for the cache shape of every model turn, then
// live boo/modelCall notifications of that run while the view is open.

import * as vscode from 'vscode';
import type { BooClient } from './client';
import { errorCode, errorMessage } from './client';
import type { FromTraces, ToTraces } from './messages';
import type { ModelCall, Trace } from './protocol';

/** JSON-RPC "method not found": a server without the "modelCalls" feature. */
const METHOD_NOT_FOUND = -32601;
import { iconPath, renderWebview, webviewOptions } from './webviewUtil';

export const TRACES_VIEW_TYPE = 'boo.traces';

export async function fetchAllTraces(client: Pick<BooClient, 'getTraces'>, runId: string, maxPages = 50): Promise<Trace[]> {
  const all: Trace[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const res = await client.getTraces({ runId, cursor, limit: 500 });
    all.push(...(res.traces ?? []));
    if (!res.nextCursor) break;
    cursor = res.nextCursor;
  }
  return all;
}

/**
 * Every model call of a run (follows nextCursor). `note` says why there are none to show
 * when the server does not record them (no "modelCalls" feature: method not found).
 */
export async function fetchAllModelCalls(client: Pick<BooClient, 'getModelCalls'>, runId: string, maxPages = 50): Promise<{ calls: ModelCall[] | null; note: string | null }> {
  const all: ModelCall[] = [];
  let cursor: string | undefined;
  try {
    for (let page = 0; page < maxPages; page++) {
      const res = await client.getModelCalls({ runId, cursor, limit: 500 });
      all.push(...(res.calls ?? []));
      if (!res.nextCursor) break;
      cursor = res.nextCursor;
    }
  } catch (err) {
    if (errorCode(err) === METHOD_NOT_FOUND) return { calls: null, note: 'This boo server does not record model calls (it has no model proxy): update boo to see the cache shape of each turn.' };
    throw err;
  }
  return { calls: all, note: null };
}

export class TracesPanels implements vscode.Disposable {
  private readonly panels = new Map<string, vscode.WebviewPanel>();
  private readonly sub: vscode.Disposable;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly client: BooClient,
    /** Opens the run timeline (the view's Timeline button). */
    private readonly openTimeline: (runId: string) => void = () => undefined,
  ) {
    // Live model calls of the runs whose view is open.
    this.sub = client.onNotification((n) => {
      if (n.method !== 'boo/modelCall') return;
      const p = this.panels.get(n.params.runId);
      if (p) void p.webview.postMessage({ type: 'modelCall', call: n.params } satisfies ToTraces);
    });
  }

  open(runId: string, panel?: vscode.WebviewPanel): void {
    const existing = this.panels.get(runId);
    if (existing && !panel) {
      existing.reveal();
      void this.load(runId, existing);
      return;
    }
    const p =
      panel ??
      vscode.window.createWebviewPanel(TRACES_VIEW_TYPE, 'boo: traces', { viewColumn: vscode.ViewColumn.Active, preserveFocus: false }, { ...webviewOptions(this.extensionUri), retainContextWhenHidden: true });
    p.iconPath = iconPath(this.extensionUri);
    p.webview.options = webviewOptions(this.extensionUri);
    p.webview.html = renderWebview(p.webview, this.extensionUri, 'traces', 'boo traces');
    p.webview.onDidReceiveMessage((m: FromTraces) => {
      if (m?.type === 'ready' || m?.type === 'refresh') void this.load(runId, p);
      else if (m?.type === 'timeline') this.openTimeline(runId);
    });
    p.onDidDispose(() => {
      if (this.panels.get(runId) === p) this.panels.delete(runId);
    });
    this.panels.set(runId, p);
  }

  private async load(runId: string, p: vscode.WebviewPanel): Promise<void> {
    let msg: ToTraces;
    try {
      const [run, traces, calls] = await Promise.all([this.client.getRun(runId, false), fetchAllTraces(this.client, runId), fetchAllModelCalls(this.client, runId)]);
      p.title = `boo traces: ${run.run.flow}`;
      msg = { type: 'traces', run, traces, calls: calls.calls, callsNote: calls.note };
    } catch (err) {
      msg = { type: 'error', message: `Could not load traces: ${errorMessage(err)}` };
    }
    void p.webview.postMessage(msg);
  }

  dispose(): void {
    this.sub.dispose();
    for (const p of this.panels.values()) p.dispose();
  }
}
