// Builds the package: plain ESM JavaScript (esbuild, one bundle per public entry with shared chunks; dependencies
// stay external) and .d.ts declarations (tsc), so a consumer needs neither tsx nor our tsconfig. `npm pack` runs
// it (prepack). Run: npm run build
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { build } from 'esbuild';

/** Public entry → source. package.json's `exports` maps `clove-ts`, `clove-ts/clove` and `clove-ts/testing` to these. */
const ENTRIES = { index: 'index.ts', clove: 'clove/index.ts', testing: 'props/testing.ts', cli: 'clove/cli.ts' } as const;

fs.rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: ENTRIES,
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (tsc.status !== 0) {
  process.stderr.write('build: the declarations did not compile (tsc -p tsconfig.build.json)\n');
  process.exit(1);
}
const files = fs.readdirSync('dist', { recursive: true, encoding: 'utf8' });
process.stdout.write(`build: dist/ holds ${files.filter((f) => f.endsWith('.js')).length} JavaScript files and ${files.filter((f) => f.endsWith('.d.ts')).length} declaration files\n`);
