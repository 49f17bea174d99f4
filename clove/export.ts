// `clove export`: the student backbone as safetensors. Our ResNet has torchvision's parameter names, so torchvision
// (`resnet.load_state_dict(..., strict=False)`, which then reports only the missing `fc.*`) and detectron2's
// converters can load it; a user's encoder keeps its own names. Either way the mapping is a prefix strip of
// `student.encoder.`; BN running statistics come from the checkpoint's `bn.student.encoder.` group.
import * as E from 'fp-ts/lib/Either.js';
import * as fs from 'node:fs';
import { enclosingCheckpointDir, loadCheckpointOrSuggest, tensorGroup } from './checkpoint.ts';
import { writeSafetensorsFile } from './safetensors.ts';
import type { Logger } from './train.ts';

const PARAM_PREFIX = 'student.encoder.';
const BN_PREFIX = 'bn.student.encoder.';

/** torchvision name → tensor, from a loaded checkpoint's params and bn groups. */
export function torchvisionBackbone(
  params: Readonly<Record<string, { shape: readonly number[]; data: Float32Array }>>,
  bn: Readonly<Record<string, { shape: readonly number[]; data: Float32Array }>>,
): Record<string, { shape: number[]; data: Float32Array }> {
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [prefix, group] of [[PARAM_PREFIX, params], [BN_PREFIX, bn]] as const) {
    for (const [name, t] of Object.entries(group)) if (name.startsWith(prefix)) out[name.slice(prefix.length)] = { shape: [...t.shape], data: t.data };
  }
  return out;
}

/**
 * Where user output may go: never inside a checkpoint directory (it would corrupt or replace the checkpoint),
 * never onto a directory, and onto an existing file only with `--force`. The write itself is atomic.
 */
export function checkOutputFile(to: string, force: boolean): E.Either<string, void> {
  const inside = enclosingCheckpointDir(to);
  if (inside !== undefined) return E.left(`--out ${to}: refusing to write inside the checkpoint ${inside}; choose a path outside it`);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(to);
  } catch {
    st = undefined;
  }
  if (st?.isDirectory() === true) return E.left(`--out ${to}: that is a directory; give a file name (e.g. ${to.replace(/\/+$/, '')}/backbone.safetensors)`);
  if (st !== undefined && !force) return E.left(`--out ${to}: the file exists; pass --force to replace it`);
  return E.right(undefined);
}

export async function main(args: readonly string[], log: Logger): Promise<E.Either<string, void>> {
  const flag = (name: string): string | undefined => {
    const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
    return i < 0 ? undefined : args[i].includes('=') ? args[i].slice(name.length + 1) : args[i + 1];
  };
  const from = flag('--checkpoint');
  const to = flag('--out');
  const force = args.includes('--force');
  if (from === undefined || to === undefined || to.startsWith('--') || from.startsWith('--')) return E.left('export needs --checkpoint <run or checkpoint dir> and --out <file.safetensors> [--force]');
  const unsafe = checkOutputFile(to, force);
  if (E.isLeft(unsafe)) return unsafe;
  const ck = loadCheckpointOrSuggest(from);
  if (E.isLeft(ck)) return ck;
  const tensors = torchvisionBackbone(tensorGroup(ck.right.tensors, 'params'), tensorGroup(ck.right.tensors, 'bn'));
  const count = Object.keys(tensors).length;
  if (count === 0) return E.left(`checkpoint ${ck.right.path} has no student encoder tensors`);
  const enc = ck.right.config.model.encoder;
  // A user's encoder keeps its own names; only the built-in ResNet's are torchvision's.
  const resnet = enc.name === 'resnet';
  const arch: Record<string, string> = resnet ? { arch: `resnet${enc.depth}`, width: String(enc.width), stem: enc.stem } : { arch: enc.name, width: String(enc.width) };
  const wrote = writeSafetensorsFile(to, tensors, { format: 'pt', source: 'clove-ts', ...arch, step: String(ck.right.step) });
  if (E.isLeft(wrote)) return wrote;
  const names = resnet ? 'torchvision names: conv1.weight, bn1.*, layer1.0.conv1.weight, …' : `encoder '${enc.name}', its own names: ${Object.keys(tensors).slice(0, 3).join(', ')}, …`;
  log.info(`exported ${count} tensors (${names}) from step ${ck.right.step} to ${to}`);
  return E.right(undefined);
}
