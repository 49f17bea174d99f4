// Crash-safe file and directory writes. A reader must only ever see the old content or the complete new
// content, never a prefix: we write under a temporary name in the same directory (so the final rename stays on
// one file system and is atomic), fsync the data, rename, then fsync the directory so the rename itself
// survives a power cut.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';

/** Marker in temporary names; `isTemporaryName` recognises leftovers of crashed writers by it. */
const TEMP_MARKER = '.tmp-';

/** A fresh temporary sibling name for `target` (hidden, tagged with the pid and randomness). */
export function temporarySibling(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}${TEMP_MARKER}${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** True for names produced by `temporarySibling` (including leftovers of a writer that died mid-write). */
export function isTemporaryName(name: string): boolean {
  return name.startsWith('.') && name.includes(TEMP_MARKER);
}

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));

function fsyncPath(target: string, flags: 'r' | 'r+'): void {
  const fd = fs.openSync(target, flags);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Makes a completed rename/unlink in `dir` durable. Some file systems refuse fsync on directories: harmless. */
export function fsyncDirectory(dir: string): void {
  try {
    fsyncPath(dir, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM') throw error;
  }
}

/** Writes and fsyncs a file at a path that nobody else is using (no rename). */
function writeAndSync(target: string, bytes: Uint8Array | string): void {
  const fd = fs.openSync(target, 'wx');
  try {
    const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
    let written = 0;
    while (written < data.byteLength) written += fs.writeSync(fd, data, written, data.byteLength - written);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Points where a test can stop the process to simulate a crash; production callers pass none. */
export interface CrashPoints {
  /** Called after the temporary file or directory is complete and synced, just before the rename. */
  readonly beforeRename?: (temporaryPath: string, finalPath: string) => void;
}

/**
 * Replaces `target` with `bytes` atomically: readers see the old file or the new one, never a partial write.
 * The parent directory must exist.
 */
export function writeFileAtomic(target: string, bytes: Uint8Array | string, crash: CrashPoints = {}): E.Either<string, void> {
  const temporary = temporarySibling(target);
  try {
    writeAndSync(temporary, bytes);
    crash.beforeRename?.(temporary, target);
    fs.renameSync(temporary, target);
    fsyncDirectory(path.dirname(target));
    return E.right(undefined);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    return E.left(`cannot write ${target} atomically: ${describe(error)}`);
  }
}

/** Writes one file inside a directory being built by `writeDirAtomic` (no rename needed: the dir is private). */
export function writeFileDurable(target: string, bytes: Uint8Array | string): E.Either<string, void> {
  try {
    writeAndSync(target, bytes);
    return E.right(undefined);
  } catch (error) {
    return E.left(`cannot write ${target}: ${describe(error)}`);
  }
}

export interface DirWriteOptions extends CrashPoints {
  /**
   * Replace an existing directory at the final path. The old one is first renamed aside and removed only
   * after the new one is in place, so a crash in between leaves a complete directory under some name.
   */
  readonly replace?: boolean;
}

/**
 * Builds a directory under a temporary sibling name with `fill`, then renames it into place, so the final path
 * either does not exist or holds the complete content. Any failure removes the temporary directory.
 */
export function writeDirAtomic(
  finalDir: string,
  fill: (temporaryDir: string) => E.Either<string, void>,
  options: DirWriteOptions = {},
): E.Either<string, void> {
  const temporary = temporarySibling(finalDir);
  try {
    fs.mkdirSync(temporary);
  } catch (error) {
    return E.left(`cannot create a temporary directory for ${finalDir}: ${describe(error)}`);
  }
  let aside: string | undefined;
  try {
    const filled = fill(temporary);
    if (E.isLeft(filled)) {
      fs.rmSync(temporary, { recursive: true, force: true });
      return filled;
    }
    fsyncDirectory(temporary);
    options.beforeRename?.(temporary, finalDir);
    if (fs.existsSync(finalDir)) {
      if (options.replace !== true) {
        fs.rmSync(temporary, { recursive: true, force: true });
        return E.left(`cannot write directory ${finalDir}: it already exists`);
      }
      aside = temporarySibling(finalDir);
      fs.renameSync(finalDir, aside);
    }
    fs.renameSync(temporary, finalDir);
    fsyncDirectory(path.dirname(finalDir));
    if (aside !== undefined) fs.rmSync(aside, { recursive: true, force: true });
    return E.right(undefined);
  } catch (error) {
    fs.rmSync(temporary, { recursive: true, force: true });
    // Put the old directory back if we moved it aside and the new one never arrived.
    if (aside !== undefined && !fs.existsSync(finalDir) && fs.existsSync(aside)) fs.renameSync(aside, finalDir);
    return E.left(`cannot write directory ${finalDir} atomically: ${describe(error)}`);
  }
}

/**
 * Removes a directory so that it never appears half-deleted under its own name: it is renamed to a temporary
 * name first (atomic), then deleted.
 */
export function removeDirAtomic(dir: string): E.Either<string, void> {
  const aside = temporarySibling(dir);
  try {
    fs.renameSync(dir, aside);
    fsyncDirectory(path.dirname(dir));
    fs.rmSync(aside, { recursive: true, force: true });
    return E.right(undefined);
  } catch (error) {
    return E.left(`cannot remove ${dir}: ${describe(error)}`);
  }
}

/** Free bytes for unprivileged users on the file system holding `target` (or its nearest existing parent). */
export function freeBytes(target: string): number | undefined {
  let dir = path.resolve(target);
  for (;;) {
    try {
      const s = fs.statfsSync(dir);
      return s.bavail * s.bsize;
    } catch {
      const parent = path.dirname(dir);
      if (parent === dir) return undefined;
      dir = parent;
    }
  }
}

/** `cannot write FILE: REASON (N MiB free on that file system)`: what a failed write tells the user. */
export function writeFailure(file: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason = code === 'ENOSPC' ? 'the disk is full (ENOSPC)' : code === 'EDQUOT' ? 'the disk quota is exceeded (EDQUOT)' : describe(error);
  return `cannot write ${file}: ${reason}${freeSpaceNote(path.dirname(file))}`;
}

/** ` (N MiB free on that file system)`, or nothing when it cannot be known. */
export function freeSpaceNote(target: string): string {
  const free = freeBytes(target);
  return free === undefined ? '' : ` (${(free / 2 ** 20).toFixed(1)} MiB free on that file system)`;
}

/**
 * `mkdir -p` one level at a time. Node 20's `mkdirSync(dir, { recursive: true })` loops forever on some
 * paths (e.g. under /proc); this fails with the first level that cannot be created.
 */
export function makeDirectories(dir: string): E.Either<string, void> {
  const missing: string[] = [];
  let cur = path.resolve(dir);
  for (;;) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(cur);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') return E.left(`cannot use ${cur}: ${describe(error)}`);
    }
    if (st !== undefined) {
      if (!st.isDirectory()) return E.left(`${cur} exists and is not a directory`);
      break;
    }
    missing.push(cur);
    const parent = path.dirname(cur);
    if (parent === cur) break;
    cur = parent;
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return E.left(`cannot create directory ${d}: ${describe(error)}`);
    }
  }
  return E.right(undefined);
}
