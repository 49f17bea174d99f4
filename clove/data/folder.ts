// A recursive image-folder dataset: files are listed up front and decoded lazily; files that cannot be read
// or decoded are skipped with one warning each (not per epoch) and counted.
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeImage, DEFAULT_MAX_IMAGE_PIXELS, probeImageSize, unusableSize, type Image } from './image.ts';

const IMAGE_EXTENSION = /\.(png|jpe?g)$/i;

export interface FolderImage {
  readonly index: number;
  readonly path: string;
  readonly image: Image;
}

export interface ImageFolder {
  readonly root: string;
  /** Image files under root (recursively), sorted, so indices are stable across runs. */
  readonly paths: readonly string[];
  /** Decodes file `index`; None when it is corrupt or unreadable (warned about once, then counted). */
  load(index: number): O.Option<Image>;
  /** The decodable images in order, skipping bad files. */
  images(): Generator<FolderImage>;
  /** How many distinct files were found unusable so far. */
  skippedCount(): number;
  skippedPaths(): readonly string[];
}

function listImages(dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) listImages(path, out);
    else if (IMAGE_EXTENSION.test(entry.name) && (entry.isFile() || entry.isSymbolicLink())) out.push(path);
  }
}

export interface FolderOptions {
  /**
   * Check every file when the folder is opened, before any training: read its header and skip (one warning each,
   * naming the file) files that are unreadable, not PNG/JPEG, smaller than 2×2 or over the pixel cap; then decode
   * files in order until one decodes. Without it files are only looked at when loaded.
   */
  readonly index?: { readonly maxPixels?: number };
}

/** The first `bytes` bytes of a file (fewer if it is shorter). */
function readHead(path: string, bytes: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = new Uint8Array(bytes);
    const n = readSync(fd, buf, 0, bytes, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

export function openImageFolder(root: string, warn: (message: string) => void, options: FolderOptions = {}): E.Either<string, ImageFolder> {
  try {
    if (!statSync(root).isDirectory()) return E.left(`${root}: not a directory`);
  } catch (err) {
    return E.left(`${root}: image folder not found (${err instanceof Error ? err.message : String(err)})`);
  }
  const paths: string[] = [];
  try {
    listImages(root, paths);
  } catch (err) {
    return E.left(`${root}: could not list the folder (${err instanceof Error ? err.message : String(err)})`);
  }
  if (paths.length === 0) return E.left(`${root}: no .png, .jpg or .jpeg files in the folder or its subfolders`);
  paths.sort();
  const skipped = new Set<string>();
  const maxPixels = options.index?.maxPixels ?? DEFAULT_MAX_IMAGE_PIXELS;
  if (options.index !== undefined) {
    const found = paths.length;
    const usable = paths.filter((path) => {
      let why: string | undefined;
      try {
        const size = probeImageSize(readHead(path, 1 << 16), path);
        why = E.isLeft(size) ? size.left.slice(path.length + 2) : unusableSize(size.right.width, size.right.height, maxPixels);
      } catch (err) {
        why = `unreadable (${err instanceof Error ? err.message : String(err)})`;
      }
      if (why !== undefined) {
        warn(`skipping ${path}: ${why}`);
        skipped.add(path);
      }
      return why === undefined;
    });
    // Headers can be fine while the rest is not: make sure at least one file decodes before anything is built.
    let decodable = false;
    for (const path of usable) {
      let decoded: E.Either<string, Image>;
      try {
        decoded = decodeImage(new Uint8Array(readFileSync(path)), path, maxPixels);
      } catch (err) {
        decoded = E.left(`${path}: unreadable (${err instanceof Error ? err.message : String(err)})`);
      }
      if (E.isRight(decoded)) {
        decodable = true;
        break;
      }
      warn(`skipping ${decoded.left}`);
      skipped.add(path);
    }
    if (!decodable) return E.left(`${root}: none of its ${found} image files is usable (each is named in a warning above)`);
    paths.splice(0, paths.length, ...usable.filter((p) => !skipped.has(p)));
  }

  const load = (index: number): O.Option<Image> => {
    if (!(Number.isInteger(index) && index >= 0 && index < paths.length)) {
      throw new Error(`ImageFolder.load: index ${index} outside [0, ${paths.length})`);
    }
    const path = paths[index];
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(path));
    } catch (err) {
      if (!skipped.has(path)) warn(`skipping ${path}: unreadable (${err instanceof Error ? err.message : String(err)})`);
      skipped.add(path);
      return O.none;
    }
    const decoded = decodeImage(bytes, path, maxPixels);
    if (E.isLeft(decoded)) {
      if (!skipped.has(path)) warn(`skipping ${decoded.left}`);
      skipped.add(path);
      return O.none;
    }
    return O.some(decoded.right);
  };

  return E.right({
    root,
    paths,
    load,
    *images(): Generator<FolderImage> {
      for (let index = 0; index < paths.length; index++) {
        const image = load(index);
        if (O.isSome(image)) yield { index, path: paths[index], image: image.value };
      }
    },
    skippedCount: () => skipped.size,
    skippedPaths: () => [...skipped].sort(),
  });
}
