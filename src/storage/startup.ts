/**
 * Start-up: open every profile (in parallel), reach each with the probe (all
 * at once, so dead servers cost one time limit in all), time the survivors
 * one at a time, and rank them by their median read. A profile that fails is
 * left out with a `ProfileError` saying why; it is never replaced by another
 * backend.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { NoOperatorError, type PersistenceError, ProfileError } from "../errors.js";
import { PROBE_KEY_PREFIX } from "../keys/index.js";
import type { Logger } from "../logger.js";
import type { Operator } from "../operators/types.js";
import { withTimeout } from "./calls.js";
import { probeChannel, traced } from "./channels.js";
import { openProfileOperator } from "./options.js";
import type { TierSpec } from "./tier.js";
import type { StorageSettings } from "./types.js";

/** Bytes of the probe value. */
const PROBE_BYTES = 4096;

/** A profile whose operator is open, before its probe. */
export interface OpenedProfile {
  name: string;
  scheme: string;
  op: Operator;
  fixedRankUs: number | undefined;
  timeoutMs: number | undefined;
  retries: number;
  defaultTtlMs?: number | undefined;
}

/** What start-up found: the tiers' specs, fastest first, and the profiles left out. */
export interface Started {
  specs: TierSpec[];
  errors: Map<string, PersistenceError>;
}

/** Opens every profile of `settings` in parallel; a profile that cannot be opened goes to `errors`. */
export async function openProfiles(
  settings: StorageSettings,
  errors: Map<string, PersistenceError>,
): Promise<OpenedProfile[]> {
  for (const [name, err] of Object.entries(settings.profileErrors ?? {})) errors.set(name, asProfileError(name, err));
  const opened = await Promise.all(
    Object.entries(settings.profiles ?? {}).map(async ([name, raw]) => {
      try {
        const { options, op } = await openProfileOperator(name, raw ?? {});
        return {
          name,
          scheme: op.scheme,
          op,
          fixedRankUs: options.rankLatencyUs,
          timeoutMs: options.timeoutMs,
          retries: options.retries,
          defaultTtlMs: options.defaultTtlMs,
        };
      } catch (err) {
        errors.set(name, asProfileError(name, err));
        return undefined;
      }
    }),
  );
  return opened.filter((o) => o !== undefined);
}

/**
 * Probes every opened profile and ranks the ones that pass, fastest first
 * (equal latencies keep settings order).
 * @throws NoOperatorError when none passes (the message lists why each failed).
 */
export async function probeAndRank(
  opened: readonly OpenedProfile[],
  errors: Map<string, PersistenceError>,
  logger: Logger,
  probeReads: number,
): Promise<Started> {
  const reached = await Promise.all(
    opened.map(async (o) => {
      const probeKey = `${PROBE_KEY_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`;
      try {
        await probeReach(o, probeKey);
        return { o, probeKey };
      } catch (err) {
        errors.set(o.name, asProfileError(o.name, err, "failed its start-up probe"));
        await o.op.close().catch(() => {});
        return undefined;
      }
    }),
  );
  const specs: TierSpec[] = [];
  for (const r of reached) {
    if (!r) continue;
    const { o, probeKey } = r;
    try {
      const probeLatencyUs = await traced(probeChannel, { profile: o.name, scheme: o.scheme }, () =>
        probeTime(o, probeKey, probeReads),
      );
      specs.push({ ...o, defaultTtlMs: o.defaultTtlMs, probeKey, probeLatencyUs });
    } catch (err) {
      errors.set(o.name, asProfileError(o.name, err, "failed its start-up probe"));
      await o.op.close().catch(() => {});
    }
  }
  for (const [name, err] of errors) logger.warn({ profile: name, err: err.message }, "storage profile left out");
  const rank = (s: TierSpec) => s.fixedRankUs ?? s.probeLatencyUs;
  specs.sort((a, b) => rank(a) - rank(b));
  if (specs.length === 0) {
    const why = [...errors].map(([n, e]) => `${n}: ${e.message}`).join("; ");
    throw new NoOperatorError(`No storage profile could be opened${why ? ` (${why})` : " (no profiles configured)"}`);
  }
  logger.debug(
    { ranking: specs.map((s) => `${s.name}=${rank(s).toFixed(1)}us`).join(", ") },
    "storage profiles ranked",
  );
  return { specs, errors };
}

/** A profile's error as the `ProfileError` that says what failed. */
export function asProfileError(profile: string, err: unknown, doing = "could not be opened"): PersistenceError {
  if (err instanceof ProfileError && doing === "could not be opened") {
    return err.profile === profile ? err : new ProfileError(err.message, { profile, cause: err });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new ProfileError(`Profile "${profile}" ${doing}: ${msg}`, { profile, cause: err });
}

function probeLimit(o: OpenedProfile, key: string) {
  return <T>(p: Promise<T>, what: string) =>
    o.timeoutMs === undefined ? p : withTimeout(p, o.timeoutMs, `probe ${what}`, o.name, key);
}

/** Probe, first part: writes 4 KiB under the reserved key and checks they read back (deleting them on failure). */
async function probeReach(o: OpenedProfile, key: string): Promise<void> {
  const limit = probeLimit(o, key);
  const payload = randomBytes(PROBE_BYTES);
  await limit(o.op.write(key, payload), "write");
  try {
    const first = await limit(o.op.read(key), "read");
    if (!Buffer.from(first).equals(payload)) {
      throw new ProfileError(`Profile "${o.name}" returned different bytes than were written in its probe`, {
        profile: o.name,
      });
    }
  } catch (err) {
    await limit(o.op.delete(key), "delete").catch(() => {});
    throw err;
  }
}

/**
 * Probe, second part: times `reads` reads of the key (synchronous where the
 * operator offers it, as loads do), then deletes it. Returns the median in µs.
 */
async function probeTime(o: OpenedProfile, key: string, reads: number): Promise<number> {
  const limit = probeLimit(o, key);
  try {
    const times: number[] = [];
    const readSync = o.op.readSync?.bind(o.op);
    for (let i = 0; i < reads; i++) {
      const t0 = performance.now();
      if (readSync) readSync(key);
      else await limit(o.op.read(key), "read");
      times.push((performance.now() - t0) * 1000);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)]!;
  } finally {
    await limit(o.op.delete(key), "delete");
  }
}
