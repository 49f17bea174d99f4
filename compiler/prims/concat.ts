import * as b from '../build.ts';
import { fail, numel, ok, showShape } from '../ir.ts';
import { fconst, fselect, iclamp, icmp, iconst, isub } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
/** Join tensors along `axis` (all other dims equal). */
export const concat: Prim<'concat'> = {
  name: 'concat',
  arity: 'variadic',
  kind: 'indexing',
  shape: (p, xs) => {
    if (xs.length === 0) return fail('needs at least one operand');
    const [f] = xs;
    const r = f.shape.length;
    if (!Number.isInteger(p.axis) || p.axis < 0 || p.axis >= r) return fail(`axis ${p.axis} out of range for rank ${r}`);
    for (const x of xs) {
      const same = x.shape.length === r && x.shape.every((d, i) => i === p.axis || d === f.shape[i]);
      if (!same || x.dtype !== f.dtype) return fail(`operands ${xs.map((y) => showShape(y.shape)).join(', ')} differ outside axis ${p.axis}`);
    }
    return ok(f.shape.map((d, i) => (i === p.axis ? xs.reduce((a, x) => a + x.shape[i], 0) : d)), f.dtype);
  },
  vjp: (node, g) => {
    let offset = 0;
    return node.inputs.map((x) => {
      const start = x.shape.map((_d, i) => (i === node.params.axis ? offset : 0));
      const stop = x.shape.map((d, i) => (i === node.params.axis ? offset + d : d));
      offset += x.shape[node.params.axis];
      return b.slice(g, start, stop);
    });
  },
  interp: (p, xs, out, ctx) => {
    const r = ctx.alloc(numel(out.shape));
    // Row-major: each operand contributes contiguous runs of (its axis length × inner size).
    const inner = out.shape.slice(p.axis + 1).reduce((a, c) => a * c, 1);
    const outer = out.shape.slice(0, p.axis).reduce((a, c) => a * c, 1);
    const rowOut = out.shape[p.axis] * inner;
    let off = 0;
    for (const x of xs) {
      const run = x.shape[p.axis] * inner;
      for (let o = 0; o < outer; o++) r.set(x.data.subarray(o * run, (o + 1) * run), o * rowOut + off);
      off += run;
    }
    return r;
  },
  lower: (node, idx, ctx) => {
    const a = node.params.axis;
    const c = ctx.coords(node.shape, idx);
    const offsets = node.inputs.reduce<number[]>((acc, x) => [...acc, acc[acc.length - 1] + x.shape[a]], [0]);
    // Select from the last operand backwards: (c < off1 ? in0 : (c < off2 ? in1 : in2)).
    let expr = fconst(0);
    for (let k = node.inputs.length - 1; k >= 0; k--) {
      const local = c.map((v, ax) => (ax === a ? ctx.bindIndex(iclamp(isub(v, iconst(offsets[k])), 0, node.inputs[k].shape[a] - 1)) : v));
      const val = ctx.input(k, ctx.flat(local, node.inputs[k].shape));
      expr = k === node.inputs.length - 1 ? val : fselect(icmp('<', c[a], iconst(offsets[k + 1])), val, expr);
    }
    return expr;
  },
  linearIn: 'all',
};
