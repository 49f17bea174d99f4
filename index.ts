// `clove-ts`: the DSL (tensors, composites, parameter trees, grad/valueAndGrad, typecheck, the interpreter) and the
// compiler (compile → Executable with run/step/upload/read). The method lives in `clove-ts/clove`, the
// property-testing helpers in `clove-ts/testing`.
export * from './dsl/index.ts';
export * from './compiler/index.ts';
