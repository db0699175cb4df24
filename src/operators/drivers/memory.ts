import { NotFoundError } from "../../errors.js";
import { validateKey, validatePrefix } from "../../keys/index.js";
import type { Operator, OperatorCapabilities, StatResult, StoredValue } from "../types.js";
import { OpenState } from "./_shared.js";

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
  /** Bytes, or well-formed text standing for its UTF-8 bytes (a saved JSON value, kept as text). */
  readonly data: Uint8Array | string;
  /** Byte length; counted on first use for text (-1 until then). */
  size: number;
  readonly mtime: number;
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

  const sized = (e: Entry): Entry => {
    if (e.size < 0) e.size = Buffer.byteLength(e.data as string, "utf8");
    return e;
  };
  const readStoredSync = (path: string): StoredValue | undefined => {
    validateKey(path, scheme);
    state.check(path);
    const e = map.get(path);
    // Zero-copy: the contract is that callers never mutate the result.
    return e === undefined ? undefined : sized(e);
  };
  const readSync = (path: string): Uint8Array | undefined => {
    const e = readStoredSync(path);
    if (e === undefined) return undefined;
    return typeof e.data === "string" ? encoder.encode(e.data) : e.data;
  };
  const get = (path: string): Entry => {
    validateKey(path, scheme);
    state.check(path);
    const e = map.get(path);
    if (e === undefined) throw new NotFoundError(`Key "${path}" not found in ${scheme}`, { key: path });
    return sized(e);
  };

  const writeSync = (path: string, data: Uint8Array | string, adopt = false): void => {
    validateKey(path, scheme);
    state.check(path);
    let stored: Uint8Array | string;
    if (typeof data === "string") {
      // Text is kept as text (a JS string is as compact as its UTF-8 for ASCII, and a load
      // parses it without decoding). A lone surrogate has no UTF-8 form: encode it (U+FFFD).
      stored = data.isWellFormed() ? data : encoder.encode(data);
    } else {
      // A copy in its own allocation: a Buffer's slice() would be a view, and Buffer.from's pooled
      // slabs would keep the garbage around each cached value alive (2x the payload in RSS).
      stored = adopt ? data : new Uint8Array(data);
    }
    map.set(path, { data: stored, size: typeof stored === "string" ? -1 : stored.length, mtime: Date.now() });
  };

  return {
    scheme,
    capabilities: CAPABILITIES,
    readSync,
    readStoredSync,
    async read(path) {
      const { data } = get(path);
      return typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
    },
    writeSync,
    async write(path, data) {
      writeSync(path, data);
    },
    async stat(path): Promise<StatResult> {
      const e = get(path);
      return { contentLength: e.size, lastModified: new Date(e.mtime) };
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
