#!/usr/bin/env node
// Copies non-TypeScript assets (dashboard page, static files) next to the compiled JS.
import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const assets = ['coordinator/dashboard/static'];
for (const rel of assets) {
  const src = join(root, rel);
  if (existsSync(src)) cpSync(src, join(root, 'dist', rel), { recursive: true });
}
