// The product end to end through the `clove` command, on the `tiny` preset: pretrain writes checkpoints,
// metrics and pictures; a run stopped at step 3 and resumed continues the same loss curve as an uninterrupted
// one; bad input gives one clear message and a non-zero exit; export writes torchvision-named weights.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { readSafetensorsFile } from '../clove/safetensors.ts';
import { decodePng } from '../clove/pictures.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clove-cli-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function clove(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['bin/clove.mjs', ...args], {
    encoding: 'utf8',
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    timeout: 240_000,
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const losses = (dir: string): Map<number, number> =>
  new Map(
    fs
      .readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss: number })
      .map((r) => [r.step, r.loss]),
  );

// What a new user sees first: on a machine without a GPU device node, `auto` never loads Dawn, so no native
// library prints `error: XDG_RUNTIME_DIR is invalid…` or Vulkan warnings (XDG_RUNTIME_DIR unset, as in a bare shell).
const gpuDeviceNode = fs.existsSync('/dev/nvidia0') || (fs.existsSync('/dev/dri') && fs.readdirSync('/dev/dri').some((f) => f.startsWith('renderD')));
test('the first screen of a CPU-only run has no error: or Warning: lines', { skip: gpuDeviceNode ? 'this machine has a GPU device node' : false }, () => {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.XDG_RUNTIME_DIR;
  const r = spawnSync(process.execPath, ['bin/clove.mjs', 'pretrain', '--preset', 'tiny', '--steps', '1', '--optim.warmupSteps', '0', '--out', path.join(root, 'first-screen')], {
    encoding: 'utf8',
    env,
    timeout: 240_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^using wasm \(best available\)/m);
  assert.doesNotMatch(`${r.stdout}\n${r.stderr}`, /^\s*(error|warning)\b/im);
});

describe('clove pretrain (tiny preset, cpu backend)', () => {
  const full = path.join(root, 'full');
  const split = path.join(root, 'split');

  test('runs to completion with checkpoints, metrics and pictures', () => {
    const r = clove('pretrain', '--preset', 'tiny', '--backend', 'cpu', '--out', full);
    assert.equal(r.code, 0, r.err + r.out);
    assert.match(r.out, /compiled \d+ kernels .* memory plan: peak/);
    assert.match(r.out, /step 6\/6 {2}loss [\d.]+ {2}objective -?[\d.]+ .*img\/s {2}ETA/);
    assert.match(r.out, /done: 6 steps on cpu; loss [\d.]+ → [\d.]+; objective \(mean of the first\/last tenth of logged steps\) -?[\d.]+ → -?[\d.]+/);
    // The last lines say where the checkpoint and the curves are, and give the next two commands.
    assert.match(r.out, /checkpoint: .*ckpt-00000006; curves: .*curves\.png\nnext: npx clove eval --checkpoint .* --tier ci\n {6}npx clove export --checkpoint .* --out .*\.safetensors\n/);
    const curves = decodePng(fs.readFileSync(path.join(full, 'pictures', 'curves.png')));
    assert.ok(E.isRight(curves) && curves.right.width >= 512, 'a loss/objective curve PNG at least 512 px wide');
    // The objective logged with each step is the hinge-free loss of a scored image: 2·(c̄_neg − λ·c̄_pos).
    for (const line of fs.readFileSync(path.join(full, 'metrics.jsonl'), 'utf8').trim().split('\n')) {
      const m = JSON.parse(line) as { posCos: number; negCos: number; objective: number };
      assert.ok(Math.abs(m.objective - 2 * (m.negCos - 2 * m.posCos)) < 1e-9, line);
    }
    assert.ok(fs.existsSync(path.join(full, 'ckpt-00000006', 'manifest.json')));
    assert.equal(fs.readFileSync(path.join(full, 'latest'), 'utf8').trim(), 'ckpt-00000006');
    assert.equal(losses(full).size, 6);
    const pictures = fs.readdirSync(path.join(full, 'pictures'));
    assert.ok(pictures.includes('step-000006-matches.png') && pictures.includes('step-000006-attention.png'), pictures.join(','));
  });

  test('a run stopped at step 3 and resumed (profiling its third step) continues the same loss curve', () => {
    const first = clove('pretrain', '--preset', 'tiny', '--backend', 'cpu', '--out', split, '--until', '3');
    assert.equal(first.code, 0, first.err);
    assert.ok(fs.existsSync(path.join(split, 'ckpt-00000003')));
    const second = clove('pretrain', '--preset', 'tiny', '--backend', 'cpu', '--out', split, '--resume', '--profile');
    assert.equal(second.code, 0, second.err);
    assert.match(second.out, /resuming from .*ckpt-00000003 at step 3/);
    // --profile synchronizes step 6 kernel by kernel; the losses below show it changes nothing else.
    assert.match(second.out, /profile of step 6 \(synchronized after every kernel.*\n {2}contractions [\d.]+% at [\d.]+ GFLOP\/s, the rest [\d.]+%\n {2}by op: conv2d/);
    const profile = JSON.parse(fs.readFileSync(path.join(split, 'profile.json'), 'utf8')) as { step: number; rows: { launches: number; ms: number }[] };
    assert.equal(profile.step, 6);
    assert.ok(profile.rows.length > 10 && profile.rows.every((x) => x.launches > 0 && x.ms >= 0));
    const a = losses(full);
    const b = losses(split);
    for (let s = 1; s <= 6; s++) {
      const [x, y] = [a.get(s), b.get(s)];
      assert.ok(x !== undefined && y !== undefined, `step ${s} missing`);
      assert.ok(Math.abs(x - y) <= 1e-4 * Math.max(1, Math.abs(x)), `step ${s}: uninterrupted ${x} vs resumed ${y}`);
    }
  });

  test('Ctrl-C finishes the current step, writes a checkpoint and exits 130', async () => {
    const dir = path.join(root, 'sigint');
    const child = spawn(process.execPath, ['bin/clove.mjs', 'pretrain', '--preset', 'tiny', '--backend', 'cpu', '--out', dir, '--optim.steps', '500'], {
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    let out = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (/step 2\/500/.test(out) && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', (c) => resolve(c));
    });
    assert.equal(code, 130, out);
    assert.match(out, /interrupted: stopped after step (\d+); resume with --resume/);
    const step = Number(/stopped after step (\d+)/.exec(out)?.[1]);
    assert.equal(fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim(), `ckpt-${String(step).padStart(8, '0')}`);
  });

  test('export writes the student backbone with torchvision names', () => {
    const file = path.join(root, 'backbone.safetensors');
    const r = clove('export', '--checkpoint', full, '--out', file);
    assert.equal(r.code, 0, r.err);
    const st = readSafetensorsFile(file);
    assert.ok(E.isRight(st), E.isLeft(st) ? st.left : '');
    const names = Object.keys(st.right.tensors);
    for (const n of ['conv1.weight', 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'layer1.0.conv1.weight', 'layer4.1.bn2.weight', 'layer2.0.downsample.0.weight']) {
      assert.ok(names.includes(n), `missing ${n}`);
    }
    assert.ok(names.every((n) => !n.startsWith('student.') && !n.includes('projector') && !n.includes('predictor')));
  });
});

describe('bad input gives a clear message and a non-zero exit', () => {
  test('a missing data folder', () => {
    const r = clove('pretrain', '--preset', 'tiny', '--backend', 'cpu', '--out', path.join(root, 'nodata'), '--data', path.join(root, 'does-not-exist'));
    assert.notEqual(r.code, 0);
    assert.match(r.err, /^clove: .*does-not-exist/m);
    assert.doesNotMatch(r.err, /^\s+at /m, 'no stack trace');
  });

  test('every invalid config field is reported with its path', () => {
    const r = clove('pretrain', '--preset', 'tiny', '--optim.momentum', '1.5', '--loss.reduction', 'nope');
    assert.notEqual(r.code, 0);
    assert.match(r.err, /optim\.momentum: expected a number in \[0, 1\), got 1\.5/);
    assert.match(r.err, /loss\.reduction/);
    // Any name is a valid config value (a user may register it); an unregistered one is refused before any data.
    const variant = clove('pretrain', '--preset', 'tiny', '--out', path.join(root, 'variant'), '--loss.variant', 'nope');
    assert.notEqual(variant.code, 0);
    assert.match(variant.err, /loss\.variant = 'nope' is not a registered variant \(known: official, per-pair\)/);
  });

  test('views too small for the encoder stride', () => {
    const r = clove('pretrain', '--preset', 'tiny', '--backend', 'cpu', '--out', path.join(root, 'small'), '--views.localSize', '4');
    assert.notEqual(r.code, 0);
    assert.match(r.err, /^clove: the config does not give a valid training step: /m);
  });
  // Non-finite losses and states: props/reliability.test.ts (item 1 of issue #12).
});
