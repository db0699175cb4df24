/**
 * The optional peer dependencies: native or heavy clients that only some
 * profiles need, installed by the user when one does (as Keyv and unstorage
 * users install their stores' clients), loaded on first use. A missing one is
 * a {@link ProfileError} naming the exact install command.
 *
 * @module
 */
import { createRequire } from "node:module";
import { PersistenceError, ProfileError } from "./errors.js";
import { installCommand } from "./runtime.js";

/** An optional peer: the version to install and what needs it. */
export interface OptionalPeer {
  /** The version (or major) to install: `opendal` exactly 0.49.1 (0.49.3+ needs glibc 2.38). */
  readonly version: string;
  /** What needs it, in the words of an error message. */
  readonly neededBy: string;
}

/** Every optional peer, by package name. */
export const OPTIONAL_PEERS = Object.freeze({
  opendal: { version: "0.49.1", neededBy: "the redb, sled, s3 and other OpenDAL schemes" },
  mysql2: { version: "3", neededBy: "the mysql scheme (MySQL, MariaDB)" },
  "better-sqlite3": { version: "12", neededBy: "sqlite on a runtime without its own SQLite (Node before 22.13)" },
  "zstd-napi": {
    version: "0.0.13",
    neededBy: "values of 1 MiB or more on a runtime without zstd (Node before 22.15)",
  },
} satisfies Record<string, OptionalPeer>);

/** The name of an optional peer. */
export type OptionalPeerName = keyof typeof OPTIONAL_PEERS;

const require = createRequire(import.meta.url);

/** The command that installs `name` at the version this library needs (`npm install opendal@0.49.1`). */
export function peerInstallCommand(name: OptionalPeerName): string {
  return installCommand(`${name}@${OPTIONAL_PEERS[name].version}`);
}

/** Whether `name` resolves from this package (installed in the user's project or beside it). */
export function peerInstalled(name: OptionalPeerName): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** Where a peer is needed, for the error message: the profile, or `undefined` outside one (the codec). */
export interface PeerContext {
  /** The profile that needs it. */
  profile?: string | undefined;
  /** What in it needs it, e.g. `scheme "redb"`. */
  what: string;
}

/**
 * The error for a peer that is missing (names the install command) or that
 * failed to load (a native binary for another platform or Node version).
 */
export function peerError(name: OptionalPeerName, context: PeerContext, cause: unknown): PersistenceError {
  const where = context.profile === undefined ? context.what : `profile "${context.profile}": ${context.what}`;
  // Node: (ERR_)MODULE_NOT_FOUND "Cannot find module/package 'x'"; Bun and Deno say the same in other words.
  const text0 = String((cause as Error | undefined)?.message ?? cause);
  const missing = /cannot find|not found|could not resolve/i.test(text0) && text0.includes(name);
  const text = missing
    ? `${where} needs the optional package "${name}", which is not installed: run \`${peerInstallCommand(name)}\``
    : `${where} needs the package "${name}", which failed to load (reinstall it with \`${peerInstallCommand(name)}\`): ${(cause as Error)?.message ?? cause}`;
  return context.profile === undefined
    ? new PersistenceError(text, { cause })
    : new ProfileError(text, { profile: context.profile, cause });
}

/** Loads an optional peer with `require` (for synchronous callers). @throws the {@link peerError}. */
export function requirePeer<T>(name: OptionalPeerName, context: PeerContext, subpath = ""): T {
  try {
    return require(name + subpath) as T;
  } catch (cause) {
    throw peerError(name, context, cause);
  }
}
