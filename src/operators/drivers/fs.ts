import { randomBytes } from "node:crypto";
import { constants, mkdirSync, readdirSync, realpathSync, rmSync, statSync } from "node:fs";
import { lstat, mkdir, open, readdir, readFile, realpath, rename, unlink } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { BackendError, InvalidKeyError, NotFoundError, PersistenceError, ProfileError } from "../../errors.js";
import { FS_TMP_DIR as TMP_DIR, validateKey, validatePrefix } from "../../keys/index.js";
import type { Operator, OperatorCapabilities, StatResult } from "../types.js";
import { OpenState, toBytes } from "./_shared.js";

/** Options of the `fs` operator. */
export interface FsOperatorOptions {
  /** Folder holding one file per key (`a/b.json` -> `<root>/a/b.json`); created if missing. */
  root?: string;
  /** Alias of `root`, as some Rust profiles name it. */
  datadir?: string;
}

/** Temporary files of in-flight writes live here, inside the root (same file system, so rename is atomic). */
/** Temp files older than this when the driver opens are leftovers of a crashed write. */
const STALE_TMP_MS = 60_000;

const CAPABILITIES: OperatorCapabilities = Object.freeze({
  list: true,
  lastModified: true,
  durable: true,
  shared: true,
  syncRead: false,
});

const isCode = (err: unknown, ...codes: string[]) => codes.includes((err as { code?: string }).code ?? "");

/**
 * One file per key under `root`. Writes are atomic: a temp file is written,
 * fsynced and renamed over the target, then the folder is fsynced, so a crash
 * leaves either the old or the new value, never a torn one. Files are created
 * 0600 and folders 0700.
 */
export function fsOperator(options: FsOperatorOptions, profile = "fs"): Operator {
  const rootOpt = (options.root ?? options.datadir)?.trim();
  if (!rootOpt) throw new ProfileError(`profiles.${profile}.root: required for an fs profile`, { profile });
  const root = resolve(rootOpt);
  const tmpDir = join(root, TMP_DIR);
  try {
    mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
    // A write killed between creating its temp file and the rename leaves the file behind: sweep old ones.
    const cutoff = Date.now() - STALE_TMP_MS;
    for (const name of readdirSync(tmpDir)) {
      const file = join(tmpDir, name);
      const mtime = statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? Number.POSITIVE_INFINITY;
      if (mtime < cutoff) rmSync(file, { force: true });
    }
  } catch (err) {
    throw new ProfileError(`Cannot create fs root ${root} for profile "${profile}": ${(err as Error).message}`, {
      profile,
      cause: err,
    });
  }
  const state = new OpenState("fs");
  const rootReal = realpathSync(root);

  /**
   * Keys never reach outside the root, not even through a symbolic link
   * planted inside it: the deepest existing folder on the path must resolve
   * inside the root (checked before any folder is created), and the final
   * component is opened without following links.
   */
  async function confine(full: string, key: string): Promise<void> {
    let dir = dirname(full);
    for (;;) {
      try {
        const real = await realpath(dir);
        if (real !== rootReal && !real.startsWith(rootReal + sep)) {
          throw new InvalidKeyError(`Key "${key}" leads outside the fs root through a symbolic link`, { profile, key });
        }
        return;
      } catch (err) {
        if (!isCode(err, "ENOENT") || dir === root) throw err;
        dir = dirname(dir);
      }
    }
  }
  const NOFOLLOW_READ = constants.O_RDONLY | constants.O_NOFOLLOW;

  const pathOf = (key: string): string => {
    validateKey(key, profile);
    if (key === TMP_DIR || key.startsWith(`${TMP_DIR}/`)) {
      throw new InvalidKeyError(`Invalid key "${key}": ${TMP_DIR}/ is reserved by the fs driver`, { profile, key });
    }
    state.check(key);
    const full = join(root, ...key.split("/"));
    // validateKey already forbids `..`; this is the belt to its braces.
    if (!full.startsWith(root + sep)) throw new InvalidKeyError(`Key "${key}" escapes the root`, { profile, key });
    return full;
  };
  const fail = (what: string, key: string | undefined, err: unknown): never => {
    if (err instanceof PersistenceError) throw err;
    if (isCode(err, "ELOOP") && key !== undefined) {
      throw new InvalidKeyError(`Key "${key}" is a symbolic link in the fs root; links are not followed`, {
        profile,
        key,
      });
    }
    if (isCode(err, "ENOENT", "ENOTDIR", "EISDIR") && key !== undefined && what !== "write") {
      throw new NotFoundError(`Key "${key}" not found in fs ${root}`, { profile, key, cause: err });
    }
    throw new BackendError(`fs ${what}${key ? ` of "${key}"` : ""} failed: ${(err as Error).message}`, {
      profile,
      key,
      cause: err,
      transient: isCode(err, "EAGAIN", "EBUSY", "EMFILE", "ENFILE"),
    });
  };

  async function syncDir(dir: string): Promise<void> {
    const fh = await open(dir, constants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async function walk(dir: string, rel: string, out: string[]): Promise<void> {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isCode(err, "ENOENT", "ENOTDIR")) return;
      throw err;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (r !== TMP_DIR) await walk(join(dir, e.name), r, out);
      } else if (e.isFile()) out.push(r);
    }
  }

  return {
    scheme: "fs",
    capabilities: CAPABILITIES,
    async read(key) {
      const full = pathOf(key);
      try {
        await confine(full, key);
        return await readFile(full, { flag: NOFOLLOW_READ });
      } catch (err) {
        return fail("read", key, err);
      }
    },
    async write(key, data) {
      const full = pathOf(key);
      const bytes = toBytes(data);
      const tmp = join(tmpDir, `${randomBytes(8).toString("hex")}.tmp`);
      try {
        const dir = resolve(full, "..");
        await confine(full, key);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
        try {
          await fh.writeFile(bytes);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, full);
        await syncDir(dir);
      } catch (err) {
        await unlink(tmp).catch(() => {});
        fail("write", key, err);
      }
    },
    async stat(key): Promise<StatResult> {
      const full = pathOf(key);
      try {
        await confine(full, key);
        const st = await lstat(full);
        if (!st.isFile()) throw Object.assign(new Error("not a file"), { code: "EISDIR" });
        return { contentLength: st.size, lastModified: st.mtime };
      } catch (err) {
        return fail("stat", key, err);
      }
    },
    async delete(key) {
      const full = pathOf(key);
      try {
        await unlink(full);
      } catch (err) {
        if (!isCode(err, "ENOENT", "ENOTDIR")) fail("delete", key, err);
      }
    },
    async exists(key) {
      const full = pathOf(key);
      try {
        await confine(full, key);
        return (await lstat(full)).isFile();
      } catch (err) {
        if (isCode(err, "ENOENT", "ENOTDIR")) return false;
        return fail("exists", key, err);
      }
    },
    async list(prefix) {
      const p = validatePrefix(prefix, profile);
      state.check();
      // Walk only the folder the prefix names (up to its last `/`), then filter.
      const cut = p.lastIndexOf("/");
      const base = cut < 0 ? "" : p.slice(0, cut);
      const out: string[] = [];
      try {
        await walk(base ? join(root, ...base.split("/")) : root, base, out);
      } catch (err) {
        fail("list", undefined, err);
      }
      return out.filter((k) => k.startsWith(p)).sort();
    },
    async close() {
      state.close();
    },
  };
}
