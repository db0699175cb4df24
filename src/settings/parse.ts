/** Settings text (TOML) -> {@link DeviceSettings}: types checked, overrides applied, values expanded. */
import { parse as parseToml, TomlDate, TomlError, type TomlTable, type TomlValue } from "smol-toml";
import { redactSecrets, SettingsError } from "../errors.js";
import { type ExpandContext, expandTilde, expandValue, UnsetVariable } from "./_expand.js";
import { applyProfileOverrides, type RawEntry, type RawProfile, TOP_LEVEL_OVERRIDES } from "./_overrides.js";
import { homeDir } from "./_paths.js";
import { isLiteralSecret, registerSecrets } from "./_secrets.js";
import { checkCoherence } from "./coherence.js";
import { TOP_LEVEL_DEFAULTS } from "./defaults.js";
import type { DeviceSettings, ParseSettingsOptions, ProfileSettings } from "./types.js";

type TopLevelField = keyof typeof TOP_LEVEL_DEFAULTS;
const TOP_LEVEL_FIELDS = Object.keys(TOP_LEVEL_DEFAULTS) as TopLevelField[];

/** Result of parsing, with what {@link loadSettings} needs beyond the settings. */
export interface ParsedSettings {
  settings: DeviceSettings;
  /** The text holds a credential in clear (not as a `${VAR}` reference). */
  hasLiteralSecrets: boolean;
}

/**
 * Parses the text of a `settings.toml` (the Rust `terraphim_settings` format).
 *
 * - Top-level `server_hostname`, `api_endpoint`, `initialized` (a boolean or
 *   the string `"true"`/`"false"`), `default_data_path`; a missing one takes
 *   its default (the Rust crate would refuse the file). Other top-level keys
 *   are ignored.
 * - `[profiles.<name>]` tables of strings; numbers and booleans are taken as
 *   their text, arrays and tables are an error for that profile.
 * - Every string expands `~`, `$VAR`, `${VAR}` and `${VAR:-default}`.
 * - `TERRAPHIM_SERVER_HOSTNAME`, `TERRAPHIM_API_ENDPOINT`, `TERRAPHIM_INITIALIZED`,
 *   `TERRAPHIM_DEFAULT_DATA_PATH` and `TERRAPHIM_PROFILE_<NAME>_<KEY>` override
 *   the file (their values are literal, apart from a leading `~`).
 * - Secret values are registered so that no error message prints them.
 *
 * A problem confined to one profile (no `type`, an unset `${VAR}` without a
 * default, a wrong-typed value) lands in `profileErrors` and leaves the other
 * profiles usable. Anything else throws.
 *
 * @throws {SettingsError} malformed TOML (with line and column), a wrong-typed
 *   or unresolvable top-level value, `profiles` not a table.
 * @example
 * const settings = parseSettings(await readFile(file, "utf8"), { source: file });
 */
export function parseSettings(tomlText: string, options: ParseSettingsOptions = {}): DeviceSettings {
  return parseSettingsText(tomlText, options).settings;
}

/** {@link parseSettings}, also saying whether the text holds secrets in clear. */
export function parseSettingsText(tomlText: string, options: ParseSettingsOptions = {}): ParsedSettings {
  const env = options.env ?? process.env;
  const source = options.source;
  const where = source === undefined ? "" : ` (in ${source})`;
  const ctx: ExpandContext = { env, home: homeDir(env), windows: process.platform === "win32" };
  const doc = parseTomlText(tomlText, source);
  const warnings: string[] = [];
  let hasLiteralSecrets = false;

  // Top level: raw values, then overrides, then expansion.
  const top = {} as Record<TopLevelField, string>;
  for (const field of TOP_LEVEL_FIELDS) {
    const override = env[TOP_LEVEL_OVERRIDES[field]];
    let entry: RawEntry;
    if (override !== undefined) {
      entry = { value: override, literal: true };
    } else if (doc[field] === undefined) {
      entry = { value: TOP_LEVEL_DEFAULTS[field], literal: false };
    } else {
      const text = scalarText(doc[field]);
      if (text === undefined) {
        throw new SettingsError(`${field}: expected a string, got ${describe(doc[field])}${where}`);
      }
      entry = { value: text, literal: false };
      hasLiteralSecrets ||= isLiteralSecret(field, text);
    }
    try {
      top[field] = expandEntry(entry, ctx);
    } catch (e) {
      if (e instanceof UnsetVariable) throw new SettingsError(`${field}: ${e.message}${where}`);
      throw e;
    }
  }
  registerSecrets(top);
  const initialized = parseBool(top.initialized);
  if (initialized === undefined) {
    const name = env[TOP_LEVEL_OVERRIDES.initialized] !== undefined ? TOP_LEVEL_OVERRIDES.initialized : "initialized";
    throw new SettingsError(`${name}: expected true or false, got ${JSON.stringify(top.initialized)}${where}`);
  }

  // Profiles: raw tables, then overrides, then expansion, each profile on its own.
  const rawProfiles = readRawProfiles(doc.profiles, where);
  for (const raw of rawProfiles.values()) {
    for (const [key, entry] of raw.entries) hasLiteralSecrets ||= isLiteralSecret(key, entry.value);
  }
  applyProfileOverrides(rawProfiles, env, warnings);

  const profiles: Record<string, ProfileSettings> = {};
  const profileErrors: Record<string, SettingsError> = {};
  for (const [name, raw] of rawProfiles) {
    const problems = [...raw.problems];
    const values: ProfileSettings = {};
    for (const [key, entry] of raw.entries) {
      try {
        values[key] = expandEntry(entry, ctx);
      } catch (e) {
        if (!(e instanceof UnsetVariable)) throw e;
        problems.push(`${settingsPath("profiles", name, key)}: ${e.message}`);
      }
    }
    registerSecrets(values);
    if (raw.problems.length === 0) {
      if (!raw.entries.has("type")) {
        problems.push(`${settingsPath("profiles", name, "type")}: required (the backend scheme, e.g. "sqlite")`);
      } else if (values.type === "") {
        problems.push(`${settingsPath("profiles", name, "type")}: expected a backend scheme, got an empty string`);
      }
    }
    if (problems.length > 0) {
      profileErrors[name] = new SettingsError(`${problems.join("; ")}${where}`, { profile: name });
    } else {
      const { type, ...rest } = values;
      profiles[name] = { type: type as string, ...rest };
    }
  }

  const coherence = readCoherence(doc.coherence, env, ctx, where);
  for (const [key, v] of Object.entries(doc.coherence && isTable(doc.coherence) ? doc.coherence : {})) {
    const text = scalarText(v);
    if (text !== undefined) hasLiteralSecrets ||= isLiteralSecret(key, text);
  }

  const settings: DeviceSettings = {
    serverHostname: top.server_hostname,
    apiEndpoint: top.api_endpoint,
    initialized,
    defaultDataPath: top.default_data_path,
    profiles,
    profileErrors,
    warnings,
  };
  if (source !== undefined) settings.source = source;
  if (coherence) settings.coherence = coherence;
  return { settings, hasLiteralSecrets };
}

function parseTomlText(text: string, source: string | undefined): TomlTable {
  try {
    // "throw": a `__proto__` profile or key must not reach a plain object.
    return parseToml(text, { integersAsBigInt: "asNeeded", unsafeKeyBehaviour: "throw" });
  } catch (e) {
    if (e instanceof TomlError) {
      // The cause keeps smol-toml's excerpt of the file: scrub credentials from it.
      e.message = redactSecrets(e.message);
      e.codeblock = redactSecrets(e.codeblock);
      const reason = (e.message.split("\n")[0] ?? "").replace(/^Invalid TOML document:\s*/, "");
      throw new SettingsError(
        `Invalid TOML in ${source ?? "settings"} at line ${e.line}, column ${e.column}: ${reason}`,
        { cause: e },
      );
    }
    throw new SettingsError(`Invalid TOML in ${source ?? "settings"}: ${(e as Error).message}`, { cause: e });
  }
}

function readRawProfiles(value: TomlValue | undefined, where: string): Map<string, RawProfile> {
  const profiles = new Map<string, RawProfile>();
  if (value === undefined) return profiles;
  if (!isTable(value))
    throw new SettingsError(`profiles: expected a table of profiles, got ${describe(value)}${where}`);
  for (const [name, table] of Object.entries(value)) {
    const raw: RawProfile = { entries: new Map(), problems: [] };
    profiles.set(name, raw);
    if (!isTable(table)) {
      raw.problems.push(`${settingsPath("profiles", name)}: expected a table, got ${describe(table)}`);
      continue;
    }
    for (const [key, v] of Object.entries(table)) {
      const text = scalarText(v);
      if (text === undefined) {
        raw.problems.push(`${settingsPath("profiles", name, key)}: expected a string, got ${describe(v)}`);
      } else {
        raw.entries.set(key, { value: text, literal: false });
      }
    }
  }
  return profiles;
}

/** Env variables overriding `[coherence]` keys: `TERRAPHIM_COHERENCE_<KEY>`. */
const COHERENCE_PREFIX = "TERRAPHIM_COHERENCE_";

/**
 * The `[coherence]` table: string values, `TERRAPHIM_COHERENCE_<KEY>`
 * overrides (which also create the table), expanded and checked.
 * @throws SettingsError with the path of the bad value.
 */
function readCoherence(
  value: TomlValue | undefined,
  env: Readonly<Record<string, string | undefined>>,
  ctx: ExpandContext,
  where: string,
): Record<string, string> | undefined {
  const entries = new Map<string, RawEntry>();
  if (value !== undefined) {
    if (!isTable(value)) throw new SettingsError(`coherence: expected a table, got ${describe(value)}${where}`);
    for (const [key, v] of Object.entries(value)) {
      const text = scalarText(v);
      if (text === undefined)
        throw new SettingsError(`coherence.${key}: expected a string, got ${describe(v)}${where}`);
      entries.set(key, { value: text, literal: false });
    }
  }
  for (const [variable, v] of Object.entries(env)) {
    if (
      v !== undefined &&
      variable.toUpperCase().startsWith(COHERENCE_PREFIX) &&
      variable.length > COHERENCE_PREFIX.length
    ) {
      entries.set(variable.slice(COHERENCE_PREFIX.length).toLowerCase(), { value: v, literal: true });
    }
  }
  if (entries.size === 0) return undefined;
  const values: Record<string, string> = {};
  for (const [key, entry] of entries) {
    try {
      values[key] = expandEntry(entry, ctx);
    } catch (e) {
      if (e instanceof UnsetVariable) throw new SettingsError(`coherence.${key}: ${e.message}${where}`);
      throw e;
    }
  }
  registerSecrets(values);
  checkCoherence(values, where);
  return values;
}

function expandEntry(entry: RawEntry, ctx: ExpandContext): string {
  return entry.literal ? expandTilde(entry.value, ctx) : expandValue(entry.value, ctx);
}

function parseBool(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  return t === "true" ? true : t === "false" ? false : undefined;
}

function isTable(v: TomlValue | undefined): v is TomlTable {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date) && !isTemporal(v);
}

function isTemporal(v: object): boolean {
  const tag = (v as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag];
  return typeof tag === "string" && tag.startsWith("Temporal.");
}

/** The text of a scalar (string, number, boolean), or undefined for arrays, tables and dates. */
function scalarText(v: TomlValue | undefined): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  return undefined;
}

function describe(v: TomlValue | undefined): string {
  if (Array.isArray(v)) return "an array";
  if (v instanceof TomlDate || v instanceof Date || (typeof v === "object" && v !== null && isTemporal(v))) {
    return "a date";
  }
  if (typeof v === "object" && v !== null) return "a table";
  if (typeof v === "bigint") return "a number";
  return `a ${typeof v}`;
}

/** `profiles.s3.bucket`, quoting segments the way TOML would (`profiles."my.s3".bucket`). */
export function settingsPath(...segments: string[]): string {
  return segments.map((s) => (/^[A-Za-z0-9_-]+$/.test(s) ? s : JSON.stringify(s))).join(".");
}
