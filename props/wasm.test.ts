// Properties of the wasm back end beyond "equals the interpreter" (props/compiled.test.ts runs every primitive
// and its gradient on it): results are the same bits whatever the thread count and on a rerun; the static arena
// never places two tensors that are live at once on the same bytes; the allocator keeps live blocks apart and
// gives memory back; and a training loop's memory does not grow.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { vjp } from '../compiler/autodiff.ts';
import * as b from '../compiler/build.ts';
import { compile, plan, type StepResult } from '../compiler/compile.ts';
import { makeGraph, type Graph, type Node } from '../compiler/ir.ts';
import type { PrimName } from '../compiler/params.ts';
import { bufferBytes } from '../compiler/schedule.ts';
import { layoutArena } from '../compiler/targets/wasm/compile.ts';
import { WasmDevice } from '../compiler/targets/wasm/device.ts';
import type { DeviceHandle } from '../compiler/runtime/device.ts';
import { wasmTarget } from '../compiler/targets/wasm/target.ts';
import * as T from '../dsl/index.ts';
import { anyCase, buildCase, drawValues, generators, prng, type Case } from './gen.ts';
import { property } from './prop.ts';

/** A primitive case with its gradient, as one graph (leaves x0, x1, … and the cotangent weight w). */
function caseGraph(c: Case<PrimName>): Graph {
  const { node, leaves } = buildCase(c);
  const outputs: Record<string, Node> = { y: node };
  const f32 = leaves.filter((l) => l.dtype === 'f32');
  if (node.dtype === 'f32' && f32.length > 0) vjp(b.sum(b.mul(node, b.input('w', node.shape)), node.shape.map((_d, i) => i)), f32).forEach((g, i) => (outputs[`g${i}`] = g));
  return makeGraph(outputs);
}

async function runBits(graph: Graph, bindings: Record<string, Float32Array>, threads: number, reruns: number): Promise<Uint32Array[][]> {
  // Every launch is split across the threads (splitFromWork 0), so the partition is exercised on small shapes too.
  const exe = await compile(graph, { backend: 'wasm', threads, splitFromWork: 0 });
  if (E.isLeft(exe)) throw new Error(exe.left);
  try {
    const runs: Uint32Array[][] = [];
    for (let r = 0; r < reruns; r++) {
      const out = await exe.right.run(bindings);
      if (E.isLeft(out)) throw new Error(out.left);
      const bits: Uint32Array[] = [];
      for (const name of Object.keys(graph.outputs).sort()) {
        const v = await exe.right.read(out.right[name]);
        if (E.isLeft(v)) throw new Error(v.left);
        bits.push(new Uint32Array(v.right.buffer.slice(0)));
      }
      for (const h of new Set(Object.values(out.right))) exe.right.device.free(h);
      runs.push(bits);
    }
    return runs;
  } finally {
    await exe.right.dispose();
  }
}

describe('wasm back end', () => {
  const contractions = fc.oneof(generators.conv2d, generators.dot, generators.sum, generators.pool2d, generators.pad) as fc.Arbitrary<Case<PrimName>>;
  test('the same bits with 1 thread, 2 threads and on a rerun (contractions, reductions, windows and their gradients)', async () => {
    await property(
      fc.asyncProperty(contractions, fc.integer({ min: 1, max: 2 ** 31 - 1 }), async (c, seed) => {
        const graph = caseGraph(c);
        const rand = prng(seed);
        const bindings: Record<string, Float32Array> = {};
        for (const leaf of graph.nodes.filter((n) => n.op === 'input')) {
          const name = (leaf.params as { name: string }).name;
          const k = c.operands.findIndex((_o, i) => `x${i}` === name);
          bindings[name] = Float32Array.from(drawValues(k >= 0 ? c.operands[k] : { shape: leaf.shape, dtype: 'f32', values: 'smooth' }, rand));
        }
        const [one] = await runBits(graph, bindings, 1, 1);
        const [two, again] = await runBits(graph, bindings, 2, 2);
        assert.deepEqual(two, one, `2 threads differ from 1 (${JSON.stringify(c)})`);
        assert.deepEqual(again, two, 'a rerun differs');
      }),
      8,
    );
  });

  test('the arena never puts two tensors live at the same time on the same bytes (random graphs with gradients)', () => {
    property(
      fc.property(fc.array(anyCase, { minLength: 1, maxLength: 4 }), (cases) => {
        const outputs: Record<string, Node> = {};
        cases.forEach((c, j) => Object.entries(caseGraph(c).outputs).forEach(([k, n]) => (outputs[`${k}_${j}`] = n)));
        const p = plan(makeGraph(outputs), { maxBufferBytes: 2 ** 31 }, { target: wasmTarget });
        if (E.isLeft(p)) return; // leaf names of different cases clash: not an arena question
        const { offsets, bytes } = layoutArena(p.right);
        const live = new Map<number, [number, number]>();
        for (const s of p.right.memory.steps) {
          if (s.kind === 'free') {
            live.delete(s.node);
            continue;
          }
          const root = p.right.kernels[s.kernel].root;
          const off = offsets.get(root.id);
          if (off === undefined) continue; // a graph output: a handle of its own
          const range: [number, number] = [off, off + bufferBytes(root)];
          assert.ok(range[1] <= bytes, `tensor #${root.id} ends at ${range[1]}, past the arena's ${bytes} bytes`);
          for (const [id, [lo, hi]] of live) assert.ok(range[1] <= lo || range[0] >= hi, `tensors #${root.id} [${range}] and #${id} [${lo}, ${hi}] overlap while both live`);
          live.set(root.id, range);
        }
      }),
      150,
    );
  });

  test('the allocator keeps live blocks disjoint, inside memory, and gives everything back', async () => {
    const opened = await WasmDevice.open(1);
    assert.ok(E.isRight(opened));
    const d = opened.right;
    try {
      property(
        fc.property(fc.array(fc.record({ size: fc.integer({ min: 1, max: 300_000 }), free: fc.nat(20) }), { minLength: 1, maxLength: 60 }), (ops) => {
          const blocks: { off: number; size: number }[] = [];
          for (const { size, free } of ops) {
            if (free < 6 && blocks.length > 0) {
              const [blk] = blocks.splice(free % blocks.length, 1);
              d.release(blk.off, blk.size);
            }
            const off = d.alloc(size);
            assert.ok(off + size <= d.memory.buffer.byteLength, 'a block past the end of memory');
            for (const other of blocks) assert.ok(off + size <= other.off || off >= other.off + other.size, 'two live blocks overlap');
            blocks.push({ off, size });
          }
          for (const blk of blocks) d.release(blk.off, blk.size);
          assert.equal(d.alloc(1), 64, 'everything freed: the next block is the first one');
          d.release(64, 1);
        }),
        100,
      );
    } finally {
      await d.dispose();
    }
  });

  test('100 compiled SGD steps through Executable.step (donated state): live handles, live bytes and memory size unchanged; a failed step leaves the state usable', async () => {
    const x = T.input('x', [64, 3, 16, 16]);
    const w = T.param('w', [8, 3, 3, 3]);
    const v = T.param('v', [8, 10]);
    const h = T.div(T.sum(T.relu(T.conv2d(x, w, { padding: 1, stride: 2 })), [2, 3]), 64);
    const err = T.sub(T.matmul(h, v), T.input('y', [64, 10]));
    const loss = T.mean(T.mul(err, err));
    const [gw, gv] = vjp(loss, [w, v]);
    const exe = await compile(makeGraph({ loss, w: T.sub(w, T.mul(gw, 0.1)), v: T.sub(v, T.mul(gv, 0.1)) }), { backend: 'wasm' });
    assert.ok(E.isRight(exe));
    const dev = exe.right.device as WasmDevice;
    const rand = prng(3);
    const data = (shape: number[]) => Float32Array.from(drawValues({ shape, dtype: 'f32', values: 'smooth' }, rand));
    const fixed = { x: await exe.right.upload('x', data([64, 3, 16, 16])), y: await exe.right.upload('y', data([64, 10])) };
    const init = { w: await exe.right.upload('w', data([8, 3, 3, 3])), v: await exe.right.upload('v', data([8, 10])) };
    assert.ok(E.isRight(fixed.x) && E.isRight(fixed.y) && E.isRight(init.w) && E.isRight(init.v));
    let state: Record<string, DeviceHandle> = { w: init.w.right, v: init.v.right };
    const inputs = { x: fixed.x.right, y: fixed.y.right };
    let before = { count: 0, bytes: 0, memory: 0 };
    const losses: number[] = [];
    for (let step = 0; step < 100; step++) {
      const out: E.Either<string, StepResult> = await exe.right.step(state, inputs, ['loss']);
      assert.ok(E.isRight(out));
      assert.deepEqual(Object.keys(out.right.state).sort(), ['v', 'w']);
      state = out.right.state;
      losses.push(out.right.values.loss[0]);
      const now = { ...dev.liveHandles(), memory: dev.memory.buffer.byteLength };
      if (step === 1) before = now;
      if (step > 1) assert.deepEqual(now, before, `step ${step}: memory grew`);
    }
    assert.ok(losses[99] < losses[0], 'the loss falls');
    const failed = await exe.right.step(state, inputs, ['loss', 'nothing-by-that-name']);
    assert.ok(E.isLeft(failed) && /no output 'nothing-by-that-name'/.test(failed.left));
    assert.deepEqual({ ...dev.liveHandles(), memory: dev.memory.buffer.byteLength }, before, 'a failed step frees what it made and keeps the state');
    const again = await exe.right.step(state, inputs, ['loss']);
    assert.ok(E.isRight(again) && again.right.values.loss[0] < losses[99], 'the kept state steps on');
    await exe.right.dispose();
  });

  test('a plan over wasm32 memory is refused at plan time, naming the largest tensors', async () => {
    const x = T.input('x', [1024, 1024, 600]);
    const exe = await compile(makeGraph({ y: T.exp(T.mul(T.exp(x), x)) }), { backend: 'wasm' });
    assert.ok(E.isLeft(exe));
    assert.match(exe.left, /exceed|wasm32/);
    assert.match(exe.left, /exp \[1024,1024,600\]/);
  });
});
