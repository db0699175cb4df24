/**
 * The JavaScript runtime this process runs on, what it brings itself (SQLite,
 * zstd) and how its user installs a package: the data the drivers, the codec
 * and the CLI's `doctor` read, in one place.
 *
 * @module
 */
import { createRequire } from "node:module";

/** A runtime this library knows. */
export type RuntimeName = "node" | "bun" | "deno";

/** The runtime of this process and its version (`process.versions` of Node, Bun or Deno). */
export interface RuntimeInfo {
  /** `node`, `bun` or `deno`. */
  readonly name: RuntimeName;
  /** Its own version, e.g. `24.22.3`, `1.4.5`, `2.9.6`. */
  readonly version: string;
}

const versions = process.versions as NodeJS.ProcessVersions & { bun?: string; deno?: string };

/** The runtime of this process. */
export const RUNTIME: RuntimeInfo = Object.freeze(
  versions.bun
    ? { name: "bun" as const, version: versions.bun }
    : versions.deno
      ? { name: "deno" as const, version: versions.deno }
      : { name: "node" as const, version: versions.node },
);

/**
 * The command that adds `spec` (`opendal@0.49.1`) to the user's project with
 * the package manager they run (from `npm_config_user_agent`, which npm, pnpm,
 * yarn and bun set for scripts), else the runtime's own: `bun add`, `deno add
 * npm:`, `npm install`.
 */
export function installCommand(spec: string): string {
  const agent = process.env.npm_config_user_agent ?? "";
  if (agent.startsWith("pnpm/")) return `pnpm add ${spec}`;
  if (agent.startsWith("yarn/")) return `yarn add ${spec}`;
  if (agent.startsWith("bun/") || RUNTIME.name === "bun") return `bun add ${spec}`;
  if (RUNTIME.name === "deno") return `deno add npm:${spec}`;
  return `npm install ${spec}`;
}

const require = createRequire(import.meta.url);

/**
 * Loads a module of the runtime (`node:sqlite`, `bun:sqlite`) synchronously,
 * or returns `undefined` when this runtime has none. Node 22 announces
 * `node:sqlite` with an ExperimentalWarning on stderr: that one warning is
 * not printed (every other warning is).
 */
export function builtinModule<T>(id: string): T | undefined {
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === "string" ? warning : warning.message;
    const type = typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    if (type === "ExperimentalWarning" && /SQLite/i.test(text)) return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return require(id) as T;
  } catch {
    return undefined;
  } finally {
    process.emitWarning = emit;
  }
}
