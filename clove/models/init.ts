// Parameter trees for the models: each model describes its parameters once as a tree of shapes; from it come
// the symbolic `param` leaves (named by their dotted path, so binding, checkpoints and export are name
// lookups) and the host initial values (Float32Array trees drawn from a seeded PRNG with PyTorch's rules).
import { param, type Tensor } from '../../dsl/tensor.ts';
import { flatten, isTensor, unflatten, type ParamTree, type Tree } from '../../dsl/tree.ts';
import type { Shape } from '../../compiler/ir.ts';
import type { Rng } from '../data/rng.ts';

/** Host values of a parameter (or state) tree, leaves named by their dotted path. */
export type HostTree = Tree<Float32Array>;
/** Names and shapes of a parameter tree. */
export type ShapeTree = Tree<Shape>;

export const isShape = (v: unknown): v is Shape => Array.isArray(v) && v.every((d) => typeof d === 'number');
export const isHostLeaf = (v: unknown): v is Float32Array => v instanceof Float32Array;

const sizeOf = (shape: Shape): number => shape.reduce((a, c) => a * c, 1);
const join = (prefix: string, name: string): string => (prefix === '' ? name : `${prefix}.${name}`);

/** A shape tree from [dotted name, shape] entries. */
export const unflattenShapes = (entries: readonly (readonly [string, Shape])[]): ShapeTree => unflatten(entries) as ShapeTree;

/**
 * `param` leaves for every entry of `shapes`, named `prefix.<dotted path>` (or just the path when prefix is ''),
 * in the tree's own structure: an empty subtree stays (a module without running statistics has state `{}`).
 */
export function symbolicParams(shapes: ShapeTree, prefix: string): ParamTree {
  return Object.fromEntries(
    Object.keys(shapes)
      .sort()
      .map((key) => {
        const v = shapes[key];
        return [key, isShape(v) ? param(join(prefix, key), v) : symbolicParams(v, join(prefix, key))];
      }),
  );
}

/** Flat name → shape record, names prefixed (the step's list of state tensors). */
export function shapeRecord(shapes: ShapeTree, prefix: string): Record<string, Shape> {
  return Object.fromEntries(flatten(shapes, isShape).map(([name, shape]) => [join(prefix, name), shape]));
}

/** Flat name → host array record, names prefixed. */
export function hostRecord(tree: HostTree, prefix = ''): Record<string, Float32Array> {
  return Object.fromEntries(flatten(tree, isHostLeaf).map(([name, data]) => [join(prefix, name), data]));
}

/** Host values for every shape of the tree, each made by `make(shape, name)`. */
export function hostTree(shapes: ShapeTree, make: (shape: Shape, name: string) => Float32Array): HostTree {
  return unflatten(
    flatten(shapes, isShape).map(([name, shape]) => {
      const data = make(shape, name);
      if (data.length !== sizeOf(shape)) {
        throw new Error(`hostTree: initializer for '${name}' returned ${data.length} values for shape [${shape.join(',')}]`);
      }
      return [name, data] as const;
    }),
  ) as HostTree;
}

/** A deep copy (the teacher starts as an exact copy of the student). */
export const copyHostTree = (tree: HostTree): HostTree =>
  unflatten(flatten(tree, isHostLeaf).map(([name, data]) => [name, new Float32Array(data)] as const)) as HostTree;

// ---- reading symbolic trees inside model code ------------------------------------------------------------------

/** The tensor at `key` of `tree`; a missing or non-leaf entry is a programmer error naming the path. */
export function tensorAt(tree: ParamTree, key: string, where: string): Tensor {
  const v = tree[key];
  if (v === undefined || !isTensor(v)) {
    throw new Error(`${where}: expected a tensor at '${key}', found ${v === undefined ? 'nothing' : 'a subtree'} (keys: ${Object.keys(tree).join(', ')})`);
  }
  return v;
}

/** The subtree at `key` of `tree`; a missing entry or a leaf is a programmer error naming the path. */
export function subtreeAt(tree: ParamTree, key: string, where: string): ParamTree {
  const v = tree[key];
  if (v === undefined || isTensor(v)) {
    throw new Error(`${where}: expected a subtree at '${key}', found ${v === undefined ? 'nothing' : 'a tensor'} (keys: ${Object.keys(tree).join(', ')})`);
  }
  return v;
}

/** Tensor with the rank its model code relies on; a mismatch is a programmer error. */
export function ranked<R extends number>(x: Tensor, rank: R, where: string): Tensor<R> {
  if (x.shape.length !== rank) throw new Error(`${where}: expected rank ${rank}, got shape [${x.shape.join(',')}]`);
  return x as Tensor<R>;
}

// ---- PyTorch's initializers ------------------------------------------------------------------------------------

export const filled = (shape: Shape, value: number): Float32Array => new Float32Array(sizeOf(shape)).fill(value);

/** N(0, std²) values. */
export function normalValues(rng: Rng, shape: Shape, std: number): Float32Array {
  const out = new Float32Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = std * rng.normal();
  return out;
}

/** U(−bound, bound) values. */
export function uniformValues(rng: Rng, shape: Shape, bound: number): Float32Array {
  const out = new Float32Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = rng.uniformIn(-bound, bound);
  return out;
}

/** fan_in and fan_out of a weight [out, in, ...kernel] as torch.nn.init computes them. */
export function fans(shape: Shape): { readonly fanIn: number; readonly fanOut: number } {
  if (shape.length < 2) throw new Error(`fans: a weight needs at least 2 dims, got [${shape.join(',')}]`);
  const receptive = sizeOf(shape.slice(2));
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

/** The ResNet conv init: normal with std sqrt(2 / (k·k·C_out)) (kaiming_normal_, fan_out, relu). */
export const resnetConvInit = (rng: Rng, shape: Shape): Float32Array => normalValues(rng, shape, Math.sqrt(2 / fans(shape).fanOut));

/** nn.Linear / nn.Conv2d default weight init: kaiming_uniform_(a=√5), i.e. U(±1/√fan_in). */
export const torchDefaultWeightInit = (rng: Rng, shape: Shape): Float32Array => uniformValues(rng, shape, 1 / Math.sqrt(fans(shape).fanIn));

/** xavier_uniform_: U(±√(6 / (fan_in + fan_out))). */
export const xavierUniformInit = (rng: Rng, shape: Shape): Float32Array => {
  const { fanIn, fanOut } = fans(shape);
  return uniformValues(rng, shape, Math.sqrt(6 / (fanIn + fanOut)));
};
