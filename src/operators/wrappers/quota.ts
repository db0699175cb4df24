import { storedSize } from "../../codec.js";
import { ProfileError, QuotaExceededError } from "../../errors.js";
import { isReservedKey, validateKey } from "../../keys/index.js";
import type { Operator } from "../types.js";

/** Options of {@link quotaOperator}. */
export interface QuotaOptions {
  /** Largest total of stored bytes. */
  maxSize?: number | undefined;
  /** Largest number of keys. */
  maxItems?: number | undefined;
  /**
   * `lru`: evict least-recently-used entries to make room (for caches);
   * `reject`: refuse the write with `QuotaExceededError` (for durable stores).
   * @default "lru" when the operator is not durable, else "reject"
   */
  policy?: "lru" | "reject";
  /** Profile name for messages. */
  profile?: string;
}

/**
 * Enforces a size and/or item quota on an operator. Existing content is
 * counted at start where the operator can list; an `lru` quota on one that
 * cannot (redis) counts from start-up. Usage is tracked in this process:
 * writes by other processes are not seen.
 */
export async function quotaOperator(inner: Operator, options: QuotaOptions): Promise<Operator> {
  const profile = options.profile ?? inner.scheme;
  const { maxSize, maxItems } = options;
  const policy = options.policy ?? (inner.capabilities.durable ? "reject" : "lru");
  // Key -> stored size, in recency order (least recently used first).
  const sizes = new Map<string, number>();
  let bytes = 0;
  let evictions = 0;
  if (inner.capabilities.list) {
    for (const key of await inner.list()) {
      if (isReservedKey(key)) continue;
      const { contentLength } = await inner.stat(key);
      sizes.set(key, contentLength);
      bytes += contentLength;
    }
  } else if (policy === "reject" && (inner.capabilities.durable || inner.capabilities.shared)) {
    throw new ProfileError(
      `profiles.${profile}: a rejecting quota (max_size / max_items) needs a backend that can list its keys to count what it holds; ${inner.scheme} cannot (with quota_policy = "lru" it counts what this process writes)`,
      { profile },
    );
  }

  const touch = (key: string) => {
    const n = sizes.get(key);
    if (n !== undefined) {
      sizes.delete(key);
      sizes.set(key, n);
    }
  };
  const over = (extraBytes: number, extraItems: number) =>
    (maxSize !== undefined && bytes + extraBytes > maxSize) ||
    (maxItems !== undefined && sizes.size + extraItems > maxItems);
  const describe = () =>
    [
      maxSize !== undefined ? `${bytes}/${maxSize} bytes` : "",
      maxItems !== undefined ? `${sizes.size}/${maxItems} items` : "",
    ]
      .filter(Boolean)
      .join(", ");

  const self: Operator = {
    scheme: inner.scheme,
    capabilities: inner.capabilities,
    ...(inner.changeFeed && { changeFeed: inner.changeFeed }),
    async read(key) {
      const v = await inner.read(key);
      touch(key);
      return v;
    },
    async write(key, data) {
      // A hostile key is the inner operator's InvalidKeyError, before any counting or eviction.
      if (isReservedKey(validateKey(key, profile))) return inner.write(key, data);
      const size = storedSize(data);
      const old = sizes.get(key);
      if ((maxSize !== undefined && size > maxSize) || maxItems === 0) {
        throw new QuotaExceededError(
          `Value of "${key}" (${size} bytes) can never fit the quota of profile "${profile}" (${describe()})`,
          {
            profile,
            key,
          },
        );
      }
      // Count as if the old value were gone; reserve before awaiting so concurrent writes see it.
      if (old !== undefined) {
        sizes.delete(key);
        bytes -= old;
      }
      const victims: [string, number][] = [];
      if (policy === "reject") {
        if (over(size, 1)) {
          if (old !== undefined) {
            sizes.set(key, old);
            bytes += old;
          }
          throw new QuotaExceededError(
            `Write of "${key}" (${size} bytes) refused: profile "${profile}" is at its quota (${describe()})`,
            { profile, key },
          );
        }
      } else {
        for (const [k, n] of sizes) {
          if (!over(size, 1)) break;
          victims.push([k, n]);
          sizes.delete(k);
          bytes -= n;
        }
      }
      sizes.set(key, size);
      bytes += size;
      try {
        for (const [k] of victims) await inner.delete(k);
        evictions += victims.length;
        await inner.write(key, data);
      } catch (err) {
        // The write failed: the store holds the old value (if any), and evicted entries may be gone.
        sizes.delete(key);
        bytes -= size;
        if (old !== undefined && (await inner.exists(key).catch(() => false))) {
          sizes.set(key, old);
          bytes += old;
        }
        throw err;
      }
    },
    stat: (key) => inner.stat(key),
    async delete(key) {
      await inner.delete(key);
      const n = sizes.get(key);
      if (n !== undefined) {
        sizes.delete(key);
        bytes -= n;
      }
    },
    exists: (key) => inner.exists(key),
    list: (prefix) => inner.list(prefix),
    close: () => inner.close(),
    usage: () => ({ items: sizes.size, bytes, maxItems, maxSize, policy, evictions }),
    ...(inner.reset && { reset: () => inner.reset?.() }),
  };
  // Synchronous reads, where the inner operator has them, count as uses (LRU order).
  const touching = <V>(read: ((key: string) => V | undefined) | undefined) =>
    read &&
    ((key: string) => {
      const v = read.call(inner, key);
      if (v !== undefined) touch(key);
      return v;
    });
  // Batched reads count as uses too; digests and listings are not uses. A wrapper that dropped them
  // would keep the inner operator's `batchSize` and `digest` capabilities without the calls behind them.
  const touchingMany = <V>(readMany: ((keys: readonly string[]) => V[]) | undefined) =>
    readMany &&
    ((keys: readonly string[]) => {
      const out = readMany.call(inner, keys);
      out.forEach((v, i) => {
        if (v !== undefined) touch(keys[i]!);
      });
      return out;
    });
  const touchingManyAsync = <V>(readMany: ((keys: readonly string[]) => Promise<V[]>) | undefined) =>
    readMany &&
    (async (keys: readonly string[]) => {
      const out = await readMany.call(inner, keys);
      out.forEach((v, i) => {
        if (v !== undefined) touch(keys[i]!);
      });
      return out;
    });
  self.readMany = touchingManyAsync(inner.readMany);
  self.readManyStored = touchingManyAsync(inner.readManyStored);
  self.readManyStoredSync = touchingMany(inner.readManyStoredSync);
  if (inner.digestMany) self.digestMany = inner.digestMany.bind(inner);
  if (inner.listDigests) self.listDigests = inner.listDigests.bind(inner);
  if (inner.announceWrites) self.announceWrites = inner.announceWrites.bind(inner);
  self.readSync = touching(inner.readSync);
  self.readStoredSync = touching(inner.readStoredSync);
  return self;
}

/** Parses a size like `1048576`, `64KiB`, `10MB`, `1 GiB` into bytes. */
export function parseSize(text: string, where: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m)
    throw new ProfileError(`${where}: expected a size such as 1048576, 64KiB or 10MB, got ${JSON.stringify(text)}`);
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as "" | "k"]!;
  return Math.floor(Number(m[1]) * unit);
}
