// Small DOM helpers shared by the boo webviews (no framework, no inline styles).

export interface VsCodeApi<S> {
  postMessage(msg: unknown): void;
  getState(): S | undefined;
  setState(state: S): void;
}

declare function acquireVsCodeApi<S>(): VsCodeApi<S>;

export function vscodeApi<S>(): VsCodeApi<S> {
  return acquireVsCodeApi<S>();
}

type Attrs = Record<string, string | number | boolean | null | undefined | ((ev: Event) => void)>;

/** Creates an element: attributes (on* keys become listeners), then children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (typeof v === 'function') {
        el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
      } else if (k === 'class') {
        el.className = String(v);
      } else if (v === true) {
        el.setAttribute(k, '');
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** A one-line summary of a tool's input: its path, pattern or command when it has one. */
export function summarizeInput(input: unknown, root?: string | null): string {
  // Paths under the run's root are shown relative to it.
  const rel = (v: string) => (root && v.startsWith(root.replace(/\/+$/, '') + '/') ? v.slice(root.replace(/\/+$/, '').length + 1) : v);
  if (input === null || input === undefined) return '';
  if (typeof input === 'string') return oneLine(rel(input));
  if (typeof input === 'object') {
    const o = input as Record<string, unknown>;
    for (const key of ['absolute_path', 'file_path', 'path', 'pattern', 'glob', 'query', 'command', 'url', 'paths']) {
      const v = o[key];
      if (typeof v === 'string' && v) return oneLine(rel(v));
      if (Array.isArray(v) && v.length) return oneLine(v.map((x) => rel(String(x))).join(', '));
    }
    return oneLine(JSON.stringify(input));
  }
  return String(input);
}

export function oneLine(s: string, max = 120): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

/** Text of a tool result or input for display (strings as they are, the rest as JSON). */
export function displayValue(v: unknown, max = 20000): string {
  let s: string;
  if (typeof v === 'string') s = v;
  else if (Array.isArray(v) && v.every((x) => x && typeof x === 'object' && typeof (x as { text?: unknown }).text === 'string')) {
    s = v.map((x) => (x as { text: string }).text).join('\n');
  } else {
    try {
      s = JSON.stringify(v, null, 2);
    } catch {
      s = String(v);
    }
  }
  if (s === undefined) s = '';
  return s.length > max ? s.slice(0, max) + `\n… (${s.length - max} more characters)` : s;
}

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)}m ${Math.round((ms % 60000) / 1000)}s`;
}

export const STATUS_LABEL: Record<string, string> = {
  pending: 'pending',
  running: 'running',
  completed: 'completed',
  failed: 'failed',
  skipped: 'skipped',
  cancelled: 'cancelled',
};
