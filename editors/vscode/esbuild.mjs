// Bundles the extension (Node, CommonJS), the four webview scripts (browser IIFE,
// with marked and DOMPurify inside) and, with --tests, the unit tests.
import * as esbuild from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';

const production = process.argv.includes('--production');
const tests = process.argv.includes('--tests');
const common = { bundle: true, sourcemap: !production, minify: production, logLevel: 'warning', legalComments: 'none' };

const builds = [
  esbuild.build({
    ...common,
    entryPoints: ['src/extension.ts'],
    outfile: 'dist/extension.js',
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['vscode'],
  }),
  esbuild.build({
    ...common,
    entryPoints: { pane: 'webview/pane.ts', launcher: 'webview/launcher.ts', traces: 'webview/traces.ts', timeline: 'webview/timeline.ts' },
    outdir: 'dist/webview',
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
  }),
];
if (tests) {
  rmSync('out/test', { recursive: true, force: true });
  const entries = readdirSync('test').filter((f) => f.endsWith('.test.ts')).map((f) => `test/${f}`);
  builds.push(
    esbuild.build({
      ...common,
      sourcemap: true,
      entryPoints: [...entries, 'test/lib-entry.ts'],
      outdir: 'out/test',
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      external: ['vscode'],
    }),
  );
}
await Promise.all(builds);
