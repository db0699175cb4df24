/**
 * What every command shares: the global options, settings and storage
 * opening, output (text or `--json`), exit codes, and secret redaction of
 * everything printed.
 */
import { existsSync } from "node:fs";
import type { Command } from "commander";
import {
  consoleLogger,
  type DeviceSettings,
  DeviceStorage,
  type Logger,
  loadSettings,
  PartialWriteError,
  PersistenceError,
  redactSecrets,
  resolveSettingsFile,
  type Tier,
  validateKey,
  validatePrefix,
} from "../index.js";

/** Exit codes: 0 ok, 1 the operation failed, 2 the command line was wrong. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Options every command takes. */
export interface GlobalOptions {
  /** Settings folder or file (`--settings`). */
  settings?: string | undefined;
  /** Machine-readable output on stdout (`--json`). */
  json?: boolean | undefined;
}

/** A wrong command line that commander cannot see (an unknown profile name, two flags that clash): exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Replaces every string in a value by its redacted form (credentials in URLs,
 * `password=...`, registered secrets). For metadata and messages only: stored
 * values are user data and are printed as they are.
 */
export function redactDeep<T>(value: T): T {
  if (typeof value === "string") return redactSecrets(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v)) as T;
  if (value !== null && typeof value === "object" && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)])) as T;
  }
  return value;
}

/** Output of one command run: text for people or one JSON document for scripts. */
export class Output {
  constructor(readonly json: boolean) {}

  /** Prints the command's result: `data` as JSON with `--json`, else the text `lines`. */
  result(data: unknown, lines: () => string | readonly string[]): void {
    if (this.json) {
      process.stdout.write(`${JSON.stringify(redactDeep(data), null, 2)}\n`);
      return;
    }
    const text = lines();
    const all = typeof text === "string" ? [text] : text;
    if (all.length > 0) process.stdout.write(`${all.map((l) => redactSecrets(l)).join("\n")}\n`);
  }

  /** A line of text output on stdout (redacted); nothing with `--json`, where the command prints one result. */
  line(text: string): void {
    if (!this.json) process.stdout.write(`${redactSecrets(text)}\n`);
  }

  /**
   * Prints a stored value: pretty JSON as text, or with `--json` inside `meta`
   * as its `value` field. Only `meta` is redacted: the value is the user's data.
   */
  value(meta: Record<string, unknown>, value: unknown): void {
    const text = this.json ? JSON.stringify({ ...redactDeep(meta), value }, null, 2) : JSON.stringify(value, null, 2);
    process.stdout.write(`${text}\n`);
  }

  /** A remark for people (progress, notes); on stderr, so stdout stays clean for pipes. */
  note(text: string): void {
    process.stderr.write(`${redactSecrets(text)}\n`);
  }
}

/** The global options of a command (commander merges the program's options in). */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/**
 * Reads the settings: `--settings PATH` (a folder holding `settings.toml`, or
 * the file), else `TERRAPHIM_SETTINGS_PATH`, else the platform folder (where
 * the library writes a default file on first run). An explicit `--settings`
 * that does not exist is a usage error rather than a new default file.
 */
export async function readSettings(options: GlobalOptions, output: Output): Promise<DeviceSettings> {
  if (options.settings !== undefined) {
    const file = await resolveSettingsFile({ path: options.settings });
    if (!existsSync(file)) {
      throw new UsageError(
        `--settings ${options.settings}: no settings file at ${file} (give a folder holding settings.toml, or the file)`,
      );
    }
  }
  const settings = await loadSettings(options.settings === undefined ? {} : { path: options.settings });
  for (const w of settings.warnings ?? []) output.note(`warning: ${w}`);
  return settings;
}

/** The CLI's logger: the library's console logger (stderr, level from `TERRAPHIM_LOG`). */
export function cliLogger(): Logger {
  return consoleLogger();
}

/**
 * Opens storage over the settings' profiles, or only over `names` (so that a
 * command touching two profiles neither waits for nor depends on the others).
 * @throws UsageError for a name the settings do not define.
 */
export async function openStorage(
  settings: DeviceSettings,
  names?: readonly string[],
  logger: Logger = cliLogger(),
  listen = false,
): Promise<DeviceStorage> {
  // With a coherence bus the CLI only announces its changes (running instances drop their copies);
  // it does not listen, so its own local profiles are not read (see DeviceStorageOptions.coherence).
  // `profiles` listens, to show the lease as a running instance holds it.
  const options = { logger, coherence: { subscribe: listen } };
  if (names === undefined) return DeviceStorage.fromSettings(settings, options);
  const profiles: Record<string, Record<string, string>> = {};
  const profileErrors: Record<string, Error> = {};
  for (const name of names) {
    const p = settings.profiles[name];
    const e = settings.profileErrors?.[name];
    if (p) profiles[name] = p;
    else if (e) profileErrors[name] = e;
    else throw unknownProfile(settings, name);
  }
  return DeviceStorage.fromSettings({ profiles, profileErrors, coherence: settings.coherence }, options);
}

/** The usage error for a profile name the settings do not define. */
export function unknownProfile(settings: DeviceSettings, name: string): UsageError {
  const known = [...Object.keys(settings.profiles), ...Object.keys(settings.profileErrors ?? {})];
  return new UsageError(
    `unknown profile "${name}"; the settings${settings.source ? ` (${settings.source})` : ""} define: ${known.join(", ") || "none"}`,
  );
}

/** Splits `A,B , C` into names, or `undefined` when not given. */
export function parseList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const names = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (names.length === 0) throw new UsageError(`expected a comma-separated list of profile names, got "${value}"`);
  return names;
}

/** Every profile name the settings define, resolved or not, in settings order. */
export function allProfileNames(settings: DeviceSettings): string[] {
  return [...new Set([...Object.keys(settings.profiles), ...Object.keys(settings.profileErrors ?? {})])];
}

/** The message of anything thrown, redacted. */
export function messageOf(err: unknown): string {
  return redactSecrets(err instanceof Error ? err.message : String(err));
}

/** `{ code, message }` of an error for JSON output. */
export function errorJson(err: unknown): { code: string; message: string; outcomes?: unknown[] } {
  const code = err instanceof PersistenceError ? err.code : err instanceof UsageError ? "E_USAGE" : "E_CLI";
  const out: { code: string; message: string; outcomes?: unknown[] } = { code, message: messageOf(err) };
  if (err instanceof PartialWriteError) {
    out.outcomes = err.outcomes.map((o) => (o.ok ? o : { profile: o.profile, ok: false, error: messageOf(o.error) }));
  }
  return out;
}

/** Checks a key given on the command line; a malformed one is a usage error. */
export function checkKey(key: string): string {
  try {
    return validateKey(key);
  } catch (err) {
    throw new UsageError(messageOf(err));
  }
}

/** Checks a prefix given on the command line (empty: every key); a malformed one is a usage error. */
export function checkPrefix(prefix: string | undefined): string {
  try {
    return validatePrefix(prefix ?? "");
  } catch (err) {
    throw new UsageError(messageOf(err));
  }
}

/**
 * Wraps a command's action: runs it with its parsed options and an
 * {@link Output}, and turns what it throws into a message and an exit code
 * (left in `process.exitCode`).
 */
export function action<A extends unknown[]>(
  fn: (output: Output, options: GlobalOptions, ...args: A) => Promise<unknown>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    // commander passes the declared arguments, then the command's options, then the command.
    const cmd = args[args.length - 1] as Command;
    const options = globals(cmd);
    const output = new Output(options.json === true);
    try {
      const code = await fn(output, options, ...(args.slice(0, -1) as A));
      process.exitCode = typeof code === "number" ? code : EXIT_OK;
    } catch (err) {
      process.exitCode = reportError(err, output);
    }
  };
}

/** Prints a failure (JSON on stdout with `--json`, else text on stderr) and returns its exit code. */
export function reportError(err: unknown, output: Output): number {
  const code = err instanceof UsageError ? EXIT_USAGE : EXIT_FAILED;
  if (output.json) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: errorJson(err) }, null, 2)}\n`);
  } else {
    process.stderr.write(`error: ${messageOf(err)}\n`);
    if (process.env.TERRAPHIM_LOG === "debug" && err instanceof Error && err.stack) {
      process.stderr.write(`${redactSecrets(err.stack)}\n`);
    }
  }
  return code;
}

/**
 * For the commands that take `-p, --profile NAME`: reads the settings, opens
 * that profile alone (or every profile), and runs `fn` on the profiles to act
 * on (that one, or every profile: the ranked ones fastest first, then any down, so a write names
 * a down profile in its PartialWriteError); closes storage after.
 */
export async function withTargets<T>(
  output: Output,
  options: GlobalOptions,
  profile: string | undefined,
  fn: (storage: DeviceStorage, targets: readonly Tier[], settings: DeviceSettings) => Promise<T>,
): Promise<T> {
  const settings = await readSettings(options, output);
  const storage = await openStorage(settings, profile === undefined ? undefined : [profile]);
  return withStorage(storage, (s) => fn(s, profile === undefined ? s.tiers : [s.profile(profile)], settings));
}

/**
 * The profiles a write command may write to. A profile with `read_only = "true"`
 * is refused when the command names it, and skipped (with a note) when it does
 * not, unless `--force`.
 * @throws UsageError naming the read-only profile (nothing was written).
 */
export function writable(
  output: Output,
  targets: readonly Tier[],
  how: { command: string; named: boolean; force: boolean | undefined },
): Tier[] {
  const readOnly = targets.filter((t) => t.readOnly);
  if (how.force || readOnly.length === 0) return [...targets];
  const names = readOnly.map((t) => t.name).join(", ");
  if (how.named) {
    throw new UsageError(
      `${how.command}: profile ${names} is read-only (read_only = "true" in its settings), so nothing was written; pass --force to write to it anyway`,
    );
  }
  output.note(`${how.command}: skipped read-only profile ${names} (read_only = "true"; --force writes to it too)`);
  return targets.filter((t) => !t.readOnly);
}

/** Opens storage, runs `fn`, and always closes it (waiting for background write-backs). */
export async function withStorage<T>(storage: DeviceStorage, fn: (s: DeviceStorage) => Promise<T>): Promise<T> {
  try {
    return await fn(storage);
  } finally {
    await storage.close();
    const bus = storage.coherenceStats();
    if (bus && bus.retryQueue + bus.overflowedKeys > 0) {
      process.stderr.write(
        "warning: the coherence bus could not be reached: running instances were not told of this change (they may serve their old copies until their next resync)\n",
      );
    }
  }
}
