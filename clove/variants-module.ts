// `--variants <module>`: the `clove` command's way to the user's own variants. The module (JavaScript, or TypeScript
// when run from the repository) exports `variants`, the value `withVariants` returned; its shape is checked here,
// at the boundary, so a wrong export is one message instead of a failure deep inside the step.
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import type { Variants } from './models/registry.ts';

const KINDS = ['encoders', 'projectors', 'predictors', 'losses'] as const;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What is wrong with a module's `variants` export (empty when it is a Variants value). */
export function variantsProblems(value: unknown): string[] {
  if (!isRecord(value)) return [`expected an object with ${KINDS.join(', ')}, got ${value === null ? 'null' : typeof value}`];
  return KINDS.flatMap((kind) => {
    const table = value[kind];
    if (!isRecord(table)) return [`${kind}: expected an object of builders by name, got ${table === null ? 'null' : typeof table}`];
    return Object.entries(table)
      .filter(([, build]) => typeof build !== 'function')
      .map(([name, build]) => `${kind}.${name}: expected a builder function, got ${typeof build}`);
  });
}

export async function loadVariantsModule(file: string): Promise<E.Either<string, Variants>> {
  let module: unknown;
  try {
    module = await import(pathToFileURL(path.resolve(file)).href);
  } catch (error) {
    return E.left(`--variants ${file}: cannot import it: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  }
  const variants = isRecord(module) ? module.variants : undefined;
  if (variants === undefined) return E.left(`--variants ${file}: the module has no export named 'variants' (export const variants = withVariants({ encoders: { … } }) with the Either unwrapped)`);
  const problems = variantsProblems(variants);
  return problems.length > 0 ? E.left(`--variants ${file}: its 'variants' export is not what withVariants returns: ${problems.join('; ')}`) : E.right(variants as Variants);
}
