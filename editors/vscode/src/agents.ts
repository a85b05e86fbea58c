// Background agents (issue 15): "boo: Ask an Agent in the Background" (boo/spawnAgent),
// the Background Agents view (boo/listAgents, kept live by the notifications), and the
// message with "Open" when an agent ends — one this window started, or a child an agent
// spawned in a run whose pane is open.

import * as vscode from 'vscode';
import type { BooClient } from './client';
import { errorMessage } from './client';
import type { AgentSummary, Flow, Notification, SpawnAgentParams } from './protocol';
import { isRunTerminal } from './protocol';
import type { RunStore } from './runStore';
import { agentDescription, agentEvent, agentKey, agentTokens, oneLine, personasOf } from './agentEvents';
import { toLaunchAttachments, withImages } from './attachments';
import { pickImageFiles, readImageFiles } from './images';

export const AGENTS_VIEW_ID = 'boo.agents';

const STATUS_ICON: Record<string, string> = { running: 'sync~spin', completed: 'pass', failed: 'error', cancelled: 'circle-slash' };

export interface AgentsDeps {
  client: BooClient;
  store: RunStore;
  root(): string | undefined;
  /** Opens a run's pane. */
  openRun(runId: string): void;
  /** Whether a pane shows this run. */
  hasPane(runId: string): boolean;
  vision(): boolean;
  model(): string | undefined;
}

type Row = { agent: AgentSummary } | { message: string };

export class AgentsView implements vscode.TreeDataProvider<Row>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<Row | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private agents: AgentSummary[] = [];
  private error: string | null = null;
  private loaded = false;
  /** Final token counts of finished agents (boo/getRun once per run). */
  private readonly tokens = new Map<string, number>();
  private readonly askedTokens = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ticker: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly deps: AgentsDeps) {}

  /** The agents as last listed (for tests). */
  get items(): AgentSummary[] {
    return this.agents;
  }

  async refresh(): Promise<void> {
    const root = this.deps.root();
    try {
      const { agents } = await this.deps.client.listAgents(root ? { root, limit: 50 } : { limit: 50 });
      this.agents = agents ?? [];
      this.error = null;
    } catch (err) {
      this.error = `Cannot list background agents: ${errorMessage(err)}`;
    }
    this.loaded = true;
    this.changed.fire(undefined);
    this.tick();
  }

  refreshSoon(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refresh();
    }, 300);
  }

  /** While an agent runs, its elapsed time moves: redraw once a second. */
  private tick(): void {
    const running = this.agents.some((a) => a.status === 'running');
    if (running && !this.ticker) this.ticker = setInterval(() => this.changed.fire(undefined), 1000);
    else if (!running && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = undefined;
    }
  }

  private tokensOf(a: AgentSummary): number | null {
    const got = agentTokens(a, this.deps.store.get(a.runId), this.tokens.get(a.runId));
    if (got !== null || a.stepId) return got;
    // A finished agent run the list gave no usage for: its total, asked once.
    if (isRunTerminal(a.status) && !this.askedTokens.has(a.runId)) {
      this.askedTokens.add(a.runId);
      this.deps.client.getRun(a.runId, false).then(
        (r) => {
          this.tokens.set(a.runId, r.run.usage?.totalTokens ?? 0);
          this.changed.fire(undefined);
        },
        () => undefined,
      );
    }
    return null;
  }

  getTreeItem(row: Row): vscode.TreeItem {
    if ('message' in row) {
      const item = new vscode.TreeItem(row.message);
      item.iconPath = new vscode.ThemeIcon('warning');
      return item;
    }
    const a = row.agent;
    const item = new vscode.TreeItem(a.persona || a.flow);
    item.id = agentKey(a);
    item.description = `${agentDescription(a, this.tokensOf(a), Date.now())} — ${oneLine(a.question, 60)}`;
    const md = new vscode.MarkdownString();
    md.appendMarkdown(`**${a.persona}** · ${a.status}\n\n`);
    md.appendText(a.question);
    if (a.stepId) md.appendMarkdown(`\n\n_step \`${a.stepId}\`, spawned by step \`${a.parentStepId ?? '?'}\` of run \`${a.runId}\`_`);
    item.tooltip = md;
    item.iconPath = new vscode.ThemeIcon(STATUS_ICON[a.status] ?? 'circle-outline');
    item.contextValue = `agent.${a.status}`;
    // A child opens as its run's pane with its own stream in view.
    item.command = a.stepId
      ? { command: 'boo.ui.openRun', title: 'Open', arguments: [a.runId, a.stepId] }
      : { command: 'boo.ui.openRun', title: 'Open', arguments: [a.runId] };
    return item;
  }

  getChildren(row?: Row): Row[] {
    if (row) return [];
    if (this.error) return [{ message: this.error }];
    if (!this.loaded) return [];
    return this.agents.map((agent) => ({ agent }));
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.ticker) clearInterval(this.ticker);
    this.changed.dispose();
  }
}

/** The command, the view, and the messages when agents end. */
export function registerAgents(context: vscode.ExtensionContext, deps: AgentsDeps): AgentsView {
  const view = new AgentsView(deps);
  const tree = vscode.window.createTreeView(AGENTS_VIEW_ID, { treeDataProvider: view });
  context.subscriptions.push(view, tree);
  /** Agents this window started: runId → what to say when it ends. */
  const mine = new Map<string, { persona: string; prompt: string }>();
  /** Children already told about (runId/stepId). */
  const told = new Set<string>();

  const tell = (text: string, status: string, runId: string) => {
    const show = status === 'completed' ? vscode.window.showInformationMessage : vscode.window.showWarningMessage;
    void show(text, 'Open').then((pick) => {
      if (pick === 'Open') deps.openRun(runId);
    });
  };

  const sub = deps.store.onAny((n: Notification) => {
    const ev = agentEvent(n, { mine, told, hasPane: deps.hasPane, state: (id) => deps.store.get(id) });
    if (ev.refresh) view.refreshSoon();
    if (ev.tell) tell(ev.tell.text, ev.tell.status, ev.tell.runId);
  });
  context.subscriptions.push({ dispose: () => sub.dispose() });

  const ask = async (opts?: { persona?: string; prompt?: string; images?: string[]; background?: boolean }): Promise<string | undefined> => {
    let persona = opts?.persona;
    if (!persona) {
      let flows: Flow[];
      try {
        flows = (await deps.client.listFlows()).flows;
      } catch (err) {
        void vscode.window.showErrorMessage(`boo: cannot list the personas: ${errorMessage(err)}`);
        return undefined;
      }
      const pick = await vscode.window.showQuickPick(
        personasOf(flows).map((p) => ({ label: p.persona, description: `in ${p.flows.join(', ')}` })),
        { title: 'boo: ask an agent in the background (1/2)', placeHolder: 'Which persona?', matchOnDescription: true },
      );
      if (!pick) return undefined;
      persona = pick.label;
    }
    let prompt = opts?.prompt;
    if (!prompt) {
      prompt = await vscode.window.showInputBox({
        title: `boo: ask ${persona} in the background (2/2)`,
        prompt: 'What should the agent look at? It reads the workspace (read-only) and answers with evidence.',
        placeHolder: 'e.g. where is the session cookie set, and is it HttpOnly?',
        validateInput: (v) => (v.trim() ? null : 'Write the task for the agent.'),
      });
      if (!prompt?.trim()) return undefined;
    }
    const root = deps.root();
    let uris: vscode.Uri[] = (opts?.images ?? []).map((p) => vscode.Uri.file(p));
    if (!opts?.prompt && !opts?.images) {
      const more = await vscode.window.showQuickPick(
        [
          { label: '$(play) Ask', detail: 'Start the agent now', attach: false },
          { label: '$(file-media) Attach images…', detail: 'PNG, JPEG, GIF or WebP the agent gets with the task', attach: true },
        ],
        { title: `boo: ask ${persona}`, placeHolder: 'Start it, or attach images first' },
      );
      if (!more) return undefined;
      if (more.attach) uris = await pickImageFiles(root ? vscode.Uri.file(root) : undefined);
    }
    const params: SpawnAgentParams = { persona, prompt: prompt.trim() };
    if (root) params.root = root;
    const model = deps.model();
    if (model) params.model = model;
    if (uris.length) {
      const { images, errors } = await readImageFiles(uris, 0);
      if (errors.length) {
        void vscode.window.showErrorMessage(`boo: ${errors.join(' ')}`);
        return undefined;
      }
      withImages(params, toLaunchAttachments(images, root), deps.vision());
    }
    let runId: string;
    try {
      runId = (await deps.client.spawnAgent(params)).runId;
    } catch (err) {
      void vscode.window.showErrorMessage(`boo: cannot start agent ${persona}: ${errorMessage(err)}`);
      return undefined;
    }
    mine.set(runId, { persona, prompt: params.prompt });
    if (params.attachments) deps.store.wantRunInfo(runId);
    void view.refresh();
    if (opts?.background === false) deps.openRun(runId);
    else {
      void vscode.window.showInformationMessage(`boo: ${persona} is working in the background; the Background Agents view lists it.`, 'Open').then((pick) => {
        if (pick === 'Open') deps.openRun(runId);
      });
    }
    return runId;
  };

  context.subscriptions.push(
    vscode.commands.registerCommand('boo.ui.askAgent', ask),
    vscode.commands.registerCommand('boo.ui.refreshAgents', () => view.refresh()),
  );
  return view;
}
