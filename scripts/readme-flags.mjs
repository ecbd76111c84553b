#!/usr/bin/env node
// Regenerates the README's flag table from the option spec (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const root = new URL('..', import.meta.url).pathname;
const require = createRequire(import.meta.url);
const { flagTableMarkdown } = require(`${root}dist/shared/config/flag-table.js`);
const path = `${root}README.md`;
const text = readFileSync(path, 'utf8');
const start = '<!-- flags:start -->';
const end = '<!-- flags:end -->';
const a = text.indexOf(start);
const b = text.indexOf(end);
if (a < 0 || b < a) {
  console.error('README.md has no flags:start/flags:end markers');
  process.exit(1);
}
writeFileSync(path, `${text.slice(0, a + start.length)}\n${flagTableMarkdown()}\n${text.slice(b)}`);
console.log('README.md flag table updated');
