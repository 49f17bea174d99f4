// The safetensors file format (https://github.com/huggingface/safetensors), so checkpoints open in other tools:
//   u64 little-endian N | N bytes of JSON header, space-padded so the data starts 8-byte aligned | data.
// The header maps each tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets relative to the
// start of the data section) and may hold "__metadata__": { string: string }. Tensors are laid out in name order.
// The reader trusts nothing: every size and offset is checked, and corruption becomes a Left, never a throw.
import * as fs from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { writeFileAtomic } from './atomic.ts';

export type Dtype = 'F32' | 'I32' | 'F64';
export type TensorArray = Float32Array | Int32Array | Float64Array;

/** A tensor as stored: the dtype follows from the array type. */
export type StoredTensor =
  | { readonly dtype: 'F32'; readonly shape: readonly number[]; readonly data: Float32Array }
  | { readonly dtype: 'I32'; readonly shape: readonly number[]; readonly data: Int32Array }
  | { readonly dtype: 'F64'; readonly shape: readonly number[]; readonly data: Float64Array };

/** What the writer takes: shape and data; the dtype is read off the array. */
export interface TensorInput {
  readonly shape: readonly number[];
  readonly data: TensorArray;
}

export interface SafetensorsContent {
  readonly tensors: Readonly<Record<string, StoredTensor>>;
  readonly metadata: Readonly<Record<string, string>>;
}

const METADATA_KEY = '__metadata__';
/** The reference implementation refuses headers above 100 MB; so do we, before allocating anything. */
const MAX_HEADER_BYTES = 100_000_000;

const bytesPerElement: Record<Dtype, number> = { F32: 4, I32: 4, F64: 8 };
/** Dtypes of the format we recognise but do not load, so the message can say "unsupported" not "unknown". */
const otherKnownDtypes = new Set(['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'U32', 'I64', 'U64']);

const hostIsLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export function dtypeOf(data: TensorArray): Dtype {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Int32Array) return 'I32';
  return 'F64';
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function littleEndianBytes(data: TensorArray): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (hostIsLittleEndian) return bytes;
  const swapped = new Uint8Array(bytes);
  const width = data.BYTES_PER_ELEMENT;
  for (let i = 0; i < swapped.length; i += width) swapped.subarray(i, i + width).reverse();
  return swapped;
}

function arrayFromLittleEndian(dtype: Dtype, bytes: Uint8Array): TensorArray {
  // Copy into a fresh buffer: it is aligned for the typed array and detached from the file's bytes.
  const copy = new Uint8Array(bytes);
  if (!hostIsLittleEndian) {
    const width = bytesPerElement[dtype];
    for (let i = 0; i < copy.length; i += width) copy.subarray(i, i + width).reverse();
  }
  const n = copy.byteLength / bytesPerElement[dtype];
  if (dtype === 'F32') return new Float32Array(copy.buffer, 0, n);
  if (dtype === 'I32') return new Int32Array(copy.buffer, 0, n);
  return new Float64Array(copy.buffer, 0, n);
}

/**
 * Serialises tensors (sorted by name) and string metadata. Throws on programmer errors: a shape that does not
 * match the data length, a non-integer dimension, or the reserved name `__metadata__`.
 */
export function encodeSafetensors(
  tensors: Readonly<Record<string, TensorInput>>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    const copy: Record<string, string> = {};
    for (const [key, value] of Object.entries(metadata)) setOwn(copy, key, value);
    header[METADATA_KEY] = copy;
  }
  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY) throw new Error(`safetensors: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    const { shape, data } = tensors[name]!;
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`safetensors: tensor '${name}' has an invalid shape [${shape.join(', ')}]`);
    }
    if (elementCount(shape) !== data.length) {
      throw new Error(`safetensors: tensor '${name}' has shape [${shape.join(', ')}] (${elementCount(shape)} elements) but ${data.length} values`);
    }
    setOwn(header, name, { dtype: dtypeOf(data), shape: [...shape], data_offsets: [offset, offset + data.byteLength] });
    offset += data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let cursor = 8 + padded;
  for (const name of names) {
    const bytes = littleEndianBytes(tensors[name]!.data);
    out.set(bytes, cursor);
    cursor += bytes.byteLength;
  }
  return out;
}

/** Assigns an own property even for keys like `__proto__`, which plain assignment would treat as the prototype. */
function setOwn<V>(record: Record<string, V>, key: string, value: V): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === 'object' && u !== null && !Array.isArray(u);
const isCount = (u: unknown): u is number => typeof u === 'number' && Number.isSafeInteger(u) && u >= 0;

interface HeaderEntry {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

function parseEntry(name: string, raw: unknown, dataLength: number): E.Either<string, HeaderEntry> {
  const where = `tensor '${name}'`;
  if (!isRecord(raw)) return E.left(`${where}: expected an object with dtype, shape and data_offsets, got ${JSON.stringify(raw)}`);
  const extra = Object.keys(raw).filter((k) => k !== 'dtype' && k !== 'shape' && k !== 'data_offsets');
  if (extra.length > 0) return E.left(`${where}: unexpected header fields ${extra.join(', ')}`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== 'string') return E.left(`${where}: dtype must be a string, got ${JSON.stringify(dtype)}`);
  if (dtype !== 'F32' && dtype !== 'I32' && dtype !== 'F64') {
    return E.left(
      otherKnownDtypes.has(dtype)
        ? `${where}: dtype ${dtype} is not supported (supported: F32, I32, F64)`
        : `${where}: unknown dtype ${JSON.stringify(dtype)}`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) return E.left(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    return E.left(`${where}: data_offsets must be [begin, end] with non-negative integers, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) return E.left(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataLength) return E.left(`${where}: data_offsets [${begin}, ${end}] run past the data section (${dataLength} bytes; file truncated?)`);
  const expected = elementCount(shape) * bytesPerElement[dtype];
  if (end - begin !== expected) {
    return E.left(`${where}: shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
  }
  return E.right({ name, dtype, shape: shape as number[], begin, end });
}

/** Parses a whole safetensors file. Any inconsistency (size, JSON, offsets, dtype) is a Left with the reason. */
export function decodeSafetensors(bytes: Uint8Array): E.Either<string, SafetensorsContent> {
  if (bytes.byteLength < 8) return E.left(`file is ${bytes.byteLength} bytes, shorter than the 8-byte header length (truncated?)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) return E.left(`header length ${declared} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt length?)`);
  const headerLength = Number(declared);
  if (8 + headerLength > bytes.byteLength) {
    return E.left(`header length ${headerLength} runs past the end of the ${bytes.byteLength}-byte file (truncated?)`);
  }
  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
    header = JSON.parse(text);
  } catch (error) {
    return E.left(`header is not valid UTF-8 JSON: ${(error as Error).message}`);
  }
  if (!isRecord(header)) return E.left(`header must be a JSON object, got ${JSON.stringify(header)?.slice(0, 60)}`);

  const dataStart = 8 + headerLength;
  const dataLength = bytes.byteLength - dataStart;
  let metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (!isRecord(raw) || !Object.values(raw).every((v) => typeof v === 'string')) {
        return E.left(`${METADATA_KEY} must map strings to strings, got ${JSON.stringify(raw)?.slice(0, 60)}`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const entry = parseEntry(name, raw, dataLength);
    if (E.isLeft(entry)) return entry;
    entries.push(entry.right);
  }

  // The tensors must tile the data section exactly: an overlap means two tensors share bytes, a gap or a tail
  // means bytes nobody owns. Both only arise from corruption or a foreign writer's bug.
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const entry of byOffset) {
    if (entry.begin < covered) {
      const previous = byOffset.find((e) => e !== entry && e.end > entry.begin && e.begin <= entry.begin);
      return E.left(`tensor '${entry.name}' data_offsets [${entry.begin}, ${entry.end}] overlap ${previous === undefined ? 'another tensor' : `tensor '${previous.name}' [${previous.begin}, ${previous.end}]`}`);
    }
    if (entry.begin > covered) return E.left(`bytes [${covered}, ${entry.begin}) of the data section belong to no tensor (before '${entry.name}')`);
    covered = entry.end;
  }
  if (covered !== dataLength) return E.left(`data section is ${dataLength} bytes but the tensors cover ${covered} (trailing bytes or wrong offsets)`);

  const tensors: Record<string, StoredTensor> = {};
  for (const entry of entries) {
    const data = arrayFromLittleEndian(entry.dtype, bytes.subarray(dataStart + entry.begin, dataStart + entry.end));
    setOwn(tensors, entry.name, { dtype: entry.dtype, shape: entry.shape, data } as StoredTensor);
  }
  return E.right({ tensors, metadata });
}

/** Reads and parses a safetensors file; messages name the file. */
export function readSafetensorsFile(path: string): E.Either<string, SafetensorsContent> {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(path);
  } catch (error) {
    return E.left(`${path}: cannot be read (${(error as Error).message})`);
  }
  return E.mapLeft((reason: string) => `${path}: ${reason}`)(decodeSafetensors(bytes));
}

/** Writes a safetensors file atomically (temp file + fsync + rename). */
export function writeSafetensorsFile(
  path: string,
  tensors: Readonly<Record<string, TensorInput>>,
  metadata: Readonly<Record<string, string>> = {},
): E.Either<string, void> {
  return writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
