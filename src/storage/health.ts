/**
 * Background health checks: with live ranking, loads keep the slower tiers'
 * latencies fresh (and give a tripped tier its trial) with a cheap `exists`
 * of the probe key, one tier at a time, every 32 loads and at most once per
 * `healthCheckMs`, so a hot cache never floods a remote profile.
 *
 * @module
 */
import { performance } from "node:perf_hooks";
import type { Ranking, TierHealth } from "./ranking.js";
import type { Tier } from "./tier.js";
import type { Lifecycle } from "./types.js";

/** Loads between two chances of a health check. */
const LOADS_PER_CHECK = 32;

export class HealthChecks {
  readonly #ranking: Ranking<Tier>;
  readonly #lifecycle: Lifecycle;
  readonly #everyMs: number;
  /** Loads until the next chance of a check. */
  #countdown = LOADS_PER_CHECK;
  #cursor = 0;
  #last = Number.NEGATIVE_INFINITY;

  constructor(ranking: Ranking<Tier>, lifecycle: Lifecycle, everyMs: number) {
    this.#ranking = ranking;
    this.#lifecycle = lifecycle;
    this.#everyMs = everyMs;
  }

  /** State, latency and breaker of every tier (latency and breaker as live ranking sees them). */
  report(): Record<string, TierHealth> {
    const live = this.#ranking.snapshot();
    const out: Record<string, TierHealth> = {};
    for (const t of this.#ranking.all) {
      const h = live[t.name] ?? { latencyUs: t.rankLatencyUs, open: false, consecutiveFailures: 0 };
      out[t.name] = { ...h, state: t.state };
    }
    return out;
  }

  /** Counts `n` loads; maybe starts one health check in the background. */
  loads(n: number): void {
    this.#countdown -= n;
    if (this.#countdown > 0) return;
    this.#countdown = LOADS_PER_CHECK;
    if (this.#ranking.live) this.#check();
  }

  #check(): void {
    const now = performance.now();
    if (now - this.#last < this.#everyMs) return;
    this.#last = now;
    const others = this.#ranking.slower;
    if (others.length === 0 || this.#lifecycle.closed) return;
    const tier = others[this.#cursor++ % others.length]!;
    if (!tier.available()) return;
    tier.call("health check", tier.probeKey, () => tier.op.exists(tier.probeKey)).catch(() => {});
  }
}
