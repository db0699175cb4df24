/**
 * Cache warm-up (the seed's planned `cache_prefetch`): loads keys from the
 * slower tiers into the fastest and waits for the write-backs to land. Keys go
 * through `loadValues`' path: in batches from tiers that read many keys per
 * round trip (Redis `MGET`, PostgreSQL `= ANY($1)`), else at most
 * `concurrency` one-key loads at a time.
 *
 * @module
 */
import { ClosedError, NotFoundError } from "../errors.js";
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
  const unique = [...new Set(keys)];
  const outcomes = await reader.loadMany(unique, undefined, concurrency);
  outcomes.forEach((o, i) => {
    if (o.ok) {
      if (o.profile === ranking.readFastest?.name && !o.writeBack) result.alreadyCached++;
      else result.found++;
    } else if (o.error instanceof NotFoundError) result.missing++;
    else if (o.error instanceof ClosedError) throw o.error;
    else result.failed.push({ key: unique[i]!, error: o.error });
  });
  await reader.flush();
  return result;
}
