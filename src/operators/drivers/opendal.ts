import { resolve } from "node:path";
import type { Entry, Operator as NativeOperator } from "opendal";
import {
  BackendError,
  LockedError,
  NotFoundError,
  PersistenceError,
  ProfileError,
  redactSecrets,
  registerSecret,
  UnsupportedError,
} from "../../errors.js";
import { validateKey, validatePrefix } from "../../keys/index.js";
import { peerError } from "../../optional-peers.js";
import type { Operator, OperatorCapabilities, StatResult } from "../types.js";
import { assertReachable, networkAddress } from "./_net.js";
import { lockedFile, openRedbFile, restrictAccess } from "./_opendal-files.js";
import { asBuffer, OpenState, redactedCopy, urlPassword } from "./_shared.js";
import { checkSqlIdentifiers } from "./_sql.js";

/** Extra context for {@link opendalOperator}. */
export interface OpendalOperatorContext {
  /** Profile name used in error messages. @default the scheme */
  profile?: string;
}

/** Where an error happened, for {@link translateOpendalError}. */
export interface OpendalErrorContext {
  /** Profile the operator belongs to. */
  profile?: string | undefined;
  /** Key the call concerned. */
  key?: string | undefined;
  /** The call: `open`, `read`, `write`, `stat`, `delete`, `exists`, `list`. */
  op: string;
}

/** Schemes whose data lives in RAM only. */
const VOLATILE_SCHEMES = new Set(["memory", "dashmap", "moka", "mini_moka", "mini-moka"]);
/** Schemes whose `stat` reports a modification time (object stores, file systems); key-value stores do not. */
const LAST_MODIFIED_SCHEMES = new Set(["s3", "gcs", "azblob", "azdls", "azfile", "oss", "cos", "obs", "b2", "fs"]);
/**
 * Schemes whose listing carries an ETag that is the MD5 of the bytes for a value written in
 * one part (S3's ListObjectsV2, 1,000 keys per call): a local copy can be checked against the
 * listing without reading the value. A multipart ETag (`<hex>-<parts>`) is no MD5: unknown.
 */
const LISTING_MD5_SCHEMES = new Set(["s3"]);
/** An S3 ETag that is an MD5: 32 hex digits, quoted. */
const MD5_ETAG = /^"?([0-9a-f]{32})"?$/i;
/** sled flushes every 500 ms (not configurable through the binding): `close()` waits this long after a write. */
const SLED_FLUSH_MS = 750;
/** Option keys whose values are credentials, kept out of every message. */
const SECRET_OPTION = /secret|password|token|private_key|credential/i;

/**
 * One native operator per redb file / sled directory per process: a second
 * native open of the same file fails on the store's own lock, and the binding
 * has no `close()` (the lock goes only when the native object is collected).
 * Kept on `globalThis` so that two copies of this module share it.
 */
interface FileHandle {
  native: NativeOperator;
  /** The options it was opened with; a reopen must match (the handle cannot be rebuilt). */
  signature: string;
  /** Whether an open wrapper holds it. */
  claimed: boolean;
  /** Last write or delete (ms since epoch), for sled's delayed flush. */
  lastChange: number;
}
const REGISTRY: unique symbol = Symbol.for("terraphim-persistence.opendal.files");
const registryHost = globalThis as typeof globalThis & { [REGISTRY]?: Map<string, FileHandle> };
registryHost[REGISTRY] ??= new Map();
const files = registryHost[REGISTRY];

/**
 * Opens an Apache OpenDAL operator (`new Operator(scheme, options)` from the
 * `opendal` Node binding, loaded only now) behind this library's
 * {@link Operator} interface: typed errors, key validation, capabilities as
 * data, a sorted recursive `list`, and `close()`.
 *
 * Options are the string values of a Rust `[profiles.<name>]` table, passed to
 * OpenDAL under the same names (the binding's redb, sled, s3, redis and
 * postgresql services use the Rust settings' keys), except:
 * - `type` is dropped, and so are empty values (an unset `${VAR}` expands to
 *   `""`, which OpenDAL would take as a real value);
 * - `root` defaults to `"/"` (not for `fs`, where OpenDAL requires one);
 * - redb: `datadir` is the database *file* and `table` is required; sled:
 *   `datadir` is a directory. Relative paths resolve against the working
 *   directory and missing parent directories are created;
 * - s3: when both `access_key_id` and `secret_access_key` are given,
 *   `disable_config_load` and `disable_ec2_metadata` default to `"true"` (the
 *   given keys are used as they are, with no lookup in `~/.aws` or the EC2
 *   metadata service, which hangs off EC2). Without explicit keys OpenDAL's
 *   own credential chain (environment, profile, IMDS) applies. An explicit
 *   value always wins.
 *
 * redb and sled files can be open once per process: opening a file that an
 * open operator holds throws {@link LockedError}; after `close()` the same
 * file opens again (the native handle is kept and reused, so the file stays
 * locked against *other processes* until this one exits). sled writes reach
 * disk up to 500 ms late: `close()` waits for that, and a `process.exit()`
 * before `close()` can lose recent writes.
 *
 * For `redis`, `postgresql` and `mysql` the server's port must answer a TCP
 * connect within 1.5 s, else a {@link ProfileError} (OpenDAL itself waits
 * ~30 s on a dead server).
 *
 * `opendal` is an optional peer dependency: without it, opening a profile is a
 * {@link ProfileError} naming the command that installs it.
 *
 * @throws ProfileError when the binding cannot be loaded, the options are
 *   invalid, or the server does not answer; LockedError as above.
 * @example
 * const op = await opendalOperator("redb", { datadir: "/tmp/terraphim.redb", table: "terraphim" });
 * await op.write("document_a.json", '{"id":"a"}');
 * await op.close();
 */
export async function opendalOperator(
  scheme: string,
  options: Record<string, string>,
  opts: OpendalOperatorContext = {},
): Promise<Operator> {
  const profile = opts.profile ?? scheme;
  const config = prepareOptions(scheme, options);
  checkSqlIdentifiers(scheme, config, profile);

  const address = networkAddress(scheme, config);
  if (address) await assertReachable(scheme, address.host, address.port, profile);

  let binding: typeof import("opendal");
  try {
    binding = await import("opendal");
  } catch (err) {
    // An optional peer: installed by the user whose profiles need it.
    throw peerError("opendal", { profile, what: `scheme "${scheme}"` }, err);
  }
  const build = (datadir?: string) => {
    try {
      return new binding.Operator(scheme, datadir === undefined ? config : { ...config, datadir });
    } catch (err) {
      throw translateOpendalError(err, { profile, op: "open" });
    }
  };

  const file = lockedFile(scheme, config, profile);
  if (file === undefined) return wrap(scheme, build(), profile, undefined, () => build());

  // The path is already the (resolved) registry key; compare the rest (table, root, tree).
  const signature = JSON.stringify(
    Object.entries(config)
      .filter(([k]) => k !== "datadir")
      .sort(),
  );
  const held = files.get(file);
  if (held) {
    if (held.claimed) {
      throw new LockedError(
        `profile "${profile}": ${scheme} file "${file}" is already open in this process; close() that operator first`,
        { profile },
      );
    }
    if (held.signature !== signature) {
      throw new ProfileError(
        `profile "${profile}": ${scheme} file "${file}" was opened earlier in this process with other options; its native handle cannot be reopened differently before the process exits`,
        { profile },
      );
    }
    held.claimed = true;
    return wrap(scheme, held.native, profile, held);
  }
  let native: NativeOperator;
  try {
    native = scheme === "redb" ? openRedbFile(file, profile, build) : build();
  } catch (err) {
    if (!(err instanceof PersistenceError)) {
      throw new ProfileError(`profile "${profile}": cannot open "${file}": ${(err as Error).message}`, {
        profile,
        cause: err,
      });
    }
    if (err instanceof LockedError) {
      throw new LockedError(`profile "${profile}": ${scheme} file "${file}" is locked by another process`, {
        profile,
        cause: err,
      });
    }
    throw err;
  }
  restrictAccess(scheme, file);
  const handle: FileHandle = { native, signature, claimed: true, lastChange: 0 };
  files.set(file, handle);
  return wrap(scheme, native, profile, handle);
}

/**
 * Turns an error thrown by the OpenDAL binding into this library's typed
 * errors. The binding throws plain `Error`s whose kind is only in the message
 * (`NotFound (permanent) at read, context: {...} => ...`):
 * NotFound → {@link NotFoundError}; Unsupported → {@link UnsupportedError};
 * a file lock (redb, sled) → {@link LockedError}; ConfigInvalid →
 * {@link ProfileError}; RateLimited or `(temporary)` → {@link BackendError}
 * with `transient: true`; anything else → {@link BackendError}.
 * Messages (also the `cause`'s) go through {@link redactSecrets}.
 * A {@link PersistenceError} is returned unchanged.
 */
export function translateOpendalError(err: unknown, context: OpendalErrorContext): PersistenceError {
  if (err instanceof PersistenceError) return err;
  const cause = redactedCopy(err);
  const text = cause.message;
  const kind = /^([A-Za-z]+) \((permanent|temporary|persistent)\)/.exec(text);
  const what = `${context.op}${context.key === undefined ? "" : ` "${context.key}"`}`;
  const message = `profile "${context.profile ?? "opendal"}": ${what} failed: ${text}`;
  const ctx = { profile: context.profile, key: context.key, cause };
  if (/Cannot acquire lock|could not acquire lock|Database already open/i.test(text)) {
    return new LockedError(message, ctx);
  }
  switch (kind?.[1]) {
    case "NotFound":
      return new NotFoundError(message, ctx);
    case "Unsupported":
      return new UnsupportedError(message, ctx);
    case "ConfigInvalid":
      return new ProfileError(message, ctx);
    case "RateLimited":
      return new BackendError(message, { ...ctx, transient: true });
    default:
      return new BackendError(message, { ...ctx, transient: kind?.[2] === "temporary" });
  }
}

function prepareOptions(scheme: string, options: Record<string, string>): Record<string, string> {
  const config: Record<string, string> = {};
  for (const [key, value] of Object.entries(options)) {
    if (key === "type" || value === undefined || value === null || value === "") continue;
    config[key] = String(value);
    if (SECRET_OPTION.test(key)) registerSecret(config[key]);
  }
  if (config.connection_string) registerSecret(urlPassword(config.connection_string));
  if (scheme !== "fs") config.root ??= "/";
  if ((scheme === "redb" || scheme === "sled") && config.datadir) config.datadir = resolve(config.datadir);
  if (scheme === "s3" && config.access_key_id && config.secret_access_key) {
    config.disable_config_load ??= "true";
    config.disable_ec2_metadata ??= "true";
  }
  return config;
}

function wrap(
  scheme: string,
  native: NativeOperator,
  profile: string,
  file?: FileHandle,
  rebuild?: () => NativeOperator,
): Operator {
  const cap = native.capability();
  const capabilities: OperatorCapabilities = Object.freeze({
    list: cap.list,
    lastModified: LAST_MODIFIED_SCHEMES.has(scheme),
    durable: !VOLATILE_SCHEMES.has(scheme),
    shared: cap.shared,
    syncRead: false,
    ...(LISTING_MD5_SCHEMES.has(scheme) && cap.list
      ? { digest: Object.freeze({ algorithm: "md5", source: "listing" } as const) }
      : {}),
  });
  const state = new OpenState(scheme);
  const key = (path: string) => {
    validateKey(path, profile);
    state.check(path);
    return path;
  };
  const call = async <T>(op: string, path: string | undefined, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      throw translateOpendalError(err, { profile, key: path, op });
    }
  };
  const changed = () => {
    if (file) file.lastChange = Date.now();
  };
  /** The entries of the keys under `prefix` (files only), by key. */
  const listed = async (prefix: string | undefined) => {
    const p = validatePrefix(prefix, profile);
    state.check();
    if (!capabilities.list) {
      // redb's native list() returns [] without error: never trust it.
      throw new UnsupportedError(`profile "${profile}": the ${scheme} backend cannot list keys`, { profile });
    }
    // List the deepest directory the prefix names, then filter: works the same on every service.
    const dir = p.slice(0, p.lastIndexOf("/") + 1);
    const entries = await call("list", p || undefined, () => native.list(dir, { recursive: true }));
    const out = new Map<string, Entry>();
    for (const entry of entries) {
      const path = entry.path().replace(/^\/+/, "");
      if (!path.endsWith("/") && path.startsWith(p)) out.set(path, entry);
    }
    return out;
  };

  return {
    scheme,
    capabilities,
    async read(path) {
      const k = key(path);
      return call("read", k, () => native.read(k));
    },
    async write(path, data) {
      const k = key(path);
      await call("write", k, () => native.write(k, asBuffer(data)));
      changed();
    },
    async stat(path): Promise<StatResult> {
      const k = key(path);
      const meta = await call("stat", k, () => native.stat(k));
      const modified = meta.lastModified;
      return {
        contentLength: Number(meta.contentLength ?? 0n),
        lastModified: modified ? new Date(modified) : undefined,
      };
    },
    async delete(path) {
      const k = key(path);
      await call("delete", k, () => native.delete(k));
      changed();
    },
    async exists(path) {
      const k = key(path);
      return call("exists", k, () => native.exists(k));
    },
    async list(prefix) {
      return [...(await listed(prefix)).keys()].sort();
    },
    ...(capabilities.digest && {
      /** Keys with the MD5 their ETag carries (undefined for a multipart or otherwise non-MD5 ETag). */
      async listDigests(prefix?: string) {
        const out = new Map<string, string | undefined>();
        for (const [path, entry] of await listed(prefix)) {
          out.set(path, MD5_ETAG.exec(entry.metadata().etag ?? "")?.[1]?.toLowerCase());
        }
        return out;
      },
    }),
    async close() {
      if (!state.close() || !file) return;
      file.claimed = false;
      const wait = file.lastChange + SLED_FLUSH_MS - Date.now();
      if (scheme === "sled" && wait > 0) await new Promise((r) => setTimeout(r, wait));
    },
    // A network client can stay wedged after an outage (seen with redis in 0.49.1: every call hangs
    // long after the server is back); a fresh native operator connects at once. Calls in flight on
    // the old one finish or fail on their own. File-backed stores keep their single handle.
    ...(rebuild && {
      reset() {
        if (!state.closed) native = rebuild();
      },
    }),
  };
}
