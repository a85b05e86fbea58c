// Live pane states of the runs this window watches, fed by boo notifications.
// No vscode import: the chat handler tests drive it with recorded notifications.

import type { GetRunResult, Notification } from './protocol';
import { isRunTerminal } from './protocol';
import { Action, PaneState, emptyState, reduce } from './state';

export interface RunFetcher {
  getRun(runId: string, transcript: boolean): Promise<GetRunResult>;
}

export type RunListener = (state: PaneState, actions: Action[]) => void;
export interface Disposable {
  dispose(): void;
}

export class RunStore {
  private readonly runs = new Map<string, PaneState>();
  private readonly listeners = new Map<string, Set<RunListener>>();
  private readonly anyListeners = new Set<(n: Notification) => void>();
  private readonly holds = new Map<string, number>();
  private readonly resyncing = new Set<string>();
  private readonly gapTimers = new Map<string, ReturnType<typeof setTimeout> | undefined>();
  private readonly lastGapResync = new Map<string, number>();
  private readonly errorListeners = new Map<string, Set<(message: string) => void>>();
  /** Workflow runs whose run-level facts (budget, phases, log) were asked for. */
  private readonly infoAsked = new Set<string>();
  /** Runs whose run-level facts (attachments) are wanted as soon as the run is known. */
  private readonly infoWanted = new Set<string>();
  /** How many refetches were made because of a seq gap (for tests and the log). */
  resyncCount = 0;

  constructor(
    private readonly fetcher: RunFetcher,
    private readonly log: (msg: string) => void = () => undefined,
    private readonly now: () => number = () => Date.now(),
  ) {}

  get(runId: string): PaneState | undefined {
    return this.runs.get(runId);
  }

  /** Every boo notification, for views that list runs (history, status bar). */
  onAny(listener: (n: Notification) => void): Disposable {
    this.anyListeners.add(listener);
    return { dispose: () => this.anyListeners.delete(listener) };
  }

  handle(n: Notification): void {
    const runId = n?.params?.runId;
    if (!runId) return;
    let st = this.runs.get(runId);
    if (!st && n.method === 'boo/runStarted') {
      st = emptyState(runId);
    }
    if (st) this.dispatch(runId, st, [{ type: 'notification', notification: n, now: this.now() }]);
    if (n.method === 'boo/runStarted') this.askRunInfo(runId);
    for (const l of this.anyListeners) l(n);
  }

  /**
   * A workflow run's budget, meta.phases and earlier log lines are not in its
   * notifications: one boo/getRun (no transcripts) brings them. Never throws.
   */
  private askRunInfo(runId: string): void {
    const st = this.runs.get(runId);
    if (!st || this.infoAsked.has(runId)) return;
    if (st.kind !== 'workflow' && !this.infoWanted.has(runId)) return;
    this.infoAsked.add(runId);
    this.infoWanted.delete(runId);
    this.fetcher.getRun(runId, false).then(
      (result) => {
        const cur = this.runs.get(runId);
        if (cur) this.dispatch(runId, cur, [{ type: 'runInfo', run: result.run }]);
      },
      (err) => this.log(`boo/getRun ${runId} (workflow facts) failed: ${err instanceof Error ? err.message : String(err)}`),
    );
  }

  /**
   * Asks for a run's run-level facts (its attachments: `Run.attachments`, which the
   * notifications do not carry) once: now when the run is known, else on its
   * boo/runStarted. For runs this window launched with images. Never throws.
   */
  wantRunInfo(runId: string): void {
    this.infoWanted.add(runId);
    if (this.runs.get(runId)?.hydrated) this.askRunInfo(runId);
  }

  private dispatch(runId: string, start: PaneState, actions: Action[]): void {
    let st = start;
    for (const a of actions) st = reduce(st, a);
    this.runs.set(runId, st);
    for (const l of this.listeners.get(runId) ?? []) l(st, actions);
    if (st.needsResync) this.scheduleGapResync(runId);
    this.maybeForget(runId);
  }

  /** A gap triggers a refetch at most once a second per run (the snapshot may lag). */
  private scheduleGapResync(runId: string): void {
    if (this.gapTimers.has(runId)) return;
    const wait = Math.max(0, (this.lastGapResync.get(runId) ?? -Infinity) + 1000 - this.now());
    const fire = () => {
      this.gapTimers.delete(runId);
      if (!this.runs.get(runId)?.needsResync) return;
      this.lastGapResync.set(runId, this.now());
      void this.resync(runId, 'gap');
    };
    if (wait === 0) {
      this.gapTimers.set(runId, undefined);
      queueMicrotask(fire);
    } else {
      this.gapTimers.set(runId, setTimeout(fire, wait));
    }
  }

  /**
   * Follows a run: calls the listener with the current state now (when known) and after
   * every change. Fetches the run (with transcripts) when this window has not seen it.
   */
  watch(runId: string, listener: RunListener, onError?: (message: string) => void): Disposable {
    let set = this.listeners.get(runId);
    if (!set) this.listeners.set(runId, (set = new Set()));
    set.add(listener);
    let errSet = this.errorListeners.get(runId);
    if (onError) {
      if (!errSet) this.errorListeners.set(runId, (errSet = new Set()));
      errSet.add(onError);
    }
    this.holds.set(runId, (this.holds.get(runId) ?? 0) + 1);
    const st = this.runs.get(runId);
    if (st && st.hydrated) listener(st, []);
    else {
      if (!st) this.runs.set(runId, emptyState(runId));
      void this.resync(runId, 'open');
    }
    let disposed = false;
    return {
      dispose: () => {
        if (disposed) return;
        disposed = true;
        set!.delete(listener);
        if (onError) errSet?.delete(onError);
        const n = (this.holds.get(runId) ?? 1) - 1;
        if (n <= 0) this.holds.delete(runId);
        else this.holds.set(runId, n);
        this.maybeForget(runId);
      },
    };
  }

  /** Refetches a run with its transcripts and folds it in (gaps, reopen, manual refresh). Never throws. */
  async resync(runId: string, why: 'gap' | 'open' | 'refresh'): Promise<void> {
    if (this.resyncing.has(runId)) return;
    this.resyncing.add(runId);
    if (why === 'gap') this.resyncCount++;
    try {
      const result = await this.fetcher.getRun(runId, true);
      const st = this.runs.get(runId) ?? emptyState(runId);
      this.dispatch(runId, st, [{ type: 'hydrate', result, now: this.now() }]);
    } catch (err) {
      const message = `boo/getRun ${runId} failed: ${err instanceof Error ? err.message : String(err)}`;
      this.log(message);
      for (const l of this.errorListeners.get(runId) ?? []) l(message);
    } finally {
      this.resyncing.delete(runId);
    }
  }

  private maybeForget(runId: string): void {
    const st = this.runs.get(runId);
    if (!st) return;
    if ((this.holds.get(runId) ?? 0) === 0 && isRunTerminal(st.status) && !this.resyncing.has(runId)) {
      this.runs.delete(runId);
      this.infoAsked.delete(runId);
      this.infoWanted.delete(runId);
      this.listeners.delete(runId);
      this.errorListeners.delete(runId);
    }
  }

  runningRunIds(): string[] {
    return [...this.runs.values()].filter((s) => s.hydrated && s.status === 'running').map((s) => s.runId);
  }
}
