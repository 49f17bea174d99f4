// The package as a user gets it: `npm pack`, installed into an empty folder next to a copy of
// examples/custom-variant, whose scripts then compile against the package's declarations (strict, no skipLibCheck),
// property-test a user-defined encoder and pretrain it a few steps. That catches a missing export, a file missing
// from the package, a `.ts`-only import, an `any` in the public declarations, and a broken `clove` command.
// The install resolves the package's dependencies from npm's cache (warm after `npm ci`) or the registry.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clove-package-'));
const example = path.join(root, 'custom-variant');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
// Without NODE_TEST_CONTEXT: the example's own `node --test` must not think it runs inside this test file.
const { NODE_TEST_CONTEXT: _insideTestRunner, ...parentEnv } = process.env;
const env = { ...parentEnv, XDG_RUNTIME_DIR: parentEnv.XDG_RUNTIME_DIR ?? '/tmp', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
let tarball = '';

const run = (cwd: string, args: readonly string[]): string => {
  const r = spawnSync(npm, args, { cwd, env, encoding: 'utf8', timeout: 600_000 });
  assert.equal(r.status, 0, `npm ${args.join(' ')} in ${cwd} failed:\n${r.stdout}\n${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
};

before(() => {
  const packed = execFileSync(npm, ['pack', '--silent', '--pack-destination', root], { env, encoding: 'utf8' }).trim().split('\n').pop() ?? '';
  tarball = path.join(root, packed);
  assert.ok(fs.existsSync(tarball), `npm pack wrote no tarball (${packed})`);
  fs.cpSync('examples/custom-variant', example, { recursive: true, filter: (src) => !/(^|\/)(node_modules|build|runs|\.cache)$/.test(src) && !src.endsWith('package-lock.json') });
  // The example depends on the tarball `npm pack` writes in the repository; this copy, on the one packed here.
  const manifestFile = path.join(example, 'package.json');
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as { dependencies: Record<string, string> };
  manifest.dependencies['clove-ts'] = `file:${tarball}`;
  fs.writeFileSync(manifestFile, JSON.stringify(manifest, null, 2));
  run(example, ['install', '--prefer-offline']);
  run(example, ['run', 'build']);
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

test('the tarball holds the built entries and declarations, and no TypeScript sources', () => {
  const installed = path.join(example, 'node_modules', 'clove-ts');
  const manifest = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')) as { exports: Record<string, { types?: string; default?: string }> };
  for (const [entry, target] of Object.entries(manifest.exports)) {
    if (typeof target === 'string') continue;
    assert.ok(fs.existsSync(path.join(installed, target.default ?? '')), `${entry}: ${target.default} is in the package`);
    assert.ok(fs.existsSync(path.join(installed, target.types ?? '')), `${entry}: ${target.types} is in the package`);
  }
  const files = fs.readdirSync(installed, { recursive: true, encoding: 'utf8' });
  assert.deepEqual(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), [], 'no .ts sources ship');
  for (const f of files.filter((f) => f.endsWith('.js'))) {
    assert.doesNotMatch(fs.readFileSync(path.join(installed, f), 'utf8'), /from\s+["'][^"']+\.ts["']/, `${f} imports a .ts file`);
  }
});

test('the public declarations have no `any`', () => {
  const types = path.join(example, 'node_modules', 'clove-ts', 'dist', 'types');
  const offenders: string[] = [];
  for (const f of fs.readdirSync(types, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.d.ts'))) {
    // Comments may say "any"; code may not.
    const code = fs.readFileSync(path.join(types, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    for (const line of code.split('\n')) if (/\bany\b/.test(line)) offenders.push(`${f}: ${line.trim()}`);
  }
  assert.deepEqual(offenders, []);
});

test('the example compiles against the package, and its properties of a user-defined encoder pass', () => {
  const out = run(example, ['test']);
  assert.match(out, /# pass 4/);
  assert.match(out, /# fail 0/);
});

test('the example pretrains its encoder from a script and writes a checkpoint that records it', () => {
  const out = run(example, ['run', 'pretrain', '--', '--steps', '2', '--out', 'runs/convnext']);
  assert.match(out, /trained 2 steps on wasm/);
  assert.match(out, /checkpoint runs\/convnext\/ckpt-00000002 holds encoder 'convnext'/);
  const manifest = JSON.parse(fs.readFileSync(path.join(example, 'runs', 'convnext', 'ckpt-00000002', 'manifest.json'), 'utf8')) as { config: { model: { encoder: { name: string } } } };
  assert.equal(manifest.config.model.encoder.name, 'convnext');
});

test("the installed `clove` command runs from the built package, with the example's variants", () => {
  const clove = (...args: string[]) => spawnSync(path.join(example, 'node_modules', '.bin', 'clove'), args, { cwd: example, env, encoding: 'utf8' });
  const plain = clove('pretrain', '--preset', 'tiny', '--plan');
  assert.equal(plain.status, 0, `${plain.stdout}\n${plain.stderr}`);
  assert.match(plain.stdout, /plan: \d+ kernels/);
  const own = clove('pretrain', '--preset', 'tiny', '--model.encoder.name', 'convnext', '--variants', 'build/variants.js', '--plan');
  assert.equal(own.status, 0, `${own.stdout}\n${own.stderr}`);
  assert.match(own.stdout, /plan: \d+ kernels/);
  const without = clove('pretrain', '--preset', 'tiny', '--model.encoder.name', 'convnext', '--plan');
  assert.notEqual(without.status, 0);
  assert.match(without.stderr, /model\.encoder\.name = 'convnext' is not a registered variant/);
});
