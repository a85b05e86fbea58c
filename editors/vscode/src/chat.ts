// `@boo /flow <focus>`: launches a flow at once with defaults, streams progress into the
// chat response, links to the Orchestrator pane and ends with the report's summary.
// `@boo /workflow <name> <args>` does the same for a workflow (args: JSON or text).
// Only type imports from vscode: the unit tests call the handler with fakes.

import type * as vscode from 'vscode';
import type { Band, LaunchAttachment, LaunchWorkflowParams } from './protocol';
import { withImages } from './attachments';
import { parseWorkflowCommand } from './workflows';
import { isRunTerminal, isStepTerminal } from './protocol';
import type { LaunchParams } from './client';
import type { Disposable, RunListener } from './runStore';
import { PaneState, elapsedMs, formatElapsed, formatTokens, reportSummary, runTokens } from './state';

export interface ChatDeps {
  launch(params: LaunchParams): Promise<{ runId: string }>;
  /** Launches a workflow (asking to trust the folder for a project one). */
  launchWorkflow(params: LaunchWorkflowParams): Promise<{ runId: string }>;
  watch(runId: string, listener: RunListener, onError?: (message: string) => void): Disposable;
  cancel(runId: string): Promise<unknown>;
  /** The flow `/flow` launches (setting boo.chatFlow). */
  flowName(): string;
  /** The workspace folder the agents read. */
  root(): string | undefined;
  model(): string | undefined;
  /** A Markdown string whose command links to the given commands are trusted. */
  trustedMarkdown(value: string, commands: string[]): string | vscode.MarkdownString;
  errorMessage(err: unknown): string;
  now?: () => number;
  /**
   * The images among the request's references (image files, pasted images), as the
   * launch sends them, and the ones refused. Absent: references are not read.
   */
  images?(references: readonly unknown[]): Promise<{ images: LaunchAttachment[]; errors: string[] }>;
  /** The `boo.visionModel` setting. */
  vision?(): boolean;
  /** Called with the runId of a launch that carried images. */
  onImages?(runId: string): void;
}

export const OPEN_RUN_COMMAND = 'boo.ui.openRun';
export const CHAT_BAND: Band = 'small';

export interface FlowChatResult extends vscode.ChatResult {
  metadata?: { runId?: string; status?: string; command?: string };
}

export function openRunLink(runId: string, title = 'Open the Orchestrator pane'): string {
  return `[${title}](command:${OPEN_RUN_COMMAND}?${encodeURIComponent(JSON.stringify([runId]))})`;
}

function mdEscape(s: string): string {
  return s.replace(/([\\`*_[\]<>|])/g, '\\$1');
}

export const HELP =
  'Use `@boo /flow <focus>` to run a read-only flow on this workspace, for example ' +
  '`@boo /flow what could break in the new cache?`, or `@boo /workflow <name> <args>` to run a workflow script ' +
  '(args: JSON or plain text), for example `@boo /workflow deep-review {"paths": ["src/"]}`. ' +
  'The agents only read; the report cites `path:line`.';

export function createFlowChatHandler(deps: ChatDeps) {
  return async function handle(
    request: Pick<vscode.ChatRequest, 'prompt' | 'command'> & { references?: readonly unknown[] },
    _context: unknown,
    stream: Pick<vscode.ChatResponseStream, 'markdown' | 'progress' | 'button'>,
    token: Pick<vscode.CancellationToken, 'isCancellationRequested' | 'onCancellationRequested'>,
  ): Promise<FlowChatResult> {
    if (request.command !== 'flow' && request.command !== 'workflow') {
      stream.markdown(HELP);
      return { metadata: { command: request.command } };
    }
    const command = request.command;
    let flow: string;
    let what: string;
    let launch: () => Promise<{ runId: string }>;
    const root = deps.root();
    const model = deps.model();
    // Images referenced in the request go with the launch; a refused one stops it.
    let images: LaunchAttachment[] = [];
    if (deps.images && request.references?.length) {
      const got = await deps.images(request.references);
      if (got.errors.length) {
        stream.markdown(`**boo did not launch:** ${got.errors.map(mdEscape).join(' ')}`);
        return { errorDetails: { message: got.errors.join(' ') }, metadata: { command, status: 'not-launched' } };
      }
      images = got.images;
    }
    const vision = deps.vision?.() === true;
    if (command === 'workflow') {
      const parsed = parseWorkflowCommand(request.prompt);
      if (!parsed) {
        stream.markdown('Name the workflow to run: ' + HELP);
        return { metadata: { command } };
      }
      flow = parsed.name;
      what = 'workflow';
      const params: LaunchWorkflowParams = { workflow: parsed.name };
      if ('args' in parsed) params.args = parsed.args;
      if (root) params.root = root;
      if (model) params.model = model;
      withImages(params, images, vision);
      launch = () => deps.launchWorkflow(params);
    } else {
      const question = request.prompt.trim();
      if (!question) {
        stream.markdown('Tell the agents what to look at: ' + HELP);
        return { metadata: { command: 'flow' } };
      }
      flow = deps.flowName();
      what = CHAT_BAND;
      const params: LaunchParams = { flow, band: CHAT_BAND, input: { question } };
      if (root) params.root = root;
      if (model) params.model = model;
      withImages(params, images, vision);
      launch = () => deps.launch(params);
    }
    stream.progress(`Launching ${flow} (${what})…`);
    let runId: string;
    try {
      runId = (await launch()).runId;
    } catch (err) {
      const message = deps.errorMessage(err);
      stream.markdown(`**boo could not launch \`${flow}\`:** ${message}`);
      return { errorDetails: { message }, metadata: { command, status: 'not-launched' } };
    }
    if (images.length) deps.onImages?.(runId);
    const withWhat = images.length ? ` with ${images.length} image${images.length === 1 ? '' : 's'}` : '';
    stream.markdown(deps.trustedMarkdown(`Launched **${mdEscape(flow)}** (${what})${withWhat} — ${openRunLink(runId)}\n\n`, [OPEN_RUN_COMMAND]));

    const announced = new Map<string, string>();
    let rosterShown = false;
    let finalState: PaneState | undefined;
    let watchError: string | undefined;

    const report = (st: PaneState) => {
      if (!st.hydrated) return;
      if (!rosterShown && st.steps.length && st.kind !== 'workflow') {
        rosterShown = true;
        const agents = st.steps.filter((s) => s.kind === 'agent');
        stream.markdown(`Roster: ${agents.map((s) => `\`${s.agent ?? s.stepId}\``).join(', ') || '—'} (${st.steps.length} steps in ${new Set(st.steps.map((s) => s.wave)).size} waves)\n\n`);
      }
      for (const s of st.steps) {
        // A workflow's script step is the run itself: its end is the summary below.
        if (s.kind === 'script') continue;
        const prev = announced.get(s.stepId);
        if (prev === s.status) continue;
        if (s.status === 'running' && !prev) {
          announced.set(s.stepId, s.status);
          stream.progress(`${s.label}${s.agent ? ` (${s.agent})` : ''} is running…`);
        } else if (isStepTerminal(s.status)) {
          announced.set(s.stepId, s.status);
          if (s.status === 'skipped') continue;
          const mark = s.status === 'completed' ? '✓' : s.status === 'failed' ? '✗' : '–';
          const dur = s.startedAt && s.finishedAt ? ` · ${formatElapsed(Date.parse(s.finishedAt) - Date.parse(s.startedAt))}` : '';
          const err = s.status === 'failed' && s.error ? ` — ${s.error.split('\n')[0]}` : '';
          const phase = s.phase ? ` · ${mdEscape(s.phase)}` : '';
          const cached = s.cached ? ' · cached' : '';
          stream.markdown(`- ${mark} ${mdEscape(s.label)}${s.agent ? ` · ${mdEscape(s.agent)}` : ''}${phase}${cached}${s.cached ? '' : dur}${err}\n`);
        }
      }
    };

    await new Promise<void>((resolve) => {
      let sub: Disposable | undefined;
      let cancelSub: { dispose(): void } | undefined;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        sub?.dispose();
        cancelSub?.dispose();
        resolve();
      };
      cancelSub = token.onCancellationRequested(() => finish());
      sub = deps.watch(
        runId,
        (st) => {
          report(st);
          if (st.hydrated && isRunTerminal(st.status)) {
            finalState = st;
            finish();
          }
        },
        (message) => {
          watchError = message;
          finish();
        },
      );
      if (token.isCancellationRequested) finish();
      if (done) sub.dispose();
    });

    if (!finalState) {
      if (watchError) {
        stream.markdown(`\n**Lost track of the run:** ${watchError}\n`);
        return { errorDetails: { message: watchError }, metadata: { runId, command } };
      }
      // The user stopped the chat request: stop the run too.
      try {
        await deps.cancel(runId);
        stream.markdown('\nCancelled the run.\n');
      } catch (err) {
        stream.markdown(`\nThe run could not be cancelled: ${deps.errorMessage(err)}\n`);
      }
      return { metadata: { runId, status: 'cancelled', command } };
    }

    const st = finalState;
    const summaryLine = `\n**${st.status === 'completed' ? 'Completed' : st.status === 'failed' ? 'Failed' : 'Cancelled'}** in ${formatElapsed(elapsedMs(st, (deps.now ?? Date.now)()))} · ${formatTokens(runTokens(st))} tokens\n\n`;
    stream.markdown(summaryLine);
    if (st.status === 'completed' && st.report) {
      stream.markdown(reportSummary(st.report) + '\n\n');
    } else if (st.error) {
      stream.markdown(`**Error:** ${st.error}\n\n`);
    }
    stream.markdown(deps.trustedMarkdown(openRunLink(runId, 'Open the full report in the Orchestrator pane') + '\n', [OPEN_RUN_COMMAND]));
    stream.button({ command: OPEN_RUN_COMMAND, title: 'Open Orchestrator', arguments: [runId] });
    return { metadata: { runId, status: st.status, command } };
  };
}
