/**
 * The ioredis client of a `redis` profile: reaching the server (or a Cluster's seeds), the
 * client options, the first connection, and pipelining by event-loop turn.
 *
 * @module
 */
import { statSync } from "node:fs";
import type { Cluster, ClusterOptions, Redis, RedisOptions } from "ioredis";
import { probeTcp, unreachable } from "./_net.js";
import { type RedisConfig, type Target, type TcpTarget, tlsOption } from "./_redis-options.js";

/** TCP (and TLS) connect time limit of one attempt; ioredis' default is 10 s. */
const CONNECT_TIMEOUT_MS = 2000;
/** Reconnect back-off: 100 ms more per failed attempt, at most this; attempts never stop. */
const MAX_RECONNECT_DELAY_MS = 1000;
/** A database number the server does not have. */
const SELECT_REFUSED = /DB index is out of range|invalid DB index/i;
/** Errors that no retry fixes: a refused login, a missing database. */
export const REFUSED = /\b(NOAUTH|WRONGPASS|NOPERM)\b|invalid password|DB index is out of range|invalid DB index/i;

/** A target as `host:port`, or its socket path. */
export const addressOf = (t: Target) => ("path" in t ? t.path : `${t.host}:${t.port}`);

/** A dead server must be a quick, clear error: ioredis would keep reconnecting. A cluster needs one live seed. */
export async function probe(config: RedisConfig, profile: string): Promise<void> {
  const tcp = config.targets.filter((t): t is TcpTarget => "host" in t);
  if (tcp.length === 0) {
    const { path } = config.targets[0] as { path: string };
    if (!statSync(path, { throwIfNoEntry: false })?.isSocket()) {
      throw unreachable(profile, `redis at ${path}`, "no such socket");
    }
    return;
  }
  const problems = await Promise.all(tcp.map((t) => probeTcp(t.host, t.port)));
  if (!problems.includes(undefined)) {
    throw unreachable(profile, `redis at ${addressOf(tcp[0]!)}`, problems[0]!);
  }
}

const reconnectDelay = (attempt: number) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS);

/** The options of a client of one server. */
export function redisOptions(config: RedisConfig, target: Target): RedisOptions {
  return {
    ...("path" in target ? { path: target.path } : { host: target.host, port: target.port }),
    // Node sends the host as TLS server name (SNI) itself, except for an IP address (RFC 6066).
    ...tlsOption(target),
    username: config.username,
    password: config.password,
    db: config.db,
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // Until the first handshake ends, calls wait for it (see `connect`); then this turns false.
    enableOfflineQueue: true,
    // A call in flight when the connection drops is resent after one reconnect, else rejected.
    maxRetriesPerRequest: 1,
    retryStrategy: reconnectDelay,
  };
}

/** The options of a Cluster client. */
export function clusterOptions(config: RedisConfig): ClusterOptions {
  const tls = config.targets.find((t) => "tls" in t && t.tls);
  return {
    lazyConnect: true,
    // As for one server: queued until the first handshake ends, then never.
    enableOfflineQueue: true,
    clusterRetryStrategy: reconnectDelay,
    // Each node's connection (ioredis itself turns off its reconnects: the cluster object reconnects).
    redisOptions: {
      username: config.username,
      password: config.password,
      connectTimeout: CONNECT_TIMEOUT_MS,
      ...(tls ? tlsOption(tls) : {}),
    },
  };
}

/** What {@link connect} knows about the connection. */
export interface Connection {
  /** The last connection-level error since the last handshake, for messages. */
  lastError: Error | undefined;
  /** Set when the server refused the database (`SELECT`): every call fails with it from then on. */
  fatal: Error | undefined;
}

/**
 * Starts connecting without waiting for the handshake: a silent server must cost the storage's
 * `timeout_ms`, not a time limit of ours. Calls made before the first handshake ends wait for it
 * in ioredis' offline queue, or fail with its error (a refused password). From the first `ready`
 * on the queue is off: a call while the server is away fails at once while ioredis reconnects.
 */
export function connect(client: Redis | Cluster, cluster: boolean): Connection {
  const conn: Connection = { lastError: undefined, fatal: undefined };
  const onError = (err: Error) => {
    conn.lastError = err;
    // ioredis reports a refused SELECT (a db beyond the server's `databases`) but stays on db 0,
    // where no Rust reader looks; a cluster whose nodes refuse the login keeps calls queued
    // until their time limit. Both are settings to fix: stop, and fail every call with the reason.
    if (SELECT_REFUSED.test(err.message) || (cluster && REFUSED.test(err.message))) {
      conn.fatal = err;
      client.disconnect();
    }
  };
  // Also keeps ioredis from printing every connection error (it does when nobody listens).
  client.on("error", onError);
  client.on("node error", onError);
  client.on("ready", () => {
    conn.lastError = undefined;
  });
  client.once("ready", () => {
    client.options.enableOfflineQueue = false;
  });
  // Its failures reach the calls waiting in the queue.
  client.connect().catch(() => {});
  return conn;
}

/**
 * Pipelining by event-loop turn: the first command of a turn corks the connection's socket
 * (every master's on a Cluster) and the end of the turn uncorks it, so the commands of the
 * turn leave in one write, in call order. ioredis' own `enableAutoPipelining` does the same
 * with one pipeline in flight per node at a time: a hung one holds every later call, also
 * after `reset()` (measured: the reset test hung with it), and at 64 calls in flight it was
 * slower here (SET 14.3 µs vs 10.1 µs a call, GET 11.7 vs 9.6; BENCHMARKS.md).
 */
export function pipelineTurns(client: Redis | Cluster, cluster: boolean): () => void {
  let corked: { uncork(): void }[] | undefined;
  const uncork = () => {
    for (const stream of corked ?? []) stream.uncork();
    corked = undefined;
  };
  return () => {
    if (corked !== undefined) return;
    const nodes = cluster ? (client as Cluster).nodes("master") : [client as Redis];
    corked = [];
    for (const node of nodes) {
      const stream = (node as unknown as { stream?: { cork?(): void; uncork(): void } }).stream;
      if (stream?.cork) {
        stream.cork();
        corked.push(stream);
      }
    }
    process.nextTick(uncork);
  };
}
