/**
 * The tiered read path: a hit in the fastest profile, else a fallback through
 * the slower ones in speed order, then a background write-back into the
 * fastest. Split in three small parts: `load` (tier 0, synchronous where the
 * operator can), `#fallback` (shared by concurrent loads of one key) and
 * `#writeBack` (queued per key behind any newer write).
 */

import { performance } from "node:perf_hooks";
import { traced, writeBackChannel } from "./_channels.js";
import { forEachLimit } from "./_limit.js";
import { decodeStored, recompressStored } from "./codec.js";
import type { ProfileStats } from "./device-storage.js";
import { BackendError, DeserializeError, NotFoundError, PersistenceError } from "./errors.js";
import { validateKey } from "./keys.js";
import type { Logger } from "./logger.js";
import type { Operator, StoredValue } from "./operators/types.js";

/**
 * Turns parsed JSON into the caller's type, or throws (any error) when the
 * value does not fit: a schema mismatch is treated like a JSON error.
 * May return a promise (async Standard Schema validators).
 */
export type Decoder<T> = (json: unknown) => T | Promise<T>;

interface Entry {
  readonly name: string;
  readonly op: Operator;
}

type Stats = Omit<ProfileStats, "usage">;

/** What a load resolves to. */
export interface Loaded {
  value: unknown;
  profile: string;
  writeBack: boolean;
}

/** One key's outcome in a load of many keys. */
export type LoadOutcome<T> = { ok: true; value: T; profile: string; writeBack: boolean } | { ok: false; error: Error };

export interface TieredReaderDeps<E extends Entry> {
  ranked: readonly E[];
  logger: Logger;
  stats(name: string): Stats;
  /** One backend call under the profile's time limit and retry policy. */
  call<T>(entry: E, what: string, key: string, fn: () => Promise<T>): Promise<T>;
  /** As `call`, but run after every earlier queued write of (entry, key). */
  queued<T>(entry: E, what: string, key: string, fn: () => Promise<T>): Promise<T>;
  writeInProgress(key: string): boolean;
  /** Whether reads may go to this profile now (its circuit breaker is not open). */
  available(entry: E): boolean;
  /** A sampled latency of a synchronous tier-0 read, in µs (live ranking). */
  observeSync?(entry: E, us: number): void;
  /** Expiry (ms since epoch) of `key` in a profile, if it has one (TTL); a promise when it must be read. */
  expiresAt(entry: E, key: string): number | undefined | Promise<number | undefined>;
  /** Writes a write-back's value (bytes or text) with its expiry (or clearing an old one). */
  store(entry: E, key: string, data: Uint8Array | string, expiresAt: number | undefined): Promise<void>;
  /** Removes an expired value from a profile, in the background. */
  purge(entry: E, key: string): void;
  /**
   * Whether a synchronous call on this profile for this key is as good as the
   * general path: no time limit, no retries, no TTL metadata, nothing queued.
   */
  plainSync(entry: E, key: string): boolean;
}

/** A fallback read in flight; `stale` turns true when a save or delete of the key starts. */
interface Flight {
  stale: boolean;
  promise: Promise<Found>;
  claimed: boolean;
  /** Stops watching the key for writes (after the write-back, or a failed read). */
  release: () => void;
}

interface Found {
  profile: string;
  /** Its expiry in that profile (carried to the write-back, so a TTL is never extended). */
  expiresAt: number | undefined;
  /** The value as stored in that profile. */
  stored: StoredValue;
  value: unknown;
}

type Attempt = { kind: "value"; value: unknown } | { kind: "missing" } | { kind: "failed"; error: Error };

const identity: Decoder<unknown> = (v) => v;
/** Keys read together (and decoded) at a time by `loadMany`'s synchronous pass. */
const SYNC_CHUNK = 256;
const decoderIds = new WeakMap<Decoder<unknown>, number>();
let nextDecoderId = 1;

export class TieredReader<E extends Entry = Entry> {
  readonly #d: TieredReaderDeps<E>;
  #fastest: E;
  #slower: readonly E[];
  #syncReads = 0;
  /** Fallback reads in flight, by decoder id + key. */
  readonly #flights = new Map<string, Flight>();
  /** Flights per key, to mark them stale on a write. */
  readonly #byKey = new Map<string, Set<Flight>>();
  readonly #pending = new Set<Promise<void>>();

  constructor(deps: TieredReaderDeps<E>) {
    this.#d = deps;
    this.#fastest = deps.ranked[0]!;
    this.#slower = deps.ranked.slice(1);
  }

  /** Profiles in their new speed order (live ranking): reads and write-backs follow it from now on. */
  setRanking(order: readonly E[]): void {
    this.#fastest = order[0]!;
    this.#slower = order.slice(1);
  }

  /** A save or delete of `key` is starting: no write-back from an earlier read may land. */
  invalidate(key: string): void {
    const set = this.#byKey.get(key);
    if (set) for (const f of set) f.stale = true;
  }

  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  load<T>(key: string, decode?: Decoder<T>): Promise<{ value: T; profile: string; writeBack: boolean }> {
    return this.#load(key, (decode ?? identity) as Decoder<unknown>) as Promise<{
      value: T;
      profile: string;
      writeBack: boolean;
    }>;
  }

  /**
   * Many loads at once, each with the result `load` would give (or its error),
   * in the order of `keys`. Hits in a synchronous fastest profile are read in
   * one pass (batched where the driver can), decoded and settled without a
   * promise each; every other key (a miss, a TTL to check, a value that does
   * not decode, an async decoder, a failure) takes the general path, at most
   * `concurrency` at a time.
   */
  async loadMany(
    keys: readonly string[],
    decode: Decoder<unknown> | undefined,
    concurrency: number,
  ): Promise<LoadOutcome<unknown>[]> {
    const dec = decode ?? identity;
    const out = new Array<LoadOutcome<unknown>>(keys.length);
    const fastest = this.#fastest;
    const op = fastest.op;
    const rest: number[] = [];
    const missed: number[] = [];
    // A bad key is its own outcome (as loadValue would reject it); the others are read together.
    const at: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      try {
        validateKey(keys[i]);
        at.push(i);
      } catch (err) {
        out[i] = { ok: false, error: err as Error };
      }
    }
    const st = this.#d.stats(fastest.name);
    const canSync = op.readManyStoredSync !== undefined || op.readStoredSync !== undefined || op.readSync !== undefined;
    // Chunk by chunk, so the texts read are parsed and dropped while young (a whole batch held
    // at once would survive young-generation GCs and be copied: 30% of the time at 10,000 keys).
    for (let c = 0; c < at.length; c += SYNC_CHUNK) {
      const idx = at.slice(c, c + SYNC_CHUNK);
      let stored: (StoredValue | undefined)[] | undefined;
      if (canSync && this.#d.available(fastest)) {
        const chunk = idx.map((i) => keys[i]!);
        try {
          stored = op.readManyStoredSync ? op.readManyStoredSync(chunk) : chunk.map((k) => readStoredSync(op, k));
        } catch {
          // A failing profile: these keys take the general path, which falls back and says why.
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
          missed.push(i);
          continue;
        }
        const key = keys[i]!;
        if (this.#d.expiresAt(fastest, key) !== undefined) {
          rest.push(i);
          continue;
        }
        let value: unknown;
        try {
          value = dec(decodeStored(v.data, { profile: fastest.name, key }));
        } catch {
          rest.push(i);
          continue;
        }
        if (value instanceof Promise) {
          value.catch(() => {}); // decoded again on the general path
          rest.push(i);
          continue;
        }
        st.hits++;
        st.bytesRead += v.size;
        out[i] = { ok: true, value, profile: fastest.name, writeBack: false };
      }
    }
    const general = [...missed.map((i) => [i, true] as const), ...rest.map((i) => [i, false] as const)];
    await forEachLimit(general, concurrency, async ([i, wasMissed]) => {
      const key = keys[i]!;
      try {
        const r = await (wasMissed
          ? (this.#syncFallback(fastest, key, dec) ?? this.#afterFastest(fastest, key, dec, { kind: "missing" }))
          : this.#load(key, dec));
        out[i] = { ok: true, value: r.value, profile: r.profile, writeBack: r.writeBack };
      } catch (err) {
        out[i] = { ok: false, error: err as Error };
      }
    });
    return out;
  }

  #load(key: string, dec: Decoder<unknown>): Promise<Loaded> {
    const fastest = this.#fastest;
    const st = this.#d.stats(fastest.name);
    if (!this.#d.available(fastest)) {
      return this.#afterFastest(fastest, key, dec, { kind: "failed", error: breakerOpen(fastest.name) });
    }
    // Tier 0 answers synchronously where it can: a hit costs no extra promise hops.
    if (fastest.op.readSync || fastest.op.readStoredSync) {
      let stored: StoredValue | undefined;
      try {
        // Latency is sampled (1 read in 16): timing every hit would cost more than the hit.
        if (this.#d.observeSync && (++this.#syncReads & 15) === 0) {
          const t0 = performance.now();
          stored = readStoredSync(fastest.op, key);
          this.#d.observeSync(fastest, (performance.now() - t0) * 1000);
        } else stored = readStoredSync(fastest.op, key);
      } catch (err) {
        if (!(err instanceof PersistenceError) || err.code === "E_INVALID_KEY" || err.code === "E_CLOSED") {
          return Promise.reject(err);
        }
        return this.#afterFastest(fastest, key, dec, { kind: "failed", error: err });
      }
      if (stored === undefined) {
        st.misses++;
        return this.#syncFallback(fastest, key, dec) ?? this.#afterFastest(fastest, key, dec, { kind: "missing" });
      }
      return this.#checkExpiry(key, stored, dec);
    }
    return this.#readAsync(key, dec);
  }

  /**
   * The synchronous fallback of a two-tier in-process setup (memory over
   * sqlite): the second profile is read, decoded and written back into the
   * first right here, without promises, queues or a background task. Taken
   * only when nothing else is going on for the key (no flight, no queued or
   * in-progress write, no TTL, no tracing, no time limit or retries);
   * otherwise, or when anything is unusual (an error, an undecodable value, an
   * async validator), returns undefined and the general path takes over.
   */
  #syncFallback(fastest: E, key: string, dec: Decoder<unknown>): Promise<Loaded> | undefined {
    const next = this.#slower[0];
    const d = this.#d;
    if (
      this.#slower.length !== 1 ||
      !(next?.op.readSync || next?.op.readStoredSync) ||
      !fastest.op.writeSync ||
      !d.plainSync(next, key) ||
      !d.plainSync(fastest, key) ||
      this.#byKey.has(key) ||
      d.writeInProgress(key) ||
      !d.available(next) ||
      writeBackChannel.hasSubscribers
    ) {
      return undefined;
    }
    let stored: StoredValue | undefined;
    let value: unknown;
    try {
      stored = readStoredSync(next.op, key);
      if (stored === undefined) {
        d.stats(next.name).misses++;
        return Promise.reject(
          new NotFoundError(`"${key}" not found in any profile (${fastest.name}, ${next.name})`, { key }),
        );
      }
      value = dec(decodeStored(stored.data, { profile: next.name, key }));
    } catch {
      return undefined;
    }
    if (value instanceof Promise) return undefined;
    const st = d.stats(next.name);
    st.fallbacks++;
    st.bytesRead += stored.size;
    const fst = d.stats(fastest.name);
    try {
      const back = recompressStored(stored);
      // The bytes were read for this load alone: the fastest profile may keep them.
      fastest.op.writeSync(key, back.data, true);
      fst.writeBacks++;
      fst.bytesWritten += back.size;
    } catch (err) {
      fst.failures++;
      d.logger.warn({ profile: fastest.name, key, err }, "write-back failed");
    }
    return Promise.resolve({ value, profile: next.name, writeBack: true });
  }

  async #readAsync(key: string, dec: Decoder<unknown>): Promise<Loaded> {
    const fastest = this.#fastest;
    let stored: StoredValue;
    try {
      const data = await this.#d.call(fastest, "read", key, () => fastest.op.read(key));
      stored = { data, size: data.length };
    } catch (err) {
      if (err instanceof NotFoundError) {
        this.#d.stats(fastest.name).misses++;
        return this.#afterFastest(fastest, key, dec, { kind: "missing" });
      }
      if (isCallerError(err)) throw err;
      return this.#afterFastest(fastest, key, dec, { kind: "failed", error: err as Error });
    }
    return this.#checkExpiry(key, stored, dec);
  }

  /** A tier-0 hit that has expired is a miss (and is purged in the background). */
  #checkExpiry(key: string, stored: StoredValue, dec: Decoder<unknown>): Promise<Loaded> {
    const fastest = this.#fastest;
    const at = this.#d.expiresAt(fastest, key);
    if (at === undefined) return this.#decodeFastest(key, stored, dec);
    const decide = (t: number | undefined): Promise<Loaded> => {
      if (t === undefined || t > Date.now()) return this.#decodeFastest(key, stored, dec);
      this.#d.stats(fastest.name).misses++;
      this.#d.purge(fastest, key);
      return this.#afterFastest(fastest, key, dec, { kind: "missing" });
    };
    return typeof at === "number"
      ? decide(at)
      : at.then(decide, (err) => this.#afterFastest(fastest, key, dec, { kind: "failed", error: err }));
  }

  #decodeFastest(key: string, stored: StoredValue, dec: Decoder<unknown>): Promise<Loaded> {
    const fastest = this.#fastest;
    const st = this.#d.stats(fastest.name);
    let parsed: unknown;
    try {
      parsed = decodeStored(stored.data, { profile: fastest.name, key });
    } catch (err) {
      return this.#afterFastest(fastest, key, dec, { kind: "failed", error: err as Error });
    }
    let value: unknown;
    try {
      value = dec(parsed);
    } catch (err) {
      return this.#afterFastest(fastest, key, dec, { kind: "failed", error: mismatch(fastest.name, key, err) });
    }
    if (value instanceof Promise) {
      return value.then(
        (v) => {
          st.hits++;
          st.bytesRead += stored.size;
          return { value: v, profile: fastest.name, writeBack: false };
        },
        (err) => this.#afterFastest(fastest, key, dec, { kind: "failed", error: mismatch(fastest.name, key, err) }),
      );
    }
    st.hits++;
    st.bytesRead += stored.size;
    return Promise.resolve({ value, profile: fastest.name, writeBack: false });
  }

  /**
   * The fastest profile missed, failed, or held a value that does not decode
   * (schema evolution): fall back. A value found is written back over the
   * fastest profile's copy; if nothing decodes anywhere, the stored bytes are
   * left alone and the caller gets a DeserializeError.
   */
  async #afterFastest(tried: E, key: string, dec: Decoder<unknown>, first: Attempt): Promise<Loaded> {
    const fastest = tried;
    if (first.kind === "failed") {
      this.#d.stats(fastest.name).failures++;
      this.#d.logger.debug({ profile: fastest.name, key, err: first.error }, "fastest profile could not serve");
    }
    const id = decoderId(dec);
    const flightKey = `${id}\0${key}`;
    let flight = this.#flights.get(flightKey);
    let owner = false;
    if (!flight) {
      owner = true;
      const f: Flight = {
        stale: this.#d.writeInProgress(key),
        promise: undefined as never,
        claimed: false,
        release: () => {},
      };
      f.promise = this.#fallback(tried, key, dec, first);
      flight = f;
      this.#flights.set(flightKey, f);
      let set = this.#byKey.get(key);
      if (!set) {
        set = new Set();
        this.#byKey.set(key, set);
      }
      set.add(f);
      // The flight stops taking joiners when its read settles, but stays
      // watchable (so a save or delete marks it stale) until its write-back is done.
      const settled = () => {
        if (this.#flights.get(flightKey) === f) this.#flights.delete(flightKey);
      };
      f.release = () => {
        set.delete(f);
        if (set.size === 0 && this.#byKey.get(key) === set) this.#byKey.delete(key);
      };
      f.promise.then(settled, () => {
        settled();
        f.release();
      });
    }
    const found = await flight.promise;
    if (owner) this.#writeBack(key, found, flight);
    // The first caller takes the decoded value; others get their own copy.
    let value = found.value;
    if (flight.claimed) value = await dec(decodeStored(found.stored.data, { profile: found.profile, key }));
    flight.claimed = true;
    return { value, profile: found.profile, writeBack: owner && found.profile !== this.#fastest.name };
  }

  async #fallback(tried: E, key: string, dec: Decoder<unknown>, first: Attempt): Promise<Found> {
    const attempts: [string, Attempt][] = [[tried.name, first]];
    // The ranking as it is now (live ranking may have changed it since `tried` was read), minus `tried`.
    for (const e of [this.#fastest, ...this.#slower]) {
      if (e === tried) continue;
      const st = this.#d.stats(e.name);
      if (!this.#d.available(e)) {
        attempts.push([e.name, { kind: "failed", error: breakerOpen(e.name) }]);
        continue;
      }
      let stored: StoredValue;
      try {
        const data = await this.#d.call(e, "read", key, () => e.op.read(key));
        stored = { data, size: data.length };
      } catch (err) {
        if (err instanceof NotFoundError) {
          st.misses++;
          attempts.push([e.name, { kind: "missing" }]);
        } else {
          st.failures++;
          attempts.push([e.name, { kind: "failed", error: err as Error }]);
          this.#d.logger.warn({ profile: e.name, key, err }, "profile failed during fallback read");
        }
        continue;
      }
      let expiresAt: number | undefined;
      try {
        expiresAt = await this.#d.expiresAt(e, key);
      } catch (err) {
        st.failures++;
        attempts.push([e.name, { kind: "failed", error: err as Error }]);
        continue;
      }
      if (expiresAt !== undefined && expiresAt <= Date.now()) {
        st.misses++;
        attempts.push([e.name, { kind: "missing" }]);
        this.#d.purge(e, key);
        continue;
      }
      try {
        const parsed = decodeStored(stored.data, { profile: e.name, key });
        let value: unknown;
        try {
          value = await dec(parsed);
        } catch (err) {
          throw mismatch(e.name, key, err);
        }
        st.fallbacks++;
        st.bytesRead += stored.size;
        this.#d.logger.debug({ profile: e.name, key }, "loaded from fallback profile");
        return { profile: e.name, stored, value, expiresAt };
      } catch (err) {
        attempts.push([e.name, { kind: "failed", error: err as Error }]);
      }
    }
    throw notFoundOrWhy(key, attempts);
  }

  #writeBack(key: string, found: Found, flight: Flight): void {
    const fastest = this.#fastest;
    if (found.profile === fastest.name) {
      flight.release();
      return;
    }
    const st = this.#d.stats(fastest.name);
    // Started on a microtask, after the caller's value is settled: a loop of awaited loads
    // never yields to the event loop, and write-backs must not pile up behind it.
    const task = Promise.resolve()
      .then(() =>
        this.#d.queued(fastest, "write-back", key, async () => {
          // Checked inside the queue: a save or delete issued since the read wins.
          if (flight.stale) {
            st.writeBacksSkipped++;
            return;
          }
          const { data, size } = recompressStored(found.stored);
          const context = { key, profile: fastest.name, from: found.profile, bytes: size };
          if (found.expiresAt !== undefined && found.expiresAt <= Date.now()) {
            st.writeBacksSkipped++;
            return;
          }
          await traced(writeBackChannel, context, () => this.#d.store(fastest, key, data, found.expiresAt));
          st.writeBacks++;
          st.bytesWritten += size;
          this.#d.logger.debug({ profile: fastest.name, key, from: found.profile }, "write-back");
        }),
      )
      .catch((err) => {
        st.failures++;
        this.#d.logger.warn({ profile: fastest.name, key, err }, "write-back failed");
      })
      .finally(() => {
        flight.release();
        this.#pending.delete(task);
      });
    this.#pending.add(task);
  }
}

/** A synchronous read in the form the store keeps the value (text where it can). */
function readStoredSync(op: Operator, key: string): StoredValue | undefined {
  if (op.readStoredSync) return op.readStoredSync(key);
  const data = op.readSync!(key);
  return data === undefined ? undefined : { data, size: data.length };
}

function breakerOpen(profile: string): BackendError {
  return new BackendError(`profile "${profile}" is out of the read path after repeated failures (circuit open)`, {
    profile,
    transient: true,
  });
}

function decoderId(dec: Decoder<unknown>): number {
  let id = decoderIds.get(dec);
  if (id === undefined) {
    id = nextDecoderId++;
    decoderIds.set(dec, id);
  }
  return id;
}

/** Errors that are the caller's (a bad key, a closed store), not the backend's. */
export function isCallerError(err: unknown): boolean {
  return err instanceof PersistenceError && (err.code === "E_INVALID_KEY" || err.code === "E_CLOSED");
}

function mismatch(profile: string, key: string, err: unknown): DeserializeError {
  if (err instanceof DeserializeError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new DeserializeError(`Value of "${key}" in profile "${profile}" does not fit the expected shape: ${msg}`, {
    profile,
    key,
    cause: err,
  });
}

/** Nothing decodable anywhere: corruption is a DeserializeError, absence a NotFoundError, doubt a BackendError. */
function notFoundOrWhy(key: string, attempts: [string, Attempt][]): PersistenceError {
  const describe = () =>
    attempts
      .map(([p, a]) => `${p}: ${a.kind === "missing" ? "not found" : a.kind === "failed" ? a.error.message : "ok"}`)
      .join("; ");
  const undecodable = attempts.filter(([, a]) => a.kind === "failed" && a.error instanceof DeserializeError);
  if (undecodable.length > 0) {
    const [profile, a] = undecodable[0]!;
    return new DeserializeError(`No profile holds a value of "${key}" that decodes (${describe()})`, {
      key,
      profile,
      cause: a.kind === "failed" ? a.error : undefined,
    });
  }
  const failed = attempts.filter(([, a]) => a.kind === "failed");
  if (failed.length > 0) {
    return new BackendError(`"${key}" was not found, and some profiles could not be asked (${describe()})`, {
      key,
      cause: (failed[0]![1] as { error: Error }).error,
      transient: true,
    });
  }
  return new NotFoundError(`"${key}" not found in any profile (${attempts.map(([p]) => p).join(", ")})`, { key });
}
