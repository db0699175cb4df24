/**
 * `getOrSet`: the value at a key, or the one a factory makes, saved to every
 * profile. One factory call per key at a time in this process (single
 * flight); a stale value within its grace is served while one background call
 * refreshes it, and served on when that call fails.
 *
 * Nothing is wrapped around the stored value (a plain `loadValue` and the Rust
 * crate read it as saved). The tiers' TTL metadata holds the one time stored:
 * the value is saved with an expiry of `ttlMs + graceMs` ("kept until"), and
 * it is fresh until that expiry minus the `graceMs` of the call asking. A
 * value saved without a TTL is always fresh.
 *
 * @module
 */
import {
  ClosedError,
  DeserializeError,
  FactoryError,
  NotFoundError,
  PartialWriteError,
  PersistenceError,
} from "../errors.js";
import { validateKey } from "../keys/index.js";
import type { Logger } from "../logger.js";
import { checkMs } from "./options.js";
import type { Decoder, GetOrSetOptions, GetOrSetStats, LoadResult, SaveOptions } from "./types.js";

/** What getOrSet needs of a storage (the facade passes itself; a type, so no import cycle). */
export interface GetOrSetHost {
  readonly logger: Logger;
  loadValue<V>(key: string, decode?: Decoder<V>): Promise<LoadResult<V>>;
  saveValue(key: string, value: unknown, options?: SaveOptions): Promise<void>;
  profile(name: string): { expiresAt(key: string): number | undefined | Promise<number | undefined> };
}

/** The longest delay `setTimeout` keeps (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Lookups again after a factory value landed while one was reading (then the factory is asked). */
const MAX_RELOOKUPS = 2;

/** A factory's outcome, shared by every caller waiting on it; never a rejection. */
type Refreshed = { ok: true; value: unknown } | { ok: false; error: PersistenceError };

/** A call's options, checked once. */
interface Checked {
  graceMs: number;
  timeoutMs: number;
  decode: Decoder<unknown> | undefined;
  save: SaveOptions;
}

/** One key while callers or a factory call are at work on it. */
interface KeyState {
  /** Callers inside `get` now. */
  users: number;
  /** The factory call in flight, and whether a stale value is being served meanwhile (then a failure is logged). */
  flight: { promise: Promise<Refreshed>; servesStale: boolean } | undefined;
  /** Factory values saved while this state lived: a lookup begun before one may have read an older value. */
  saves: number;
}

/** The getOrSet state of one storage: flights per key and the counters. */
class GetOrSetCache {
  readonly stats: GetOrSetStats = { fresh: 0, stale: 0, misses: 0, factoryCalls: 0, factoryErrors: 0, saveErrors: 0 };
  readonly #host: GetOrSetHost;
  readonly #keys = new Map<string, KeyState>();

  constructor(host: GetOrSetHost) {
    this.#host = host;
  }

  async get(key: string, factory: () => unknown, o: Checked): Promise<unknown> {
    let state = this.#keys.get(key);
    if (!state) {
      state = { users: 0, flight: undefined, saves: 0 };
      this.#keys.set(key, state);
    }
    state.users++;
    try {
      for (let attempt = 0; ; attempt++) {
        const seen = state.saves;
        const found = await this.#lookup(key, o);
        if (found?.fresh) {
          this.stats.fresh++;
          return found.value;
        }
        // A factory value was saved while this lookup read: read that one rather than call the factory again.
        if (state.saves !== seen && attempt < MAX_RELOOKUPS) continue;
        const flight = this.#flight(state, key, factory, o, found !== undefined);
        if (found === undefined) {
          this.stats.misses++;
          const r = await flight;
          if (!r.ok) throw r.error;
          return r.value;
        }
        const r = o.timeoutMs > 0 ? await within(flight, o.timeoutMs) : undefined;
        if (r?.ok) {
          this.stats.misses++;
          return r.value;
        }
        this.stats.stale++;
        return found.value;
      }
    } finally {
      state.users--;
      this.#release(key, state);
    }
  }

  /** The stored value and whether it is fresh, or undefined when absent, expired or undecodable. */
  async #lookup(key: string, o: Checked): Promise<{ value: unknown; fresh: boolean } | undefined> {
    let r: LoadResult<unknown>;
    try {
      r = await this.#host.loadValue(key, o.decode);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      // The factory is the source of the value: one that no longer decodes is replaced.
      if (err instanceof DeserializeError) return undefined;
      throw err;
    }
    // The tier already checked the expiry: without grace, a value it returns is fresh.
    if (o.graceMs === 0) return { value: r.value, fresh: true };
    const keptUntil = await this.#host.profile(r.profile).expiresAt(key);
    return { value: r.value, fresh: keptUntil === undefined || Date.now() < keptUntil - o.graceMs };
  }

  /** The factory call of `key` in flight, or a new one. */
  #flight(state: KeyState, key: string, factory: () => unknown, o: Checked, stale: boolean): Promise<Refreshed> {
    if (state.flight) {
      state.flight.servesStale ||= stale;
      return state.flight.promise;
    }
    const flight = { promise: this.#run(state, key, factory, o), servesStale: stale };
    state.flight = flight;
    void flight.promise.then((r) => {
      if (!r.ok && flight.servesStale && r.error instanceof FactoryError) {
        this.#host.logger.warn(
          { key, err: r.error.cause ?? r.error },
          "getOrSet: factory failed, serving the stale value",
        );
      }
      state.flight = undefined;
      this.#release(key, state);
    });
    return flight.promise;
  }

  /** Calls the factory and saves its value to every profile. */
  async #run(state: KeyState, key: string, factory: () => unknown, o: Checked): Promise<Refreshed> {
    this.stats.factoryCalls++;
    let value: unknown;
    try {
      value = await factory();
    } catch (cause) {
      this.stats.factoryErrors++;
      const msg = cause instanceof Error ? cause.message : String(cause);
      return { ok: false, error: new FactoryError(`The factory of "${key}" failed: ${msg}`, { key, cause }) };
    }
    if (value === undefined) {
      this.stats.factoryErrors++;
      const msg = `Expected the factory of "${key}" to return a JSON value, got undefined (JSON cannot store it; return null)`;
      return { ok: false, error: new FactoryError(msg, { key }) };
    }
    try {
      await this.#host.saveValue(key, value, o.save);
    } catch (err) {
      if (err instanceof ClosedError) return { ok: false, error: err };
      if (!(err instanceof PartialWriteError)) {
        // Only encoding fails before any write: a value JSON cannot hold (a BigInt, a cycle).
        this.stats.factoryErrors++;
        const msg = `Expected the factory of "${key}" to return a JSON value: ${(err as Error).message}`;
        return { ok: false, error: new FactoryError(msg, { key, cause: err }) };
      }
      // The caller still gets the value; the profiles that took it serve the next calls.
      this.stats.saveErrors++;
      this.#host.logger.warn({ key, err }, "getOrSet: saving the factory's value failed in some profiles");
    }
    state.saves++;
    return { ok: true, value };
  }

  #release(key: string, state: KeyState): void {
    if (state.users === 0 && state.flight === undefined && this.#keys.get(key) === state) this.#keys.delete(key);
  }
}

const caches = new WeakMap<GetOrSetHost, GetOrSetCache>();

/**
 * The value at `key`, or the one `factory` makes, saved to every profile of
 * `host` and returned (see {@link GetOrSetOptions}; `DeviceStorage.getOrSet` is the way to call it).
 * @throws PersistenceError for bad arguments; FactoryError (`E_FACTORY`) when no value is stored
 *   and the factory fails; what `loadValue` throws but `NotFoundError` and `DeserializeError`.
 */
export function getOrSet<V>(
  host: GetOrSetHost,
  key: string,
  factory: () => V | Promise<V>,
  options: GetOrSetOptions<V> = {},
): Promise<V> {
  try {
    const o = checkOptions(key, factory, options);
    let cache = caches.get(host);
    if (!cache) {
      cache = new GetOrSetCache(host);
      caches.set(host, cache);
    }
    return cache.get(key, factory, o) as Promise<V>;
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * The getOrSet counters of `storage` (a copy; all zero before its first getOrSet).
 * @example
 * getOrSetStats(storage); // { fresh: 98, stale: 1, misses: 1, factoryCalls: 2, factoryErrors: 1, saveErrors: 0 }
 */
export function getOrSetStats(storage: GetOrSetHost): GetOrSetStats {
  const s = caches.get(storage)?.stats;
  return s ? { ...s } : { fresh: 0, stale: 0, misses: 0, factoryCalls: 0, factoryErrors: 0, saveErrors: 0 };
}

/** The outcome of `flight` if it settles within `ms`, else undefined (the flight runs on). */
function within(flight: Promise<Refreshed>, ms: number): Promise<Refreshed | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, Math.min(ms, MAX_TIMER_MS), undefined);
  });
  return Promise.race([flight, late]).finally(() => clearTimeout(timer));
}

function checkOptions(key: string, factory: unknown, options: GetOrSetOptions<unknown>): Checked {
  validateKey(key);
  if (typeof factory !== "function") {
    throw new PersistenceError(`Expected \`factory\` to be a function, got ${describe(factory)}`, { key });
  }
  if (options === null || typeof options !== "object") {
    throw new PersistenceError(`Expected \`options\` to be an object, got ${describe(options)}`, { key });
  }
  const ms = (name: "ttlMs" | "graceMs" | "timeoutMs", zero: "zero allowed" | "positive") => {
    const v = options[name];
    if (v === undefined) return undefined;
    if (typeof v === "number" && !Number.isFinite(v)) {
      throw new PersistenceError(`Expected \`${name}\` to be a finite number of milliseconds, got ${v}`, { key });
    }
    return checkMs(v, name, zero, key);
  };
  const ttlMs = ms("ttlMs", "positive");
  const graceMs = ms("graceMs", "zero allowed") ?? 0;
  const timeoutMs = ms("timeoutMs", "zero allowed") ?? 0;
  if (graceMs > 0 && ttlMs === undefined) {
    throw new PersistenceError(
      `Expected \`ttlMs\` with \`graceMs\` (grace starts when the value goes stale), got graceMs alone`,
      {
        key,
      },
    );
  }
  if (options.decode !== undefined && typeof options.decode !== "function") {
    throw new PersistenceError(`Expected \`decode\` to be a function, got ${describe(options.decode)}`, { key });
  }
  return { graceMs, timeoutMs, decode: options.decode, save: ttlMs === undefined ? {} : { ttlMs: ttlMs + graceMs } };
}

/** What was passed, for a message: its type, never its content. */
function describe(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}
