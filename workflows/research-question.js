export const meta = {
  name: 'research-question',
  description: 'Answer a question about the codebase by splitting it into sub-questions, investigating each in parallel, and writing one answer that cites the code.',
  whenToUse: 'For "how does X work", "where is Y decided", "what happens when Z" questions that span several modules. args: the question (text).',
  phases: [
    { title: 'Plan', detail: 'Split the question into sub-questions the code can answer.' },
    { title: 'Investigate', detail: 'One investigator per sub-question.' },
    { title: 'Answer', detail: 'One answer, every claim cited.' },
  ],
};

/// <reference path="./boo-workflow.d.ts" />

// The prose of an answer: its findings block is verified and listed in the report.
const prose = (text) => text.replace(/```findings\s*\n[\s\S]*?```/g, '').trim();

const question = typeof args === 'string' ? args.trim()
  : (args && typeof args.question === 'string') ? args.question.trim() : '';
if (!question) {
  throw new Error('research-question needs a question: launch it with args set to the question text');
}

phase('Plan');
const plan = await agent(
  `Question about this project: ${question}\n\n` +
  'Split it into 2 to 6 sub-questions that can each be answered by reading the code, in the order an investigator ' +
  'should answer them. Name the files or symbols where each one starts. Finish with the findings block ([] is fine).',
  { label: 'split the question', agentType: 'codebase-explorer', schema: {
    type: 'object',
    required: ['subQuestions'],
    properties: { subQuestions: { type: 'array', minItems: 1, maxItems: 6, items: {
      type: 'object',
      required: ['question'],
      properties: { question: { type: 'string' }, startAt: { type: 'string' } },
    } } },
  } },
);
const subs = plan && Array.isArray(plan.subQuestions) && plan.subQuestions.length
  ? plan.subQuestions
  : [{ question, startAt: '' }];
log(`${subs.length} sub-question(s)`);

phase('Investigate');
const answers = await parallel(subs.map((s, i) => () => agent(
  `Main question: ${question}\nYour sub-question: ${s.question}\n` +
  (s.startAt ? `Start at: ${s.startAt}\n` : '') +
  '\nAnswer it from the code alone. Follow calls across files as far as needed. Say plainly what you could not ' +
  'establish. Every fact you rely on goes in the findings block with its lines (severity info for plain facts).',
  { label: `sub-question ${i + 1}`, agentType: 'evidence-based-investigator' },
)));
log(`${answers.filter(Boolean).length} of ${subs.length} sub-question(s) answered`);

phase('Answer');
const notes = subs
  .map((s, i) => `## ${s.question}\n\n${answers[i] || '(this investigation failed)'}`)
  .join('\n\n');
const answer = await agent(
  `Write the answer to: ${question}\n\nUse these investigations; check any claim you repeat against the code, ` +
  'and repeat the facts your answer rests on in your findings block with their lines. Where the investigations ' +
  'disagree or left a gap, say so.\n\n' + notes,
  { label: 'write the answer', agentType: 'evidence-based-investigator' },
);

return answer ? prose(answer) : 'The final answer failed; the investigations are in the findings below.';
