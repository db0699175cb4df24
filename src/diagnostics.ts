/**
 * `node:diagnostics_channel` tracing channels, for OpenTelemetry or any
 * subscriber. Each operation publishes `start`, `end`, `asyncStart`,
 * `asyncEnd` and `error` events with a context object:
 *
 * | channel | context |
 * |---|---|
 * | `terraphim-persistence:load` | `{ key }`; on success `result` is `{ value, profile, writeBack }` |
 * | `terraphim-persistence:save` | `{ key, profiles, bytes }` (a delete has `bytes: 0`, `op: "delete"`) |
 * | `terraphim-persistence:write-back` | `{ key, profile, from, bytes }` |
 * | `terraphim-persistence:probe` | `{ profile, scheme }`; `result` is the median read in µs |
 *
 * `terraphim-persistence:state` is a plain channel (not a tracing one): one
 * message `{ profile, from, to }` per change of a tier's {@link TierState}
 * (`to` is the new state: `{ kind: "ready" }`, `{ kind: "read-only", reason }`
 * or `{ kind: "down", reason, nextRetryAt }`).
 *
 * Nothing is published (and nothing costs) while a channel has no subscriber.
 *
 * @example
 * import { tracingChannel } from "node:diagnostics_channel";
 * tracingChannel(CHANNELS.load).subscribe({
 *   asyncEnd: (ctx) => console.log(ctx.key, "served by", ctx.result.profile),
 * });
 */
export const CHANNELS = {
  load: "terraphim-persistence:load",
  save: "terraphim-persistence:save",
  writeBack: "terraphim-persistence:write-back",
  probe: "terraphim-persistence:probe",
  /** A tier's state changed (`ready`, `read-only`, `down`): subscribe with `channel(CHANNELS.state)`. */
  state: "terraphim-persistence:state",
  /**
   * The coherence bus (a plain channel): one message per event, `{ event, origin, ... }` with `event`
   * `sent` / `received` (`op`, `keys`, `seq`, and `from` for received), `publish-failed` (`keys`,
   * `reason`), `overflow` (`keys` dropped from the retry queue), `gap` (`reason`), `resync`
   * (`profile`, `keys`, `dropped`, `replaced`), `connected`, `disconnected` (`reason`).
   */
  bus: "terraphim-persistence:bus",
} as const;
