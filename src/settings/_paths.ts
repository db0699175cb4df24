/** Home and settings folders, looked up in an explicit environment (testable, never hard-wired to `process.env`). */
import { homedir } from "node:os";
import { isAbsolute, join, win32 } from "node:path";

type Env = Readonly<Record<string, string | undefined>>;

/** The home directory: `HOME` (or `USERPROFILE` on Windows) from `env`, else the OS's. */
export function homeDir(env: Env, platform: NodeJS.Platform = process.platform): string {
  const fromEnv = env.HOME || (platform === "win32" ? env.USERPROFILE : undefined);
  return fromEnv || homedir();
}

/**
 * The folder the Rust crate uses for `settings.toml` when none is given:
 * `directories::ProjectDirs::from("com", "aks", "terraphim").config_dir()`.
 * Sharing it means a Terraphim app in either language finds the same file.
 */
export function platformSettingsDir(env: Env, platform: NodeJS.Platform = process.platform): string {
  const home = homeDir(env, platform);
  if (platform === "win32") {
    return win32.join(env.APPDATA || win32.join(home, "AppData", "Roaming"), "aks", "terraphim", "config");
  }
  if (platform === "darwin") return join(home, "Library", "Application Support", "com.aks.terraphim");
  // The XDG spec (and the `directories` crate) ignore a relative XDG_CONFIG_HOME.
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(home, ".config"), "terraphim");
}
