/**
 * `doctor`: validates the settings and reaches every profile (open, write,
 * read back, list, delete a reserved key), explaining each failure in plain
 * words with the fix.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import type { Command } from "commander";
import { withTimeout } from "../device-storage.js";
import { PersistenceError, SettingsError } from "../errors.js";
import { createOperator } from "../operators/index.js";
import type { Operator } from "../operators/types.js";
import { loadSettings, resolveSettingsFile } from "../settings/load.js";
import type { DeviceSettings } from "../settings/types.js";
import { formatDuration, formatOptions, redactOptions } from "./_format.js";
import { action, type GlobalOptions, messageOf, type Output, RESERVED_KEY_PREFIX } from "./_run.js";

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
}

/** Schemes known to work here; OpenDAL may offer more. */
const KNOWN_SCHEMES = ["memory", "dashmap", "sqlite", "fs", "redb", "sled", "s3", "redis", "postgresql", "mysql"];
/** Profile keys the storage layer reads itself. */
const STORAGE_KEYS = new Set(["type", "speed", "timeout_ms"]);
const DEFAULT_TIMEOUT_MS = 10_000;

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description(
      "check the settings and reach every profile (write, read, list, delete a reserved key); explain each failure and its fix",
    )
    .action(action(async (output, options) => doctor(output, options)));
}

async function doctor(output: Output, options: GlobalOptions): Promise<number> {
  const file = await resolveSettingsFile(options.settings === undefined ? {} : { path: options.settings });
  const findings: Finding[] = [];
  const report = (code: number) => {
    const broken = findings.filter((f) => !f.ok).length;
    output.result({ settings: file, ok: broken === 0, findings }, () => [
      `settings: ${file}`,
      ...findings.flatMap(findingLines),
      broken === 0
        ? "everything works"
        : `${broken} problem${broken === 1 ? "" : "s"} found (profiles that fail are left out by the library: it runs on the others)`,
    ]);
    return code;
  };

  let settings: DeviceSettings;
  const exists = existsSync(file);
  if (!exists && options.settings !== undefined) {
    findings.push({
      subject: "settings",
      ok: false,
      summary: `there is no settings file at ${file}`,
      fix: "point --settings at a folder holding settings.toml or at the file itself (or omit --settings to use the default location)",
    });
    return report(1);
  }
  try {
    settings = await loadSettings({ path: file, writeDefault: false });
  } catch (err) {
    findings.push({ subject: "settings", ok: false, ...explainSettings(err), detail: messageOf(err) });
    return report(1);
  }
  findings.push({
    subject: "settings",
    ok: true,
    summary: exists
      ? `parsed: ${Object.keys(settings.profiles).length + Object.keys(settings.profileErrors ?? {}).length} profiles`
      : "no settings file yet: the defaults apply (memory + sqlite under TERRAPHIM_DATA_PATH or ~/.terraphim), and the library writes this file on first use",
  });
  for (const w of settings.warnings ?? []) {
    findings.push({ subject: "settings", ok: true, summary: `warning: ${w}` });
  }
  for (const [name, err] of Object.entries(settings.profileErrors ?? {})) {
    findings.push({ subject: name, ok: false, ...explainSettings(err), detail: messageOf(err) });
  }
  const checks = await Promise.all(Object.entries(settings.profiles).map(([name, p]) => checkProfile(name, p)));
  findings.push(...checks);
  return report(findings.some((f) => !f.ok) ? 1 : 0);
}

function findingLines(f: Finding): string[] {
  const head = `${f.ok ? "  ok  " : "  FAIL"}  ${f.subject}${f.scheme ? ` (${f.scheme})` : ""}: ${f.summary}`;
  if (f.ok) return [head];
  const lines = [head];
  if (f.fix) lines.push(`        fix: ${f.fix}`);
  if (f.detail && f.detail !== f.summary) lines.push(`        error: ${f.detail}`);
  if (f.options) lines.push(`        options: ${formatOptions(f.options)}`);
  return lines;
}

/** Opens a profile on its own and runs write, read, list and delete of a reserved key. */
async function checkProfile(name: string, profile: Readonly<Record<string, string>>): Promise<Finding> {
  const scheme = profile.type ?? "";
  const shown = redactOptions(profile);
  const base = { subject: name, scheme, options: shown };
  for (const k of ["speed", "timeout_ms"]) {
    const v = profile[k];
    if (v !== undefined && v.trim() !== "" && !(Number.isFinite(Number(v)) && Number(v) >= (k === "speed" ? 0 : 1))) {
      return {
        ...base,
        ok: false,
        summary: `${k} is not a number: ${JSON.stringify(v)}`,
        fix: `set profiles.${name}.${k} to a number (${k === "speed" ? "a fixed rank value, lower is faster" : "milliseconds per call"}) or remove it`,
      };
    }
  }
  const timeoutMs = profile.timeout_ms ? Number(profile.timeout_ms) : DEFAULT_TIMEOUT_MS;
  const options: Record<string, string> = {};
  for (const [k, v] of Object.entries(profile)) if (!STORAGE_KEYS.has(k)) options[k] = v;
  const key = `${RESERVED_KEY_PREFIX}doctor-${process.pid}-${randomBytes(6).toString("hex")}`;
  const limit = <T>(p: Promise<T>, what: string) =>
    withTimeout(p, timeoutMs, `${what} in profile "${name}"`, name, key);
  const started = performance.now();
  let op: Operator | undefined;
  let stage = "open";
  try {
    op = await limit(createOperator(scheme, options, { profile: name }), "open");
    const o = op;
    const payload = randomBytes(64);
    stage = "write";
    await limit(o.write(key, payload), "write");
    stage = "read";
    const back = await limit(o.read(key), "read");
    if (!Buffer.from(back).equals(payload)) {
      throw new PersistenceError(`profile "${name}" returned different bytes than were written`, { profile: name });
    }
    let listed = "";
    if (o.capabilities.list) {
      stage = "list";
      const keys = await limit(o.list(RESERVED_KEY_PREFIX), "list");
      listed = keys.includes(key) ? ", list" : ", list (did not show the new key)";
    }
    stage = "delete";
    await limit(o.delete(key), "delete");
    const ms = performance.now() - started;
    const durability = o.capabilities.durable ? "" : "; not durable (data lives in this process only)";
    return {
      subject: name,
      scheme,
      ok: true,
      summary: `write, read${listed || " (cannot list keys)"} and delete work (${formatDuration(ms)})${durability}`,
      ms: Math.round(ms),
    };
  } catch (err) {
    if (op && stage !== "write" && stage !== "open") await op.delete(key).catch(() => {});
    const why = (await explainUnreachable(err, name, options)) ?? explainProfile(err, name, scheme, options, stage);
    return { ...base, ok: false, ...why, detail: messageOf(err) };
  } finally {
    await op?.close().catch(() => {});
  }
}

/**
 * An HTTP endpoint (s3 and other object stores) that could not be reached:
 * connect to its port to say whether it refused, timed out or did not resolve.
 */
async function explainUnreachable(
  err: unknown,
  name: string,
  options: Readonly<Record<string, string>>,
): Promise<{ summary: string; fix: string } | undefined> {
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

function explainSettings(err: unknown): { summary: string; fix: string } {
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

function explainProfile(
  err: unknown,
  name: string,
  scheme: string,
  options: Readonly<Record<string, string>>,
  stage: string,
): { summary: string; fix: string } {
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
