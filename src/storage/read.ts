/**
 * The tiered read path: a hit in the fastest tier (synchronous where the
 * backend can answer synchronously, so a hit pays for no promise it does not
 * need), else the fallback through the slower tiers (`fallback.ts`).
 *
 * @module
 */
import { performance } from "node:perf_hooks";
import { decodeStored, recompressStored, storedAsText } from "../codec.js";
import { isCallerError, NotFoundError, PersistenceError, UnavailableError } from "../errors.js";
import { validateKey } from "../keys/index.js";
import type { Logger } from "../logger.js";
import type { StoredValue } from "../operators/types.js";
import { loadChannel, writeBackChannel } from "./channels.js";
import { type Attempt, breakerOpen, Fallback, mismatch, notAsked, notFoundOrWhy } from "./fallback.js";
import type { WriteFence } from "./fence.js";
import { checkConcurrency, forEachLimit } from "./limit.js";
import type { Ranking } from "./ranking.js";
import { BatchedLoads, loadsInBatches } from "./read-batch.js";
import type { Tier } from "./tier.js";
import type { Decoder, LoadOutcome, LoadResult } from "./types.js";

const identity: Decoder<unknown> = (v) => v;
/** What {@link TieredReader.hit} returns when the general path must answer. */
export const NO_HIT: unique symbol = Symbol("no synchronous hit");
/** Keys read together (and decoded) at a time by `loadMany`'s synchronous pass. */
const SYNC_CHUNK = 256;
/** One synchronous hit in this many is timed for live ranking (timing every hit would cost more than the hit). */
const SYNC_SAMPLE_MASK = 15;

export class TieredReader {
  readonly #ranking: Ranking<Tier>;
  readonly #fence: WriteFence;
  readonly #logger: Logger;
  readonly #fallback: Fallback;
  readonly #batched: BatchedLoads;
  #syncReads = 0;

  constructor(ranking: Ranking<Tier>, fence: WriteFence, logger: Logger) {
    this.#ranking = ranking;
    this.#fence = fence;
    this.#logger = logger;
    this.#fallback = new Fallback(ranking, fence, logger);
    this.#batched = new BatchedLoads(ranking, fence, logger, (p) => this.#fallback.track(p));
  }

  /** Resolves when every write-back scheduled so far is done. */
  flush(): Promise<void> {
    return this.#fallback.flush();
  }

  load(key: string, decode?: Decoder<unknown>): Promise<LoadResult<unknown>> {
    const dec = decode ?? identity;
    const fastest = this.#ranking.readFastest;
    if (fastest === undefined) return Promise.reject(noTrustedTier(key, this.#ranking));
    if (!fastest.available())
      return this.#after(fastest, key, dec, { kind: "failed", error: breakerOpen(fastest.name) });
    if (!fastest.readsSync) return this.#readAsync(fastest, key, dec);
    let stored: StoredValue | undefined;
    try {
      if (this.#ranking.live && (++this.#syncReads & SYNC_SAMPLE_MASK) === 0) {
        const t0 = performance.now();
        stored = fastest.readStoredSync(key);
        fastest.observe((performance.now() - t0) * 1000);
      } else stored = fastest.readStoredSync(key);
    } catch (err) {
      // A bug (not a PersistenceError) or the caller's error goes straight back; a backend failure falls back.
      if (!(err instanceof PersistenceError) || isCallerError(err)) return Promise.reject(err);
      return this.#after(fastest, key, dec, { kind: "failed", error: err });
    }
    if (stored === undefined) {
      fastest.counters.misses++;
      return this.#syncFallback(fastest, key, dec) ?? this.#after(fastest, key, dec, { kind: "missing" });
    }
    return this.#checkExpiry(fastest, key, stored, dec);
  }

  /**
   * A plain synchronous hit in the fastest tier, decoded (counted as a hit),
   * or {@link NO_HIT} when anything else is needed (a miss, a TTL, a failure,
   * a value that does not decode, an async decoder, tracing): then `load`
   * gives the answer. Lets a caller that wants only the value skip a promise.
   */
  hit(key: string, dec: Decoder<unknown>): unknown {
    const fastest = this.#ranking.readFastest;
    if (fastest === undefined || !fastest.readsSync || loadChannel.hasSubscribers || !fastest.available()) {
      return NO_HIT;
    }
    let stored: StoredValue | undefined;
    try {
      stored = fastest.readStoredSync(key);
    } catch {
      return NO_HIT;
    }
    return stored === undefined ? NO_HIT : decodeHit(fastest, key, stored, dec);
  }

  /**
   * Many loads at once, each with the result `load` would give (or its error),
   * in the order of `keys`. Hits in a synchronous fastest tier are read in one
   * pass (batched where the driver can), decoded and settled without a promise
   * each; every other key (a miss, a TTL to check, a value that does not
   * decode, an async decoder, a failure) takes the general path, at most
   * `concurrency` at a time. Traced loads go one by one, as `load` traces them.
   */
  async loadMany(
    keys: readonly string[],
    decode: Decoder<unknown> | undefined,
    concurrency: number,
  ): Promise<LoadOutcome<unknown>[]> {
    const dec = decode ?? identity;
    const out = new Array<LoadOutcome<unknown>>(keys.length);
    const general: [number, boolean][] = [];
    const untrusted = this.#ranking.readOrder.length === 0;
    if (loadChannel.hasSubscribers || untrusted) for (let i = 0; i < keys.length; i++) general.push([i, false]);
    else {
      this.#syncPass(keys, dec, out, general);
      await this.#batchPass(keys, dec, out, general);
    }
    const fastest = this.#ranking.readFastest;
    await forEachLimit(general, concurrency, async ([i, missed]) => {
      const key = keys[i]!;
      try {
        const r = await (missed
          ? (this.#syncFallback(fastest, key, dec) ?? this.#after(fastest, key, dec, { kind: "missing" }))
          : loadChannel.hasSubscribers
            ? loadChannel.tracePromise(() => this.load(key, dec), { key })
            : this.load(key, dec));
        out[i] = { ok: true, ...r };
      } catch (err) {
        out[i] = { ok: false, error: err as Error };
      }
    });
    return out;
  }

  /** `loadMany`'s batched pass (see `read-batch.ts`): what the synchronous pass left; `general` keeps the rest. */
  async #batchPass(
    keys: readonly string[],
    dec: Decoder<unknown>,
    out: LoadOutcome<unknown>[],
    general: [number, boolean][],
  ) {
    const fastest = this.#ranking.readFastest;
    const fastestAsked = fastest.readsSync;
    if (!fastestAsked && !loadsInBatches(fastest)) return;
    const pending: number[] = [];
    const kept: [number, boolean][] = [];
    // Misses of a synchronous fastest tier (or every key of a network one); the rest take the one-key path.
    for (const g of general) {
      if (g[1] === fastestAsked) pending.push(g[0]);
      else kept.push(g);
    }
    if (pending.length < 2) return;
    const left = await this.#batched.load(keys, pending, dec, out, fastestAsked);
    general.length = 0;
    general.push(...kept, ...left.map((i): [number, boolean] => [i, fastestAsked]));
  }

  /** `loadMany`'s synchronous pass: settles hits in `out`, leaves the rest in `general` ([index, missed]). */
  #syncPass(keys: readonly string[], dec: Decoder<unknown>, out: LoadOutcome<unknown>[], general: [number, boolean][]) {
    const fastest = this.#ranking.readFastest;
    const op = fastest.op;
    const st = fastest.counters;
    const rest: number[] = [];
    // A bad key is its own outcome (as load would reject it); the others are read together.
    const at: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      try {
        validateKey(keys[i]);
        at.push(i);
      } catch (err) {
        out[i] = { ok: false, error: err as Error };
      }
    }
    const canSync = op.readManyStoredSync !== undefined || fastest.readsSync;
    // Chunk by chunk, so the texts read are parsed and dropped while young (a whole batch held
    // at once would survive young-generation GCs and be copied: 30% of the time at 10,000 keys).
    for (let c = 0; c < at.length; c += SYNC_CHUNK) {
      const idx = at.slice(c, c + SYNC_CHUNK);
      let stored: (StoredValue | undefined)[] | undefined;
      if (canSync && fastest.available()) {
        const chunk = idx.map((i) => keys[i]!);
        try {
          stored = op.readManyStoredSync ? op.readManyStoredSync(chunk) : chunk.map((k) => fastest.readStoredSync(k));
        } catch {
          // A failing tier: these keys take the general path, which falls back and says why.
        }
      }
      if (stored === undefined) {
        rest.push(...idx);
        continue;
      }
      for (let j = 0; j < idx.length; j++) {
        const i = idx[j]!;
        const v = stored[j];
        if (v === undefined) {
          st.misses++;
          general.push([i, true]);
          continue;
        }
        const value = decodeHit(fastest, keys[i]!, v, dec);
        if (value === NO_HIT) rest.push(i);
        else out[i] = { ok: true, value, profile: fastest.name, writeBack: false };
      }
    }
    for (const i of rest) general.push([i, false]);
  }

  /**
   * The synchronous fallback of a two-tier in-process setup (memory over
   * sqlite): the second tier is read, decoded and written back into the first
   * right here, without promises, queues or a background task. Taken only
   * when nothing else is going on for the key (no flight, no queued or
   * in-progress write, no TTL, no tracing, no time limit or retries);
   * otherwise, or when anything is unusual (an error, an undecodable value, an
   * async validator), returns undefined and the general path takes over.
   */
  #syncFallback(fastest: Tier, key: string, dec: Decoder<unknown>): Promise<LoadResult<unknown>> | undefined {
    const slower = this.#ranking.readSlower;
    const next = slower[0];
    if (
      slower.length !== 1 ||
      this.#ranking.standby.length !== 0 ||
      !next?.readsSync ||
      !fastest.op.writeSync ||
      !next.syncSafe(key) ||
      !fastest.syncSafe(key) ||
      this.#fence.reading(key) ||
      this.#fence.writing(key) ||
      !next.available() ||
      writeBackChannel.hasSubscribers
    ) {
      return undefined;
    }
    let stored: StoredValue | undefined;
    let value: unknown;
    try {
      stored = next.readStoredSync(key);
      if (stored === undefined) {
        next.counters.misses++;
        return Promise.reject(
          new NotFoundError(`"${key}" not found in any profile (${fastest.name}, ${next.name})`, { key }),
        );
      }
      stored = storedAsText(stored);
      value = dec(decodeStored(stored.data, { profile: next.name, key }));
    } catch {
      return undefined;
    }
    if (value instanceof Promise) return undefined;
    next.counters.fallbacks++;
    next.counters.bytesRead += stored.size;
    try {
      const back = recompressStored(stored);
      // The bytes were read for this load alone: the fastest tier may keep them.
      fastest.writeSync(key, back.data, back.size, true);
      fastest.counters.writeBacks++;
    } catch (err) {
      this.#logger.warn({ profile: fastest.name, key, err }, "write-back failed");
    }
    return Promise.resolve({ value, profile: next.name, writeBack: true });
  }

  async #readAsync(fastest: Tier, key: string, dec: Decoder<unknown>): Promise<LoadResult<unknown>> {
    let stored: StoredValue;
    try {
      const data = await fastest.call("read", key, () => fastest.op.read(key));
      stored = { data, size: data.length };
    } catch (err) {
      if (err instanceof NotFoundError) {
        fastest.counters.misses++;
        return this.#after(fastest, key, dec, { kind: "missing" });
      }
      if (isCallerError(err)) throw err;
      return this.#after(fastest, key, dec, { kind: "failed", error: err as Error });
    }
    return this.#checkExpiry(fastest, key, stored, dec);
  }

  /** A tier-0 hit that has expired is a miss (and is purged in the background). */
  #checkExpiry(fastest: Tier, key: string, stored: StoredValue, dec: Decoder<unknown>): Promise<LoadResult<unknown>> {
    const at = fastest.expiresAt(key);
    if (at === undefined) return this.#decodeFastest(fastest, key, stored, dec);
    const decide = (t: number | undefined): Promise<LoadResult<unknown>> => {
      if (t === undefined || t > Date.now()) return this.#decodeFastest(fastest, key, stored, dec);
      fastest.counters.misses++;
      fastest.purge(key);
      return this.#after(fastest, key, dec, { kind: "missing" });
    };
    return typeof at === "number"
      ? decide(at)
      : at.then(decide, (err) => this.#after(fastest, key, dec, { kind: "failed", error: err }));
  }

  #decodeFastest(fastest: Tier, key: string, stored: StoredValue, dec: Decoder<unknown>): Promise<LoadResult<unknown>> {
    const st = fastest.counters;
    let value: unknown;
    try {
      const parsed = decodeStored(stored.data, { profile: fastest.name, key });
      try {
        value = dec(parsed);
      } catch (err) {
        throw mismatch(fastest.name, key, err);
      }
    } catch (err) {
      return this.#after(fastest, key, dec, { kind: "failed", error: err as Error });
    }
    if (value instanceof Promise) {
      return value.then(
        (v) => {
          st.hits++;
          st.bytesRead += stored.size;
          return { value: v, profile: fastest.name, writeBack: false };
        },
        (err) => this.#after(fastest, key, dec, { kind: "failed", error: mismatch(fastest.name, key, err) }),
      );
    }
    st.hits++;
    st.bytesRead += stored.size;
    return Promise.resolve({ value, profile: fastest.name, writeBack: false });
  }

  /**
   * Whether any tier holds an unexpired value under `key`, asking the fastest first.
   * @throws UnavailableError if no tier asked has it and a durable tier could not be asked.
   */
  async exists(key: string): Promise<boolean> {
    const attempts: [Tier, Attempt][] = [];
    if (this.#ranking.readOrder.length === 0) throw noTrustedTier(key, this.#ranking);
    for (const tier of this.#ranking.readOrder) {
      try {
        if (await tier.exists(key)) return true;
        attempts.push([tier, { kind: "missing" }]);
      } catch (err) {
        if (isCallerError(err)) throw err;
        attempts.push([tier, { kind: "failed", error: err as Error }]);
      }
    }
    for (const tier of this.#ranking.standby) attempts.push([tier, { kind: "failed", error: notAsked(tier) }]);
    const err = notFoundOrWhy(key, attempts);
    if (err instanceof NotFoundError) return false;
    throw err;
  }

  #after(tried: Tier, key: string, dec: Decoder<unknown>, first: Attempt): Promise<LoadResult<unknown>> {
    return this.#fallback.load(tried, key, dec, first);
  }
}

/** Every ranked tier is local and distrusted after a coherence gap: nothing can be read coherently. */
function noTrustedTier(key: string, ranking: Ranking<Tier>): UnavailableError {
  const why = ranking.order.map((t) => ({
    profile: t.name,
    reason: "local: not trusted until the coherence bus resyncs",
  }));
  return new UnavailableError(
    `"${key}" cannot be read: no shared profile is up, and the local ones (${why.map((w) => w.profile).join(", ")}) are not trusted until the coherence bus reconnects and resyncs`,
    why,
    { key },
  );
}

/** A stored tier-0 value decoded synchronously and counted as a hit, or NO_HIT when the general path must decide. */
function decodeHit(fastest: Tier, key: string, stored: StoredValue, dec: Decoder<unknown>): unknown {
  if (fastest.expiresAt(key) !== undefined) return NO_HIT;
  let value: unknown;
  try {
    value = dec(decodeStored(stored.data, { profile: fastest.name, key }));
  } catch {
    return NO_HIT;
  }
  if (value instanceof Promise) {
    value.catch(() => {}); // decoded again on the general path
    return NO_HIT;
  }
  fastest.counters.hits++;
  fastest.counters.bytesRead += stored.size;
  return value;
}

/** Checks `loadValues`' arguments; returns the concurrency. @throws PersistenceError naming what is wrong. */
export function checkLoadMany(keys: unknown, decode: unknown, concurrency: number | undefined): number {
  const n = checkConcurrency(concurrency ?? 16);
  if (!Array.isArray(keys))
    throw new PersistenceError(`Expected \`keys\` to be an array of strings, got ${typeof keys}`);
  if (decode !== undefined && typeof decode !== "function") throw badDecoder(decode);
  return n;
}

/** A schema object passed where a decoder function goes is the usual mistake: the error says how to fix it. */
export function badDecoder(decode: unknown): PersistenceError {
  const what = decode === null ? "null" : typeof decode;
  const schema = typeof decode === "object" && decode !== null && "~standard" in decode;
  return new PersistenceError(
    `Expected \`decode\` to be a function (json) => value, got ${schema ? "a Standard Schema object: wrap it with schemaDecoder(schema)" : what}`,
  );
}
