/**
 * What a scheme needs installed to open, on this runtime: the runtime's own
 * module, a dependency of this package, or an optional peer the user installs
 * (with the command). Data, for `doctor` and for anyone planning an install.
 *
 * @module
 */
import { zstdDriverName } from "../_zstd-engine.js";
import { OPTIONAL_PEERS, peerInstallCommand, peerInstalled } from "../optional-peers.js";
import { RUNTIME, type RuntimeName } from "../runtime.js";
import { sqliteDriverName } from "./drivers/_sqlite-engine.js";

/** One thing a scheme needs. */
export interface Requirement {
  /** The module or npm package: `node:sqlite`, `ioredis`, `opendal`. */
  readonly module: string;
  /** `runtime`: built into this runtime; `dependency`: installed with this package; `optional peer`: installed by the user. */
  readonly source: "runtime" | "dependency" | "optional peer";
  /** Whether it can be loaded from here. */
  readonly installed: boolean;
  /** For an optional peer: the version to install and the command (`npm install opendal@0.49.1`). */
  readonly version?: string;
  readonly install?: string;
}

/** The runtime and the libraries the embedded default uses on it. */
export interface RuntimeSupport {
  readonly runtime: RuntimeName;
  readonly version: string;
  /** The SQLite library of `sqlite` profiles. */
  readonly sqlite: Requirement;
  /** The zstd library of values of 1 MiB or more. */
  readonly zstd: Requirement;
}

/** Network schemes served by regular dependencies (pure JS clients). */
const CLIENTS: Readonly<Record<string, string>> = { redis: "ioredis", postgresql: "pg" };
/** Schemes that need nothing beyond this package and the runtime. */
const BUILT_IN = new Set(["memory", "dashmap", "fs"]);

function peer(name: keyof typeof OPTIONAL_PEERS): Requirement {
  return {
    module: name,
    source: "optional peer",
    installed: peerInstalled(name),
    version: OPTIONAL_PEERS[name].version,
    install: peerInstallCommand(name),
  };
}

function sqliteRequirement(): Requirement {
  const driver = sqliteDriverName();
  return driver === "better-sqlite3" ? peer("better-sqlite3") : { module: driver, source: "runtime", installed: true };
}

/**
 * What opening a profile of `scheme` needs here: nothing for memory, dashmap
 * and fs; the runtime's SQLite (or better-sqlite3) for sqlite; ioredis or pg
 * (dependencies) for redis and postgresql; mysql2 (an optional peer) for
 * mysql; `opendal` (an optional peer) for every other scheme.
 */
export function schemeRequirements(scheme: string): Requirement[] {
  const s = scheme.toLowerCase();
  if (BUILT_IN.has(s)) return [];
  if (s === "sqlite") return [sqliteRequirement()];
  if (s === "mysql") return [peer("mysql2")];
  const client = CLIENTS[s];
  if (client) return [{ module: client, source: "dependency", installed: true }];
  return [peer("opendal")];
}

/** This runtime and the SQLite and zstd libraries the library uses on it. */
export function runtimeSupport(): RuntimeSupport {
  const zstd = zstdDriverName();
  return {
    runtime: RUNTIME.name,
    version: RUNTIME.version,
    sqlite: sqliteRequirement(),
    zstd: zstd === "zstd-napi" ? peer("zstd-napi") : { module: zstd, source: "runtime", installed: true },
  };
}
