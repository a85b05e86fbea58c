export const meta = {
  name: 'deep-review',
  description: 'Review an area of the code from several lenses, round after round until a round finds nothing new, then have every finding attacked by an adversarial validator.',
  whenToUse: 'Before a release or a risky merge, when one pass of review is not enough and every claim should survive a second reader. args: the area or question to focus on (text), or { focus, rounds }.',
  phases: [
    { title: 'Map', detail: 'Find the files that matter for the focus.' },
    { title: 'Review', detail: 'Lenses look for problems; each round is told what is already known, until a round comes back dry.' },
    { title: 'Verify', detail: 'An adversarial validator tries to break every finding.' },
  ],
};

/// <reference path="./boo-workflow.d.ts" />

const focus = typeof args === 'string' && args.trim() ? args.trim()
  : (args && typeof args.focus === 'string' && args.focus.trim()) ? args.focus.trim()
  : 'the whole project';
const maxRounds = Math.max(1, Math.min(5, Number((args && args.rounds) || 3)));

// The last ```findings block of an answer, as an array (empty when there is none).
function findingsOf(text) {
  if (typeof text !== 'string') return [];
  const blocks = [...text.matchAll(/```findings\s*\n([\s\S]*?)```/g)];
  if (blocks.length === 0) return [];
  try {
    const list = JSON.parse(blocks[blocks.length - 1][1]);
    return Array.isArray(list) ? list.filter((f) => f && typeof f.title === 'string') : [];
  } catch (_e) {
    return [];
  }
}
const where = (f) => (Array.isArray(f.evidence) && f.evidence[0] && f.evidence[0].path) || '';
const keyOf = (f) => `${f.title.trim().toLowerCase()}|${where(f)}`;
const brief = (f) => `- [${f.severity || 'info'}] ${f.title} (${where(f) || 'no path'}): ${f.claim || ''}`;

phase('Map');
const map = await agent(
  `Map the part of this project that matters for: ${focus}.\n` +
  'Name the files a reviewer must read, most important first (at most 15), and say in one line each why. ' +
  'Finish with the findings block (use [] when nothing stands out yet).',
  { label: 'map the focus area', agentType: 'codebase-explorer', schema: {
    type: 'object',
    required: ['files'],
    properties: { files: { type: 'array', items: { type: 'string' }, maxItems: 15 } },
  } },
);
const files = map && Array.isArray(map.files) ? map.files : [];
log(`mapped ${files.length} file(s) for ${focus}`);

const lenses = [
  ['behavioral-analyst', 'behaviour that differs from what the code, its names or its docs promise'],
  ['edge-case-explorer', 'inputs and states at the edges: empty, huge, malformed, repeated, concurrent'],
  ['adversarial-security-analyst', 'what a hostile input, file or peer can make this code do'],
  ['concurrency-analyst', 'races, ordering assumptions, lost wake-ups, locks held across waits'],
];

phase('Review');
const known = new Map();
let round = 0;
while (round < maxRounds) {
  round += 1;
  if (budget.remaining() <= 0) {
    log(`budget spent before round ${round}; stopping the review`);
    break;
  }
  const already = [...known.values()].map(brief).join('\n') || '(nothing yet)';
  const answers = await parallel(lenses.map(([persona, lens]) => () => agent(
    `Review ${focus} for ${lens}.\n` +
    (files.length ? `Start with these files: ${files.join(', ')}.\n` : '') +
    `This is round ${round}. These findings are already known; do not repeat them, look for what they missed:\n${already}\n\n` +
    'Report only new problems, each with the exact lines that show it, in the findings block. ' +
    'An empty findings block is the right answer when you find nothing new.',
    { label: `round ${round}: ${persona}`, agentType: persona },
  )));
  let fresh = 0;
  for (const answer of answers) {
    for (const f of findingsOf(answer)) {
      if (!known.has(keyOf(f))) {
        known.set(keyOf(f), f);
        fresh += 1;
      }
    }
  }
  log(`round ${round}: ${fresh} new finding(s), ${known.size} in all`);
  if (fresh === 0) {
    log(`round ${round} came back dry`);
    break;
  }
}

phase('Verify');
const all = [...known.values()];
const batches = [];
for (let i = 0; i < all.length; i += 5) batches.push(all.slice(i, i + 5));
const verdicts = await parallel(batches.map((batch, i) => () => agent(
  'Try to break each of these findings. Open every cited file, read the lines and the code around them, ' +
  'and decide whether the claim holds.\n\n' + batch.map(brief).join('\n') + '\n\n' +
  'Repeat the findings that survive in your findings block with the evidence you checked yourself; leave out the ones you refuted.',
  { label: `verify batch ${i + 1} of ${batches.length}`, agentType: 'adversarial-validator', schema: {
    type: 'object',
    required: ['verdicts'],
    properties: { verdicts: { type: 'array', items: {
      type: 'object',
      required: ['title', 'verdict'],
      properties: {
        title: { type: 'string' },
        verdict: { enum: ['confirmed', 'refuted', 'unsure'] },
        reason: { type: 'string' },
      },
    } } },
  } },
)));
const tally = { confirmed: 0, refuted: 0, unsure: 0 };
const lines = [];
for (const v of verdicts) {
  for (const item of (v && Array.isArray(v.verdicts)) ? v.verdicts : []) {
    tally[item.verdict] = (tally[item.verdict] || 0) + 1;
    lines.push(`- **${item.verdict}** — ${item.title}${item.reason ? `: ${item.reason}` : ''}`);
  }
}
log(`verified: ${tally.confirmed} confirmed, ${tally.refuted} refuted, ${tally.unsure} unsure`);

return [
  `# Deep review: ${focus}`,
  '',
  `${round} review round(s) over ${files.length} mapped file(s) found ${all.length} distinct finding(s); ` +
  `the validator confirmed ${tally.confirmed}, refuted ${tally.refuted} and could not decide ${tally.unsure}.`,
  '',
  '## Verdicts',
  '',
  lines.length ? lines.join('\n') : '(no findings to verify)',
].join('\n');
