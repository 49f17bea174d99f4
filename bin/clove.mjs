#!/usr/bin/env node
// The `clove` command: runs the TypeScript CLI through tsx's loader (no build step needed).
import { register } from 'tsx/esm/api';

register();
await import('../clove/cli.ts');
