/**
 * Listing keys across tiers: the union of what every tier in the read path
 * that can list holds under a prefix, with the tiers that could not be asked
 * (down, failed, or unable to list at all), so a caller (a `clear`, an
 * iterator) can tell a complete listing from a partial one. Local tiers kept
 * out of the read path after a coherence gap are not asked: they may hold
 * keys other instances deleted.
 *
 * @module
 */
import type { Ranking } from "./ranking.js";
import type { Tier } from "./tier.js";
import type { KeyListing, MissedProfile } from "./types.js";

export async function listKeys(ranking: Ranking<Tier>, prefix: string): Promise<KeyListing> {
  const keys = new Set<string>();
  const asked: string[] = [];
  const missed: MissedProfile[] = [];
  const miss = (t: Tier, reason: string, unsupported = false) =>
    missed.push({ profile: t.name, reason, durable: t.capabilities.durable, unsupported });
  // A down tier's capabilities are not known until it rejoins: down, not "cannot list".
  for (const t of ranking.standby) miss(t, t.state.kind === "down" ? `down (${t.state.reason})` : "not asked");
  await Promise.all(
    ranking.readOrder.map(async (t) => {
      if (!t.capabilities.list) return void miss(t, `${t.scheme} cannot list its keys`, true);
      try {
        for (const key of await t.list(prefix)) keys.add(key);
        asked.push(t.name);
      } catch (err) {
        miss(t, err instanceof Error ? err.message : String(err));
      }
    }),
  );
  return { keys: [...keys].sort(), asked, missed };
}
