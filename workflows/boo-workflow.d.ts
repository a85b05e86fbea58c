// boo-workflow.d.ts — the globals a boo workflow script sees, for editors that
// complete and check JavaScript with TypeScript's declarations.
//
// A workflow is a `.js` (or `.mjs`) file that starts with `export const meta = {…}`
// (a pure literal) and whose body runs inside an async function: top-level `await`
// and `return` work, and the returned value is the run's result. boo runs it in
// QuickJS on its own thread; every `agent()` call is a read-only qwen agent of the
// run, answered from boo's content cache when the same call ran before on the same
// project. Reference this file from a script with
//
//   /// <reference path="./boo-workflow.d.ts" />
//
// (`boo workflow init <name>` writes both). Written for boo; see README.md,
// "Workflows", and docs/protocol.md.

/** One entry of `meta.phases`: the launcher and the run pane group agents by it. */
interface BooWorkflowPhase {
  title: string;
  detail?: string;
}

/** `export const meta`: read as a pure literal before anything runs. */
interface BooWorkflowMeta {
  /** The name the workflow is listed and launched under. */
  name: string;
  /** One line: what it does. */
  description: string;
  /** When a user should pick it. */
  whenToUse?: string;
  /** The phases the script opens with `phase()`, in order. */
  phases?: BooWorkflowPhase[];
}

/** A JSON Schema (the subset boo validates: type, properties, required, items,
 * enum, const, minLength/maxLength, minItems/maxItems, additionalProperties,
 * anyOf/oneOf/allOf; other keywords are ignored). */
type BooJsonSchema = { [key: string]: unknown };

/** The options of `agent()`. Unknown keys are allowed and become part of the call's
 * cache key. */
interface BooAgentOptions {
  /** The line shown for this agent (default: the prompt's first line, cut to 80). */
  label?: string;
  /** The phase this agent belongs to (default: the latest `phase()` title). */
  phase?: string;
  /** A JSON Schema: the agent is told it, its reply's last ```json block is
   * validated, and a reply that does not conform is retried (5 attempts in all).
   * `agent()` then resolves to the validated value. */
  schema?: BooJsonSchema;
  /** A model the endpoint serves; Claude Code's `haiku`, `sonnet`, `opus` and
   * `inherit` (and any name in boo's alias table) map to a configured model,
   * by default the run's. */
  model?: string;
  /** Recorded on the step; qwen has no setting for it, so it changes nothing. */
  effort?: string;
  /** One of boo's personas (e.g. `"adversarial-validator"`): its brief is
   * prepended to the prompt. Anything else runs as a plain workflow agent. */
  agentType?: string;
  /** Accepted and ignored: every boo agent is read-only. */
  isolation?: "worktree" | string;
  /** Which of the run's attached images (launched with `attachments` or
   * `--attach`) this agent gets with its prompt, by name. Absent: all of them;
   * `[]`: none. A name the run was not launched with fails the call. */
  attachments?: string[];
  [key: string]: unknown;
}

/**
 * boo's extension of the Claude Code API (not in Claude Code): with
 * `background: true`, `agent()` starts the agent and returns its id (a string) at
 * once; collect its answer later with `await result(id)`. The agent is a step of
 * the run like any other (same slots, budget, cache; `background` is not part of
 * the cache key). An agent never collected is still waited for before the run
 * ends, so its step and findings land in the run.
 */
declare function agent(prompt: string, opts: BooAgentOptions & { background: true }): string;

/**
 * Runs one read-only agent and resolves to its final text (or, with `schema`, to
 * the validated value). Resolves to `null` when the agent fails for good; rejects
 * when the run's budget is spent or the run made 1,000 `agent()` calls.
 */
declare function agent(prompt: string, opts?: BooAgentOptions): Promise<any>;

/**
 * boo's extension: the answer of a background agent started with
 * `agent(prompt, { background: true })` — what `agent()` would have resolved to
 * (its text, the validated value with `schema`, or `null` when it failed for good).
 * May be awaited more than once. Rejects for an id this script did not get.
 */
declare function result(id: string): Promise<any>;

/**
 * Starts every thunk at once and waits for all of them (a barrier). A thunk that
 * throws or rejects becomes `null`; `parallel` itself never rejects. At most 4,096
 * thunks per call.
 */
declare function parallel<T>(thunks: Array<() => T | Promise<T>>): Promise<Array<T | null>>;

/**
 * Moves every item through the stages on its own (no barrier between stages). A
 * stage is called `(previous, item, index)`; the first stage's `previous` is the
 * item itself. A stage that throws turns its item into `null` and skips its later
 * stages. At most 4,096 items per call.
 */
declare function pipeline<I>(
  items: I[],
  ...stages: Array<(previous: any, item: I, index: number) => any>
): Promise<any[]>;

/** Opens a phase: later agents belong to it (and to the next wave). */
declare function phase(title: string): void;

/** A narrator line in the run's log. */
declare function log(...message: unknown[]): void;

/**
 * Runs another workflow inline — a name from the catalog (`boo workflows`) or a
 * `.js` file relative to the project root — with `args`; resolves to its return
 * value. One level of nesting; it shares this run's agent slots, budget and call cap.
 */
declare function workflow(nameOrRef: string, args?: unknown): Promise<any>;

/** The launch's `args`, verbatim (`undefined` when the launch gave none). */
declare const args: any;

/** The run's output-token budget. */
declare const budget: {
  /** The ceiling, or `null` when the run has none. */
  readonly total: number | null;
  /** Output tokens the run's agents have spent so far (cached answers cost nothing). */
  spent(): number;
  /** `total - spent()`, or `Infinity` without a budget. */
  remaining(): number;
};

/** Writes to the run's log, like `log()`. */
declare const console: {
  log(...data: unknown[]): void;
  info(...data: unknown[]): void;
  warn(...data: unknown[]): void;
  error(...data: unknown[]): void;
  debug(...data: unknown[]): void;
};

/** Timers run on boo's clock while the script waits (their time is not the script's CPU time). */
declare function setTimeout(callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]): number;
declare function clearTimeout(id: number | undefined): void;

// `meta` is the script's own `export const meta`; annotate it for checking with
//   /** @type {BooWorkflowMeta} */
//   export const meta = { name: '…', description: '…' };

// Resumable runs re-execute the script: these would make a second run differ, so
// boo's runtime throws when they are called. Pass times and seeds in `args`.
interface DateConstructor {
  /** @deprecated Throws in a boo workflow: pass a timestamp in `args`. */
  now(): number;
}
interface Math {
  /** @deprecated Throws in a boo workflow: derive variety from `args` or the index. */
  random(): number;
}
