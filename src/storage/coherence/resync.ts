/**
 * Making a local tier trustworthy again after a coherence gap (messages may
 * have been missed) or at start-up: a volatile tier is emptied; a durable one
 * is revalidated against the shared tiers, which hold the truth: a value they
 * have replaced is copied over the local one, a value they no longer have is
 * deleted, an equal one is kept (so a warm disk cache stays warm), and a local
 * expiry that differs from the shared one is set to it.
 *
 * Revalidation costs what changed, not what is stored: the local keys go in
 * batches of 1,000, each compared by digest (the shared tier hashes its values
 * in place: PostgreSQL `md5(value)`, a Redis script's `redis.sha1hex`, MySQL
 * `MD5()`, one call per batch; or S3 ETags from one listing), and only the
 * values whose digest differs (or is unknown, as a multipart upload's ETag)
 * are read. A shared tier without digests has its values read in batches
 * where it can, else one by one.
 *
 * @module
 */
import type { StoredValue } from "../../operators/types.js";
import { hexDigest } from "../digest.js";
import type { WriteFence } from "../fence.js";
import { forEachLimit } from "../limit.js";
import type { Tier } from "../tier.js";
import {
  type BatchEntry,
  type DigestEntry,
  digestEntries,
  listedDigests,
  readEntries,
  readsInBatches,
} from "../tier-batch.js";

/** Local keys revalidated together (one digest call to the shared tier each: one per hash slot on a Redis Cluster). */
const BATCH = 1000;
/** Batches in flight at once: the shared tier hashes one while this process hashes the next. */
const BATCHES_IN_FLIGHT = 4;
/** Keys handled at a time where a tier is emptied, or read one by one. */
const KEY_CONCURRENCY = 16;

/** What a resync of one local tier did. */
export interface ResyncReport {
  /** Keys it looked at. */
  keys: number;
  /** Local copies dropped (volatile tiers: all of them; durable ones: those the shared tiers no longer have). */
  dropped: number;
  /** Local copies replaced by the shared tiers' newer value, or given the shared tiers' expiry. */
  replaced: number;
  /** Values read from the shared tiers (their digest differed from the local copy's, or none was known). */
  fetched: number;
  /** Bytes read from the shared tiers: the digests (hex) and the values fetched. */
  bytesRead: number;
}

/** What the shared tiers say of one local copy. */
type Verdict = "same" | "absent" | { data: Uint8Array | string; expiresAt: number | undefined };

/**
 * Empties a volatile tier, or revalidates a durable one against `shared`
 * (fastest first). Stops early (returning undefined) once `current()` turns false.
 * @throws when the local tier cannot list, or no shared tier could be asked about a batch.
 */
export async function resyncTier(
  tier: Tier,
  shared: readonly Tier[],
  fence: WriteFence,
  current: () => boolean,
): Promise<ResyncReport | undefined> {
  const keys = await tier.list("");
  const report: ResyncReport = { keys: keys.length, dropped: 0, replaced: 0, fetched: 0, bytesRead: 0 };
  if (!tier.capabilities.durable) {
    await forEachLimit(
      keys,
      KEY_CONCURRENCY,
      async (key) => {
        await tier.delete(key);
        report.dropped++;
      },
      () => !current(),
    );
    return current() ? report : undefined;
  }
  const truth = new SharedTruth(shared, report);
  const batches: string[][] = [];
  for (let i = 0; i < keys.length; i += BATCH) batches.push(keys.slice(i, i + BATCH));
  await forEachLimit(
    batches,
    BATCHES_IN_FLIGHT,
    (batch) => revalidate(tier, batch, truth, fence, current),
    () => !current(),
  );
  return current() ? report : undefined;
}

/** Compares one batch of local keys with the shared tiers and applies what differs. */
async function revalidate(
  tier: Tier,
  batch: readonly string[],
  truth: SharedTruth,
  fence: WriteFence,
  current: () => boolean,
): Promise<void> {
  // A save, delete or bus message of a key during the batch settles that key itself: it marks the key's read stale.
  const fenced = fence.watchMany(batch);
  try {
    const local = await localEntries(tier, batch);
    const keys: string[] = [];
    const entries: BatchEntry[] = [];
    local.forEach((entry, i) => {
      if (entry === undefined) return; // gone meanwhile, or expired
      keys.push(batch[i]!);
      entries.push(entry);
    });
    const verdicts = await truth.judge(keys, entries);
    const report = truth.report;
    const changed: number[] = [];
    verdicts.forEach((v, j) => {
      if (v !== "same") changed.push(j);
    });
    await forEachLimit(changed, KEY_CONCURRENCY, async (j) => {
      const key = keys[j]!;
      const verdict = verdicts[j]!;
      if (verdict === "same" || fenced.stale.has(key) || !current()) return;
      if (verdict === "absent") {
        await tier.delete(key);
        report.dropped++;
      } else {
        await tier.write(key, verdict.data, { expiresAt: verdict.expiresAt });
        report.replaced++;
      }
    });
  } finally {
    fenced.release();
  }
}

/** A tier's copies of `keys`, batched where the tier can, else one by one. */
async function localEntries(tier: Tier, keys: readonly string[]): Promise<(BatchEntry | undefined)[]> {
  if (readsInBatches(tier)) return readEntries(tier, keys);
  const out = new Array<BatchEntry | undefined>(keys.length);
  await forEachLimit(keys, KEY_CONCURRENCY, async (key, i) => {
    const e = await tier.readEntry(key);
    out[i] = e && { stored: { data: e.data, size: e.data.length }, expiresAt: e.expiresAt };
  });
  return out;
}

/**
 * The shared tiers as the judge of local copies: the first that answers about a batch (fastest
 * first) holds the truth for it. Digests by listing (S3) are listed once per resync.
 */
class SharedTruth {
  readonly #listings = new Map<Tier, Promise<Map<string, DigestEntry>>>();

  constructor(
    private readonly shared: readonly Tier[],
    readonly report: ResyncReport,
  ) {}

  /** A verdict per local entry. @throws the last failure when no shared tier answered. */
  async judge(keys: readonly string[], local: readonly BatchEntry[]): Promise<Verdict[]> {
    let last: unknown;
    for (const t of this.shared) {
      try {
        return await this.#judgeWith(t, keys, local);
      } catch (err) {
        last = err;
      }
    }
    throw last ?? new Error("no shared profile is up");
  }

  async #judgeWith(t: Tier, keys: readonly string[], local: readonly BatchEntry[]): Promise<Verdict[]> {
    // Digests only where the operator has the call behind the capability (a user's wrapper may
    // pass the capabilities on without it): else the values themselves are compared.
    const digest = digestCall(t) ? t.capabilities.digest : undefined;
    const verdicts = new Array<Verdict>(keys.length);
    let fetch: number[];
    if (digest === undefined) {
      fetch = keys.map((_, i) => i);
    } else {
      const remote = await this.#digests(t, keys);
      fetch = [];
      remote.forEach((r, i) => {
        const mine = local[i]!;
        if (r === undefined) verdicts[i] = "absent";
        else if (r.digest === undefined || r.digest !== hexDigest(digest.algorithm, mine.stored.data)) fetch.push(i);
        // Same bytes: only a different expiry needs a write, of the local bytes.
        else verdicts[i] = r.expiresAt === mine.expiresAt ? "same" : { data: mine.stored.data, expiresAt: r.expiresAt };
      });
    }
    if (fetch.length > 0) {
      const values = await this.#values(
        t,
        fetch.map((i) => keys[i]!),
      );
      values.forEach((v, j) => {
        const i = fetch[j]!;
        if (v === undefined) verdicts[i] = "absent";
        else verdicts[i] = same(v, local[i]!) ? "same" : { data: v.stored.data, expiresAt: v.expiresAt };
      });
    }
    return verdicts;
  }

  async #digests(t: Tier, keys: readonly string[]): Promise<(DigestEntry | undefined)[]> {
    let remote: (DigestEntry | undefined)[];
    if (t.capabilities.digest?.source === "listing") {
      let listing = this.#listings.get(t);
      if (listing === undefined) {
        listing = listedDigests(t, "");
        this.#listings.set(t, listing);
        listing.catch(() => this.#listings.delete(t));
      }
      const all = await listing;
      remote = keys.map((k) => all.get(k));
    } else {
      remote = await digestEntries(t, keys);
    }
    for (const r of remote) if (r?.digest !== undefined) this.report.bytesRead += r.digest.length;
    return remote;
  }

  async #values(t: Tier, keys: readonly string[]): Promise<(BatchEntry | undefined)[]> {
    const values = await localEntries(t, keys);
    for (const v of values) {
      if (v === undefined) continue;
      this.report.fetched++;
      this.report.bytesRead += v.stored.size;
    }
    return values;
  }
}

/** Same bytes and same expiry (Buffer.compare reads both in place). */
function same(a: BatchEntry, b: BatchEntry): boolean {
  if (a.expiresAt !== b.expiresAt || a.stored.size !== b.stored.size) return false;
  const bytes = (s: StoredValue) => (typeof s.data === "string" ? Buffer.from(s.data, "utf8") : s.data);
  return Buffer.compare(bytes(a.stored), bytes(b.stored)) === 0;
}

/** Whether `t`'s operator has the call its digest capability names. */
function digestCall(t: Tier): boolean {
  const source = t.capabilities.digest?.source;
  if (source === "listing") return t.op.listDigests !== undefined;
  return source === "keys" && t.op.digestMany !== undefined && t.capabilities.batchSize !== undefined;
}
