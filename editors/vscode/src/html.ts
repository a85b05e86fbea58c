// HTML shell of every boo webview. Pure (no vscode import) so the browser tests
// render exactly the page the extension serves, with the same Content Security Policy.

export interface WebviewPage {
  /** webview.cspSource (the origin the webview may load resources from). */
  cspSource: string;
  /** A fresh random nonce per rendering. */
  nonce: string;
  title: string;
  /** URIs (already converted with asWebviewUri) of the stylesheets and the script. */
  styles: string[];
  script: string;
  /** Which view the script renders: "pane" | "launcher" | "traces". */
  view: string;
  /** Extra script tags that must run before the view script (tests only). */
  preludeScripts?: string[];
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `script-src 'nonce-${nonce}'`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
  ].join('; ');
}

export function webviewHtml(page: WebviewPage): string {
  const csp = contentSecurityPolicy(page.cspSource, page.nonce);
  const styles = page.styles.map((href) => `<link rel="stylesheet" nonce="${page.nonce}" href="${escapeHtml(href)}">`).join('\n  ');
  const preludes = (page.preludeScripts ?? []).map((src) => `<script nonce="${page.nonce}" src="${escapeHtml(src)}"></script>`).join('\n  ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <title>${escapeHtml(page.title)}</title>
  ${styles}
</head>
<body data-view="${escapeHtml(page.view)}">
  <div id="app" class="app" role="main" aria-busy="true"></div>
  ${preludes}
  <script nonce="${page.nonce}" src="${escapeHtml(page.script)}"></script>
</body>
</html>`;
}

export function makeNonce(random: (n: number) => Uint8Array): string {
  return Array.from(random(18), (b) => b.toString(16).padStart(2, '0')).join('');
}
