/** The settings a fresh install gets, as TOML (written on first run) and as objects. */
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DeviceSettings } from "./types.js";

/**
 * The `settings.toml` written on first run. The Rust crate reads it too.
 *
 * A fast in-process cache (`memory`) over a durable SQLite store, so a fresh
 * user's data survives restarts. Paths follow `TERRAPHIM_DATA_PATH`
 * (default `~/.terraphim`), like the Rust crate's default settings.
 *
 * Comments here must not contain a dollar sign: the Rust crate expands
 * variables over the whole file, comments included, and fails on unset ones.
 */
export const DEFAULT_SETTINGS_TOML = `# Terraphim device settings, written on first run.
# Read by terraphim-persistence (TypeScript) and by the Rust terraphim_settings crate.
#
# Values may start with ~ (the home folder) and may reference environment
# variables, with a default after :- as in default_data_path below.
# Environment overrides: TERRAPHIM_SERVER_HOSTNAME, TERRAPHIM_API_ENDPOINT,
# TERRAPHIM_INITIALIZED, TERRAPHIM_DEFAULT_DATA_PATH, and
# TERRAPHIM_PROFILE_<NAME>_<KEY> for a key of a profile.

server_hostname = "127.0.0.1:8000"
api_endpoint = "http://localhost:8000/api"
initialized = "\${TERRAPHIM_INITIALIZED:-false}"
default_data_path = "\${TERRAPHIM_DATA_PATH:-~/.terraphim}"

# Fast in-process cache (not persistent): reads are answered here first.
[profiles.memory]
type = "memory"

# Durable local store (SQLite, WAL mode).
[profiles.sqlite]
type = "sqlite"
datadir = "\${TERRAPHIM_DATA_PATH:-~/.terraphim}/sqlite"
connection_string = "\${TERRAPHIM_DATA_PATH:-~/.terraphim}/sqlite/terraphim.db"
table = "terraphim_kv"
`;

/** Defaults for top-level fields a settings file leaves out (raw, expanded like file values). */
export const TOP_LEVEL_DEFAULTS = {
  server_hostname: "127.0.0.1:8000",
  api_endpoint: "http://localhost:8000/api",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a settings-file variable reference, expanded by parseSettings
  initialized: "${TERRAPHIM_INITIALIZED:-false}",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a settings-file variable reference, expanded by parseSettings
  default_data_path: "${TERRAPHIM_DATA_PATH:-~/.terraphim}",
} as const;

/**
 * The default settings with their data under `dataPath`: a `memory` cache
 * over a `sqlite` store at `<dataPath>/sqlite/terraphim.db`. The same
 * settings {@link DEFAULT_SETTINGS_TOML} gives when `TERRAPHIM_DATA_PATH` is `dataPath`.
 *
 * @example
 * const settings = defaultSettings("/var/lib/myapp");
 */
export function defaultSettings(dataPath: string): DeviceSettings {
  // "/" as in the Rust default file (which appends "/sqlite"); Windows accepts it too.
  const base = dataPath.length > 1 ? dataPath.replace(/[\\/]+$/, "") : dataPath;
  return {
    serverHostname: TOP_LEVEL_DEFAULTS.server_hostname,
    apiEndpoint: TOP_LEVEL_DEFAULTS.api_endpoint,
    initialized: false,
    defaultDataPath: dataPath,
    profiles: {
      memory: { type: "memory" },
      sqlite: {
        type: "sqlite",
        datadir: `${base}/sqlite`,
        connection_string: `${base}/sqlite/terraphim.db`,
        table: "terraphim_kv",
      },
    },
    profileErrors: {},
    warnings: [],
  };
}

/**
 * Settings with a single `memory` profile: nothing touches the disk. For
 * tests and throwaway runs (the Rust crate's `create_memory_only_device_settings`).
 */
export function memoryOnlySettings(): DeviceSettings {
  return {
    serverHostname: "localhost",
    apiEndpoint: "http://localhost:8080",
    initialized: true,
    defaultDataPath: join(tmpdir(), "terraphim_test"),
    profiles: { memory: { type: "memory" } },
    profileErrors: {},
    warnings: [],
  };
}
