export const meta = {
  name: 'test-gap-sweep',
  description: 'Sweep every module for behaviour no test pins down: each module goes through its own pipeline (find the gaps, then the edge cases), and one summary ranks what to test first.',
  whenToUse: 'Before a refactor, or when bugs keep escaping the test suite. args: an optional { limit } on the number of modules (default 20), or a focus (text).',
  phases: [
    { title: 'Inventory', detail: 'List the modules and the tests that exist.' },
    { title: 'Sweep', detail: 'Per module: what its tests prove, what they miss, which edge cases matter.' },
    { title: 'Plan', detail: 'One ranked list of tests to write.' },
  ],
};

/// <reference path="./boo-workflow.d.ts" />

// The prose of an answer: its findings block is verified and listed in the report.
const prose = (text) => text.replace(/```findings\s*\n[\s\S]*?```/g, '').trim();

const limit = Math.max(1, Math.min(60, Number((args && args.limit) || 20)));
const focus = typeof args === 'string' && args.trim() ? args.trim() : 'every module of the project';

phase('Inventory');
const inventory = await agent(
  `List the source modules of ${focus} that hold behaviour worth testing (not generated code, not vendored code), ` +
  `at most ${limit}, most important first. For each give its path and the test files that exercise it, if any. ` +
  'Finish with the findings block ([] is fine here).',
  { label: 'list modules and tests', agentType: 'project-scanner', schema: {
    type: 'object',
    required: ['modules'],
    properties: { modules: { type: 'array', maxItems: limit, items: {
      type: 'object',
      required: ['path'],
      properties: { path: { type: 'string' }, tests: { type: 'array', items: { type: 'string' } } },
    } } },
  } },
);
const modules = inventory && Array.isArray(inventory.modules) ? inventory.modules.slice(0, limit) : [];
log(`${modules.length} module(s) to sweep`);

phase('Sweep');
const swept = await pipeline(
  modules,
  (_prev, m) => agent(
    `Module: ${m.path}\nKnown tests: ${(m.tests || []).join(', ') || 'none found'}\n\n` +
    'Read the module and its tests. Which behaviours do the tests prove, and which public behaviours, error paths ' +
    'and branches does no test pin down? Each gap goes in the findings block, citing the untested lines.',
    { label: `gaps in ${m.path}`, agentType: 'test-engineer' },
  ),
  (gaps, m) => gaps === null ? null : agent(
    `Module: ${m.path}\n\nA test engineer found these gaps:\n${gaps}\n\n` +
    'For the gaps that matter most, name the concrete edge cases a test should use (empty, huge, malformed, ' +
    'repeated, concurrent, failing dependency), each with the lines it would exercise in the findings block.',
    { label: `edge cases for ${m.path}`, agentType: 'edge-case-explorer' },
  ),
);
const covered = swept.filter(Boolean).length;
log(`${covered} of ${modules.length} module(s) swept to the end`);

phase('Plan');
const digest = modules
  .map((m, i) => `## ${m.path}\n\n${swept[i] || '(this module could not be swept)'}`)
  .join('\n\n');
const plan = await agent(
  'From these per-module sweeps, write one ranked list of the tests to write first: the untested behaviour ' +
  'most likely to break and most costly when it does goes first. Merge duplicates. Keep each item short: ' +
  'module, behaviour, edge cases, why it ranks there. Repeat the gaps you keep in your findings block with their evidence.\n\n' + digest,
  { label: 'rank the gaps', agentType: 'gap-analyzer' },
);

return plan ? prose(plan) : `The ranking failed; the ${covered} module sweep(s) are in the findings below.`;
