// The runtime layer on every backend this machine has: kernels from source strings agree with plain JS loops,
// chains stay on the device, state replacement does not leak handles, caches share identical kernels, and an
// unavailable backend asked for by name is an error value.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { property, testedBackends } from './prop.ts';
import { BACKEND_ORDER, chooseBackend, decideBackend, probeBackends, type BackendProbe } from '../compiler/runtime/backend.ts';
import { canonicalKernelSource, SourceCache } from '../compiler/runtime/cache.ts';
import { Device, type DeviceHandle, type DeviceKernel, type KernelSpec } from '../compiler/runtime/device.ts';
import type { BackendName, DeviceError } from '../compiler/runtime/errors.ts';

const probes = await probeBackends();
const probeOf = (backend: BackendName): BackendProbe => probes.find((probe) => probe.backend === backend) as BackendProbe;

const devices: Device[] = [];
after(async () => {
  for (const device of devices) await device.dispose();
});

const unwrap = <T>(result: E.Either<DeviceError, T>, what: string): T => {
  if (E.isLeft(result)) assert.fail(`${what}: ${result.left.kind}: ${result.left.message}`);
  return result.right;
};

const closeTo = (actual: Float32Array, expected: Float32Array, what: string): void => {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    if (!(Math.abs(a - e) <= 1e-4 * Math.max(1, Math.abs(e)))) assert.fail(`${what}: index ${i}: got ${a}, expected ${e}`);
  }
};

const randomFloats = fc.integer({ min: 0, max: 2 ** 31 - 1 }).map((seed) => (length: number): Float32Array => {
  // a small LCG keeps generated arrays cheap; fast-check shrinks the seed
  let state = seed >>> 0;
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = (state / 2 ** 32) * 4 - 2;
  }
  return values;
});

// webgpu builds (WGSL compile + pipeline) cost tens of ms on lavapipe; fewer runs keep the file well under a minute
const runsFor = (backend: BackendName): number => (backend === 'webgpu' ? 6 : 15);

describe('backend choice', () => {
  test('CLOVE_TEST_BACKENDS picks the backends these properties run on; an unknown name is an error', () => {
    const saved = process.env.CLOVE_TEST_BACKENDS;
    try {
      delete process.env.CLOVE_TEST_BACKENDS;
      assert.deepEqual(testedBackends(), ['webgpu', 'wasm', 'cpu', 'webasm']);
      process.env.CLOVE_TEST_BACKENDS = 'webgpu, cpu';
      assert.deepEqual(testedBackends(), ['webgpu', 'cpu']);
      process.env.CLOVE_TEST_BACKENDS = 'webgpu,cuda';
      assert.throws(() => testedBackends(), /cuda/);
    } finally {
      if (saved === undefined) delete process.env.CLOVE_TEST_BACKENDS;
      else process.env.CLOVE_TEST_BACKENDS = saved;
    }
  });

  test('an explicitly requested unavailable backend is an error value, never a fallback', () => {
    const backendArb = fc.constantFrom(...BACKEND_ORDER);
    return property(
      fc.property(fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), backendArb, (availability, requested) => {
        const fake: BackendProbe[] = BACKEND_ORDER.map((backend, i) =>
          availability[i] === true ? { backend, available: true, detail: `${backend} ok` } : { backend, available: false, reason: `${backend}: absent` });
        const chosen = decideBackend(fake, requested);
        const requestedAvailable = availability[BACKEND_ORDER.indexOf(requested)] === true;
        if (requestedAvailable) {
          assert.ok(E.isRight(chosen) && chosen.right.backend === requested);
        } else {
          assert.ok(E.isLeft(chosen));
          assert.equal(chosen.left.kind, 'unavailable');
          assert.equal(chosen.left.backend, requested);
          assert.match(chosen.left.message, /absent/);
        }
        const auto = decideBackend(fake, 'auto');
        const best = BACKEND_ORDER.find((_, i) => availability[i] === true);
        if (best === undefined) assert.ok(E.isLeft(auto));
        else {
          assert.ok(E.isRight(auto));
          assert.equal(auto.right.backend, best);
          // one explanation line per backend: the choice plus every other backend
          assert.equal(auto.right.explanation.length, BACKEND_ORDER.length);
        }
      }),
      200,
    );
  });

  test('on this machine: headlessgl by name is unavailable with a reason, auto picks an available backend', async () => {
    const explicit = await chooseBackend('headlessgl');
    assert.ok(E.isLeft(explicit));
    assert.equal(explicit.left.kind, 'unavailable');
    assert.match(explicit.left.message, /headlessgl/);
    const auto = await chooseBackend('auto');
    assert.ok(E.isRight(auto));
    assert.ok(probeOf(auto.right.backend).available);
    const opened = await Device.open('headlessgl');
    assert.ok(E.isLeft(opened) && opened.left.kind === 'unavailable');
  });
});

// The gpu.js device (the wasm back end has its own device, tested in props/wasm.test.ts).
for (const backend of testedBackends().filter((b) => b !== 'wasm')) {
  const probe = probeOf(backend);
  const skip = probe.available ? false : `backend unavailable here: ${probe.reason}`;
  describe(`device on ${backend}`, { skip }, () => {
    let device: Device;
    const open = async (): Promise<Device> => {
      if (device === undefined) {
        device = unwrap(await Device.open(backend), `open ${backend}`);
        devices.push(device);
      }
      return device;
    };
    const build = (spec: KernelSpec): DeviceKernel => unwrap(device.buildKernel(spec), `build ${spec.name ?? ''}`);
    const upload = async (data: Float32Array, shape: readonly [number, number]): Promise<DeviceHandle> => unwrap(await device.upload(data, shape), 'upload');
    const launch = async (kernel: DeviceKernel, args: ReadonlyArray<DeviceHandle | number>): Promise<DeviceHandle> => unwrap(await device.launch(kernel, args), `launch ${kernel.name}`);
    const read = async (handle: DeviceHandle): Promise<Float32Array> => unwrap(await device.read(handle), 'read');

    test('a kernel from a source string matches a JS loop (matmul with a literal reduction bound)', async () => {
      await open();
      const before = device.liveHandles();
      await property(
        fc.asyncProperty(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 12 }), randomFloats, fc.double({ min: -3, max: 3, noNaN: true }),
          async (rows, cols, inner, floats, scale) => {
            const a = floats(rows * inner); // [inner, rows] in gpu.js order: a[y][k]
            const b = floats(inner * cols).map((v) => v * 0.5); // [cols, inner]: b[k][x]
            const kernel = build({
              name: `matmul_${rows}x${inner}x${cols}`,
              source: `function (a, b, s) { let sum = 0; for (let k = 0; k < ${inner}; k++) { sum += a[this.thread.y][k] * b[k][this.thread.x]; } return sum * s + this.constants.bias; }`,
              output: [cols, rows],
              argumentTypes: { a: 'Array', b: 'Array', s: 'Float' },
              returnType: 'Number',
              constants: { bias: 0.25 },
            });
            const ha = await upload(a, [inner, rows]);
            const hb = await upload(b, [cols, inner]);
            const out = await launch(kernel, [ha, hb, scale]);
            const expected = new Float32Array(rows * cols);
            for (let y = 0; y < rows; y++) {
              for (let x = 0; x < cols; x++) {
                let sum = 0;
                for (let k = 0; k < inner; k++) sum += (a[y * inner + k] as number) * (b[k * cols + x] as number);
                expected[y * cols + x] = sum * scale + 0.25;
              }
            }
            closeTo(await read(out), expected, kernel.name);
            for (const handle of [ha, hb, out]) device.free(handle);
          }),
        runsFor(backend),
      );
      assert.deepEqual(device.liveHandles(), before);
    });

    test('two kernels chain device-resident, including an Array(4) result read as a scalar tensor', async () => {
      await open();
      await property(
        fc.asyncProperty(fc.integer({ min: 1, max: 17 }), fc.integer({ min: 1, max: 5 }), randomFloats, async (width, height, floats) => {
          const input = floats(width * height);
          const spread = build({
            name: 'spread',
            source: 'function(a) { const v = a[this.thread.y][this.thread.x]; return [v, v * 2, v - 1, v * v]; }',
            output: [width, height],
            argumentTypes: { a: 'Array' },
            returnType: 'Array(4)',
          });
          const combine = build({
            name: 'combine',
            source: 'function(q) { const x = this.thread.x * 4; return q[this.thread.y][x] + q[this.thread.y][x + 1] * q[this.thread.y][x + 2] - q[this.thread.y][x + 3]; }',
            output: [width, height],
            argumentTypes: { q: 'Array' },
            returnType: 'Number',
          });
          const h = await upload(input, [width, height]);
          const quads = await launch(spread, [h]);
          assert.deepEqual(quads.shape, [width * 4, height]);
          const out = await launch(combine, [quads]);
          const expected = input.map((v) => v + v * 2 * (v - 1) - v * v);
          closeTo(await read(out), expected, 'chain');
          const expectedQuads = new Float32Array(width * height * 4);
          input.forEach((v, i) => expectedQuads.set([v, v * 2, v - 1, v * v], i * 4));
          closeTo(await read(quads), expectedQuads, 'Array(4) layout');
          for (const handle of [h, quads, out]) device.free(handle);
        }),
        runsFor(backend),
      );
    });

    test('100 steps that consume and replace a state buffer leave liveHandles unchanged', async () => {
      await open();
      const width = 64;
      const height = 3;
      const step = build({
        name: 'state_step',
        source: 'function(state, gradient, lr) { return state[this.thread.y][this.thread.x] - lr * gradient[this.thread.y][this.thread.x]; }',
        output: [width, height],
        argumentTypes: { state: 'Array', gradient: 'Array', lr: 'Float' },
        returnType: 'Number',
      });
      const gradient = await upload(new Float32Array(width * height).map((_, i) => (i % 7) - 3), [width, height]);
      let state = await upload(new Float32Array(width * height).fill(1), [width, height]);
      const live = device.liveHandles();
      for (let i = 0; i < 100; i++) {
        const next = await launch(step, [state, gradient, 0.01]);
        device.free(state);
        state = next;
      }
      assert.deepEqual(device.liveHandles(), live);
      const expected = new Float32Array(width * height).map((_, i) => 1 - 100 * 0.01 * ((i % 7) - 3));
      closeTo(await read(state), expected, 'state after 100 steps');
      device.free(state);
      device.free(gradient);
      assert.throws(() => device.free(gradient), /already freed/);
    });

    test('the kernel cache builds structurally identical sources once', async () => {
      await open();
      const spec: KernelSpec = {
        name: 'first',
        source: 'function add(a, b) { return a[this.thread.x] + b[this.thread.x]; }',
        output: [5],
        argumentTypes: { a: 'Array', b: 'Array' },
        returnType: 'Number',
      };
      const first = build(spec);
      const statsBefore = device.cacheStats();
      const same = build({ ...spec, name: 'second', source: 'function other_name(a, b) {\n  // a comment\n  return a[this.thread.x]   +   b[this.thread.x];\n}' });
      assert.equal(same.compiled, first.compiled);
      assert.equal(same.name, 'second');
      assert.equal(device.cacheStats().hits, statsBefore.hits + 1);
      const different = build({ ...spec, source: 'function(a, b) { return a[this.thread.x] - b[this.thread.x]; }' });
      assert.notEqual(different.compiled, first.compiled);
      const otherOutput = build({ ...spec, output: [6] });
      assert.notEqual(otherOutput.compiled, first.compiled);
    });

    test('one source reading arrays of different sizes gets one build per size (gpu.js specializes to the first call)', async () => {
      await open();
      // Reads only a[0]: the source cannot tell a 1-element array from a 2-element one.
      const spec = { source: 'function(a) { return a[0] + 1; }', output: [4], argumentTypes: { a: 'Array' }, returnType: 'Number' } as const;
      const small = build({ ...spec, name: 'first-of-1', argumentSizes: { a: 1 } });
      const large = build({ ...spec, name: 'first-of-2', argumentSizes: { a: 2 } });
      assert.notEqual(small.compiled, large.compiled);
      const h1 = await upload(Float32Array.of(5), [1, 1]);
      const h2 = await upload(Float32Array.of(7, 9), [2, 1]);
      for (const [kernel, handle, want] of [[small, h1, 6], [large, h2, 8]] as const) {
        const out = await launch(kernel, [handle]);
        assert.deepEqual([...(await read(out))], [want, want, want, want]);
        device.free(out);
      }
      await assert.rejects(device.launch(small, [h2]), /was built for 1 elements, got \[2, 1\]/);
      device.free(h1);
      device.free(h2);
    });

    test('errors are values naming the kernel', async () => {
      await open();
      const broken = build({ name: 'broken', source: 'function(a) { return a[this.thread.x] +* 2; }', output: [4], argumentTypes: { a: 'Array' }, returnType: 'Number' });
      const h = await upload(new Float32Array(4), [4, 1]);
      const failed = await device.launch(broken, [h]);
      assert.ok(E.isLeft(failed));
      assert.equal(failed.left.kind, 'kernel');
      assert.equal(failed.left.kernel, 'broken');
      const misnamed = device.buildKernel({ name: 'misnamed', source: 'function(a, b) { return 1; }', output: [4], argumentTypes: { b: 'Array', a: 'Array' }, returnType: 'Number' });
      assert.ok(E.isLeft(misnamed) && misnamed.left.kind === 'kernel' && misnamed.left.kernel === 'misnamed');
      // one array more than the device allows (webgpu: the granted storage buffers per stage, less the output)
      const max = device.limits().maxArrayInputs;
      const inputs = Array.from({ length: Number.isFinite(max) ? max + 1 : 9 }, (_v, i) => `x${i}`);
      const wide = device.buildKernel({
        name: 'wide',
        source: `function(${inputs.join(', ')}) { return ${inputs.map((n) => `${n}[this.thread.x]`).join(' + ')}; }`,
        output: [4],
        argumentTypes: Object.fromEntries(inputs.map((n) => [n, 'Array'])),
        returnType: 'Number',
      });
      if (Number.isFinite(device.limits().maxArrayInputs)) assert.ok(E.isLeft(wide) && wide.left.kind === 'limits');
      else assert.ok(E.isRight(wide));
      device.free(h);
    });
  });
}

describe('on-disk source cache', () => {
  test('a second process (a new SourceCache on the same directory) skips generation; corrupt entries are regenerated', () => {
    const directory = mkdtempSync(join(tmpdir(), 'clove-kernels-'));
    try {
      return property(
        fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ maxLength: 200 }), (key, source) => {
          rmSync(directory, { recursive: true, force: true });
          let generated = 0;
          const generate = (): string => {
            generated += 1;
            return source;
          };
          const first = new SourceCache(directory).getOrGenerate(key, generate);
          assert.ok(E.isRight(first) && !first.right.hit && first.right.source === source);
          const secondProcess = new SourceCache(directory);
          const second = secondProcess.getOrGenerate(key, generate);
          assert.ok(E.isRight(second) && second.right.hit && second.right.source === source);
          assert.equal(generated, 1);
          assert.deepEqual(secondProcess.get(`${key}!`), E.right(O.none));
          writeFileSync(secondProcess.pathFor(key), '{"format":"something else"}');
          assert.ok(E.isLeft(secondProcess.get(key)));
          const third = secondProcess.getOrGenerate(key, generate);
          assert.ok(E.isRight(third) && !third.right.hit);
          assert.equal(secondProcess.stats().rejected, 1);
          assert.equal(readdirSync(directory).filter((f) => f.endsWith('.tmp')).length, 0);
        }),
        50,
      );
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test('canonical source ignores names, comments and whitespace but not operators', () => {
    assert.equal(
      canonicalKernelSource('function  f_1 (a,  b) {\n // why\n return a[this.thread.x] /* c */ + b[this.thread.x];\n}'),
      canonicalKernelSource('function(a, b) { return a[this.thread.x] + b[this.thread.x]; }'),
    );
    assert.notEqual(canonicalKernelSource('function(a) { return a - -1; }'), canonicalKernelSource('function(a) { return a--1; }'));
  });
});
