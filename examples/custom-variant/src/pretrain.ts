// Pretrain CLoVE with the ConvNeXt-style encoder from a script: it is registered under a name (src/variants.ts),
// the config selects it by that name, and the variants go to `pretrain` next to the config. The checkpoint records
// the variant (its name in the config, its tensors' shapes), so `evaluate` and a resumed run find the same network.
// Run: npm run pretrain [-- --steps N --backend wasm|cpu|webgpu --out DIR]
import { parseArgs } from 'node:util';
import * as E from 'fp-ts/lib/Either.js';
import { checkpointEncoderWeights, loadCheckpoint, presets, pretrain, type BackendName, type Config } from 'clove-ts/clove';
import { variants } from './variants.js';

const { values } = parseArgs({ options: { steps: { type: 'string', default: '4' }, backend: { type: 'string', default: 'wasm' }, out: { type: 'string', default: 'runs/convnext' } } });

const fail = (message: string): never => {
  process.stderr.write(`pretrain: ${message}\n`);
  process.exit(1);
};
const orFail = <A>(result: E.Either<string, A>): A => (E.isLeft(result) ? fail(result.left) : result.right);

const base = presets.tiny;
const config: Config = {
  ...base,
  // At the encoder's stride 8, 32-px global views give a 4×4 teacher grid: enough cells for the official k = 10.
  model: { ...base.model, encoder: { ...base.model.encoder, name: 'convnext', width: 16 } },
  optim: { ...base.optim, steps: Number(values.steps), warmupSteps: 1 },
  run: { ...base.run, outDir: values.out, backend: values.backend as BackendName, logEvery: 1, checkpointEvery: Number(values.steps) },
};

const log = { info: (line: string) => console.log(line), warn: (line: string) => console.error(`warning: ${line}`) };
const run = orFail(await pretrain({ config, variants, resume: false, overwrite: true, log }));
console.log(`trained ${run.steps} steps on ${run.backend}: loss ${run.firstLoss.toFixed(4)} → ${run.lastLoss.toFixed(4)}`);
const checkpoint = orFail(loadCheckpoint(run.checkpoint));
const weights = orFail(checkpointEncoderWeights(checkpoint, variants));
console.log(`checkpoint ${run.checkpoint} holds encoder '${checkpoint.config.model.encoder.name}' with ${Object.keys(weights.params).length} parameter tensors`);
