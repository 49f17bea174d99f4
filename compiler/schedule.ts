// Fusion and scheduling: decide which nodes become buffers ("materialized"); every other node is inlined
// into the kernel of the buffer that consumes it, as index arithmetic (movement ops) or recomputed
// arithmetic (elementwise ops). The result is a linear schedule of kernels, one per materialized node.
import { numel, type Graph, type Node } from './ir.ts';
import { kindOf, ownsLoops, primOf, rereadInputs } from './facts.ts';
import type { PrimName } from './params.ts';
import type { Prim } from './prim.ts';
import type { ScheduleTarget } from './target.ts';


export interface KernelPlan {
  /** The node this kernel computes (one value per thread, flat row-major index, unless tiled). */
  readonly root: Node;
  /** Buffers the kernel reads, in argument order (a0, a1, …). */
  readonly args: readonly Node[];
  /** Non-buffer nodes computed inside this kernel. */
  readonly inlined: readonly Node[];
  /** The root axis along which each thread computes TILE consecutive values (register tiling), or null. */
  readonly tile: number | null;
  /** Per argument: the axis its producer tiled, i.e. the layout of that buffer (null: plain row-major). */
  readonly argTiles: readonly (number | null)[];
}

type UntiledPlan = Omit<KernelPlan, 'tile' | 'argTiles'>;

export interface Schedule {
  readonly kernels: readonly KernelPlan[];
  /** Every node that lives in a buffer: leaves bound by the caller plus kernel outputs. */
  readonly materialized: ReadonlySet<number>;
}

/** Whether `n` is a chain of ops passing `through` down to buffers or leaves (free to recompute with those ops). */
function movementChain(n: Node, buffers: ReadonlySet<number>, through: (p: Prim<PrimName>) => boolean): boolean {
  if (buffers.has(n.id) || kindOf(n) === 'leaf') return true;
  return through(primOf(n)) && movementChain(n.inputs[0], buffers, through);
}
/** Only index arithmetic: inlining never duplicates arithmetic. */
const isIndexOnly = (n: Node, buffers: ReadonlySet<number>): boolean => movementChain(n, buffers, (p) => p.kind === 'movement');
/**
 * Cheap enough for a heavy op's inner loop (reshape, expand, slice, flip): a permute decomposes and recomposes every
 * index with divisions and a pad needs a bounds test per read, so an operand reached through them is materialized.
 */
const isCheapReread = (n: Node, buffers: ReadonlySet<number>): boolean => movementChain(n, buffers, (p) => p.cheapReread === true);
/** The bytes of a buffer as they are (reshapes). */
const keepsBytes = (n: Node, buffers: ReadonlySet<number>): boolean => movementChain(n, buffers, (p) => p.keepsBytes === true);

export function schedule(graph: Graph, target: ScheduleTarget): Schedule {
  const consumers = new Map<number, number>();
  for (const n of graph.nodes) for (const i of n.inputs) consumers.set(i.id, (consumers.get(i.id) ?? 0) + 1);
  const outputs = new Set(Object.values(graph.outputs).map((n) => n.id));
  const mat = new Set<number>();
  // Leaves that hold data are buffers; so are outputs and loop-owning ops.
  for (const n of graph.nodes) {
    if (n.op === 'param' || n.op === 'input' || outputs.has(n.id) || ownsLoops(n)) mat.add(n.id);
  }
  // In topological order: a shared node is materialized unless recomputing it is only index arithmetic;
  // an operand that a heavy op re-reads is materialized unless it is index arithmetic.
  for (const n of graph.nodes) {
    if (mat.has(n.id) || kindOf(n) === 'leaf') continue;
    if ((consumers.get(n.id) ?? 0) > 1 && !isIndexOnly(n, mat)) mat.add(n.id);
  }
  // Fused epilogues: a template contraction whose only consumer is an elementwise op the target folds into the
  // template's store is computed inside that consumer's kernel, up a chain of single elementwise consumers.
  if (target.epilogue !== undefined) {
    // One contraction per kernel: a second one reaching the same root stays a buffer of its own.
    const claimed = new Set<number>();
    const users = new Map<number, Node[]>();
    for (const n of graph.nodes) for (const i of n.inputs) users.set(i.id, [...(users.get(i.id) ?? []), n]);
    for (const c of graph.nodes) {
      if (!target.bufferOperands(c) || outputs.has(c.id) || consumers.get(c.id) !== 1) continue;
      let top: Node | null = null;
      for (let next = (users.get(c.id) ?? [])[0]; next !== undefined && target.epilogue(c, next); ) {
        top = next;
        if (mat.has(top.id) || outputs.has(top.id) || consumers.get(top.id) !== 1) break;
        next = (users.get(top.id) ?? [])[0];
      }
      if (top === null || claimed.has(top.id)) continue;
      claimed.add(top.id);
      mat.delete(c.id);
      mat.add(top.id);
    }
  }
  for (const n of graph.nodes) {
    if (target.bufferOperands(n)) {
      // A template kernel reads its operands at computed addresses: each is a buffer, or a reshape of one.
      n.inputs.forEach((i, k) => {
        const folded = target.foldsOperand(n, k, i);
        const buffer = folded ? i.inputs[0] : i;
        if (!keepsBytes(buffer, mat) || kindOf(buffer) === 'leaf') mat.add(buffer.id);
      });
      continue;
    }
    for (const i of rereadInputs(n)) if (!isCheapReread(i, mat)) mat.add(materializationPoint(i, mat).id);
  }
  // Respect the per-kernel input limit by materializing inlined subtrees that read many buffers.
  let kernels = buildPlans(graph, mat);
  for (let guard = 0; guard < graph.nodes.length; guard++) {
    const over = kernels.find((k) => k.args.length > target.maxKernelInputs);
    if (over === undefined) break;
    const best = over.inlined
      .filter((n) => !isIndexOnly(n, mat))
      .map((n) => ({ n, reads: buffersRead(n, mat).size }))
      .filter((c) => c.reads < over.args.length)
      .sort((a, c) => c.reads - a.reads)[0];
    if (best === undefined) break;
    mat.add(best.n.id);
    kernels = buildPlans(graph, mat);
  }
  return { kernels: assignTiles(sinkCopies(kernels), outputs, target), materialized: mat };
}

/**
 * Move each kernel that only copies data (a movement op's materialization, e.g. the window of x a weight-gradient
 * tap reads) to just before its first consumer. Such copies depend on forward activations only, so in graph
 * order they all run at the start of the backward pass and stay live until their consumers: in W1 that was 147
 * windows, 256 MiB of the memory plan's peak. Any place before the first consumer keeps the order topological.
 */
function sinkCopies(plans: readonly UntiledPlan[]): UntiledPlan[] {
  const firstConsumer = new Map<number, number>();
  plans.forEach((p, i) => {
    for (const a of p.args) if (!firstConsumer.has(a.id)) firstConsumer.set(a.id, i);
  });
  const deferred = new Map<number, UntiledPlan[]>();
  const order: UntiledPlan[] = [];
  plans.forEach((p, i) => {
    order.push(...(deferred.get(i) ?? []));
    const consumer = firstConsumer.get(p.root.id);
    if (kindOf(p.root) === 'movement' && consumer !== undefined && consumer > i + 1) deferred.set(consumer, [...(deferred.get(consumer) ?? []), p]);
    else order.push(p);
  });
  return order;
}

/**
 * Register tiling: a kernel whose root has a tile rule computes TILE outputs per thread wherever its axis
 * allows. Its buffer is then stored tiled, which the index arithmetic of every consumer follows; graph
 * outputs keep the plain layout because the caller reads them (`plan` gives tileable outputs a copy kernel).
 */
function assignTiles(plans: readonly UntiledPlan[], outputs: ReadonlySet<number>, target: ScheduleTarget): KernelPlan[] {
  const tiles = new Map<number, number>();
  for (const { root } of plans) {
    const axis = outputs.has(root.id) ? null : target.tileAxis(root);
    if (axis !== null) tiles.set(root.id, axis);
  }
  return plans.map((p) => ({ ...p, tile: tiles.get(p.root.id) ?? null, argTiles: p.args.map((a) => tiles.get(a.id) ?? null) }));
}

/**
 * Where to cut an operand chain that is too costly to re-read: below any run of free reshapes (so the buffer
 * keeps the layout the expensive movement produced), i.e. the operand itself unless it is a reshape.
 */
function materializationPoint(n: Node, mat: ReadonlySet<number>): Node {
  let cur = n;
  while (cur.op === 'reshape' && !mat.has(cur.inputs[0].id) && !isCheapReread(cur.inputs[0], mat)) cur = cur.inputs[0];
  return cur;
}

function buffersRead(root: Node, mat: ReadonlySet<number>): Set<number> {
  const seen = new Set<number>();
  const out = new Set<number>();
  const visit = (n: Node) => {
    for (const i of n.inputs) {
      if (seen.has(i.id)) continue;
      seen.add(i.id);
      if (mat.has(i.id)) out.add(i.id);
      else visit(i);
    }
  };
  visit(root);
  return out;
}

function buildPlans(graph: Graph, mat: ReadonlySet<number>): UntiledPlan[] {
  const plans: UntiledPlan[] = [];
  for (const root of graph.nodes) {
    if (!mat.has(root.id) || root.op === 'param' || root.op === 'input') continue;
    const args: Node[] = [];
    const inlined: Node[] = [];
    const seen = new Set<number>();
    const visit = (n: Node) => {
      for (const i of n.inputs) {
        if (seen.has(i.id)) continue;
        seen.add(i.id);
        if (mat.has(i.id)) args.push(i);
        else {
          inlined.push(i);
          visit(i);
        }
      }
    };
    visit(root);
    plans.push({ root, args: args.sort((a, c) => a.id - c.id), inlined });
  }
  return plans;
}

/** Bytes of a buffer holding `n` (every dtype is stored as f32 on the device). */
export const bufferBytes = (n: Node): number => numel(n.shape) * 4;

