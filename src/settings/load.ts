/** Finding, creating and reading the settings file. */
import { randomBytes } from "node:crypto";
import { chmod, link, mkdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { SettingsError } from "../errors.js";
import { expandTilde } from "./_expand.js";
import { homeDir, platformSettingsDir } from "./_paths.js";
import { DEFAULT_SETTINGS_TOML } from "./defaults.js";
import { parseSettingsText } from "./parse.js";
import type { DeviceSettings, LoadSettingsOptions, SettingsEnv } from "./types.js";

const SETTINGS_FILE = "settings.toml";

/**
 * The platform folder for `settings.toml`, the one the Rust crate uses
 * (`ProjectDirs::from("com", "aks", "terraphim")`): `$XDG_CONFIG_HOME/terraphim`
 * or `~/.config/terraphim` on Linux, `~/Library/Application Support/com.aks.terraphim`
 * on macOS, `%APPDATA%\aks\terraphim\config` on Windows.
 * `TERRAPHIM_SETTINGS_PATH` is not consulted here; see {@link resolveSettingsFile}.
 *
 * @param env Environment to read `HOME`, `XDG_CONFIG_HOME`, `APPDATA` from. @default process.env
 */
export function defaultSettingsDir(env: SettingsEnv = process.env): string {
  return platformSettingsDir(env);
}

/**
 * The settings file {@link loadSettings} reads: `path`, else
 * `TERRAPHIM_SETTINGS_PATH`, else {@link defaultSettingsDir}. A folder means
 * `settings.toml` inside it; a path that does not exist is taken as a file
 * when it ends in `.toml`, else as a folder. A leading `~` expands.
 */
export async function resolveSettingsFile(options: Pick<LoadSettingsOptions, "path" | "env"> = {}): Promise<string> {
  const env = options.env ?? process.env;
  const given = options.path ?? (env.TERRAPHIM_SETTINGS_PATH || undefined);
  if (given === undefined) return join(defaultSettingsDir(env), SETTINGS_FILE);
  const path = resolve(expandTilde(given, { env, home: homeDir(env), windows: process.platform === "win32" }));
  const info = await stat(path).catch(() => undefined);
  if (info?.isDirectory()) return join(path, SETTINGS_FILE);
  if (info !== undefined || path.toLowerCase().endsWith(".toml")) return path;
  return join(path, SETTINGS_FILE);
}

/**
 * Loads the device settings: finds the file (see {@link resolveSettingsFile}),
 * writes the default one there on first run (mode 0600, folder created; the
 * default is a `memory` cache over a `sqlite` store under `default_data_path`),
 * and parses it with {@link parseSettings}.
 *
 * `warnings` says when a file readable by every user holds credentials in clear.
 *
 * @throws {SettingsError} the file cannot be read or written, or is malformed
 *   (see {@link parseSettings}); per-profile problems are in `profileErrors` instead.
 * @example
 * const settings = await loadSettings();                       // ~/.config/terraphim/settings.toml
 * const local = await loadSettings({ path: "./config", writeDefault: false });
 */
export async function loadSettings(options: LoadSettingsOptions = {}): Promise<DeviceSettings> {
  const env = options.env ?? process.env;
  const file = await resolveSettingsFile({ path: options.path, env });
  let text = await readSettingsFile(file);
  if (text === undefined) {
    if (options.writeDefault === false) return parseSettingsText(DEFAULT_SETTINGS_TOML, { env }).settings;
    text = await writeDefaultFile(file);
  }
  const { settings, hasLiteralSecrets } = parseSettingsText(text, { env, source: file });
  if (hasLiteralSecrets && process.platform !== "win32") {
    const info = await stat(file).catch(() => undefined);
    if (info !== undefined && (info.mode & 0o004) !== 0) {
      settings.warnings?.push(
        `${file} holds credentials and is readable by every user on this machine; restrict it with: chmod 600 ${JSON.stringify(file)}`,
      );
    }
  }
  return settings;
}

async function readSettingsFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SettingsError(`Cannot read settings file ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Writes the default settings file without ever exposing a half-written one:
 * write a private temp file, then link it into place (fails if another
 * process got there first: its file wins) and fall back to rename where
 * the file system has no hard links.
 */
async function writeDefaultFile(file: string): Promise<string> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(temp, DEFAULT_SETTINGS_TOML, { mode: 0o600, flag: "wx" });
    await chmod(temp, 0o600); // in case of an unusual umask
    try {
      await link(temp, file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EEXIST") return (await readSettingsFile(file)) ?? DEFAULT_SETTINGS_TOML;
      if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EXDEV" && code !== "ENOSYS") throw e;
      await rename(temp, file);
    }
    return DEFAULT_SETTINGS_TOML;
  } catch (e) {
    throw new SettingsError(`Cannot write default settings file ${file}: ${(e as Error).message}`, { cause: e });
  } finally {
    await unlink(temp).catch(() => {});
  }
}
