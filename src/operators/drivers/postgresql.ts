/**
 * The `postgresql` scheme on node-postgres (`pg`): the table OpenDAL 0.49.1's
 * postgresql service reads and writes, with the same keys and value bytes.
 *
 * @module
 */
import type { DatabaseError, QueryArrayConfig } from "pg";
import { BackendError, ClosedError, NotFoundError, PersistenceError, ProfileError } from "../../errors.js";
import { validateKey, validatePrefix } from "../../keys/index.js";
import type { Operator, OperatorCapabilities, StatResult } from "../types.js";
import { assertReachable } from "./_net.js";
import { parsePgOptions } from "./_pg-options.js";
import { endConnections, PipelinedConnections } from "./_pg-pipeline.js";

export { type PostgresqlOperatorOptions, postgresqlChangeFeed } from "./_pg-options.js";

import {
  chunks,
  NETWORK_CAPABILITIES,
  OpenState,
  ReadCoalescer,
  type RedactedCopyOptions,
  redactedCopy,
} from "./_shared.js";
import { escapeLike, type PoolHandle, PoolSlot, poolSizeOption, quoteIdentifier } from "./_sql.js";

/**
 * A new connection's TCP connect and start-up, and a call's wait for a free
 * connection of a full pool: a call against a hung server fails after this
 * (against a dead one at once: the connect is refused).
 */
const CONNECT_TIMEOUT_MS = 3000;
/** Keys per `= ANY($1)` query of `readMany` / `digestMany`. */
const BATCH_SIZE = 1000;
/** What a postgresql store can do: list, batched reads, server-side MD5 digests of values. */
const CAPABILITIES: OperatorCapabilities = Object.freeze({
  ...NETWORK_CAPABILITIES,
  batchSize: BATCH_SIZE,
  digest: Object.freeze({ algorithm: "md5", source: "keys" } as const),
});
/** An error kept as a cause: message and stack without secrets, its SQLSTATE / errno code kept. */
const CAUSE: RedactedCopyOptions = { fields: ["code"] };
/** Keys longer than this (bytes) are announced as "everything" (NOTIFY payloads stay under 8000 bytes), as the trigger does. */
const MAX_NOTIFIED_KEY_BYTES = 7900;
const notified = (k: string) => `CASE WHEN octet_length(${k}) <= ${MAX_NOTIFIED_KEY_BYTES} THEN ${k} ELSE '' END`;

/**
 * SQLSTATEs after which the same call may succeed: connection exceptions (08),
 * too many connections and other resource shortages (53), server shutting
 * down or starting (57P01-57P03), query cancelled (57014), serialization
 * failure, deadlock, lock not available; the table gone (42P01: the next
 * call creates it again); a prepared statement whose pipelined Parse failed (26000).
 */
const TRANSIENT_SQLSTATE = /^(08|53|57P0[123]$|57014$|40001$|40P01$|55P03$|42P01$|26000$)/;

/**
 * A store in one PostgreSQL table through node-postgres connections in
 * pipeline mode (up to `pool_size`, a call on a key always on the same one,
 * see `_pg-pipeline.ts`): the table,
 * keys and bytes OpenDAL's postgresql service uses (`key TEXT PRIMARY KEY,
 * value BYTEA NOT NULL` unless renamed), with `root` applied as OpenDAL
 * applies it. Names must be plain lower-case identifiers (see `table`), and
 * are quoted all the same; writes are an UPSERT (`INSERT ... ON CONFLICT (key)
 * DO UPDATE`); `list` is a `LIKE` prefix query with `%`, `_` and `\` escaped.
 * Statements are prepared once per connection. Reads made in the same
 * event-loop turn go as one `WHERE key = ANY($1)`; `readMany` and
 * `digestMany` (`md5(value)`) take up to 1,000 keys a query.
 *
 * Nothing connects until the first call. That call also checks the table:
 * a missing one is created (`CREATE TABLE IF NOT EXISTS`); one that cannot be
 * created, or whose value column is not `BYTEA` (OpenDAL cannot read text
 * values), is a {@link ProfileError} giving the statement to run.
 *
 * The server's port must answer a TCP connect within 1.5 s, else a
 * {@link ProfileError}. A call against a dead server is a transient
 * {@link BackendError} at once (a hung one: after 3 s); calls succeed again as
 * soon as the server is back, on fresh connections. `close()` ends the pool.
 *
 * @throws ProfileError for bad or unknown options, or an unreachable server.
 * @example
 * const op = await postgresqlOperator(
 *   { connection_string: "postgresql://postgres@127.0.0.1:5432/test", table: "terraphim_kv" },
 *   "shared",
 * );
 * await op.write("document_a.json", '{"id":"a"}');
 * await op.close();
 */
export async function postgresqlOperator(options: Record<string, string>, profile = "postgresql"): Promise<Operator> {
  const { opt, connectionString, tableName, keyName, valueName, root, address, where, changeFeed } = parsePgOptions(
    options,
    profile,
  );
  const poolSize = poolSizeOption(opt.pool_size, profile);

  if (address) await assertReachable("postgresql", address.host, address.port, profile);

  let pg: typeof import("pg");
  try {
    pg = await import("pg");
  } catch (err) {
    throw new ProfileError(`profile "${profile}": the postgresql scheme needs the "pg" package, which failed to load`, {
      profile,
      cause: redactedCopy(err, CAUSE),
    });
  }
  const openPool = (): PoolHandle<PipelinedConnections> => {
    const pool = new PipelinedConnections(
      pg,
      { connectionString, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, keepAlive: true },
      poolSize,
    );
    return { pool, sockets: pool.sockets };
  };

  const quote = (name: string) => quoteIdentifier(name, '"');
  const [t, k, v] = [quote(tableName), quote(keyName), quote(valueName)];
  const ddl = `CREATE TABLE IF NOT EXISTS ${t} (${k} TEXT PRIMARY KEY, ${v} BYTEA NOT NULL)`;
  const sql = {
    read: `SELECT ${v} FROM ${t} WHERE ${k} = $1`,
    stat: `SELECT octet_length(${v}) FROM ${t} WHERE ${k} = $1`,
    exists: `SELECT 1 FROM ${t} WHERE ${k} = $1`,
    write: `INSERT INTO ${t} (${k}, ${v}) VALUES ($1, $2) ON CONFLICT (${k}) DO UPDATE SET ${v} = EXCLUDED.${v}`,
    // RETURNING says whether a row was there (a delete of nothing changes nothing: no trigger, no report).
    delete: `DELETE FROM ${t} WHERE ${k} = $1 RETURNING 1`,
    // E'\\' is one backslash whatever standard_conforming_strings says; "C" sorts by code point, as JS does below U+10000.
    list: `SELECT ${k} FROM ${t} WHERE ${k} LIKE $1 ESCAPE E'\\\\' ORDER BY ${k} COLLATE "C"`,
    readMany: `SELECT ${k}, ${v} FROM ${t} WHERE ${k} = ANY($1)`,
    digestMany: `SELECT ${k}, md5(${v}) FROM ${t} WHERE ${k} = ANY($1)`,
    // The same, announcing the row's key in the statement itself ($3 / $2: the channel), where no trigger does.
    writeNotify: `WITH w AS (INSERT INTO ${t} (${k}, ${v}) VALUES ($1, $2) ON CONFLICT (${k}) DO UPDATE SET ${v} = EXCLUDED.${v} RETURNING ${k})
      SELECT pg_notify($3, ${notified(k)}) FROM w`,
    deleteNotify: `WITH d AS (DELETE FROM ${t} WHERE ${k} = $1 RETURNING ${k}) SELECT pg_notify($2, ${notified(k)}) FROM d`,
  };
  /** Where this instance's writes announce themselves in their own statement (see `announceWrites`), if anywhere. */
  let notifyChannel: string | undefined;
  // One round trip: whether the table exists, and the types of its two columns.
  const inspect = `SELECT c.oid IS NOT NULL, kc.typ, vc.typ FROM (SELECT to_regclass($1::text) AS oid) c
    LEFT JOIN LATERAL (SELECT atttypid::regtype::text AS typ FROM pg_attribute
      WHERE attrelid = c.oid AND attname = $2 AND attnum > 0 AND NOT attisdropped) kc ON true
    LEFT JOIN LATERAL (SELECT atttypid::regtype::text AS typ FROM pg_attribute
      WHERE attrelid = c.oid AND attname = $3 AND attnum > 0 AND NOT attisdropped) vc ON true`;

  const state = new OpenState("postgresql");
  // After repeated timeouts (the Tier's call) a fresh pool takes the next calls; the old one ends in the background.
  const pools = new PoolSlot(openPool, endConnections, state);
  /** Whether the table was found or created (checked on the first call, again after it vanished). */
  let tableReady = false;
  let checking: Promise<void> | undefined;

  const fail = (what: string, path: string | undefined, err: unknown): PersistenceError => {
    if (err instanceof PersistenceError) return err;
    if (state.closed) {
      return new ClosedError(`The postgresql operator was closed during a ${what}`, {
        profile,
        key: path,
        cause: redactedCopy(err, CAUSE),
      });
    }
    const code = err instanceof pg.DatabaseError ? err.code : undefined;
    if (code === "42P01") tableReady = false;
    if (code === "42P10") {
      return new ProfileError(
        `profile "${profile}": table ${t} at ${where} has no unique index on ${k}, which an UPSERT needs: make ${k} the PRIMARY KEY (as in: ${ddl})`,
        { profile, key: path, cause: redactedCopy(err, CAUSE) },
      );
    }
    // No SQLSTATE: the connection failed (refused, reset, timed out), not the statement.
    const transient = code === undefined || TRANSIENT_SQLSTATE.test(code);
    return new BackendError(
      `profile "${profile}": postgresql ${what}${path === undefined ? "" : ` of "${path}"`} failed in table ${t} at ${where}: ${(err as Error)?.message ?? err}`,
      { profile, key: path, cause: redactedCopy(err, CAUSE), transient },
    );
  };
  /** Runs `config` on the connection of `route` (the row key, or the listing's pattern): calls on a key keep their order. */
  const query = async (
    what: string,
    path: string | undefined,
    config: QueryArrayConfig,
    route: string,
  ): Promise<unknown[][]> => {
    if (!tableReady) await checkTable(path, route);
    try {
      return await pools.current.pool.query(config, route);
    } catch (err) {
      throw fail(what, path, err);
    }
  };
  const checkTable = (path: string | undefined, route: string): Promise<void> => {
    checking ??= inspectTable(path, route).then(
      () => {
        tableReady = true;
        checking = undefined;
      },
      (err) => {
        checking = undefined;
        throw err;
      },
    );
    return checking;
  };
  const inspectTable = async (path: string | undefined, route: string): Promise<void> => {
    let row: unknown[] | undefined;
    try {
      row = (
        await pools.current.pool.query({ text: inspect, values: [t, keyName, valueName], rowMode: "array" }, route)
      )[0];
    } catch (err) {
      throw fail("table check", path, err);
    }
    const [exists, keyType, valueType] = row ?? [];
    if (!exists) return createTable(path, route);
    const problem =
      keyType == null
        ? `has no column ${k} (key_field)`
        : valueType == null
          ? `has no column ${v} (value_field)`
          : valueType !== "bytea"
            ? `stores values in ${v} as ${valueType}, not bytea: OpenDAL and the Rust crate read and write BYTEA`
            : undefined;
    if (!problem) return;
    const message = `profile "${profile}": table ${t} at ${where} ${problem}; expected the layout of: ${ddl}`;
    throw new ProfileError(message, { profile, key: path });
  };
  const createTable = async (path: string | undefined, route: string): Promise<void> => {
    try {
      await pools.current.pool.query({ text: ddl, rowMode: "array" }, route);
    } catch (err) {
      const code = err instanceof pg.DatabaseError ? err.code : undefined;
      // Created meanwhile by another process (IF NOT EXISTS can race on the catalog).
      if (code === "42P07" || code === "23505") return;
      if (code === undefined || TRANSIENT_SQLSTATE.test(code)) throw fail("table check", path, err);
      throw new ProfileError(
        `profile "${profile}": table ${t} does not exist at ${where} and cannot be created (${(err as DatabaseError).message}); create it with: ${ddl}`,
        { profile, key: path, cause: redactedCopy(err, CAUSE) },
      );
    }
  };

  /** The row key of `path`: checked, and under the root. */
  const rowKey = (path: string): string => {
    validateKey(path, profile);
    state.check(path);
    return root === "" ? path : root + path;
  };

  /** Runs the statement `sql[name]`, prepared once per connection under that name, on the connection of `route`. */
  const run = (name: keyof typeof sql, path: string | undefined, values: unknown[], route: string) =>
    query(name, path, { name: `tp_${name}`, text: sql[name], values, rowMode: "array" }, route);
  /** The one column of the row of `path` (read, stat); NotFoundError when there is no row. */
  const column = async (name: "read" | "stat", path: string): Promise<unknown> => {
    const key = rowKey(path);
    const row = (await run(name, path, [key], key))[0];
    if (row === undefined) throw notFound(path);
    return row[0];
  };
  const notFound = (path: string) =>
    new NotFoundError(`Key "${path}" not found in postgresql table ${t}`, { profile, key: path });
  /** `sql[name]` (`key, column WHERE key = ANY($1)`) over row keys, up to {@link BATCH_SIZE} a query; in order, undefined where absent. */
  const byKeys = async <V>(name: "readMany" | "digestMany", keys: readonly string[], path: string | undefined) => {
    const out: (V | undefined)[] = [];
    for (const part of await Promise.all(
      chunks(keys, BATCH_SIZE).map(async (batch) => {
        const found = new Map<string, V>();
        for (const row of await run(name, path, [batch], batch[0]!)) found.set(row[0] as string, row[1] as V);
        return batch.map((key) => found.get(key));
      }),
    )) {
      out.push(...part);
    }
    return out;
  };
  const many = (paths: readonly string[]) =>
    paths.length === 1 ? paths[0] : `${paths[0]} (+${paths.length - 1} more)`;
  const asBytes = (v: Buffer | null | undefined) => (v === undefined ? undefined : (v ?? Buffer.alloc(0)));
  // Row keys already checked: the reads of one turn go as one `= ANY($1)`.
  const coalescer = new ReadCoalescer(
    async (key) => {
      const row = (await run("read", key.slice(root.length), [key], key))[0];
      return row === undefined ? undefined : ((row[0] as Buffer | null) ?? Buffer.alloc(0));
    },
    async (keys) => (await byKeys<Buffer | null>("readMany", keys, keys[0]!.slice(root.length))).map(asBytes),
    BATCH_SIZE,
  );

  return {
    scheme: "postgresql",
    capabilities: CAPABILITIES,
    changeFeed,
    async read(path) {
      const value = await coalescer.read(rowKey(path));
      if (value === undefined) throw notFound(path);
      return value;
    },
    async readMany(paths) {
      const keys = paths.map(rowKey);
      return (await byKeys<Buffer | null>("readMany", keys, many(paths))).map(asBytes);
    },
    async digestMany(paths) {
      const keys = paths.map(rowKey);
      return byKeys<string>("digestMany", keys, many(paths));
    },
    async write(path, data) {
      const key = rowKey(path);
      // Always a fresh Buffer: node-postgres sends it as binary BYTEA, and the caller may reuse its own.
      const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
      const channel = notifyChannel;
      if (channel === undefined) await run("write", path, [key, bytes], key);
      else await run("writeNotify", path, [key, bytes, channel], key);
    },
    async stat(path): Promise<StatResult> {
      return { contentLength: Number((await column("stat", path)) ?? 0) };
    },
    async delete(path) {
      const key = rowKey(path);
      const channel = notifyChannel;
      if (channel === undefined) return (await run("delete", path, [key], key)).length > 0;
      return (await run("deleteNotify", path, [key, channel], key)).length > 0;
    },
    announceWrites(channel) {
      notifyChannel = channel;
    },
    async exists(path) {
      const key = rowKey(path);
      return (await run("exists", path, [key], key)).length > 0;
    },
    async list(prefix) {
      const p = validatePrefix(prefix, profile);
      state.check();
      const pattern = `${escapeLike(root + p)}%`;
      const rows = await run("list", p || undefined, [pattern], pattern);
      const cut = root.length;
      return rows.map((row) => (row[0] as string).slice(cut)).sort();
    },
    close: () => pools.close(),
    reset: () => pools.reset(),
  };
}
