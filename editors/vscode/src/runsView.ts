// Runs history: a tree of the workspace's runs (boo/listRuns), newest first, with paging.

import * as vscode from 'vscode';
import type { BooClient } from './client';
import { errorMessage } from './client';
import type { RunSummary } from './protocol';

export function relativeAge(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 45) return 'just now';
  if (s < 90) return '1 min ago';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  const d = Math.round(h / 24);
  return d === 1 ? 'yesterday' : `${d} days ago`;
}

export function statusIcon(status: string): vscode.ThemeIcon {
  switch (status) {
    case 'running':
      return new vscode.ThemeIcon('sync~spin', new vscode.ThemeColor('charts.blue'));
    case 'completed':
      return new vscode.ThemeIcon('pass', new vscode.ThemeColor('charts.green'));
    case 'failed':
      return new vscode.ThemeIcon('error', new vscode.ThemeColor('charts.red'));
    case 'cancelled':
      return new vscode.ThemeIcon('circle-slash', new vscode.ThemeColor('charts.orange'));
    default:
      return new vscode.ThemeIcon('circle-outline');
  }
}

export function shorten(s: string, max = 60): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

type Node = { kind: 'run'; run: RunSummary } | { kind: 'more'; before: string } | { kind: 'message'; text: string };

export class RunsView implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<Node | undefined | void>();
  readonly onDidChangeTreeData = this.changed.event;
  private runs: RunSummary[] = [];
  private next: string | null = null;
  private loaded = false;
  private error: string | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly listeners = new Set<(runs: RunSummary[]) => void>();

  constructor(
    private readonly client: BooClient,
    private readonly root: () => string | undefined,
  ) {}

  /** Called with every fresh first page (the status bar counts running runs from it). */
  onDidLoad(listener: (runs: RunSummary[]) => void): vscode.Disposable {
    this.listeners.add(listener);
    return new vscode.Disposable(() => this.listeners.delete(listener));
  }

  refresh(): void {
    this.loaded = false;
    this.changed.fire();
  }

  /** Coalesces bursts of refresh requests (notifications) into one listRuns. */
  refreshSoon(ms = 400): void {
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.refresh();
    }, ms);
  }

  private async load(): Promise<void> {
    try {
      const root = this.root();
      const res = await this.client.listRuns(root ? { root, limit: 50 } : { limit: 50 });
      this.runs = res.runs ?? [];
      this.next = res.next ?? null;
      this.error = undefined;
      for (const l of this.listeners) l(this.runs);
    } catch (err) {
      this.error = errorMessage(err);
      this.runs = [];
      this.next = null;
    }
    this.loaded = true;
  }

  private async loadMore(before: string): Promise<void> {
    try {
      const root = this.root();
      const res = await this.client.listRuns(root ? { root, limit: 50, before } : { limit: 50, before });
      const seen = new Set(this.runs.map((r) => r.runId));
      this.runs.push(...(res.runs ?? []).filter((r) => !seen.has(r.runId)));
      this.next = res.next ?? null;
    } catch (err) {
      void vscode.window.showErrorMessage(`boo: could not list more runs: ${errorMessage(err)}`);
    }
    this.changed.fire();
  }

  async getChildren(node?: Node): Promise<Node[]> {
    if (node) return [];
    if (!this.loaded) await this.load();
    if (this.error) return [{ kind: 'message', text: `Could not list runs: ${this.error}` }];
    const nodes: Node[] = this.runs.map((run) => ({ kind: 'run', run }));
    if (this.next) nodes.push({ kind: 'more', before: this.next });
    return nodes;
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'message') {
      const item = new vscode.TreeItem(node.text);
      item.iconPath = new vscode.ThemeIcon('warning');
      return item;
    }
    if (node.kind === 'more') {
      const item = new vscode.TreeItem('Load older runs…');
      item.command = { command: 'boo.ui.loadMoreRuns', title: 'Load older runs', arguments: [node.before] };
      return item;
    }
    const r = node.run;
    const item = new vscode.TreeItem(shorten(r.question || r.flow));
    item.id = r.runId;
    item.description = `${r.flow} · ${runSize(r)} · ${r.status} · ${relativeAge(r.createdAt)}`;
    item.iconPath = statusIcon(r.status);
    item.contextValue = `booRun.${r.status}`;
    const tip = new vscode.MarkdownString();
    tip.appendMarkdown(`**${r.flow}** (${runSize(r)}) — ${r.status}\n\n`);
    tip.appendText(r.question);
    tip.appendMarkdown(`\n\nStarted ${r.createdAt}${r.finishedAt ? `, finished ${r.finishedAt}` : ''}\n\n`);
    tip.appendText(r.root);
    item.tooltip = tip;
    item.command = { command: 'boo.ui.openRun', title: 'Open Run', arguments: [r.runId] };
    item.accessibilityInformation = { label: `${r.flow} ${runSize(r)} ${r.status}: ${r.question}` };
    return item;
  }

  loadMoreCommand(before: string): Promise<void> {
    return this.loadMore(before);
  }

  dispose(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.changed.dispose();
  }
}

/** A run's size for lists: its band, or "workflow" for a workflow run (RunSummary.kind, or no band). */
export function runSize(r: RunSummary): string {
  const kind = (r as { kind?: unknown }).kind;
  if (kind === 'workflow' || kind === 'agent') return kind;
  return r.band ?? 'workflow';
}
