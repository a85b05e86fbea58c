// The trust model on the client side, free of the vscode API so it can be unit-tested:
// a project flow in a folder the user has not trusted is refused with -32005; the
// user is asked, the folder is trusted through boo/trustRoot, and the launch repeats.
import type { Flow, LaunchFlowParams, LaunchFlowResult, LaunchWorkflowParams, LaunchWorkflowResult, TrustRootResult } from './protocol';

/** The server's answer to a project flow launched in a folder the user has not trusted. */
export const UNTRUSTED_ROOT = -32005;

/**
 * How the launcher marks a flow: a project flow (the folder's own `.boo/flows/`) says so,
 * and says "untrusted" until the user trusts the folder (it is refused until then).
 */
export function projectFlowMark(flow: Pick<Flow, 'source'>, trusted: boolean): string | null {
  if (flow.source !== 'project') return null;
  return trusted ? 'project' : 'project, untrusted';
}

/** Whether a request failed because the folder is not trusted. */
export function isUntrusted(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === UNTRUSTED_ROOT;
}

/**
 * Launches a flow; a project flow in an untrusted folder asks (modal) whether to trust
 * the folder, trusts it through boo/trustRoot and launches again. Declining rethrows
 * the server's refusal.
 */
export async function launchOrOfferTrust(
  client: {
    launchFlow(p: LaunchFlowParams): Promise<LaunchFlowResult>;
    trustRoot(root: string, trusted: boolean): Promise<TrustRootResult>;
  },
  params: LaunchFlowParams,
  ask: (message: string) => Thenable<boolean>,
): Promise<LaunchFlowResult> {
  try {
    return await client.launchFlow(params);
  } catch (err) {
    if (!isUntrusted(err) || !params.root) throw err;
    const ok = await ask(
      `"${params.flow}" is this folder's own flow (${params.root}/.boo/), and the folder is not trusted. ` +
        'Review its .boo/ folder first. Trust this folder and launch?',
    );
    if (!ok) throw err;
    await client.trustRoot(params.root, true);
    return client.launchFlow(params);
  }
}


/**
 * The same for a workflow: a project workflow (`.boo/workflows/`, `.claude/workflows/`) in
 * an untrusted folder asks, trusts the folder and launches again.
 */
export async function launchWorkflowOrOfferTrust(
  client: {
    launchWorkflow(p: LaunchWorkflowParams): Promise<LaunchWorkflowResult>;
    trustRoot(root: string, trusted: boolean): Promise<TrustRootResult>;
  },
  params: LaunchWorkflowParams,
  ask: (message: string) => Thenable<boolean>,
): Promise<LaunchWorkflowResult> {
  try {
    return await client.launchWorkflow(params);
  } catch (err) {
    if (!isUntrusted(err) || !params.root) throw err;
    const what = params.workflow ?? params.scriptPath ?? 'this script';
    const ok = await ask(
      `"${what}" is this folder's own workflow (${params.root}/.boo/workflows/ or .claude/workflows/), and the folder is not trusted. ` +
        'Review those scripts first. Trust this folder and launch?',
    );
    if (!ok) throw err;
    await client.trustRoot(params.root, true);
    return client.launchWorkflow(params);
  }
}
