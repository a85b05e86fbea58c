// Shared helpers of the browser-level tests: a static server on 127.0.0.1, headless
// Chromium from Debian through playwright-core, and the webview pages the extension serves.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '../../..');
export const EXT = path.join(REPO, 'editors/vscode');
export const ARTIFACTS = path.join(REPO, 'artifacts/vscode');
export const FIXTURES = path.resolve(HERE, '../fixtures');
fs.mkdirSync(ARTIFACTS, { recursive: true });

const require = createRequire(import.meta.url);
/** The extension's own HTML builder and reducer (bundled by `esbuild.mjs --tests`). */
export const lib = require(path.join(EXT, 'out/test/lib-entry.js'));
export const { chromium } = require('playwright-core');

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-dev-shm-usage',
];

export async function launchChromium() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true, timeout: 60_000 });
}

const TYPES = { '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.html': 'text/html', '.map': 'application/json', '.png': 'image/png' };

/** Serves /ext/* from the extension folder, /harness/* from tests/vscode/harness, /page/<name> from `pages`. */
export async function startStatic() {
  const pages = new Map();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/favicon.ico') return void res.writeHead(204).end();
    let file;
    if (url.pathname.startsWith('/page/')) {
      const html = pages.get(url.pathname.slice(6));
      if (html === undefined) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return void res.end(html);
    }
    if (url.pathname.startsWith('/ext/')) file = path.join(EXT, url.pathname.slice(5));
    else if (url.pathname.startsWith('/harness/')) file = path.join(HERE, '../harness', url.pathname.slice(9));
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    /** Registers a webview page exactly as the extension renders it (same CSP), plus the host stub. */
    page(name, view) {
      const nonce = 'n' + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
      pages.set(
        name,
        lib.webviewHtml({
          cspSource: origin,
          nonce,
          title: `test ${view}`,
          view,
          styles: [`${origin}/harness/theme.css`, `${origin}/ext/media/webview.css`],
          script: `${origin}/ext/dist/webview/${view}.js`,
          preludeScripts: [`${origin}/harness/vscode-stub.js`],
        }),
      );
      return `${origin}/page/${name}`;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

/** Opens a page and records console errors, CSP violations and page errors. */
export async function openPage(browser, url, { width = 900, height = 900 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(url, { timeout: 30_000 });
  await page.waitForFunction(() => window.__posted?.some((m) => m.type === 'ready'), null, { timeout: 10_000 });
  return { page, context, problems };
}

export async function send(page, msg) {
  await page.evaluate((m) => window.postMessage(m, '*'), msg);
}

export async function posted(page) {
  return page.evaluate(() => window.__posted);
}

export async function shot(page, name, opts = {}) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: opts.fullPage ?? false });
  return file;
}

/** Recorded runs of the real server (tests/vscode/record.mjs), newest format. */
export function recordings() {
  if (!fs.existsSync(FIXTURES)) return [];
  return fs
    .readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ file: f, ...JSON.parse(fs.readFileSync(path.join(FIXTURES, f), 'utf8')) }));
}

/** Races a promise against a deadline so no test can hang the suite. */
export function within(ms, promise, what) {
  let t;
  return Promise.race([promise, new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms)))]).finally(() => clearTimeout(t));
}
