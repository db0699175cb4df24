/**
 * The `redis` scheme on ioredis: one server or a Redis Cluster, with the keys
 * and value bytes OpenDAL's redis service (and so the Rust crate) uses.
 *
 * @module
 */
import { statSync } from "node:fs";
import type { Cluster, ClusterOptions, Redis, RedisOptions } from "ioredis";
import { BackendError, NotFoundError, PersistenceError, ProfileError } from "../../errors.js";
import { validateKey, validatePrefix } from "../../keys/index.js";
import type { Operator, RedisChangeFeed, StatResult } from "../types.js";
import { probeTcp, unreachable } from "./_net.js";
import { type RedisConfig, redisConfig, type Target, type TcpTarget } from "./_redis-options.js";
import { asBuffer, NETWORK_CAPABILITIES, OpenState, redactedCopy } from "./_shared.js";

export type { RedisOperatorOptions } from "./_redis-options.js";

/** TCP (and TLS) connect time limit of one attempt; ioredis' default is 10 s. */
const CONNECT_TIMEOUT_MS = 2000;
/** Reconnect back-off: 100 ms more per failed attempt, at most this; attempts never stop. */
const MAX_RECONNECT_DELAY_MS = 1000;
/** `close()` lets in-flight calls finish (`QUIT`) for at most this long, then drops the sockets. */
const CLOSE_GRACE_MS = 1000;
/** Hash slots of a Redis Cluster. */
const CLUSTER_SLOTS = 16384;
/** Keys per `SCAN` step. */
const SCAN_COUNT = 1000;
/** Error replies that can go away on their own (a loading, busy or failing-over server). */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY)\b/;
/** A database number the server does not have. */
const SELECT_REFUSED = /DB index is out of range|invalid DB index/i;
/** Errors that no retry fixes: a refused login, a missing database. */
const REFUSED = /\b(NOAUTH|WRONGPASS|NOPERM)\b|invalid password|DB index is out of range|invalid DB index/i;
/** Redis glob metacharacters (`MATCH` patterns), escaped with a backslash. */
const GLOB_CHARS = /[*?[\]\\]/g;
/**
 * A store on Redis through ioredis: `GET`/`SET`/`DEL` on `<root><key>` with
 * the raw value bytes (what OpenDAL writes), `list` by `SCAN` (on every master
 * of a cluster), one connection per server (ioredis pipelines concurrent calls).
 *
 * Opening probes the port (a dead server is a quick {@link ProfileError}) and
 * starts connecting without waiting: calls made during the first handshake
 * wait for it, so a server that accepts connections but never answers costs
 * the storage tier's `timeout_ms`, and a refused password or database fails
 * those calls (not transient). Afterwards ioredis reconnects by itself
 * (back-off up to 1 s, forever); while it is disconnected a call fails at once
 * with a transient {@link BackendError} (no offline queue), and a call in
 * flight when the connection drops is sent again once after the reconnect,
 * else fails the same way. Time limits and retries per call are the tier's
 * (`timeout_ms`, `retries`).
 *
 * @throws ProfileError for an unknown option, a bad value, or a server that
 *   cannot be reached.
 * @example
 * const op = await redisOperator({ endpoint: "tcp://127.0.0.1:6379", root: "/terraphim/" }, "cache");
 * await op.write("document_a.json", '{"id":"a"}'); // Redis key "terraphim/document_a.json"
 * await op.close();
 */
export async function redisOperator(options: Record<string, string>, profile = "redis"): Promise<Operator> {
  const config = redisConfig(options, profile);
  await probe(config, profile);
  let ioredis: { Redis: typeof Redis; Cluster: typeof Cluster };
  try {
    ioredis = await import("ioredis");
  } catch (err) {
    throw new ProfileError(`profile "${profile}": the "ioredis" package failed to load: ${(err as Error).message}`, {
      profile,
      cause: err,
    });
  }
  const client = config.cluster
    ? new ioredis.Cluster(
        (config.targets as TcpTarget[]).map(({ host, port }) => ({ host, port })),
        clusterOptions(config),
      )
    : new ioredis.Redis(redisOptions(config, config.targets[0]!));
  return wrap(client, connect(client, config.cluster), config, profile);
}

const addressOf = (t: Target) => ("path" in t ? t.path : `${t.host}:${t.port}`);

/**
 * Where a redis profile's server reports its changes (see `Operator.changeFeed`), from its options alone:
 * known before the server answers.
 * @throws ProfileError for bad options.
 */
export function redisChangeFeed(options: Record<string, string>, profile = "redis"): RedisChangeFeed {
  return feedOf(redisConfig(options, profile));
}

function feedOf(config: RedisConfig): RedisChangeFeed {
  const { targets, cluster, username, password, prefix } = config;
  return { kind: "redis", targets, cluster, username, password, prefix };
}

/** A dead server must be a quick, clear error: ioredis would keep reconnecting. A cluster needs one live seed. */
async function probe(config: RedisConfig, profile: string): Promise<void> {
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

function redisOptions(config: RedisConfig, target: Target): RedisOptions {
  return {
    ...("path" in target ? { path: target.path } : { host: target.host, port: target.port }),
    // Node sends the host as TLS server name (SNI) itself, except for an IP address (RFC 6066).
    ...("tls" in target && target.tls ? { tls: {} } : {}),
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

function clusterOptions(config: RedisConfig): ClusterOptions {
  const tls = config.targets.some((t) => "tls" in t && t.tls);
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
      ...(tls ? { tls: {} } : {}),
    },
  };
}

/** What {@link connect} knows about the connection. */
interface Connection {
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
function connect(client: Redis | Cluster, cluster: boolean): Connection {
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

function wrap(client: Redis | Cluster, conn: Connection, config: RedisConfig, profile: string): Operator {
  const { prefix, ttlSeconds } = config;
  const state = new OpenState("redis");
  const where = config.cluster
    ? `redis cluster ${addressOf(config.targets[0]!)}`
    : `redis ${addressOf(config.targets[0]!)}`;
  const redisKey = (path: string): string => {
    validateKey(path, profile);
    state.check(path);
    return prefix + path;
  };
  /**
   * The one translation of client errors. A server's error reply is transient only when it says
   * so (loading, busy, failing over); a refused login or database never is; anything else is the
   * connection (refused, reset, closed, not ready) and transient.
   */
  const failure = (op: string, key: string | undefined, err: unknown): PersistenceError => {
    if (err instanceof PersistenceError) return err;
    const cause = conn.fatal ?? (err as Error);
    const msg = cause?.message ?? String(cause);
    const reply = cause?.name === "ReplyError";
    const refused = conn.fatal !== undefined || REFUSED.test(msg);
    const last = conn.lastError && conn.lastError !== cause ? `: ${conn.lastError.message}` : "";
    const status = client.status === "ready" ? "" : ` (connection ${client.status}${last})`;
    // OpenDAL ignores credentials in the endpoint URL, and so do we: say so when they were needed.
    const hint =
      /NOAUTH/.test(msg + last) && config.urlCredentials && !config.password
        ? " (credentials in the endpoint URL are not used, as in OpenDAL: set `password`)"
        : "";
    return new BackendError(
      `profile "${profile}": ${op}${key === undefined ? "" : ` "${key}"`} on ${where} failed: ${msg}${status}${hint}`,
      {
        profile,
        key,
        cause: redactedCopy(cause, { stack: false }),
        transient: !refused && (!reply || TRANSIENT_REPLY.test(msg)),
      },
    );
  };
  const notFound = (path: string) =>
    new NotFoundError(`Key "${path}" not found in ${where}${prefix ? ` under ${prefix}` : ""}`, { profile, key: path });

  /** SCAN one server's keyspace for `pattern`. */
  const scan = async (node: Redis, pattern: string, found: Set<string>) => {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT);
      for (const k of keys) found.add(k.slice(prefix.length));
      cursor = next;
    } while (cursor !== "0");
  };
  /**
   * The servers holding keys: the one server, or every master that owns slots. A master that
   * owns slots but has no connection is an error, never a silently shorter list.
   */
  const masters = (): Redis[] => {
    if (!config.cluster) return [client as Redis];
    const cluster = client as Cluster;
    const connected = new Map(cluster.nodes("master").map((n) => [`${n.options.host}:${n.options.port}`, n]));
    const owners = new Set<string>();
    for (let slot = 0; slot < CLUSTER_SLOTS; slot++) {
      const owner = cluster.slots[slot]?.[0];
      if (owner === undefined) throw new Error(`no master serves hash slot ${slot}`);
      owners.add(owner);
    }
    return [...owners].map((owner) => {
      const node = connected.get(owner);
      if (!node) throw new Error(`master ${owner} is not connected`);
      return node;
    });
  };

  const changeFeed = feedOf(config);
  return {
    scheme: "redis",
    capabilities: NETWORK_CAPABILITIES,
    changeFeed,
    async read(path) {
      const k = redisKey(path);
      let value: Buffer | null;
      try {
        value = await client.getBuffer(k);
      } catch (err) {
        throw failure("read", path, err);
      }
      if (value === null) throw notFound(path);
      return value;
    },
    async write(path, data) {
      const k = redisKey(path);
      try {
        // OpenDAL writes SETEX key <as_secs> value when default_ttl is set: the same expiry.
        if (ttlSeconds === undefined) await client.set(k, asBuffer(data));
        else await client.set(k, asBuffer(data), "EX", ttlSeconds);
      } catch (err) {
        throw failure("write", path, err);
      }
    },
    async stat(path): Promise<StatResult> {
      const k = redisKey(path);
      try {
        const length = await client.strlen(k);
        // STRLEN says 0 for a missing key and for an empty value alike.
        if (length === 0 && (await client.exists(k)) === 0) throw notFound(path);
        return { contentLength: length };
      } catch (err) {
        throw failure("stat", path, err);
      }
    },
    async delete(path) {
      const k = redisKey(path);
      try {
        return (await client.del(k)) > 0;
      } catch (err) {
        throw failure("delete", path, err);
      }
    },
    async exists(path) {
      const k = redisKey(path);
      try {
        return (await client.exists(k)) === 1;
      } catch (err) {
        throw failure("exists", path, err);
      }
    },
    async list(prefixArg) {
      const p = validatePrefix(prefixArg, profile);
      state.check();
      const pattern = `${(prefix + p).replace(GLOB_CHARS, "\\$&")}*`;
      const found = new Set<string>();
      try {
        await Promise.all(masters().map((node) => scan(node, pattern, found)));
      } catch (err) {
        throw failure("list", p || undefined, err);
      }
      return [...found].sort();
    },
    /**
     * Drops the connection(s) and reconnects at once. ioredis reconnects by itself after an
     * outage; this is for a connection that is open but silent (a hung server, a half-open
     * socket), which ioredis never gives up on: calls then fail fast until the server answers.
     * Not after a refused database or cluster login: that stays an error until the settings change.
     */
    reset() {
      if (!state.closed && !conn.fatal) client.disconnect(true);
    },
    async close() {
      if (!state.close()) return;
      let timer: NodeJS.Timeout | undefined;
      try {
        if (client.status === "ready") {
          await Promise.race([
            client.quit(),
            new Promise((done) => {
              timer = setTimeout(done, CLOSE_GRACE_MS);
            }),
          ]);
        }
      } catch {
        // Closing anyway.
      } finally {
        clearTimeout(timer);
        client.disconnect();
      }
    },
  };
}
