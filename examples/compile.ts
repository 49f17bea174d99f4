// Write a model declaratively, differentiate it, and compile one SGD step for a backend; the parameters stay on
// the device across steps. Run: node --import tsx examples/compile.ts [cpu|webasm|webgpu]
import * as E from 'fp-ts/lib/Either.js';
import * as T from '../dsl/index.ts';
import { compile } from '../compiler/compile.ts';
import type { BackendName } from '../compiler/runtime/errors.ts';

const params = { w1: T.param('w1', [2, 16]), w2: T.param('w2', [16, 1]) };
const x = T.input('x', [64, 2]);
const y = T.input('y', [64, 1]);
const model = (p: typeof params) => T.matmul(T.tanh(T.matmul(x, p.w1)), p.w2);
const { value: loss, grads } = T.valueAndGrad((p: typeof params) => {
  const err = T.sub(model(p), y);
  return { value: T.mean(T.mul(err, err)), aux: undefined };
})(params);
const sgd = (name: 'w1' | 'w2') => T.sub(params[name], T.mul(grads[name] as T.Tensor, 0.2));

const backend = (process.argv[2] ?? 'auto') as BackendName | 'auto';
const exe = await compile(T.makeGraph({ loss, w1: sgd('w1'), w2: sgd('w2') }), { backend, log: (l) => console.log(l) });
if (E.isLeft(exe)) throw new Error(exe.left);
const { run, upload, read, device } = exe.right;
console.log(`${exe.right.plan.kernels.length} kernels, peak ${exe.right.plan.memory.peakBytes} bytes`);

const xs = Float32Array.from({ length: 128 }, (_v, i) => Math.sin(i * i * 0.37));
const ys = Float32Array.from({ length: 64 }, (_v, n) => xs[2 * n] * xs[2 * n + 1]);
const init = (n: number) => Float32Array.from({ length: n }, (_v, i) => 0.5 * Math.cos(i * 1.7));
const handles = await Promise.all([upload('x', xs), upload('y', ys), upload('w1', init(32)), upload('w2', init(16))]);
const [xh, yh, w1, w2] = handles.map((h) => (E.isRight(h) ? h.right : (() => { throw new Error(h.left); })()));
let state = { w1, w2 };
for (let step = 1; step <= 200; step++) {
  const out = await run({ x: xh, y: yh, ...state });
  if (E.isLeft(out)) throw new Error(out.left);
  device.free(state.w1);
  device.free(state.w2);
  state = { w1: out.right.w1, w2: out.right.w2 };
  if (step === 1 || step % 50 === 0) {
    const l = await read(out.right.loss); // the only readback
    if (E.isRight(l)) console.log(`step ${step}: loss ${l.right[0].toFixed(5)}`);
  }
  device.free(out.right.loss);
}
await exe.right.dispose();
