/**
 * The `mysql` scheme (MySQL, MariaDB) on mysql2: the table OpenDAL 0.49.1's
 * mysql service reads and writes, with the same keys and value bytes.
 *
 * @module
 */
import { connect, type Socket } from "node:net";
import type { ExecuteValues, Pool } from "mysql2";
import { BackendError, InvalidKeyError, NotFoundError, ProfileError } from "../../errors.js";
import { MAX_KEY_BYTES, validateKey, validatePrefix } from "../../keys/index.js";
import { peerError } from "../../optional-peers.js";
import type { Operator, OperatorCapabilities, StatResult } from "../types.js";
import { parseConnectionString } from "./_mysql-options.js";
import { CAUSE, checkTable, fits, type KeyColumn } from "./_mysql-table.js";
import { assertReachable, networkAddress } from "./_net.js";
import {
  asBuffer,
  chunks,
  NETWORK_CAPABILITIES,
  normalizeRoot,
  OpenState,
  profileOptions,
  ReadCoalescer,
  redactedCopy,
} from "./_shared.js";
import {
  CLOSE_GRACE_MS,
  checkSqlIdentifiers,
  escapeLike,
  type PoolHandle,
  PoolSlot,
  poolSizeOption,
  quoteIdentifier,
  SQL_OPTION_KEYS,
  type SqlOperatorOptions,
  tracked,
} from "./_sql.js";

/**
 * Options of the `mysql` operator (see {@link SqlOperatorOptions}). The table
 * is created when missing with a `VARBINARY` key and a `LONGBLOB` value column.
 */
export interface MysqlOperatorOptions extends SqlOperatorOptions {
  /**
   * `mysql://user:password@host:port/database` (`mariadb://` too). The user
   * defaults to `root`, the port to 3306; the database is required. Query
   * parameters: `ssl-mode` (`disabled`, `preferred`: no TLS; `required`: TLS
   * without certificate checks; `verify_ca`, `verify_identity`) and `ssl-ca`
   * (a PEM file).
   * @example "mysql://terraphim:secret@db.local:3306/terraphim"
   */
  connection_string?: string;
}

/** A new connection's TCP connect + handshake; a call needing one fails after this on a dead or hung server. */
const CONNECT_TIMEOUT_MS = 3000;
/** Key column of a table created here: the longest key plus a root as long. */
const KEY_COLUMN_BYTES = 2 * MAX_KEY_BYTES;
/** Keys per `IN (...)` query of `readMany` / `digestMany`. */
const BATCH_SIZE = 1000;
/** What a mysql store can do: list, batched reads, server-side MD5 digests of values. */
const CAPABILITIES: OperatorCapabilities = Object.freeze({
  ...NETWORK_CAPABILITIES,
  batchSize: BATCH_SIZE,
  digest: Object.freeze({ algorithm: "md5", source: "keys" } as const),
});
/** mysql2's error (no code) for a call queued on a pool that was ended. */
const POOL_CLOSED = "Pool is closed.";
/** Connection-level failures: retrying on a fresh connection may succeed. */
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_CON_COUNT_ERROR",
  "ER_LOCK_DEADLOCK",
  "ER_LOCK_WAIT_TIMEOUT",
  "ER_SERVER_SHUTDOWN",
]);

type Rows = { r: unknown }[];

/**
 * A store in one MySQL / MariaDB table through a mysql2 pool: the table and
 * bytes OpenDAL's mysql service uses (`key` and `value` columns unless
 * renamed), with `root` applied as OpenDAL applies it. Names must be plain
 * identifiers (see `table`), and are quoted all the same; writes are an UPSERT
 * (`INSERT ... ON DUPLICATE KEY UPDATE`); `list` is a `LIKE` prefix query with
 * `%`, `_` and `\` escaped. mysql2 cannot pipeline on a connection: reads made
 * in the same event-loop turn go as one `IN (...)` query instead, and
 * `readMany` / `digestMany` (`MD5()`) take up to 1,000 keys a query.
 *
 * A missing table is created: `(key VARBINARY(2048) NOT NULL PRIMARY KEY,
 * value LONGBLOB NOT NULL)`, binary so that keys compare byte for byte (`A.json`
 * and `a.json` are two keys, so are `a` and `a `). An existing table must have
 * a unique key column that compares case-sensitively (`VARBINARY`, or a
 * `utf8mb4` `_bin` / `_cs` collation) and a binary value column, else a
 * {@link ProfileError} gives the `ALTER TABLE` that fixes it.
 *
 * The server's port must answer within 1.5 s and the table check within a few
 * seconds, else a {@link ProfileError}. Connections open as calls need them (up
 * to `pool_size`), each within 3 s; a dead server is a transient
 * {@link BackendError}. `close()` ends the pool and destroys any socket still
 * open after 1 s.
 *
 * @throws ProfileError for bad or unknown options, an unreachable server, a
 *   refused login, or a table that cannot be created or used.
 * @example
 * const op = await mysqlOperator({ connection_string: "mysql://root@127.0.0.1:3306/test", table: "terraphim_kv" }, "shared");
 * await op.write("document_a.json", '{"id":"a"}');
 * await op.close();
 */
export async function mysqlOperator(options: Record<string, string>, profile = "mysql"): Promise<Operator> {
  const opt = checkOptions(options, profile);
  checkSqlIdentifiers("mysql", opt, profile);
  const target = parseConnectionString(opt.connection_string, profile);
  const table = identifier(opt.table, "table", undefined, profile);
  const keyField = identifier(opt.key_field, "key_field", "key", profile);
  const valueField = identifier(opt.value_field, "value_field", "value", profile);
  const root = normalizeRoot(opt.root ?? "/");
  const poolSize = poolSizeOption(opt.pool_size, profile);

  const address = networkAddress("mysql", { connection_string: opt.connection_string ?? "" });
  const host = address?.host ?? target.host;
  const port = address?.port ?? target.port;
  await assertReachable("mysql", host, port, profile);

  let createPool: typeof import("mysql2").createPool;
  try {
    ({ createPool } = await import("mysql2"));
  } catch (err) {
    // An optional peer (issue 21): the error names the command that installs it.
    throw peerError("mysql2", { profile, what: "the mysql scheme" }, redactedCopy(err, CAUSE));
  }
  const openPool = (): PoolHandle<Pool> => {
    const sockets = new Set<Socket>();
    const pool = createPool({
      ...target,
      connectionLimit: poolSize,
      maxIdle: poolSize,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Our own sockets, so that close() can destroy every one of them (a hung server never answers COM_QUIT).
      stream: () => tracked(sockets, connect({ host, port, noDelay: true, keepAlive: true })),
    });
    return { pool, sockets };
  };

  const q = (name: string) => quoteIdentifier(name, "`");
  const [t, k, v] = [q(table), q(keyField), q(valueField)];
  const ddl = `CREATE TABLE IF NOT EXISTS ${t} (${k} VARBINARY(${KEY_COLUMN_BYTES}) NOT NULL PRIMARY KEY, ${v} LONGBLOB NOT NULL)`;
  const where = `${target.host}:${port}/${target.database}`;

  const state = new OpenState("mysql");
  // Storage resets after repeated timeouts: connections stuck on a hung server are dropped, new ones open on demand.
  const pools = new PoolSlot(openPool, endPool, state);
  let keyColumn: KeyColumn;
  try {
    keyColumn = await checkTable(pools.current.pool, { table, keyField, valueField, ddl, profile, where });
  } catch (err) {
    await pools.close();
    throw err;
  }

  // Statements are prepared once per connection (mysql2 caches them by text). Passed as plain strings: mysql2's
  // options-object form copies the options on every call (measured ~10% slower at 64 in flight). Columns are
  // read under fixed aliases, whatever the table calls them.
  const sGet = `SELECT ${v} AS r FROM ${t} WHERE ${k} = ?`;
  const sLen = `SELECT LENGTH(${v}) AS r FROM ${t} WHERE ${k} = ?`;
  const sHas = `SELECT 1 AS r FROM ${t} WHERE ${k} = ?`;
  const sPut = `INSERT INTO ${t} (${k}, ${v}) VALUES (?, ?) ON DUPLICATE KEY UPDATE ${v} = VALUES(${v})`;
  const sDel = `DELETE FROM ${t} WHERE ${k} = ?`;
  // The escape character is bound, not written as '\\': that literal means two characters under NO_BACKSLASH_ESCAPES.
  const sList = `SELECT ${k} AS r FROM ${t} WHERE ${k} LIKE ? ESCAPE ? ORDER BY ${k}`;
  // Batches go by the text protocol (\`IN (?)\` expands an array): a prepared statement per batch size would pile up.
  const sMany = `SELECT ${k} AS k, ${v} AS r FROM ${t} WHERE ${k} IN (?)`;
  const sDigests = `SELECT ${k} AS k, MD5(${v}) AS r FROM ${t} WHERE ${k} IN (?)`;

  const exec = (statement: string, values: ExecuteValues[]): Promise<unknown> =>
    new Promise((resolve, reject) => {
      pools.current.pool.execute(statement, values, (err, rows) => (err ? reject(err) : resolve(rows)));
    });
  const fail = (what: string, path: string | undefined, err: unknown): never => {
    // A call still in flight when close() ended the pool.
    state.check(path);
    const code = (err as { code?: string }).code ?? "";
    // "Pool is closed." without a code: a call queued on a pool that reset() replaced; the new pool may serve it.
    const transient =
      (err as { fatal?: boolean }).fatal === true ||
      TRANSIENT_CODES.has(code) ||
      (err as Error).message === POOL_CLOSED;
    throw new BackendError(
      `profile "${profile}": mysql ${what}${path === undefined ? "" : ` of "${path}"`} failed in table ${t} at ${where}: ${(err as Error).message}`,
      { profile, key: path, cause: redactedCopy(err, CAUSE), transient },
    );
  };
  const run = async (what: string, path: string | undefined, statement: string, values: ExecuteValues[]) => {
    try {
      return await exec(statement, values);
    } catch (err) {
      return fail(what, path, err);
    }
  };
  /** The row key of `path`: checked, under the root, and within what the key column holds. */
  const rowKey = (path: string): string => {
    validateKey(path, profile);
    state.check(path);
    const key = root + path;
    if (!fits(key, keyColumn)) {
      throw new InvalidKeyError(
        `Invalid key ${JSON.stringify(path.length > 80 ? `${path.slice(0, 80)}...` : path)}: longer than the key column ${k} of mysql table ${t} holds`,
        { profile, key: path },
      );
    }
    if (keyColumn.padSpace && key.endsWith(" ")) {
      throw new InvalidKeyError(
        `Invalid key ${JSON.stringify(path)}: ends with a space, which the key column ${k} of mysql table ${t} ignores (PAD SPACE collation)`,
        { profile, key: path },
      );
    }
    return key;
  };
  const notFound = (path: string) =>
    new NotFoundError(`Key "${path}" not found in mysql table ${t}`, { profile, key: path });
  /** `statement` (`key, column ... IN (?)`) over row keys, up to {@link BATCH_SIZE} a query; in order, undefined where absent. */
  const byKeys = async (statement: string, keys: readonly string[], path: string | undefined) => {
    const parts = await Promise.all(
      chunks(keys, BATCH_SIZE).map(async (batch) => {
        let rows: { k: string | Buffer; r: unknown }[];
        try {
          rows = await new Promise((resolve, reject) => {
            pools.current.pool.query(statement, [batch], (err, r) => (err ? reject(err) : resolve(r as typeof rows)));
          });
        } catch (err) {
          return fail("read", path, err);
        }
        const found = new Map(rows.map((row) => [typeof row.k === "string" ? row.k : row.k.toString("utf8"), row.r]));
        return batch.map((key) => found.get(key));
      }),
    );
    return parts.flat();
  };
  // mysql2 hands out a view of its packet buffer: copy, so that a kept value does not pin the packet.
  const bytes = (r: unknown) =>
    r === undefined ? undefined : r == null ? Buffer.alloc(0) : Buffer.from(r as Uint8Array);
  const many = (paths: readonly string[]) =>
    paths.length === 1 ? paths[0] : `${paths[0]} (+${paths.length - 1} more)`;
  // Row keys already checked: the reads of one turn go as one `IN (...)`.
  const coalescer = new ReadCoalescer(
    async (key) => {
      const row = ((await run("read", key.slice(root.length), sGet, [key])) as Rows)[0];
      return row === undefined ? undefined : bytes(row.r);
    },
    async (keys) => (await byKeys(sMany, keys, many(keys.map((key) => key.slice(root.length))))).map(bytes),
    BATCH_SIZE,
  );

  return {
    scheme: "mysql",
    capabilities: CAPABILITIES,
    async read(path) {
      const value = await coalescer.read(rowKey(path));
      if (value === undefined) throw notFound(path);
      return value;
    },
    async readMany(paths) {
      return (await byKeys(sMany, paths.map(rowKey), many(paths))).map(bytes);
    },
    async digestMany(paths) {
      return (await byKeys(sDigests, paths.map(rowKey), many(paths))).map((r) => (r == null ? undefined : String(r)));
    },
    async write(path, data) {
      const key = rowKey(path);
      // Strings go as they are (mysql2 encodes them as UTF-8, the column stores those bytes).
      await run("write", path, sPut, [key, asBuffer(data)]);
    },
    async stat(path): Promise<StatResult> {
      const rows = (await run("stat", path, sLen, [rowKey(path)])) as Rows;
      const row = rows[0];
      if (row === undefined) throw notFound(path);
      return { contentLength: Number(row.r ?? 0) };
    },
    async delete(path) {
      await run("delete", path, sDel, [rowKey(path)]);
    },
    async exists(path) {
      const rows = (await run("exists", path, sHas, [rowKey(path)])) as Rows;
      return rows.length > 0;
    },
    async list(prefix) {
      const p = validatePrefix(prefix, profile);
      state.check();
      const rows = (await run("list", p || undefined, sList, [`${escapeLike(root + p)}%`, "\\"])) as Rows;
      const cut = root.length;
      return rows.map((row) => {
        const key = row.r as string | Buffer;
        return (typeof key === "string" ? key : key.toString("utf8")).slice(cut);
      });
    },
    close: () => pools.close(),
    reset: () => pools.reset(),
  };
}

function checkOptions(options: Record<string, string>, profile: string): MysqlOperatorOptions {
  return profileOptions(options, SQL_OPTION_KEYS, "mysql", profile);
}

/** The name `value` gives (checked by `checkSqlIdentifiers`), else `fallback`; `table` has none. */
function identifier(value: string | undefined, option: string, fallback: string | undefined, profile: string): string {
  const name = value ?? fallback;
  if (name === undefined) {
    throw new ProfileError(`profiles.${profile}.${option}: required (the name of the table holding the values)`, {
      profile,
    });
  }
  return name;
}

/** Ends a pool: COM_QUIT on each connection, then any socket still open after {@link CLOSE_GRACE_MS} is destroyed. */
function endPool({ pool, sockets }: PoolHandle<Pool>): Promise<void> {
  return new Promise((done) => {
    const finish = () => {
      clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      done();
    };
    const timer = setTimeout(finish, CLOSE_GRACE_MS);
    const settled = () => {
      if (sockets.size === 0) finish();
      else for (const socket of sockets) socket.once("close", () => sockets.size === 0 && finish());
    };
    pool.end(settled);
  });
}
