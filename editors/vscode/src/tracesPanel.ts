// The Traces view of one run: boo/getRun for the steps' usage, boo/getTraces (all pages) for tool calls.

import * as vscode from 'vscode';
import type { BooClient } from './client';
import { errorMessage } from './client';
import type { FromTraces, ToTraces } from './messages';
import type { Trace } from './protocol';
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

export class TracesPanels implements vscode.Disposable {
  private readonly panels = new Map<string, vscode.WebviewPanel>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly client: BooClient,
  ) {}

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
    });
    p.onDidDispose(() => {
      if (this.panels.get(runId) === p) this.panels.delete(runId);
    });
    this.panels.set(runId, p);
  }

  private async load(runId: string, p: vscode.WebviewPanel): Promise<void> {
    let msg: ToTraces;
    try {
      const [run, traces] = await Promise.all([this.client.getRun(runId, false), fetchAllTraces(this.client, runId)]);
      p.title = `boo traces: ${run.run.flow}`;
      msg = { type: 'traces', run, traces };
    } catch (err) {
      msg = { type: 'error', message: `Could not load traces: ${errorMessage(err)}` };
    }
    void p.webview.postMessage(msg);
  }

  dispose(): void {
    for (const p of this.panels.values()) p.dispose();
  }
}
