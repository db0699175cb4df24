import { NotFoundError } from "../errors.js";
import { validateKey, validatePrefix } from "../keys.js";
import { OpenState } from "./_shared.js";
import type { Operator, OperatorCapabilities, StatResult } from "./types.js";

/** Options of the `memory` / `dashmap` operator. */
export interface MemoryOperatorOptions {
  /**
   * Scheme name reported by the operator (`memory` or `dashmap`); both are a
   * JS `Map`. JS runs one thread, so a `Map` is the concurrent map.
   * @default "memory"
   */
  scheme?: "memory" | "dashmap";
  /** Ignored (the Rust `dashmap` profile has a `root`; nothing is written there). */
  root?: string;
}

interface Entry {
  data: Uint8Array;
  mtime: number;
}

const encoder = new TextEncoder();

const CAPABILITIES: OperatorCapabilities = Object.freeze({
  list: true,
  lastModified: true,
  durable: false,
  shared: false,
  syncRead: true,
});

/**
 * An in-process store backed by a `Map`. Each instance is its own store;
 * values are copied in and out, so callers can never alias stored bytes.
 */
export function memoryOperator(options: MemoryOperatorOptions = {}): Operator {
  const scheme = options.scheme ?? "memory";
  const map = new Map<string, Entry>();
  const state = new OpenState(scheme);

  const readSync = (path: string): Uint8Array | undefined => {
    validateKey(path, scheme);
    state.check(path);
    const e = map.get(path);
    // Zero-copy: readSync's contract is that callers never mutate the result (read() copies).
    return e === undefined ? undefined : e.data;
  };
  const get = (path: string): Entry => {
    validateKey(path, scheme);
    state.check(path);
    const e = map.get(path);
    if (e === undefined) throw new NotFoundError(`Key "${path}" not found in ${scheme}`, { key: path });
    return e;
  };

  const writeSync = (path: string, data: Uint8Array | string, adopt = false): void => {
    validateKey(path, scheme);
    state.check(path);
    // A copy in its own allocation: a Buffer's slice() would be a view, and Buffer.from's pooled
    // slabs would keep the garbage around each cached value alive (2x the payload in RSS).
    map.set(path, {
      data: typeof data === "string" ? encoder.encode(data) : adopt ? data : new Uint8Array(data),
      mtime: Date.now(),
    });
  };

  return {
    scheme,
    capabilities: CAPABILITIES,
    readSync,
    async read(path) {
      return Buffer.from(get(path).data);
    },
    writeSync,
    async write(path, data) {
      writeSync(path, data);
    },
    async stat(path): Promise<StatResult> {
      const e = get(path);
      return { contentLength: e.data.length, lastModified: new Date(e.mtime) };
    },
    async delete(path) {
      validateKey(path, scheme);
      state.check(path);
      map.delete(path);
    },
    async exists(path) {
      validateKey(path, scheme);
      state.check(path);
      return map.has(path);
    },
    async list(prefix) {
      const p = validatePrefix(prefix, scheme);
      state.check();
      const out: string[] = [];
      for (const k of map.keys()) if (k.startsWith(p)) out.push(k);
      return out.sort();
    },
    async close() {
      if (state.close()) map.clear();
    },
  };
}
