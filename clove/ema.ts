// The teacher's exponential moving average (CLOVE_SPEC §f): θ_t ← m·θ_t + (1 − m)·θ_s over the encoder and
// projector parameters (not BN buffers). m is a scalar tensor (an `input` of the step), so the cosine
// momentum schedule never forces a recompile.
import * as T from '../dsl/tensor.ts';
import type { Tensor } from '../dsl/tensor.ts';
import { flatten, isTensor, unflatten, type ParamTree } from '../dsl/tree.ts';

/** The teacher tree after one EMA step towards `student`; every teacher leaf needs a student leaf of equal shape. */
export function emaUpdate(teacher: ParamTree, student: ParamTree, momentum: Tensor<0>): ParamTree {
  const studentByName = new Map(flatten(student, isTensor));
  const oneMinus = T.sub(1, momentum);
  return unflatten(
    flatten(teacher, isTensor).map(([name, t]) => {
      const s = studentByName.get(name);
      if (s === undefined || s.shape.length !== t.shape.length || !s.shape.every((d, i) => d === t.shape[i])) {
        throw new Error(`emaUpdate: teacher '${name}' [${t.shape.join(',')}] has ${s === undefined ? 'no student counterpart' : `a student counterpart of shape [${s.shape.join(',')}]`}`);
      }
      return [name, T.add(T.mul(t, momentum), T.mul(s, oneMinus))] as const;
    }),
  ) as ParamTree;
}
