/**
 * One {@link Tier} per profile: the object that owns that profile's rules.
 * Every read and write of a profile goes through its tier, whoever asks (the
 * tiered reader and writer, `exists`, prefetch, cleanup, the CLI), so the time
 * limit, retries, per-key write order, TTL metadata, quota, breaker and
 * counters hold on every path by construction.
 *
 * @module
 */
import { storedSize } from "../codec.js";
import { isCallerError, NotFoundError, UnsupportedError } from "../errors.js";
import { isReservedKey, validateKey, validatePrefix } from "../keys/index.js";
import type { Logger } from "../logger.js";
import type { Operator, OperatorCapabilities, StatResult, StoredValue } from "../operators/types.js";
import { CallPolicy } from "./calls.js";
import { TierExpiry } from "./expiry.js";
import type { WriteFence } from "./fence.js";
import { checkMs } from "./options.js";
import type { ExpiryOptions, Lifecycle, ProfileStats, TierEntry, TierMonitor } from "./types.js";

/** What start-up knows of a profile once it is open and probed. */
export interface TierSpec {
  readonly name: string;
  readonly scheme: string;
  readonly op: Operator;
  readonly timeoutMs: number | undefined;
  readonly retries: number;
  readonly defaultTtlMs: number | undefined;
  /** The reserved key the start-up probe used (deleted again before start-up finished). */
  readonly probeKey: string;
  /** The probe's median read in µs. */
  readonly probeLatencyUs: number;
  /** A fixed rank value (the profile's `speed`) instead of the probe's latency, if set. */
  readonly fixedRankUs: number | undefined;
}

/** The storage-wide collaborators of every tier. */
export interface TierContext {
  readonly logger: Logger;
  readonly monitor: TierMonitor;
  readonly lifecycle: Lifecycle;
  readonly fence: WriteFence;
}

/** A value's size and modification time in one tier, and its expiry if it has a TTL. */
export interface TierStat extends StatResult {
  expiresAt?: number | undefined;
}

export class Tier {
  /** Profile name from the settings. */
  readonly name: string;
  /** Its scheme (`type`). */
  readonly scheme: string;
  /** The operator serving it (raw: no time limit, TTL or counters; use the tier's methods). */
  readonly op: Operator;
  /** Time limit of each call in ms, if any (`timeout_ms`; remote schemes default to 10 s). */
  readonly timeoutMs: number | undefined;
  /** Retries of a call that failed with a transient error (`retries`). */
  readonly retries: number;
  /** Default time to live of values saved here (`ttl_ms`), if any. */
  readonly defaultTtlMs: number | undefined;
  /** The reserved key the start-up probe used. */
  readonly probeKey: string;
  /** The start-up probe's median read in µs. */
  readonly probeLatencyUs: number;
  /** What ranks it at start: the fixed `speed` override, else {@link probeLatencyUs}. Lower is faster. */
  readonly rankLatencyUs: number;
  /** Whether the rank is fixed by a `speed` override (live ranking never moves it). */
  readonly fixedRank: boolean;
  /** @internal Counters, kept by the tier and by the reader and writer. Read them with {@link stats}. */
  readonly counters: ProfileStats = {
    hits: 0,
    misses: 0,
    fallbacks: 0,
    writeBacks: 0,
    writeBacksSkipped: 0,
    failures: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };
  readonly #calls: CallPolicy;
  readonly #expiry: TierExpiry;
  readonly #ctx: TierContext;
  /** Purges of expired values in the background. */
  readonly #background = new Set<Promise<void>>();

  constructor(spec: TierSpec, context: TierContext, live: boolean) {
    this.name = spec.name;
    this.scheme = spec.scheme;
    this.op = spec.op;
    this.timeoutMs = spec.timeoutMs;
    this.retries = spec.retries;
    this.defaultTtlMs = spec.defaultTtlMs;
    this.probeKey = spec.probeKey;
    this.probeLatencyUs = spec.probeLatencyUs;
    this.rankLatencyUs = spec.fixedRankUs ?? spec.probeLatencyUs;
    this.fixedRank = spec.fixedRankUs !== undefined;
    this.#ctx = context;
    this.#expiry = new TierExpiry(spec.op);
    const monitor = live ? context.monitor : undefined;
    this.#calls = new CallPolicy(this, {
      logger: context.logger,
      monitor,
      lifecycle: context.lifecycle,
      stats: this.counters,
    });
  }

  /** @deprecated The rank value; use {@link rankLatencyUs}. */
  get speed(): number {
    return this.rankLatencyUs;
  }

  /** @deprecated The measured probe latency; use {@link probeLatencyUs}. */
  get measuredSpeed(): number {
    return this.probeLatencyUs;
  }

  /** What the backend can do. */
  get capabilities(): OperatorCapabilities {
    return this.op.capabilities;
  }

  /** Counters, with quota usage where the profile has a quota. */
  stats(): ProfileStats {
    const usage = this.op.usage?.();
    return usage ? { ...this.counters, usage } : { ...this.counters };
  }

  /** @internal Reads the tier's TTL marker (and sidecars) at start-up. */
  init(): Promise<void> {
    return this.#expiry.init();
  }

  // ---- The handle: what users and the CLI call. Each honours TTL, the call policy and the counters.

  /**
   * The stored bytes of `key` as they are (a `ZSTD` frame or the raw JSON).
   * @throws NotFoundError when absent or expired.
   */
  async read(key: string): Promise<Uint8Array> {
    const entry = await this.readEntry(key);
    if (!entry) throw this.#notFound(key);
    return entry.data;
  }

  /** The stored bytes of `key` with their expiry, or `undefined` when absent or expired. */
  async readEntry(key: string): Promise<TierEntry | undefined> {
    validateKey(key, this.name);
    let data: Uint8Array;
    try {
      data = await this.#counted(this.call("read", key, () => this.op.read(key)));
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    const expiresAt = await this.#counted(Promise.resolve(this.expiresAt(key)));
    if (this.#expired(key, expiresAt)) return undefined;
    this.counters.bytesRead += data.length;
    return { data, expiresAt };
  }

  /**
   * Writes stored bytes (or JSON text) under `key`, with an expiry from
   * `options` or the profile's `ttl_ms`. A write-back of `key` in flight from
   * an earlier read will not land over it.
   */
  async write(key: string, data: Uint8Array | string, options: ExpiryOptions = {}): Promise<void> {
    validateKey(key, this.name);
    const expiresAt = this.expiryOf(options, Date.now(), key);
    this.#ctx.fence.begin(key);
    try {
      await this.store("write", key, data, storedSize(data), expiresAt);
    } finally {
      this.#ctx.fence.end(key);
    }
  }

  /** Deletes `key` (and its TTL metadata); deleting a missing key succeeds. */
  async delete(key: string): Promise<void> {
    validateKey(key, this.name);
    this.#ctx.fence.begin(key);
    try {
      await this.remove(key);
    } finally {
      this.#ctx.fence.end(key);
    }
  }

  /** Whether the tier holds an unexpired value under `key`. */
  async exists(key: string): Promise<boolean> {
    validateKey(key, this.name);
    if (!(await this.#counted(this.call("exists", key, () => this.op.exists(key))))) return false;
    return !this.#expired(key, await this.#counted(Promise.resolve(this.expiresAt(key))));
  }

  /**
   * Size, modification time (where the backend keeps one) and expiry of `key`.
   * @throws NotFoundError when absent or expired.
   */
  async stat(key: string): Promise<TierStat> {
    validateKey(key, this.name);
    const st = await this.#counted(this.call("stat", key, () => this.op.stat(key)));
    const expiresAt = await this.#counted(Promise.resolve(this.expiresAt(key)));
    if (this.#expired(key, expiresAt)) throw this.#notFound(key);
    return expiresAt === undefined ? st : { ...st, expiresAt };
  }

  /**
   * Every key starting with `prefix`, sorted, without the library's reserved
   * keys and without expired values.
   * @throws UnsupportedError where the backend cannot list (`capabilities.list` is false).
   */
  async list(prefix = ""): Promise<string[]> {
    validatePrefix(prefix, this.name);
    if (!this.op.capabilities.list) {
      throw new UnsupportedError(`profile "${this.name}" (${this.scheme}) cannot list its keys`, {
        profile: this.name,
      });
    }
    const keys = await this.#counted(this.call("list", prefix, () => this.op.list(prefix)));
    const now = Date.now();
    return keys.filter((k) => {
      if (isReservedKey(k)) return false;
      const at = this.#expiry.complete ? (this.#expiry.expiresAt(k) as number | undefined) : undefined;
      return at === undefined || at > now;
    });
  }

  // ---- The parts the tiered reader and writer build on.

  /** Whether reads may go to this tier now (its circuit breaker is closed or due a trial). */
  available(): boolean {
    return this.#ctx.monitor.available(this.name);
  }

  /** Reports the latency (µs) of a synchronous read to live ranking. */
  observe(us: number): void {
    this.#ctx.monitor.success(this.name, us);
  }

  /** One backend call under the time limit and retries. */
  call<T>(what: string, key: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.call(what, key, fn);
  }

  /** As {@link call}, run after every earlier queued write of `key`. */
  queued<T>(what: string, key: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.queued(what, key, fn);
  }

  /**
   * Whether a synchronous call for `key` is as good as the general path: no
   * time limit, no retries, no TTL metadata, nothing queued for the key. The
   * one rule the synchronous read and write paths share.
   */
  syncSafe(key: string): boolean {
    return (
      this.timeoutMs === undefined &&
      this.retries === 0 &&
      this.defaultTtlMs === undefined &&
      !this.#expiry.active &&
      !this.#calls.hasQueued(key)
    );
  }

  /** Whether the backend answers reads synchronously. */
  get readsSync(): boolean {
    return this.op.readSync !== undefined || this.op.readStoredSync !== undefined;
  }

  /** A synchronous read in the form the store keeps the value (text where it can); no TTL check. */
  readStoredSync(key: string): StoredValue | undefined {
    const op = this.op;
    if (op.readStoredSync) return op.readStoredSync(key);
    const data = op.readSync!(key);
    return data === undefined ? undefined : { data, size: data.length };
  }

  /** Expiry of `key` here: a number, `undefined` (none), or a promise when it must be read. */
  expiresAt(key: string): number | undefined | Promise<number | undefined> {
    return this.#expiry.expiresAt(key);
  }

  /** The expiry a write with `options` gets here: `expiresAt`, else now + (`ttlMs` or the profile's `ttl_ms`). */
  expiryOf(options: ExpiryOptions, now: number, key?: string): number | undefined {
    if (options.expiresAt !== undefined) return checkMs(options.expiresAt, "expiresAt", "positive", key);
    const ttl = options.ttlMs === undefined ? this.defaultTtlMs : checkMs(options.ttlMs, "ttlMs", "positive", key);
    return ttl === undefined ? undefined : now + ttl;
  }

  /** A synchronous write (see {@link syncSafe}); throws as the backend does. */
  writeSync(key: string, data: Uint8Array | string, size: number, owned: boolean): void {
    try {
      this.op.writeSync!(key, data, owned);
    } catch (err) {
      if (!isCallerError(err)) {
        this.counters.failures++;
        this.#ctx.monitor.failure(this.name);
      }
      throw err;
    }
    this.counters.bytesWritten += size;
  }

  /** A write queued behind earlier writes of `key`, with its TTL metadata; counted. */
  async store(what: string, key: string, data: Uint8Array | string, size: number, at: number | undefined) {
    await this.#counted(this.queued(what, key, () => this.writeNow(key, data, at)));
    this.counters.bytesWritten += size;
  }

  /** A delete queued behind earlier writes of `key`, with its TTL metadata; counted. */
  remove(key: string): Promise<void> {
    return this.#counted(
      this.queued("delete", key, () =>
        this.#expiry.needsMeta(key, undefined) ? this.#expiry.delete(key) : this.op.delete(key),
      ),
    );
  }

  /** A write with its TTL metadata, right now (inside a queued task: a write-back). */
  writeNow(key: string, data: Uint8Array | string, at: number | undefined): Promise<void> {
    return this.#expiry.needsMeta(key, at) ? this.#expiry.write(key, data, at) : this.op.write(key, data);
  }

  /** Known keys whose TTL has passed (cleanup). */
  expiredKeys(now: number): string[] {
    return this.#expiry.expired(now);
  }

  /** Whether every TTL of this tier is known (so expired values can be enumerated). */
  get expiryComplete(): boolean {
    return this.#expiry.complete;
  }

  /** Removes an expired value in the background, unless it was rewritten meanwhile. */
  purge(key: string): void {
    const task = this.queued("purge", key, async () => {
      const at = await this.#expiry.expiresAt(key);
      if (at !== undefined && at <= Date.now()) await this.#expiry.delete(key);
    })
      .catch((err) => this.#ctx.logger.debug({ profile: this.name, key, err }, "purge of an expired value failed"))
      .finally(() => this.#background.delete(task));
    this.#background.add(task);
  }

  /** Resolves when the background purges started so far are done. */
  async flush(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  #expired(key: string, at: number | undefined): boolean {
    if (at === undefined || at > Date.now()) return false;
    this.purge(key);
    return true;
  }

  #notFound(key: string): NotFoundError {
    return new NotFoundError(`"${key}" not found in profile "${this.name}"`, { profile: this.name, key });
  }

  /** Counts a failure of `p` (not an absence, not the caller's error) against this tier. */
  #counted<T>(p: Promise<T>): Promise<T> {
    return p.catch((err) => {
      if (!(err instanceof NotFoundError) && !isCallerError(err)) this.counters.failures++;
      throw err;
    });
  }
}
