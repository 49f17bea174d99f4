// A recursive image-folder dataset: files are listed up front and decoded lazily; files that cannot be read
// or decoded are skipped with one warning each (not per epoch) and counted.
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeImage, type Image } from './image.ts';

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

export function openImageFolder(root: string, warn: (message: string) => void): E.Either<string, ImageFolder> {
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
    const decoded = decodeImage(bytes, path);
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
