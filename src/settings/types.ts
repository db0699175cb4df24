import type { SettingsError } from "../errors.js";

/** Options of one profile: the string values of a `[profiles.<name>]` table, `type` always present. */
export type ProfileSettings = Record<string, string>;

/**
 * Device settings, as the Rust `terraphim_settings::DeviceSettings` holds them,
 * with every value already expanded (`~`, `${VAR:-default}`) and the
 * `TERRAPHIM_` environment overrides applied.
 *
 * The Rust (and TOML) field names are snake_case: `server_hostname`,
 * `api_endpoint`, `initialized`, `default_data_path`, `profiles`; use
 * {@link toToml} to write them.
 */
export interface DeviceSettings {
  /** Address the Terraphim server listens on (`server_hostname`). */
  serverHostname: string;
  /** Terraphim server API URL (`api_endpoint`). */
  apiEndpoint: string;
  /** Whether first-run initialisation has completed (`initialized`). */
  initialized: boolean;
  /** Base folder for local data (`default_data_path`), `~` expanded. */
  defaultDataPath: string;
  /**
   * Profiles that resolved: name -> options, each with a non-empty `type`
   * (the backend scheme: `memory`, `sqlite`, `s3`, ...). The type is passed
   * through as written; whether it is supported is for the storage layer to say.
   */
  profiles: Record<string, ProfileSettings>;
  /**
   * Profiles that could not be resolved (no `type`, a `${VAR}` that is unset
   * with no default, a value that is an array or a table). They are not in
   * {@link profiles}; the storage layer reports them as failed profiles while
   * the others work. Each error has `code: "E_SETTINGS"` and `profile` set.
   */
  profileErrors?: Record<string, SettingsError>;
  /**
   * The `[coherence]` table (with `TERRAPHIM_COHERENCE_<KEY>` overrides), checked: the bus that keeps
   * the local profiles of several instances from serving values another instance replaced.
   * Absent when the settings have none.
   */
  coherence?: Record<string, string>;
  /** Non-fatal findings (world-readable file holding secrets, overrides that matched no profile). */
  warnings?: string[];
  /** The settings file these settings came from, when they came from a file. */
  source?: string;
}

/** Environment to read variables from; `undefined` values count as unset. */
export type SettingsEnv = Readonly<Record<string, string | undefined>>;

/** Options of {@link parseSettings}. */
export interface ParseSettingsOptions {
  /**
   * Environment for `${VAR}` expansion, `~` (its `HOME`) and `TERRAPHIM_` overrides.
   * @default process.env
   */
  env?: SettingsEnv;
  /** Where the text came from (a file path), used in error messages and as `source`. */
  source?: string;
}

/** Options of {@link loadSettings}. */
export interface LoadSettingsOptions {
  /**
   * Settings folder (holding `settings.toml`) or settings file. A path that
   * does not exist is a file when it ends in `.toml`, else a folder.
   * @default env `TERRAPHIM_SETTINGS_PATH`, else the platform config folder (see {@link defaultSettingsDir})
   */
  path?: string;
  /**
   * Environment for expansion, overrides and folder lookup.
   * @default process.env
   */
  env?: SettingsEnv;
  /**
   * Write the default `settings.toml` (mode 0600, folder created) when there is none.
   * With `false`, the default settings are returned without touching the disk.
   * @default true
   */
  writeDefault?: boolean;
}
