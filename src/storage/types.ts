/**
 * Shapes shared by the storage modules (and part of the public API). A leaf
 * module: it imports nothing but other leaves, so every storage module can use
 * it without an import cycle. The glossary is in ARCHITECTURE.md.
 *
 * @module
 */
import type { ReadOnlyReason } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Operator, QuotaUsage, StatResult } from "../operators/types.js";

/** The part of `DeviceSettings` that storage needs: named profiles of string options. */
export interface StorageSettings {
  /** name -> options; `type` is the scheme. */
  profiles: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Profiles the settings layer could not resolve; reported as failed profiles. */
  profileErrors?: Readonly<Record<string, Error>> | undefined;
  /** Findings of the settings layer (a world-readable file holding secrets, ...), logged at warn. */
  warnings?: readonly string[] | undefined;
  /**
   * The coherence bus (`[coherence]`: `type` "redis" or "postgresql", `endpoint` / `cluster_endpoints` /
   * `connection_string`, `channel`), checked by `checkCoherence`. See README "Running several instances".
   */
  coherence?: Readonly<Record<string, string>> | undefined;
}

/** A profile a listing could not ask, and why (see {@link KeyListing}). */
export interface MissedProfile {
  profile: string;
  reason: string;
  /** Whether it is durable (a missed durable profile may hold keys no other has). */
  durable: boolean;
  /** It cannot list at all (its backend has no listing), rather than a failure that may pass. */
  unsupported: boolean;
}

/** What `DeviceStorage.listKeys` found: the keys (the union over the profiles asked, sorted), who answered, who not. */
export interface KeyListing {
  keys: string[];
  /** The profiles that answered. */
  asked: string[];
  /** The profiles that could not be asked: down, failed, or unable to list. Empty: the listing is complete. */
  missed: MissedProfile[];
}

/** What hears of each save and delete that reached a shared tier (the coherence bus). */
export interface ChangeSink {
  /**
   * A save or delete of `key` reached shared tier `profile`. Returns what the save waits for
   * (its announcement, where no server announces it), or undefined.
   */
  changed(op: "save" | "delete", key: string, profile: string): Promise<void> | undefined;
  /** A save's write of `key` to local tier `profile` failed: its copy may differ from the shared one. */
  localFailed(profile: string, key: string): void;
  /** A local tier that was down serves again: it missed every change meanwhile. */
  rejoined(profile: string): void;
  /** The operator a shared tier uses (the bus may watch its writes). */
  watch(profile: string, op: Operator): Operator;
}

/** An operator you opened yourself, as a profile of {@link DeviceStorage.fromOperators}. */
export interface OperatorProfile {
  name: string;
  op: Operator;
  /** A fixed rank value (lower is faster) instead of the probe's latency. */
  speed?: number;
  /** Time limit of each call in ms. */
  timeoutMs?: number;
  /** Retries of transient failures. @default 0 */
  retries?: number;
  /** Other instances write to it (see the `shared` profile option). @default by scheme: true for redis, postgresql, mysql, s3, ... */
  shared?: boolean;
}

/** Tuning of live ranking (see {@link DeviceStorageOptions.liveRanking}). */
export interface LiveRankingOptions {
  /** Latency samples per tier whose median ranks it. @default 5 */
  window?: number;
  /** A challenger takes first place only when this many times faster. @default 1.5 */
  hysteresis?: number;
  /** Consecutive failures that open the breaker. @default 5 */
  failureThreshold?: number;
  /** Milliseconds a tripped tier stays out of the read path before a trial. @default 5000 */
  cooldownMs?: number;
  /**
   * Least milliseconds between two background health checks: loads keep the
   * slower tiers' latencies fresh (and give a tripped one its trial) with an
   * `exists` of the probe key, one tier at a time, at most this often, so a
   * busy cache never turns into a stream of requests to a remote profile.
   * 0 checks every 32 loads. @default 1000
   */
  healthCheckMs?: number;
}

/** Options of {@link DeviceStorage.fromSettings}. */
export interface DeviceStorageOptions {
  /** Where diagnostics go. @default consoleLogger() (level from `TERRAPHIM_LOG`, default warn) */
  logger?: Logger;
  /** Timed reads per profile in the start-up probe; the median ranks the profile. @default 7 */
  probeReads?: number;
  /**
   * Live ranking: track the latency of real reads per tier, re-rank when a
   * slower tier overtakes the fastest, and take a repeatedly failing tier out
   * of the read path for a cool-down (circuit breaker). Tiers with a `speed`
   * override keep their rank but still have a breaker. `false` turns it off;
   * an object tunes it.
   * @default true
   */
  liveRanking?: boolean | LiveRankingOptions;
  /**
   * How this storage takes part in the coherence bus of the settings' `[coherence]` table (ignored without one).
   * `subscribe: false` only announces this storage's changes (a short-lived tool such as the CLI): its local
   * profiles then never serve reads, since it does not hear of other instances' changes.
   * `origin` names this instance on the bus. `bus` is the `[coherence]` table for storage made by
   * `fromOperators` (`fromSettings` takes the settings' own). @default { subscribe: true, origin: a random UUID }
   */
  coherence?: { subscribe?: boolean; origin?: string; bus?: Readonly<Record<string, string>> };
}

/**
 * Whether a tier serves, as {@link DeviceStorage.stats}, {@link DeviceStorage.health}
 * and the CLI's `profiles` show it:
 * - `ready`: reads and writes;
 * - `read-only`: reads; a save names it in its `PartialWriteError` with the
 *   reason (or, `configured` by `read_only = "true"`, skips it), and it is
 *   `ready` again after a write succeeds;
 * - `down`: neither (unreachable, or its circuit breaker is open); retried in
 *   the background from `nextRetryAt` (ms since the epoch), and by
 *   `DeviceStorage.retryDown()`; it joins the ranking when it answers.
 */
export type TierState =
  | { readonly kind: "ready" }
  | { readonly kind: "read-only"; readonly reason: ReadOnlyReason }
  | { readonly kind: "down"; readonly reason: string; readonly nextRetryAt: number };

/** Counters for one tier, from {@link DeviceStorage.stats}. */
export interface ProfileStats {
  /** Whether the tier serves now (see {@link TierState}). */
  state?: TierState;
  /** Whether other instances write to it (`shared`), or it is this instance's own (local). */
  shared?: boolean;
  hits: number;
  misses: number;
  /** Loads this tier answered after the faster ones missed. */
  fallbacks: number;
  /** Values copied into this (the fastest) tier by write-back. */
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

/**
 * Turns parsed JSON into the caller's type, or throws (any error) when the
 * value does not fit: a schema mismatch is treated like a JSON error.
 * May return a promise (async Standard Schema validators).
 */
export type Decoder<T> = (json: unknown) => T | Promise<T>;

/** Where a value was found by {@link DeviceStorage.loadValue}. */
export interface LoadResult<T> {
  value: T;
  /** The tier (profile) that served it. */
  profile: string;
  /** Whether a write-back to the fastest tier was scheduled. */
  writeBack: boolean;
}

/** One key's outcome in {@link DeviceStorage.loadValues}: a {@link LoadResult} with `ok: true`, or the error. */
export type LoadOutcome<T> = ({ ok: true } & LoadResult<T>) | { ok: false; error: Error };

/** What {@link DeviceStorage.cachePrefetch} did. */
export interface PrefetchResult {
  /** Keys copied from a slower tier into the fastest. */
  found: number;
  /** Keys the fastest tier already held. */
  alreadyCached: number;
  /** Keys no tier holds. */
  missing: number;
  /** Keys that could not be read or decoded, with the error. */
  failed: { key: string; error: Error }[];
}

/** What {@link DeviceStorage.cleanupOldEntries} did in one tier. */
export interface CleanupReport {
  /** Values removed because they were older than the given age. */
  removed: number;
  /** Values removed because their TTL had passed. */
  expired: number;
  /** What could not be checked there, and why. */
  skipped?: string;
}

/** When a value written to a tier expires: a time to live, or an absolute time. */
export interface ExpiryOptions {
  /**
   * Time to live in ms: after it, no tier returns the value. Overrides a
   * profile's `ttl_ms` default. The expiry is kept beside the value (never in
   * its JSON) and carried along by write-back, so a copy never lives longer.
   */
  ttlMs?: number | undefined;
  /** Absolute expiry in ms since the epoch (as {@link Tier.readEntry} reports it); instead of `ttlMs`. */
  expiresAt?: number | undefined;
}

/** Options of a save or delete. */
export interface SaveOptions extends ExpiryOptions {
  /** Write only to these profiles (default: all). */
  profiles?: readonly string[];
}

/** A value as one tier stores it, with its expiry. */
export interface TierEntry {
  /** The stored bytes (a `ZSTD` frame or the raw JSON). */
  data: Uint8Array;
  /** Expiry in ms since the epoch, if the value has a TTL. */
  expiresAt: number | undefined;
}

/** Watches tier calls for live ranking and the circuit breaker (see `ranking.ts`). */
export interface TierMonitor {
  /** Whether reads may go to the tier now (its breaker is closed, or due a trial). */
  available(name: string): boolean;
  /** A call that succeeded (or answered "absent") after `us` microseconds. */
  success(name: string, us: number): void;
  /** A call that failed (not a NotFound: absence is an answer). */
  failure(name: string): void;
  /** When the tier's open breaker allows its next trial (ms since the epoch), or 0 when it is closed. */
  breakerOpenUntil(name: string): number;
  /** The tier's server answered another connection (a listener back after a partition): an open breaker tries now. */
  retrySoon?(name: string): void;
}

/** The storage's own state, which its tiers read (no retries or late re-applies once closed). */
export interface Lifecycle {
  readonly closed: boolean;
}

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
  /** What the probe found: `ready`, `read-only` (with the reason) or `down`. */
  readonly state: TierState;
  /** The profile's `read_only` option: saves skip it. */
  readonly readOnly?: boolean | undefined;
  /** Other instances write to it (the `shared` option): the coherence bus publishes its changes. */
  readonly shared?: boolean | undefined;
  /** Opens the profile's operator again (profiles from settings): a down or read-only tier's retry may need a new one. */
  readonly reopen?: (() => Promise<Operator>) | undefined;
}

/** A value's size and modification time in one tier, and its expiry if it has a TTL. */
export interface TierStat extends StatResult {
  expiresAt?: number | undefined;
}

/** Options of {@link DeviceStorage.getOrSet}. Durations in ms; every one is checked (`NaN` or negative: an error). */
export interface GetOrSetOptions<V = unknown> {
  /**
   * How long the factory's value is fresh. Without it the value never goes
   * stale (the profiles' own `ttl_ms`, if any, still ends it).
   * @default undefined (never stale)
   * @example { ttlMs: 60_000 }
   */
  ttlMs?: number | undefined;
  /**
   * How long a value stays kept after `ttlMs`: within it, it is served
   * (stale) while one background call of the factory replaces it, and it is
   * served on when the factory fails. Needs `ttlMs`. The stored expiry is
   * `ttlMs + graceMs` after the save, so every profile keeps the value that
   * long and a plain `loadValue` returns it; "fresh" is that expiry minus the
   * `graceMs` of the call asking.
   * @default 0 (an expired value is absent)
   * @example { ttlMs: 60_000, graceMs: 3_600_000 }
   */
  graceMs?: number | undefined;
  /**
   * How long a caller holding a stale value waits for the factory's fresh
   * one before it gets the stale value (the factory keeps running and its
   * value is saved when it arrives). Only a stale value cuts the wait: with
   * no value at all, the caller waits for the factory however long it takes.
   * @default 0 (a stale value is served at once)
   * @example { ttlMs: 60_000, graceMs: 600_000, timeoutMs: 50 }
   */
  timeoutMs?: number | undefined;
  /**
   * Turns the stored JSON into the caller's type (as for `loadValue`); a
   * stored value it refuses counts as absent, so the factory replaces it.
   * The factory's own value is returned as it is.
   * @default undefined (the parsed JSON as it is)
   * @example { decode: (json) => userSchema.parse(json) }
   */
  decode?: Decoder<V> | undefined;
}

/** Counters of {@link DeviceStorage.getOrSet} for one storage, from `getOrSetStats(storage)`. */
export interface GetOrSetStats {
  /** Calls served a fresh stored value (no factory call). */
  fresh: number;
  /** Calls served a stale value (within grace: at once, after `timeoutMs`, or because the factory failed). */
  stale: number;
  /** Calls that found no value (or an undecodable one) and waited for the factory. */
  misses: number;
  /** Factory calls started (one per key at a time, however many callers wait). */
  factoryCalls: number;
  /** Factory calls that failed (threw, rejected or returned `undefined`); each is logged at warn when a stale value was served instead. */
  factoryErrors: number;
  /** Saves of a factory's value that failed in some profile (logged at warn; the value is still returned). */
  saveErrors: number;
}
