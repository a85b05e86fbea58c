// Orchestrator panes: one webview panel per run, fed by the RunStore with coalesced messages.

import * as path from 'node:path';
import * as vscode from 'vscode';
import type { FromPane, PaneMenuAction, PanePersisted, ToPane } from './messages';
import type { RunStore, Disposable } from './runStore';
import type { Action, PaneState } from './state';
import { iconPath, renderWebview, webviewOptions } from './webviewUtil';
import type { AttachmentCache } from './images';

export const ORCHESTRATOR_VIEW_TYPE = 'boo.orchestrator';
/** Coalescing window for stream updates sent to a webview (one postMessage per tick). */
const FLUSH_MS = 50;

export interface PaneHost {
  readonly extensionUri: vscode.Uri;
  readonly store: RunStore;
  menu(action: PaneMenuAction, runId: string): Promise<void>;
  openLauncher(target: OrchestratorPanel): void;
  log(message: string): void;
  /** A run image's bytes (boo/getAttachment, cached) and its full-size view. */
  readonly attachments?: AttachmentCache;
}

export class OrchestratorPanel {
  runId: string | null = null;
  private ready = false;
  private queue: Action[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private sub: Disposable | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private disposed = false;

  constructor(
    private readonly host: PaneHost,
    readonly panel: vscode.WebviewPanel,
    private readonly onDispose: (p: OrchestratorPanel) => void,
  ) {
    panel.iconPath = iconPath(host.extensionUri);
    panel.webview.options = webviewOptions(host.extensionUri);
    panel.webview.html = renderWebview(panel.webview, host.extensionUri, 'pane', 'boo Orchestrator');
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m: FromPane) => void this.onMessage(m)),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  attach(runId: string | null): void {
    if (this.runId === runId && this.sub) return;
    this.sub?.dispose();
    this.sub = undefined;
    this.queue = [];
    this.runId = runId;
    if (!runId) {
      this.panel.title = 'boo: new orchestrator';
      if (this.ready) this.post({ type: 'empty', message: 'No run in this pane yet.' });
      return;
    }
    this.panel.title = 'boo: loading…';
    let first = true;
    this.sub = this.host.store.watch(
      runId,
      (state, actions) => {
        this.updateTitle(state);
        if (!this.ready) return;
        if (first || actions.length === 0) {
          first = false;
          this.post({ type: 'state', state: strip(state) });
          this.queue = [];
          return;
        }
        this.queue.push(...actions);
        this.scheduleFlush();
      },
      (message) => this.post({ type: 'notice', level: 'error', message }),
    );
  }

  private updateTitle(state: PaneState): void {
    if (!state.hydrated) return;
    const title = `boo: ${state.flow}${state.status === 'running' ? '' : ` (${state.status})`}`;
    if (this.panel.title !== title) this.panel.title = title;
  }

  private scheduleFlush(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.queue.length) return;
      const actions = this.queue;
      this.queue = [];
      this.post({ type: 'actions', actions });
    }, FLUSH_MS);
  }

  private post(msg: ToPane): void {
    if (this.disposed) return;
    void this.panel.webview.postMessage(msg);
  }

  private sendSnapshot(): void {
    if (!this.runId) {
      this.post({ type: 'empty', message: 'No run in this pane yet.' });
      return;
    }
    const st = this.host.store.get(this.runId);
    if (st && st.hydrated) this.post({ type: 'state', state: strip(st) });
    this.queue = [];
  }

  private async onMessage(msg: FromPane): Promise<void> {
    switch (msg?.type) {
      case 'ready':
        this.ready = true;
        if (!this.runId && msg.runId) this.attach(msg.runId);
        this.sendSnapshot();
        if (this.pendingTurn) this.post({ type: 'reveal', ...this.pendingTurn });
        this.pendingTurn = undefined;
        break;
      case 'resync':
        if (this.runId) await this.host.store.resync(this.runId, 'refresh');
        this.sendSnapshot();
        break;
      case 'menu':
        if (msg.action === 'refresh' && this.runId) {
          await this.host.store.resync(this.runId, 'refresh');
          this.sendSnapshot();
        } else {
          await this.host.menu(msg.action, msg.runId);
        }
        break;
      case 'openFile':
        await this.openFile(msg.path, msg.line);
        break;
      case 'launch':
        this.host.openLauncher(this);
        break;
      case 'getAttachment': {
        const id = msg.attachmentId;
        if (!this.host.attachments || typeof id !== 'string') break;
        try {
          const a = await this.host.attachments.get(id);
          this.post({ type: 'attachmentData', attachmentId: id, mimeType: a.mimeType, data: a.data });
        } catch (err) {
          const error = err instanceof Error ? err.message : String(err);
          this.host.log(`boo/getAttachment ${id} failed: ${error}`);
          this.post({ type: 'attachmentData', attachmentId: id, mimeType: '', data: null, error });
        }
        break;
      }
      case 'openAttachment':
        if (this.host.attachments && typeof msg.attachmentId === 'string') await this.host.attachments.open(msg.attachmentId);
        break;
    }
  }

  private async openFile(p: string, line: number): Promise<void> {
    const st = this.runId ? this.host.store.get(this.runId) : undefined;
    const root = st?.root || vscode.workspace.workspaceFolders?.[0]?.uri.fsPath || '';
    const abs = path.isAbsolute(p) ? p : path.join(root, p);
    try {
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(abs));
      const pos = new vscode.Position(Math.max(0, line - 1), 0);
      await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.One, selection: new vscode.Range(pos, pos), preview: true });
    } catch (err) {
      void vscode.window.showWarningMessage(`boo: cannot open ${abs}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  reveal(): void {
    this.panel.reveal(undefined, false);
  }

  /** Scrolls a step's stream to a model turn (the run timeline); sent once the webview is ready. */
  showTurn(stepId: string, turn: number | null): void {
    this.reveal();
    if (this.ready) this.post({ type: 'reveal', stepId, turn });
    else this.pendingTurn = { stepId, turn };
  }
  private pendingTurn: { stepId: string; turn: number | null } | undefined;

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    this.sub?.dispose();
    for (const d of this.disposables) d.dispose();
    this.onDispose(this);
    this.panel.dispose();
  }
}

/** The webview does not need the pre-roster buffer. */
function strip(state: PaneState): PaneState {
  return state.buffer.length ? { ...state, buffer: [] } : state;
}

export class Orchestrators implements vscode.Disposable {
  private readonly panels = new Set<OrchestratorPanel>();
  private lastActive: OrchestratorPanel | undefined;

  constructor(private readonly host: PaneHost) {}

  /** Reveals the pane of a run, or opens one. */
  open(runId: string, target?: OrchestratorPanel): OrchestratorPanel {
    if (target && this.panels.has(target)) {
      target.attach(runId);
      target.reveal();
      return target;
    }
    for (const p of this.panels) {
      if (p.runId === runId) {
        p.reveal();
        return p;
      }
    }
    const p = this.create();
    p.attach(runId);
    return p;
  }

  openEmpty(): OrchestratorPanel {
    const p = this.create();
    p.attach(null);
    return p;
  }

  private create(panel?: vscode.WebviewPanel): OrchestratorPanel {
    const wp =
      panel ??
      vscode.window.createWebviewPanel(ORCHESTRATOR_VIEW_TYPE, 'boo Orchestrator', { viewColumn: vscode.ViewColumn.Active, preserveFocus: false }, {
        ...webviewOptions(this.host.extensionUri),
        retainContextWhenHidden: true,
      });
    const p = new OrchestratorPanel(this.host, wp, (x) => {
      this.panels.delete(x);
      if (this.lastActive === x) this.lastActive = undefined;
    });
    wp.onDidChangeViewState((e) => {
      if (e.webviewPanel.active) this.lastActive = p;
    });
    this.panels.add(p);
    this.lastActive = p;
    return p;
  }

  /** Restores a pane after a window reload (registerWebviewPanelSerializer). */
  restore(panel: vscode.WebviewPanel, state: PanePersisted | undefined): void {
    const p = this.create(panel);
    p.attach(state?.runId ?? null);
  }

  /** Whether a pane shows this run. */
  hasPane(runId: string): boolean {
    for (const p of this.panels) if (p.runId === runId) return true;
    return false;
  }

  /** Opens (or reveals) the run's pane and scrolls the step's stream to a model turn. */
  revealTurn(runId: string, stepId: string, turn: number | null): void {
    this.open(runId).showTurn(stepId, turn);
  }

  /** The run of the pane the user looked at last, if any. */
  activeRunId(): string | undefined {
    return this.lastActive?.runId ?? undefined;
  }

  dispose(): void {
    for (const p of [...this.panels]) p.dispose();
  }
}
