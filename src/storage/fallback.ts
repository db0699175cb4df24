/**
 * The slow half of a tiered read: the fastest tier missed, failed, or held a
 * value that no longer decodes (schema evolution), so the slower tiers are
 * asked in order. Concurrent loads of one key share one fallback read (a
 * flight); a value found is written back into the fastest tier in the
 * background, queued behind any write of the key and dropped if a newer save
 * or delete started since the read (the write fence).
 *
 * @module
 */
import { decodeStored, recompressStored, storedAsText } from "../codec.js";
import { BackendError, DeserializeError, NotFoundError, type PersistenceError, UnavailableError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { StoredValue } from "../operators/types.js";
import { traced, writeBackChannel } from "./channels.js";
import type { Fenced, WriteFence } from "./fence.js";
import type { Ranking } from "./ranking.js";
import type { Tier } from "./tier.js";
import type { Decoder, LoadResult } from "./types.js";

/** How one tier answered. */
export type Attempt = { kind: "value"; value: unknown } | { kind: "missing" } | { kind: "failed"; error: Error };

/** A fallback read in flight; `stale` turns true when a save or delete of the key starts. */
interface Flight extends Fenced {
  promise: Promise<Found>;
  /** The first caller took the decoded value; later ones decode their own copy. */
  claimed: boolean;
  /** Stops watching the key for writes (after the write-back, or a failed read). */
  release: () => void;
}

interface Found {
  tier: Tier;
  /** Its expiry in that tier (carried to the write-back, so a TTL is never extended). */
  expiresAt: number | undefined;
  /** The value as stored in that tier. */
  stored: StoredValue;
  value: unknown;
}

const decoderIds = new WeakMap<Decoder<unknown>, number>();
let nextDecoderId = 1;

export class Fallback {
  readonly #ranking: Ranking<Tier>;
  readonly #fence: WriteFence;
  readonly #logger: Logger;
  /** Fallback reads in flight, by decoder id + key. */
  readonly #flights = new Map<string, Flight>();
  /** Write-backs not yet done. */
  readonly #pending = new Set<Promise<void>>();

  constructor(ranking: Ranking<Tier>, fence: WriteFence, logger: Logger) {
    this.#ranking = ranking;
    this.#fence = fence;
    this.#logger = logger;
  }

  /** Keeps background work (a batch's write-backs) until {@link flush}; it must not reject. */
  track(task: Promise<void>): void {
    this.#pending.add(task);
    void task.finally(() => this.#pending.delete(task));
  }

  /** Resolves when every write-back scheduled so far is done. */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /**
   * `tried` (the fastest tier when the load began) gave `first`: read the
   * others. A value found is written back over the fastest tier's copy; if
   * nothing decodes anywhere, the stored bytes are left alone and the caller
   * gets a DeserializeError.
   */
  async load(tried: Tier, key: string, dec: Decoder<unknown>, first: Attempt): Promise<LoadResult<unknown>> {
    if (first.kind === "failed") {
      tried.counters.failures++;
      this.#logger.debug({ profile: tried.name, key, err: first.error }, "fastest profile could not serve");
    }
    const flightKey = `${decoderId(dec)}\0${key}`;
    let flight = this.#flights.get(flightKey);
    const owner = flight === undefined;
    if (!flight) {
      const f: Flight = {
        stale: false,
        promise: this.#read(tried, key, dec, first),
        claimed: false,
        release: () => {},
      };
      f.release = this.#fence.watch(key, f);
      this.#flights.set(flightKey, f);
      // The flight stops taking joiners when its read settles, but stays
      // watched (so a save or delete marks it stale) until its write-back is done.
      const settled = () => {
        if (this.#flights.get(flightKey) === f) this.#flights.delete(flightKey);
      };
      f.promise.then(settled, () => {
        settled();
        f.release();
      });
      flight = f;
    }
    const found = await flight.promise;
    if (owner) this.#writeBack(key, found, flight);
    let value = found.value;
    if (flight.claimed) value = await dec(decodeStored(found.stored.data, { profile: found.tier.name, key }));
    flight.claimed = true;
    return { value, profile: found.tier.name, writeBack: owner && found.tier !== this.#ranking.readFastest };
  }

  async #read(tried: Tier, key: string, dec: Decoder<unknown>, first: Attempt): Promise<Found> {
    const attempts: [Tier, Attempt][] = [[tried, first]];
    // The ranking as it is now (live ranking may have changed it since `tried` was read), minus `tried`.
    for (const tier of this.#ranking.readOrder) {
      if (tier === tried) continue;
      const st = tier.counters;
      if (!tier.available()) {
        attempts.push([tier, { kind: "failed", error: breakerOpen(tier.name) }]);
        continue;
      }
      // Where the expiry must be read (a sidecar), it is read along with the value, not after it.
      const at = tier.expiresAt(key);
      if (at instanceof Promise) at.catch(() => {}); // awaited below, unless the value's read fails
      let stored: StoredValue;
      try {
        const data = await tier.call("read", key, () => tier.op.read(key));
        stored = { data, size: data.length };
      } catch (err) {
        if (err instanceof NotFoundError) {
          st.misses++;
          attempts.push([tier, { kind: "missing" }]);
        } else {
          st.failures++;
          attempts.push([tier, { kind: "failed", error: err as Error }]);
          this.#logger.warn({ profile: tier.name, key, err }, "profile failed during fallback read");
        }
        continue;
      }
      let expiresAt: number | undefined;
      try {
        expiresAt = at instanceof Promise ? await at : at;
      } catch (err) {
        st.failures++;
        attempts.push([tier, { kind: "failed", error: err as Error }]);
        continue;
      }
      if (expiresAt !== undefined && expiresAt <= Date.now()) {
        st.misses++;
        attempts.push([tier, { kind: "missing" }]);
        tier.purge(key);
        continue;
      }
      try {
        stored = storedAsText(stored);
        const parsed = decodeStored(stored.data, { profile: tier.name, key });
        let value: unknown;
        try {
          value = await dec(parsed);
        } catch (err) {
          throw mismatch(tier.name, key, err);
        }
        st.fallbacks++;
        st.bytesRead += stored.size;
        this.#logger.debug({ profile: tier.name, key }, "loaded from fallback profile");
        return { tier, stored, value, expiresAt };
      } catch (err) {
        attempts.push([tier, { kind: "failed", error: err as Error }]);
      }
    }
    // The tiers that are down were not asked either.
    for (const tier of this.#ranking.standby) attempts.push([tier, { kind: "failed", error: notAsked(tier) }]);
    throw notFoundOrWhy(key, attempts);
  }

  #writeBack(key: string, found: Found, flight: Flight): void {
    const fastest = this.#ranking.readFastest;
    if (found.tier === fastest) {
      flight.release();
      return;
    }
    const st = fastest.counters;
    // Started on a microtask, after the caller's value is settled: a loop of awaited loads
    // never yields to the event loop, and write-backs must not pile up behind it.
    const task = Promise.resolve()
      .then(() =>
        fastest.queued("write-back", key, async () => {
          // Checked inside the queue: a save or delete issued since the read wins.
          if (flight.stale || (found.expiresAt !== undefined && found.expiresAt <= Date.now())) {
            st.writeBacksSkipped++;
            return;
          }
          const { data, size } = recompressStored(found.stored);
          const context = { key, profile: fastest.name, from: found.tier.name, bytes: size };
          // The copy lives no longer than the value, nor than the tier's own ttl_ms (a cache's bound on its copies).
          const ttl = fastest.defaultTtlMs;
          const at = ttl === undefined ? found.expiresAt : Math.min(found.expiresAt ?? Infinity, Date.now() + ttl);
          await traced(writeBackChannel, context, () => fastest.writeNow(key, data, at));
          st.writeBacks++;
          st.bytesWritten += size;
          this.#logger.debug({ profile: fastest.name, key, from: found.tier.name }, "write-back");
        }),
      )
      .catch((err) => {
        st.failures++;
        this.#logger.warn({ profile: fastest.name, key, err }, "write-back failed");
      })
      .finally(() => {
        flight.release();
        this.#pending.delete(task);
      });
    this.#pending.add(task);
  }
}

/** The error of a tier whose breaker keeps it out of the read path. */
export function breakerOpen(profile: string): BackendError {
  return new BackendError(`profile "${profile}" is out of the read path after repeated failures (circuit open)`, {
    profile,
    transient: true,
  });
}

/** A decode failure as the DeserializeError that names the tier and key. */
export function mismatch(profile: string, key: string, err: unknown): DeserializeError {
  if (err instanceof DeserializeError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new DeserializeError(`Value of "${key}" in profile "${profile}" does not fit the expected shape: ${msg}`, {
    profile,
    key,
    cause: err,
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

/** Why a tier that is down was not asked. */
export function notAsked(tier: Tier): Error {
  const state = tier.state;
  return new BackendError(state.kind === "down" ? `down: ${state.reason}` : "not asked", {
    profile: tier.name,
    transient: true,
  });
}

/**
 * Nothing decodable anywhere: corruption is a DeserializeError; absence is a
 * NotFoundError only when every durable tier was asked, else an
 * UnavailableError naming the ones that could not be (a volatile tier that
 * could not be asked does not count: it holds nothing a durable one lacks).
 */
export function notFoundOrWhy(key: string, attempts: readonly [Tier, Attempt][]): PersistenceError {
  const describe = () =>
    attempts
      .map(
        ([t, a]) => `${t.name}: ${a.kind === "missing" ? "not found" : a.kind === "failed" ? a.error.message : "ok"}`,
      )
      .join("; ");
  const undecodable = attempts.filter(([, a]) => a.kind === "failed" && a.error instanceof DeserializeError);
  if (undecodable.length > 0) {
    const [tier, a] = undecodable[0]!;
    return new DeserializeError(`No profile holds a value of "${key}" that decodes (${describe()})`, {
      key,
      profile: tier.name,
      cause: a.kind === "failed" ? a.error : undefined,
    });
  }
  const unasked = attempts.filter(([t, a]) => a.kind === "failed" && t.capabilities.durable);
  if (unasked.length > 0) {
    const why = unasked.map(([t, a]) => ({ profile: t.name, reason: (a as { error: Error }).error.message }));
    return new UnavailableError(
      `"${key}" was not found in the profiles that answered, but ${why.map((w) => w.profile).join(", ")} could not be asked, so it may exist (${describe()})`,
      why,
      { key, cause: (unasked[0]![1] as { error: Error }).error },
    );
  }
  return new NotFoundError(`"${key}" not found in any profile (${attempts.map(([t]) => t.name).join(", ")})`, { key });
}
