// Issue #12 ("no lost work, no stack traces"): each numbered defect driven through the `clove` command in a
// subprocess (tiny preset, cpu backend, a few steps), asserting the exit code, the message and what is left in
// the run directory. Item numbers refer to the issue.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { listCheckpoints, loadCheckpoint, loadFiniteCheckpoint, nonFiniteValue } from '../clove/checkpoint.ts';
import { encodePng } from '../clove/data/image.ts';
import { truncateMetrics } from '../clove/train.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clove-rel-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' };
const TINY = ['--preset', 'tiny', '--backend', 'cpu'];

interface Ran {
  code: number;
  out: string;
  err: string;
}

function clove(args: readonly string[], extraEnv: Record<string, string> = {}): Ran {
  const r = spawnSync(process.execPath, ['bin/clove.mjs', ...args], { encoding: 'utf8', env: { ...env, ...extraEnv }, timeout: 240_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Runs `bash -c` (for ulimit) with the clove command line appended. */
function cloveUnder(prefix: string, args: readonly string[]): Ran {
  const quoted = ['bin/clove.mjs', ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${prefix}; exec '${process.execPath}' ${quoted}`], { encoding: 'utf8', env, timeout: 240_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Spawns a run and sends `signal` once stdout matches `when`; resolves with the exit code (or signal) and output. */
function cloveSignalled(args: readonly string[], when: RegExp, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['bin/clove.mjs', ...args], { env });
  let out = '';
  let err = '';
  let sent = false;
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!sent && when.test(out)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.on('exit', (code, sig) => resolve({ code, signal: sig, out, err }));
  });
}

/** No JS stack trace (`    at f (file:1:2)`) on stderr; Dawn's own "Couldn't load Vulkan" note is not ours. */
function assertNoTrace(err: string): void {
  const ours = err.replace(/Warning: Couldn't load Vulkan[^\n]*\n\s+at operator\(\)[^\n]*\n/g, '');
  assert.doesNotMatch(ours, /^\s+at .*(:\d+:\d+|\(node:)/m, `stack trace on stderr:\n${err}`);
}

const latestOf = (dir: string): string => fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim();
const metricSteps = (dir: string): number[] =>
  fs
    .readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { step: number }).step);

function writeImage(file: string, w: number, h: number): void {
  fs.writeFileSync(file, encodePng({ width: w, height: h, channels: 3, data: new Uint8Array(w * h * 3).map((_v, i) => (i * 37) % 251) }));
}

/** A finished 3-step run with checkpoints at steps 1, 2 and 3, copied by the tests that change a run. */
const base = path.join(root, 'base');
before(() => {
  const r = clove(['pretrain', ...TINY, '--out', base, '--until', '3', '--run.checkpointEvery', '1']);
  assert.equal(r.code, 0, r.err);
});
const copyOfBase = (name: string): string => {
  const dir = path.join(root, name);
  fs.cpSync(base, dir, { recursive: true });
  return dir;
};

describe('data loss', () => {
  // The issue's command (the loss is read every 10 steps, a checkpoint written every step) and a cadence that
  // reads the loss every step: either way "last good" is finite, latest names it, and no NaN checkpoint exists.
  for (const [name, cadence] of [
    ['log every 10, checkpoint every step', ['--run.logEvery', '10', '--run.metricsEvery', '10', '--run.checkpointEvery', '1']],
    ['log every step, checkpoint every 2', ['--run.logEvery', '1', '--run.metricsEvery', '1', '--run.checkpointEvery', '2']],
  ] as const) {
    test(`item 1: a diverging run never writes a non-finite checkpoint and names a finite last good one (${name})`, () => {
      const dir = path.join(root, `nan-${cadence[5]}`);
      const r = clove(['pretrain', ...TINY, '--out', dir, '--steps', '12', '--optim.baseLr', '1e30', ...cadence]);
      assert.equal(r.code, 1, r.out + r.err);
      assert.match(r.err, /^clove: the (loss|training state) became non-finite \((NaN|-?Infinity)[^)]*\) (at|by) step \d+; training stopped/m);
      const named = /Last good checkpoint: (\S+)/.exec(r.err)?.[1];
      assert.ok(named !== undefined, r.err);
      assertNoTrace(r.err);
      const listed = listCheckpoints(dir);
      assert.ok(E.isRight(listed));
      for (const c of listed.right) {
        const ck = loadCheckpoint(c.path);
        assert.ok(E.isRight(ck), E.isLeft(ck) ? ck.left : '');
        assert.equal(nonFiniteValue(ck.right.tensors), undefined, `${c.path} holds non-finite values`);
      }
      if (named !== 'none') {
        assert.equal(path.join(dir, latestOf(dir)), named);
        assert.ok(E.isRight(loadFiniteCheckpoint(named)));
      }
    });
  }

  test('item 2: export refuses to write inside a checkpoint, over a file without --force, or onto a directory', () => {
    const dir = copyOfBase('export');
    const state = path.join(dir, 'ckpt-00000002', 'state.safetensors');
    const before = fs.readFileSync(state);
    const inside = clove(['export', '--checkpoint', dir, '--out', state]);
    assert.equal(inside.code, 1);
    assert.match(inside.err, /^clove: --out .*state\.safetensors: refusing to write inside the checkpoint .*ckpt-00000002/m);
    assert.ok(fs.readFileSync(state).equals(before), 'the checkpoint was changed');
    const alsoInside = clove(['export', '--checkpoint', dir, '--out', path.join(dir, 'ckpt-00000003', 'new.safetensors')]);
    assert.equal(alsoInside.code, 1);
    assert.match(alsoInside.err, /refusing to write inside the checkpoint/);
    const file = path.join(root, 'backbone.safetensors');
    fs.writeFileSync(file, 'precious');
    const exists = clove(['export', '--checkpoint', dir, '--out', file]);
    assert.equal(exists.code, 1);
    assert.match(exists.err, /the file exists; pass --force to replace it/);
    assert.equal(fs.readFileSync(file, 'utf8'), 'precious');
    const forced = clove(['export', '--checkpoint', dir, '--out', file, '--force']);
    assert.equal(forced.code, 0, forced.err);
    assert.notEqual(fs.readFileSync(file, 'utf8'), 'precious');
    const onDir = clove(['export', '--checkpoint', dir, '--out', root]);
    assert.equal(onDir.code, 1);
    assert.match(onDir.err, /that is a directory/);
    // eval's report goes through the same rule.
    const report = clove(['eval', '--checkpoint', dir, '--out', path.join(dir, 'ckpt-00000003', 'manifest.json')]);
    assert.equal(report.code, 1);
    assert.match(report.err, /refusing to write inside the checkpoint/);
    for (const r of [inside, exists, onDir, report]) assertNoTrace(r.err);
  });
});

describe('a run that can never finish', () => {
  test('item 3: a 1×1 image is skipped when the folder is indexed, with one warning naming it, and the run finishes', () => {
    const images = path.join(root, 'images-tiny');
    fs.mkdirSync(images);
    for (let i = 0; i < 3; i++) writeImage(path.join(images, `good-${i}.png`), 40, 40);
    writeImage(path.join(images, 'one.png'), 1, 1);
    const dir = path.join(root, 'folder-run');
    const r = clove(['pretrain', ...TINY, '--data', images, '--out', dir, '--run.checkpointEvery', '1']);
    assert.equal(r.code, 0, r.err);
    const warnings = r.err.split('\n').filter((l) => l.startsWith('warning:'));
    assert.deepEqual(warnings, [`warning: skipping ${path.join(images, 'one.png')}: 1×1 is too small (views need at least 2×2 pixels)`]);
    assert.match(r.out, /data: image folder .* \(3 files\)/);
    assert.equal(latestOf(dir), 'ckpt-00000006');
  });

  test('item 3: a folder of only corrupt or tiny files fails before compiling, naming each file', () => {
    const images = path.join(root, 'images-bad');
    fs.mkdirSync(images);
    fs.writeFileSync(path.join(images, 'text.png'), 'not an image');
    const png = fs.readFileSync(path.join(root, 'images-tiny', 'good-0.png'));
    fs.writeFileSync(path.join(images, 'truncated.png'), png.subarray(0, 60));
    writeImage(path.join(images, 'dot.png'), 1, 1);
    const r = clove(['pretrain', ...TINY, '--data', images, '--out', path.join(root, 'bad-run')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /^clove: .*images-bad: none of its 3 image files is usable/m);
    for (const f of ['text.png', 'truncated.png', 'dot.png']) assert.match(r.err, new RegExp(`warning: skipping .*${f.replace('.', '\\.')}`));
    assert.doesNotMatch(r.out, /compil/);
    assertNoTrace(r.err);
  });

  test('item 3: a decompression bomb is refused from its header; --max-image-pixels overrides the cap', () => {
    const images = path.join(root, 'images-bomb');
    fs.mkdirSync(images);
    // A valid 40×40 PNG whose header claims 20000×20000 (400 megapixels).
    const png = Buffer.from(fs.readFileSync(path.join(root, 'images-tiny', 'good-0.png')));
    png.writeUInt32BE(20_000, 16);
    png.writeUInt32BE(20_000, 20);
    fs.writeFileSync(path.join(images, 'bomb.png'), png);
    const r = clove(['pretrain', ...TINY, '--data', images, '--out', path.join(root, 'bomb-run')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /warning: skipping .*bomb\.png: 20000×20000 = 400\.0 megapixels is over the cap of 50\.0 .*--max-image-pixels/);
    const raised = clove(['pretrain', ...TINY, '--data', images, '--out', path.join(root, 'bomb-run'), '--max-image-pixels', '500000000']);
    assert.equal(raised.code, 1);
    assert.doesNotMatch(raised.err, /over the cap/);
    assert.match(raised.err, /skipping .*bomb\.png: not a readable PNG/);
    assertNoTrace(r.err + raised.err);
  });
});

describe('signals and exit codes', () => {
  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    test(`items 4, 5: ${signal} finishes the step, writes a checkpoint and exits ${code}`, async () => {
      const dir = path.join(root, `sig-${signal}`);
      const r = await cloveSignalled(['pretrain', ...TINY, '--out', dir, '--steps', '500'], /step 2\/500/, signal);
      assert.equal(r.code, code, r.out + r.err);
      assert.match(r.out, new RegExp(`${signal}: stopping at the next safe point`));
      const step = Number(/interrupted: stopped after step (\d+);/.exec(r.out)?.[1]);
      assert.ok(step >= 2, r.out);
      assert.match(r.out, new RegExp(`stopped at step ${step} of 500: `), 'the summary says where the run stopped');
      assert.equal(latestOf(dir), `ckpt-${String(step).padStart(8, '0')}`);
      assertNoTrace(r.err);
    });
  }

  test('item 6: Ctrl-C during set-up (data, compile) stops at the next safe point, before the first step, and exits 130', async () => {
    const dir = path.join(root, 'sig-compile');
    const r = await cloveSignalled(['pretrain', ...TINY, '--out', dir], /^data: /m, 'SIGINT');
    assert.equal(r.code, 130, r.out + r.err);
    assert.match(r.out, /stopped before the first step; nothing to save/);
    assert.doesNotMatch(r.out, /^step \d/m);
    assert.ok(!fs.existsSync(path.join(dir, 'latest')));
  });

  test('items 4, 9: killed (SIGKILL, SIGTERM) at random steps and resumed: the final state equals the uninterrupted run, one metrics line per step', async () => {
    const seed = Number(process.env.CLOVE_SEED ?? Date.now() % 100_000);
    let x = seed;
    const rand = (n: number): number => {
      x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
      return x % n;
    };
    const full = path.join(root, 'kill-full');
    const ref = clove(['pretrain', ...TINY, '--out', full, '--steps', '8']);
    assert.equal(ref.code, 0, ref.err);
    const dir = path.join(root, 'kill-split');
    // SIGKILL after the step-3 checkpoint (steps 4–7 are then computed twice), SIGTERM anywhere.
    const plan: [NodeJS.Signals, number][] = [
      ['SIGKILL', 4 + rand(3)],
      ['SIGTERM', 1 + rand(6)],
    ];
    for (const [signal, at] of plan) {
      const resume = fs.existsSync(path.join(dir, 'latest')) ? ['--resume'] : [];
      const r = await cloveSignalled(['pretrain', ...TINY, '--out', dir, '--steps', '8', ...resume], new RegExp(`^step ${at}/8`, 'm'), signal);
      assert.ok(r.signal === 'SIGKILL' || r.code === 143 || r.code === 0, `seed ${seed}: ${signal} at step ${at}: ${r.code} ${r.err}`);
    }
    const last = clove(['pretrain', ...TINY, '--out', dir, '--steps', '8', '--resume']);
    assert.ok(last.code === 0 || /nothing to do/.test(last.err), `seed ${seed}: ${last.err}`);
    assert.deepEqual(metricSteps(dir), [1, 2, 3, 4, 5, 6, 7, 8], `seed ${seed}`);
    const a = loadCheckpoint(full);
    const b = loadCheckpoint(dir);
    assert.ok(E.isRight(a) && E.isRight(b));
    assert.equal(b.right.step, 8);
    for (const [name, t] of Object.entries(a.right.tensors)) {
      const u = b.right.tensors[name];
      assert.ok(u !== undefined && Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), `seed ${seed}: ${name} differs`);
    }
  });
});

describe('resume and run directories', () => {
  test('item 7: a resume that changes the run is refused, listing every differing field; the manifest is untouched', () => {
    const dir = copyOfBase('resume-changed');
    const images = path.join(root, 'images-tiny');
    const r = clove(['pretrain', ...TINY, '--out', dir, '--resume', '--seed', '7', '--batch', '4', '--optim.baseLr', '50', '--loss.variant', 'per-pair', '--data', images]);
    assert.equal(r.code, 1);
    for (const f of ['seed: 0 in the checkpoint, 7 now', 'optim.batchSize: 2 in the checkpoint, 4 now', 'optim.baseLr: 1 in the checkpoint, 50 now', 'loss.variant: "official"', 'data.source: "deadleaves"', 'data.path: null']) {
      assert.ok(r.err.includes(f), `missing '${f}' in:\n${r.err}`);
    }
    assert.match(r.err, /differs from the checkpoint's in 6 fields/);
    assert.equal(latestOf(dir), 'ckpt-00000003');
    const ck = loadCheckpoint(dir);
    assert.ok(E.isRight(ck) && ck.right.config.seed === 0);
    const preset = clove(['pretrain', '--preset', 'cpu-small', '--backend', 'cpu', '--out', dir, '--resume']);
    assert.equal(preset.code, 1);
    assert.match(preset.err, /the checkpoint's model and views are those of preset 'tiny'; this command's are those of preset 'cpu-small'/);
    assertNoTrace(r.err + preset.err);
  });

  test("item 7: extending a run and changing the logging cadence is allowed and recorded in the manifest's history", () => {
    const dir = copyOfBase('resume-extended');
    const r = clove(['pretrain', ...TINY, '--out', dir, '--resume', '--steps', '8', '--until', '4', '--run.logEvery', '2']);
    assert.equal(r.code, 0, r.err);
    // (the base run checkpointed every step; this resume goes back to the preset's every 3)
    assert.match(r.out, /resuming with optim\.steps: 6 → 8, run\.logEvery: 1 → 2, run\.checkpointEvery: 1 → 3 \(recorded in the manifest's history\)/);
    const ck = loadCheckpoint(dir);
    assert.ok(E.isRight(ck));
    assert.equal(ck.right.step, 4);
    assert.deepEqual(ck.right.history, [{ step: 3, changes: ['optim.steps: 6 → 8', 'run.logEvery: 1 → 2', 'run.checkpointEvery: 1 → 3'] }]);
  });

  test('item 8: a directory holding a run is not restarted without --resume; --overwrite starts over', () => {
    const dir = copyOfBase('reuse');
    const metrics = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8');
    const r = clove(['pretrain', ...TINY, '--out', dir]);
    assert.equal(r.code, 1);
    assert.match(r.err, /already holds a run \(checkpoints up to step 3\): add --resume to continue it, choose a new --out, or pass --overwrite/);
    assert.equal(fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8'), metrics);
    const o = clove(['pretrain', ...TINY, '--out', dir, '--overwrite', '--until', '2']);
    assert.equal(o.code, 0, o.err);
    assert.deepEqual(metricSteps(dir), [1, 2]);
    const listed = listCheckpoints(dir);
    assert.ok(E.isRight(listed));
    assert.deepEqual(listed.right.map((c) => c.name), ['ckpt-00000002']);
  });

  test('item 9: truncateMetrics drops the steps after the checkpoint and a partial last line', () => {
    const dir = path.join(root, 'truncate');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'metrics.jsonl'), '{"step":1}\n{"step":2}\n{"step":3}\n{"step":4}\n{"st');
    const dropped = truncateMetrics(dir, 2);
    assert.deepEqual(dropped, E.right(3));
    assert.equal(fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8'), '{"step":1}\n{"step":2}\n');
    assert.deepEqual(truncateMetrics(dir, 2), E.right(0));
  });

  test('item 10: with the newest checkpoint corrupt, eval and export name the one to pass, resume falls back to it and says so', () => {
    const dir = copyOfBase('corrupt');
    fs.writeFileSync(path.join(dir, 'ckpt-00000003', 'state.safetensors'), 'garbage');
    for (const args of [
      ['export', '--checkpoint', dir, '--out', path.join(root, 'never.safetensors')],
      ['eval', '--checkpoint', dir],
    ]) {
      const r = clove(args);
      assert.equal(r.code, 1);
      assert.match(r.err, /ckpt-00000003\/state\.safetensors is 7 bytes/);
      assert.match(r.err, /the newest usable checkpoint of that run is .*ckpt-00000002 \(step 2\): pass --checkpoint .*ckpt-00000002/);
      assertNoTrace(r.err);
    }
    const r = clove(['pretrain', ...TINY, '--out', dir, '--resume', '--until', '4']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /warning: not resuming from .*ckpt-00000003: /);
    assert.match(r.out, /resuming from .*ckpt-00000002 at step 2 \(the newest usable checkpoint\)/);
    assert.ok(fs.existsSync(path.join(dir, 'unusable-ckpt-00000003')), 'the corrupt checkpoint is kept aside');
    assert.equal(latestOf(dir), 'ckpt-00000004');
    assert.deepEqual(metricSteps(dir), [1, 2, 3, 4]);
  });
});

describe('paths, disks and flags', () => {
  test('item 11: an unusable --out fails at once (before data or compile), naming the path', () => {
    const file = path.join(root, 'a-file');
    fs.writeFileSync(file, '');
    for (const [out, why] of [
      ['/dev/null/run', /ENOTDIR|not a directory/],
      [file, /exists and is not a directory/],
      ['/proc/x', /cannot create directory \/proc\/x/],
      [path.join(base, 'ckpt-00000003'), /inside the checkpoint/],
    ] as const) {
      const r = clove(['pretrain', ...TINY, '--out', out]);
      assert.equal(r.code, 1, out);
      assert.match(r.err, new RegExp(`^clove: --out ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `, 'm'));
      assert.match(r.err, why);
      assert.doesNotMatch(r.out, /data:|compil/);
      assertNoTrace(r.err);
    }
  });

  test('item 12: a failing checkpoint write names the file and the free space, and keeps the last checkpoint', () => {
    const dir = copyOfBase('disk');
    // A 1 MB file-size limit makes the 2 MB state file fail like a full disk would (EFBIG instead of ENOSPC).
    const r = cloveUnder('ulimit -f 1000', ['pretrain', ...TINY, '--out', dir, '--resume']);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /^clove: writing the checkpoint of step 6 \(.*ckpt-00000006\) failed: cannot write .*state\.safetensors: .*\([\d.]+ MiB free on that file system\); last good checkpoint: .*ckpt-00000003$/m);
    assert.equal(latestOf(dir), 'ckpt-00000003');
    assert.ok(E.isRight(loadFiniteCheckpoint(dir)));
    assertNoTrace(r.err);
    // metrics.jsonl past the limit: its append at step 4 fails first, and the message names it.
    const metrics = path.join(dir, 'metrics.jsonl');
    fs.writeFileSync(metrics, `${JSON.stringify({ step: 1, pad: 'x'.repeat(1_100_000) })}\n`);
    const m = cloveUnder('ulimit -f 1000', ['pretrain', ...TINY, '--out', dir, '--resume']);
    assert.equal(m.code, 1, m.err);
    assert.match(m.err, /^clove: cannot write .*metrics\.jsonl: .*\([\d.]+ MiB free on that file system\); training stopped after step 4\. Last good checkpoint: .*ckpt-00000003$/m);
    assert.equal(latestOf(dir), 'ckpt-00000003');
    assertNoTrace(m.err);
  });

  test('item 13: two flags setting one field are reported, not resolved by their order', () => {
    const a = clove(['pretrain', ...TINY, '--steps', '5', '--optim.steps', '7']);
    assert.equal(a.code, 1);
    assert.match(a.err, /conflicting flags: --steps 5 and --optim\.steps 7 both set optim\.steps/);
    const b = clove(['pretrain', ...TINY, '--data', '/nonexistent', '--data.source', 'deadleaves']);
    assert.equal(b.code, 1);
    assert.match(b.err, /conflicting flags: --data \/nonexistent and --data\.source deadleaves both set data\.source/);
    const c = clove(['pretrain', '--preset', 'tiny', '--preset', 'cpu-small']);
    assert.equal(c.code, 1);
    assert.match(c.err, /conflicting flags: --preset tiny and --preset cpu-small/);
  });

  test('item 14: a config that cannot build a step is rejected before any data is built', () => {
    for (const flags of [['--model.encoder.name', 'nope'], ['--views.localSize', '4'], ['--loss.k', '1000']]) {
      const t0 = Date.now();
      const r = clove(['pretrain', '--preset', 'r50-224', '--backend', 'cpu', '--out', path.join(root, 'r50'), ...flags]);
      assert.equal(r.code, 1, flags.join(' '));
      assert.match(r.err, /^clove: the config does not give a valid training step: /m);
      assert.doesNotMatch(r.out, /generating DeadLeaves/);
      assert.ok(Date.now() - t0 < 60_000, `${flags.join(' ')} took ${Date.now() - t0} ms`);
    }
  });

  test('no stack traces: an unexpected exception is one line, and its trace goes to a log in the run directory', () => {
    const inject = path.join(root, 'inject.mjs');
    fs.writeFileSync(inject, "setTimeout(() => { throw new Error('injected failure'); }, 1500);\n");
    const dir = path.join(root, 'internal');
    const r = clove(['pretrain', ...TINY, '--out', dir], { NODE_OPTIONS: `--import=${inject}` });
    assert.equal(r.code, 1);
    assert.match(r.err, /^clove: internal error: injected failure\n {2}This is a bug in clove: please report it with the command line and .*clove-error\.log/m);
    assertNoTrace(r.err);
    const logFile = /and (\S+clove-error\.log)/.exec(r.err)?.[1];
    assert.ok(logFile !== undefined && fs.readFileSync(logFile, 'utf8').includes('injected failure'));
    assert.equal(path.dirname(logFile), dir);
    assert.match(fs.readFileSync(logFile, 'utf8'), /^\s+at /m, 'the trace is in the log');
  });
});
