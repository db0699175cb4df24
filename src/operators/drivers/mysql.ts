/**
 * The `mysql` scheme (MySQL, MariaDB) on mysql2: the table OpenDAL 0.49.1's
 * mysql service reads and writes, with the same keys and value bytes.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import type { ExecuteValues, Pool, PoolOptions } from "mysql2";
import { BackendError, InvalidKeyError, NotFoundError, ProfileError, registerSecret } from "../../errors.js";
import { MAX_KEY_BYTES, validateKey, validatePrefix } from "../../keys/index.js";
import { peerError } from "../../optional-peers.js";
import type { Operator, StatResult } from "../types.js";
import { CAUSE, checkTable, fits, type KeyColumn } from "./_mysql-table.js";
import { assertReachable, networkAddress } from "./_net.js";
import { asBuffer, NETWORK_CAPABILITIES, normalizeRoot, OpenState, profileOptions, redactedCopy } from "./_shared.js";
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

const CONNECTION_PARAMS = ["ssl-mode", "ssl-ca"];
const SSL_MODES = ["disabled", "preferred", "required", "verify_ca", "verify_identity"];

/** A new connection's TCP connect + handshake; a call needing one fails after this on a dead or hung server. */
const CONNECT_TIMEOUT_MS = 3000;
/** Key column of a table created here: the longest key plus a root as long. */
const KEY_COLUMN_BYTES = 2 * MAX_KEY_BYTES;
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

interface Target {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  database: string;
  ssl: PoolOptions["ssl"];
}

type Rows = { r: unknown }[];

/**
 * A store in one MySQL / MariaDB table through a mysql2 pool: the table and
 * bytes OpenDAL's mysql service uses (`key` and `value` columns unless
 * renamed), with `root` applied as OpenDAL applies it. Names must be plain
 * identifiers (see `table`), and are quoted all the same; writes are an UPSERT
 * (`INSERT ... ON DUPLICATE KEY UPDATE`); `list` is a `LIKE` prefix query with
 * `%`, `_` and `\` escaped.
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

  return {
    scheme: "mysql",
    capabilities: NETWORK_CAPABILITIES,
    async read(path) {
      const rows = (await run("read", path, sGet, [rowKey(path)])) as Rows;
      const row = rows[0];
      if (row === undefined) throw notFound(path);
      // mysql2 hands out a view of its packet buffer: copy, so that a kept value does not pin the packet.
      return row.r == null ? Buffer.alloc(0) : Buffer.from(row.r as Uint8Array);
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

function parseConnectionString(raw: string | undefined, profile: string): Target {
  const path = `profiles.${profile}.connection_string`;
  const example = "mysql://user:password@host:3306/database";
  if (!raw) throw new ProfileError(`${path}: required (${example})`, { profile });
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ProfileError(`${path}: expected a URL like ${example}`, { profile });
  }
  const password = url.password ? decode(url.password) : undefined;
  registerSecret(password);
  if (url.protocol !== "mysql:" && url.protocol !== "mariadb:") {
    throw new ProfileError(`${path}: expected a mysql:// URL, got ${JSON.stringify(url.protocol)}`, { profile });
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (!host) throw new ProfileError(`${path}: no host in it (${example})`, { profile });
  const database = decode(url.pathname.replace(/^\//, ""));
  if (!database) throw new ProfileError(`${path}: no database in it (${example})`, { profile });
  for (const name of url.searchParams.keys()) {
    if (!CONNECTION_PARAMS.includes(name)) {
      throw new ProfileError(`${path}: unknown parameter "${name}" (accepted: ${CONNECTION_PARAMS.join(", ")})`, {
        profile,
      });
    }
  }
  const mode = (url.searchParams.get("ssl-mode") ?? "disabled").toLowerCase().replaceAll("-", "_");
  if (!SSL_MODES.includes(mode)) {
    throw new ProfileError(`${path}: ssl-mode must be one of ${SSL_MODES.join(", ")}, got ${JSON.stringify(mode)}`, {
      profile,
    });
  }
  const caFile = url.searchParams.get("ssl-ca");
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile, "utf8");
    } catch (err) {
      throw new ProfileError(`${path}: cannot read ssl-ca "${caFile}": ${(err as Error).message}`, { profile });
    }
  }
  // sqlx's `preferred` falls back to plain text when the server has no TLS; mysql2 cannot, so it means plain text here.
  const ssl: PoolOptions["ssl"] =
    mode === "disabled" || mode === "preferred"
      ? undefined
      : mode === "required"
        ? { rejectUnauthorized: false, ...(ca && { ca }) }
        : {
            rejectUnauthorized: true,
            ...(ca && { ca }),
            ...(mode === "verify_ca" && { checkServerIdentity: () => undefined }),
          };
  return {
    host,
    port: url.port ? Number(url.port) : 3306,
    user: url.username ? decode(url.username) : "root",
    password,
    database,
    ssl,
  };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
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
