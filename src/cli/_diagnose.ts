/**
 * How `doctor` explains a failure: the error (and its causes) recognised
 * and said in plain words, with the fix.
 */
import { connect } from "node:net";
import { PersistenceError, type Requirement, SettingsError } from "../index.js";
import { messageOf } from "./_run.js";

/** One finding of `doctor --json`. */
export interface Finding {
  /** `settings` for the file itself, else the profile name. */
  subject: string;
  scheme?: string;
  ok: boolean;
  /** What works (ok) or what is wrong, in plain words. */
  summary: string;
  /** How to fix it. */
  fix?: string;
  /** The error message as the library gave it. */
  detail?: string;
  options?: Record<string, string>;
  ms?: number;
  /** What the profile needs installed (runtime module, dependency or optional peer) and whether it is. */
  needs?: Requirement[];
}

/** Schemes known to work here; OpenDAL may offer more. */
const KNOWN_SCHEMES = ["memory", "dashmap", "sqlite", "fs", "redb", "sled", "s3", "redis", "postgresql", "mysql"];

/** A finding's explanation: what is wrong, and how to fix it. */
export interface Explanation {
  summary: string;
  fix: string;
}

/**
 * An HTTP endpoint (s3 and other object stores) that could not be reached:
 * connect to its port to say whether it refused, timed out or did not resolve.
 */
export async function explainUnreachable(
  err: unknown,
  name: string,
  options: Readonly<Record<string, string>>,
): Promise<Explanation | undefined> {
  const text = chainText(err);
  const endpoint = options.endpoint;
  if (
    !endpoint ||
    !/^https?:/i.test(endpoint) ||
    !/error sending request|send http request|dns error|tcp connect/i.test(text)
  ) {
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return {
      summary: `endpoint ${JSON.stringify(endpoint)} is not a URL`,
      fix: `set endpoint in [profiles.${name}] to a URL such as https://s3.amazonaws.com`,
    };
  }
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const outcome = await new Promise<string>((resolve) => {
    const socket = connect({ host: url.hostname, port });
    const done = (what: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(what);
    };
    const timer = setTimeout(() => done("no answer within 1.5 s"), 1500);
    socket.once("connect", () => done("connected"));
    socket.once("error", (e: NodeJS.ErrnoException) =>
      done(e.code === "ECONNREFUSED" ? "connection refused" : e.code === "ENOTFOUND" ? "unknown host" : `${e.code}`),
    );
  });
  const at = `${url.hostname}:${port}`;
  if (outcome === "connected") {
    return {
      summary: `the endpoint ${at} accepts connections but the request failed (TLS or HTTP problem)`,
      fix: `check the scheme (http/https) and address of endpoint in [profiles.${name}]`,
    };
  }
  return {
    summary:
      outcome === "connection refused"
        ? `connection refused: nothing is listening at ${at}`
        : outcome === "unknown host"
          ? `the endpoint host "${url.hostname}" does not resolve`
          : `cannot reach ${at} (${outcome})`,
    fix: `start the server at ${at}, or correct endpoint in [profiles.${name}]`,
  };
}

/** The whole error chain as one text, for recognising what went wrong. */
function chainText(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let i = 0; e !== undefined && e !== null && i < 6; i++) {
    parts.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(" | ");
}

/** Explains an error reading the settings file or a profile in it. */
export function explainSettings(err: unknown): Explanation {
  const text = messageOf(err);
  const toml = /Invalid TOML in .* at line (\d+), column (\d+): (.*)$/s.exec(text);
  if (toml) {
    return {
      summary: `the settings file is not valid TOML: line ${toml[1]}, column ${toml[2]}: ${toml[3]}`,
      fix: `correct line ${toml[1]} of the file (values are "quoted strings", profiles are [profiles.<name>] tables with type = "<scheme>")`,
    };
  }
  const unset = /(profiles\.[^:]+|\w+): environment variable (\w+) is not set and has no default/.exec(text);
  if (unset) {
    return {
      summary: `${unset[1]} uses the environment variable ${unset[2]}, which is not set`,
      fix: `set ${unset[2]} in the environment, or give a default in the file: \${${unset[2]}:-<value>}`,
    };
  }
  const noType = /(profiles\.[^.]+)\.type: required/.exec(text);
  if (noType) {
    return {
      summary: `${noType[1]} has no type`,
      fix: `add type = "<scheme>" to [${noType[1]}] (one of ${KNOWN_SCHEMES.join(", ")})`,
    };
  }
  if (err instanceof SettingsError) {
    return { summary: text, fix: "correct that value in the settings file" };
  }
  return { summary: `cannot read the settings: ${text}`, fix: "check that the file exists and is readable" };
}

/**
 * A storage-layer option (`speed`, `timeout_ms`, `retries`, `max_size`,
 * `max_items`, `quota_policy`, `ttl_ms`) that does not parse: the library's
 * message names it (`profiles.m2.speed: expected a number >= 0, got "fast"`).
 */
export function explainOption(err: unknown, name: string): Explanation {
  const summary = messageOf(err);
  const option = summary.startsWith(`profiles.${name}.`) ? summary.slice(0, summary.indexOf(":")) : undefined;
  return {
    summary,
    fix: option
      ? `correct ${option} in the settings file, or remove it (see the profile table in the README)`
      : `correct [profiles.${name}] in the settings file`,
  };
}

/** Explains an error opening or using a profile at `stage` (open, write, read, list, delete). */
export function explainProfile(
  err: unknown,
  name: string,
  scheme: string,
  options: Readonly<Record<string, string>>,
  stage: string,
): Explanation {
  const text = chainText(err);
  const code = err instanceof PersistenceError ? err.code : undefined;
  const where = `[profiles.${name}]`;
  const pathOption = options.datadir ?? options.connection_string ?? options.root ?? "";

  if (code === "E_LOCKED" || /Cannot acquire lock|already open|locked by another process|WouldBlock/i.test(text)) {
    return {
      summary: `the ${scheme} file ${pathOption} is locked by another process (a ${scheme} file can be open in one process at a time)`,
      fix: "stop the other process using it (another app, server or CLI run on these settings), or give this profile its own datadir",
    };
  }
  if (/is not supported|scheme is not enabled/i.test(text)) {
    const guess = closest(scheme.toLowerCase(), KNOWN_SCHEMES);
    return {
      summary: `unknown storage scheme "${scheme}"`,
      fix: `set type in ${where} to one of ${KNOWN_SCHEMES.join(", ")}${guess ? ` (did you mean "${guess}"?)` : ""}`,
    };
  }
  const reach = /cannot reach (\w+) at ([^\s:]+:\d+): (.*?)(?: \||$)/.exec(text);
  if (reach) {
    const refused = /refused/i.test(reach[3] ?? "");
    return {
      summary: refused
        ? `connection refused: nothing is listening at ${reach[2]}`
        : `no answer from ${reach[2]} (${reach[3]})`,
      fix: `start the ${reach[1]} server at ${reach[2]}, or correct endpoint / connection_string in ${where}`,
    };
  }
  if (/ECONNREFUSED|connection refused/i.test(text)) {
    return {
      summary: "connection refused: the server is not listening at the configured address",
      fix: `start the server, or correct endpoint / connection_string in ${where}`,
    };
  }
  const table = /relation "([^"]+)" does not exist/.exec(text);
  if (table) {
    const k = options.key_field || "key";
    const v = options.value_field || "value";
    return {
      summary: `the table "${table[1]}" does not exist in the database`,
      fix: `create it: CREATE TABLE ${table[1]} (${k} TEXT PRIMARY KEY, ${v} BYTEA NOT NULL);  (e.g. psql "<connection_string>" -c '...'; the library does not create tables)`,
    };
  }
  const db = /database "([^"]+)" does not exist/.exec(text);
  if (db) {
    return {
      summary: `the database "${db[1]}" does not exist on the server`,
      fix: `create it (CREATE DATABASE ${db[1]};) or correct the database name in connection_string in ${where}`,
    };
  }
  if (
    /password authentication failed|role "[^"]+" does not exist|InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|status: 403|PermissionDenied|WRONGPASS|NOAUTH|invalid password|Access denied for user/i.test(
      text,
    )
  ) {
    const which =
      scheme === "s3"
        ? "access_key_id / secret_access_key (or TERRAPHIM_PROFILE_<NAME>_SECRET_ACCESS_KEY), and that the key may read and write the bucket"
        : scheme === "redis"
          ? "password (and db)"
          : "the user and password in connection_string";
    return {
      summary: `the server refused the credentials (wrong credentials or no permission${/403/.test(text) ? ": HTTP 403" : ""})`,
      fix: `check ${which} in ${where}`,
    };
  }
  if (/NoSuchBucket/.test(text)) {
    return {
      summary: `the bucket "${options.bucket ?? ""}" does not exist`,
      fix: `create the bucket, or correct bucket / endpoint in ${where}`,
    };
  }
  if (/EACCES|EROFS|EPERM|ENOTDIR|permission denied|read-only file system|not a directory/i.test(text)) {
    return {
      summary: `the data folder is not writable (${pathOption || "see the error"})`,
      fix: `make it writable by this user (check owner and permissions, and that every parent is a folder), or point ${options.datadir !== undefined ? "datadir" : options.root !== undefined ? "root" : "the path"} in ${where} at a writable folder`,
    };
  }
  if (code === "E_TIMEOUT") {
    return {
      summary: `the backend did not answer the ${stage} in time`,
      fix: `check that the server is up and reachable, or raise timeout_ms in ${where}`,
    };
  }
  if (/ConfigInvalid|is required|needs `|: required/i.test(text)) {
    return {
      summary: `the profile is missing an option or has an invalid one: ${firstLine(messageOf(err))}`,
      fix: `add or correct the option in ${where} (see the profile table in the README for each scheme's keys)`,
    };
  }
  return {
    summary: `the ${stage} failed: ${firstLine(messageOf(err))}`,
    fix: "see the error below; TERRAPHIM_LOG=debug shows more",
  };
}

function firstLine(s: string): string {
  const line = s.split("\n")[0] ?? s;
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}

/** The known scheme within edit distance 2 of `s`, if any. */
function closest(s: string, candidates: readonly string[]): string | undefined {
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const d = distance(s, c);
    if (d <= 2 && (!best || d < best.d)) best = { c, d };
  }
  return best?.c;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] as number;
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length] as number;
}
