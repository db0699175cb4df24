import { closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { BackendError, NotFoundError, PersistenceError, ProfileError } from "../../errors.js";
import { validateKey, validatePrefix } from "../../keys/index.js";
import type { Operator, OperatorCapabilities, StatResult, StoredValue } from "../types.js";
import { OpenState, toBytes } from "./_shared.js";
import { openSqliteDatabase, type SqliteDatabase, sqliteErrorCode, withSqliteCode } from "./_sqlite-engine.js";

/** Options of the `sqlite` operator: the keys of a Rust `[profiles.<name>]` sqlite table. */
export interface SqliteOperatorOptions {
  /** Folder of the database; created if missing. Used for the file when `connection_string` is absent. */
  datadir?: string;
  /**
   * Path of the database file, optionally with a `?query` (ignored) and a
   * `sqlite://` or `file:` prefix, as the Rust settings allow.
   * @default `<datadir>/terraphim.db`
   */
  connection_string?: string;
  /**
   * Table holding the values, `(key TEXT PRIMARY KEY, value BLOB)` as the Rust crate lays it out.
   * @default "terraphim_kv"
   */
  table?: string;
  /** Milliseconds to wait for a lock held by another connection. @default "5000" */
  busy_timeout_ms?: string;
}

const CAPABILITIES: OperatorCapabilities = Object.freeze({
  list: true,
  lastModified: false,
  durable: true,
  shared: true,
  syncRead: true,
});

/** Keys per SELECT in readManyStoredSync (measured: 32 reads ~1.6x faster per key than one at a time). */
const MANY_CHUNK = 32;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Resolves the database file from Rust-style options. Exported for the CLI and tests. */
export function sqliteFilePath(options: SqliteOperatorOptions, profile = "sqlite"): string {
  const cs = options.connection_string?.trim();
  if (cs) {
    const path = cs
      .replace(/^sqlite:\/\//, "")
      .replace(/^file:/, "")
      .replace(/\?.*$/, "");
    if (!path) throw new ProfileError(`profiles.${profile}.connection_string: no file path in it`, { profile });
    if (path === ":memory:") return path;
    return resolve(path);
  }
  if (options.datadir?.trim()) return resolve(options.datadir.trim(), "terraphim.db");
  throw new ProfileError(`profiles.${profile}: a sqlite profile needs \`datadir\` or \`connection_string\``, {
    profile,
  });
}

/**
 * A store in one SQLite table, through the runtime's own SQLite (`node:sqlite`
 * on Node 22.13+ and Deno, `bun:sqlite` on Bun; better-sqlite3, an optional
 * peer, elsewhere): one library per process, since two SQLite copies in one
 * process can break each other's POSIX locks. WAL, `synchronous=NORMAL`,
 * UPSERT writes, statements prepared once.
 */
export function sqliteOperator(options: SqliteOperatorOptions, profile = "sqlite"): Operator {
  const table = options.table?.trim() || "terraphim_kv";
  if (!IDENTIFIER.test(table)) {
    throw new ProfileError(
      `Expected \`table\` in profile "${profile}" to be a SQL identifier (letters, digits, _), got ${JSON.stringify(table)}`,
      { profile },
    );
  }
  const busy = Number(options.busy_timeout_ms ?? "5000");
  if (!Number.isInteger(busy) || busy < 0) {
    throw new ProfileError(
      `profiles.${profile}.busy_timeout_ms: expected a non-negative integer, got "${options.busy_timeout_ms}"`,
      { profile },
    );
  }
  const file = sqliteFilePath(options, profile);
  let db: SqliteDatabase;
  try {
    if (options.datadir?.trim()) mkdirSync(resolve(options.datadir.trim()), { recursive: true, mode: 0o700 });
    if (file !== ":memory:") {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      // Create the file ourselves so it is never world-readable (SQLite gives -wal/-shm the same mode).
      // An existing file on a read-only file system is opened read-only (the storage sees why on its first write).
      if (!existsSync(file)) closeSync(openSync(file, "a", 0o600));
    }
    db = openSqliteDatabase(file, busy, profile);
    try {
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
    } catch (err) {
      // SQLite fell back to a read-only connection (read-only file system, no permission): reads still work.
      if (sqliteErrorCode(err) !== "SQLITE_READONLY") throw err;
    }
    db.exec(`CREATE TABLE IF NOT EXISTS ${table} (key TEXT PRIMARY KEY, value BLOB)`);
  } catch (err) {
    if (err instanceof PersistenceError) throw err;
    throw new ProfileError(`Cannot open sqlite database ${file} for profile "${profile}": ${(err as Error).message}`, {
      profile,
      cause: withSqliteCode(err),
    });
  }

  const sGet = db.value(`SELECT value FROM ${table} WHERE key = ?`);
  const sLen = db.value(`SELECT length(value) FROM ${table} WHERE key = ?`);
  const sHas = db.value(`SELECT 1 FROM ${table} WHERE key = ?`);
  const sPut = db.run(
    `INSERT INTO ${table} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
  );
  // Text in and out without a UTF-8 pass in JS: SQLite turns text into the same bytes (BLOB, as
  // the Rust crate stores them) and back. Only where the database encoding is UTF-8.
  const utf8 = db.pragma("encoding") === "UTF-8";
  const sGetText = db.value(`SELECT CAST(value AS TEXT) FROM ${table} WHERE key = ?`);
  const sPutText = db.run(
    `INSERT INTO ${table} (key, value) VALUES (?, CAST(? AS BLOB)) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
  );
  const sGetMany = db.rows(
    `SELECT key, CAST(value AS TEXT) FROM ${table} WHERE key IN (${Array(MANY_CHUNK).fill("?").join(", ")})`,
  );
  const sDel = db.run(`DELETE FROM ${table} WHERE key = ?`);
  const sFrom = db.column(`SELECT key FROM ${table} WHERE key >= ? ORDER BY key`);
  const state = new OpenState("sqlite");

  const fail = (what: string, key: string | undefined, err: unknown): never => {
    const code = sqliteErrorCode(err) ?? "";
    throw new BackendError(`sqlite ${what}${key ? ` of "${key}"` : ""} failed in ${file}: ${(err as Error).message}`, {
      profile,
      key,
      cause: withSqliteCode(err),
      transient: code === "SQLITE_BUSY" || code === "SQLITE_LOCKED",
    });
  };
  const run = <T>(what: string, key: string | undefined, fn: () => T): T => {
    state.check(key);
    try {
      return fn();
    } catch (err) {
      return fail(what, key, err);
    }
  };
  const asBytes = (v: unknown): Uint8Array =>
    typeof v === "string" ? toBytes(v) : ((v as Uint8Array) ?? new Uint8Array(0));
  const readSync = (path: string): Uint8Array | undefined => {
    validateKey(path, profile);
    const v = run("read", path, () => sGet(path));
    return v === undefined ? undefined : asBytes(v);
  };

  const readBytesStored = (path: string): StoredValue | undefined => {
    const data = readSync(path);
    return data === undefined ? undefined : { data, size: data.length };
  };
  /**
   * A value read as text (`CAST(value AS TEXT)`). V8 turns every invalid UTF-8 sequence into
   * U+FFFD, so text without one stands for the stored bytes exactly; text with one (invalid
   * bytes, or a real U+FFFD) or NULL is read again as bytes.
   */
  const fromText = (path: string, text: string | null): StoredValue | undefined =>
    text === null || text.includes("\uFFFD")
      ? readBytesStored(path)
      : // (Counting the bytes here is cheaper than having SQLite return the length: a row array costs more.)
        { data: text, size: Buffer.byteLength(text, "utf8") };

  const readStoredSync = (path: string): StoredValue | undefined => {
    if (!utf8) return readBytesStored(path);
    validateKey(path, profile);
    state.check(path);
    let text: string | null | undefined;
    try {
      text = sGetText(path) as string | null | undefined;
    } catch (err) {
      return fail("read", path, err);
    }
    return text === undefined ? undefined : fromText(path, text);
  };

  const readManyStoredSync = (paths: readonly string[]): (StoredValue | undefined)[] => {
    const out = new Array<StoredValue | undefined>(paths.length);
    if (!utf8) {
      for (let i = 0; i < paths.length; i++) out[i] = readStoredSync(paths[i]!);
      return out;
    }
    for (const p of paths) validateKey(p, profile);
    state.check();
    const args = new Array<string>(MANY_CHUNK);
    const found = new Map<string, string | null>();
    for (let start = 0; start < paths.length; start += MANY_CHUNK) {
      const end = Math.min(start + MANY_CHUNK, paths.length);
      // One statement shape: a short last chunk repeats its last key (IN ignores duplicates).
      for (let j = 0; j < MANY_CHUNK; j++) args[j] = paths[Math.min(start + j, end - 1)]!;
      let rows: [string, string | null][];
      try {
        rows = sGetMany(...args) as [string, string | null][];
      } catch (err) {
        return fail("read", paths[start], err);
      }
      found.clear();
      for (const [k, text] of rows) found.set(k, text);
      for (let i = start; i < end; i++) {
        const path = paths[i]!;
        const text = found.get(path);
        out[i] = text === undefined ? undefined : fromText(path, text);
      }
    }
    return out;
  };

  const writeSync = (path: string, data: Uint8Array | string): void => {
    validateKey(path, profile);
    // A lone surrogate has no UTF-8 form: such text goes through TextEncoder (U+FFFD), as before.
    if (typeof data === "string" && utf8 && data.isWellFormed()) {
      state.check(path);
      try {
        sPutText(path, data);
      } catch (err) {
        fail("write", path, err);
      }
      return;
    }
    const b = toBytes(data);
    run("write", path, () => sPut(path, Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
  };

  return {
    scheme: "sqlite",
    capabilities: CAPABILITIES,
    readSync,
    readStoredSync,
    readManyStoredSync,
    async read(path) {
      const v = readSync(path);
      if (v === undefined)
        throw new NotFoundError(`Key "${path}" not found in sqlite ${table}`, { profile, key: path });
      return v;
    },
    writeSync,
    async write(path, data) {
      writeSync(path, data);
    },
    async stat(path): Promise<StatResult> {
      validateKey(path, profile);
      const n = run("stat", path, () => sLen(path)) as number | null | undefined;
      if (n === undefined)
        throw new NotFoundError(`Key "${path}" not found in sqlite ${table}`, { profile, key: path });
      return { contentLength: n ?? 0 };
    },
    async delete(path) {
      validateKey(path, profile);
      run("delete", path, () => sDel(path));
    },
    async exists(path) {
      validateKey(path, profile);
      return run("exists", path, () => sHas(path)) !== undefined;
    },
    async list(prefix) {
      const p = validatePrefix(prefix, profile);
      return run("list", undefined, () => {
        // Keys sort by their UTF-8 bytes, so every match follows `p` contiguously.
        const out: string[] = [];
        for (const k of sFrom(p) as Iterable<string>) {
          if (!k.startsWith(p)) break;
          out.push(k);
        }
        return out;
      });
    },
    async close() {
      if (!state.close()) return;
      // Leave one self-contained file (no -wal / -shm): SQLite cannot open a WAL database read-only once
      // its -shm is gone, so a store on media remounted read-only would be lost to readers. The next
      // read-write open (ours or the Rust crate's) switches it back to WAL. Best effort: while another
      // connection holds the file it stays in WAL, which that connection still serves.
      try {
        db.pragma("journal_mode = DELETE");
      } catch {
        // Busy or read-only: the file keeps WAL, as before.
      }
      db.close();
    },
  };
}
