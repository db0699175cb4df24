/** Shared helpers of the reliability tests: temp dirs, store snapshots, a resync between profiles. */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { NotFoundError } from "../../src/errors.js";
import type { Operator } from "../../src/operators/types.js";
import type { DeviceStorage } from "../../src/storage/device-storage.js";

const dirs: string[] = [];

/** A fresh temp dir, removed by {@link removeTempDirs}. */
export function tempDir(prefix = "tp-rel-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Rejects when `p` takes longer than `ms` (direct operator calls have no time limit of their own). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** The bytes at `key`, or undefined when absent (at most `timeoutMs`). */
export async function readOrUndefined(op: Operator, key: string, timeoutMs = 5000): Promise<Uint8Array | undefined> {
  try {
    return await within(op.read(key), timeoutMs, `read of ${key} in ${op.scheme}`);
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
}

export const same = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a === undefined || b === undefined ? a === b : Buffer.from(a).equals(Buffer.from(b));

/**
 * Brings profile `target` level with profile `source` for `keys`, through the
 * storage's own write path (so it queues behind any write still in flight):
 * copies the stored bytes where they differ, deletes what `source` lacks.
 * This is the library-level resync the outage tests use after a server is back.
 */
export async function resync(
  storage: DeviceStorage,
  source: string,
  target: string,
  keys: Iterable<string>,
): Promise<{ copied: number; deleted: number; alreadyLevel: number }> {
  const src = storage.ops.get(source)?.op;
  const dst = storage.ops.get(target)?.op;
  if (!src || !dst) throw new Error(`resync: no profile ${src ? target : source}`);
  const out = { copied: 0, deleted: 0, alreadyLevel: 0 };
  for (const key of keys) {
    const want = await readOrUndefined(src, key);
    const have = await readOrUndefined(dst, key, 2000);
    if (same(want, have)) out.alreadyLevel++;
    else if (want === undefined) {
      await storage.deleteValue(key, { profiles: [target] });
      out.deleted++;
    } else {
      await storage.saveBytes(key, want, { profiles: [target] });
      out.copied++;
    }
  }
  return out;
}

/** Every regular file under `dir` (relative path -> content as hex, or the error code if unreadable). */
export function treeSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.isFile()) out[relative(dir, full)] = readFileSync(full).toString("hex");
    }
  };
  try {
    if (statSync(dir).isDirectory()) walk(dir);
  } catch {
    // missing: empty snapshot
  }
  return out;
}

/** Every key and its bytes (hex) in a listable operator. */
export async function opSnapshot(op: Operator, keys?: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const k of keys ?? (await op.list())) {
    const b = await readOrUndefined(op, k);
    if (b !== undefined) out[k] = Buffer.from(b).toString("hex");
  }
  return out;
}
