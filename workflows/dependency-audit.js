export const meta = {
  name: 'dependency-audit',
  description: 'Audit the project\'s dependencies and supply chain: every manifest is read for risky versions, install-time code, loose pins and unsafe features, then the risks are ranked.',
  whenToUse: 'Before a release, after a dependency upgrade, or when adopting a codebase. Works offline: agents judge from the manifests and lock files, not from an advisory database. args: an optional focus (text).',
  phases: [
    { title: 'Manifests', detail: 'Find every manifest and lock file.' },
    { title: 'Audit', detail: 'Per manifest: supply chain and security, in parallel.' },
    { title: 'Rank', detail: 'One ranked list of risks with what to do about each.' },
  ],
};

/// <reference path="./boo-workflow.d.ts" />

// The prose of an answer: its findings block is verified and listed in the report.
const prose = (text) => text.replace(/```findings\s*\n[\s\S]*?```/g, '').trim();

const focus = typeof args === 'string' && args.trim() ? ` Focus: ${args.trim()}.` : '';

phase('Manifests');
const found = await agent(
  'Find every dependency manifest and lock file of this project (Cargo.toml/Cargo.lock, package.json and its ' +
  'lock files, requirements*.txt, pyproject.toml, go.mod, Gemfile, pom.xml, build.gradle, and the like), and the ' +
  `build or install scripts that fetch or run code.${focus} Finish with the findings block ([] is fine).`,
  { label: 'find manifests', agentType: 'project-scanner', schema: {
    type: 'object',
    required: ['manifests'],
    properties: { manifests: { type: 'array', maxItems: 30, items: {
      type: 'object',
      required: ['path'],
      properties: { path: { type: 'string' }, ecosystem: { type: 'string' }, lockFile: { type: 'string' } },
    } } },
  } },
);
const manifests = found && Array.isArray(found.manifests) ? found.manifests : [];
log(`${manifests.length} manifest(s) found`);

phase('Audit');
const audits = await pipeline(
  manifests,
  (_prev, m) => parallel([
    () => agent(
      `Manifest: ${m.path}${m.lockFile ? ` (lock file ${m.lockFile})` : ''}\n\n` +
      'Audit its supply chain: versions that are not pinned or not locked, git or path dependencies, ' +
      'dependencies pulled from unusual registries, install or build scripts that run code, duplicated or ' +
      'abandoned-looking packages. Cite the manifest lines in the findings block.',
      { label: `supply chain of ${m.path}`, agentType: 'devops-engineer' },
    ),
    () => agent(
      `Manifest: ${m.path}\n\n` +
      'Audit it as an attacker would: which dependencies handle untrusted input (parsers, network, crypto, ' +
      'archives, templates), which features enable unsafe behaviour, and how the project uses them. Versions ' +
      'you believe have known vulnerabilities are findings only with the version line cited and the belief ' +
      'stated as such: you have no advisory database. Cite lines in the findings block.',
      { label: `security of ${m.path}`, agentType: 'adversarial-security-analyst' },
    ),
  ]),
);
const pieces = [];
manifests.forEach((m, i) => {
  const [chain, security] = audits[i] || [null, null];
  pieces.push(`## ${m.path}\n\n### Supply chain\n\n${chain || '(failed)'}\n\n### Security\n\n${security || '(failed)'}`);
});

phase('Rank');
const ranking = await agent(
  'Rank the dependency risks these audits found: the likeliest to hurt and the costliest first. For each, say ' +
  'what to do (pin, lock, replace, remove, vendor, or accept with a reason). Merge duplicates across manifests. ' +
  'Repeat the risks you keep in your findings block with the manifest lines as evidence.\n\n' +
  (pieces.join('\n\n') || '(no manifests were found)'),
  { label: 'rank the risks', agentType: 'risk-analyst' },
);

return ranking ? prose(ranking) : 'The ranking failed; the per-manifest audits are in the findings below.';
