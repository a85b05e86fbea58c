// The run timeline (a webview per run) and the restored panes it opens.
//
// Data: boo/getRun (steps), boo/getTraces and boo/getModelCalls (all pages) when it opens,
// then the run's live boo/modelCall and boo/trace notifications; a step or run status
// change reloads it (debounced). A click on a block asks the Orchestrator pane to scroll
// that step's stream to the turn. "Restore" rebuilds the pane as it was when a turn ended:
// boo/getRun {transcript: true}, every step's stored transcript cut at that moment
// (src/timeline.ts runAtTurn), reduced by the pane's own reducer and shown in a pane
// webview of its own that nothing else feeds (read-only: its menu does nothing).

import * as vscode from 'vscode';
import type { BooClient } from './client';
import { errorMessage } from './client';
import type { FromPane, FromTimeline, ToPane, ToTimeline } from './messages';
import { emptyState, reduce } from './state';
import { runAtTurn } from './timeline';
import { fetchAllModelCalls, fetchAllTraces } from './tracesPanel';
import { formatOffset } from './timeline';
import { iconPath, renderWebview, webviewOptions } from './webviewUtil';

export const TIMELINE_VIEW_TYPE = 'boo.timeline';
const RESTORED_VIEW_TYPE = 'boo.restoredPane';

export interface TimelineHost {
  /** Opens the run's pane and scrolls the step's stream to the turn. */
  reveal(runId: string, stepId: string, turn: number | null): void;
}

export class TimelinePanels implements vscode.Disposable {
  private readonly panels = new Map<string, vscode.WebviewPanel>();
  private readonly reloads = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly sub: vscode.Disposable;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly client: BooClient,
    private readonly host: TimelineHost,
  ) {
    this.sub = client.onNotification((n) => {
      const p = this.panels.get(n.params.runId);
      if (!p) return;
      if (n.method === 'boo/modelCall') void p.webview.postMessage({ type: 'modelCall', call: n.params } satisfies ToTimeline);
      else if (n.method === 'boo/trace') void p.webview.postMessage({ type: 'trace', trace: n.params } satisfies ToTimeline);
      else if (n.method === 'boo/stepUpdated' || n.method === 'boo/stepAdded') this.reloadSoon(n.params.runId, p);
    });
  }

  open(runId: string, panel?: vscode.WebviewPanel): void {
    const existing = this.panels.get(runId);
    if (existing && !panel) {
      existing.reveal();
      void this.load(runId, existing);
      return;
    }
    const p = panel ?? vscode.window.createWebviewPanel(TIMELINE_VIEW_TYPE, 'boo: timeline', { viewColumn: vscode.ViewColumn.Active, preserveFocus: false }, { ...webviewOptions(this.extensionUri), retainContextWhenHidden: true });
    p.iconPath = iconPath(this.extensionUri);
    p.webview.options = webviewOptions(this.extensionUri);
    p.webview.html = renderWebview(p.webview, this.extensionUri, 'timeline', 'boo timeline');
    p.webview.onDidReceiveMessage((m: FromTimeline) => {
      if (m?.type === 'ready' || m?.type === 'refresh') void this.load(runId, p);
      else if (m?.type === 'reveal') this.host.reveal(runId, m.stepId, m.turn);
      else if (m?.type === 'restore') void this.restore(runId, m.stepId, m.turn);
    });
    p.onDidDispose(() => {
      if (this.panels.get(runId) === p) this.panels.delete(runId);
    });
    this.panels.set(runId, p);
  }

  private reloadSoon(runId: string, p: vscode.WebviewPanel): void {
    if (this.reloads.has(runId)) return;
    this.reloads.set(
      runId,
      setTimeout(() => {
        this.reloads.delete(runId);
        if (this.panels.get(runId) === p) void this.load(runId, p);
      }, 500),
    );
  }

  private async load(runId: string, p: vscode.WebviewPanel): Promise<void> {
    let msg: ToTimeline;
    try {
      const [run, traces, calls] = await Promise.all([this.client.getRun(runId, false), fetchAllTraces(this.client, runId), fetchAllModelCalls(this.client, runId)]);
      p.title = `boo timeline: ${run.run.flow}`;
      msg = { type: 'timeline', run, traces, calls: calls.calls ?? [], callsNote: calls.note };
    } catch (err) {
      msg = { type: 'error', message: `Could not load the timeline: ${errorMessage(err)}` };
    }
    void p.webview.postMessage(msg);
  }

  /** Opens a read-only pane of the run as it was when `stepId`'s turn `turn` ended. */
  async restore(runId: string, stepId: string, turn: number): Promise<void> {
    try {
      const [run, calls] = await Promise.all([this.client.getRun(runId, true), fetchAllModelCalls(this.client, runId)]);
      const cut = runAtTurn(run, calls.calls ?? [], stepId, turn);
      if (!cut) {
        void vscode.window.showWarningMessage(`boo: turn ${turn} of ${stepId} has not ended: nothing to restore.`);
        return;
      }
      let state = reduce(emptyState(runId), { type: 'hydrate', result: cut.result });
      state = reduce(state, { type: 'select', stepId });
      const t0 = Date.parse(run.run.createdAt ?? '') || Date.parse(run.steps.find((s) => s.startedAt)?.startedAt ?? '') || cut.at;
      const label = `${run.run.flow} at ${stepId} turn ${turn}`;
      const panel = vscode.window.createWebviewPanel(RESTORED_VIEW_TYPE, `boo: ${label} (restored)`, { viewColumn: vscode.ViewColumn.Active, preserveFocus: false }, { ...webviewOptions(this.extensionUri), retainContextWhenHidden: true });
      panel.iconPath = iconPath(this.extensionUri);
      panel.webview.html = renderWebview(panel.webview, this.extensionUri, 'pane', `boo ${label}`);
      const notice = `Restored from the stored transcript: the pane as it was ${formatOffset(Math.max(0, cut.at - t0))} into the run, when turn ${turn} of ${stepId} ended (${new Date(cut.at).toLocaleTimeString()}). Read-only.`;
      panel.webview.onDidReceiveMessage((m: FromPane) => {
        if (m?.type !== 'ready') return; // read-only: menus, resyncs and launches do nothing here
        const msgs: ToPane[] = [
          { type: 'frozen', at: cut.at },
          { type: 'state', state },
          { type: 'notice', level: 'info', message: notice },
        ];
        for (const x of msgs) void panel.webview.postMessage(x);
      });
    } catch (err) {
      void vscode.window.showErrorMessage(`boo: cannot restore the pane: ${errorMessage(err)}`);
    }
  }

  dispose(): void {
    this.sub.dispose();
    for (const t of this.reloads.values()) clearTimeout(t);
    for (const p of this.panels.values()) p.dispose();
  }
}
