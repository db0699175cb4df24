/**
 * Runs the built CLI (dist/cli/bin.js) as a subprocess with a temp HOME,
 * settings folder and data folder. `ensureBuilt` rebuilds dist when any
 * source file is newer, under a lock so that parallel test files build once.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The built CLI entry point. */
export const CLI = join(ROOT, "dist", "cli", "bin.js");

/** Whether every `src/**.ts` has a `dist/**.js` at least as new. */
function distIsFresh(): boolean {
  const src = join(ROOT, "src");
  const check = (dir: string): boolean => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!check(p)) return false;
      } else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) {
        const out = join(ROOT, "dist", relative(src, p).replace(/\.ts$/, ".js"));
        let built: number;
        try {
          built = statSync(out).mtimeMs;
        } catch {
          return false;
        }
        if (built < statSync(p).mtimeMs) return false;
      }
    }
    return true;
  };
  return check(src);
}

/** Builds dist (tsc -p tsconfig.build.json) unless it is fresh; one build at a time across test files. */
export async function ensureBuilt(): Promise<void> {
  if (distIsFresh()) return;
  const lock = join(ROOT, "node_modules", ".cache", "tp-cli-build.lock");
  mkdirSync(join(ROOT, "node_modules", ".cache"), { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock older than 3 minutes belongs to a build that died.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 180_000) rmdirSync(lock);
      } catch {}
      if (Date.now() > deadline) throw new Error(`timed out waiting for the build lock ${lock}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    if (distIsFresh()) return;
    const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
    try {
      await run(process.execPath, [tsc, "-p", join(ROOT, "tsconfig.build.json")], { cwd: ROOT });
    } catch (err) {
      // tsc still emits on type errors (elsewhere in a tree being edited): run what was built.
      const e = err as { stdout?: string };
      console.warn(`tsc reported errors while building dist for the CLI tests:\n${e.stdout ?? err}`);
    }
  } finally {
    rmdirSync(lock);
  }
}

/** A temp HOME, settings folder and data folder, and an environment pointing at them. */
export interface CliEnv {
  home: string;
  settingsDir: string;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  /** Writes `settings.toml` into the settings folder. */
  writeSettings(toml: string): void;
  /** Removes the temp folders. */
  cleanup(): void;
}

/** Creates a fresh {@link CliEnv}; inherited `TERRAPHIM_*` variables are dropped. */
export function cliEnv(): CliEnv {
  const base = mkdtempSync(join(tmpdir(), "tp-cli-"));
  const home = join(base, "home");
  const settingsDir = join(base, "settings");
  const dataDir = join(base, "data");
  for (const d of [home, settingsDir, dataDir]) mkdirSync(d, { recursive: true });
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("TERRAPHIM_")) env[k] = v;
  Object.assign(env, {
    HOME: home,
    XDG_CONFIG_HOME: "",
    TERRAPHIM_SETTINGS_PATH: settingsDir,
    TERRAPHIM_DATA_PATH: dataDir,
  });
  return {
    home,
    settingsDir,
    dataDir,
    env,
    writeSettings: (toml) => writeFileSync(join(settingsDir, "settings.toml"), toml, { mode: 0o600 }),
    cleanup: () => rmSync(base, { recursive: true, force: true }),
  };
}

/** What a CLI run printed and how it ended. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link cli}. */
export interface CliOptions {
  env: NodeJS.ProcessEnv;
  /** Text written to stdin (else stdin is closed at once). */
  input?: string;
  timeoutMs?: number;
  /** Called with the child once it started (to kill it). */
  onSpawn?: (child: ChildProcess) => void;
}

/** Runs `node dist/cli/bin.js ...args`. */
export function cli(args: readonly string[], options: CliOptions): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: options.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`CLI ${args.join(" ")} did not finish in ${options.timeoutMs ?? 60_000} ms\n${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
    options.onSpawn?.(child);
  });
}

/** Parses the JSON a `--json` run printed, with the run's output in the error when it is not JSON. */
export function json<T = Record<string, unknown>>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`expected JSON on stdout (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

/** TOML for an s3 profile on an s3rver instance. */
export function s3Profile(name: string, options: Record<string, string>): string {
  return `[profiles.${name}]\ntype = "s3"\n${Object.entries(options)
    .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
    .join("\n")}\n`;
}
