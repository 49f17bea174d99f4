#!/usr/bin/env node
// The `clove` command. In the repository it runs the TypeScript sources through tsx's loader (no build step, never
// a stale build); in an installed package, which ships only the built JavaScript, it runs dist/cli.js.
import { existsSync } from 'node:fs';

const source = new URL('../clove/cli.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import('../dist/cli.js');
}
