/**
 * The batched half of `loadValues` (and so of `cachePrefetch` and the
 * adapters' listings): keys the fastest tier cannot answer synchronously are
 * read from the tiers that read many keys per round trip (Redis `MGET`,
 * PostgreSQL `= ANY($1)`, MySQL `IN (...)`), 1,000 a call, in ranking order;
 * a value found in a slower tier is written back into the fastest, fenced as
 * a single load's write-back is (a save or delete of the key since the read
 * drops it). Anything unusual (a tier that cannot batch, a failed call, a
 * value that does not decode) is left to the one-key path, which says why.
 *
 * @module
 */
import { decodeStored, recompressStored, storedAsText } from "../codec.js";
import type { Logger } from "../logger.js";
import { type Attempt, mismatch, notAsked, notFoundOrWhy } from "./fallback.js";
import type { FencedBatch, WriteFence } from "./fence.js";
import type { Ranking } from "./ranking.js";
import type { Tier } from "./tier.js";
import { type BatchEntry, readEntries } from "./tier-batch.js";
import type { Decoder, LoadOutcome } from "./types.js";

/** Whether loads of `tier` go in batches: a network tier with `readMany` (in-process tiers read synchronously). */
export function loadsInBatches(tier: Tier): boolean {
  return tier.op.readMany !== undefined && tier.op.capabilities.batchSize !== undefined && !tier.readsSync;
}

export class BatchedLoads {
  constructor(
    private readonly ranking: Ranking<Tier>,
    private readonly fence: WriteFence,
    private readonly logger: Logger,
    /** Keeps background write-backs until `flush()` (the fallback's pending set). */
    private readonly track: (p: Promise<void>) => void,
  ) {}

  /**
   * Loads `keys[i]` for each `i` of `pending` into `out`, from the read order (past the fastest
   * when `fastestAsked`: it missed them already). Returns the indexes left for the one-key path.
   */
  async load(
    keys: readonly string[],
    pending: number[],
    dec: Decoder<unknown>,
    out: LoadOutcome<unknown>[],
    fastestAsked: boolean,
  ): Promise<number[]> {
    const fastest = this.ranking.readFastest;
    const asked: [Tier, Attempt][] = fastestAsked ? [[fastest, { kind: "missing" }]] : [];
    // Watched from before the first read whose values are written back (a slower tier's), not for the fastest's own.
    let fenced: FencedBatch | undefined;
    const writeBacks: Promise<void>[] = [];
    try {
      for (const tier of this.ranking.readOrder) {
        if (pending.length === 0) break;
        if (fastestAsked && tier === fastest) continue;
        if (!tier.available() || !loadsInBatches(tier)) return pending;
        if (tier !== fastest) fenced ??= this.fence.watchMany(pending.map((i) => keys[i]!));
        let entries: (BatchEntry | undefined)[];
        try {
          entries = await readEntries(
            tier,
            pending.map((i) => keys[i]!),
          );
        } catch (err) {
          this.logger.debug({ profile: tier.name, err }, "batched read failed; loading one by one");
          return pending;
        }
        const missing: number[] = [];
        const rest: number[] = [];
        for (let j = 0; j < pending.length; j++) {
          const i = pending[j]!;
          const entry = entries[j];
          if (entry === undefined) {
            tier.counters.misses++;
            missing.push(i);
            continue;
          }
          const key = keys[i]!;
          let value: unknown;
          try {
            entry.stored = storedAsText(entry.stored);
            value = dec(decodeStored(entry.stored.data, { profile: tier.name, key }));
            if (value instanceof Promise) value = await value;
          } catch (err) {
            // Schema evolution or corruption: the one-key path reads the other tiers and says which.
            this.logger.debug({ profile: tier.name, key, err: mismatch(tier.name, key, err) }, "batched decode failed");
            rest.push(i);
            continue;
          }
          const back = tier !== fastest;
          if (back) {
            tier.counters.fallbacks++;
            writeBacks.push(this.#writeBack(fastest, key, entry, fenced!));
          } else tier.counters.hits++;
          out[i] = { ok: true, value, profile: tier.name, writeBack: back };
        }
        asked.push([tier, { kind: "missing" }]);
        pending = missing;
        if (rest.length > 0) return [...rest, ...pending];
      }
      // Missing from every tier of the read path: absent, unless a durable tier could not be asked.
      for (const t of this.ranking.standby) asked.push([t, { kind: "failed", error: notAsked(t) }]);
      for (const i of pending) out[i] = { ok: false, error: notFoundOrWhy(keys[i]!, asked) };
      return [];
    } finally {
      // The fence stays up until the write-backs are done.
      if (writeBacks.length > 0) this.track(Promise.allSettled(writeBacks).then(() => fenced?.release()));
      else fenced?.release();
    }
  }

  /**
   * Copies a value found in a slower tier into the fastest, unless a save or delete of the key
   * started since: queued behind the key's writes, as a single load's write-back is.
   */
  #writeBack(fastest: Tier, key: string, entry: BatchEntry, fenced: FencedBatch): Promise<void> {
    const st = fastest.counters;
    const { data, size } = recompressStored(entry.stored);
    if (fenced.stale.has(key)) {
      st.writeBacksSkipped++;
      return Promise.resolve();
    }
    return fastest
      .queued("write-back", key, async () => {
        if (fenced.stale.has(key) || (entry.expiresAt !== undefined && entry.expiresAt <= Date.now())) {
          st.writeBacksSkipped++;
          return;
        }
        await fastest.writeNow(key, data, entry.expiresAt);
        st.writeBacks++;
        st.bytesWritten += size;
      })
      .catch((err) => {
        st.failures++;
        this.logger.warn({ profile: fastest.name, key, err }, "write-back failed");
      });
  }
}
