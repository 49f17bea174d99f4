// Questions about a node answered from its primitive's facts (prim.ts): the passes and the scheduler ask these,
// so what an op is lives in one place, its primitive's file.
import type { Node } from './ir.ts';
import type { PrimName } from './params.ts';
import type { Prim, PrimKind } from './prim.ts';
import { registry } from './registry.ts';

export const primOf = (n: Node): Prim<PrimName> => registry[n.op as PrimName] as Prim<PrimName>;
export const kindOf = (n: Node): PrimKind => primOf(n).kind;

/** 2 FLOP per multiply-add of a contraction; other ops count 0 in the FLOP model. */
export const flopsOf = (n: Node): number => 2 * (primOf(n).multiplyAdds?.(n) ?? 0);

/** Ops that own loops: they always get a kernel of their own. */
export const ownsLoops = (n: Node): boolean => ['reduction', 'contraction', 'window', 'selection'].includes(kindOf(n));

/** The inputs whose elements each output of `n` reads many times. */
export function rereadInputs(n: Node): readonly Node[] {
  const p = primOf(n);
  if (p.rereads !== undefined) return p.rereads.map((k) => n.inputs[k]);
  return ['contraction', 'window', 'selection'].includes(p.kind) ? n.inputs : [];
}
