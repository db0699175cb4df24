/**
 * Listening to the coherence bus without taking part: what the CLI's `watch`
 * prints (each message's origin, operation, sequence number and keys; each
 * change a shared tier's server reports; the proofs of the lease).
 *
 * @module
 */
import { silentLogger } from "../../logger.js";
import type { ChangeFeedSource } from "../../operators/types.js";
import { type CoherenceSettings, checkCoherence } from "../../settings/coherence.js";
import { Feed } from "./feeds.js";
import { planListeners } from "./listeners.js";
import { Liveness } from "./liveness.js";
import { type BusMessage, decodeMessage } from "./message.js";

/** What {@link watchCoherenceBus} reports. */
export type BusEvent =
  | { kind: "message"; message: BusMessage }
  | { kind: "malformed"; reason: string }
  /** A shared profile's server reports `key` changed (`null`: every key), whoever changed it. */
  | { kind: "report"; profile: string; key: string | null }
  /** A ping on `bus` was answered after `rttMs`: proof that it hears everything sent before. */
  | { kind: "proof"; bus: string; rttMs: number }
  | { kind: "up"; bus: string }
  | { kind: "down"; bus: string; reason: string };

/** The shared profiles whose server reports their changes (see `Operator.changeFeed`). */
export interface WatchOptions {
  feeds?: readonly { profile: string; source: ChangeFeedSource }[];
  /** Ping period in ms (the bus's `heartbeat_ms` by default). */
  pingMs?: number;
}

/**
 * Subscribes to the bus of a `[coherence]` table (and to the change reports of `options.feeds`) and calls
 * `onEvent` for every message (older instances' heartbeats included), every report, every proof, and when a
 * listener connects or loses its connection. Resolves with the function that stops it.
 * @throws SettingsError for a bad `[coherence]` table.
 * @example
 * const stop = await watchCoherenceBus(settings.coherence, (e) => console.log(e));
 */
export async function watchCoherenceBus(
  settings: CoherenceSettings,
  onEvent: (event: BusEvent) => void,
  options: WatchOptions = {},
): Promise<() => Promise<void>> {
  const config = checkCoherence(settings);
  const feeds = (options.feeds ?? []).map((f) => new Feed(f.profile, f.source));
  const planned = await planListeners(config, feeds, silentLogger);
  const alive: Liveness[] = [];
  // What a server reports, as the bus takes it: the storage key (a TTL sidecar's value), never the library's own keys.
  const report = (feed: Feed, raw: string) => {
    const r = feed.reported(raw);
    if (r === undefined) return;
    onEvent({ kind: "report", profile: feed.tier, key: "drop" in r ? r.drop : null });
  };
  for (const p of planned) {
    const bus = p.listener.description;
    let sentAt = 0;
    const live = new Liveness(
      p.listener,
      options.pingMs ?? config.heartbeatMs,
      (at) => {
        sentAt = at;
        onEvent({ kind: "proof", bus, rttMs: Math.round((performance.now() - sentAt) * 100) / 100 });
      },
      (reason) => onEvent({ kind: "down", bus, reason }),
    );
    alive.push(live);
    p.listener.start({
      message: (channel, payload) => {
        const feed = p.channels.get(channel);
        if (feed) report(feed, payload);
        else if (p.bus && channel === config.channel) {
          try {
            onEvent({ kind: "message", message: decodeMessage(payload) });
          } catch (err) {
            onEvent({ kind: "malformed", reason: (err as Error).message });
          }
        }
      },
      invalidated: (keys) => {
        for (const feed of p.tracked) {
          if (keys === null) onEvent({ kind: "report", profile: feed.tier, key: null });
          else for (const k of keys) report(feed, k);
        }
      },
      up: () => {
        live.up();
        onEvent({ kind: "up", bus });
      },
      down: (reason) => {
        live.down();
        onEvent({ kind: "down", bus, reason });
      },
    });
  }
  return async () => {
    for (const live of alive) live.stop();
    await Promise.all(planned.map((p) => p.listener.close()));
  };
}
