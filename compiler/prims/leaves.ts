// Shared rules of the four leaf primitives (each has its own file exporting its Prim).
import { fail, ok, type DType, type Shape, type ShapeResult } from '../ir.ts';
import { badShape } from './checks.ts';

export function leafShape(shape: Shape, dtype: DType, extra?: string): ShapeResult {
  const bad = badShape(shape) ?? extra;
  return bad === undefined ? ok(shape, dtype) : fail(bad);
}
