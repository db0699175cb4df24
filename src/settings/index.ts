/**
 * Device settings: the `settings.toml` of the Rust `terraphim_settings` crate,
 * with `~` / `${VAR:-default}` expansion, `TERRAPHIM_` environment overrides,
 * a default file written on first run, and per-profile errors.
 */

export { isSecretKey } from "./_secrets.js";
export {
  type CoherenceConfig,
  type CoherenceSettings,
  type CoherenceType,
  checkCoherence,
} from "./coherence.js";
export { DEFAULT_SETTINGS_TOML, defaultSettings, memoryOnlySettings } from "./defaults.js";
export { defaultSettingsDir, loadSettings, resolveSettingsFile } from "./load.js";
export { parseSettings } from "./parse.js";
export { toToml } from "./serialize.js";
export type {
  DeviceSettings,
  LoadSettingsOptions,
  ParseSettingsOptions,
  ProfileSettings,
  SettingsEnv,
} from "./types.js";
