/**
 * Opening a profile (its storage options, the operator, a quota wrapper) and
 * the start-up probe that ranks it. Used by DeviceStorage.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { type PersistenceError, ProfileError, TimeoutError } from "./errors.js";
import { createOperator, NATIVE_SCHEMES } from "./operators/index.js";
import { parseSize, quotaOperator } from "./operators/quota.js";
import type { Operator } from "./operators/types.js";

/** Profile options this layer reads itself; they are not passed to the operator. */
const STORAGE_KEYS = new Set([
  "type",
  "speed",
  "timeout_ms",
  "retries",
  "max_size",
  "max_items",
  "quota_policy",
  "ttl_ms",
]);
const DEFAULT_REMOTE_TIMEOUT_MS = 10_000;
const DEFAULT_REMOTE_RETRIES = 2;

export function asProfileError(profile: string, err: unknown, doing = "could not be opened"): PersistenceError {
  if (err instanceof ProfileError && doing === "could not be opened") {
    return err.profile === profile ? err : new ProfileError(err.message, { profile, cause: err });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new ProfileError(`Profile "${profile}" ${doing}: ${msg}`, { profile, cause: err });
}

function parseNumberOption(profile: string, key: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) {
    throw new ProfileError(`profiles.${profile}.${key}: expected a number >= ${min}, got ${JSON.stringify(raw)}`, {
      profile,
    });
  }
  return n;
}

export interface OpenedProfile {
  name: string;
  scheme: string;
  op: Operator;
  speedOverride: number | undefined;
  timeoutMs: number | undefined;
  retries: number;
  defaultTtlMs?: number | undefined;
}

export async function openProfile(name: string, profile: Readonly<Record<string, string>>): Promise<OpenedProfile> {
  const scheme = profile.type?.trim();
  if (!scheme) throw new ProfileError(`profiles.${name}.type: required (the backend scheme, e.g. "sqlite")`);
  const speedOverride = parseNumberOption(name, "speed", profile.speed, 0);
  const remote = !(NATIVE_SCHEMES as readonly string[]).includes(scheme.toLowerCase());
  const timeoutMs =
    parseNumberOption(name, "timeout_ms", profile.timeout_ms, 1) ?? (remote ? DEFAULT_REMOTE_TIMEOUT_MS : undefined);
  const retries = parseNumberOption(name, "retries", profile.retries, 0) ?? (remote ? DEFAULT_REMOTE_RETRIES : 0);
  if (!Number.isInteger(retries) || retries > 10) {
    throw new ProfileError(
      `profiles.${name}.retries: expected an integer from 0 to 10, got ${JSON.stringify(profile.retries)}`,
      {
        profile: name,
      },
    );
  }
  const options: Record<string, string> = {};
  for (const [k, v] of Object.entries(profile)) if (!STORAGE_KEYS.has(k)) options[k] = v;
  const maxSize = profile.max_size?.trim() ? parseSize(profile.max_size, `profiles.${name}.max_size`) : undefined;
  const maxItems = parseNumberOption(name, "max_items", profile.max_items, 0);
  const policy = profile.quota_policy?.trim();
  if (policy !== undefined && policy !== "lru" && policy !== "reject") {
    throw new ProfileError(`profiles.${name}.quota_policy: expected "lru" or "reject", got ${JSON.stringify(policy)}`, {
      profile: name,
    });
  }
  const defaultTtlMs = parseNumberOption(name, "ttl_ms", profile.ttl_ms, 1);
  let op = await createOperator(scheme, options, { profile: name });
  if (maxSize !== undefined || maxItems !== undefined) {
    try {
      op = await quotaOperator(op, { maxSize, maxItems, policy, profile: name });
    } catch (err) {
      await op.close().catch(() => {});
      throw err;
    }
  }
  return { name, scheme: op.scheme, op, speedOverride, timeoutMs, retries, defaultTtlMs };
}

/**
 * The start-up probe: a 4 KiB value under a reserved key, written and read
 * back (probeReach, all profiles at once), then read `reads` times more
 * (probeTime, one profile at a time; through `readSync` where the operator
 * has it, as loads do) and deleted. The median read in µs ranks the profile.
 */
function probeLimit(timeoutMs: number | undefined, profile: string, key: string) {
  return <T>(p: Promise<T>, what: string) =>
    timeoutMs === undefined ? p : withTimeout(p, timeoutMs, `probe ${what}`, profile, key);
}

/** Probe, first part: writes 4 KiB under the reserved key and checks they read back (deleting them on failure). */
export async function probeReach(
  op: Operator,
  key: string,
  timeoutMs: number | undefined,
  profile: string,
): Promise<void> {
  const limit = probeLimit(timeoutMs, profile, key);
  const payload = randomBytes(4096);
  await limit(op.write(key, payload), "write");
  try {
    const first = await limit(op.read(key), "read");
    if (!Buffer.from(first).equals(payload)) {
      throw new ProfileError(`Profile "${profile}" returned different bytes than were written in its probe`, {
        profile,
      });
    }
  } catch (err) {
    await limit(op.delete(key), "delete").catch(() => {});
    throw err;
  }
}

/** Probe, second part: times `reads` reads of the key (see {@link probeReach}), then deletes it. Returns the median in µs. */
export async function probeTime(
  op: Operator,
  key: string,
  timeoutMs: number | undefined,
  reads: number,
  profile: string,
): Promise<number> {
  const limit = probeLimit(timeoutMs, profile, key);
  try {
    const times: number[] = [];
    // Time the read path loads will take: synchronous where the operator offers it.
    const readSync = op.readSync?.bind(op);
    for (let i = 0; i < reads; i++) {
      const t0 = performance.now();
      if (readSync) readSync(key);
      else await limit(op.read(key), "read");
      times.push((performance.now() - t0) * 1000);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)]!;
  } finally {
    await limit(op.delete(key), "delete");
  }
}

/** Rejects with a `TimeoutError` if `p` does not settle within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string, profile?: string, key?: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`, { profile, key })), ms);
    timer.unref?.();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
