// 8-bit images (HWC, row-major) and PNG/JPEG decoding. Decoding is a boundary: bad bytes become a Left
// naming the file, never an exception.
import * as E from 'fp-ts/lib/Either.js';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';

export interface Image {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3;
  /** height × width × channels bytes, row-major, channels interleaved. */
  readonly data: Uint8Array;
}

/** Programmer-error check for images built in code (decoded images are valid by construction). */
export function assertImage(img: Image, what: string): void {
  const ok =
    Number.isInteger(img.width) && img.width > 0 && Number.isInteger(img.height) && img.height > 0 &&
    (img.channels === 1 || img.channels === 3) && img.data.length === img.width * img.height * img.channels;
  if (!ok) {
    throw new Error(
      `${what}: invalid image ${img.width}x${img.height}x${img.channels} with ${img.data.length} bytes`,
    );
  }
}

const isPng = (b: Uint8Array): boolean =>
  b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
const isJpeg = (b: Uint8Array): boolean => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Keep the first `keep` of every `stride` bytes (drops alpha, or reduces replicated grey to one channel). */
function takeChannels(src: Uint8Array, pixels: number, stride: number, keep: number): Uint8Array {
  const out = new Uint8Array(pixels * keep);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < keep; c++) out[p * keep + c] = src[p * stride + c];
  }
  return out;
}

function decodePng(bytes: Uint8Array, path: string): E.Either<string, Image> {
  try {
    // pngjs always returns 8-bit RGBA (16-bit input is rescaled, palettes expanded, grey replicated).
    const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    const grey = png.colorType === 0 || png.colorType === 4;
    const pixels = png.width * png.height;
    return E.right({
      width: png.width,
      height: png.height,
      channels: grey ? 1 : 3,
      data: takeChannels(png.data, pixels, 4, grey ? 1 : 3),
    });
  } catch (err) {
    return E.left(`${path}: not a readable PNG (${errorText(err)})`);
  }
}

/** Number of colour components from the JPEG frame header (SOFn), or undefined if none is found. */
function jpegComponentCount(b: Uint8Array): number | undefined {
  let pos = 2;
  while (pos + 4 <= b.length) {
    if (b[pos] !== 0xff) return undefined;
    const marker = b[pos + 1];
    if (marker === 0xff) {
      pos += 1; // fill byte
      continue;
    }
    const length = (b[pos + 2] << 8) | b[pos + 3];
    const isFrameHeader = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrameHeader) return pos + 9 < b.length ? b[pos + 9] : undefined;
    if (marker === 0xda || marker === 0xd9) return undefined; // scan data before any frame header
    pos += 2 + length;
  }
  return undefined;
}

function decodeJpeg(bytes: Uint8Array, path: string): E.Either<string, Image> {
  try {
    const decoded = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
    const pixels = decoded.width * decoded.height;
    if (pixels === 0 || decoded.data.length !== pixels * 3) {
      return E.left(`${path}: JPEG decoded to ${decoded.width}x${decoded.height} with ${decoded.data.length} bytes`);
    }
    const grey = jpegComponentCount(bytes) === 1;
    return E.right({
      width: decoded.width,
      height: decoded.height,
      channels: grey ? 1 : 3,
      data: grey ? takeChannels(decoded.data, pixels, 3, 1) : decoded.data,
    });
  } catch (err) {
    return E.left(`${path}: not a readable JPEG (${errorText(err)})`);
  }
}

/**
 * The default cap on decoded pixels (50 megapixels, ~200 MB while decoding): a small compressed file can
 * declare a huge image (a decompression bomb), so sizes are read from the header and checked before decoding.
 * `clove pretrain --max-image-pixels N` overrides it.
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 50_000_000;

/** Smallest usable side: view coordinates divide by W−1 and H−1. */
export const MIN_IMAGE_SIDE = 2;

/** Width and height from a PNG (IHDR) or JPEG (SOFn) header, without decoding; Left names the file. */
export function probeImageSize(head: Uint8Array, pathForMessages: string): E.Either<string, { width: number; height: number }> {
  if (isPng(head)) {
    // Signature (8), IHDR length (4), 'IHDR' (4), width (4), height (4).
    if (head.length < 24 || head[12] !== 0x49 || head[13] !== 0x48 || head[14] !== 0x44 || head[15] !== 0x52) {
      return E.left(`${pathForMessages}: not a readable PNG (no IHDR header)`);
    }
    const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
    return E.right({ width: dv.getUint32(16), height: dv.getUint32(20) });
  }
  if (isJpeg(head)) {
    let pos = 2;
    while (pos + 9 <= head.length) {
      if (head[pos] !== 0xff) break;
      const marker = head[pos + 1];
      if (marker === 0xff) {
        pos += 1;
        continue;
      }
      const isFrameHeader = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
      if (isFrameHeader) return E.right({ height: (head[pos + 5] << 8) | head[pos + 6], width: (head[pos + 7] << 8) | head[pos + 8] });
      if (marker === 0xda || marker === 0xd9) break;
      pos += 2 + ((head[pos + 2] << 8) | head[pos + 3]);
    }
    return E.left(`${pathForMessages}: not a readable JPEG (no frame header in its first ${head.length} bytes)`);
  }
  const start = Array.from(head.subarray(0, 4), (v) => v.toString(16).padStart(2, '0')).join(' ');
  return E.left(`${pathForMessages}: neither PNG nor JPEG (starts with [${start}])`);
}

/** Why an image of this size cannot be used (too small for view coordinates, or over the pixel cap), if it cannot. */
export function unusableSize(width: number, height: number, maxPixels: number): string | undefined {
  if (width < MIN_IMAGE_SIDE || height < MIN_IMAGE_SIDE) return `${width}×${height} is too small (views need at least ${MIN_IMAGE_SIDE}×${MIN_IMAGE_SIDE} pixels)`;
  if (width * height > maxPixels) {
    return `${width}×${height} = ${(width * height / 1e6).toFixed(1)} megapixels is over the cap of ${(maxPixels / 1e6).toFixed(1)} (a decompression bomb?; raise it with --max-image-pixels)`;
  }
  return undefined;
}

/**
 * Decode PNG or JPEG bytes (format from the signature, not the file name). Grey inputs give 1 channel, colour
 * inputs 3; an alpha channel is dropped (not composited), so transparent pixels keep their stored colour.
 */
export function decodeImage(bytes: Uint8Array, pathForMessages: string, maxPixels: number = DEFAULT_MAX_IMAGE_PIXELS): E.Either<string, Image> {
  const size = probeImageSize(bytes.subarray(0, 1 << 16), pathForMessages);
  if (E.isRight(size)) {
    const why = unusableSize(size.right.width, size.right.height, maxPixels);
    if (why !== undefined && size.right.width * size.right.height > maxPixels) return E.left(`${pathForMessages}: ${why}`);
  }
  if (isPng(bytes)) return decodePng(bytes, pathForMessages);
  if (isJpeg(bytes)) return decodeJpeg(bytes, pathForMessages);
  const head = Array.from(bytes.subarray(0, 4), (v) => v.toString(16).padStart(2, '0')).join(' ');
  return E.left(`${pathForMessages}: neither PNG nor JPEG (${bytes.length} bytes, starts with [${head}])`);
}

/** Lossless PNG: grey images as colour type 0, RGB as colour type 2. */
export function encodePng(img: Image): Uint8Array {
  assertImage(img, 'encodePng');
  const pixels = img.width * img.height;
  const rgba = Buffer.alloc(pixels * 4);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) rgba[p * 4 + c] = img.data[p * img.channels + (img.channels === 1 ? 0 : c)];
    rgba[p * 4 + 3] = 255;
  }
  const png = new PNG({ width: img.width, height: img.height });
  png.data = rgba;
  const out = PNG.sync.write(png, { colorType: img.channels === 1 ? 0 : 2 });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
