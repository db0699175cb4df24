/**
 * What the SQL drivers (`postgresql`, `mysql`, and OpenDAL's services of the
 * same names) share: their options, the rule for table and column names and
 * their quoting, `LIKE` prefixes, and the pool a `reset()` replaces.
 *
 * @module
 */
import type { Socket } from "node:net";
import { ProfileError } from "../../errors.js";
import type { OpenState } from "./_shared.js";

/** Connections per pool unless `pool_size` says otherwise: node-postgres', mysql2's and sqlx's (OpenDAL's client) default. */
export const DEFAULT_POOL_SIZE = 10;
/** The largest `pool_size` accepted. */
export const MAX_POOL_SIZE = 1000;
/** How long `close()` lets calls in flight finish before it destroys the pool's sockets. */
export const CLOSE_GRACE_MS = 1000;

/**
 * What the options of the `postgresql` and `mysql` operators share: the keys
 * of OpenDAL's services of those names (and so of a Rust `[profiles.<name>]`
 * table), plus `pool_size`. Each driver documents `connection_string`.
 */
export interface SqlOperatorOptions {
  /** The server, as a URL with user, password, host, port and database. Required. */
  connection_string?: string;
  /**
   * Table holding the values. Required, as in OpenDAL; created when missing. A
   * plain SQL identifier (PostgreSQL: `[a-z_][a-z0-9_]*`, at most 63
   * characters; MySQL: `[A-Za-z_][A-Za-z0-9_]*`, at most 64): OpenDAL and the
   * Rust crate send it unquoted in places, where anything else would mean
   * another table or other SQL. Quoted in this library's SQL all the same.
   */
  table?: string;
  /** Key column, named as `table` is. @default "key" */
  key_field?: string;
  /** Value column (binary), named as `table` is. @default "value" */
  value_field?: string;
  /**
   * Folder every key lives under, applied as OpenDAL applies it: split on `/`,
   * empty parts dropped, rejoined with a trailing `/`. So `"/"`, `""` and unset
   * mean none, and `ns`, `/ns`, `ns/`, `/ns/` all store `a.json` in row
   * `ns/a.json` (`//x//y//` becomes `x/y/`).
   * @default "/"
   */
  root?: string;
  /** Most connections the operator holds at once, opened as calls need them. @default "10" */
  pool_size?: string;
}

/** The options of a SQL profile: OpenDAL's keys, plus `pool_size`. */
export const SQL_OPTION_KEYS: readonly string[] = [
  "connection_string",
  "table",
  "key_field",
  "value_field",
  "root",
  "pool_size",
];

/** The options naming a table or a column. */
const IDENTIFIER_OPTIONS = ["table", "key_field", "value_field"] as const;
/** Names every reader of the table (OpenDAL, the Rust crate) sends the same way, per scheme. */
const PLAIN_IDENTIFIER: Readonly<Record<string, RegExp>> = {
  // PostgreSQL folds unquoted names to lower case: only lower-case names mean one table quoted and unquoted.
  postgresql: /^[a-z_][a-z0-9_]{0,62}$/,
  mysql: /^[A-Za-z_][A-Za-z0-9_]{0,63}$/,
};

/**
 * Refuses a `table`, `key_field` or `value_field` that is not a plain SQL
 * identifier. OpenDAL 0.49.1 (and so the Rust crate sharing the settings)
 * puts these names into its SQL unquoted in places: `key_field = "key IS NOT
 * NULL OR key"` would make one of its deletes wipe the table, a quote or `;`
 * would run SQL, and a mixed-case PostgreSQL name would address another
 * (lower-cased) table. Only plain identifiers pass, lower case for PostgreSQL.
 * Other schemes pass unchecked; absent options too.
 *
 * @throws ProfileError naming the option, the profile and the value.
 */
export function checkSqlIdentifiers(
  scheme: string,
  options: Readonly<{ table?: string | undefined; key_field?: string | undefined; value_field?: string | undefined }>,
  profile: string,
): void {
  const pattern = PLAIN_IDENTIFIER[scheme];
  if (!pattern) return;
  for (const field of IDENTIFIER_OPTIONS) {
    const value = options[field];
    if (value !== undefined && !pattern.test(value)) {
      throw new ProfileError(
        `Expected \`${field}\` in profile "${profile}" to be a SQL identifier (${scheme === "postgresql" ? "lower-case " : ""}letters, digits, _), got ${JSON.stringify(value)}`,
        { profile },
      );
    }
  }
}

/**
 * `name` as a quoted identifier: between `"` (PostgreSQL) or `` ` `` (MySQL),
 * that character doubled inside. Defence in depth: the names are checked by
 * {@link checkSqlIdentifiers} first.
 */
export function quoteIdentifier(name: string, quote: '"' | "`"): string {
  return `${quote}${name.replaceAll(quote, quote + quote)}${quote}`;
}

/** A `LIKE` pattern matching `text` literally (escape character `\`). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, "\\$&");
}

/** `pool_size`: an integer from 1 to {@link MAX_POOL_SIZE}, {@link DEFAULT_POOL_SIZE} when unset. */
export function poolSizeOption(raw: string | undefined, profile: string): number {
  if (raw === undefined) return DEFAULT_POOL_SIZE;
  const n = Number(raw);
  if (!/^\s*\d+\s*$/.test(raw) || n < 1 || n > MAX_POOL_SIZE) {
    throw new ProfileError(
      `profiles.${profile}.pool_size: expected an integer from 1 to ${MAX_POOL_SIZE}, got ${JSON.stringify(raw)}`,
      { profile },
    );
  }
  return n;
}

/** A client's pool and the sockets of its connections (connecting ones too), so that an end can drop them. */
export interface PoolHandle<P> {
  pool: P;
  sockets: Set<Socket>;
}

/** `socket`, kept in `sockets` until it closes. */
export function tracked<S extends Socket>(sockets: Set<Socket>, socket: S): S {
  sockets.add(socket);
  socket.once("close", () => sockets.delete(socket));
  return socket;
}

/**
 * The pool an operator's calls use now. `reset()` (the tier's call after
 * repeated timeouts) puts a fresh pool in its place and ends the old one in
 * the background, so that connections stuck on a hung server go and new ones
 * open on demand; `close()` ends it for good.
 */
export class PoolSlot<H> {
  #current: H;
  constructor(
    private readonly open: () => H,
    private readonly end: (handle: H) => Promise<void>,
    private readonly state: OpenState,
  ) {
    this.#current = open();
  }
  get current(): H {
    return this.#current;
  }
  reset(): void {
    if (this.state.closed) return;
    const stale = this.#current;
    this.#current = this.open();
    void this.end(stale);
  }
  async close(): Promise<void> {
    if (this.state.close()) await this.end(this.#current);
  }
}
