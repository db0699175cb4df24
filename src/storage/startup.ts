/**
 * Start-up: open every profile (in parallel), reach each with the probe (all
 * at once, so dead servers cost one time limit in all), time the survivors
 * one at a time, and rank them by their median read. The probe reads before
 * it writes: a profile whose write fails for a read-only reason (read-only
 * file system, full disk, no permission) but whose read works is `read-only`,
 * ranked by its reads. A profile that cannot be reached (the server does not
 * answer, the probe times out) is `down`, kept and retried (`rejoin.ts`). A
 * misconfigured one is left out with a `ProfileError` saying why; it is never
 * replaced by another backend.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import {
  isUnreachable,
  NoOperatorError,
  NotFoundError,
  type PersistenceError,
  ProfileError,
  type ReadOnlyReason,
  readOnlyReason,
} from "../errors.js";
import { PROBE_KEY_PREFIX } from "../keys/index.js";
import type { Logger } from "../logger.js";
import { changeFeedOf } from "../operators/index.js";
import type { Operator } from "../operators/types.js";
import { withTimeout } from "./calls.js";
import { probeChannel, traced } from "./channels.js";
import { openProfileOperator, type ProfileOptions, parseProfileOptions, sharedByDefault } from "./options.js";
import { READY, unopenedOperator } from "./tier-state.js";
import type { OperatorProfile, StorageSettings, TierSpec, TierState } from "./types.js";

/** Bytes of the probe value. */
const PROBE_BYTES = 4096;
/** When a profile down at start-up is first retried (ms). */
export const FIRST_RETRY_MS = 500;

/** A profile whose operator is open (or, when its server did not answer, about to be), before its probe. */
export interface OpenedProfile {
  name: string;
  scheme: string;
  op: Operator;
  fixedRankUs: number | undefined;
  timeoutMs: number | undefined;
  retries: number;
  defaultTtlMs?: number | undefined;
  /** The `read_only` option. */
  readOnly?: boolean | undefined;
  /** The `shared` option (or its default for the scheme). */
  shared?: boolean | undefined;
  /** Opens the operator again (profiles from settings); a down profile's first retry needs it when `op` is a stand-in. */
  reopen?: (() => Promise<Operator>) | undefined;
  /** Why the operator could not be opened yet (its server did not answer): `op` is a stand-in. */
  unopened?: PersistenceError | undefined;
}

/** A profile that is down: its spec (state `down`), and how to open it again. */
export interface DownProfile {
  spec: TierSpec;
  reopen: (() => Promise<Operator>) | undefined;
  /** Whether `spec.op` is a stand-in that must be replaced by {@link reopen} before a probe. */
  unopened: boolean;
}

/** What start-up found: the tiers' specs, fastest first, the profiles down, and the profiles left out (or down). */
export interface Started {
  specs: TierSpec[];
  down: DownProfile[];
  errors: Map<string, PersistenceError>;
}

/** What a probe found: the median read in µs, and why the profile takes no writes, if it does not. */
export interface ProbeResult {
  latencyUs: number;
  readOnly: ReadOnlyReason | undefined;
}

/** Operators opened by the caller, as profiles (`speed` fixes the rank). @throws ProfileError for a duplicate name. */
export function openedOperators(profiles: readonly OperatorProfile[]): OpenedProfile[] {
  const seen = new Set<string>();
  return profiles.map((p) => {
    if (seen.has(p.name)) throw new ProfileError(`Duplicate profile name "${p.name}"`, { profile: p.name });
    seen.add(p.name);
    const { name, op, speed, timeoutMs, retries = 0, shared = sharedByDefault(op.scheme) } = p;
    return { name, scheme: op.scheme, op, fixedRankUs: speed, timeoutMs, retries, shared };
  });
}

/** Opens every profile of `settings` in parallel; a profile that cannot be opened goes to `errors`. */
export async function openProfiles(
  settings: StorageSettings,
  errors: Map<string, PersistenceError>,
): Promise<OpenedProfile[]> {
  for (const [name, err] of Object.entries(settings.profileErrors ?? {})) errors.set(name, asProfileError(name, err));
  const opened = await Promise.all(
    Object.entries(settings.profiles ?? {}).map(async ([name, raw]): Promise<OpenedProfile | undefined> => {
      const reopen = async () => (await openProfileOperator(name, raw ?? {})).op;
      try {
        const { options, op } = await openProfileOperator(name, raw ?? {});
        return { ...fromOptions(name, op.scheme, options), op, reopen };
      } catch (err) {
        const error = asProfileError(name, err);
        errors.set(name, error);
        if (!isUnreachable(err)) return undefined;
        // The options were fine (they parsed before the server was dialled): the server is down.
        const options = parseProfileOptions(name, raw ?? {});
        const op = unopenedOperator(options.scheme, error, await changeFeedOf(options.scheme, options.backend, name));
        return { ...fromOptions(name, options.scheme, options), op, reopen, unopened: error };
      }
    }),
  );
  return opened.filter((o) => o !== undefined);
}

function fromOptions(name: string, scheme: string, options: ProfileOptions) {
  return {
    name,
    scheme,
    fixedRankUs: options.rankLatencyUs,
    timeoutMs: options.timeoutMs,
    retries: options.retries,
    defaultTtlMs: options.defaultTtlMs,
    readOnly: options.readOnly,
    shared: options.shared,
  };
}

/**
 * Probes every opened profile and ranks the ones that can be read, fastest
 * first (equal latencies keep settings order); the unreachable ones are `down`.
 * @throws NoOperatorError when none can be read (the message lists why each failed).
 */
export async function probeAndRank(
  opened: readonly OpenedProfile[],
  errors: Map<string, PersistenceError>,
  logger: Logger,
  probeReads: number,
): Promise<Started> {
  const down: DownProfile[] = [];
  const goDown = (o: OpenedProfile, err: PersistenceError) => {
    const state: TierState = { kind: "down", reason: err.message, nextRetryAt: Date.now() + FIRST_RETRY_MS };
    const spec = { ...o, defaultTtlMs: o.defaultTtlMs, probeKey: "", probeLatencyUs: Number.POSITIVE_INFINITY, state };
    down.push({ spec, reopen: o.reopen, unopened: o.unopened !== undefined });
  };
  const reached = await Promise.all(
    opened.map(async (o) => {
      if (o.unopened) {
        goDown(o, o.unopened);
        return undefined;
      }
      const probeKey = newProbeKey();
      try {
        return { o, probeKey, readOnly: await probeReach(o, probeKey) };
      } catch (err) {
        const error = asProfileError(o.name, err, "failed its start-up probe");
        errors.set(o.name, error);
        if (isUnreachable(err)) goDown(o, error);
        else await o.op.close().catch(() => {});
        return undefined;
      }
    }),
  );
  const specs: TierSpec[] = [];
  for (const r of reached) {
    if (!r) continue;
    const { o, probeKey, readOnly } = r;
    try {
      const probeLatencyUs = await traced(probeChannel, { profile: o.name, scheme: o.scheme }, () =>
        probeTime(o, probeKey, probeReads, readOnly === undefined),
      );
      const state: TierState = readOnly ? { kind: "read-only", reason: readOnly } : READY;
      specs.push({ ...o, defaultTtlMs: o.defaultTtlMs, probeKey, probeLatencyUs, state });
    } catch (err) {
      const error = asProfileError(o.name, err, "failed its start-up probe");
      errors.set(o.name, error);
      if (isUnreachable(err)) goDown(o, error);
      else await o.op.close().catch(() => {});
    }
  }
  const isDown = new Set(down.map((d) => d.spec.name));
  for (const [name, err] of errors) {
    if (isDown.has(name))
      logger.warn({ profile: name, err: err.message }, "storage profile down: retried in the background");
    else logger.warn({ profile: name, err: err.message }, "storage profile left out");
  }
  const rank = (s: TierSpec) => s.fixedRankUs ?? s.probeLatencyUs;
  specs.sort((a, b) => rank(a) - rank(b));
  if (specs.length === 0) {
    await Promise.all(down.map((d) => d.spec.op.close().catch(() => {})));
    const why = [...errors].map(([n, e]) => `${n}: ${e.message}`).join("; ");
    throw new NoOperatorError(`No storage profile could be read${why ? ` (${why})` : " (no profiles configured)"}`);
  }
  logger.debug(
    { ranking: specs.map((s) => `${s.name}=${rank(s).toFixed(1)}us`).join(", ") },
    "storage profiles ranked",
  );
  return { specs, down, errors };
}

/** The whole probe of one profile, as a down profile's retry runs it. @throws as the backend does. */
export async function probeOnce(o: OpenedProfile, probeReads: number): Promise<ProbeResult & { probeKey: string }> {
  const probeKey = newProbeKey();
  const readOnly = await probeReach(o, probeKey);
  const latencyUs = await probeTime(o, probeKey, probeReads, readOnly === undefined);
  return { latencyUs, readOnly, probeKey };
}

function newProbeKey(): string {
  return `${PROBE_KEY_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`;
}

/** The error of `profile(name)` for a name that is not a tier: left out (saying why), or unknown. */
export function unknownProfile(name: string, left: PersistenceError | undefined, names: string[]): ProfileError {
  return new ProfileError(
    left
      ? `Profile "${name}" is not available: ${left.message}`
      : `Unknown profile name: ${name}. Available profiles: ${names.join(", ")}`,
    { profile: name },
  );
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

/**
 * Probe, first part: reads the reserved key (absent: that is an answer), then
 * writes 4 KiB under it and checks they read back (deleting them on failure).
 * Returns why the profile takes no writes when the write fails for a
 * read-only reason (the read worked), else undefined.
 */
async function probeReach(o: OpenedProfile, key: string): Promise<ReadOnlyReason | undefined> {
  const limit = probeLimit(o, key);
  await limit(o.op.read(key), "read").catch((err) => {
    if (!(err instanceof NotFoundError)) throw err;
  });
  // A profile meant only to be read is never written, not even by the probe.
  if (o.readOnly) return "configured";
  const payload = randomBytes(PROBE_BYTES);
  try {
    await limit(o.op.write(key, payload), "write");
  } catch (err) {
    const reason = readOnlyReason(err);
    if (reason) return reason;
    throw err;
  }
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
  return undefined;
}

/**
 * Probe, second part: times `reads` reads of the key (synchronous where the
 * operator offers it, as loads do; an absent key where the probe could not
 * write it), then deletes it if it was `written`. Returns the median in µs.
 */
async function probeTime(o: OpenedProfile, key: string, reads: number, written: boolean): Promise<number> {
  const limit = probeLimit(o, key);
  try {
    const times: number[] = [];
    const readSync = o.op.readSync?.bind(o.op);
    for (let i = 0; i < reads; i++) {
      const t0 = performance.now();
      if (readSync) readSync(key);
      else {
        await limit(o.op.read(key), "read").catch((err) => {
          if (!(err instanceof NotFoundError)) throw err;
        });
      }
      times.push((performance.now() - t0) * 1000);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)]!;
  } finally {
    if (written) await limit(o.op.delete(key), "delete");
  }
}
