/**
 * The `connection_string` of a `mysql` profile: `mysql://user:password@host:port/database`
 * with its TLS parameters, checked into what mysql2 connects with.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import type { PoolOptions } from "mysql2";
import { ProfileError, registerSecret } from "../../errors.js";

const CONNECTION_PARAMS = ["ssl-mode", "ssl-ca"];
const SSL_MODES = ["disabled", "preferred", "required", "verify_ca", "verify_identity"];

/** Where and as whom to connect. */
export interface Target {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  database: string;
  ssl: PoolOptions["ssl"];
}

/**
 * The connection string checked: a {@link ProfileError} names what is wrong, never echoing the
 * password (registered as a secret).
 */
export function parseConnectionString(raw: string | undefined, profile: string): Target {
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
