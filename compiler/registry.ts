// The primitive registry: a total map from every PrimName to its rules. A primitive missing here, or a Prim
// missing a rule, fails to type-check.
import type { PrimName } from './params.ts';
import type { Prim } from './prim.ts';
import { abs } from './prims/abs.ts';
import { add } from './prims/add.ts';
import { cast } from './prims/cast.ts';
import { concat } from './prims/concat.ts';
import { constPrim } from './prims/const.ts';
import { conv2d } from './prims/conv2d.ts';
import { convWeightGrad } from './prims/convWeightGrad.ts';
import { div } from './prims/div.ts';
import { dot } from './prims/dot.ts';
import { eq } from './prims/eq.ts';
import { exp } from './prims/exp.ts';
import { expand } from './prims/expand.ts';
import { flip } from './prims/flip.ts';
import { gather } from './prims/gather.ts';
import { input } from './prims/input.ts';
import { iota } from './prims/iota.ts';
import { le } from './prims/le.ts';
import { log } from './prims/log.ts';
import { lt } from './prims/lt.ts';
import { maximum } from './prims/maximum.ts';
import { minimum } from './prims/minimum.ts';
import { mul } from './prims/mul.ts';
import { ne } from './prims/ne.ts';
import { neg } from './prims/neg.ts';
import { pad } from './prims/pad.ts';
import { param } from './prims/param.ts';
import { permute } from './prims/permute.ts';
import { pool2d } from './prims/pool2d.ts';
import { pow } from './prims/pow.ts';
import { reciprocal } from './prims/reciprocal.ts';
import { reduceMax } from './prims/reduceMax.ts';
import { reshape } from './prims/reshape.ts';
import { rsqrt } from './prims/rsqrt.ts';
import { sign } from './prims/sign.ts';
import { slice } from './prims/slice.ts';
import { sqrt } from './prims/sqrt.ts';
import { stopGradient } from './prims/stopGradient.ts';
import { sub } from './prims/sub.ts';
import { sum } from './prims/sum.ts';
import { tanh } from './prims/tanh.ts';
import { topk } from './prims/topk.ts';
import { where } from './prims/where.ts';

export type Registry = { readonly [Op in PrimName]: Prim<Op> };

export const registry: Registry = {
  param, input, const: constPrim, iota,
  neg, exp, log, sqrt, rsqrt, reciprocal, abs, sign, tanh,
  add, sub, mul, div, maximum, minimum, pow,
  lt, le, eq, ne, where,
  sum, reduceMax,
  reshape, permute, expand, pad, slice, flip, concat,
  dot, conv2d, convWeightGrad, pool2d,
  gather, topk,
  stopGradient, cast,
};

export const primNames = Object.keys(registry) as PrimName[];
