/**
 * A listening connection to one Redis server: the bus's pub/sub channels,
 * and, where shared tiers live on this server, the server's own reports of
 * every change of their keys. The connection turns client-side-caching
 * tracking on for itself (`CLIENT TRACKING ON REDIRECT <its own id> BCAST
 * PREFIX ...`) and subscribes to `__redis__:invalidate`: the server then
 * reports each change of a key under a tracked prefix, whoever made it
 * (another instance, the Rust crate, `redis-cli`), plus expiry, eviction and
 * `FLUSHALL`. Tracking belongs to the connection, so a ping answered on it
 * proves the reports flow. Reconnected by this module, so it knows when it
 * was deaf.
 *
 * @module
 */
import type { Redis, RedisOptions } from "ioredis";
import { tlsOption } from "../../operators/drivers/_redis-options.js";
import type { RedisChangeFeed } from "../../operators/types.js";
import { Echoes, echoChannel, type Interests, type Listener, type ListenerEvents, ReconnectLoop } from "./listener.js";

/** Error replies of a server that is not ready yet: asked again on the next connection. */
const NOT_READY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY)\b/;
/** The channel a tracking connection (RESP2) receives its invalidations on. */
const INVALIDATE_CHANNEL = "__redis__:invalidate";
const CONNECT_TIMEOUT_MS = 2000;

type Target = RedisChangeFeed["targets"][number];
/** The part of the ioredis module listeners use (loaded lazily). */
export type IoRedis = { Redis: typeof import("ioredis").Redis };
/** Where and as whom to connect. */
export type RedisEndpoint = { target: Target; username: string | undefined; password: string | undefined };

export const redisAddress = (t: Target): string => ("path" in t ? t.path : `${t.host}:${t.port}`);

export function redisConnectOptions(e: RedisEndpoint): RedisOptions {
  const t = e.target;
  return {
    ...("path" in t ? { path: t.path } : { host: t.host, port: t.port }),
    ...tlsOption(t),
    username: e.username,
    password: e.password,
    connectTimeout: CONNECT_TIMEOUT_MS,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Reconnected by the listener's own loop, so that every loss is seen.
    retryStrategy: () => null,
  };
}

export class RedisListener implements Listener {
  readonly description: string;
  readonly #endpoint: RedisEndpoint;
  readonly #interests: Interests;
  readonly #ioredis: IoRedis;
  #sub: Redis | undefined;
  /** Sends the echoes the listener proves itself with (a subscribed connection cannot publish). */
  #companion: Redis | undefined;
  readonly #echo = echoChannel("terraphim-echo:");
  readonly #echoes: Echoes;
  #listening = false;
  #loop: ReconnectLoop | undefined;
  #tracking: boolean | undefined;

  constructor(ioredis: IoRedis, endpoint: RedisEndpoint, interests: Interests) {
    this.#ioredis = ioredis;
    this.#endpoint = endpoint;
    this.#interests = interests;
    this.description = `redis ${redisAddress(endpoint.target)}`;
    this.#echoes = new Echoes(this.description);
  }

  get tracking(): boolean | undefined {
    return this.#tracking;
  }

  start(events: ListenerEvents): void {
    const loop = new ReconnectLoop(() => this.#connect(events, loop));
    this.#loop = loop;
    loop.start();
  }

  /** `PUBLISH <echo channel> n` on the companion connection; resolves when the listener hears it. */
  async ping(n: number): Promise<void> {
    const companion = this.#companion;
    if (!companion || !this.#listening) throw new Error(`${this.description}: not listening`);
    const echo = this.#echoes.wait(n);
    companion.publish(this.#echo, String(n)).then(
      (receivers) => {
        // No subscriber: the listener is not subscribed any more (the server says so at once).
        if (receivers === 0) this.#echoes.failed(n, new Error(`${this.description}: the echo had no listener`));
      },
      (err: Error) => this.#echoes.failed(n, err),
    );
    await echo;
  }

  replace(_reason: string): void {
    this.#sub?.disconnect();
  }

  async close(): Promise<void> {
    this.#loop?.close();
    this.#sub?.disconnect();
    this.#sub = undefined;
    this.#companion?.disconnect();
    this.#companion = undefined;
  }

  #connect(events: ListenerEvents, loop: ReconnectLoop): void {
    const sub = new this.#ioredis.Redis(redisConnectOptions(this.#endpoint));
    const companion = new this.#ioredis.Redis(redisConnectOptions(this.#endpoint));
    this.#sub = sub;
    this.#companion?.disconnect();
    this.#companion = companion;
    this.#listening = false;
    let subscribed = false;
    for (const c of [sub, companion]) {
      c.on("error", () => {
        // Followed by "end", which reconnects (the companion's loss ends the listener too).
      });
    }
    // One pair: if the companion goes, its echoes cannot come, and the listener is replaced with it.
    companion.once("end", () => sub.disconnect());
    sub.on("messageBuffer", (channel: Buffer, message: Buffer | Buffer[] | null) => {
      const ch = channel.toString();
      if (ch === this.#echo) {
        if (message !== null && !Array.isArray(message)) this.#echoes.heard(message.toString());
      } else if (ch === INVALIDATE_CHANNEL) {
        events.invalidated(message === null ? null : (Array.isArray(message) ? message : [message]).map(String));
      } else if (this.#interests.channels.has(ch) && message !== null && !Array.isArray(message)) {
        events.message(ch, message.toString());
      }
    });
    sub.once("end", () => {
      companion.disconnect();
      if (this.#sub === sub) {
        this.#sub = undefined;
        this.#listening = false;
        this.#echoes.clear("the listening connection closed");
      }
      if (loop.closed) return;
      events.down(
        subscribed ? "the listening connection closed" : `cannot listen at ${redisAddress(this.#endpoint.target)}`,
      );
      loop.lost();
    });
    const channels = [...this.#interests.channels, this.#echo];
    Promise.all([sub.connect(), companion.connect()])
      .then(async () => {
        const track = this.#interests.prefixes.size > 0 && (await this.#track(sub, events));
        if (track) channels.push(INVALIDATE_CHANNEL);
        await sub.subscribe(...channels);
      })
      .then(
        () => {
          if (loop.closed || this.#sub !== sub) return;
          subscribed = true;
          this.#listening = true;
          loop.listening();
          events.up();
        },
        () => sub.disconnect(),
      );
  }

  /** Turns tracking on for this connection; false (said once) where the server refuses it. */
  async #track(sub: Redis, events: ListenerEvents): Promise<boolean> {
    const prefixes = [...this.#interests.prefixes];
    // An empty prefix tracks every key: BCAST without PREFIX.
    const args = prefixes.includes("") ? [] : prefixes.flatMap((p) => ["PREFIX", p]);
    try {
      const id = String(await sub.call("CLIENT", "ID"));
      await sub.call("CLIENT", "TRACKING", "ON", "REDIRECT", id, "BCAST", ...args);
    } catch (err) {
      const message = (err as Error).message;
      // A connection problem, or a server not ready yet (loading after a restart, busy, failing over), is not
      // an answer: the next connection asks again. Listening on without tracking would hear nothing.
      if ((err as Error).name !== "ReplyError" || NOT_READY.test(message)) throw err;
      if (this.#tracking !== false) events.unsupported?.(message);
      this.#tracking = false;
      return false;
    }
    this.#tracking = true;
    return true;
  }
}

/**
 * The masters of a Redis Cluster, from `CLUSTER NODES` of the first seed that answers (a listener on each:
 * tracking reports a change only on the node holding the key). Where no seed answers, the seeds themselves.
 */
export async function clusterMasters(ioredis: IoRedis, seeds: readonly RedisEndpoint[]): Promise<RedisEndpoint[]> {
  for (const seed of seeds) {
    const c = new ioredis.Redis(redisConnectOptions(seed));
    c.on("error", () => {});
    try {
      await c.connect();
      const nodes = String(await c.call("CLUSTER", "NODES"));
      const tls = "tls" in seed.target && seed.target.tls;
      const ca = "ca" in seed.target ? seed.target.ca : undefined;
      const masters = nodes.split("\n").flatMap((line) => {
        const [, addr, flags, , , , , , ...slots] = line.trim().split(" ");
        if (!addr || !flags?.split(",").includes("master") || /fail/.test(flags) || slots.length === 0) return [];
        const m = /^(.*):(\d+)@/.exec(addr);
        return m ? [{ ...seed, target: { host: m[1]!, port: Number(m[2]), tls, ...(ca && { ca }) } }] : [];
      });
      if (masters.length > 0) return masters;
    } catch {
      // The next seed.
    } finally {
      c.disconnect();
    }
  }
  return [...seeds];
}
