/**
 * Listening to the coherence bus without taking part: what the CLI's `watch`
 * prints (each message's origin, operation, sequence number and keys).
 *
 * @module
 */
import { type CoherenceSettings, checkCoherence } from "../../settings/coherence.js";
import { type BusMessage, decodeMessage } from "./message.js";
import { openTransport } from "./open-transport.js";

/** What {@link watchCoherenceBus} reports. */
export type BusEvent =
  | { kind: "message"; message: BusMessage }
  | { kind: "malformed"; reason: string }
  | { kind: "up"; bus: string }
  | { kind: "down"; bus: string; reason: string };

/**
 * Subscribes to the bus of a `[coherence]` table and calls `onEvent` for
 * every message (heartbeats included), and when the listener connects or
 * loses its connection. Resolves with the function that stops it.
 * @throws SettingsError for a bad `[coherence]` table.
 * @example
 * const stop = await watchCoherenceBus(settings.coherence, (e) => console.log(e));
 */
export async function watchCoherenceBus(
  settings: CoherenceSettings,
  onEvent: (event: BusEvent) => void,
): Promise<() => Promise<void>> {
  const transport = await openTransport(checkCoherence(settings));
  const bus = transport.description;
  transport.listen({
    message: (payload) => {
      try {
        onEvent({ kind: "message", message: decodeMessage(payload) });
      } catch (err) {
        onEvent({ kind: "malformed", reason: (err as Error).message });
      }
    },
    up: () => onEvent({ kind: "up", bus }),
    down: (reason) => onEvent({ kind: "down", bus, reason }),
  });
  return () => transport.close();
}
