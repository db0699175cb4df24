/**
 * Making a local tier trustworthy again after a coherence gap (messages may
 * have been missed): a volatile tier is emptied; a durable one is revalidated
 * key by key against the shared tiers, which hold the truth: a value they
 * have replaced is copied over the local one, a value they no longer have is
 * deleted, an equal one is kept (so a warm disk cache stays warm).
 *
 * @module
 */
import type { WriteFence } from "../fence.js";
import { forEachLimit } from "../limit.js";
import type { Tier } from "../tier.js";
import type { TierEntry } from "../types.js";

/** Keys handled at a time while a local tier is emptied or revalidated. */
const RESYNC_CONCURRENCY = 16;

/** What a resync of one local tier did. */
export interface ResyncReport {
  /** Keys it looked at. */
  keys: number;
  /** Local copies dropped (volatile tiers: all of them; durable ones: those the shared tiers no longer have). */
  dropped: number;
  /** Local copies replaced by the shared tiers' newer value. */
  replaced: number;
}

/**
 * Empties a volatile tier, or revalidates a durable one against `shared`
 * (fastest first). Stops early (returning undefined) once `current()` turns false.
 * @throws when the local tier cannot list, or no shared tier could be asked about a key.
 */
export async function resyncTier(
  tier: Tier,
  shared: readonly Tier[],
  fence: WriteFence,
  current: () => boolean,
): Promise<ResyncReport | undefined> {
  const keys = await tier.list("");
  const report: ResyncReport = { keys: keys.length, dropped: 0, replaced: 0 };
  const durable = tier.capabilities.durable;
  await forEachLimit(keys, RESYNC_CONCURRENCY, async (key) => {
    if (!current()) return;
    if (!durable) {
      await tier.delete(key);
      report.dropped++;
      return;
    }
    const read = { stale: false };
    const release = fence.watch(key, read);
    try {
      const local = await tier.readEntry(key);
      if (local === undefined) return;
      const truth = await askShared(shared, key);
      // A save, delete or bus message of this key came meanwhile: it has settled the key already.
      if (read.stale || !current()) return;
      if (truth === undefined) {
        await tier.delete(key);
        report.dropped++;
      } else if (!sameEntry(local, truth)) {
        await tier.write(key, truth.data, { expiresAt: truth.expiresAt });
        report.replaced++;
      }
    } finally {
      release();
    }
  });
  return current() ? report : undefined;
}

/** The first shared tier that answers about `key` (a value, or absent). @throws when none answered. */
async function askShared(shared: readonly Tier[], key: string): Promise<TierEntry | undefined> {
  let last: unknown;
  for (const t of shared) {
    try {
      return await t.readEntry(key);
    } catch (err) {
      last = err;
    }
  }
  throw last ?? new Error("no shared profile is up");
}

function sameEntry(a: TierEntry, b: TierEntry): boolean {
  // Buffer.compare reads both Uint8Arrays in place (Buffer.from would copy each).
  return a.expiresAt === b.expiresAt && Buffer.compare(a.data, b.data) === 0;
}
