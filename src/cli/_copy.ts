/** Copying stored bytes between profiles as they are (compressed or not), for migrate and repair. */
import type { ProfileEntry } from "../device-storage.js";
import { BackendError, NotFoundError } from "../errors.js";
import { call } from "./_run.js";

const ATTEMPTS = 3;

/** Whether retrying may help (a timeout, a rate limit, a dropped connection). */
export function isTransient(err: unknown): boolean {
  return err instanceof BackendError && err.transient;
}

/**
 * Reads `key` from `src` and writes the same bytes to `dst`, retrying
 * transient failures twice. Returns the number of bytes copied, or
 * `undefined` if the key vanished from the source in the meantime.
 */
export async function copyRaw(src: ProfileEntry, dst: ProfileEntry, key: string): Promise<number | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      let bytes: Uint8Array;
      try {
        bytes = await call(src, "read", key, () => src.op.read(key));
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
      await call(dst, "write", key, () => dst.op.write(key, bytes));
      return bytes.length;
    } catch (err) {
      if (attempt >= ATTEMPTS || !isTransient(err)) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

/** Reads `key` from a profile: its bytes, or `undefined` when absent. Transient failures are retried. */
export async function readRaw(e: ProfileEntry, key: string): Promise<Uint8Array | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(e, "read", key, () => e.op.read(key));
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      if (attempt >= ATTEMPTS || !isTransient(err)) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}
