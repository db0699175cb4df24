/**
 * Cache warm-up (the seed's planned `cache_prefetch`): loads keys from the
 * slower tiers into the fastest, a bounded number at a time, and waits for the
 * write-backs to land.
 *
 * @module
 */
import { ClosedError, NotFoundError } from "../errors.js";
import { forEachLimit } from "./limit.js";
import type { Ranking } from "./ranking.js";
import type { TieredReader } from "./read.js";
import type { Tier } from "./tier.js";
import type { PrefetchResult } from "./types.js";

export async function prefetch(
  reader: TieredReader,
  ranking: Ranking<Tier>,
  keys: readonly string[],
  concurrency: number,
): Promise<PrefetchResult> {
  const result: PrefetchResult = { found: 0, alreadyCached: 0, missing: 0, failed: [] };
  await forEachLimit([...new Set(keys)], concurrency, async (key) => {
    try {
      const r = await reader.load(key);
      if (r.profile === ranking.readFastest?.name && !r.writeBack) result.alreadyCached++;
      else result.found++;
    } catch (err) {
      if (err instanceof NotFoundError) result.missing++;
      else if (err instanceof ClosedError) throw err;
      else result.failed.push({ key, error: err as Error });
    }
  });
  await reader.flush();
  return result;
}
