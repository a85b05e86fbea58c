// Bundled to out/test/lib.js for the browser-level tests in tests/vscode/ (plain .mjs):
// the very HTML builder the extension serves, the shared reducer, and the hand-written run.
export { webviewHtml, contentSecurityPolicy } from '../src/html';
export { reduce, reduceAll, emptyState, expandedStepId } from '../src/state';
export { cacheHitRate } from '../src/state';
export * as synthetic from './synthetic';
