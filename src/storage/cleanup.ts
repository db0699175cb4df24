/**
 * Cleanup of old and expired values, tier by tier: every value whose TTL has
 * passed, and (where the tier lists keys and keeps modification times) every
 * value older than the given age. Says per tier what it removed and what it
 * could not check.
 *
 * @module
 */
import type { Tier } from "./tier.js";
import type { CleanupReport } from "./types.js";
import type { TieredWriter } from "./write.js";

/** Cleans every tier in `tiers`, in parallel: a report per tier name. */
export async function cleanupTiers(
  tiers: readonly Tier[],
  writer: TieredWriter,
  ageMs: number,
): Promise<Record<string, CleanupReport>> {
  const now = Date.now();
  const reports = await Promise.all(tiers.map((t) => cleanupTier(t, writer, ageMs, now)));
  return Object.fromEntries(tiers.map((t, i) => [t.name, reports[i]!]));
}

/** Cleans one tier; deletes go through the writer (so write-backs in flight are fenced). */
export async function cleanupTier(
  tier: Tier,
  writer: TieredWriter,
  ageMs: number,
  now: number,
): Promise<CleanupReport> {
  const report: CleanupReport = { removed: 0, expired: 0 };
  for (const key of tier.expiredKeys(now)) {
    await writer.delete(key, [tier]);
    report.expired++;
  }
  const why: string[] = [];
  if (!tier.expiryComplete) why.push("TTL metadata cannot be enumerated (the backend cannot list)");
  if (!tier.capabilities.list) why.push(`cannot tell age: ${tier.scheme} cannot list its keys`);
  else if (!tier.capabilities.lastModified) why.push(`cannot tell age: ${tier.scheme} keeps no modification time`);
  else {
    for (const key of await tier.list()) {
      const st = await tier.stat(key).catch(() => undefined);
      if (st?.lastModified && now - st.lastModified.getTime() > ageMs) {
        await writer.delete(key, [tier]);
        report.removed++;
      }
    }
  }
  if (why.length) report.skipped = why.join("; ");
  return report;
}
