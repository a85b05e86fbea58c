// Background agents without vscode (the unit tests call these): the personas of the
// catalog, the one-line description of an agent, and what a notification means for the
// Background Agents view and the messages when agents end.

import type { AgentSummary, Flow, Notification } from './protocol';
import { isRunTerminal, isStepTerminal } from './protocol';
import { PaneState, formatElapsed, formatTokens, isChildRow, runTokens, stepTokens } from './state';

export function oneLine(s: string, max = 80): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

/** Persona names of the catalog (the agents of the flows), with the flows that use each. */
export function personasOf(flows: Flow[]): { persona: string; flows: string[] }[] {
  const by = new Map<string, Set<string>>();
  for (const f of flows) {
    for (const a of f.agents ?? []) {
      if (!a?.persona) continue;
      let s = by.get(a.persona);
      if (!s) by.set(a.persona, (s = new Set()));
      s.add(f.name);
    }
  }
  return [...by.entries()].map(([persona, fl]) => ({ persona, flows: [...fl].sort() })).sort((a, b) => a.persona.localeCompare(b.persona));
}

/**
 * A listed agent's identity: its run, or for a child an agent spawned (a step of the
 * run `runId`, named by `stepId`) the run and the step.
 */
export function agentKey(a: Pick<AgentSummary, 'runId' | 'stepId'>): string {
  return a.stepId ? `${a.runId}/${a.stepId}` : a.runId;
}

/**
 * An agent's tokens: from its run's pane state when this window follows it (a child:
 * its step's), else what the list says (`usage`), else `known` (a finished run's total
 * fetched once), else null.
 */
export function agentTokens(a: Pick<AgentSummary, 'runId' | 'stepId' | 'usage'>, state: PaneState | undefined, known: number | undefined): number | null {
  if (state?.hydrated) {
    if (a.stepId) {
      const step = state.steps.find((s) => s.stepId === a.stepId);
      if (step) return stepTokens(step);
    } else return runTokens(state);
  }
  const listed = a.usage?.totalTokens || (a.usage ? (a.usage.inputTokens ?? 0) + (a.usage.outputTokens ?? 0) : 0);
  if (listed) return listed;
  return known ?? null;
}

/** One line for an agent: status · elapsed · tokens. */
export function agentDescription(a: Pick<AgentSummary, 'status' | 'createdAt' | 'finishedAt'>, tokens: number | null, now: number): string {
  const start = Date.parse(a.createdAt);
  const end = a.finishedAt ? Date.parse(a.finishedAt) : now;
  const parts: string[] = [a.status];
  if (!Number.isNaN(start) && !Number.isNaN(end)) parts.push(formatElapsed(Math.max(0, end - start)));
  if (tokens) parts.push(`${formatTokens(tokens)} tok`);
  return parts.join(' · ');
}


export interface AgentEventContext {
  /** Agents this window started (runId → persona and prompt); an entry goes once told. */
  mine: Map<string, { persona: string; prompt: string }>;
  /** Children already told about (`runId/stepId`). */
  told: Set<string>;
  hasPane(runId: string): boolean;
  state(runId: string): PaneState | undefined;
}

/**
 * What a notification means for background agents (after the run store applied it):
 * whether the view should be listed again, and the message to show, if any — when an
 * agent this window started ends, or when a child an agent spawned ends in a run whose
 * pane is open. Each is told once.
 */
export function agentEvent(n: Notification, c: AgentEventContext): { refresh: boolean; tell?: { text: string; status: string; runId: string } } {
  if (n.method === 'boo/runStarted') return { refresh: n.params.flow === 'agent' || c.mine.has(n.params.runId) };
  if (n.method === 'boo/stepAdded') {
    const p = n.params.step?.parentStepId;
    return { refresh: !!p && p !== 'script' };
  }
  if (n.method !== 'boo/stepUpdated') return { refresh: false };
  const p = n.params;
  let refresh = false;
  if (p.runStatus && isRunTerminal(p.runStatus)) {
    refresh = true;
    const a = c.mine.get(p.runId);
    if (a) {
      c.mine.delete(p.runId);
      return { refresh, tell: { text: `boo: agent ${a.persona} ${p.runStatus}: ${oneLine(a.prompt, 60)}`, status: p.runStatus, runId: p.runId } };
    }
  }
  if (p.stepId && p.status && isStepTerminal(p.status) && c.hasPane(p.runId)) {
    const st = c.state(p.runId);
    const step = st?.steps.find((s) => s.stepId === p.stepId);
    const key = `${p.runId}/${p.stepId}`;
    if (st && step && isChildRow(st, step) && !c.told.has(key)) {
      c.told.add(key);
      const parent = st.steps.find((s) => s.stepId === step.parentStepId);
      return {
        refresh: true,
        tell: { text: `boo: ${step.agent ?? 'agent'} (spawned by ${parent?.label ?? step.parentStepId}) ${step.status}: ${oneLine(step.label, 60)}`, status: step.status, runId: p.runId },
      };
    }
  }
  return { refresh };
}

