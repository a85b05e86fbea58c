// Stands in for the VS Code webview host in the browser tests: acquireVsCodeApi()
// records what the webview posts and keeps its setState() value.
(function () {
  window.__posted = [];
  window.__state = window.__initialState;
  window.acquireVsCodeApi = function () {
    return {
      postMessage: function (m) { window.__posted.push(JSON.parse(JSON.stringify(m))); },
      getState: function () { return window.__state; },
      setState: function (s) { window.__state = s; },
    };
  };
  // Long tasks and frames, for the smoothness measurements.
  window.__longTasks = [];
  try {
    new PerformanceObserver(function (list) {
      for (const e of list.getEntries()) window.__longTasks.push(Math.round(e.duration));
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) { /* not supported */ }
  window.__frames = 0;
  (function count() { window.__frames++; requestAnimationFrame(count); })();
})();
