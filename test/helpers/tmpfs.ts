/**
 * A small tmpfs mounted for a test (a real full disk), and filling it. Mounting needs the right to
 * mount; a test without it says so (`why`) rather than passing.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  readonly path: string;
  readonly mounted: boolean;
  /** Why mounting failed ('' when it did not). */
  readonly why: string;
  /** Unmounts and removes it. */
  remove(): void;
}

export function mountTmpfs(prefix: string, size: string): Tmpfs {
  const path = mkdtempSync(join(tmpdir(), prefix));
  let mounted = false;
  let why = '';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path], { stdio: 'pipe' });
    mounted = true;
  } catch (err) {
    why = err instanceof Error ? err.message : String(err);
  }
  return {
    path,
    mounted,
    why,
    remove: () => {
      if (mounted) execFileSync('umount', [path]);
      rmSync(path, { recursive: true, force: true });
    }
  };
}

/** Fills the file system of `dir` with one file until it is full, then frees `spare` bytes; returns its path. */
export function fillDisk(dir: string, spare: number): string {
  const filler = join(dir, 'filler');
  const chunk = Buffer.alloc(16 * 1024, 1);
  writeFileSync(filler, '');
  let size = 0;
  for (;;) {
    try {
      appendFileSync(filler, chunk);
      size += chunk.length;
    } catch {
      truncateSync(filler, Math.max(0, size - spare));
      return filler;
    }
  }
}
