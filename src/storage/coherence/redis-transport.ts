/**
 * The coherence bus's publishing side on Redis: `PUBLISH` on one connection
 * (to the first node of `cluster_endpoints`: classic PUBLISH reaches the
 * subscribers of every node, and listeners subscribe on every master).
 *
 * @module
 */
import type { RedisConfig } from "../../operators/drivers/_redis-options.js";
import type { CoherenceConfig } from "../../settings/coherence.js";
import { reconnectDelay } from "./listener.js";
import { redisAddress, redisConnectOptions } from "./redis-listener.js";
import { type Publisher, publishFailed, within } from "./transport.js";

/** Redis takes payloads up to 512 MB; batches stay small so one message never blocks the connection. */
const MAX_PAYLOAD_BYTES = 64 * 1024;

export async function redisPublisher(rc: RedisConfig, config: CoherenceConfig): Promise<Publisher> {
  const ioredis = await import("ioredis");
  const channel = config.channel;
  const target = rc.targets[0]!;
  const publisher = new ioredis.Redis({
    ...redisConnectOptions({ target, username: rc.username, password: rc.password }),
    db: rc.cluster ? 0 : rc.db,
    retryStrategy: reconnectDelay,
  });
  publisher.on("error", () => {
    // Reported by the failed publish itself; ioredis reconnects.
  });
  // Until the first handshake ends, publishes wait for it (a short-lived CLI publishes at once); then they fail fast.
  publisher.options.enableOfflineQueue = true;
  publisher.once("ready", () => {
    publisher.options.enableOfflineQueue = false;
  });
  publisher.connect().catch(() => {});
  const description = `redis ${rc.targets.map(redisAddress).join(",")}, channel ${JSON.stringify(channel)}`;
  const limitMs = config.heartbeatMs * 2;
  return {
    maxPayloadBytes: MAX_PAYLOAD_BYTES,
    description,
    async publish(payload) {
      try {
        await within(publisher.publish(channel, payload), limitMs, "PUBLISH");
      } catch (err) {
        // A connection that does not answer stays wedged: a fresh one for the retry.
        if (publisher.status === "ready") publisher.disconnect(true);
        throw publishFailed(description, "publish", err);
      }
    },
    async close() {
      await within(publisher.quit(), 1000, "QUIT").catch(() => {});
      publisher.disconnect();
    },
  };
}
