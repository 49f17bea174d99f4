// Two caches with different lifetimes:
// - KernelCache (in memory): built gpu.js kernels keyed by canonical source + settings + backend, so that
//   structurally identical kernels (same code up to whitespace, comments and the function's name) are built once.
// - SourceCache (on disk, `.cache/kernels/`): generated kernel *sources* keyed by whatever identifies the fused
//   graph they came from, so a second process skips codegen. gpu.js still translates/compiles each source once per
//   process; only our codegen is skipped.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as t from 'io-ts';
import type { BackendName } from './errors.ts';

/**
 * The form in which two kernel sources count as the same kernel: comments removed, whitespace runs collapsed,
 * the function's own name dropped (`function matmul_3(a, b)` and `function(a,b)` are one kernel). Kernel sources
 * hold no string or regex literals, so this textual normalisation cannot change their meaning.
 */
export const canonicalKernelSource = (source: string): string =>
  source
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/\/\/[^\n]*/g, ' ')
    .replace(/\s+/g, ' ')
    // `+` and `-` keep their spaces: joining `a - -b` into `a--b` would change the meaning
    .replace(/\s*([{}()[\];,=*/<>!&|?:%])\s*/g, '$1')
    .trim()
    .replace(/^function\s*[A-Za-z_$][\w$]*\s*\(/, 'function(')
    .replace(/^function\s+\(/, 'function(');

/** JSON with object keys sorted at every level: equal values give equal text whatever the insertion order. */
export const stableJson = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
};

export const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex');

export interface KernelCacheKeyParts {
  readonly backend: BackendName;
  /** already canonical (see canonicalKernelSource) */
  readonly source: string;
  /** every gpu.js setting the kernel is created with, including output, argument/return types and constants */
  readonly settings: Readonly<Record<string, unknown>>;
  /**
   * Element count of each array argument, when known at build time. gpu.js specializes a kernel to the sizes
   * of its first call, and two kernels can share a source while reading arrays of different sizes.
   */
  readonly argumentSizes?: Readonly<Record<string, number>>;
}

/** Hash of backend + canonical source + settings + argument sizes: the identity of a built kernel. */
export const kernelCacheKey = (parts: KernelCacheKeyParts): string =>
  sha256Hex(stableJson({ backend: parts.backend, source: parts.source, settings: parts.settings, argumentSizes: parts.argumentSizes }));

export interface CacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly size: number;
}

/** An in-memory map from key to built value that counts hits and misses. */
export class KernelCache<T> {
  private readonly entries = new Map<string, T>();
  private hits = 0;
  private misses = 0;

  getOrCreate(key: string, create: () => T): { readonly value: T; readonly hit: boolean } {
    const existing = this.entries.get(key);
    if (existing !== undefined) {
      this.hits += 1;
      return { value: existing, hit: true };
    }
    this.misses += 1;
    const value = create();
    this.entries.set(key, value);
    return { value, hit: false };
  }

  get(key: string): T | undefined {
    return this.entries.get(key);
  }

  /** Forget one entry (a kernel that failed must be rebuilt, not served again). */
  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  values(): ReadonlyArray<T> {
    return [...this.entries.values()];
  }

  clear(): void {
    this.entries.clear();
  }

  stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, size: this.entries.size };
  }
}

const SOURCE_FILE_FORMAT = 'clove-kernel-source/1';
const SourceFileCodec = t.type({ format: t.literal(SOURCE_FILE_FORMAT), key: t.string, source: t.string });

export interface SourceCacheStats {
  readonly hits: number;
  readonly misses: number;
  /** entries found on disk but unreadable or invalid; they were regenerated and overwritten */
  readonly rejected: number;
}

/** Generated kernel sources on disk, one JSON file per key: `<dir>/<sha256(key)>.json`. */
export class SourceCache {
  private hits = 0;
  private misses = 0;
  private rejected = 0;

  constructor(readonly directory: string = join('.cache', 'kernels')) {}

  pathFor(key: string): string {
    return join(this.directory, `${sha256Hex(key)}.json`);
  }

  /** none when absent; Left (naming the file and the reason) when present but unreadable or not ours. */
  get(key: string): E.Either<string, O.Option<string>> {
    const path = this.pathFor(key);
    if (!existsSync(path)) return E.right(O.none);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      return E.left(`kernel source cache file ${path} is not readable JSON: ${String(error)}`);
    }
    const decoded = SourceFileCodec.decode(parsed);
    if (E.isLeft(decoded)) {
      return E.left(`kernel source cache file ${path} does not have the ${SOURCE_FILE_FORMAT} shape {format, key, source}`);
    }
    // a different key under the same hash would be a sha256 collision or a hand-edited file: never serve it
    if (decoded.right.key !== key) return E.left(`kernel source cache file ${path} holds a different key`);
    return E.right(O.some(decoded.right.source));
  }

  /** Atomic write (temp file + rename) so a crashed process never leaves a half-written entry. */
  put(key: string, source: string): E.Either<string, string> {
    const path = this.pathFor(key);
    const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
    try {
      mkdirSync(this.directory, { recursive: true });
      writeFileSync(temporary, JSON.stringify({ format: SOURCE_FILE_FORMAT, key, source }));
      renameSync(temporary, path);
      return E.right(path);
    } catch (error) {
      return E.left(`cannot write kernel source cache file ${path}: ${String(error)}`);
    }
  }

  /**
   * The cached source for `key`, or `generate()`'s result stored for next time. A corrupt entry counts as
   * rejected and is regenerated; only a failed write is an error.
   */
  getOrGenerate(key: string, generate: () => string): E.Either<string, { readonly source: string; readonly hit: boolean }> {
    const cached = this.get(key);
    if (E.isRight(cached) && O.isSome(cached.right)) {
      this.hits += 1;
      return E.right({ source: cached.right.value, hit: true });
    }
    if (E.isLeft(cached)) this.rejected += 1;
    this.misses += 1;
    const source = generate();
    return E.map(() => ({ source, hit: false }))(this.put(key, source));
  }

  stats(): SourceCacheStats {
    return { hits: this.hits, misses: this.misses, rejected: this.rejected };
  }
}
