// Write a model declaratively, differentiate it, and compile one SGD step for a backend; the parameters stay on
// the device across steps. Run: node --import tsx examples/compile.ts [cpu|webasm|webgpu]
import * as E from 'fp-ts/lib/Either.js';
import * as T from '../dsl/index.ts';
import { compile } from '../compiler/compile.ts';
import type { BackendName } from '../compiler/runtime/errors.ts';
import type { DeviceHandle } from '../compiler/runtime/device.ts';

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
const { step, upload, device } = exe.right;
console.log(`${exe.right.plan.kernels.length} kernels, peak ${exe.right.plan.memory.peakBytes} bytes`);

const xs = Float32Array.from({ length: 128 }, (_v, i) => Math.sin(i * i * 0.37));
const ys = Float32Array.from({ length: 64 }, (_v, n) => xs[2 * n] * xs[2 * n + 1]);
const init = (n: number) => Float32Array.from({ length: n }, (_v, i) => 0.5 * Math.cos(i * 1.7));
const handles = await Promise.all([upload('x', xs), upload('y', ys), upload('w1', init(32)), upload('w2', init(16))]);
const [xh, yh, w1, w2] = handles.map((h) => (E.isRight(h) ? h.right : (() => { throw new Error(h.left); })()));
let state: Record<string, DeviceHandle> = { w1, w2 };
for (let i = 1; i <= 200; i++) {
  const show = i === 1 || i % 50 === 0;
  // The state is donated: the old w1, w2 are freed, the new ones returned; 'loss' is read only when shown.
  const out = await step(state, { x: xh, y: yh }, show ? ['loss'] : []);
  if (E.isLeft(out)) throw new Error(out.left);
  state = out.right.state;
  if (show) console.log(`step ${i}: loss ${out.right.values.loss[0].toFixed(5)}`);
}
for (const h of Object.values(state)) device.free(h);
await exe.right.dispose();
