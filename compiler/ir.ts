// The graph IR: immutable, hash-consed nodes with shapes known at construction.
//
// Construction is total: a node whose shape rule fails is still built, carries its own error message and is
// marked invalid; nodes downstream of an invalid node are invalid without an error of their own, so
// `typecheck` reports exactly one error per bad node. Nodes are interned by (op, params, input ids), so
// building the same expression twice yields the same node (structural equality is reference equality).
import type { PrimName, PrimParams } from './params.ts';

export type DType = 'f32' | 'i32' | 'bool';
export type Shape = readonly number[];

export interface Node<Op extends PrimName = PrimName> {
  readonly id: number;
  readonly op: Op;
  readonly params: PrimParams[Op];
  readonly inputs: readonly Node[];
  readonly shape: Shape;
  readonly dtype: DType;
  /** This node's own shape error (undefined when its rule accepted the inputs or an input is invalid). */
  readonly error: string | undefined;
  /** False when this node or anything it depends on failed its shape rule. */
  readonly valid: boolean;
  /** Layer path at construction (e.g. `encoder.layer2.0.conv1`), for error messages. */
  readonly layer: string;
}

export interface ShapeInfo {
  readonly shape: Shape;
  readonly dtype: DType;
}

/** A shape rule result: the output shape/dtype or a message naming what is wrong (without the op name). */
export type ShapeResult = { readonly ok: true; readonly info: ShapeInfo } | { readonly ok: false; readonly message: string };
export const ok = (shape: Shape, dtype: DType): ShapeResult => ({ ok: true, info: { shape, dtype } });
export const fail = (message: string): ShapeResult => ({ ok: false, message });

export const numel = (shape: Shape): number => shape.reduce((a, b) => a * b, 1);
export const showShape = (shape: Shape): string => `[${shape.join(',')}]`;
export const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
export const stridesOf = (shape: Shape): number[] => {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
};

// ---- layer scopes -------------------------------------------------------------------------------------------
// A dynamic scope stack, like JAX's named_scope: it only labels nodes for error messages and never changes
// what a node computes (the label is not part of the hash-consing key).
const scopeStack: string[] = [];
export function withScope<T>(name: string, body: () => T): T {
  scopeStack.push(name);
  try {
    return body();
  } finally {
    scopeStack.pop();
  }
}
export const currentScope = (): string => scopeStack.join('.');

/**
 * Build under an absolute layer path (replacing the current scope): passes and autodiff use it so that nodes
 * they create carry the layer of the node they rewrite or differentiate.
 */
export function atLayer<T>(layer: string, body: () => T): T {
  const saved = scopeStack.splice(0, scopeStack.length);
  if (layer !== '') scopeStack.push(layer);
  try {
    return body();
  } finally {
    scopeStack.splice(0, scopeStack.length, ...saved);
  }
}

// ---- interning ----------------------------------------------------------------------------------------------
// Keys must distinguish every parameter value, including non-finite constants that JSON would turn into null
// and -0, which JSON writes as 0 (merging const -0 into const 0 flips the sign of 1/x, so a folded neg(0)
// would change results).
const paramKey = (params: unknown): string =>
  JSON.stringify(params, (_k, v: unknown) =>
    typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0)) ? `#${Object.is(v, -0) ? '-0' : String(v)}` : v,
  );

let nextId = 0;
const table = new Map<string, WeakRef<Node>>();
const registryCleanup = new FinalizationRegistry<string>((key) => {
  const ref = table.get(key);
  if (ref !== undefined && ref.deref() === undefined) table.delete(key);
});

export type ShapeRule = (params: never, inputs: readonly ShapeInfo[]) => ShapeResult;

/**
 * Intern a node. `rule` is the primitive's shape rule; it runs only when every input is valid.
 * Exposed to `build.ts` only: user code goes through the typed builders.
 */
export function intern<Op extends PrimName>(
  op: Op,
  params: PrimParams[Op],
  inputs: readonly Node[],
  rule: (params: PrimParams[Op], inputs: readonly ShapeInfo[]) => ShapeResult,
): Node<Op> {
  const key = `${op}|${paramKey(params)}|${inputs.map((n) => n.id).join(',')}`;
  const hit = table.get(key)?.deref();
  if (hit !== undefined) return hit as Node<Op>;
  const inputsValid = inputs.every((n) => n.valid);
  const res: ShapeResult = inputsValid ? rule(params, inputs) : fail('');
  const node = Object.freeze({
    id: nextId++,
    op,
    params: Object.freeze(params),
    inputs: Object.freeze([...inputs]),
    shape: res.ok ? Object.freeze([...res.info.shape]) : Object.freeze([]),
    dtype: res.ok ? res.info.dtype : 'f32',
    error: inputsValid && !res.ok ? res.message : undefined,
    valid: inputsValid && res.ok,
    layer: currentScope(),
  }) as Node<Op>;
  table.set(key, new WeakRef(node));
  registryCleanup.register(node, key);
  return node;
}

// ---- graphs -------------------------------------------------------------------------------------------------
/** A graph: named outputs plus every node they reach, in topological order (ascending id). */
export interface Graph {
  readonly outputs: Readonly<Record<string, Node>>;
  readonly nodes: readonly Node[];
}

/** All nodes reachable from `roots`, in topological order (ids grow with construction order). */
export function reachable(roots: readonly Node[]): Node[] {
  const seen = new Map<number, Node>();
  const stack = [...roots];
  while (stack.length > 0) {
    const n = stack.pop() as Node;
    if (seen.has(n.id)) continue;
    seen.set(n.id, n);
    for (const i of n.inputs) if (!seen.has(i.id)) stack.push(i);
  }
  return [...seen.values()].sort((a, b) => a.id - b.id);
}

export const makeGraph = (outputs: Readonly<Record<string, Node>>): Graph => ({
  outputs,
  nodes: reachable(Object.values(outputs)),
});

