// The Flows launcher webview: lists boo/listFlows by category and launches the chosen flow.

import * as vscode from 'vscode';
import type { BooClient, LaunchParams } from './client';
import { askTrust, errorMessage } from './client';
import { launchOrOfferTrust, launchWorkflowOrOfferTrust } from './trust';
import type { LaunchWorkflowParams } from './protocol';
import type { Workflow } from './workflows';
import { parseArgs, parseBudget } from './workflows';
import type { FromLauncher, LauncherDefaults, ToLauncher } from './messages';
import { iconPath, renderWebview, webviewOptions } from './webviewUtil';
import { toLaunchAttachments, withImages } from './attachments';
import { pickImageFiles, readImageFiles } from './images';

/** The `boo.visionModel` setting: the configured model takes images. */
export function visionSetting(): boolean {
  return vscode.workspace.getConfiguration('boo').get<boolean>('visionModel', false) === true;
}

export const LAUNCHER_VIEW_TYPE = 'boo.launcher';

export interface LaunchTarget {
  onLaunched(runId: string): void;
}

export class Launcher implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private target: LaunchTarget | undefined;
  private defaults: LauncherDefaults = { band: 'small' };

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly client: BooClient,
    private readonly workspaceRoot: () => string | undefined,
    private readonly defaultTarget: LaunchTarget,
    /** Called with the runId of a launch that carried images (its pane lists them). */
    private readonly onImages: (runId: string) => void = () => undefined,
  ) {}

  open(defaults: Partial<LauncherDefaults> = {}, target?: LaunchTarget): void {
    this.target = target;
    this.defaults = { band: 'small', ...defaults };
    if (this.panel) {
      this.panel.reveal(vscode.ViewColumn.Active);
      void this.sendFlows();
      return;
    }
    const panel = vscode.window.createWebviewPanel(LAUNCHER_VIEW_TYPE, 'boo: Launch Flow', { viewColumn: vscode.ViewColumn.Active, preserveFocus: false }, webviewOptions(this.extensionUri));
    panel.iconPath = iconPath(this.extensionUri);
    panel.webview.html = renderWebview(panel.webview, this.extensionUri, 'launcher', 'Launch a flow');
    panel.webview.onDidReceiveMessage((m: FromLauncher) => void this.onMessage(m));
    panel.onDidDispose(() => {
      if (this.panel === panel) this.panel = undefined;
    });
    this.panel = panel;
  }

  private post(msg: ToLauncher): void {
    void this.panel?.webview.postMessage(msg);
  }

  private async sendFlows(): Promise<void> {
    const root = this.workspaceRoot();
    const wfs = this.client.listWorkflows(root).then(
      (r) => ({ workflows: r.workflows ?? [], error: null as string | null, trusted: r.trusted }),
      (err) => ({ workflows: null as Workflow[] | null, error: `This boo server could not list workflows (boo/listWorkflows): ${errorMessage(err)}`, trusted: undefined }),
    );
    try {
      const { flows, trusted } = await this.client.listFlows();
      const w = await wfs;
      this.post({ type: 'flows', flows, defaults: this.defaults, root: root ?? null, workflows: w.workflows, workflowsError: w.error, trusted: w.trusted ?? trusted ?? false, vision: visionSetting() });
    } catch (err) {
      this.post({ type: 'error', message: `Could not list flows: ${errorMessage(err)}` });
    }
  }

  private async onMessage(msg: FromLauncher): Promise<void> {
    switch (msg?.type) {
      case 'ready':
        await this.sendFlows();
        break;
      case 'cancel':
        this.panel?.dispose();
        break;
      case 'pickImages': {
        const root = this.workspaceRoot();
        const uris = await pickImageFiles(root ? vscode.Uri.file(root) : undefined);
        if (uris.length) this.post({ type: 'images', ...(await readImageFiles(uris, msg.already ?? 0)) });
        break;
      }
      case 'addUris': {
        const uris: vscode.Uri[] = [];
        for (const u of msg.uris ?? []) {
          try {
            uris.push(vscode.Uri.parse(u, true));
          } catch {
            /* not a URI: ignored */
          }
        }
        if (uris.length) this.post({ type: 'images', ...(await readImageFiles(uris, msg.already ?? 0)) });
        break;
      }
      case 'launch': {
        this.post({ type: 'launching' });
        const params: LaunchParams = { flow: msg.flow, band: msg.band, input: { question: msg.question } };
        if (msg.fast) params.fast = true;
        const root = this.workspaceRoot();
        if (root) params.root = root;
        const model = vscode.workspace.getConfiguration('boo').get<string>('model')?.trim();
        if (model) params.model = model;
        withImages(params, toLaunchAttachments(msg.images ?? [], root), msg.vision === true);
        try {
          const { runId } = await launchOrOfferTrust(this.client, params, askTrust);
          if (params.attachments) this.onImages(runId);
          const target = this.target ?? this.defaultTarget;
          this.target = undefined;
          this.panel?.dispose();
          target.onLaunched(runId);
        } catch (err) {
          this.post({ type: 'error', message: errorMessage(err) });
        }
        break;
      }
      case 'launchWorkflow': {
        const budget = parseBudget(msg.budget ?? '');
        if (budget.error) {
          this.post({ type: 'error', message: budget.error });
          break;
        }
        this.post({ type: 'launching' });
        const params: LaunchWorkflowParams = { workflow: msg.workflow, ...parseArgs(msg.args ?? '') };
        if (budget.budget !== undefined) params.budget = budget.budget;
        const root = this.workspaceRoot();
        if (root) params.root = root;
        const model = vscode.workspace.getConfiguration('boo').get<string>('model')?.trim();
        if (model) params.model = model;
        withImages(params, toLaunchAttachments(msg.images ?? [], root), msg.vision === true);
        try {
          const { runId } = await launchWorkflowOrOfferTrust(this.client, params, askTrust);
          if (params.attachments) this.onImages(runId);
          const target = this.target ?? this.defaultTarget;
          this.target = undefined;
          this.panel?.dispose();
          target.onLaunched(runId);
        } catch (err) {
          this.post({ type: 'error', message: errorMessage(err) });
        }
        break;
      }
    }
  }

  dispose(): void {
    this.panel?.dispose();
  }
}
