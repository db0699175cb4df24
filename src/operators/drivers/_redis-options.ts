/**
 * The options of a `redis` profile: what each means, and their checks into a
 * {@link RedisConfig} (endpoints, database, root, `default_ttl` durations).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { ProfileError, registerSecret } from "../../errors.js";
import type { RedisChangeFeed } from "../types.js";
import { networkAddress } from "./_net.js";
import { normalizeRoot, profileOptions, urlPassword } from "./_shared.js";

/**
 * Options of the `redis` operator: the keys of OpenDAL's redis service, which
 * the Rust settings' `[profiles.<name>]` tables use. All values are strings.
 */
export interface RedisOperatorOptions {
  /**
   * The server: `tcp://host:port`, `redis://host:port`, `host:port`,
   * `rediss://host:port` (TLS, certificate checked) or `unix:///path/redis.sock`
   * (also `redis+unix://`). As in OpenDAL, only the scheme, host and port (or
   * socket path) are used: credentials go in `username` / `password`, the
   * database in `db`.
   * @default "tcp://127.0.0.1:6379"
   */
  endpoint?: string;
  /**
   * A Redis Cluster instead of one server: comma-separated endpoints (any
   * reachable node will do; the others are discovered). Excludes `endpoint`.
   * @example "tcp://10.0.0.1:6379,tcp://10.0.0.2:6379"
   */
  cluster_endpoints?: string;
  /** ACL user name (Redis 6+). */
  username?: string;
  /** Password (`AUTH`). Never shown in an error or log. */
  password?: string;
  /** Database number (`SELECT`); a cluster has only database 0. @default "0" */
  db?: string;
  /**
   * Folder every key lives under, as OpenDAL applies it: `/`, `` and unset
   * mean none; `ns`, `/ns` and `/ns/` all store `a.json` as the Redis key
   * `ns/a.json`; empty segments drop (`/a//b/` is `a/b/`).
   * @default "/"
   */
  root?: string;
  /**
   * Expiry set on every write (`SET ... EX`), in whole seconds (a fraction is
   * dropped, as OpenDAL's `as_secs()` does). Friendly (`90s`, `5m`, `1h 30m`,
   * `2 hours`) or ISO 8601 (`PT5M`), the formats later OpenDAL releases parse.
   * OpenDAL 0.49.1 (the Node binding) and the Rust crate on opendal 0.54 fail
   * to open any profile that sets it.
   */
  default_ttl?: string;
  /**
   * A PEM file of the certificate authorities that sign a `rediss://` server's certificate, trusted
   * besides the runtime's own (a private CA). Works the same on Node, Bun and Deno (Deno's `node:tls`
   * reads neither `NODE_EXTRA_CA_CERTS` nor `DENO_CERT`). Not an OpenDAL option.
   */
  tls_ca_file?: string;
}

/** Every option key a redis profile accepts. */
const ACCEPTED: readonly (keyof RedisOperatorOptions)[] = [
  "endpoint",
  "cluster_endpoints",
  "username",
  "password",
  "db",
  "root",
  "default_ttl",
  "tls_ca_file",
];
const DEFAULT_ENDPOINT = "tcp://127.0.0.1:6379";

/** Seconds per unit of a friendly duration (`5m`, `2 hours`), as jiff (OpenDAL's parser) spells them. */
const DURATION_UNITS: Readonly<Record<string, number>> = Object.fromEntries(
  (
    [
      [["h", "hr", "hrs", "hour", "hours"], 3600],
      [["m", "min", "mins", "minute", "minutes"], 60],
      [["s", "sec", "secs", "second", "seconds"], 1],
      [["ms", "msec", "msecs", "millisecond", "milliseconds"], 1e-3],
      [["us", "µs", "μs", "usec", "usecs", "microsecond", "microseconds"], 1e-6],
      [["ns", "nsec", "nsecs", "nanosecond", "nanoseconds"], 1e-9],
    ] as const
  ).flatMap(([names, seconds]) => names.map((n) => [n, seconds])),
);

/** Where to connect: a TCP (or TLS) address, or a unix socket. */
export type Target = TcpTarget | { path: string };
export type TcpTarget = { host: string; port: number; tls: boolean /** Extra CAs (PEM) for TLS. */; ca?: string };

/** The `tls` option of an ioredis client of `target`: none without TLS, the extra CAs where given. */
export function tlsOption(target: Target): { tls?: { ca?: string } } {
  if (!("tls" in target) || !target.tls) return {};
  return { tls: target.ca === undefined ? {} : { ca: target.ca } };
}

/** The options, checked and normalised once. */
export interface RedisConfig {
  /** One target, or the cluster's seed nodes. */
  targets: Target[];
  cluster: boolean;
  username: string | undefined;
  password: string | undefined;
  db: number;
  /** The normalised root: `""` or `a/b/`. */
  prefix: string;
  /** `SET ... EX` seconds, if `default_ttl` is set. */
  ttlSeconds: number | undefined;
  /** An endpoint URL carried credentials (unused, as in OpenDAL). */
  urlCredentials: boolean;
}

/**
 * The options of a redis profile, checked and normalised once: a
 * {@link ProfileError} names the first bad one (`profiles.<name>.<key>: ...`).
 * Passwords (also in endpoint URLs) are registered as secrets.
 */
export function redisConfig(options: Record<string, string>, profile: string): RedisConfig {
  // OpenDAL lower-cases option keys before matching them.
  const o: RedisOperatorOptions = profileOptions(options, ACCEPTED, "redis", profile, true);
  registerSecret(o.password);
  const urls = [o.endpoint, ...(o.cluster_endpoints?.split(",") ?? [])];
  for (const raw of urls) registerSecret(urlPassword(raw));

  const bad = (key: string, what: string): never => {
    throw new ProfileError(`profiles.${profile}.${key}: ${what}`, { profile });
  };
  if (o.endpoint !== undefined && o.cluster_endpoints !== undefined) {
    bad("cluster_endpoints", "set either `endpoint` (one server) or `cluster_endpoints` (a cluster), not both");
  }
  const cluster = o.cluster_endpoints !== undefined;
  const targets = cluster
    ? o.cluster_endpoints!.split(",").flatMap((e) => (e.trim() ? [parseEndpoint(e.trim(), "cluster_endpoints")] : []))
    : [parseEndpoint(o.endpoint ?? DEFAULT_ENDPOINT, "endpoint")];
  if (cluster) {
    if (targets.length === 0) bad("cluster_endpoints", "no endpoint in it");
    if (targets.some((t) => "path" in t)) bad("cluster_endpoints", "a cluster is reached over TCP, not a unix socket");
    if (new Set(targets.map((t) => "tls" in t && t.tls)).size > 1) {
      bad("cluster_endpoints", "mixes rediss:// (TLS) and plain endpoints");
    }
  }

  const db = o.db === undefined ? 0 : Number(o.db);
  if (!/^\d+$/.test(o.db ?? "0") || !Number.isSafeInteger(db)) {
    bad("db", `expected a database number (0, 1, ...), got ${JSON.stringify(o.db)}`);
  }
  if (cluster && db !== 0) bad("db", `a Redis Cluster has only database 0, got ${db}`);

  if (o.tls_ca_file !== undefined) {
    if (!targets.some((t) => "tls" in t && t.tls)) bad("tls_ca_file", "applies to rediss:// endpoints only");
    let ca = "";
    try {
      ca = readFileSync(o.tls_ca_file, "utf8");
    } catch (err) {
      bad("tls_ca_file", `cannot read "${o.tls_ca_file}": ${(err as Error).message}`);
    }
    if (!ca.includes("-----BEGIN CERTIFICATE-----")) bad("tls_ca_file", `"${o.tls_ca_file}" holds no PEM certificate`);
    for (const t of targets) if ("tls" in t) t.ca = ca;
  }

  let ttlSeconds: number | undefined;
  if (o.default_ttl !== undefined) {
    const seconds = parseDuration(o.default_ttl);
    if (seconds === undefined) {
      bad(
        "default_ttl",
        `expected a duration such as "90s", "5m", "1h 30m" or "PT5M", got ${JSON.stringify(o.default_ttl)}`,
      );
    }
    // Redis expiries are whole seconds and OpenDAL truncates: below 1 s every write would fail.
    ttlSeconds = Math.floor(seconds!);
    if (ttlSeconds < 1) bad("default_ttl", `must be at least 1 second, got ${JSON.stringify(o.default_ttl)}`);
  }

  return {
    targets,
    cluster,
    username: o.username,
    password: o.password,
    db,
    prefix: normalizeRoot(o.root ?? "/"),
    ttlSeconds,
    urlCredentials: urls.some((raw) => raw !== undefined && /^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(raw.trim())),
  };

  function parseEndpoint(raw: string, key: string): Target {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1]?.toLowerCase() ?? "tcp";
    if (scheme === "unix" || scheme === "redis+unix") {
      let path = "";
      try {
        path = decodeURIComponent(new URL(raw).pathname);
      } catch {
        // Reported below.
      }
      return path ? { path } : bad(key, `expected unix:///path/to/redis.sock, got ${JSON.stringify(raw)}`);
    }
    if (scheme !== "tcp" && scheme !== "redis" && scheme !== "rediss") {
      bad(key, `unsupported scheme "${scheme}://" (use tcp://, redis://, rediss:// or unix://)`);
    }
    const address = networkAddress("redis", { endpoint: raw });
    if (!address) return bad(key, `expected tcp://host:port, got ${JSON.stringify(raw)}`);
    return { ...address, tls: scheme === "rediss" };
  }
}

/**
 * Where a redis profile's server reports its changes (see `Operator.changeFeed`), from its options alone:
 * known before the server answers.
 * @throws ProfileError for bad options.
 */
export function redisChangeFeed(options: Record<string, string>, profile = "redis"): RedisChangeFeed {
  return redisFeed(redisConfig(options, profile));
}

/** The change feed of a checked config. */
export function redisFeed(config: RedisConfig): RedisChangeFeed {
  const { targets, cluster, username, password, prefix } = config;
  return { kind: "redis", targets, cluster, username, password, prefix };
}

/** Seconds in a friendly (`1h 30m`, `90 seconds`) or ISO 8601 (`PT1H30M`) duration, or undefined. */
function parseDuration(text: string): number | undefined {
  const t = text.trim().replace(/^\+/, "");
  const iso = /^PT(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$/i.exec(t);
  if (iso) return Number(iso[1] ?? 0) * 3600 + Number(iso[2] ?? 0) * 60 + Number(iso[3] ?? 0);
  const part = /(\d+(?:\.\d+)?)\s*([a-zµμ]+)\s*,?\s*/giy;
  let seconds = 0;
  let end = 0;
  for (let m = part.exec(t); m; m = part.exec(t)) {
    const unit = DURATION_UNITS[m[2]!.toLowerCase()];
    if (unit === undefined) return undefined;
    seconds += Number(m[1]) * unit;
    end = part.lastIndex;
  }
  return end > 0 && end === t.length ? seconds : undefined;
}
