/**
 * The raw floor for SQLite: this runtime's own SQLite library used directly
 * (`node:sqlite` on Node 22.13+ and Deno, `bun:sqlite` on Bun, better-sqlite3
 * on Node 20), the same library our sqlite driver uses here, with the same
 * pragmas, statements prepared once and an UPSERT. Text in, text out.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** One prepared statement's calls, as the scenarios use them. */
export interface RawSqlite {
  /** Which library. */
  driver: "node:sqlite" | "bun:sqlite" | "better-sqlite3";
  /** `INSERT ... ON CONFLICT(key) DO UPDATE SET value = excluded.value` */
  put: { run(key: string, value: string | Uint8Array): void };
  /** `SELECT value FROM kv WHERE key = ?`: the value, or undefined. */
  get: { get(key: string): string | undefined };
  /** `DELETE FROM kv WHERE key = ?`: whether a row went. */
  del: { run(key: string): boolean };
  exec(sql: string): void;
  close(): void;
}

const UPSERT = (t: string) =>
  `INSERT INTO ${t} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`;
const SELECT = (t: string) => `SELECT value FROM ${t} WHERE key = ?`;
const DELETE = (t: string) => `DELETE FROM ${t} WHERE key = ?`;
const SETUP = (t: string) =>
  `PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE IF NOT EXISTS ${t} (key TEXT PRIMARY KEY, value BLOB)`;
const changed = (r: unknown) => Number((r as { changes: number | bigint }).changes) > 0;

interface Stmt {
  run(...p: unknown[]): unknown;
  get(...p: unknown[]): unknown;
  values?(...p: unknown[]): unknown[][];
  pluck?(): Stmt;
  setReturnArrays?(on: boolean): void;
}
interface Db {
  prepare(sql: string): Stmt;
  exec(sql: string): unknown;
  close(): void;
}

/** The calls of {@link RawSqlite} on one library's statements. */
function calls(driver: RawSqlite["driver"], db: Db, put: Stmt, del: Stmt, get: RawSqlite["get"]["get"]): RawSqlite {
  return {
    driver,
    put: { run: (k, v) => void put.run(k, v) },
    del: { run: (k) => changed(del.run(k)) },
    get: { get },
    exec: (sql) => void db.exec(sql),
    close: () => db.close(),
  };
}

/** Which library {@link rawSqlite} opens on this runtime. */
export function rawSqliteDriver(): RawSqlite["driver"] {
  if (process.versions.bun) return "bun:sqlite";
  try {
    require("node:sqlite");
    return "node:sqlite";
  } catch {
    return "better-sqlite3";
  }
}

/** Opens `file` with the runtime's SQLite library (WAL, `synchronous=NORMAL`) and a `table` (default `kv`). */
export function rawSqlite(file: string, table = "kv"): RawSqlite {
  const driver = rawSqliteDriver();
  const db =
    driver === "bun:sqlite"
      ? new (require("bun:sqlite") as { Database: new (f: string) => Db }).Database(file)
      : driver === "node:sqlite"
        ? new (require("node:sqlite") as { DatabaseSync: new (f: string) => Db }).DatabaseSync(file)
        : new (require("better-sqlite3") as new (f: string) => Db)(file);
  db.exec(SETUP(table));
  const put = db.prepare(UPSERT(table));
  const del = db.prepare(DELETE(table));
  const get = db.prepare(SELECT(table));
  // Each library's fastest way to one column of one row: objects (bun), arrays (node), pluck (better-sqlite3).
  if (driver === "bun:sqlite") {
    return calls(driver, db, put, del, (k) => (get.get(k) as { value: string } | null)?.value);
  }
  if (driver === "node:sqlite") {
    get.setReturnArrays?.(true);
    return calls(driver, db, put, del, (k) => (get.get(k) as [string] | undefined)?.[0]);
  }
  const plucked = get.pluck!();
  return calls(driver, db, put, del, (k) => plucked.get(k) as string | undefined);
}
