// The README's runnable examples must keep running (they are the first thing a user tries).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

const runExample = (file: string, ...args: string[]): string =>
  execFileSync(process.execPath, ['--import', 'tsx', file, ...args], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });

test('examples/loss.ts evaluates both loss variants on plain arrays', () => {
  const out = runExample('examples/loss.ts');
  assert.match(out, /28 matched cells/);
  const official = /official: loss ([\d.]+)/.exec(out);
  const perPair = /per-pair: loss ([\d.]+)/.exec(out);
  assert.ok(official !== null && perPair !== null, out);
  // While the hinge is inactive the official loss is 100 + 2·c̄_neg − 4·c̄_pos, within [94, 106].
  assert.ok(Math.abs(Number(official[1]) - 100) <= 6);
});

test('examples/compile.ts trains on the cpu backend with the state on the device', () => {
  const out = runExample('examples/compile.ts', 'cpu');
  const losses = [...out.matchAll(/step \d+: loss ([\d.]+)/g)].map((m) => Number(m[1]));
  assert.equal(losses.length, 5, out);
  assert.ok(losses[4] < losses[0] / 2, `the loss must at least halve: ${losses.join(" → ")}`);
});
