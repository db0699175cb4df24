/**
 * The coherence bus on Redis pub/sub: `PUBLISH` on one connection (to the
 * first node of `cluster_endpoints`: classic PUBLISH reaches the subscribers
 * of every node), and a dedicated subscriber connection to one server (the
 * next seed node after each loss), reconnected by this module so that it
 * knows when it was deaf.
 *
 * @module
 */
import type { Redis, RedisOptions } from "ioredis";
import { type RedisConfig, redisConfig, type Target } from "../../operators/drivers/_redis-options.js";
import type { CoherenceConfig } from "../../settings/coherence.js";
import { publishFailed, ReconnectLoop, reconnectDelay, type Transport, type TransportEvents } from "./transport.js";

/** Redis takes payloads up to 512 MB; batches stay small so one message never blocks the connection. */
const MAX_PAYLOAD_BYTES = 64 * 1024;
const CONNECT_TIMEOUT_MS = 2000;

const addressOf = (t: Target) => ("path" in t ? t.path : `${t.host}:${t.port}`);

export async function redisTransport(config: CoherenceConfig): Promise<Transport> {
  // The profile parser checks the same connection options (endpoint forms, db, credentials).
  const rc = redisConfig(config.connection, "coherence");
  const ioredis = await import("ioredis");
  const channel = config.channel;
  const base = (t: Target): RedisOptions => ({
    ...("path" in t ? { path: t.path } : { host: t.host, port: t.port }),
    ...("tls" in t && t.tls ? { tls: {} } : {}),
    username: rc.username,
    password: rc.password,
    db: rc.cluster ? 0 : rc.db,
    connectTimeout: CONNECT_TIMEOUT_MS,
    lazyConnect: true,
    // A publish while disconnected fails at once: the bus queues it for a retry.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
  });
  // One connection, so that messages arrive in the order of their sequence numbers (in a cluster,
  // PUBLISH on any node reaches the subscribers of every node).
  const publisher = new ioredis.Redis({ ...base(rc.targets[0]!), retryStrategy: reconnectDelay });
  publisher.on("error", () => {
    // Reported by the failed publish itself; ioredis reconnects.
  });
  // Until the first handshake ends, publishes wait for it (a short-lived CLI publishes at once); then they fail fast.
  publisher.options.enableOfflineQueue = true;
  publisher.once("ready", () => {
    publisher.options.enableOfflineQueue = false;
  });
  publisher.connect().catch(() => {});
  return new RedisTransport(
    rc,
    channel,
    publisher,
    (t) => new ioredis.Redis({ ...base(t), retryStrategy: () => null }),
  );
}

class RedisTransport implements Transport {
  readonly maxPayloadBytes = MAX_PAYLOAD_BYTES;
  readonly description: string;
  readonly #config: RedisConfig;
  readonly #channel: string;
  readonly #publisher: Redis;
  readonly #connect: (t: Target) => Redis;
  #subscriber: Redis | undefined;
  #loop: ReconnectLoop | undefined;

  constructor(config: RedisConfig, channel: string, publisher: Redis, connect: (t: Target) => Redis) {
    this.#config = config;
    this.#channel = channel;
    this.#publisher = publisher;
    this.#connect = connect;
    this.description = `redis ${config.targets.map(addressOf).join(",")}, channel ${JSON.stringify(channel)}`;
  }

  async publish(payload: string): Promise<void> {
    try {
      await this.#publisher.publish(this.#channel, payload);
    } catch (err) {
      throw publishFailed(this.description, "publish", err);
    }
  }

  listen(events: TransportEvents): void {
    const loop = new ReconnectLoop((attempt) => this.#subscribe(events, loop, attempt));
    this.#loop = loop;
    loop.start();
  }

  /** One subscriber connection (each attempt to the next seed node of a cluster). */
  #subscribe(events: TransportEvents, loop: ReconnectLoop, attempt: number): void {
    const targets = this.#config.targets;
    const target = targets[attempt % targets.length]!;
    const sub = this.#connect(target);
    this.#subscriber = sub;
    let subscribed = false;
    sub.on("error", () => {
      // Followed by "end", which reconnects.
    });
    sub.on("message", (ch: string, payload: string) => {
      if (ch === this.#channel) events.message(payload);
    });
    sub.once("end", () => {
      if (this.#subscriber === sub) this.#subscriber = undefined;
      if (loop.closed) return;
      events.down(subscribed ? "the subscriber connection closed" : `cannot subscribe at ${addressOf(target)}`);
      loop.lost();
    });
    sub
      .connect()
      .then(() => sub.subscribe(this.#channel))
      .then(
        () => {
          if (loop.closed || this.#subscriber !== sub) return;
          subscribed = true;
          loop.listening();
          events.up();
        },
        () => sub.disconnect(),
      );
  }

  async close(): Promise<void> {
    this.#loop?.close();
    this.#subscriber?.disconnect();
    await this.#publisher.quit().catch(() => this.#publisher.disconnect());
  }
}
