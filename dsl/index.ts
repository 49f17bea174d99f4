// The DSL: what users write models, losses and optimizers with.
export * from './tensor.ts';
export * from './nn.ts';
export * from './tree.ts';
export * from './grad.ts';
export { withScope } from '../compiler/ir.ts';
export { typecheck, formatShapeErrors, type ShapeError } from '../compiler/typecheck.ts';
export { makeGraph, type Graph } from '../compiler/ir.ts';
export { interpret, type Bindings, type Evaluated, type Precision } from '../compiler/interp/interpret.ts';
