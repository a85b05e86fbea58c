// Messages between the extension host and its webviews (not the boo wire protocol).

import type { Band, Flow, GetRunResult, ModelCall, Trace } from './protocol';
import type { PendingImage } from './attachments';
import type { Action, PaneState } from './state';
import type { Workflow } from './workflows';

export type PaneMenuAction = 'copy' | 'saveMarkdown' | 'saveJson' | 'sendToChat' | 'traces' | 'timeline' | 'cancel' | 'refresh';

/** Host → Orchestrator pane. */
export type ToPane =
  | { type: 'state'; state: PaneState }
  | { type: 'actions'; actions: Action[] }
  | { type: 'empty'; message?: string }
  | { type: 'notice'; level: 'info' | 'error'; message: string }
  /** A run image's bytes (base64), or why they could not be fetched. */
  | { type: 'attachmentData'; attachmentId: string; mimeType: string; data: string | null; error?: string }
  /** Expand a step and scroll its stream to a model turn (the run timeline's click). */
  | { type: 'reveal'; stepId: string; turn: number | null }
  /** A restored pane: elapsed times count up to `at` (ms), not the clock. */
  | { type: 'frozen'; at: number };

/** Orchestrator pane → host. */
export type FromPane =
  | { type: 'ready'; runId: string | null }
  | { type: 'resync'; runId: string }
  | { type: 'menu'; action: PaneMenuAction; runId: string }
  | { type: 'openFile'; path: string; line: number }
  | { type: 'launch' }
  /** The bytes of a run's image, for its thumbnail (answered with `attachmentData`). */
  | { type: 'getAttachment'; attachmentId: string }
  /** Show a run's image full size. */
  | { type: 'openAttachment'; attachmentId: string };

export interface LauncherDefaults {
  band: Band;
  /** 'workflows' opens the Workflows tab. */
  tab?: 'flows' | 'workflows';
  workflow?: string;
  category?: string;
  flow?: string;
  question?: string;
  fast?: boolean;
}

/** Host → launcher. */
export type ToLauncher =
  | {
      type: 'flows';
      flows: Flow[];
      defaults: LauncherDefaults;
      root: string | null;
      /** boo/listWorkflows; null when the server could not list them (workflowsError says why). */
      workflows: Workflow[] | null;
      workflowsError: string | null;
      /** Whether the folder is trusted (its project flows and workflows run only then). */
      trusted: boolean;
      /** The `boo.visionModel` setting: the model takes images (the toggle's default). */
      vision?: boolean;
    }
  /** Images the host read (picked, or dropped from the Explorer), and the ones it refused. */
  | { type: 'images'; images: PendingImage[]; errors: string[] }
  | { type: 'launching' }
  | { type: 'error'; message: string };

/** Launcher → host. */
export type FromLauncher =
  | { type: 'ready' }
  | { type: 'launch'; flow: string; band: Band; question: string; fast: boolean; images?: PendingImage[]; vision?: boolean }
  /** args and budget as typed: the host parses them (workflows.ts). */
  | { type: 'launchWorkflow'; workflow: string; args: string; budget: string; images?: PendingImage[]; vision?: boolean }
  /** Open the file picker for images; `already` images are attached. */
  | { type: 'pickImages'; already: number }
  /** Files dropped from the Explorer (their URIs): the host reads them. */
  | { type: 'addUris'; uris: string[]; already: number }
  | { type: 'cancel' };

/** Host → traces view. `calls`: boo/getModelCalls (null when the server does not record them, `callsNote` says why). */
export type ToTraces =
  | { type: 'traces'; run: GetRunResult; traces: Trace[]; calls?: ModelCall[] | null; callsNote?: string | null }
  /** A live boo/modelCall of the shown run (a finish replaces its start by callId). */
  | { type: 'modelCall'; call: ModelCall }
  | { type: 'error'; message: string };

/** Traces view → host. */
export type FromTraces = { type: 'ready' } | { type: 'refresh' } | { type: 'timeline' };

/** Host → timeline view. */
export type ToTimeline =
  | { type: 'timeline'; run: GetRunResult; traces: Trace[]; calls: ModelCall[]; callsNote?: string | null }
  | { type: 'modelCall'; call: ModelCall }
  | { type: 'trace'; trace: Trace }
  | { type: 'error'; message: string };

/** Timeline view → host. `reveal`: scroll the step's stream in the pane to the turn; `restore`: the pane as it was at that turn's end. */
export type FromTimeline = { type: 'ready' } | { type: 'refresh' } | { type: 'reveal'; stepId: string; turn: number | null } | { type: 'restore'; stepId: string; turn: number };

/** The state a webview keeps with vscode.setState (restored after a window reload). */
export interface PanePersisted {
  runId: string | null;
}
