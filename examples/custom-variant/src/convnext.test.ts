// Property tests of the ConvNeXt-style encoder with fast-check and clove-ts/testing: its shape contract over random
// sizes, widths, depths and channel counts; its initial values against its declared shapes; and its gradients
// against float64 central differences at its own initial weights. A failure prints the seed that replays it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import * as C from 'clove-ts';
import { presets, type Encoder } from 'clove-ts/clove';
import { checkEncoderShapes, checkInitShapes, moduleGradientMismatches, property } from 'clove-ts/testing';
import { convNextEncoder } from './convnext.js';

const encoderConfig = (width: number) => ({ ...presets.tiny.model.encoder, name: 'convnext', width });

const build = (width: number, inChannels: number, depths: readonly number[], kernel = 7): Encoder => {
  const built = convNextEncoder({ depths, kernel, layerScale: 0.1 })(encoderConfig(width), inChannels);
  if (E.isLeft(built)) throw new Error(built.left);
  return built.right;
};

test('output is [N, width·2^(stages−1), ⌊S/stride⌋, ⌊S/stride⌋] and type-checks, for any sizes', () => {
  property(
    fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.constantFrom(1, 3),
      fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 3 }),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 16, max: 96 }),
      fc.constantFrom(3, 5, 7),
      (width, channels, depths, batch, size, kernel) => {
        const encoder = build(width, channels, depths, kernel);
        const side = Math.floor(size / encoder.stride);
        fc.pre(side >= 1);
        assert.deepEqual(checkEncoderShapes(encoder, { inChannels: channels, batch, size }), E.right([batch, width * 2 ** (depths.length - 1), side, side]));
        assert.deepEqual(checkInitShapes(encoder), E.right(undefined));
      },
    ),
    50,
  );
});

test('gradients with respect to every parameter and the input agree with central differences', () => {
  property(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(1, 3), (seed, channels) => {
      const encoder = build(2, channels, [1, 1], 3);
      const mismatches = moduleGradientMismatches(encoder, [2, channels, 16, 16], { seed });
      assert.deepEqual(mismatches, []);
    }),
    4,
  );
});

test('bad options are error values naming the option', () => {
  const even = convNextEncoder({ depths: [1], kernel: 4, layerScale: 0.1 })(encoderConfig(2), 3);
  assert.ok(E.isLeft(even) && even.left.includes('kernel = 4'));
});

test('the rank is in the type: a forward returning cells instead of a map does not compile', () => {
  const encoder = build(2, 3, [1]);
  const asCells = (y: C.Tensor<4>): C.Tensor<3> => C.reshape(y, [y.shape[0], y.shape[1], y.shape[2] * y.shape[3]]);
  // @ts-expect-error an encoder's forward returns a Tensor<4> map; [N, C, H·W] cells are a Tensor<3>
  const cells: Encoder['forward'] = (params, state, x) => ({ y: asCells(encoder.forward(params, state, x, true).y), state });
  assert.equal(typeof cells, 'function');
});
