/**
 * Raw access to the shared store of a fault test, bypassing the library: the
 * foreign writer's `SET` / `DEL` on Redis and `UPDATE` (or `INSERT`) /
 * `DELETE` on the PostgreSQL table, and the final read after healing. Every
 * call has a short time limit, so a restarting server makes it fail (an
 * indeterminate operation) rather than hang.
 *
 * @module
 */
import { Redis } from "ioredis";
import pg from "pg";

/** Time limit of one raw call. */
const CALL_TIMEOUT_MS = 1500;

/** The shared store's keys and values as the library stores them. */
export interface SharedStore {
  /** Where it is, for messages. */
  readonly description: string;
  /** Writes `text` under the library key `key` (Redis `SET`; PostgreSQL `UPDATE`, else `INSERT`). */
  set(key: string, text: string): Promise<void>;
  /** Deletes the library key `key` (Redis `DEL`; PostgreSQL `DELETE`). */
  del(key: string): Promise<void>;
  /** The stored text of `key`, or `null`. */
  get(key: string): Promise<string | null>;
  /** Removes every key of this test (its root or table rows). */
  clear(): Promise<void>;
  close(): Promise<void>;
}

/** A Redis store where the library's profile has `root` (`/tp-x/` stores `k` as `tp-x/k`). */
export function redisStore(host: string, port: number, root: string): SharedStore {
  const prefix = root.split("/").filter(Boolean).join("/");
  const full = (key: string) => (prefix ? `${prefix}/${key}` : key);
  const client = new Redis({
    host,
    port,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 0,
    connectTimeout: CALL_TIMEOUT_MS,
    commandTimeout: CALL_TIMEOUT_MS,
    retryStrategy: () => 100,
  });
  client.on("error", () => {});
  return {
    description: `redis ${host}:${port} under ${JSON.stringify(prefix)}`,
    async set(key, text) {
      await client.set(full(key), text);
    },
    async del(key) {
      await client.del(full(key));
    },
    get: (key) => client.get(full(key)),
    async clear() {
      const keys = await client.keys(`${prefix}/*`);
      if (keys.length) await client.del(...keys);
    },
    async close() {
      client.disconnect();
    },
  };
}

/** A PostgreSQL store: the library's table (`key TEXT PRIMARY KEY, value BYTEA NOT NULL`). */
export function postgresStore(connectionString: string, table: string): SharedStore {
  const pool = new pg.Pool({
    connectionString,
    max: 1,
    connectionTimeoutMillis: CALL_TIMEOUT_MS,
    query_timeout: CALL_TIMEOUT_MS,
  });
  pool.on("error", () => {});
  const t = `"${table}"`;
  return {
    description: `postgresql table ${table}`,
    async set(key, text) {
      // What an operator's psql would do: UPDATE the row, INSERT it when there is none.
      await pool.query(
        `WITH u AS (UPDATE ${t} SET value = $2 WHERE key = $1 RETURNING 1)
         INSERT INTO ${t} (key, value) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM u)`,
        [key, Buffer.from(text)],
      );
    },
    async del(key) {
      await pool.query(`DELETE FROM ${t} WHERE key = $1`, [key]);
    },
    async get(key) {
      const r = await pool.query<{ value: Buffer }>(`SELECT value FROM ${t} WHERE key = $1`, [key]);
      return r.rows[0] ? r.rows[0].value.toString("utf8") : null;
    },
    async clear() {
      await pool.query(`DELETE FROM ${t}`);
    },
    async close() {
      await pool.end().catch(() => {});
    },
  };
}

/** `call` retried every 200 ms until it succeeds or `ms` pass (a server still restarting). */
export async function retrying<T>(call: () => Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
