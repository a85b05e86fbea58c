// boo for VS Code: a thin client. The server (`boo serve`) does the work; this file wires
// the language client, the Orchestrator panes, the launcher, the history, traces and chat.

import * as vscode from 'vscode';
import { BooClient, askTrust, errorCode, errorMessage } from './client';
import { launchWorkflowOrOfferTrust } from './trust';
import { parseArgs, parseBudget } from './workflows';
import { createFlowChatHandler } from './chat';
import { Exporter } from './exporter';
import { Launcher } from './launcher';
import type { PaneMenuAction, PanePersisted } from './messages';
import { ORCHESTRATOR_VIEW_TYPE, Orchestrators } from './orchestrator';
import { ErrorCodes, RunSummary, isRunTerminal } from './protocol';
import { RunStore } from './runStore';
import { RunsView, relativeAge, runSize, shorten } from './runsView';
import { TRACES_VIEW_TYPE, TracesPanels } from './tracesPanel';
import { TIMELINE_VIEW_TYPE, TimelinePanels } from './timelinePanel';
import { iconPath } from './webviewUtil';
import { describeServer } from './serverPath';
// Images (issue 16) and background agents (issue 15).
import { registerAgents } from './agents';
import { toLaunchAttachments } from './attachments';
import { AttachmentCache, readChatImages } from './images';
import { visionSetting } from './launcher';

const RESTART_SETTINGS = ['boo.serverPath', 'boo.env', 'boo.model', 'boo.maxParallelAgents', 'boo.dbPath', 'boo.diagnostics'];

export interface BooApi {
  /** For tests and other extensions: the live state of a run this window follows. */
  store: RunStore;
  client: BooClient;
}

let activeClient: BooClient | undefined;

export function activate(context: vscode.ExtensionContext): BooApi {
  const client = new BooClient(context.extensionUri.fsPath);
  activeClient = client;
  const store = new RunStore({ getRun: (runId, transcript) => client.getRun(runId, transcript) }, (m) => client.output.warn(m));
  context.subscriptions.push(client, client.onNotification((n) => store.handle(n)));

  const workspaceRoot = (): string | undefined => {
    const ed = vscode.window.activeTextEditor;
    const folder = ed ? vscode.workspace.getWorkspaceFolder(ed.document.uri) : undefined;
    return (folder ?? vscode.workspace.workspaceFolders?.[0])?.uri.fsPath;
  };

  const exporter = new Exporter(client, context.globalStorageUri, workspaceRoot);
  // Run timeline: its clicks scroll a pane (orchestrators, below) to a model turn.
  const timeline = new TimelinePanels(context.extensionUri, client, { reveal: (runId, stepId, turn) => orchestrators.revealTurn(runId, stepId, turn) });
  const traces = new TracesPanels(context.extensionUri, client, (runId) => timeline.open(runId));
  const runsView = new RunsView(client, workspaceRoot);
  const attachmentCache = new AttachmentCache(client);
  // eslint-disable-next-line prefer-const
  let launcher: Launcher;

  const menu = async (action: PaneMenuAction, runId: string): Promise<void> => {
    switch (action) {
      case 'copy':
        return exporter.copy(runId);
      case 'saveMarkdown':
        await exporter.save(runId, 'markdown');
        return;
      case 'saveJson':
        await exporter.save(runId, 'json');
        return;
      case 'sendToChat':
        return exporter.sendToChat(runId);
      case 'traces':
        return traces.open(runId);
      case 'timeline':
        return timeline.open(runId);
      case 'cancel':
        return cancelRun(runId);
      case 'refresh':
        return store.resync(runId, 'refresh');
    }
  };

  const orchestrators = new Orchestrators({
    extensionUri: context.extensionUri,
    store,
    menu,
    openLauncher: (panel) => launcher.open({}, { onLaunched: (runId) => orchestrators.open(runId, panel) }),
    log: (m) => client.output.info(m),
    attachments: attachmentCache,
  });
  launcher = new Launcher(context.extensionUri, client, workspaceRoot, { onLaunched: (runId) => orchestrators.open(runId) }, (runId) => store.wantRunInfo(runId));
  context.subscriptions.push(orchestrators, launcher, traces, timeline, runsView);

  // ---- runs history view and the status bar ----------------------------------
  const tree = vscode.window.createTreeView('boo.runs', { treeDataProvider: runsView });
  context.subscriptions.push(tree);

  const running = new Map<string, string>(); // runId -> flow
  const status = vscode.window.createStatusBarItem('boo.status', vscode.StatusBarAlignment.Left, 10);
  status.name = 'boo';
  status.command = 'boo.ui.runsHistory';
  const updateStatus = () => {
    const server = client.serverInfo ? `\nServer: ${describeServer(client.serverInfo)}` : '';
    if (running.size) {
      status.text = `$(sync~spin) boo: ${running.size} running`;
      status.tooltip = `Running flows: ${[...running.values()].join(', ')} — click for the runs history${server}`;
    } else {
      status.text = '$(beaker) boo';
      status.tooltip = `boo — no flow running. Click for the runs history.${server}`;
    }
    status.show();
  };
  updateStatus();
  context.subscriptions.push(status);
  context.subscriptions.push(
    runsView.onDidLoad((runs) => {
      for (const r of runs) {
        if (r.status === 'running') running.set(r.runId, r.flow);
        else running.delete(r.runId);
      }
      updateStatus();
    }),
  );
  const anySub = store.onAny((n) => {
    if (n.method === 'boo/runStarted') {
      running.set(n.params.runId, n.params.flow);
      updateStatus();
      runsView.refreshSoon();
    } else if (n.method === 'boo/stepUpdated' && n.params.runStatus && isRunTerminal(n.params.runStatus)) {
      running.delete(n.params.runId);
      updateStatus();
      runsView.refreshSoon();
    }
  });
  context.subscriptions.push({ dispose: () => anySub.dispose() });

  // ---- commands ---------------------------------------------------------------
  const pickRun = async (placeHolder: string, filter: (r: RunSummary) => boolean = () => true): Promise<string | undefined> => {
    let runs: RunSummary[];
    try {
      const root = workspaceRoot();
      runs = (await client.listRuns(root ? { root, limit: 100 } : { limit: 100 })).runs.filter(filter);
    } catch (err) {
      void vscode.window.showErrorMessage(`boo: could not list runs: ${errorMessage(err)}`);
      return undefined;
    }
    if (!runs.length) {
      void vscode.window.showInformationMessage('boo: no matching run in this workspace.');
      return undefined;
    }
    const icon: Record<string, string> = { running: '$(sync~spin)', completed: '$(pass)', failed: '$(error)', cancelled: '$(circle-slash)' };
    const pick = await vscode.window.showQuickPick(
      runs.map((r) => ({
        label: `${icon[r.status] ?? ''} ${shorten(r.question || r.flow, 80)}`,
        description: `${r.flow} · ${runSize(r)} · ${r.status} · ${relativeAge(r.createdAt)}`,
        runId: r.runId,
      })),
      { placeHolder, matchOnDescription: true },
    );
    return pick?.runId;
  };

  const cancelRun = async (runId: string): Promise<void> => {
    try {
      const res = await client.cancelRun(runId);
      void vscode.window.showInformationMessage(`boo: run ${res.status === 'cancelled' ? 'cancelled' : `is ${res.status}`}.`);
    } catch (err) {
      if (errorCode(err) === ErrorCodes.InvalidState) void vscode.window.showInformationMessage(`boo: ${errorMessage(err)}`);
      else void vscode.window.showErrorMessage(`boo: cancel failed: ${errorMessage(err)}`);
    }
  };

  const activeOr = async (runId: unknown, placeHolder: string, filter?: (r: RunSummary) => boolean): Promise<string | undefined> => {
    if (typeof runId === 'string' && runId) return runId;
    const active = orchestrators.activeRunId();
    if (active) {
      const st = store.get(active);
      if (!filter || !st || filter({ runId: active, flow: st.flow, band: st.band, status: st.status, question: st.question, root: st.root, createdAt: st.createdAt ?? '', finishedAt: st.finishedAt, kind: st.kind })) return active;
    }
    return pickRun(placeHolder, filter);
  };

  // The extension's own commands live under `boo.ui.*`: the language client registers the
  // server's executeCommandProvider commands (`boo.launchFlow`, `boo.cancelRun`) itself, and
  // a second registration of the same id would make the client fail to start.
  const reg = (id: string, fn: (...args: any[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  reg('boo.ui.launchFlow', (opts?: { flow?: string; question?: string; band?: 'small' | 'medium' | 'large' }) => {
    launcher.open({ flow: opts?.flow, question: opts?.question, band: opts?.band ?? 'small' });
  });
  reg('boo.ui.launchWorkflow', (opts?: { workflow?: string }) => {
    launcher.open({ tab: 'workflows', workflow: opts?.workflow });
  });
  // Runs a workflow script file (the active editor's by default) with scriptPath: args and
  // a budget are asked for in two input boxes.
  reg('boo.ui.runWorkflowFile', async (uri?: vscode.Uri) => {
    const target = uri instanceof vscode.Uri ? uri : vscode.window.activeTextEditor?.document.uri;
    if (!target || target.scheme !== 'file' || !/\.m?js$/i.test(target.fsPath)) {
      void vscode.window.showWarningMessage('boo: open a workflow script (.js or .mjs) first, or pick one from the Workflows tab of Boo: Launch Workflow….');
      return;
    }
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === target.toString());
    if (doc?.isDirty) await doc.save();
    const argsText = await vscode.window.showInputBox({
      title: `boo: run ${vscode.workspace.asRelativePath(target)}`,
      prompt: 'Args for the script: JSON (e.g. {"paths": ["src/"]}) or plain text; empty for none',
      placeHolder: 'args',
    });
    if (argsText === undefined) return;
    const budgetText = await vscode.window.showInputBox({
      title: `boo: run ${vscode.workspace.asRelativePath(target)}`,
      prompt: 'Token budget (output tokens for the whole run, e.g. 20000 or 20k); empty for none',
      placeHolder: 'no budget',
      validateInput: (v) => parseBudget(v).error ?? null,
    });
    if (budgetText === undefined) return;
    const folder = vscode.workspace.getWorkspaceFolder(target)?.uri.fsPath ?? workspaceRoot();
    const params: Parameters<typeof client.launchWorkflow>[0] = { scriptPath: target.fsPath, ...parseArgs(argsText) };
    const budget = parseBudget(budgetText).budget;
    if (budget !== undefined) params.budget = budget;
    if (folder) params.root = folder;
    const model = vscode.workspace.getConfiguration('boo').get<string>('model')?.trim();
    if (model) params.model = model;
    try {
      const { runId } = await launchWorkflowOrOfferTrust(client, params, askTrust);
      orchestrators.open(runId);
    } catch (err) {
      void vscode.window.showErrorMessage(`boo: cannot run the workflow: ${errorMessage(err)}`);
    }
  });
  reg('boo.ui.newOrchestrator', () => {
    orchestrators.openEmpty();
  });
  reg('boo.ui.openRun', (runId?: string, stepId?: string) => {
    if (typeof runId !== 'string' || !runId) return;
    if (typeof stepId === 'string' && stepId) orchestrators.revealTurn(runId, stepId, null);
    else orchestrators.open(runId);
  });
  reg('boo.ui.runsHistory', async () => {
    const runId = await pickRun('Open a boo run');
    if (runId) orchestrators.open(runId);
  });
  reg('boo.ui.cancelRun', async (runId?: string) => {
    const id = await activeOr(runId, 'Cancel which running flow?', (r) => r.status === 'running');
    if (id) await cancelRun(id);
  });
  reg('boo.ui.exportRun', async (runId?: string, action?: PaneMenuAction, target?: string) => {
    const id = await activeOr(runId, 'Export which run?', (r) => r.status !== 'running');
    if (!id) return;
    if (action === 'saveMarkdown' || action === 'saveJson') {
      await exporter.save(id, action === 'saveJson' ? 'json' : 'markdown', target ? vscode.Uri.file(target) : undefined);
      return;
    }
    const pick =
      action ??
      (
        await vscode.window.showQuickPick(
          [
            { label: '$(copy) Copy report to clipboard', action: 'copy' as const },
            { label: '$(markdown) Save report as Markdown…', action: 'saveMarkdown' as const },
            { label: '$(json) Save run as JSON…', action: 'saveJson' as const },
            { label: '$(comment-discussion) Send report to chat', action: 'sendToChat' as const },
          ],
          { placeHolder: 'Export the run' },
        )
      )?.action;
    if (pick) await menu(pick, id);
  });
  reg('boo.ui.showTraces', async (runId?: string) => {
    const id = await activeOr(runId, 'Show traces of which run?');
    if (id) traces.open(id);
  });
  reg('boo.ui.showTimeline', async (runId?: string) => {
    const id = await activeOr(runId, 'Show the timeline of which run?');
    if (id) timeline.open(id);
  });
  reg('boo.ui.serverInfo', async () => {
    try {
      await client.ensureStarted();
    } catch {
      return; // the start failure was reported with a button to the setting
    }
    updateStatus();
    const info = client.serverInfo;
    if (!info) return;
    const text = `${describeServer(info)} (protocol ${info.protocolVersion ?? '?'})`;
    client.output.info(text);
    const pick = await vscode.window.showInformationMessage(text, 'Copy', 'Show Log');
    if (pick === 'Copy') await vscode.env.clipboard.writeText(text);
    else if (pick === 'Show Log') client.output.show();
  });
  reg('boo.ui.refreshRuns', () => runsView.refresh());
  reg('boo.ui.loadMoreRuns', (before: string) => runsView.loadMoreCommand(before));
  reg('boo.ui.restartServer', async () => {
    try {
      await client.restart();
      void vscode.window.showInformationMessage('boo: server restarted.');
      runsView.refresh();
    } catch (err) {
      client.output.error(errorMessage(err));
    }
  });

  // ---- background agents: the command, the view, the messages when they end -------
  const agentsView = registerAgents(context, {
    client,
    store,
    root: workspaceRoot,
    openRun: (runId) => orchestrators.open(runId),
    hasPane: (runId) => orchestrators.hasPane(runId),
    vision: visionSetting,
    model: () => vscode.workspace.getConfiguration('boo').get<string>('model')?.trim() || undefined,
  });
  context.subscriptions.push(client.onDidChangeState((st) => st === 'running' && agentsView.refreshSoon()));

  // ---- panes restored after a window reload -------------------------------------
  context.subscriptions.push(
    vscode.window.registerWebviewPanelSerializer(ORCHESTRATOR_VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: PanePersisted | undefined) {
        orchestrators.restore(panel, state);
      },
    }),
    vscode.window.registerWebviewPanelSerializer(TRACES_VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: { runId?: string } | undefined) {
        if (state?.runId) traces.open(state.runId, panel);
        else panel.dispose();
      },
    }),
    vscode.window.registerWebviewPanelSerializer(TIMELINE_VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: { runId?: string } | undefined) {
        if (state?.runId) timeline.open(state.runId, panel);
        else panel.dispose();
      },
    }),
  );

  // ---- chat participant: @boo /flow <focus> ---------------------------------------
  if (typeof vscode.chat?.createChatParticipant === 'function') {
    const participant = vscode.chat.createChatParticipant(
      'boo.chat',
      createFlowChatHandler({
        launch: (p) => client.launchFlow(p),
        launchWorkflow: (p) => launchWorkflowOrOfferTrust(client, p, askTrust),
        watch: (runId, l, e) => store.watch(runId, l, e),
        cancel: (runId) => client.cancelRun(runId),
        flowName: () => vscode.workspace.getConfiguration('boo').get<string>('chatFlow')?.trim() || 'code-review',
        root: workspaceRoot,
        model: () => vscode.workspace.getConfiguration('boo').get<string>('model')?.trim() || undefined,
        trustedMarkdown: (value, commands) => {
          const md = new vscode.MarkdownString(value);
          md.isTrusted = { enabledCommands: commands };
          return md;
        },
        errorMessage,
        images: async (refs) => {
          const got = await readChatImages(refs as { value?: unknown }[]);
          return { images: toLaunchAttachments(got.images, workspaceRoot()), errors: got.errors };
        },
        vision: visionSetting,
        onImages: (runId) => store.wantRunInfo(runId),
      }),
    );
    participant.iconPath = iconPath(context.extensionUri);
    context.subscriptions.push(participant);
  }

  // ---- settings that need a new server -------------------------------------------
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!RESTART_SETTINGS.some((s) => e.affectsConfiguration(s))) return;
      try {
        await client.restart();
        updateStatus();
        runsView.refresh();
        void vscode.window.showInformationMessage('boo: settings changed, server restarted.');
      } catch (err) {
        client.output.error(errorMessage(err));
      }
    }),
  );

  // Start the server now so the history and status bar are live; a missing binary
  // surfaces as a notification with a button to the setting.
  void client.ensureStarted().then(
    async () => {
      updateStatus();
      runsView.refresh();
      // Runs the server resumed on start count in the status bar even with the view closed.
      try {
        const root = workspaceRoot();
        const { runs } = await client.listRuns(root ? { root, limit: 50 } : { limit: 50 });
        for (const r of runs) if (r.status === 'running') running.set(r.runId, r.flow);
        updateStatus();
      } catch {
        /* the history view reports listing errors */
      }
    },
    () => undefined,
  );
  return { store, client };
}

export async function deactivate(): Promise<void> {
  // Stop `boo serve` cleanly (shutdown + exit) before the extension host goes away;
  // running runs stay in the database and the next server resumes them.
  const c = activeClient;
  activeClient = undefined;
  await c?.dispose();
}
