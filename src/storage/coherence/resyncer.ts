/**
 * Which local tiers need a resync, and running it: after a gap every local
 * tier is *unsynced* (out of the read path); once every listener is back, each
 * is resynced in turn (`resync.ts`: volatile ones emptied, durable ones
 * revalidated against the shared tiers) and may serve again. A gap during a
 * resync makes it stop early; the next one starts after it. A resync that
 * could not finish (no shared tier answered) is tried again later.
 *
 * @module
 */
import type { Logger } from "../../logger.js";
import { busChannel } from "../channels.js";
import type { WriteFence } from "../fence.js";
import type { Ranking } from "../ranking.js";
import type { Tier } from "../tier.js";
import { resyncTier } from "./resync.js";

/** A resync that could not finish (no shared tier answered) is tried again after this long. */
const RESYNC_RETRY_MS = 2000;

export class Resyncer {
  readonly #ranking: Ranking<Tier>;
  readonly #fence: WriteFence;
  readonly #logger: Logger;
  readonly #origin: string;
  readonly #changed: () => void;
  readonly #unsynced = new Set<Tier>();
  /** Bumped by each gap: a resync started before the latest gap does not put tiers back. */
  #generation = 0;
  #running: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  resyncs = 0;

  /** @param changed called when a tier was resynced (it may serve again). */
  constructor(ranking: Ranking<Tier>, fence: WriteFence, logger: Logger, origin: string, changed: () => void) {
    this.#ranking = ranking;
    this.#fence = fence;
    this.#logger = logger;
    this.#origin = origin;
    this.#changed = changed;
  }

  /** `tiers` may hold replaced values: out of the read path until resynced (a resync running stops early). */
  distrust(tiers: readonly Tier[]): void {
    this.#generation++;
    for (const t of tiers) this.#unsynced.add(t);
  }

  unsynced(tier: Tier): boolean {
    return this.#unsynced.has(tier);
  }

  /** Resyncs the unsynced tiers while `current()` holds (every listener up, storage open). */
  start(current: () => boolean): void {
    const run = async () => {
      const generation = ++this.#generation;
      const still = () => !this.#closed && current() && this.#generation === generation;
      const shared = this.#ranking.readOrder.filter((t) => t.shared);
      let failed = false;
      for (const tier of [...this.#unsynced]) {
        if (!still()) return;
        if (tier.state.kind === "down") continue;
        try {
          const report = await resyncTier(tier, shared, this.#fence, still);
          if (!report) return;
          this.#unsynced.delete(tier);
          this.resyncs++;
          this.#changed();
          this.#logger.info({ profile: tier.name, ...report }, "coherence bus: local profile resynced");
          if (busChannel.hasSubscribers)
            busChannel.publish({ event: "resync", origin: this.#origin, profile: tier.name, ...report });
        } catch (err) {
          failed = true;
          this.#logger.warn({ profile: tier.name, err }, "coherence bus: resync failed; trying again");
        }
      }
      if (failed && still()) {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => this.start(current), RESYNC_RETRY_MS);
        this.#retryTimer.unref();
      }
    };
    const previous = this.#running ?? Promise.resolve();
    const p: Promise<void> = previous.then(run).finally(() => {
      if (this.#running === p) this.#running = undefined;
    });
    this.#running = p;
  }

  /** Resolves when no resync runs. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
  }
}
