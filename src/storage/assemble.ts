/**
 * Builds the parts of one storage from what start-up found: the ranking,
 * one {@link Tier} per profile, the tiered reader and writer (sharing one
 * write fence), health checks, the rejoiner of down tiers, and the coherence
 * bus when the settings have one. The facade holds the result.
 *
 * @module
 */
import { Coherence } from "./coherence/coherence.js";
import { WriteFence } from "./fence.js";
import { HealthChecks } from "./health.js";
import type { StorageOptions } from "./options.js";
import { Ranking } from "./ranking.js";
import { TieredReader } from "./read.js";
import { Rejoiner } from "./rejoin.js";
import type { Started } from "./startup.js";
import { Tier } from "./tier.js";
import type { Lifecycle } from "./types.js";
import { TieredWriter } from "./write.js";

/** The parts of one storage, wired. */
export interface Parts {
  ranking: Ranking<Tier>;
  reader: TieredReader;
  writer: TieredWriter;
  health: HealthChecks;
  rejoiner: Rejoiner;
  coherence: Coherence | undefined;
}

export function assemble(started: Started, o: StorageOptions, lifecycle: Lifecycle & { closed: boolean }): Parts {
  const fence = new WriteFence();
  const ranking = new Ranking<Tier>(o.logger);
  const coherence = o.bus && new Coherence(o.bus, ranking, fence, o.logger, o.coherence);
  const live = o.live !== undefined && started.specs.length + started.down.length > 1;
  const rejoiner = new Rejoiner(ranking, started, o, lifecycle);
  const context = { logger: o.logger, monitor: ranking, lifecycle, fence, watcher: rejoiner, changes: coherence };
  const tiers = started.specs.map((s) => new Tier(s, context, live));
  const down = started.down.map((d) => new Tier(d.spec, context, live));
  ranking.start(tiers, (t) => t.fixedRank, o.live, down);
  rejoiner.start();
  return {
    ranking,
    reader: new TieredReader(ranking, fence, o.logger),
    writer: new TieredWriter(fence, ranking),
    health: new HealthChecks(ranking, lifecycle, o.healthCheckMs),
    rejoiner,
    coherence,
  };
}
