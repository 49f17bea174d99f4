// The webgpu target's WGSL contraction templates (compiler/targets/webgpu/) agree with the reference interpreter on
// every shape class a contraction has, under every tiling the target can choose: batched products with sizes that
// are odd, smaller than a tile, one off a tile multiple; convolutions forward and backward (input gradient through a
// folded zero-dilated pad, weight gradient as an implicit GEMM) with strides, dilations, groups, padding and batch;
// elementwise consumers fused into the contraction's store (bias, scale and shift, ReLU, a mask); and a whole ResNet
// basic block forward and backward, where WGSL outputs feed gpu.js kernels and back. They run
// where a WebGPU adapter answers (lavapipe in CI) and webgpu is among CLOVE_TEST_BACKENDS. props/compiled.test.ts
// registers them (so the GPU check's bundle of that file runs them too).
//
// Tolerance: both sides are float32 and sum the same products in different orders, so each element may differ by a
// small multiple of eps · Σ|products| (the same quantity evaluated on absolute values, in float64); 1e-5 of that
// bound is ~100 ulps of the magnitude and far above what reordering does at these lengths (K ≤ ~2000), while an
// element read from the wrong place, or a missing or duplicated product, is off by the size of a product.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { vjp } from '../compiler/autodiff.ts';
import * as b from '../compiler/build.ts';
import { plan } from '../compiler/compile.ts';
import { interpret } from '../compiler/interp/interpret.ts';
import { makeGraph, numel, type Graph, type Node } from '../compiler/ir.ts';
import { probeBackend } from '../compiler/runtime/backend.ts';
import { windowOut } from '../compiler/prims/conv2d.ts';
import { webgpuTarget } from '../compiler/targets/webgpu/target.ts';
import { chooseTiling, TILINGS, type Tiling } from '../compiler/targets/webgpu/tiles.ts';
import { W1_SHAPE } from '../bench/flops.ts';
import { buildW1Step } from '../bench/w1.ts';
import { microWorkload } from '../bench/workloads.ts';
import { drawValues, prng } from './gen.ts';
import { runCompiled } from './run-compiled.ts';
import { property, testedBackends } from './prop.ts';

const probe = await probeBackend('webgpu');
const skip = !testedBackends().includes('webgpu') ? 'webgpu is not among CLOVE_TEST_BACKENDS' : !probe.available ? probe.reason : false;

/** Compiles on webgpu (with `tiling` forced, or the target's choice), runs once, reads every output, checks no leak. */
const runWebGpu = (graph: Graph, inputs: Readonly<Record<string, Float32Array>>, tiling: Tiling | undefined): Promise<Record<string, Float32Array>> =>
  runCompiled(graph, inputs, 'webgpu', tiling === undefined ? {} : { wgslTiling: tiling });

/** Compiled vs interpreter, per element within 1e-5 of Σ|products| (the graph evaluated on absolute values). */
async function agrees(graph: Graph, inputs: Record<string, Float32Array>, tiling: Tiling | undefined, what: string): Promise<void> {
  const want = interpret(graph, inputs, 'f64');
  const magnitude = interpret(graph, Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.map(Math.abs)])), 'f64');
  if (E.isLeft(want) || E.isLeft(magnitude)) throw new Error('the interpreter failed');
  const got = await runWebGpu(graph, inputs, tiling);
  for (const k of Object.keys(graph.outputs)) {
    const w: ArrayLike<number> = want.right[k].data;
    const m: ArrayLike<number> = magnitude.right[k].data;
    const g: Float32Array = got[k];
    assert.equal(g.length, w.length, `${what}.${k}: length`);
    for (let i = 0; i < w.length; i++) {
      assert.ok(Math.abs(g[i] - w[i]) <= 1e-5 * m[i] + 1e-30, `${what}.${k}[${i}] (tiling ${JSON.stringify(tiling ?? 'chosen')}): webgpu ${g[i]} vs interpreter ${w[i]}`);
    }
  }
}

const valuesOf = (leaves: readonly Node[], seed: number): Record<string, Float32Array> => {
  const rand = prng(seed);
  return Object.fromEntries(leaves.map((l) => [(l.params as { name: string }).name, Float32Array.from(drawValues({ shape: l.shape, dtype: 'f32', values: 'smooth' }, rand))]));
};

/** Sizes that are small, odd, or one off a multiple of the tiles (32, 64, 128). */
const extent = fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(31, 33, 63, 64, 65, 127, 129));
/** The target's choice (undefined) or any tiling it has. */
const tiling = fc.option(fc.constantFrom(...TILINGS), { nil: undefined });

/** Registers the WGSL template properties (skipped where webgpu is unavailable or not among CLOVE_TEST_BACKENDS). */
export function wgslProperties(): void {
  describe('WGSL contraction templates on webgpu equal the interpreter', { skip }, () => {
    test('dot: batched and unbatched, odd sizes, sizes one off a tile multiple, vec4 and scalar loads, every tiling', async () => {
      await property(
        fc.asyncProperty(fc.constantFrom<number[]>([], [1], [3], [2, 2]), extent, extent, extent, tiling, fc.integer({ min: 1, max: 2 ** 31 - 1 }), async (batch, M, K, N, t, seed) => {
          const a = b.input('a', [...batch, M, K]);
          const c = b.input('c', [...batch, K, N]);
          await agrees(makeGraph({ y: b.dot(a, c) }), valuesOf([a, c], seed), t, `dot ${JSON.stringify({ batch, M, K, N })}`);
        }),
        6,
      );
    });

    test('conv2d forward, input gradient and weight gradient: strides, dilations, groups, padding, batch, every tiling', async () => {
      const conv = fc
        .record({
          N: fc.integer({ min: 1, max: 3 }),
          groups: fc.integer({ min: 1, max: 3 }),
          Cg: fc.integer({ min: 1, max: 5 }),
          Og: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constantFrom(33, 65)),
          H: fc.integer({ min: 1, max: 13 }),
          W: fc.integer({ min: 1, max: 13 }),
          kh: fc.integer({ min: 1, max: 4 }),
          kw: fc.integer({ min: 1, max: 4 }),
          stride: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
          dilation: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
          padding: fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 })),
        })
        .filter((c) => windowOut(c.H, c.kh, c.stride[0], c.padding[0], c.dilation[0]) >= 1 && windowOut(c.W, c.kw, c.stride[1], c.padding[1], c.dilation[1]) >= 1);
      await property(
        fc.asyncProperty(conv, tiling, fc.integer({ min: 1, max: 2 ** 31 - 1 }), async (c, t, seed) => {
          const x = b.input('x', [c.N, c.groups * c.Cg, c.H, c.W]);
          const w = b.input('w', [c.groups * c.Og, c.Cg, c.kh, c.kw]);
          const y = b.conv2d(x, w, { stride: c.stride, dilation: c.dilation, padding: c.padding, groups: c.groups });
          const gy = b.input('gy', y.shape);
          const [gx, gw] = vjp(b.sum(b.mul(y, gy), y.shape.map((_d, i) => i)), [x, w]);
          await agrees(makeGraph({ y, gx, gw }), valuesOf([x, w, gy], seed), t, `conv2d ${JSON.stringify(c)}`);
        }),
        7,
      );
    });

    test('every tiling at least once: a batched dot straddling tile edges, a strided dilated grouped conv and its gradients', async () => {
      for (const t of TILINGS) {
        const a = b.input('a', [2, 129, 35]);
        const c = b.input('c', [2, 35, 131]);
        const x = b.input('x', [2, 6, 11, 10]);
        const w = b.input('w', [66, 3, 3, 2]);
        const y = b.conv2d(x, w, { stride: [2, 1], dilation: [1, 2], padding: [1, 2], groups: 2 });
        const gy = b.input('gy', y.shape);
        const [gx, gw] = vjp(b.sum(b.mul(y, gy), [0, 1, 2, 3]), [x, w]);
        await agrees(makeGraph({ d: b.dot(a, c), y, gx, gw }), valuesOf([a, c, x, w, gy], 5), t, 'every tiling');
      }
    });

    test('fused epilogues: conv → BN scale/shift → ReLU and dot → mask → bias run in the contraction kernel and equal the interpreter', async () => {
      await property(
        fc.asyncProperty(extent, fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 3 }), tiling, fc.integer({ min: 1, max: 2 ** 31 - 1 }), async (O, side, stride, t, seed) => {
          const x = b.input('x', [2, 3, side + 2, side]);
          const w = b.input('w', [O, 3, 3, 3]);
          const conv = b.conv2d(x, w, { stride: [stride, 1], padding: [1, 1] });
          const perChannel = (name: string) => b.expand(b.reshape(b.input(name, [O]), [1, O, 1, 1]), conv.shape);
          const y = b.maximum(b.add(b.mul(conv, perChannel('scale')), perChannel('shift')), b.scalar(0, conv));
          const a = b.input('a', [O, side + 3]);
          const c = b.input('c', [side + 3, 7]);
          const mask = b.input('mask', [O, 7]);
          const z = b.add(b.mul(b.dot(a, c), mask), b.expand(b.reshape(b.input('bias', [7]), [1, 7]), [O, 7]));
          const graph = makeGraph({ y, z });
          const planned = plan(graph, { maxBufferBytes: 2 ** 31 }, { target: webgpuTarget(15) });
          if (E.isLeft(planned)) throw new Error(planned.left);
          // the contractions are inlined into their consumers' kernels (no buffer of their own)
          for (const op of ['conv2d', 'dot']) assert.ok(planned.right.kernels.some((k) => k.root.op !== op && k.inlined.some((n) => n.op === op)), `${op} is not fused`);
          const leaves = graph.nodes.filter((n) => n.op === 'input');
          await agrees(graph, valuesOf(leaves, seed), t, `epilogues ${JSON.stringify({ O, side, stride })}`);
        }),
        4,
      );
    });

    test('a ResNet basic block (conv-BN-ReLU-conv-BN + identity, ReLU; train-mode BN) forward and backward', async () => {
      // 3 images of 12 channels, 9×9: odd sizes, every conv's GEMM short of a tile. BN divides by batch statistics, so
      // the comparison is relative to each tensor's largest value (1e-4: float32 reductions in another order).
      const w = microWorkload('blockForwardBackward', { matmul: 1, convBatch: 3, convChannels: 12, convSize: 9 });
      const want = interpret(w.graph, w.inputs, 'f64');
      if (E.isLeft(want)) throw new Error(want.left);
      const got = await runWebGpu(w.graph, w.inputs, undefined);
      for (const [k, node] of Object.entries(w.graph.outputs)) {
        const ref: ArrayLike<number> = want.right[k].data;
        let scale = 0;
        for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
        assert.equal(got[k].length, numel(node.shape));
        for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(got[k][i] - ref[i]) <= 1e-4 * scale, `block.${k}[${i}]: webgpu ${got[k][i]} vs interpreter ${ref[i]} (scale ${scale})`);
      }
    });
  });

  test("W1's webgpu plan: one contraction per kernel (a second one reaching the same epilogue keeps its own buffer), fused epilogues present", () => {
    const step = buildW1Step(W1_SHAPE);
    const planned = plan(step.graph, { maxBufferBytes: 2 ** 31 }, { target: webgpuTarget(15) });
    if (E.isLeft(planned)) throw new Error(planned.left);
    const isContraction = (n: Node) => n.op === 'dot' || n.op === 'conv2d' || n.op === 'convWeightGrad';
    let fused = 0;
    for (const k of planned.right.kernels) {
      const inside = [k.root, ...k.inlined].filter(isContraction);
      assert.ok(inside.length <= 1, `kernel ${k.root.op} ${k.root.layer} computes ${inside.length} contractions`);
      if (inside.length === 1 && inside[0] !== k.root) fused++;
    }
    assert.ok(fused > 0, 'no epilogue was fused in W1');
  });

  test('the tile heuristic: a candidate tiling, no more than 15% padded work when a tile fits, enough workgroups when one exists', () => {
    property(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 5000 }), fc.boolean(), (batch, M, N, K, software) => {
        const t = chooseTiling(batch, M, N, K, software);
        assert.ok(TILINGS.includes(t));
        const padded = (x: Tiling) => Math.ceil(M / x.BM) * x.BM * Math.ceil(N / x.BN) * x.BN;
        const wasteOk = TILINGS.filter((x) => padded(x) <= 1.15 * M * N);
        if (wasteOk.some((x) => batch * Math.ceil(M / x.BM) * Math.ceil(N / x.BN) >= (software ? 8 : 256))) assert.ok(padded(t) <= 1.15 * M * N, `${JSON.stringify(t)} for ${batch}×${M}×${N}`);
        else assert.ok(TILINGS.every((x) => padded(t) <= padded(x)), `${JSON.stringify(t)} is not the least padded for ${batch}×${M}×${N}`);
      }),
    );
  });
}
