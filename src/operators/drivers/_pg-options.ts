/**
 * The options of a `postgresql` profile: what each means, and their checks
 * (no I/O), shared by the operator and by {@link postgresqlChangeFeed}, which
 * the coherence bus asks before the server answers.
 *
 * @module
 */
import { ProfileError, registerSecret } from "../../errors.js";
import type { PostgresqlChangeFeed } from "../types.js";
import { networkAddress } from "./_net.js";
import { normalizeRoot, profileOptions } from "./_shared.js";
import { checkSqlIdentifiers, SQL_OPTION_KEYS, type SqlOperatorOptions } from "./_sql.js";

/**
 * Options of the `postgresql` operator (see {@link SqlOperatorOptions}). The
 * table is created when missing as `(key TEXT PRIMARY KEY, value BYTEA NOT NULL)`.
 */
export interface PostgresqlOperatorOptions extends SqlOperatorOptions {
  /**
   * The server, as a URL: `postgresql://user:password@host:port/database`
   * (`postgres://` too; query parameters as node-postgres reads them, e.g.
   * `sslmode`). Required. The password never appears in an error.
   * @example "postgresql://terraphim:secret@db.local:5432/terraphim"
   */
  connection_string?: string;
}

/** The options of a postgresql profile, checked once (no I/O). */
export function parsePgOptions(options: Record<string, string>, profile: string) {
  const opt = checkOptions(options, profile);
  checkSqlIdentifiers("postgresql", opt, profile);
  const { text: connectionString, url } = connectionUrl(opt.connection_string, profile);
  const tableName = identifier(opt.table, "table", undefined, profile);
  const keyName = identifier(opt.key_field, "key_field", "key", profile);
  const valueName = identifier(opt.value_field, "value_field", "value", profile);
  if (opt.root?.includes("\0")) throw new ProfileError(`profiles.${profile}.root: cannot contain NUL`, { profile });
  const root = normalizeRoot(opt.root ?? "/");
  const address = networkAddress("postgresql", { connection_string: connectionString });
  const where = address ? `${address.host}:${address.port}${url.pathname}` : "postgresql";
  const changeFeed: PostgresqlChangeFeed = {
    kind: "postgresql",
    connectionString,
    where,
    table: tableName,
    keyField: keyName,
    prefix: root,
  };
  return { opt, connectionString, url, tableName, keyName, valueName, root, address, where, changeFeed };
}

/**
 * Where a postgresql profile's server reports its changes (see `Operator.changeFeed`), from its options
 * alone: known before the server answers.
 * @throws ProfileError for bad options.
 */
export function postgresqlChangeFeed(options: Record<string, string>, profile = "postgresql"): PostgresqlChangeFeed {
  return parsePgOptions(options, profile).changeFeed;
}

/** The options checked (see {@link profileOptions}); the connection string's password registered as a secret. */
function checkOptions(options: Record<string, string>, profile: string): PostgresqlOperatorOptions {
  const out: PostgresqlOperatorOptions = profileOptions(options, SQL_OPTION_KEYS, "postgresql", profile);
  if (out.connection_string) {
    try {
      const password = new URL(out.connection_string).password;
      registerSecret(password);
      registerSecret(decodeURIComponent(password));
    } catch {
      // Not a URL: connectionUrl says so, without echoing it.
    }
  }
  return out;
}

function connectionUrl(raw: string | undefined, profile: string): { text: string; url: URL } {
  const shape = "postgresql://user:password@host:port/database";
  if (!raw) throw new ProfileError(`profiles.${profile}.connection_string: required (${shape})`, { profile });
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // The value may hold a password: never echo it.
    throw new ProfileError(`profiles.${profile}.connection_string: expected a URL such as ${shape}`, { profile });
  }
  if (url.protocol !== "postgresql:" && url.protocol !== "postgres:") {
    throw new ProfileError(
      `profiles.${profile}.connection_string: expected a postgresql:// or postgres:// URL, got a ${url.protocol}// one`,
      { profile },
    );
  }
  return { text: raw, url };
}

/** The name `raw` gives (checked by `checkSqlIdentifiers`), else `fallback`; `table` has none. */
function identifier(raw: string | undefined, option: string, fallback: string | undefined, profile: string): string {
  const name = raw ?? fallback;
  if (name === undefined) {
    throw new ProfileError(`profiles.${profile}.${option}: required (the table holding the values)`, { profile });
  }
  return name;
}
