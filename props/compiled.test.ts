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
  });
}
