// The workflow launch helpers the launcher and the chat share. The wire types of
// boo/listWorkflows are protocol.ts's (checked against the server's Rust types by
// tests/wire_types.rs); they are re-exported here for the modules that import them
// from this file.
export type {
  ListWorkflowsResult,
  Workflow,
  WorkflowError as WorkflowCatalogError,
  WorkflowPhase,
  WorkflowSource,
} from './protocol';

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
