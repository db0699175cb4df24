/**
 * Batched calls of one tier: many keys' values or digests per round trip
 * (`readMany`, `digestMany`, `listDigests`, or an in-process tier's synchronous
 * `readManyStoredSync`), made through the tier's own call policy (time limit,
 * retries, breaker, the tier's `down` state) and its TTL metadata, counted in
 * its counters, as the tier's one-key calls are. Used by `loadValues`,
 * `cachePrefetch` and the revalidation of local tiers.
 *
 * @module
 */
import { isCallerError, NotFoundError, UnsupportedError } from "../errors.js";
import { isReservedKey } from "../keys/index.js";
import type { StoredValue } from "../operators/types.js";
import type { Tier } from "./tier.js";

/** A stored value with its expiry, as a batched read gives it. */
export interface BatchEntry {
  /** The value as stored: bytes, or text standing for exactly its UTF-8 bytes. */
  stored: StoredValue;
  /** Expiry in ms since the epoch, if it has a TTL. */
  expiresAt: number | undefined;
}

/** What a tier holds under a key, by digest: `digest` undefined when the backend gave none it can vouch for. */
export interface DigestEntry {
  digest: string | undefined;
  expiresAt: number | undefined;
}

/** Whether `tier` reads many keys per round trip (`readMany`, or a synchronous batch read). */
export function readsInBatches(tier: Tier): boolean {
  const op = tier.op;
  return (op.readMany !== undefined && op.capabilities.batchSize !== undefined) || op.readManyStoredSync !== undefined;
}

/**
 * The values of `keys` in `tier`, in order: `undefined` where absent or expired (an expired
 * one is purged in the background). One call per `capabilities.batchSize` keys.
 * @throws as the tier's calls do (a time limit, a failure after retries, the tier down).
 */
export async function readEntries(tier: Tier, keys: readonly string[]): Promise<(BatchEntry | undefined)[]> {
  const op = tier.op;
  let stored: (StoredValue | undefined)[];
  if (op.readManyStoredSync) {
    // In-process (sqlite: one SELECT per 32 keys): through the call policy all the same (down state, breaker).
    stored = await countedAsync(
      tier,
      tier.call("read", describe(keys), async () => op.readManyStoredSync!(keys), false),
    );
  } else if (op.readManyStored && op.capabilities.batchSize !== undefined) {
    const size = op.capabilities.batchSize;
    const parts = await Promise.all(
      slices(keys, size).map((batch) =>
        countedAsync(
          tier,
          tier.call("read", describe(batch), () => op.readManyStored!(batch), false),
        ),
      ),
    );
    // Not `flat()`: it drops the holes of a sparse part, shifting every later value.
    stored = [];
    for (const part of parts) for (let i = 0; i < part.length; i++) stored.push(part[i]);
  } else {
    const size = op.capabilities.batchSize;
    if (!op.readMany || size === undefined) throw cannot(tier, "read many keys at once");
    const parts = await Promise.all(
      slices(keys, size).map((batch) =>
        countedAsync(
          tier,
          tier.call("read", describe(batch), () => op.readMany!(batch), false),
        ),
      ),
    );
    stored = [];
    for (const part of parts) for (const data of part) stored.push(data && { data, size: data.length });
  }
  const expiries = await expiriesOf(tier, keys, stored);
  return stored.map((v, i) => {
    const expiresAt = expiries[i];
    if (v === undefined || expiresAt === GONE) return undefined;
    tier.counters.bytesRead += v.size;
    return { stored: v, expiresAt };
  });
}

/**
 * The digests of `keys` in `tier` (`capabilities.digest`, source `keys`), in order: `undefined`
 * where absent or expired. One call per `capabilities.batchSize` keys.
 */
export async function digestEntries(tier: Tier, keys: readonly string[]): Promise<(DigestEntry | undefined)[]> {
  const op = tier.op;
  const size = op.capabilities.batchSize;
  if (!op.digestMany || size === undefined) throw cannot(tier, "give digests of its values");
  const parts = await Promise.all(
    slices(keys, size).map((batch) =>
      countedAsync(
        tier,
        tier.call("digest", describe(batch), () => op.digestMany!(batch), false),
      ),
    ),
  );
  const digests: (string | undefined)[] = [];
  for (const part of parts) for (let i = 0; i < part.length; i++) digests.push(part[i]);
  const expiries = await expiriesOf(tier, keys, digests);
  return digests.map((digest, i) => {
    const expiresAt = expiries[i];
    return digest === undefined || expiresAt === GONE ? undefined : { digest, expiresAt };
  });
}

/**
 * Every key under `prefix` in `tier` with the digest its listing carries (`capabilities.digest`,
 * source `listing`: S3 ETags), without reserved and expired keys.
 */
export async function listedDigests(tier: Tier, prefix: string): Promise<Map<string, DigestEntry>> {
  const op = tier.op;
  if (!op.listDigests) throw cannot(tier, "list digests of its values");
  const listed = await countedAsync(
    tier,
    tier.call("list", prefix, () => op.listDigests!(prefix), false),
  );
  const keys = [...listed.keys()].filter((k) => !isReservedKey(k));
  const expiries = await expiriesOf(tier, keys, keys);
  const out = new Map<string, DigestEntry>();
  keys.forEach((k, i) => {
    const expiresAt = expiries[i];
    if (expiresAt !== GONE) out.set(k, { digest: listed.get(k), expiresAt });
  });
  return out;
}

/** What {@link expiriesOf} gives for a key that is absent, or whose TTL has passed. */
const GONE: unique symbol = Symbol("absent or expired");

/**
 * The expiry of each key whose value is present (the tier's TTL metadata, read where it must be),
 * {@link GONE} where absent or expired (an expired value is purged in the background).
 */
async function expiriesOf(
  tier: Tier,
  keys: readonly string[],
  present: readonly unknown[],
): Promise<(number | undefined | typeof GONE)[]> {
  const now = Date.now();
  const out = new Array<number | undefined | typeof GONE>(keys.length).fill(GONE);
  const pending: Promise<void>[] = [];
  for (let i = 0; i < keys.length; i++) {
    if (present[i] === undefined) continue;
    const key = keys[i]!;
    const at = tier.expiresAt(key);
    if (at === undefined) out[i] = undefined;
    else if (typeof at === "number") out[i] = expiryOrGone(tier, key, at, now);
    else {
      pending.push(
        countedAsync(tier, at).then((t) => {
          out[i] = expiryOrGone(tier, key, t, now);
        }),
      );
    }
  }
  if (pending.length > 0) await Promise.all(pending);
  return out;
}

/** `at`, or {@link GONE} once it has passed (the value is then purged in the background). */
function expiryOrGone(tier: Tier, key: string, at: number | undefined, now: number): number | undefined | typeof GONE {
  if (at === undefined || at > now) return at;
  tier.purge(key);
  return GONE;
}

function slices<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** A batch named in messages: its first key and how many more. */
function describe(keys: readonly string[]): string {
  return keys.length === 1 ? keys[0]! : `${keys[0]} (+${keys.length - 1} more)`;
}

function cannot(tier: Tier, what: string): UnsupportedError {
  return new UnsupportedError(`profile "${tier.name}" (${tier.scheme}) cannot ${what}`, { profile: tier.name });
}

/** Counts a failure (not an absence, not the caller's error) against the tier, as its one-key calls do. */
function countedAsync<T>(tier: Tier, p: Promise<T>): Promise<T> {
  return p.catch((err) => {
    countFailure(tier, err);
    throw err;
  });
}

function countFailure(tier: Tier, err: unknown): void {
  if (!(err instanceof NotFoundError) && !isCallerError(err)) tier.counters.failures++;
}
