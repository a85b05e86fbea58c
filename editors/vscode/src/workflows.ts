// Workflow-side wire types the client reads that are not in protocol.ts yet (boo/listWorkflows
// and its Workflow entries, PROTOCOL.md "Additions … Workflows" and "Trusted roots"), and the
// launch helpers the launcher and the chat share. Kept apart from protocol.ts, which
// tests/wire_types.rs checks against the server's Rust types field by field: these move
// there once the server declares them.

/** Where a workflow comes from; a project one runs only in a trusted root. */
export type WorkflowSource = 'builtin' | 'user' | 'project';

export interface WorkflowPhase {
  title: string;
  detail?: string | null;
}

/** One entry of `boo/listWorkflows`. */
export interface Workflow {
  name: string;
  description: string;
  whenToUse?: string | null;
  phases?: WorkflowPhase[];
  source: WorkflowSource;
  path?: string | null;
}

export interface WorkflowCatalogError {
  file: string;
  line?: number | null;
  column?: number | null;
  message: string;
}

export interface ListWorkflowsResult {
  workflows: Workflow[];
  errors?: WorkflowCatalogError[];
  /** Whether the user trusts the root: its project workflows run only then. */
  trusted?: boolean;
}

/**
 * The launcher's args field: valid JSON is sent as JSON, anything else as the string
 * itself; an empty field sends no args (the script sees `undefined`).
 */
export function parseArgs(text: string): { args?: unknown } {
  const t = text.trim();
  if (!t) return {};
  try {
    return { args: JSON.parse(t) };
  } catch {
    return { args: t };
  }
}

/**
 * The launcher's budget field: empty means no budget; otherwise a positive whole number
 * of output tokens (thousands separators and a trailing k allowed: "20k", "20,000").
 * Returns an error message for anything else.
 */
export function parseBudget(text: string): { budget?: number; error?: string } {
  const t = text.trim().replace(/[,_\s]/g, '');
  if (!t) return {};
  const m = /^(\d+(?:\.\d+)?)(k|K)?$/.exec(t);
  const n = m ? Math.round(Number(m[1]) * (m[2] ? 1000 : 1)) : NaN;
  if (!Number.isFinite(n) || n <= 0) return { error: `The budget is a number of output tokens, like 20000 or 20k (got "${text.trim()}"); leave it empty for no budget.` };
  return { budget: n };
}

/**
 * `/workflow <name> <args>` in chat: the first word names the workflow, the rest is
 * its args (JSON when it parses, else text). Null when no name is given.
 */
export function parseWorkflowCommand(prompt: string): { name: string; args?: unknown } | null {
  const t = prompt.trim();
  if (!t) return null;
  const m = /^(\S+)\s*([\s\S]*)$/.exec(t)!;
  return { name: m[1], ...parseArgs(m[2]) };
}
