// Parameter trees: nested records of tensors (or host arrays), flattened to dotted names
// (`layer1.0.conv1.weight`) for binding, checkpoints and export.
import * as t from 'io-ts';
import type { Tensor } from './tensor.ts';

export type Tree<L> = { readonly [key: string]: L | Tree<L> };
export type ParamTree = Tree<Tensor>;

const isTree = <L>(v: L | Tree<L>, isLeaf: (v: unknown) => v is L): v is Tree<L> => !isLeaf(v);

/** [dotted name, leaf] pairs in key order (sorted, so the order never depends on construction order). */
export function flatten<L>(tree: Tree<L>, isLeaf: (v: unknown) => v is L, prefix = ''): [string, L][] {
  const out: [string, L][] = [];
  for (const key of Object.keys(tree).sort()) {
    const v = tree[key];
    const name = prefix === '' ? key : `${prefix}.${key}`;
    if (isTree(v, isLeaf)) out.push(...flatten(v, isLeaf, name));
    else out.push([name, v]);
  }
  return out;
}

/** Inverse of flatten for any leaf type. */
export function unflatten<L>(entries: readonly (readonly [string, L])[]): Tree<L> {
  const root: Record<string, unknown> = {};
  for (const [name, leaf] of entries) {
    const parts = name.split('.');
    let cur = root;
    for (const p of parts.slice(0, -1)) cur = (cur[p] ??= {}) as Record<string, unknown>;
    cur[parts[parts.length - 1]] = leaf;
  }
  return root as Tree<L>;
}

/** Same structure, leaves mapped (with their dotted names). */
export function mapTree<A, B>(tree: Tree<A>, isLeaf: (v: unknown) => v is A, f: (leaf: A, name: string) => B): Tree<B> {
  return unflatten(flatten(tree, isLeaf).map(([n, l]) => [n, f(l, n)] as const));
}

export const isTensor = (v: unknown): v is Tensor => typeof v === 'object' && v !== null && 'op' in v && 'shape' in v && 'id' in v;
export const isFloat32 = (v: unknown): v is Float32Array => v instanceof Float32Array;

/** Names and shapes of a tree: what a checkpoint must contain to restore it. */
export const TreeSpec = t.record(t.string, t.array(t.number));
export type TreeSpec = t.TypeOf<typeof TreeSpec>;
export const specOf = (tree: ParamTree): TreeSpec => Object.fromEntries(flatten(tree, isTensor).map(([n, x]) => [n, [...x.shape]]));
