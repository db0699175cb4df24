/**
 * The facade: storage over several named profiles, one {@link Tier} each,
 * ranked by measured speed. It wires the parts (start-up, ranking, the tiered
 * reader and writer, cleanup, health checks) and checks what callers pass;
 * each rule lives in the part named after it. See ARCHITECTURE.md.
 *
 * @module
 */

import { encodeJsonStored } from "../codec.js";
import { ClosedError, PersistenceError } from "../errors.js";
import { validateKey, validatePrefix } from "../keys/index.js";
import type { Logger } from "../logger.js";
import type { Operator } from "../operators/types.js";
import { loadSettings } from "../settings/load.js";
import { assemble } from "./assemble.js";
import { loadChannel } from "./channels.js";
import { cleanupTiers } from "./cleanup.js";
import type { Coherence, CoherenceStats, RemoteChange } from "./coherence/coherence.js";
import { getOrSet } from "./get-or-set.js";
import type { HealthChecks } from "./health.js";
import { checkConcurrency } from "./limit.js";
import { listKeys } from "./list.js";
import { checkMs, type StorageOptions, storageOptions } from "./options.js";
import { prefetch } from "./prefetch.js";
import type { Ranking, TierHealth } from "./ranking.js";
import { badDecoder, checkLoadMany, NO_HIT, type TieredReader } from "./read.js";
import type { Rejoiner } from "./rejoin.js";
import { ProcessSingleton } from "./singleton.js";
import {
  type OpenedProfile,
  openedOperators,
  openProfiles,
  probeAndRank,
  type Started,
  unknownProfile,
} from "./startup.js";
import type { Tier } from "./tier.js";
import type * as T from "./types.js";
import type { TieredWriter } from "./write.js";

const singleton = new ProcessSingleton<DeviceStorage>();

/**
 * Storage over several named profiles, ranked by measured speed. Reads go to
 * the fastest first and fall back in speed order; writes go to every profile
 * in parallel (or to the named ones).
 *
 * @example
 * const storage = await DeviceStorage.fromSettings(await loadSettings());
 * await storage.saveValue("document_x.json", { id: "x" });
 * const { value, profile } = await storage.loadValue("document_x.json");
 */
export class DeviceStorage {
  /** Profiles left out (misconfigured), or down now (until they rejoin), with the reason. */
  readonly profileErrors: ReadonlyMap<string, PersistenceError>;
  readonly logger: Logger;
  readonly #ranking: Ranking<Tier>;
  readonly #reader: TieredReader;
  readonly #writer: TieredWriter;
  readonly #health: HealthChecks;
  readonly #rejoiner: Rejoiner;
  readonly #coherence: Coherence | undefined;
  readonly #state = { closed: false };

  private constructor(started: Started, o: StorageOptions) {
    this.profileErrors = started.errors;
    this.logger = o.logger;
    const p = assemble(started, o, this.#state);
    [this.#ranking, this.#reader, this.#writer] = [p.ranking, p.reader, p.writer];
    [this.#health, this.#rejoiner, this.#coherence] = [p.health, p.rejoiner, p.coherence];
  }

  /**
   * Opens and probes every profile (a reserved key read, written, read several times, deleted), ranked by
   * the median read. One that takes no writes is `read-only`; one that does not answer is `down` and
   * retried (see {@link tiers}); a misconfigured one is left out, never replaced by another backend.
   * @throws NoOperatorError when no profile can be read (the message lists why each failed).
   */
  static async fromSettings(settings: T.StorageSettings, options: T.DeviceStorageOptions = {}): Promise<DeviceStorage> {
    const o = storageOptions(options, settings);
    for (const warning of settings.warnings ?? []) o.logger.warn(warning);
    const errors = new Map<string, PersistenceError>();
    return DeviceStorage.#start(await openProfiles(settings, errors), errors, o);
  }

  /** Storage over operators you opened yourself; each is probed as in {@link fromSettings}; `speed` fixes the rank. */
  static async fromOperators(
    profiles: readonly T.OperatorProfile[],
    options: T.DeviceStorageOptions = {},
  ): Promise<DeviceStorage> {
    return DeviceStorage.#start(openedOperators(profiles), new Map(), storageOptions(options));
  }

  static async #start(opened: OpenedProfile[], errors: Map<string, PersistenceError>, o: StorageOptions) {
    const storage = new DeviceStorage(await probeAndRank(opened, errors, o.logger, o.probeReads), o);
    await Promise.all(storage.ranked.map((t) => t.init()));
    // A bus that cannot even be set up (bad connection options) closes what was opened.
    await storage.#coherence?.start().catch((err) => storage.close().then(() => Promise.reject(err)));
    return storage;
  }

  /**
   * The process-wide storage, created on first call from the settings folder
   * (`TERRAPHIM_SETTINGS_PATH` or the platform config folder; a default
   * settings file is written on first run), or memory-only if
   * {@link initMemoryOnly} ran first.
   */
  static instance(): Promise<DeviceStorage> {
    return singleton.get(async () => DeviceStorage.fromSettings(await loadSettings()), false);
  }

  /**
   * Makes the process-wide storage a single in-memory profile (tests, demos).
   * @throws ProfileError if the singleton was already created from settings.
   */
  static async initMemoryOnly(): Promise<DeviceStorage> {
    return singleton.memoryOnlyValue(() => DeviceStorage.fromSettings({ profiles: { memory: { type: "memory" } } }));
  }

  /** The process-wide storage if it is ready, else undefined (no promise: the singleton hot path). */
  static get current(): DeviceStorage | undefined {
    return singleton.current;
  }

  /** Closes and forgets the singleton (tests, shutdown). */
  static resetInstance(): Promise<void> {
    return singleton.reset();
  }

  /** Every tier, serving or not (see {@link Tier.state}): the ranked ones, then the ones down. */
  get tiers(): readonly Tier[] {
    return this.#ranking.all;
  }

  /**
   * Retries every `down` tier now (background retries go on too), gives each open breaker its trial and
   * reopens each `read-only` tier; a tier that answers joins the ranking. Resolves with those back: `["redis"]`.
   */
  retryDown(): Promise<string[]> {
    return this.#rejoiner.retryAll();
  }

  /** Tiers in speed order, fastest first (live ranking may reorder them); a `down` tier joins when it answers. */
  get ranked(): readonly Tier[] {
    return this.#ranking.order;
  }

  /** Tiers by profile name, fastest first. */
  get ops(): ReadonlyMap<string, Tier> {
    return this.#ranking.byName;
  }

  /** The fastest tier's operator: reads start here and write-back fills it. */
  get fastestOp(): Operator {
    return this.#ranking.fastest.op;
  }

  /** The fastest tier's profile name. */
  get fastestProfile(): string {
    return this.#ranking.fastest.name;
  }

  /** The coherence bus's counters and state (`[coherence]` in the settings), or undefined without one. */
  coherenceStats(): CoherenceStats | undefined {
    return this.#coherence?.stats();
  }

  /**
   * Calls `listener` for each save, delete or clear another instance announces on the coherence bus
   * (after this instance dropped its local copies). Without a bus it is never called. Returns the function that stops it.
   */
  onRemoteChange(listener: (change: RemoteChange) => void): () => void {
    return this.#coherence?.onRemoteChange(listener) ?? (() => {});
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#state.closed;
  }

  /**
   * The tier of profile `name` (also one that is down: see its `state`): read, write, delete, list and
   * stat one profile, with its time limit, retries, TTL, quota and counters.
   * @throws ProfileError for an unknown name, or a profile left out (saying why).
   */
  profile(name: string): Tier {
    this.#checkOpen();
    const tier = this.tiers.find((t) => t.name === name);
    if (tier) return tier;
    throw unknownProfile(
      name,
      this.profileErrors.get(name),
      this.tiers.map((t) => t.name),
    );
  }

  /**
   * Saves a JSON value under `key` to every profile (or `options.profiles`) in
   * parallel, compressed when large. Writes to one key apply in call order.
   * Profiles with `read_only = "true"` are skipped unless named.
   * @throws PartialWriteError listing every profile's outcome if any write failed (a `down` or
   *   `read-only` profile among them, with the reason).
   * @throws ProfileError for an unknown profile name (nothing is written).
   */
  saveValue(key: string, value: unknown, options: T.SaveOptions = {}): Promise<void> {
    // Not `async`: a synchronous save returns a settled promise without an extra hop.
    try {
      validateKey(key);
      const targets = this.#targets(options.profiles);
      const { data, size } = encodeJsonStored(value, { key });
      return this.#writer.write(key, targets, data, size, options, true);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Saves bytes as stored (`ZSTD` frame or raw JSON) to every profile or the named ones; as {@link saveValue}. */
  saveBytes(key: string, bytes: Uint8Array, options: T.SaveOptions = {}): Promise<void> {
    try {
      validateKey(key);
      return this.#writer.write(key, this.#targets(options.profiles), bytes, bytes.length, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Deletes `key` from every profile (or the named ones), in parallel. @throws PartialWriteError if any failed. */
  async deleteValue(key: string, options: Pick<T.SaveOptions, "profiles"> = {}): Promise<void> {
    validateKey(key);
    await this.#writer.delete(key, this.#targets(options.profiles));
  }

  /**
   * Loads the JSON value at `key`: fastest tier first, then the others in
   * speed order. A value found in a slower tier is written back to the
   * fastest in the background (never over a newer save); concurrent loads of
   * a key share one fallback read; a value that fails `decode` in the fastest
   * tier is replaced from a slower one (schema evolution).
   * @throws NotFoundError only if every tier was asked and said the key is absent.
   * @throws UnavailableError if the tiers asked do not have it but a durable tier could not be asked.
   * @throws DeserializeError if the key exists but no tier holds a value that decodes.
   */
  loadValue<V = unknown>(key: string, decode?: T.Decoder<V>): Promise<T.LoadResult<V>> {
    // Every error arrives as a rejection (a closed storage, a decoder that is not a function).
    if (this.#state.closed) return Promise.reject(closedError());
    if (decode !== undefined && typeof decode !== "function") return Promise.reject(badDecoder(decode));
    this.#health.loads(1);
    const dec = decode as T.Decoder<unknown> | undefined;
    const p = loadChannel.hasSubscribers
      ? loadChannel.tracePromise(() => this.#reader.load(key, dec), { key })
      : this.#reader.load(key, dec);
    return p as Promise<T.LoadResult<V>>;
  }

  /**
   * @internal A synchronous hit in the fastest tier, decoded, or `NO_HIT`
   * (then {@link loadValue} answers): `Persistable.load()` takes one promise for a hit.
   */
  loadHit(key: string, decode: T.Decoder<unknown>): unknown {
    if (this.#state.closed) return NO_HIT;
    const value = this.#reader.hit(key, decode);
    if (value !== NO_HIT) this.#health.loads(1);
    return value;
  }

  /**
   * Loads many keys, each as {@link loadValue} would, and never rejects for
   * one key: each outcome is `{ ok: true, value, profile, writeBack }` or
   * `{ ok: false, error }`, in the order of `keys`. Hits in an in-process
   * fastest tier are read in one pass (sqlite: one SELECT per 32 keys).
   * @throws PersistenceError for bad arguments; ClosedError if the storage is closed.
   */
  async loadValues<V = unknown>(
    keys: readonly string[],
    decode?: T.Decoder<V>,
    options: { concurrency?: number | undefined } = {},
  ): Promise<T.LoadOutcome<V>[]> {
    const concurrency = checkLoadMany(keys, decode, options.concurrency);
    this.#checkOpen();
    this.#health.loads(keys.length);
    return this.#reader.loadMany(keys, decode as T.Decoder<unknown>, concurrency) as Promise<T.LoadOutcome<V>[]>;
  }

  /**
   * The value at `key` if fresh, else the one `factory` makes, saved to every profile (expiring
   * `ttlMs + graceMs` later) and returned; concurrent calls for a key share one factory call. A value
   * past `ttlMs` but within `graceMs` is served at once (or after `timeoutMs`) while one background
   * call refreshes it, and served on if that call fails. The stored value is the plain JSON.
   * @throws FactoryError (`E_FACTORY`) when no value is stored and the factory fails or returns `undefined`.
   * @example
   * const user = await storage.getOrSet("user_1.json", () => fetchUser(1), { ttlMs: 60_000, graceMs: 600_000 });
   */
  getOrSet<V>(key: string, factory: () => V | Promise<V>, options: T.GetOrSetOptions<V> = {}): Promise<V> {
    return getOrSet(this, key, factory, options);
  }

  /**
   * Every key under `prefix` in the profiles that can list (the union, sorted), who answered, and who could
   * not be asked (down, failed, unable to list): `missed` is empty when the listing is complete.
   */
  listKeys(prefix = ""): Promise<T.KeyListing> {
    try {
      validatePrefix(prefix);
      this.#checkOpen();
      return listKeys(this.#ranking, prefix);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Whether any tier holds an unexpired value under `key`, asking the fastest first.
   * @throws UnavailableError if no tier asked has it and a durable tier could not be asked.
   */
  async exists(key: string): Promise<boolean> {
    validateKey(key);
    this.#checkOpen();
    return this.#reader.exists(key);
  }

  /**
   * Loads `keys` from the slower tiers into the fastest (cache warm-up), at
   * most `concurrency` at a time, and waits for the copies to land.
   * @example
   * await storage.cachePrefetch(["document_a.json", "document_b.json"]); // { found: 1, alreadyCached: 1, missing: 0, failed: [] }
   */
  cachePrefetch(keys: readonly string[], options: { concurrency?: number } = {}): Promise<T.PrefetchResult> {
    try {
      this.#checkOpen();
      const concurrency = checkConcurrency(options.concurrency ?? 16);
      if (!Array.isArray(keys)) throw new PersistenceError("Expected `keys` to be an array of strings");
      return prefetch(this.#reader, this.#ranking, keys, concurrency);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Removes, from every tier, values whose TTL has passed and, where the tier
   * can tell a value's age (it lists keys and keeps modification times),
   * values older than `ageMs`. Says per tier what it removed and what it could not check.
   */
  async cleanupOldEntries(ageMs: number): Promise<Record<string, T.CleanupReport>> {
    this.#checkOpen();
    return cleanupTiers(this.#ranking.order, this.#writer, checkMs(ageMs, "ttlMs", "zero allowed"));
  }

  /** State, median read latency (µs) and circuit breaker per tier (latency and breaker as live ranking sees them). */
  health(): Record<string, TierHealth> {
    return this.#health.report();
  }

  /** Resolves when every background write-back and purge scheduled so far has finished. */
  async flush(): Promise<void> {
    await this.#reader.flush();
    await Promise.all(this.#ranking.order.map((t) => t.flush()));
    await this.#coherence?.flush();
  }

  /** Counters per tier, with quota usage where a quota is set. */
  stats(): Record<string, T.ProfileStats> {
    return Object.fromEntries(this.tiers.map((t) => [t.name, t.stats()]));
  }

  /** Waits for background work, then closes every tier (file handles, locks, sockets). Idempotent. */
  async close(): Promise<void> {
    if (this.#state.closed) return;
    await this.flush();
    this.#state.closed = true;
    await this.#coherence?.close();
    await this.#rejoiner.close();
    await Promise.all(this.tiers.map((t) => t.op.close().catch(() => {})));
  }

  #checkOpen(): void {
    if (this.#state.closed) throw closedError();
  }

  #targets(profiles: readonly string[] | undefined): readonly Tier[] {
    this.#checkOpen();
    return profiles === undefined ? this.#writer.targets() : profiles.map((name) => this.profile(name));
  }
}

function closedError(): ClosedError {
  return new ClosedError("DeviceStorage is closed");
}
