import * as b from '../build.ts';
import { fail, numel, ok, showShape, stridesOf } from '../ir.ts';
import { iadd, iconst, imul } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
import { stridedGather } from './checks.ts';
/** x[start:stop:step] per axis (step ≥ 1). The cotangent is placed back with (interior) padding. */
export const slice: Prim<'slice'> = {
  name: 'slice',
  arity: 1,
  kind: 'movement',
  cheapReread: true,
  shape: (p, [x]) => {
    const r = x.shape.length;
    if (p.start.length !== r || p.stop.length !== r || p.step.length !== r) return fail(`needs start/stop/step of length ${r}`);
    for (let i = 0; i < r; i++) {
      const ok1 = Number.isInteger(p.start[i]) && Number.isInteger(p.stop[i]) && Number.isInteger(p.step[i]);
      if (!ok1 || p.step[i] < 1 || p.start[i] < 0 || p.stop[i] > x.shape[i] || p.start[i] >= p.stop[i])
        return fail(`[${p.start[i]}:${p.stop[i]}:${p.step[i]}] is out of range for axis ${i} of ${showShape(x.shape)}`);
    }
    return ok(x.shape.map((_d, i) => Math.ceil((p.stop[i] - p.start[i]) / p.step[i])), x.dtype);
  },
  vjp: (node, g) => {
    const { start, step } = node.params;
    const d = node.inputs[0].shape;
    const hi = d.map((n, i) => n - (start[i] + (g.shape[i] - 1) * step[i] + 1));
    return [b.pad(g, start, hi, step.map((s) => s - 1))];
  },
  interp: (p, [x], out, ctx) => {
    const r = ctx.alloc(numel(out.shape));
    const xs = stridesOf(x.shape);
    const base = p.start.reduce((a, s, i) => a + s * xs[i], 0);
    stridedGather(x.data, out.shape, base, p.step.map((s, i) => s * xs[i]), r);
    return r;
  },
  lower: (node, idx, ctx) => {
    const { start, step } = node.params;
    const c = ctx.coords(node.shape, idx).map((v, k) => iadd(imul(v, iconst(step[k])), iconst(start[k])));
    return ctx.input(0, ctx.flat(c, node.inputs[0].shape));
  },
  linearIn: [0],
};
