// The language client: starts `boo serve`, forwards boo notifications, types the requests.

import * as vscode from 'vscode';
import { LanguageClient, LanguageClientOptions, ServerOptions, State, TransportKind, ResponseError } from 'vscode-languageclient/node';
import type {
  CancelRunResult,
  ExportFormat,
  ExportRunResult,
  GetAttachmentResult,
  GetRunResult,
  GetModelCallsParams,
  GetModelCallsResult,
  GetTracesParams,
  ListAgentsParams,
  ListAgentsResult,
  SpawnAgentParams,
  SpawnAgentResult,
  GetTracesResult,
  LaunchFlowParams,
  LaunchFlowResult,
  LaunchWorkflowParams,
  LaunchWorkflowResult,
  ListFlowsResult,
  ListRunsParams,
  ListRunsResult,
  Notification,
  Requests,
} from './protocol';
import { NOTIFICATION_METHODS } from './protocol';
import { ServerSource, missingServerMessage, resolveServer } from './serverPath';
import type { ListWorkflowsResult } from './workflows';

export type LaunchParams = LaunchFlowParams;

/** The server this window runs, once it answered `initialize`. */
export interface ServerInfo {
  path: string;
  source: ServerSource;
  version?: string;
  protocolVersion?: number;
}

export class BooClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<LanguageClient> | undefined;
  private readonly notifications = new vscode.EventEmitter<Notification>();
  private readonly stateChanged = new vscode.EventEmitter<'running' | 'stopped'>();
  readonly onNotification = this.notifications.event;
  readonly onDidChangeState = this.stateChanged.event;
  readonly output: vscode.LogOutputChannel;

  /** Which server runs (path, where it came from, version), once started. */
  serverInfo: ServerInfo | undefined;

  constructor(private readonly extensionDir?: string) {
    this.output = vscode.window.createOutputChannel('boo', { log: true });
  }

  get isRunning(): boolean {
    return this.client?.state === State.Running;
  }

  /** Starts the server once; later calls wait for the same start. */
  async ensureStarted(): Promise<LanguageClient> {
    if (this.client && this.client.state === State.Running) return this.client;
    if (!this.starting) {
      this.starting = this.start().finally(() => {
        this.starting = undefined;
      });
    }
    return this.starting;
  }

  private async start(): Promise<LanguageClient> {
    const cfg = vscode.workspace.getConfiguration('boo');
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const extraEnv = cfg.get<Record<string, string>>('env') ?? {};
    const env: Record<string, string | undefined> = { ...process.env, ...extraEnv };
    const resolved = resolveServer(cfg.get<string>('serverPath'), env.PATH, folder, this.extensionDir);
    if (!resolved.ok) {
      const message = missingServerMessage(resolved.reason);
      this.output.error(message);
      void this.offerFix(message);
      throw new Error(message);
    }
    const initializationOptions: Record<string, unknown> = { diagnostics: cfg.get<boolean>('diagnostics', true) };
    const dbPath = cfg.get<string>('dbPath')?.trim();
    if (dbPath) initializationOptions.dbPath = dbPath;
    const model = cfg.get<string>('model')?.trim();
    if (model) initializationOptions.model = model;
    const maxParallel = cfg.get<number | null>('maxParallelAgents');
    if (typeof maxParallel === 'number' && maxParallel > 0) initializationOptions.maxParallelAgents = maxParallel;

    const serverOptions: ServerOptions = {
      command: resolved.path,
      args: ['serve'],
      transport: TransportKind.stdio,
      options: { env, cwd: folder },
    };
    const clientOptions: LanguageClientOptions = {
      // Any file may carry a finding: diagnostics for every file: URI are shown.
      documentSelector: [{ scheme: 'file' }],
      diagnosticCollectionName: 'boo',
      outputChannel: this.output,
      initializationOptions,
      middleware: {
        // Findings of severity "info" arrive as Hint, which the Problems panel does not
        // list; a verified finding is worth seeing there, so Hints become Information.
        handleDiagnostics: (uri, diagnostics, next) => {
          for (const d of diagnostics) {
            if (d.severity === vscode.DiagnosticSeverity.Hint) d.severity = vscode.DiagnosticSeverity.Information;
          }
          next(uri, diagnostics);
        },
      },
      initializationFailedHandler: (err) => {
        this.output.error(`initialize failed: ${String(err)}`);
        return false;
      },
    };
    const client = new LanguageClient('boo', 'boo', serverOptions, clientOptions);
    for (const method of NOTIFICATION_METHODS) {
      client.onNotification(method, (params: unknown) => {
        this.notifications.fire({ method, params } as Notification);
      });
    }
    client.onDidChangeState((e) => {
      this.stateChanged.fire(e.newState === State.Running ? 'running' : 'stopped');
    });
    this.client = client;
    try {
      await client.start();
    } catch (err) {
      const message = `boo: the server at ${resolved.path} did not start: ${errorMessage(err)}`;
      this.output.error(message);
      void this.offerFix(message);
      this.client = undefined;
      await client.dispose().catch(() => undefined);
      throw new Error(message);
    }
    const init = client.initializeResult as { serverInfo?: { version?: string }; capabilities?: { experimental?: { boo?: { protocolVersion?: number } } } } | undefined;
    this.serverInfo = {
      path: resolved.path,
      source: resolved.source,
      version: init?.serverInfo?.version,
      protocolVersion: init?.capabilities?.experimental?.boo?.protocolVersion,
    };
    this.output.info(`boo server started: ${resolved.path} serve (${resolved.source}, version ${this.serverInfo.version ?? 'unknown'})`);
    return client;
  }

  private async offerFix(message: string): Promise<void> {
    const pick = await vscode.window.showErrorMessage(message, 'Open Setting', 'Show Log');
    if (pick === 'Open Setting') {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'boo.serverPath');
    } else if (pick === 'Show Log') {
      this.output.show();
    }
  }

  async restart(): Promise<void> {
    const old = this.client;
    this.client = undefined;
    this.serverInfo = undefined;
    if (old) await old.stop().catch(() => undefined);
    await this.ensureStarted();
  }

  /** A boo request, typed by the `Requests` table of protocol.ts. */
  async request<M extends keyof Requests>(method: M, params: Requests[M]['params']): Promise<Requests[M]['result']> {
    const client = await this.ensureStarted();
    return client.sendRequest<Requests[M]['result']>(method, params);
  }

  listFlows(): Promise<ListFlowsResult> {
    return this.request('boo/listFlows', {});
  }
  launchFlow(params: LaunchParams): Promise<LaunchFlowResult> {
    return this.request('boo/launchFlow', params);
  }
  /** boo/listWorkflows (not in protocol.ts's typed table yet: see workflows.ts). */
  async listWorkflows(root?: string): Promise<ListWorkflowsResult> {
    const client = await this.ensureStarted();
    return client.sendRequest<ListWorkflowsResult>('boo/listWorkflows', root ? { root } : {});
  }
  launchWorkflow(params: LaunchWorkflowParams): Promise<LaunchWorkflowResult> {
    return this.request('boo/launchWorkflow', params);
  }
  /** Trusts a folder (its own .boo/ flows may run) or, with false, withdraws that. */
  trustRoot(root: string, trusted: boolean): Promise<{ root: string; trusted: boolean }> {
    return this.request('boo/trustRoot', { root, trusted });
  }
  listRuns(params: ListRunsParams): Promise<ListRunsResult> {
    return this.request('boo/listRuns', params);
  }
  getRun(runId: string, transcript = false): Promise<GetRunResult> {
    return this.request('boo/getRun', { runId, transcript });
  }
  cancelRun(runId: string): Promise<CancelRunResult> {
    return this.request('boo/cancelRun', { runId });
  }
  exportRun(runId: string, format: ExportFormat): Promise<ExportRunResult> {
    return this.request('boo/exportRun', { runId, format });
  }
  getTraces(params: GetTracesParams): Promise<GetTracesResult> {
    return this.request('boo/getTraces', params);
  }
  /** A run image's bytes (base64). */
  getAttachment(attachmentId: string): Promise<GetAttachmentResult> {
    return this.request('boo/getAttachment', { attachmentId });
  }
  /** A background agent: a run of one persona on one prompt. */
  spawnAgent(params: SpawnAgentParams): Promise<SpawnAgentResult> {
    return this.request('boo/spawnAgent', params);
  }
  listAgents(params: ListAgentsParams): Promise<ListAgentsResult> {
    return this.request('boo/listAgents', params);
  }
  /** A run's model calls (feature "modelCalls"), paged like traces. */
  getModelCalls(params: GetModelCallsParams): Promise<GetModelCallsResult> {
    return this.request('boo/getModelCalls', params);
  }

  private disposed = false;

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const c = this.client;
    this.client = undefined;
    this.notifications.dispose();
    this.stateChanged.dispose();
    if (c) await c.dispose(2000).catch(() => undefined);
    this.output.dispose();
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof ResponseError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

export function errorCode(err: unknown): number | undefined {
  return err instanceof ResponseError ? err.code : typeof (err as { code?: unknown })?.code === 'number' ? (err as { code: number }).code : undefined;
}

/** The trust prompt: a modal warning with one button. */
export async function askTrust(message: string): Promise<boolean> {
  const trust = 'Trust Folder and Launch';
  return (await vscode.window.showWarningMessage(message, { modal: true }, trust)) === trust;
}
