/**
 * The staleness bound under test, in one place: a load never returns a value
 * that the shared tiers replaced or deleted more than Δ before the load
 * began, with Δ = 3 × `[coherence] heartbeat_ms`. The library will export its
 * own; until then every fault test takes Δ from here.
 *
 * @module
 */

/** How many heartbeat periods Δ spans. */
export const HEARTBEATS_PER_BOUND = 3;

/** Δ in ms for a `heartbeat_ms` setting. */
export function stalenessBoundMs(heartbeatMs: number): number {
  return HEARTBEATS_PER_BOUND * heartbeatMs;
}
