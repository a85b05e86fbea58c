// A tiny git project for the agents to read (the fake qwen cites its first text file).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const PROJECT_FILES = {
  'README.md': '# cache demo\n\nA tiny key-value cache used by the boo editor tests.\n',
  'src/cache.py': [
    'class Cache:',
    '    def __init__(self):',
    '        self.entries = {}',
    '',
    '    def put(self, key, value, write):',
    '        self.entries[key] = value  # inserted before the write succeeds',
    '        write(key, value)',
    '',
    '    def get(self, key):',
    '        return self.entries.get(key)',
    '',
  ].join('\n'),
};

export function makeProject(prefix = 'boo-vscode-project-') {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  for (const [rel, text] of Object.entries(PROJECT_FILES)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  const git = (...args) => execFileSync('git', ['-c', 'user.name=boo tests', '-c', 'user.email=tests@boo.invalid', '-c', 'init.defaultBranch=main', ...args], { cwd: dir, stdio: 'pipe' });
  git('init', '-q');
  git('add', '.');
  git('commit', '-q', '-m', 'initial');
  return dir;
}
