/**
 * The `redis` scheme on ioredis: one server or a Redis Cluster, with the keys
 * and value bytes OpenDAL's redis service (and so the Rust crate) uses.
 *
 * @module
 */
import type { Cluster, Redis } from "ioredis";
import { BackendError, NotFoundError, PersistenceError, ProfileError } from "../../errors.js";
import { validateKey, validatePrefix } from "../../keys/index.js";
import type { Operator, OperatorCapabilities, StatResult, StoredValue } from "../types.js";
import {
  addressOf,
  type Connection,
  clusterOptions,
  connect,
  pipelineTurns,
  probe,
  REFUSED,
  redisOptions,
} from "./_redis-client.js";
import { type RedisConfig, redisConfig, redisFeed, type TcpTarget } from "./_redis-options.js";
import { bySlot, CLUSTER_SLOTS } from "./_redis-slots.js";
import { asBuffer, chunks, NETWORK_CAPABILITIES, OpenState, ReadCoalescer, redactedCopy } from "./_shared.js";

export { type RedisOperatorOptions, redisChangeFeed } from "./_redis-options.js";

/** `close()` lets in-flight calls finish (`QUIT`) for at most this long, then drops the sockets. */
const CLOSE_GRACE_MS = 1000;
/** Keys per `SCAN` step. */
const SCAN_COUNT = 1000;
/** Keys per `MGET` or digest script call (a Cluster splits them further, one call per hash slot). */
const BATCH_SIZE = 1000;
/** What a redis store can do: list, batched reads, server-side SHA-1 digests of values. */
const CAPABILITIES: OperatorCapabilities = Object.freeze({
  ...NETWORK_CAPABILITIES,
  batchSize: BATCH_SIZE,
  digest: Object.freeze({ algorithm: "sha1", source: "keys" } as const),
});
/**
 * The SHA-1 (hex) of each key's value, `false` (nil) where absent, in one round trip: what
 * a revalidation compares instead of reading the values. Registered as a command, so it is
 * sent by `EVALSHA` (its text once per connection, on `NOSCRIPT`).
 */
const DIGESTS_LUA = `local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if value then out[i] = redis.sha1hex(value) else out[i] = false end
end
return out`;
/** Error replies that can go away on their own (a loading, busy or failing-over server). */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY)\b/;
/** Redis glob metacharacters (`MATCH` patterns), escaped with a backslash. */
const GLOB_CHARS = /[*?[\]\\]/g;
/**
 * A store on Redis through ioredis: `GET`/`SET`/`DEL` on `<root><key>` with
 * the raw value bytes (what OpenDAL writes), `list` by `SCAN` (on every master
 * of a cluster), one connection per server, pipelined: the commands of one
 * event-loop turn leave in one write, in call order, so the order of the
 * calls on a key is kept (see {@link pipelineTurns}). Reads made in the same turn are sent as one
 * `MGET` (one per hash slot on a Cluster); `readMany` and `digestMany` (a
 * script returning `redis.sha1hex` of each value) take up to 1,000 keys a call.
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

function wrap(client: Redis | Cluster, conn: Connection, config: RedisConfig, profile: string): Operator {
  const { prefix, ttlSeconds } = config;
  const state = new OpenState("redis");
  const where = config.cluster
    ? `redis cluster ${addressOf(config.targets[0]!)}`
    : `redis ${addressOf(config.targets[0]!)}`;
  const turn = pipelineTurns(client, config.cluster);
  const checkedKey = (path: string): string => {
    validateKey(path, profile);
    state.check(path);
    return prefix + path;
  };
  const redisKey = (path: string): string => {
    const key = checkedKey(path);
    turn();
    return key;
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

  /**
   * One `MGET` per hash slot on a Cluster (a multi-key command must not cross slots), one
   * otherwise. With `settle`, a failed slot's keys get its error in place of their values and
   * the others their values; else the first failure rejects.
   */
  const mget = async (keys: readonly string[], settle = false): Promise<(Buffer | null | Error)[]> => {
    if (!config.cluster) return client.mgetBuffer(keys as string[]);
    const out = new Array<Buffer | null | Error>(keys.length);
    await Promise.all(
      bySlot(keys).map(async (group) => {
        let values: (Buffer | null)[] | Error;
        try {
          values = await client.mgetBuffer(group.map((i) => keys[i]!));
        } catch (err) {
          if (!settle) throw err;
          values = err as Error;
        }
        group.forEach((at, j) => {
          out[at] = values instanceof Error ? values : (values[j] ?? null);
        });
      }),
    );
    return out;
  };
  /** As {@link mget}, values decoded as UTF-8 text by the client (what a raw `mget` gives). */
  const mgetText = async (keys: readonly string[]): Promise<(string | null)[]> => {
    if (!config.cluster) return client.mget(keys as string[]);
    const out = new Array<string | null>(keys.length);
    await Promise.all(
      bySlot(keys).map(async (group) => {
        const values = await client.mget(group.map((i) => keys[i]!));
        group.forEach((at, j) => {
          out[at] = values[j] ?? null;
        });
      }),
    );
    return out;
  };
  client.defineCommand("tpDigests", { lua: DIGESTS_LUA });
  const digestCommand = (keys: readonly string[]): Promise<(string | null)[]> =>
    (client as unknown as { tpDigests(n: number, ...keys: string[]): Promise<(string | null)[]> }).tpDigests(
      keys.length,
      ...keys,
    );
  /** The digest script once per hash slot on a Cluster (its keys must share one), once otherwise. */
  const digests = async (keys: readonly string[]): Promise<(string | null)[]> => {
    if (!config.cluster) return digestCommand(keys);
    const out = new Array<string | null>(keys.length);
    await Promise.all(
      bySlot(keys).map(async (group) => {
        const values = await digestCommand(group.map((i) => keys[i]!));
        group.forEach((at, j) => {
          out[at] = values[j] ?? null;
        });
      }),
    );
    return out;
  };
  /** `fn` over `paths` in calls of at most {@link BATCH_SIZE} keys, results in order; client errors translated. */
  const batched = async <V>(
    what: string,
    paths: readonly string[],
    fn: (keys: readonly string[]) => Promise<(V | null)[]>,
  ): Promise<(V | undefined)[]> => {
    const keys = paths.map(checkedKey);
    turn();
    try {
      const parts =
        keys.length === 0
          ? []
          : keys.length <= BATCH_SIZE
            ? [await fn(keys)]
            : await Promise.all(chunks(keys, BATCH_SIZE).map(fn));
      const out: (V | undefined)[] = [];
      for (const part of parts) for (let i = 0; i < part.length; i++) out.push(part[i] ?? undefined);
      return out;
    } catch (err) {
      throw failure(what, paths.length === 1 ? paths[0] : `${paths[0]} (+${paths.length - 1} more)`, err);
    }
  };
  // Keys already checked and prefixed: the reads of one turn go as one MGET.
  const coalescer = new ReadCoalescer(
    async (k) => {
      turn();
      return (await client.getBuffer(k)) ?? undefined;
    },
    async (keys) => {
      turn();
      return (await mget(keys, true)).map((v) => v ?? undefined);
    },
    BATCH_SIZE,
  );

  return {
    scheme: "redis",
    capabilities: CAPABILITIES,
    changeFeed: redisFeed(config),
    async read(path) {
      const k = redisKey(path);
      let value: Uint8Array | undefined;
      try {
        value = await coalescer.read(k);
      } catch (err) {
        throw failure("read", path, err);
      }
      if (value === undefined) throw notFound(path);
      return value;
    },
    readMany: (paths) => batched("read", paths, mget as (keys: readonly string[]) => Promise<(Buffer | null)[]>),
    async readManyStored(paths) {
      const texts = await batched("read", paths, mgetText);
      const out = new Array<StoredValue | undefined>(texts.length);
      const again: number[] = [];
      for (let i = 0; i < texts.length; i++) {
        const text = texts[i];
        // Decoding turns every invalid UTF-8 sequence into U+FFFD: text without one is the bytes exactly.
        if (text === undefined) out[i] = undefined;
        else if (text.includes("\uFFFD")) {
          out[i] = undefined;
          again.push(i);
        } else out[i] = { data: text, size: Buffer.byteLength(text, "utf8") };
      }
      if (again.length > 0) {
        const bytes = await batched(
          "read",
          again.map((i) => paths[i]!),
          mget as (keys: readonly string[]) => Promise<(Buffer | null)[]>,
        );
        again.forEach((at, j) => {
          const data = bytes[j];
          out[at] = data === undefined ? undefined : { data, size: data.length };
        });
      }
      return out;
    },
    digestMany: (paths) => batched("digest", paths, digests),
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
