/** {@link DeviceSettings} -> `settings.toml` text the Rust crate reads. */
import { stringify } from "smol-toml";
import type { DeviceSettings, ProfileSettings } from "./types.js";

/**
 * Serialises settings in the Rust `terraphim_settings` format: `server_hostname`,
 * `api_endpoint`, `initialized` (a TOML boolean), `default_data_path`, and a
 * `[profiles.<name>]` table of strings per profile (`type` first).
 *
 * Writes the values as they are, already expanded: environment references
 * and overrides are not restored, profiles in `profileErrors` are left out,
 * and a `$NAME` or `${...}` inside a value (a password, say) would be expanded
 * again when the file is read (the format has no escape for `$`).
 * To write a fresh file, prefer {@link DEFAULT_SETTINGS_TOML}.
 */
export function toToml(settings: DeviceSettings): string {
  const profiles: Record<string, ProfileSettings> = {};
  for (const [name, options] of Object.entries(settings.profiles)) {
    const { type, ...rest } = options;
    profiles[name] = type === undefined ? { ...rest } : { type, ...rest };
  }
  return stringify({
    server_hostname: settings.serverHostname,
    api_endpoint: settings.apiEndpoint,
    initialized: settings.initialized,
    default_data_path: settings.defaultDataPath,
    profiles,
    ...(settings.coherence ? { coherence: settings.coherence } : {}),
  });
}
