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
import { dispatchOf } from '../compiler/dispatch.ts';
import { tileAxisOf } from '../compiler/schedule.ts';
import * as b from '../compiler/build.ts';
import { makeGraph, type Node } from '../compiler/ir.ts';
import { interpret } from '../compiler/interp/interpret.ts';
import type { PrimName } from '../compiler/params.ts';
import { probeBackends } from '../compiler/runtime/backend.ts';
import type { BackendName } from '../compiler/runtime/errors.ts';
import { buildCase, drawValues, generators, prng, type Case } from './gen.ts';
import { property } from './prop.ts';
import { runCompiled } from './run-compiled.ts';

const probes = await probeBackends();
const wanted: BackendName[] = ['cpu', 'webasm', 'webgpu'];
function close(got: Float32Array, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const tol = 1e-4 * Math.max(1, Math.abs(want[i]));
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}]: compiled ${got[i]} vs interpreter ${want[i]}`);
  }
}

for (const backend of wanted) {
  const probe = probes.find((p) => p.backend === backend);
  const skip = probe === undefined || !probe.available ? `${backend} unavailable: ${probe !== undefined && !probe.available ? probe.reason : 'not probed'}` : false;
  describe(`compiled on ${backend} equals the interpreter`, { skip }, () => {
    for (const name of Object.keys(generators) as PrimName[]) {
      if (name === 'param' || name === 'input') continue;
      const gen = generators[name] as fc.Arbitrary<Case<PrimName>>;
      test(`${name} and its gradient`, async () => {
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
            const got = await runCompiled(makeGraph(outputs), bindings, backend);
            for (const k of Object.keys(outputs)) close(got[k], ref.right[k].data, `${name}.${k} (${JSON.stringify(c)})`);
          }),
          backend === 'webgpu' ? 6 : 10,
        );
      });
    }
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
