/**
 * Options, checked once: a profile's storage-layer options (`speed`,
 * `timeout_ms`, `retries`, quotas, `ttl_ms`) split from the backend's own, and
 * the {@link DeviceStorageOptions} of a storage. Everything else takes the
 * normalised result and never re-checks.
 *
 * @module
 */
import { PersistenceError, ProfileError } from "../errors.js";
import { consoleLogger, type Logger } from "../logger.js";
import { createOperator, NATIVE_SCHEMES } from "../operators/index.js";
import type { Operator } from "../operators/types.js";
import { parseSize, quotaOperator } from "../operators/wrappers/quota.js";
import { type CoherenceConfig, checkCoherence } from "../settings/coherence.js";
import type { DeviceStorageOptions, LiveRankingOptions, StorageSettings } from "./types.js";

/** Profile options the storage layer reads itself; they are never passed to the backend. */
export const STORAGE_OPTION_KEYS: readonly string[] = Object.freeze([
  "type",
  "speed",
  "timeout_ms",
  "retries",
  "max_size",
  "max_items",
  "quota_policy",
  "ttl_ms",
  "read_only",
  "shared",
]);
const STORAGE_KEYS = new Set(STORAGE_OPTION_KEYS);

/** Time limit of each call to a remote scheme without `timeout_ms`. */
const DEFAULT_REMOTE_TIMEOUT_MS = 10_000;
/** Retries of a remote scheme without `retries`. */
const DEFAULT_REMOTE_RETRIES = 2;
const MAX_RETRIES = 10;
const DEFAULT_PROBE_READS = 7;
const DEFAULT_HEALTH_CHECK_MS = 1000;
/** Schemes other instances usually write to too (a profile's `shared` option overrides it). */
const SHARED_SCHEMES = new Set([
  "redis",
  "postgresql",
  "mysql",
  "s3",
  "gcs",
  "azblob",
  "oss",
  "cos",
  "obs",
  "mongodb",
  "memcached",
]);

/** Whether a scheme is shared by default: other instances write to it (see the `shared` profile option). */
export function sharedByDefault(scheme: string): boolean {
  return SHARED_SCHEMES.has(scheme.toLowerCase());
}

/** A profile's options, split and checked by {@link parseProfileOptions}. */
export interface ProfileOptions {
  /** The backend scheme (`type`). */
  scheme: string;
  /** The options passed to the backend driver (every key but the storage layer's own). */
  backend: Record<string, string>;
  /** Fixed rank value instead of the measured latency (`speed`); lower is faster. */
  rankLatencyUs: number | undefined;
  /** Time limit of each call in ms (`timeout_ms`; remote schemes default to 10000). */
  timeoutMs: number | undefined;
  /** Retries of transient failures (`retries`; remote schemes default to 2, native ones to 0). */
  retries: number;
  /** Quota in bytes (`max_size`, e.g. `64MiB`). */
  maxSize: number | undefined;
  /** Quota in values (`max_items`). */
  maxItems: number | undefined;
  /** What a full quota does (`quota_policy`): evict (`lru`) or refuse (`reject`). */
  quotaPolicy: "lru" | "reject" | undefined;
  /** Default time to live of values saved to this profile (`ttl_ms`). */
  defaultTtlMs: number | undefined;
  /** Only read (`read_only = "true"`): saves skip it by design; the CLI refuses to write to it unless forced. */
  readOnly: boolean;
  /**
   * Whether other instances write to it (`shared`; by default true for redis, postgresql, mysql, s3 and
   * the other remote stores, false for memory, dashmap, sqlite, fs, redb, sled). The coherence bus
   * publishes changes of shared profiles and keeps the local ones honest.
   */
  shared: boolean;
}

/**
 * Splits and checks the options of `[profiles.<name>]`: the storage layer's
 * own ({@link STORAGE_OPTION_KEYS}) and the backend's.
 * @throws ProfileError naming the option, e.g. `profiles.m2.speed: expected a number >= 0, got "fast"`.
 */
export function parseProfileOptions(name: string, raw: Readonly<Record<string, string>>): ProfileOptions {
  const scheme = raw.type?.trim();
  if (!scheme) {
    throw new ProfileError(`profiles.${name}.type: required (the backend scheme, e.g. "sqlite")`, { profile: name });
  }
  const remote = !(NATIVE_SCHEMES as readonly string[]).includes(scheme.toLowerCase());
  const retries = numberOption(name, "retries", raw.retries, 0) ?? (remote ? DEFAULT_REMOTE_RETRIES : 0);
  if (!Number.isInteger(retries) || retries > MAX_RETRIES) {
    throw new ProfileError(
      `profiles.${name}.retries: expected an integer from 0 to ${MAX_RETRIES}, got ${JSON.stringify(raw.retries)}`,
      { profile: name },
    );
  }
  const policy = raw.quota_policy?.trim();
  if (policy !== undefined && policy !== "lru" && policy !== "reject") {
    throw new ProfileError(`profiles.${name}.quota_policy: expected "lru" or "reject", got ${JSON.stringify(policy)}`, {
      profile: name,
    });
  }
  const backend: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) if (!STORAGE_KEYS.has(k)) backend[k] = v;
  return {
    scheme,
    backend,
    rankLatencyUs: numberOption(name, "speed", raw.speed, 0),
    timeoutMs: numberOption(name, "timeout_ms", raw.timeout_ms, 1) ?? (remote ? DEFAULT_REMOTE_TIMEOUT_MS : undefined),
    retries,
    maxSize: raw.max_size?.trim() ? parseSize(raw.max_size, `profiles.${name}.max_size`) : undefined,
    maxItems: numberOption(name, "max_items", raw.max_items, 0),
    quotaPolicy: policy,
    defaultTtlMs: numberOption(name, "ttl_ms", raw.ttl_ms, 1),
    readOnly: booleanOption(name, "read_only", raw.read_only),
    shared: raw.shared?.trim() ? booleanOption(name, "shared", raw.shared) : sharedByDefault(scheme),
  };
}

/**
 * Opens a profile's operator exactly as storage does: the backend driver with
 * the backend options, inside the quota wrapper when `max_size` / `max_items`
 * is set.
 * @throws ProfileError for bad options or a backend that cannot be opened.
 */
export async function openProfileOperator(
  name: string,
  raw: Readonly<Record<string, string>>,
): Promise<{ options: ProfileOptions; op: Operator }> {
  const options = parseProfileOptions(name, raw);
  const op = await createOperator(options.scheme, options.backend, { profile: name });
  if (options.maxSize === undefined && options.maxItems === undefined) return { options, op };
  try {
    const quota = { maxSize: options.maxSize, maxItems: options.maxItems, policy: options.quotaPolicy, profile: name };
    return { options, op: await quotaOperator(op, quota) };
  } catch (err) {
    await op.close().catch(() => {});
    throw err;
  }
}

function booleanOption(profile: string, key: string, raw: string | undefined): boolean {
  const v = raw?.trim().toLowerCase();
  if (v === undefined || v === "" || v === "false") return false;
  if (v === "true") return true;
  throw new ProfileError(`profiles.${profile}.${key}: expected "true" or "false", got ${JSON.stringify(raw)}`, {
    profile,
  });
}

function numberOption(profile: string, key: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) {
    throw new ProfileError(`profiles.${profile}.${key}: expected a number >= ${min}, got ${JSON.stringify(raw)}`, {
      profile,
    });
  }
  return n;
}

/**
 * Checks a duration given to the API: a number of milliseconds, > 0 or (with
 * `zero`) >= 0. The one rule for every millisecond option.
 * @throws PersistenceError naming the option and what was got.
 */
export function checkMs(value: unknown, what: string, zero: "zero allowed" | "positive", key?: string): number {
  // Infinity is refused too: a TTL of Infinity would be stored as `null` ("never expires") by JSON.
  const ok = typeof value === "number" && Number.isFinite(value) && (zero === "positive" ? value > 0 : value >= 0);
  if (!ok) {
    const kind = zero === "positive" ? "a positive" : "a non-negative";
    throw new PersistenceError(
      `Expected \`${what}\` to be ${kind} number of milliseconds${Number.isNaN(value) || value === Infinity ? " (finite)" : ""}, got ${String(value)}`,
      {
        key,
      },
    );
  }
  return value as number;
}

/** {@link DeviceStorageOptions}, checked and with defaults filled in. */
export interface StorageOptions {
  logger: Logger;
  probeReads: number;
  /** Live ranking's tuning, or undefined when it is off. */
  live: LiveRankingOptions | undefined;
  healthCheckMs: number;
  /** How this storage takes part in a coherence bus. */
  coherence: { subscribe: boolean; origin: string | undefined };
  /** The coherence bus, checked (the settings' `[coherence]` table, else `options.coherence.bus`). */
  bus: CoherenceConfig | undefined;
}

/**
 * Checks {@link DeviceStorageOptions} (and the `[coherence]` table of the settings, if any) once, before anything is opened.
 * @throws SettingsError for a bad `[coherence]` table, naming the value.
 */
export function storageOptions(options: DeviceStorageOptions = {}, settings?: StorageSettings): StorageOptions {
  const table = settings?.coherence ?? options.coherence?.bus;
  const live =
    options.liveRanking === false ? undefined : typeof options.liveRanking === "object" ? options.liveRanking : {};
  return {
    logger: options.logger ?? consoleLogger(),
    probeReads: Math.max(1, options.probeReads ?? DEFAULT_PROBE_READS),
    live,
    healthCheckMs: checkMs(live?.healthCheckMs ?? DEFAULT_HEALTH_CHECK_MS, "liveRanking.healthCheckMs", "zero allowed"),
    coherence: { subscribe: options.coherence?.subscribe !== false, origin: options.coherence?.origin },
    bus: table && checkCoherence(table),
  };
}
