import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { property } from './prop.ts';
import { decodeSafetensors, encodeSafetensors, type StoredTensor, type TensorArray, type TensorInput } from '../clove/safetensors.ts';
import { isTemporaryName, writeDirAtomic, writeFileAtomic } from '../clove/atomic.ts';
import {
  LATEST_FILE,
  MANIFEST_FILE,
  STATE_FILE,
  checkpointName,
  listCheckpoints,
  loadCheckpoint,
  prefixTensors,
  saveCheckpoint,
  tensorGroup,
  tensorGroups,
  type CheckpointInput,
  type CheckpointTensor,
} from '../clove/checkpoint.ts';
import { presets } from '../clove/config.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'clove-ckpt-'));
}

const bytesOf = (data: TensorArray): Buffer => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

// ---------------------------------------------------------------------------------------------------------
// safetensors

const shapeArb = fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 });
const tensorArb: fc.Arbitrary<TensorInput> = fc.oneof(
  shapeArb.chain((shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return fc.float32Array({ minLength: n, maxLength: n }).map((data) => ({ shape, data }));
  }),
  shapeArb.chain((shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return fc.int32Array({ minLength: n, maxLength: n }).map((data) => ({ shape, data }));
  }),
  shapeArb.chain((shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return fc.float64Array({ minLength: n, maxLength: n }).map((data) => ({ shape, data }));
  }),
);
const tensorNameArb = fc.oneof(fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== '__metadata__'), fc.constantFrom('__proto__', 'constructor'));
const tensorSetArb = fc.dictionary(tensorNameArb, tensorArb, { maxKeys: 6 });
const metadataArb = fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constant('__proto__')), fc.string({ maxLength: 8 }), { maxKeys: 3 });

test('safetensors: random tensor sets round-trip bit for bit', () => {
  property(
    fc.property(tensorSetArb, metadataArb, (tensors, metadata) => {
      const bytes = encodeSafetensors(tensors, metadata);
      const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      assert.equal((8 + headerLength) % 8, 0, 'data section must start 8-byte aligned');
      const decoded = decodeSafetensors(bytes);
      assert.ok(E.isRight(decoded), E.isLeft(decoded) ? decoded.left : '');
      assert.deepEqual(Object.keys(decoded.right.tensors).sort(), Object.keys(tensors).sort());
      for (const [name, tensor] of Object.entries(tensors)) {
        const back: StoredTensor = decoded.right.tensors[name]!;
        assert.equal(back.data.constructor, tensor.data.constructor);
        assert.deepEqual(back.shape, [...tensor.shape]);
        assert.ok(bytesOf(back.data).equals(bytesOf(tensor.data)), `tensor ${name} bytes differ`);
      }
      assert.deepEqual(Object.entries(decoded.right.metadata).sort(), Object.entries(metadata).sort());
      // Data is laid out in name order.
      const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString('utf8')) as Record<string, { data_offsets?: number[] }>;
      const starts = Object.keys(tensors).sort().map((name) => header[name]!.data_offsets![0]!);
      assert.deepEqual(starts, [...starts].sort((a, b) => a - b));
    }),
    200,
  );
});

test('safetensors: truncation is always a Left, never a throw', () => {
  property(
    fc.property(tensorSetArb, fc.double({ min: 0, max: 1, noNaN: true }), (tensors, fraction) => {
      const bytes = encodeSafetensors(tensors);
      const cut = Math.min(bytes.length - 1, Math.floor(fraction * bytes.length));
      assert.ok(E.isLeft(decodeSafetensors(bytes.subarray(0, cut))));
    }),
    200,
  );
});

test('safetensors: a flipped byte never throws and never yields bytes that were not a tensor', () => {
  property(
    fc.property(tensorSetArb, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), (tensors, where, mask, inHeader) => {
      const bytes = encodeSafetensors(tensors);
      const headerEnd = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const span = inHeader ? headerEnd : bytes.length;
      const index = where % span;
      const corrupted = new Uint8Array(bytes);
      corrupted[index] = corrupted[index]! ^ mask;
      const decoded = decodeSafetensors(corrupted);
      if (index < 8) assert.ok(E.isLeft(decoded), 'a corrupted length prefix must be detected');
      if (E.isRight(decoded) && index < headerEnd) {
        // A flip in the header may rename a tensor or change a dtype tag, but offsets must still tile the same
        // data, so the multiset of tensor byte strings is unchanged.
        const before = Object.values(tensors).map((t) => bytesOf(t.data).toString('hex')).sort();
        const after = Object.values(decoded.right.tensors).map((t) => bytesOf(t.data).toString('hex')).sort();
        assert.deepEqual(after, before);
      }
    }),
    400,
  );
});

function fileWithHeader(header: unknown, dataBytes: number): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

test('safetensors: structural corruption names the problem', () => {
  const cases: Array<[unknown, number, RegExp]> = [
    [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12, /overlap/],
    [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 12, /trailing bytes/],
    [{ a: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12, /belong to no tensor/],
    [{ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8, /needs 12 bytes/],
    [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 16] } }, 8, /run past the data section/],
    [{ a: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] } }, 4, /not supported/],
    [{ a: { dtype: 'Q9', shape: [2], data_offsets: [0, 4] } }, 4, /unknown dtype/],
    [{ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4, /shape must be/],
    [{ __metadata__: { step: 3 } }, 0, /__metadata__ must map strings to strings/],
    [[1, 2], 0, /header must be a JSON object/],
  ];
  for (const [header, dataBytes, pattern] of cases) {
    const result = decodeSafetensors(fileWithHeader(header, dataBytes));
    assert.ok(E.isLeft(result), `accepted ${JSON.stringify(header)}`);
    assert.match(result.left, pattern);
  }
  const badJson = new Uint8Array(8 + 5);
  new DataView(badJson.buffer).setBigUint64(0, 5n, true);
  badJson.set(Buffer.from('{"a":'), 8);
  assert.match((decodeSafetensors(badJson) as E.Left<string>).left, /not valid UTF-8 JSON/);
  assert.throws(() => encodeSafetensors({ a: { shape: [3], data: new Float32Array(2) } }), /shape \[3\]/);
});

// ---------------------------------------------------------------------------------------------------------
// atomic writes

test('atomic writes replace content whole and leave no temporaries', () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'f.txt');
    assert.deepEqual(writeFileAtomic(file, 'one'), E.right(undefined));
    assert.deepEqual(writeFileAtomic(file, 'two'), E.right(undefined));
    assert.equal(fs.readFileSync(file, 'utf8'), 'two');
    const failed = writeFileAtomic(file, 'three', { beforeRename: () => { throw new Error('disk full'); } });
    assert.ok(E.isLeft(failed) && failed.left.includes('disk full'));
    assert.equal(fs.readFileSync(file, 'utf8'), 'two');
    const sub = path.join(dir, 'sub');
    assert.ok(E.isRight(writeDirAtomic(sub, (tmp) => writeFileAtomic(path.join(tmp, 'x'), 'x'))));
    assert.ok(E.isLeft(writeDirAtomic(sub, () => E.right(undefined))), 'an existing directory is kept unless replace is asked for');
    assert.ok(E.isLeft(writeDirAtomic(path.join(dir, 'never'), () => E.left('fill failed'))));
    assert.ok(!fs.existsSync(path.join(dir, 'never')));
    assert.deepEqual(fs.readdirSync(dir).filter(isTemporaryName), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// checkpoints

const groupedTensorsArb: fc.Arbitrary<Record<string, CheckpointTensor>> = fc
  .tuple(...tensorGroups.map(() => fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_.]{0,8}$/), shapeArb, { maxKeys: 3 })))
  .chain((perGroup) => {
    const entries = perGroup.flatMap((shapes, g) => Object.entries(shapes).map(([name, shape]) => [`${tensorGroups[g]}/${name}`, shape] as const));
    return fc
      .tuple(...entries.map(([, shape]) => {
        const n = shape.reduce((a, b) => a * b, 1);
        return fc.float32Array({ minLength: n, maxLength: n });
      }))
      .map((arrays) => Object.fromEntries(entries.map(([name, shape], i) => [name, { shape, data: arrays[i]! }])));
  });

function smallInput(step: number, seed = step): CheckpointInput {
  const data = Float32Array.from({ length: 6 }, (_, i) => seed * 10 + i);
  return {
    step,
    epoch: Math.floor(step / 2),
    rngState: [seed, 0xdeadbeef, 7],
    config: presets.tiny,
    backend: 'cpu',
    tensors: { 'params/w': { shape: [2, 3], data }, 'opt/w.momentum': { shape: [6], data: data.map((v) => -v) } },
  };
}

function sameTensors(actual: Readonly<Record<string, CheckpointTensor>>, expected: Readonly<Record<string, CheckpointTensor>>): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, tensor] of Object.entries(expected)) {
    assert.deepEqual([...actual[name]!.shape], [...tensor.shape], name);
    assert.ok(bytesOf(actual[name]!.data).equals(bytesOf(tensor.data)), `tensor ${name} differs`);
  }
}

test('checkpoint save → load round-trips step, epoch, RNG state, config and tensors', () => {
  const dir = tempDir();
  try {
    property(
      fc.property(
        groupedTensorsArb,
        fc.integer({ min: 0, max: 1e9 }),
        fc.nat(1000),
        fc.array(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { maxLength: 6 }),
        fc.constantFrom('tiny', 'cpu-small', 'r50-224' as const),
        (tensors, step, epoch, rngState, preset) => {
          const runDir = fs.mkdtempSync(path.join(dir, 'run-'));
          const input: CheckpointInput = { step, epoch, rngState, config: presets[preset], backend: 'webasm', tensors };
          const saved = saveCheckpoint(runDir, input, { now: new Date(Date.UTC(2026, 10, 1)) });
          assert.ok(E.isRight(saved), E.isLeft(saved) ? saved.left : '');
          assert.equal(saved.right, path.join(runDir, checkpointName(step)));
          for (const target of [runDir, saved.right]) {
            const loaded = loadCheckpoint(target);
            assert.ok(E.isRight(loaded), E.isLeft(loaded) ? loaded.left : '');
            const c = loaded.right;
            assert.deepEqual([c.step, c.epoch, c.rngState, c.config, c.backend], [step, epoch, rngState, presets[preset], 'webasm']);
            assert.equal(c.manifest.createdAt, '2026-11-01T00:00:00.000Z');
            sameTensors(c.tensors, tensors);
          }
          // Splitting by group and re-prefixing gives back every tensor.
          sameTensors(Object.assign({}, ...tensorGroups.map((g) => prefixTensors(g, tensorGroup(tensors, g)))), tensors);
        },
      ),
      25,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('tensor groups split and rejoin', () => {
  const tensors = smallInput(1).tensors;
  assert.deepEqual(Object.keys(tensorGroup(tensors, 'params')), ['w']);
  assert.deepEqual(Object.keys(tensorGroup(tensors, 'opt')), ['w.momentum']);
  assert.deepEqual(tensorGroup(tensors, 'teacher'), {});
  const rejoined = { ...prefixTensors('params', tensorGroup(tensors, 'params')), ...prefixTensors('opt', tensorGroup(tensors, 'opt')) };
  sameTensors(rejoined, tensors);
  assert.throws(() => saveCheckpoint(tempDir(), { ...smallInput(1), tensors: { w: { shape: [1], data: new Float32Array(1) } } }), /group/);
});

test('latest follows the newest save and only the last `keep` checkpoints remain', () => {
  const runDir = tempDir();
  try {
    for (let step = 10; step <= 60; step += 10) {
      assert.ok(E.isRight(saveCheckpoint(runDir, smallInput(step), { keep: 2 })));
      assert.equal(fs.readFileSync(path.join(runDir, LATEST_FILE), 'utf8').trim(), checkpointName(step));
    }
    const listed = listCheckpoints(runDir);
    assert.deepEqual(E.map((entries: { step: number }[]) => entries.map((e) => e.step))(listed), E.right([50, 60]));
    const latest = loadCheckpoint(runDir);
    assert.ok(E.isRight(latest) && latest.right.step === 60);
    // Saving an older step (a resumed run) must never prune the checkpoint it just wrote.
    assert.ok(E.isRight(saveCheckpoint(runDir, smallInput(55), { keep: 1 })));
    assert.ok(E.isRight(loadCheckpoint(runDir)) && (loadCheckpoint(runDir) as E.Right<{ step: number }>).right.step === 55);
    // Re-saving a step replaces it.
    assert.ok(E.isRight(saveCheckpoint(runDir, smallInput(55, 99), { keep: 1 })));
    const replaced = loadCheckpoint(runDir);
    assert.ok(E.isRight(replaced));
    sameTensors(replaced.right.tensors, smallInput(55, 99).tensors);
    assert.deepEqual(fs.readdirSync(runDir).filter(isTemporaryName), []);
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
});

/** Runs a child that saves step 1 normally, then dies by SIGKILL at `crashPoint` while saving step 2. */
function crashWhileSaving(runDir: string, crashPoint: 'beforeCheckpointRename' | 'beforeLatestRename'): void {
  const script = `
    import { saveCheckpoint } from ${JSON.stringify(path.join(repoRoot, 'clove/checkpoint.ts'))};
    import { presets } from ${JSON.stringify(path.join(repoRoot, 'clove/config.ts'))};
    const input = (step) => ({ step, epoch: 0, rngState: [step], config: presets.tiny, backend: 'cpu',
      tensors: { 'params/w': { shape: [4], data: Float32Array.from([step, step + 1, step + 2, step + 3]) } } });
    const first = saveCheckpoint(process.env.RUN_DIR, input(1));
    if (first._tag !== 'Right') { console.error(first.left); process.exit(3); }
    saveCheckpoint(process.env.RUN_DIR, input(2), { crash: { ${crashPoint}: () => process.kill(process.pid, 'SIGKILL') } });
    process.exit(4);
  `;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repoRoot,
    env: { ...process.env, RUN_DIR: runDir },
    encoding: 'utf8',
  });
  assert.equal(child.signal, 'SIGKILL', `the child should have died mid-save (status ${child.status}, stderr ${child.stderr})`);
}

test('a crash before the checkpoint rename leaves the previous checkpoint and latest intact', () => {
  const runDir = tempDir();
  try {
    crashWhileSaving(runDir, 'beforeCheckpointRename');
    const leftovers = fs.readdirSync(runDir).filter(isTemporaryName);
    assert.equal(leftovers.length, 1, 'the half-finished checkpoint must exist only under a temporary name');
    assert.equal(fs.readFileSync(path.join(runDir, LATEST_FILE), 'utf8'), `${checkpointName(1)}\n`);
    assert.deepEqual(E.map((entries: { step: number }[]) => entries.map((e) => e.step))(listCheckpoints(runDir)), E.right([1]));
    const loaded = loadCheckpoint(runDir);
    assert.ok(E.isRight(loaded), E.isLeft(loaded) ? loaded.left : '');
    assert.equal(loaded.right.step, 1);
    assert.deepEqual([...loaded.right.tensors['params/w']!.data], [1, 2, 3, 4]);
    // The next save succeeds and clears the leftover.
    assert.ok(E.isRight(saveCheckpoint(runDir, smallInput(2))));
    assert.deepEqual(fs.readdirSync(runDir).filter(isTemporaryName), []);
    assert.ok(E.isRight(loadCheckpoint(runDir)) && (loadCheckpoint(runDir) as E.Right<{ step: number }>).right.step === 2);
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
});

test('a crash before the latest rename leaves latest on the previous, complete checkpoint', () => {
  const runDir = tempDir();
  try {
    crashWhileSaving(runDir, 'beforeLatestRename');
    assert.equal(fs.readFileSync(path.join(runDir, LATEST_FILE), 'utf8'), `${checkpointName(1)}\n`);
    const viaLatest = loadCheckpoint(runDir);
    assert.ok(E.isRight(viaLatest) && viaLatest.right.step === 1);
    const newer = loadCheckpoint(path.join(runDir, checkpointName(2)));
    assert.ok(E.isRight(newer) && newer.right.step === 2, 'the renamed checkpoint is complete');
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
});

test('corrupt or missing checkpoints are reported, not thrown', () => {
  const runDir = tempDir();
  try {
    const saved = saveCheckpoint(runDir, smallInput(7));
    assert.ok(E.isRight(saved));
    const ckpt = saved.right;
    const stateFile = path.join(ckpt, STATE_FILE);
    const manifestFile = path.join(ckpt, MANIFEST_FILE);
    const original = fs.readFileSync(stateFile);
    const manifestText = fs.readFileSync(manifestFile, 'utf8');
    const expectLeft = (pattern: RegExp) => {
      const result = loadCheckpoint(runDir);
      assert.ok(E.isLeft(result), `expected a failure matching ${pattern}`);
      assert.match(result.left, pattern);
    };

    // One flipped bit in the tensor data: same size, different hash.
    const flipped = Buffer.from(original);
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 1;
    fs.writeFileSync(stateFile, flipped);
    expectLeft(/sha256/);
    fs.writeFileSync(stateFile, original.subarray(0, original.length - 3));
    expectLeft(/bytes but the manifest recorded/);
    fs.writeFileSync(stateFile, original);
    assert.ok(E.isRight(loadCheckpoint(runDir)));

    const manifest = JSON.parse(manifestText) as Record<string, unknown> & { tensors: Array<Record<string, unknown>>; config: { optim: Record<string, unknown> } };
    const withManifest = (edit: (m: typeof manifest) => void, pattern: RegExp) => {
      const copy = structuredClone(manifest);
      edit(copy);
      fs.writeFileSync(manifestFile, JSON.stringify(copy));
      expectLeft(pattern);
      fs.writeFileSync(manifestFile, manifestText);
    };
    withManifest((m) => { m.tensors.push({ name: 'teacher/w', shape: [6], dtype: 'F32' }); }, /'teacher\/w' listed in the manifest is missing/);
    withManifest((m) => { m.tensors.pop(); }, /not listed in the manifest/);
    withManifest((m) => { m.tensors[0]!.shape = [3, 2]; }, /manifest says \[3, 2\]/);
    withManifest((m) => { m.step = 8; }, /directory name says step 7/);
    withManifest((m) => { m.config.optim.momentum = 1.5; m.epoch = -1; }, /epoch: expected an integer >= 0, got -1.*config\.optim\.momentum: expected a number in \[0, 1\), got 1\.5/);
    fs.writeFileSync(manifestFile, '{ not json');
    expectLeft(/cannot be read as JSON/);
    fs.writeFileSync(manifestFile, manifestText);

    fs.writeFileSync(path.join(runDir, LATEST_FILE), 'ckpt-00000099\n');
    expectLeft(/names ckpt-00000099/);
    fs.writeFileSync(path.join(runDir, LATEST_FILE), '../../etc\n');
    expectLeft(/latest is corrupt/);
    fs.rmSync(path.join(runDir, LATEST_FILE));
    expectLeft(/neither manifest.json/);
    assert.match((loadCheckpoint(path.join(runDir, 'nope')) as E.Left<string>).left, /does not exist/);
    assert.ok(E.isLeft(listCheckpoints(path.join(runDir, 'nope'))));
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
});
