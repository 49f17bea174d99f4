// Compiled programs agree with the reference interpreter, on every available backend: every primitive of the
// registry (through its generator, so new primitives are covered automatically), the primitive's gradient
// graph, and random compositions. Tolerances: results are float32 on both sides; elementwise ops agree to a
// few ulps, reductions and contractions accumulate in a different order, so the tolerance scales with the
// magnitude of the summed terms (sum |terms| · 1e-5), checked per element.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { vjp } from '../compiler/autodiff.ts';
import { dispatchOf } from '../compiler/targets/gpujs/dispatch.ts';
import * as b from '../compiler/build.ts';
import { weightGradByConv, weightGradByTaps } from '../compiler/passes/convWeightGrad.ts';
import { gpujsTileAxis as tileAxisOf } from '../compiler/targets/gpujs/target.ts';
import { makeGraph, type Node } from '../compiler/ir.ts';
import { interpret } from '../compiler/interp/interpret.ts';
import type { PrimName } from '../compiler/params.ts';
import { probeBackends } from '../compiler/runtime/backend.ts';
import { buildCase, drawValues, generators, prng, type Case } from './gen.ts';
import { property, testedBackends } from './prop.ts';
import { runCompiled } from './run-compiled.ts';
import { wgslProperties } from './wgsl.ts';

const probes = await probeBackends();
function close(got: Float32Array, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const tol = 1e-4 * Math.max(1, Math.abs(want[i]));
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}]: compiled ${got[i]} vs interpreter ${want[i]}`);
  }
}

// The algorithms a target may choose for a convolution's weight gradient (per-tap products and the convolution
// form, each with a random batch split and concat width) equal the primitive's definition in float64, on random
// strides, paddings, dilations and groups. The compiled tests below run each target's own choice.
test('conv weight gradient: the per-tap products and the convolution form equal the primitive', async () => {
  await property(
    fc.asyncProperty(
      generators.convWeightGrad as fc.Arbitrary<Case<'convWeightGrad'>>,
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.integer({ min: 1, max: 64 }),
      fc.integer({ min: 2, max: 6 }),
      async (c, seed, maxLoop, maxKernelInputs) => {
        const node = buildCase(c).node as Node<'convWeightGrad'>;
        const rand = prng(seed);
        const bindings: Record<string, Float32Array> = {};
        c.operands.forEach((o, i) => (bindings[`x${i}`] = Float32Array.from(drawValues(o, rand))));
        const forms = { prim: node, taps: weightGradByTaps(node, { maxLoop, maxKernelInputs }), conv: weightGradByConv(node, maxLoop) };
        const out = interpret(makeGraph(forms), bindings, 'f64');
        if (E.isLeft(out)) throw new Error(out.left);
        for (const form of ['taps', 'conv'] as const)
          out.right.prim.data.forEach((v, i) => assert.ok(Math.abs(v - out.right[form].data[i]) <= 1e-9 * Math.max(1, Math.abs(v)), `${form} ${JSON.stringify(c)}[${i}]: ${out.right[form].data[i]} vs ${v}`));
      },
    ),
    60,
  );
});

for (const backend of testedBackends()) {
  const probe = probes.find((p) => p.backend === backend);
  const skip = probe === undefined || !probe.available ? `${backend} unavailable: ${probe !== undefined && !probe.available ? probe.reason : 'not probed'}` : false;
  describe(`compiled on ${backend} equals the interpreter`, { skip }, () => {
    // Each primitive and its gradient; then again with every tensor indexed symbolically (the path of tensors of
    // 2^24 elements and more: integer reads from coordinates, reshapes regrouped), on small tensors.
    // (wasm indexes every tensor with i32 arithmetic: the symbolic path is gpu.js's alone.)
    for (const [symbolicIndexFrom, label] of backend === 'wasm' ? ([[undefined, '']] as const) : ([[undefined, ''], [1, ', every tensor indexed symbolically']] as const)) {
      for (const name of Object.keys(generators) as PrimName[]) {
        if (name === 'param' || name === 'input') continue;
        const gen = generators[name] as fc.Arbitrary<Case<PrimName>>;
        test(`${name} and its gradient${label}`, async () => {
          await property(
            fc.asyncProperty(gen, fc.integer({ min: 1, max: 2 ** 31 - 1 }), async (c, seed) => {
              const { node, leaves } = buildCase(c);
              const rand = prng(seed);
              const bindings: Record<string, Float32Array> = {};
              c.operands.forEach((o, i) => (bindings[`x${i}`] = Float32Array.from(drawValues(o, rand))));
              const outputs: Record<string, Node> = { y: node };
              const f32Leaves = leaves.filter((l) => l.dtype === 'f32');
              if (node.dtype === 'f32' && f32Leaves.length > 0) {
                const w = b.input('w', node.shape);
                bindings.w = Float32Array.from(drawValues({ shape: node.shape, dtype: 'f32', values: 'smooth' }, rand));
                vjp(b.sum(b.mul(node, w), node.shape.map((_d, i) => i)), f32Leaves).forEach((g, i) => (outputs[`g${i}`] = g));
              }
              const ref = interpret(makeGraph(outputs), bindings, 'f32');
              if (E.isLeft(ref)) throw new Error(ref.left);
              const got = await runCompiled(makeGraph(outputs), bindings, backend, symbolicIndexFrom === undefined ? {} : { symbolicIndexFrom });
              for (const k of Object.keys(outputs)) close(got[k], ref.right[k].data, `${name}.${k} (${JSON.stringify(c)})`);
            }),
            (backend === 'webgpu' ? 6 : 10) / (symbolicIndexFrom === undefined ? 1 : 2),
          );
        });
      }
    }
    // Ties (values in {−1, 0, 1}): the compiled gradients of max pooling, reduceMax and ReLU, and top-k, follow the
    // same conventions as the interpreter (first maximum in scan order; ReLU 0 at 0; lower index first).
    test('at ties, gradients (max pooling, reduceMax over two axes, ReLU) and top-k equal the interpreter', async () => {
      await property(
        fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 31 - 1 }), async (seed) => {
          const rand = prng(seed);
          const x = b.input('x', [2, 3, 7, 6]);
          const pooled = b.pool2d(x, 'max', [3, 3], [2, 2], [1, 1]);
          const colMax = b.reduceMax(x, [1, 3]);
          const relu = b.maximum(x, b.scalar(0, x)); // dsl/nn.ts relu
          const weigh = (n: Node) => b.sum(b.mul(n, b.input(`c${n.shape.length}${n.op}`, n.shape)), n.shape.map((_d, i) => i));
          const loss = b.add(b.add(weigh(pooled), weigh(colMax)), weigh(relu));
          const [gx] = vjp(loss, [x]);
          const bindings: Record<string, Float32Array> = { x: Float32Array.from({ length: 2 * 3 * 7 * 6 }, () => Math.floor(rand() * 3) - 1) };
          for (const n of [pooled, colMax, relu]) bindings[`c${n.shape.length}${n.op}`] = Float32Array.from({ length: n.shape.reduce((a, c) => a * c, 1) }, () => rand() * 4 - 2);
          const ranked = b.topk(b.reshape(x, [6, 42]), 5, 1, seed % 2 === 0); // ties: lower index first
          const ref = interpret(makeGraph({ gx, ranked }), bindings, 'f32');
          if (E.isLeft(ref)) throw new Error(ref.left);
          const got = await runCompiled(makeGraph({ gx, ranked }), bindings, backend);
          close(got.gx, ref.right.gx.data, `tied gradient (seed ${seed})`);
          assert.deepEqual([...got.ranked], [...ref.right.ranked.data], `top-k of tied values (seed ${seed})`);
        }),
        backend === 'webgpu' ? 3 : 6,
      );
    });
    test('the per-tap conv weight gradient (strided, padded, 2 groups, split batch) equals the interpreter', async () => {
      const rand = prng(11);
      const x = b.input('x', [8, 16, 64, 64]); // N·Ho·Wo = 8192: the batch is split in 2
      const w = b.input('w', [32, 8, 3, 3]);
      const conv = b.conv2d(x, w, { padding: [1, 1], stride: [2, 2], groups: 2 }) as Node<'conv2d'>;
      const g = b.input('g', conv.shape);
      const dw = b.convWeightGrad(x, g, conv.params, [3, 3]) as Node<'convWeightGrad'>;
      const outputs = { dw: weightGradByTaps(dw, { maxLoop: 4096, maxKernelInputs: 6 }) };
      const bindings = Object.fromEntries(
        [x, w, g].map((leaf) => [(leaf.params as { name: string }).name, Float32Array.from(drawValues({ shape: leaf.shape, dtype: 'f32', values: 'smooth' }, rand))]),
      );
      // Each value sums 8192·9/2 products in float32 in another order: the tolerance is 1e-5 of Σ|products|,
      // which is dW evaluated on |g| and |x|.
      const ref = interpret(makeGraph(outputs), bindings, 'f64');
      const magnitude = interpret(makeGraph(outputs), Object.fromEntries(Object.entries(bindings).map(([k, v]) => [k, v.map(Math.abs)])), 'f64');
      if (E.isLeft(ref) || E.isLeft(magnitude)) throw new Error('the interpreter failed');
      const got = (await runCompiled(makeGraph(outputs), bindings, backend)).dw;
      ref.right.dw.data.forEach((want, i) => assert.ok(Math.abs(got[i] - want) <= 1e-5 * magnitude.right.dw.data[i], `per-tap dW[${i}]: compiled ${got[i]} vs ${want}`));
    });
    // Float indices are exact below 2^24 only: tensors of 2^24 elements and more are read at integer indices
    // built from their coordinates. Values are multiples of 1/8 (products 1/64) with small sums, so float32
    // arithmetic is exact in any order and every output must equal the interpreter's bit for bit: a read one
    // element off shows up as a different value.
    test('tensors over 2^24 elements: exact reads through elementwise ops, reshape, transpose, slice, sums, dot (register-tiled), strided conv and pooling', async () => {
      const [D, H, W] = [17, 1024, 1024]; // 17 825 792 elements
      const x = b.input('x', [D, H, W]);
      const wDot = b.input('wd', [4, W]);
      const wConv = b.input('wc', [2, 1, 3, 3]);
      const rows = b.reshape(x, [D * H, W]);
      const image = b.reshape(x, [D, 1, H, W]);
      const outputs: Record<string, Node> = {
        affine: b.add(b.mul(x, b.scalar(2, x)), b.scalar(1, x)), // large output
        turned: b.slice(b.permute(x, [0, 2, 1]), [3, 1000, 5], [D, H, 1000], [2, 1, 3]), // transposed reads, then a strided window
        rowSums: b.sum(x, [2]),
        columnMax: b.reduceMax(b.reshape(b.permute(x, [2, 0, 1]), [W, D * H]), [1]), // permute then reshape of a large tensor
        product: b.dot(rows, b.permute(wDot, [1, 0])), // [D·H, 4]: reads A (large) by coordinates
        outer: b.dot(b.slice(rows, [0, 0], [D * H, 4]), wDot), // a large, register-tiled output, copied out untiled
        conv: b.conv2d(image, wConv, { stride: [2, 2], padding: [1, 1] }),
        pooled: b.pool2d(image, 'max', [2, 2], [2, 2], [0, 0]),
      };
      const eighths = (n: number, seed: number) => Float32Array.from({ length: n }, (_v, i) => (((i * 7919 + seed) % 17) - 8) / 8);
      const bindings = { x: eighths(D * H * W, 1), wd: eighths(4 * W, 2), wc: eighths(18, 3) };
      const ref = interpret(makeGraph(outputs), bindings, 'f32');
      if (E.isLeft(ref)) throw new Error(ref.left);
      const got = await runCompiled(makeGraph(outputs), bindings, backend);
      const reference = ref.right;
      for (const k of Object.keys(outputs)) {
        const want: ArrayLike<number> = reference[k].data;
        assert.equal(got[k].length, want.length, `${k}: length`);
        for (let i = 0; i < want.length; i++) if (got[k][i] !== want[i]) assert.fail(`${k}[${i}]: compiled ${got[k][i]} vs interpreter ${want[i]}`);
      }
    });
    test('kernels dispatched in 2-D and register-tiled (a batched dot, a padded strided conv, row sums, a transpose of a tiled buffer) and their gradients', async () => {
      const rand = prng(7);
      const x = b.input('x', [2, 8, 8, 8]);
      const w = b.input('w', [16, 8, 3, 3]);
      const a = b.input('a', [2, 32, 24]);
      const c = b.input('c', [2, 24, 16]);
      const conv = b.conv2d(x, w, { padding: [1, 1], stride: [2, 2] });
      const prod = b.dot(a, c);
      const rows = b.sum(b.mul(x, x), [3]);
      const turned = b.permute(prod, [0, 2, 1]);
      for (const n of [conv, prod, rows, turned]) assert.notEqual(dispatchOf(n.shape).split, 0, `[${n.shape.join(',')}] should be dispatched in 2-D`);
      for (const n of [conv, prod]) assert.notEqual(tileAxisOf(n), null, `${n.op} [${n.shape.join(',')}] should be register-tiled`);
      const loss = b.add(b.add(b.sum(b.tanh(conv), [0, 1, 2, 3]), b.sum(b.mul(turned, turned), [0, 1, 2])), b.sum(rows, [0, 1, 2]));
      const outputs: Record<string, Node> = { conv, prod, rows, turned };
      vjp(loss, [x, w, a, c]).forEach((g, i) => (outputs[`g${i}`] = g));
      const bindings = Object.fromEntries(
        [x, w, a, c].map((leaf) => [(leaf.params as { name: string }).name, Float32Array.from(drawValues({ shape: leaf.shape, dtype: 'f32', values: 'smooth' }, rand))]),
      );
      const ref = interpret(makeGraph(outputs), bindings, 'f32');
      if (E.isLeft(ref)) throw new Error(ref.left);
      const got = await runCompiled(makeGraph(outputs), bindings, backend);
      for (const k of Object.keys(outputs)) close(got[k], ref.right[k].data, `2-D dispatch ${k}`);
    });
  });
}

// The webgpu target's WGSL contraction templates: every shape class and tiling, fused epilogues, a ResNet block.
wgslProperties();
