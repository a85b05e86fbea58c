export const meta = {
  name: 'architecture-audit',
  description: 'Audit the architecture through several independent lenses at once, then merge what they found into one ranked picture with the disagreements kept visible.',
  whenToUse: 'When you take over a codebase, plan a large change, or want to know where the structure will hurt next. args: an optional focus (text).',
  phases: [
    { title: 'Survey', detail: 'One scan of the layout, the entry points and the main flows of data.' },
    { title: 'Lenses', detail: 'Each lens audits the same code on its own.' },
    { title: 'Synthesis', detail: 'One ranked picture; where lenses disagree, both sides are kept.' },
  ],
};

/// <reference path="./boo-workflow.d.ts" />

// The prose of an answer: its findings block is verified and listed in the report.
const prose = (text) => text.replace(/```findings\s*\n[\s\S]*?```/g, '').trim();

const focus = typeof args === 'string' && args.trim() ? args.trim() : 'the architecture as a whole';

phase('Survey');
const survey = await agent(
  `Survey this project for an architecture audit focused on ${focus}. ` +
  'Describe the top-level layout, the entry points, the main modules and what depends on what, ' +
  'and the paths data takes from input to output. Cite the files you read. ' +
  'Finish with the findings block (structural facts worth checking, or []).',
  { label: 'survey the structure', agentType: 'project-scanner' },
);

const lenses = [
  ['software-architect', 'module boundaries, coupling and cohesion, and whether the dependencies point the right way'],
  ['system-architect', 'processes, storage, external services and what happens when one of them is slow or gone'],
  ['structural-analyst', 'layering violations, cycles, god modules and code that lives in the wrong place'],
  ['concurrency-analyst', 'shared state, ownership of background work, and shutdown and restart paths'],
  ['risk-analyst', 'the single points of failure and the changes most likely to break something far away'],
  ['data-engineer', 'data models, schemas and migrations, and where data is copied, cached or can drift'],
];

phase('Lenses');
const reports = await parallel(lenses.map(([persona, lens]) => () => agent(
  `Audit ${focus} for ${lens}.\n\nA first survey of the project said:\n${survey || '(the survey failed; explore on your own)'}\n\n` +
  'Check the survey against the code before you rely on it. Name concrete problems with their severity, ' +
  'each backed by the lines that show it in the findings block.',
  { label: persona, agentType: persona },
)));
const done = reports.filter(Boolean).length;
log(`${done} of ${lenses.length} lenses reported`);

phase('Synthesis');
const sections = lenses
  .map(([persona], i) => `## ${persona}\n\n${reports[i] || '(this lens failed and reported nothing)'}`)
  .join('\n\n');
const synthesis = await agent(
  'Merge these independent architecture audits into one picture. Rank the problems by how much they will cost ' +
  'if left alone; merge duplicates; where two lenses disagree, keep both views and say which evidence decides. ' +
  'Re-read the cited lines for every finding you keep and repeat it in your findings block with that evidence.\n\n' +
  sections,
  { label: 'merge the lenses', agentType: 'plan-synthesizer' },
);

return synthesis ? prose(synthesis) : `The synthesis failed; ${done} lens report(s) are in the findings below.`;
