import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { loadChannel, probeChannel, saveChannel, traced } from "./_channels.js";
import { ExpiryIndex } from "./_expiry.js";
import { checkConcurrency, forEachLimit } from "./_limit.js";
import { LiveRanking, type LiveRankingOptions } from "./_live-ranking.js";
import { ProfileCalls } from "./_profile-calls.js";
import { asProfileError, type OpenedProfile, openProfile, probeReach, probeTime } from "./_profiles.js";
import { type Decoder, isCallerError, type LoadOutcome, TieredReader } from "./_tiered-read.js";
import { encodeJsonStored } from "./codec.js";
import {
  BackendError,
  NoOperatorError,
  NotFoundError,
  PartialWriteError,
  PersistenceError,
  ProfileError,
  type ProfileOutcome,
} from "./errors.js";
import { validateKey } from "./keys.js";
import { consoleLogger, type Logger } from "./logger.js";
import type { Operator, QuotaUsage } from "./operators/types.js";

/** The part of `DeviceSettings` that storage needs: named profiles of string options. */
export interface StorageSettings {
  /** name -> options; `type` is the scheme. */
  profiles: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Profiles the settings layer could not resolve; reported as failed profiles. */
  profileErrors?: Readonly<Record<string, Error>> | undefined;
  /** Findings of the settings layer (a world-readable file holding secrets, ...), logged at warn. */
  warnings?: readonly string[] | undefined;
}

/** Options of {@link DeviceStorage.fromSettings}. */
export interface DeviceStorageOptions {
  /** Where diagnostics go. @default consoleLogger() (level from `TERRAPHIM_LOG`, default warn) */
  logger?: Logger;
  /**
   * Timed reads per profile in the start-up probe; the median ranks the profile.
   * @default 7
   */
  probeReads?: number;
  /**
   * Live ranking: track the latency of real reads per profile, re-rank when a
   * slower profile overtakes the fastest, and take a repeatedly failing
   * profile out of the read path for a cool-down (circuit breaker). Profiles
   * with a `speed` override keep their rank value but still have a breaker.
   * `false` turns it off; an object tunes it.
   * @default true
   */
  liveRanking?: boolean | LiveRankingOptions;
}

/** A profile that opened and passed its probe. */
export interface ProfileEntry {
  /** Profile name from the settings. */
  readonly name: string;
  /** Its scheme (`type`). */
  readonly scheme: string;
  /** The operator serving it. */
  readonly op: Operator;
  /** Rank value: the median probe read in microseconds, or the profile's `speed` override. Lower is faster. */
  readonly speed: number;
  /** The measured median probe read in microseconds (even when `speed` was overridden). */
  readonly measuredSpeed: number;
  /** Per-call time limit in ms, if any (`timeout_ms`; remote schemes default to 10 s). */
  readonly timeoutMs: number | undefined;
  /** Retries of a call that failed with a transient error (`retries`; remote schemes default to 2, native to 0). */
  readonly retries: number;
  /** Default time to live of values saved to this profile (`ttl_ms`), if any. */
  readonly defaultTtlMs: number | undefined;
  /** The reserved key the start-up probe used (deleted again before start-up finished). */
  readonly probeKey: string;
}

/** Counters for one profile, from {@link DeviceStorage.stats}. */
export interface ProfileStats {
  hits: number;
  misses: number;
  /** Loads this profile answered after the faster ones missed. */
  fallbacks: number;
  /** Values copied into this (the fastest) profile by write-back. */
  writeBacks: number;
  /** Write-backs skipped because a newer save or delete came first. */
  writeBacksSkipped: number;
  /** Failed calls (reads, writes, deletes, write-backs). */
  failures: number;
  bytesRead: number;
  bytesWritten: number;
  /** Quota usage (items, bytes, limits, evictions) where the profile has `max_size` / `max_items`. */
  usage?: QuotaUsage;
}

/** Where a value was found by {@link DeviceStorage.loadValue}. */
export interface LoadResult<T> {
  value: T;
  /** The profile that served it. */
  profile: string;
  /** Whether a write-back to the fastest profile was scheduled. */
  writeBack: boolean;
}

/** One key's outcome in {@link DeviceStorage.loadValues}: a {@link LoadResult} with `ok: true`, or the error. */
export type { LoadOutcome };

/** What {@link DeviceStorage.cachePrefetch} did. */
export interface PrefetchResult {
  /** Keys copied from a slower profile into the fastest. */
  found: number;
  /** Keys the fastest profile already held. */
  alreadyCached: number;
  /** Keys no profile holds. */
  missing: number;
  /** Keys that could not be read or decoded, with the error. */
  failed: { key: string; error: Error }[];
}

/** What {@link DeviceStorage.cleanupOldEntries} did in one profile. */
export interface CleanupReport {
  /** Values removed because they were older than the given age. */
  removed: number;
  /** Values removed because their TTL had passed. */
  expired: number;
  /** What could not be checked there, and why. */
  skipped?: string;
}

/** Options of a save. */
export interface SaveOptions {
  /** Write only to these profiles (default: all). */
  profiles?: readonly string[];
  /**
   * Time to live in ms: after it, no profile returns the value. Overrides a
   * profile's `ttl_ms` default. The expiry is kept beside the value (never in
   * its JSON) and carried along by write-back, so a copy never lives longer.
   */
  ttlMs?: number;
}

/** Prefix of the start-up probe keys; never used by values (normalized keys have no dot first). */
export const PROBE_KEY_PREFIX = ".terraphim-probe-";

let singleton: Promise<DeviceStorage> | undefined;
let singletonMemoryOnly = false;

/**
 * Storage over several named profiles, ranked by measured speed.
 * Reads go to the fastest first and fall back in speed order; writes go to
 * every profile in parallel (or to the named ones).
 *
 * @example
 * const storage = await DeviceStorage.fromSettings(await loadSettings());
 * await storage.saveValue("document_x.json", { id: "x" });
 * const { value, profile } = await storage.loadValue("document_x.json");
 */
export class DeviceStorage {
  /** Profiles left out, with the reason. */
  readonly profileErrors: ReadonlyMap<string, PersistenceError>;
  readonly logger: Logger;

  #ranked: readonly ProfileEntry[];
  #ops: ReadonlyMap<string, ProfileEntry>;
  readonly #live: LiveRanking<ProfileEntry> | undefined;
  #loads = 0;
  #healthCursor = 0;
  #lastHealthCheck = Number.NEGATIVE_INFINITY;
  readonly #healthCheckMs: number;
  readonly #calls: ProfileCalls;
  readonly #expiry = new ExpiryIndex();
  /** Background tasks other than write-backs (purges of expired values). */
  readonly #background = new Set<Promise<void>>();
  readonly #stats = new Map<string, ProfileStats>();
  readonly #reader: TieredReader;
  /** Keys with a save or delete in progress (count of writers). */
  readonly #writing = new Map<string, number>();
  #closed = false;

  private constructor(
    ranked: ProfileEntry[],
    errors: Map<string, PersistenceError>,
    logger: Logger,
    options: DeviceStorageOptions,
    fixed: ReadonlySet<string>,
  ) {
    if (!ranked[0]) throw new NoOperatorError("No storage profile could be opened");
    this.#ranked = ranked;
    this.#ops = new Map(ranked.map((e) => [e.name, e]));
    this.profileErrors = errors;
    this.logger = logger;
    for (const e of ranked) this.#stats.set(e.name, emptyStats());
    const live =
      options.liveRanking === false ? undefined : typeof options.liveRanking === "object" ? options.liveRanking : {};
    this.#healthCheckMs = healthCheckMsOf(options);
    this.#live =
      live && ranked.length > 1
        ? new LiveRanking(
            ranked,
            (e) => fixed.has(e.name),
            (order, reason) => this.#reorder(order, reason),
            live,
          )
        : undefined;
    this.#calls = new ProfileCalls({
      logger,
      live: this.#live,
      closed: () => this.#closed,
      failed: (profile) => {
        this.#stats.get(profile)!.failures++;
      },
    });
    this.#reader = new TieredReader({
      ranked,
      logger,
      stats: (name) => this.#stats.get(name)!,
      call: (entry, what, key, fn) => this.#calls.call(entry, what, key, fn),
      queued: (entry, what, key, fn) => this.#calls.queued(entry, what, key, fn),
      writeInProgress: (key) => this.#writing.has(key),
      available: (entry) => this.#live?.available(entry.name) ?? true,
      expiresAt: (entry, key) => this.#expiry.expiresAt(entry.name, entry.op, key),
      store: (entry, key, bytes, at) =>
        this.#expiry.needsMeta(entry.name, key, at)
          ? this.#expiry.write(entry.name, entry.op, key, bytes, at)
          : entry.op.write(key, bytes),
      purge: (entry, key) => this.#purge(entry, key),
      plainSync: (entry, key) =>
        entry.timeoutMs === undefined &&
        entry.retries === 0 &&
        !this.#expiry.active &&
        !this.#calls.hasQueued(entry.name, key),
      observeSync: this.#live ? (entry, us) => this.#live?.success(entry.name, us) : undefined,
    });
  }

  /** Profiles that work, fastest first (live ranking may reorder them). */
  get ops(): ReadonlyMap<string, ProfileEntry> {
    return this.#ops;
  }

  /** The fastest profile's operator: reads start here and write-back fills it. */
  get fastestOp(): Operator {
    return this.#ranked[0]!.op;
  }

  /** The fastest profile's name. */
  get fastestProfile(): string {
    return this.#ranked[0]!.name;
  }

  #reorder(order: readonly ProfileEntry[], reason: string): void {
    this.#ranked = order;
    this.#ops = new Map(order.map((e) => [e.name, e]));
    this.#reader.setRanking(order);
    this.logger.info({ ranking: order.map((e) => e.name).join(", "), reason }, "profiles re-ranked");
  }

  /**
   * Opens every profile, probes each one (a reserved key, written, read
   * several times and deleted) and ranks them by the median read.
   * A profile that fails is left out with a `ProfileError` in
   * {@link profileErrors}; it is never replaced by another backend.
   *
   * @throws NoOperatorError when no profile works (the message lists why each failed).
   */
  static async fromSettings(settings: StorageSettings, options: DeviceStorageOptions = {}): Promise<DeviceStorage> {
    healthCheckMsOf(options); // bad options fail before anything is opened
    const logger = options.logger ?? consoleLogger();
    const probeReads = Math.max(1, options.probeReads ?? 7);
    const errors = new Map<string, PersistenceError>();
    for (const warning of settings.warnings ?? []) logger.warn(warning);
    for (const [name, err] of Object.entries(settings.profileErrors ?? {})) {
      errors.set(name, asProfileError(name, err));
    }
    const names = Object.keys(settings.profiles ?? {});
    // Open in parallel (network round trips overlap), probe one at a time (timings do not disturb each other).
    const opened = await Promise.all(
      names.map(async (name) => {
        try {
          return await openProfile(name, settings.profiles[name] ?? {});
        } catch (err) {
          errors.set(name, asProfileError(name, err));
          return undefined;
        }
      }),
    );
    return DeviceStorage.#rank(
      opened.filter((o) => o !== undefined),
      errors,
      logger,
      probeReads,
      options,
    );
  }

  /**
   * Storage over operators you opened yourself (custom drivers, wrapped
   * operators). Each is probed as in {@link fromSettings}; `speed` overrides
   * the measured rank value.
   */
  static async fromOperators(
    profiles: readonly { name: string; op: Operator; speed?: number; timeoutMs?: number; retries?: number }[],
    options: DeviceStorageOptions = {},
  ): Promise<DeviceStorage> {
    healthCheckMsOf(options);
    const seen = new Set<string>();
    for (const p of profiles) {
      if (seen.has(p.name)) throw new ProfileError(`Duplicate profile name "${p.name}"`, { profile: p.name });
      seen.add(p.name);
    }
    return DeviceStorage.#rank(
      profiles.map((p) => ({
        name: p.name,
        scheme: p.op.scheme,
        op: p.op,
        speedOverride: p.speed,
        timeoutMs: p.timeoutMs,
        retries: p.retries ?? 0,
      })),
      new Map(),
      options.logger ?? consoleLogger(),
      Math.max(1, options.probeReads ?? 7),
      options,
    );
  }

  static async #rank(
    opened: readonly OpenedProfile[],
    errors: Map<string, PersistenceError>,
    logger: Logger,
    probeReads: number,
    options: DeviceStorageOptions,
  ): Promise<DeviceStorage> {
    const entries: ProfileEntry[] = [];
    // Reach every profile at once (write the probe key, read it back), so dead or hung
    // servers cost one time limit in all; then time the survivors one at a time.
    const reached = await Promise.all(
      opened.map(async (o) => {
        const probeKey = `${PROBE_KEY_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`;
        try {
          await probeReach(o.op, probeKey, o.timeoutMs, o.name);
          return { o, probeKey };
        } catch (err) {
          errors.set(o.name, asProfileError(o.name, err, "failed its start-up probe"));
          await o.op.close().catch(() => {});
          return undefined;
        }
      }),
    );
    for (const r of reached) {
      if (!r) continue;
      const { o, probeKey } = r;
      try {
        const measured = await traced(probeChannel, { profile: o.name, scheme: o.scheme }, () =>
          probeTime(o.op, probeKey, o.timeoutMs, probeReads, o.name),
        );
        entries.push({
          name: o.name,
          scheme: o.scheme,
          op: o.op,
          timeoutMs: o.timeoutMs,
          retries: o.retries,
          defaultTtlMs: o.defaultTtlMs,
          probeKey,
          measuredSpeed: measured,
          speed: o.speedOverride ?? measured,
        });
      } catch (err) {
        errors.set(o.name, asProfileError(o.name, err, "failed its start-up probe"));
        await o.op.close().catch(() => {});
      }
    }
    for (const [name, err] of errors) logger.warn({ profile: name, err: err.message }, "storage profile left out");
    // Stable sort: equal speeds keep settings order.
    entries.sort((a, b) => a.speed - b.speed);
    if (entries.length === 0) {
      const why = [...errors].map(([n, e]) => `${n}: ${e.message}`).join("; ");
      throw new NoOperatorError(`No storage profile could be opened${why ? ` (${why})` : " (no profiles configured)"}`);
    }
    logger.debug(
      { ranking: entries.map((e) => `${e.name}=${e.speed.toFixed(1)}us`).join(", ") },
      "storage profiles ranked",
    );
    const fixed = new Set(opened.filter((o) => o.speedOverride !== undefined).map((o) => o.name));
    const storage = new DeviceStorage(entries, errors, logger, options, fixed);
    await storage.#expiry.init(entries);
    return storage;
  }

  /**
   * The process-wide storage, created on first call from the settings folder
   * (`TERRAPHIM_SETTINGS_PATH` or the platform config folder; a default
   * settings file is written on first run). If {@link initMemoryOnly} ran
   * first, this returns that memory-only storage.
   */
  static instance(): Promise<DeviceStorage> {
    if (!singleton) {
      singletonMemoryOnly = false;
      singleton = (async () => {
        const { loadSettings } = await import("./settings/index.js");
        return DeviceStorage.fromSettings(await loadSettings());
      })();
      singleton.catch(() => {
        singleton = undefined;
      });
    }
    return singleton;
  }

  /**
   * Makes the process-wide storage a single in-memory profile (tests, demos,
   * ephemeral tools). Returns the existing singleton if it is already memory-only.
   * @throws ProfileError if the singleton was already created from settings.
   */
  static async initMemoryOnly(): Promise<DeviceStorage> {
    if (singleton && !singletonMemoryOnly) {
      throw new ProfileError(
        "DeviceStorage.initMemoryOnly(): the storage singleton was already created from settings; call initMemoryOnly() before the first DeviceStorage.instance(), or use DeviceStorage.fromSettings() for an independent store",
      );
    }
    if (!singleton) {
      singletonMemoryOnly = true;
      singleton = DeviceStorage.fromSettings({ profiles: { memory: { type: "memory" } } });
      singleton.catch(() => {
        singleton = undefined;
      });
    }
    return singleton;
  }

  /** Closes and forgets the singleton (tests, shutdown). */
  static async resetInstance(): Promise<void> {
    const s = singleton;
    singleton = undefined;
    singletonMemoryOnly = false;
    if (s) await (await s.catch(() => undefined))?.close();
  }

  /** Profiles in speed order, fastest first. */
  get ranked(): readonly ProfileEntry[] {
    return this.#ranked;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Saves a JSON value under `key` to every profile (or `options.profiles`) in
   * parallel, compressed by the codec when large. Writes to one key are
   * applied in call order in every profile.
   * @throws PartialWriteError listing every profile's outcome if any write failed.
   * @throws ProfileError for an unknown profile name (nothing is written).
   */
  saveValue(key: string, value: unknown, options: SaveOptions = {}): Promise<void> {
    // Not `async`: a save done synchronously (in-process profiles) returns a settled promise
    // without an extra await; every error still arrives as a rejection.
    try {
      validateKey(key);
      const targets = this.#targets(options.profiles);
      const { data, size } = encodeJsonStored(value, { key });
      return this.#writeBytes(key, targets, data, size, options.ttlMs, true) ?? SAVED;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Saves already-encoded bytes (as stored: `ZSTD` frame or raw) to every profile or the named ones.
   * @throws PartialWriteError, ProfileError as {@link saveValue}.
   */
  saveBytes(key: string, bytes: Uint8Array, options: SaveOptions = {}): Promise<void> {
    try {
      validateKey(key);
      const targets = this.#targets(options.profiles);
      return this.#writeBytes(key, targets, bytes, bytes.length, options.ttlMs) ?? SAVED;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * `bytes`: as stored, or the JSON text standing for them (`size` bytes). `owned`: they were made
   * for this save (by the encoder) and may be kept as they are by an in-memory tier.
   */
  #writeBytes(
    key: string,
    targets: readonly ProfileEntry[],
    bytes: Uint8Array | string,
    size: number,
    ttlMs: number | undefined,
    owned = false,
  ) {
    if (ttlMs !== undefined && (typeof ttlMs !== "number" || !(ttlMs > 0))) {
      throw new PersistenceError(`Expected \`ttlMs\` to be a positive number of milliseconds, got ${String(ttlMs)}`, {
        key,
      });
    }
    if (ttlMs === undefined && this.#writeSyncAll(key, targets, bytes, size, owned)) return;
    const now = Date.now();
    return this.#writeAll(
      key,
      targets,
      "write",
      (e) => {
        const ttl = ttlMs ?? e.defaultTtlMs;
        const at = ttl === undefined ? undefined : now + ttl;
        return this.#expiry.needsMeta(e.name, key, at)
          ? this.#expiry.write(e.name, e.op, key, bytes, at)
          : e.op.write(key, bytes);
      },
      size,
    );
  }

  /**
   * The synchronous save: when every target is an in-process store that can
   * write synchronously (memory, sqlite) with no time limit, retries, TTL
   * metadata or queued write of this key, the writes are done right here, in
   * order, without a promise per profile. Returns false (nothing written)
   * when the async path is needed.
   */
  #writeSyncAll(
    key: string,
    targets: readonly ProfileEntry[],
    bytes: Uint8Array | string,
    size: number,
    owned: boolean,
  ): boolean {
    if (saveChannel.hasSubscribers) return false;
    for (const e of targets) {
      if (
        !e.op.writeSync ||
        e.timeoutMs !== undefined ||
        e.retries > 0 ||
        e.defaultTtlMs !== undefined ||
        this.#calls.hasQueued(e.name, key) ||
        this.#expiry.needsMeta(e.name, key, undefined)
      ) {
        return false;
      }
    }
    this.#reader.invalidate(key);
    let outcomes: ProfileOutcome[] | undefined;
    for (let i = 0; i < targets.length; i++) {
      const e = targets[i]!;
      const st = this.#stats.get(e.name)!;
      try {
        e.op.writeSync!(key, bytes, owned);
        st.bytesWritten += size;
        outcomes?.push({ profile: e.name, ok: true });
      } catch (err) {
        if (isCallerError(err)) throw err;
        st.failures++;
        this.#live?.failure(e.name);
        outcomes ??= targets.slice(0, i).map((t) => ({ profile: t.name, ok: true }));
        outcomes.push({ profile: e.name, ok: false, error: err as Error });
      }
    }
    if (outcomes) throw new PartialWriteError(key, outcomes);
    return true;
  }

  /**
   * Deletes `key` from every profile (or the named ones), in parallel.
   * @throws PartialWriteError if any delete failed.
   */
  async deleteValue(key: string, options: SaveOptions = {}): Promise<void> {
    validateKey(key);
    await this.#writeAll(
      key,
      this.#targets(options.profiles),
      "delete",
      (e) =>
        this.#expiry.needsMeta(e.name, key, undefined) ? this.#expiry.delete(e.name, e.op, key) : e.op.delete(key),
      0,
    );
  }

  /**
   * Loads the JSON value at `key`: fastest profile first, then the others in
   * speed order. A value found in a slower profile is written back to the
   * fastest in the background (never over a newer save). Concurrent loads of a
   * key share one fallback read. A value that fails `decode` in the fastest
   * profile is replaced from a slower one (schema evolution).
   *
   * @throws NotFoundError if every profile says the key is absent.
   * @throws DeserializeError if the key exists but no profile holds a value that decodes.
   * @throws BackendError if the key was not found and some profile failed (so absence is not certain).
   */
  loadValue<T = unknown>(key: string, decode?: Decoder<T>): Promise<LoadResult<T>> {
    // Every error arrives as a rejection (a closed storage, a decoder that is not a function).
    if (this.#closed || (decode !== undefined && typeof decode !== "function")) {
      return Promise.reject(this.#closed ? closedError() : notADecoder(decode));
    }
    if (this.#live && (++this.#loads & 31) === 0) this.#healthCheck();
    if (!loadChannel.hasSubscribers) return this.#reader.load(key, decode);
    return loadChannel.tracePromise(() => this.#reader.load(key, decode), { key });
  }

  /**
   * Loads many keys, each as {@link loadValue} would (fastest profile first,
   * fallback, write-back, schema evolution), and never rejects for one key:
   * each outcome is `{ ok: true, value, profile, writeBack }` or
   * `{ ok: false, error }` (a `NotFoundError` for an absent key), in the order
   * of `keys`. Hits in an in-process fastest profile are read in one pass
   * (sqlite: one SELECT per 32 keys); the other keys are loaded at most
   * `concurrency` at a time.
   *
   * @throws PersistenceError if `keys` is not an array or `concurrency` is not a positive integer;
   *   ClosedError if the storage is closed.
   * @example
   * const out = await storage.loadValues(["a.json", "b.json"]);
   * for (const o of out) if (o.ok) use(o.value); else if (!(o.error instanceof NotFoundError)) throw o.error;
   */
  async loadValues<T = unknown>(
    keys: readonly string[],
    decode?: Decoder<T>,
    options: { concurrency?: number | undefined } = {},
  ): Promise<LoadOutcome<T>[]> {
    const concurrency = checkConcurrency(options.concurrency ?? 16);
    if (!Array.isArray(keys)) {
      throw new PersistenceError(`Expected \`keys\` to be an array of strings, got ${typeof keys}`);
    }
    if (decode !== undefined && typeof decode !== "function") throw notADecoder(decode);
    this.#checkOpen();
    if (loadChannel.hasSubscribers) {
      // Traced: one load span per key, as loadValue gives.
      const out = new Array<LoadOutcome<T>>(keys.length);
      await forEachLimit(keys, concurrency, async (key, i) => {
        try {
          out[i] = { ok: true, ...(await this.loadValue(key, decode)) };
        } catch (err) {
          out[i] = { ok: false, error: err as Error };
        }
      });
      return out;
    }
    if (this.#live) {
      const before = this.#loads;
      this.#loads += keys.length;
      if (this.#loads >> 5 !== before >> 5) this.#healthCheck();
    }
    return this.#reader.loadMany(keys, decode as Decoder<unknown> | undefined, concurrency) as Promise<
      LoadOutcome<T>[]
    >;
  }

  /**
   * Whether any profile holds `key`, asking the fastest first.
   * @throws BackendError if no profile has it and some could not be asked (absence is not certain).
   */
  async exists(key: string): Promise<boolean> {
    validateKey(key);
    this.#checkOpen();
    const failed: string[] = [];
    let cause: unknown;
    for (const e of this.#ranked) {
      try {
        if (await this.#calls.call(e, "exists", key, () => e.op.exists(key))) return true;
      } catch (err) {
        if (err instanceof PersistenceError && err.code === "E_INVALID_KEY") throw err;
        this.#stats.get(e.name)!.failures++;
        failed.push(`${e.name}: ${(err as Error).message}`);
        cause ??= err;
      }
    }
    if (failed.length > 0) {
      throw new BackendError(`Cannot tell whether "${key}" exists: ${failed.join("; ")}`, {
        key,
        cause,
        transient: true,
      });
    }
    return false;
  }

  /**
   * Loads `keys` from the slower profiles into the fastest (cache warm-up),
   * at most `concurrency` at a time, and waits for the copies to land. Values
   * must decode as JSON; each key is counted once.
   * @example
   * const r = await storage.cachePrefetch(["document_a.json", "document_b.json"]);
   * // { found: 1, alreadyCached: 1, missing: 0, failed: [] }
   */
  async cachePrefetch(keys: readonly string[], options: { concurrency?: number } = {}): Promise<PrefetchResult> {
    this.#checkOpen();
    const concurrency = checkConcurrency(options.concurrency ?? 16);
    if (!Array.isArray(keys)) throw new PersistenceError("Expected `keys` to be an array of strings");
    const result: PrefetchResult = { found: 0, alreadyCached: 0, missing: 0, failed: [] };
    await forEachLimit([...new Set(keys)], concurrency, async (key) => {
      try {
        const r = await this.#reader.load(key);
        if (r.profile === this.fastestProfile && !r.writeBack) result.alreadyCached++;
        else result.found++;
      } catch (err) {
        if (err instanceof NotFoundError) result.missing++;
        else if (err instanceof PersistenceError && err.code === "E_CLOSED") throw err;
        else result.failed.push({ key, error: err as Error });
      }
    });
    await this.flush();
    return result;
  }

  /**
   * Removes entries older than `ttlMs` from every profile that can tell a
   * value's age (it lists keys and reports modification times), and every
   * value whose TTL has passed. Says, per profile, what it removed and what
   * it could not check.
   * @example
   * const report = await storage.cleanupOldEntries(7 * 24 * 3600_000);
   * // { memory: { removed: 3, expired: 1 }, sqlite: { removed: 0, expired: 1, skipped: "cannot tell age: ..." } }
   */
  async cleanupOldEntries(ttlMs: number): Promise<Record<string, CleanupReport>> {
    this.#checkOpen();
    if (typeof ttlMs !== "number" || !(ttlMs >= 0)) {
      throw new PersistenceError(
        `Expected \`ttlMs\` to be a non-negative number of milliseconds, got ${String(ttlMs)}`,
      );
    }
    const now = Date.now();
    const report: Record<string, CleanupReport> = {};
    await Promise.all(
      this.#ranked.map(async (e) => {
        const r: CleanupReport = { removed: 0, expired: 0 };
        report[e.name] = r;
        const remove = (key: string) =>
          this.#writeAll(key, [e], "delete", (x) => this.#expiry.delete(x.name, x.op, key), 0);
        for (const key of this.#expiry.expired(e.name, now)) {
          await remove(key);
          r.expired++;
        }
        const why: string[] = [];
        if (!this.#expiry.complete(e.name)) why.push("TTL metadata cannot be enumerated (the backend cannot list)");
        if (!e.op.capabilities.list) why.push(`cannot tell age: ${e.scheme} cannot list its keys`);
        else if (!e.op.capabilities.lastModified) why.push(`cannot tell age: ${e.scheme} keeps no modification time`);
        else {
          for (const key of await e.op.list()) {
            if (key.startsWith(".terraphim-")) continue;
            const st = await e.op.stat(key).catch(() => undefined);
            if (st?.lastModified && now - st.lastModified.getTime() > ttlMs) {
              await remove(key);
              r.removed++;
            }
          }
        }
        if (why.length) r.skipped = why.join("; ");
      }),
    );
    return report;
  }

  /** An expired value seen by a load: removed from that profile in the background, unless rewritten meanwhile. */
  #purge(entry: ProfileEntry, key: string): void {
    const task = this.#calls
      .queued(entry, "purge", key, async () => {
        const at = await this.#expiry.expiresAt(entry.name, entry.op, key);
        if (at !== undefined && at <= Date.now()) await this.#expiry.delete(entry.name, entry.op, key);
      })
      .catch((err) => this.logger.debug({ profile: entry.name, key, err }, "purge of an expired value failed"))
      .finally(() => this.#background.delete(task));
    this.#background.add(task);
  }

  /**
   * Every 32 loads, one profile other than the fastest answers a cheap
   * `exists` in the background, so a demoted or tripped profile's latency
   * stays known and it can win its place back when it recovers.
   */
  /** Called every 32 loads: one health check, unless one ran within `healthCheckMs`. */
  #healthCheck(): void {
    const now = performance.now();
    if (now - this.#lastHealthCheck < this.#healthCheckMs) return;
    this.#lastHealthCheck = now;
    const others = this.#ranked.slice(1);
    if (others.length === 0 || this.#closed) return;
    const e = others[this.#healthCursor++ % others.length]!;
    if (!this.#live!.available(e.name)) return;
    this.#calls.call(e, "health check", e.probeKey, () => e.op.exists(e.probeKey)).catch(() => {});
  }

  /**
   * Moving-average read latency (µs) and circuit-breaker state per profile,
   * as live ranking sees them (empty when live ranking is off).
   */
  health(): Record<string, { latencyUs: number; open: boolean; consecutiveFailures: number }> {
    return this.#live?.snapshot() ?? {};
  }

  /** Resolves when every background write-back scheduled so far has finished (for tests and shutdown). */
  async flush(): Promise<void> {
    await this.#reader.flush();
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  /** Counters per profile, with quota usage where a quota is set. */
  stats(): Record<string, ProfileStats> {
    return Object.fromEntries(
      [...this.#stats].map(([k, v]) => {
        const usage = this.#ops.get(k)?.op.usage?.();
        return [k, usage ? { ...v, usage } : { ...v }];
      }),
    );
  }

  /** Waits for background work, then closes every profile (file handles, locks, sockets). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    await Promise.all(this.#ranked.map((e) => e.op.close().catch(() => {})));
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }

  #targets(profiles: readonly string[] | undefined): readonly ProfileEntry[] {
    this.#checkOpen();
    if (profiles === undefined) return this.#ranked;
    return profiles.map((name) => {
      const e = this.ops.get(name);
      if (e) return e;
      const left = this.profileErrors.get(name);
      throw new ProfileError(
        left
          ? `Profile "${name}" is not available: ${left.message}`
          : `Unknown profile name: ${name}. Available profiles: ${[...this.ops.keys()].join(", ")}`,
        { profile: name },
      );
    });
  }

  #writeAll(
    key: string,
    targets: readonly ProfileEntry[],
    what: "write" | "delete",
    fn: (entry: ProfileEntry) => Promise<void>,
    size: number,
  ): Promise<void> {
    if (!saveChannel.hasSubscribers) return this.#writeAllUntraced(key, targets, what, fn, size);
    const context = { key, op: what, profiles: targets.map((t) => t.name), bytes: size };
    return saveChannel.tracePromise(() => this.#writeAllUntraced(key, targets, what, fn, size), context);
  }

  async #writeAllUntraced(
    key: string,
    targets: readonly ProfileEntry[],
    what: "write" | "delete",
    fn: (entry: ProfileEntry) => Promise<void>,
    size: number,
  ): Promise<void> {
    // Any write-back whose read began before this write must not land after it.
    this.#reader.invalidate(key);
    this.#writing.set(key, (this.#writing.get(key) ?? 0) + 1);
    try {
      const settled = await Promise.allSettled(targets.map((e) => this.#calls.queued(e, what, key, () => fn(e))));
      const outcomes: ProfileOutcome[] = settled.map((r, i) => {
        const profile = targets[i]!.name;
        const st = this.#stats.get(profile)!;
        if (r.status === "fulfilled") {
          st.bytesWritten += size;
          return { profile, ok: true };
        }
        st.failures++;
        return { profile, ok: false, error: r.reason as Error };
      });
      if (outcomes.some((o) => !o.ok)) throw new PartialWriteError(key, outcomes);
    } finally {
      const n = this.#writing.get(key)! - 1;
      if (n === 0) this.#writing.delete(key);
      else this.#writing.set(key, n);
    }
  }
}

function closedError(): PersistenceError {
  return new PersistenceError("DeviceStorage is closed", {}, "E_CLOSED");
}

/** A schema object passed where a decoder function goes is the usual mistake: say how to fix it. */
function notADecoder(decode: unknown): PersistenceError {
  const what = decode === null ? "null" : typeof decode;
  const schema = typeof decode === "object" && decode !== null && "~standard" in decode;
  return new PersistenceError(
    `Expected \`decode\` to be a function (json) => value, got ${schema ? "a Standard Schema object: wrap it with schemaDecoder(schema)" : what}`,
  );
}

/** `liveRanking.healthCheckMs`, checked (default 1000). */
function healthCheckMsOf(options: DeviceStorageOptions): number {
  const live = typeof options.liveRanking === "object" ? options.liveRanking : undefined;
  const every = live?.healthCheckMs ?? 1000;
  if (typeof every !== "number" || !(every >= 0)) {
    throw new PersistenceError(
      `Expected \`liveRanking.healthCheckMs\` to be a non-negative number of milliseconds, got ${String(every)}`,
    );
  }
  return every;
}

/** What a save done synchronously returns (settled; nothing to wait for). */
const SAVED: Promise<void> = Promise.resolve();

function emptyStats(): ProfileStats {
  return {
    hits: 0,
    misses: 0,
    fallbacks: 0,
    writeBacks: 0,
    writeBacksSkipped: 0,
    failures: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };
}

export { withTimeout } from "./_profiles.js";
