/**
 * The files of the OpenDAL stores that live in one file or folder (redb, sled):
 * where they are, who may read them, and a redb database file that appears
 * whole or not at all.
 *
 * redb creates a database in place: it sizes the new file, writes its pages,
 * and writes the header's magic bytes last. A process killed in between (a
 * deploy, an OOM kill during the first start) leaves a file without the magic
 * that redb then refuses for good ("invalid data"), though it never held a
 * value. So a new database is created under a temporary name beside the
 * target and linked into place once redb has finished it; the native handle
 * opened on the temporary name keeps the same file (and its lock), now under
 * the real name. A kill before the link leaves only the temporary file, which
 * the next open removes.
 */
import {
  chmodSync,
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Operator as NativeOperator } from "opendal";
import { PersistenceError, ProfileError } from "../../errors.js";

/** The first bytes of every complete redb file. */
const REDB_MAGIC = Buffer.from([0x72, 0x65, 0x64, 0x62, 0x1a, 0x0a, 0xa9, 0x0d, 0x0a]);
const CREATING = ".tp-creating-";

/**
 * Opens the redb database `file` through `build(datadir)`, creating it
 * atomically when it does not exist yet.
 *
 * @throws ProfileError when `file` exists but is not a redb database (no redb
 *   header), naming the file; errors of `build` as they are.
 */
export function openRedbFile(
  file: string,
  profile: string,
  build: (datadir: string) => NativeOperator,
): NativeOperator {
  removeAbandoned(file);
  const size = statSync(file, { throwIfNoEntry: false })?.size;
  if (size === undefined) return createRedbFile(file, build);
  if (size > 0 && !hasMagic(file)) {
    throw new ProfileError(
      `profile "${profile}": "${file}" is not a redb database (it has no redb header): a file whose creation was interrupted by an older version, or a file of another kind. Nothing was changed; move it away to start a new database there`,
      { profile },
    );
  }
  return build(file);
}

function createRedbFile(file: string, build: (datadir: string) => NativeOperator): NativeOperator {
  const temp = `${file}${CREATING}${process.pid}-${Date.now().toString(36)}`;
  let native: NativeOperator;
  try {
    native = build(temp);
  } catch (err) {
    unlinkQuietly(temp);
    throw err;
  }
  try {
    linkSync(temp, file);
  } catch (err) {
    unlinkQuietly(temp);
    // Another process created the file meanwhile: open theirs (its lock decides who may).
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return build(file);
    throw err;
  }
  unlinkQuietly(temp);
  syncDirectory(dirname(file));
  return native;
}

/** Temporary files of creations whose process is gone (killed before the link). */
function removeAbandoned(file: string): void {
  const prefix = `${basename(file)}${CREATING}`;
  let names: string[];
  try {
    names = readdirSync(dirname(file));
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number.parseInt(name.slice(prefix.length), 10);
    if (!alive(pid)) unlinkQuietly(join(dirname(file), name));
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function hasMagic(file: string): boolean {
  const head = Buffer.alloc(REDB_MAGIC.length);
  const fd = openSync(file, "r");
  try {
    return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(REDB_MAGIC);
  } finally {
    closeSync(fd);
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Makes the new directory entry durable (a power loss after open keeps the file). */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Best effort: some file systems cannot sync a directory.
  }
}

/** redb and sled create their files world-readable (0644): make them the owner's only. */
export function restrictAccess(scheme: string, path: string): void {
  try {
    if (scheme === "redb") chmodSync(path, 0o600);
    else {
      chmodSync(path, 0o700);
      for (const entry of readdirSync(path, { withFileTypes: true, recursive: true })) {
        const full = join(entry.parentPath, entry.name);
        chmodSync(full, entry.isDirectory() ? 0o700 : 0o600);
      }
    }
  } catch {
    // Best effort: a store on a file system without modes still works.
  }
}

/** The file (redb) or directory (sled) a store locks, resolved for use as a registry key; creates its parent. */
export function lockedFile(scheme: string, config: Record<string, string>, profile: string): string | undefined {
  if ((scheme !== "redb" && scheme !== "sled") || !config.datadir) return undefined; // OpenDAL reports the missing datadir
  const path = config.datadir;
  try {
    if (scheme === "redb") {
      if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
        throw new ProfileError(
          `profiles.${profile}.datadir: expected the redb database file, got the directory "${path}"`,
          { profile },
        );
      }
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      return join(realpathSync(dirname(path)), basename(path));
    }
    mkdirSync(path, { recursive: true, mode: 0o700 });
    return realpathSync(path);
  } catch (err) {
    if (err instanceof PersistenceError) throw err;
    throw new ProfileError(`profiles.${profile}.datadir: cannot create "${path}": ${(err as Error).message}`, {
      profile,
      cause: err,
    });
  }
}
