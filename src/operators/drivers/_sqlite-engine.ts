/**
 * The SQLite library of this runtime behind one small shape: `node:sqlite`
 * (Node 22.13+, Deno), `bun:sqlite` (Bun), else the optional peer
 * better-sqlite3 (Node 20). The same file format, SQL and pragmas on each;
 * statements are prepared once and handed out as plain functions, the form a
 * hot path calls fastest.
 *
 * @module
 */
import { requirePeer } from "../../optional-peers.js";
import { builtinModule, RUNTIME } from "../../runtime.js";

/** Which SQLite library serves the `sqlite` scheme in this process. */
export type SqliteDriverName = "node:sqlite" | "bun:sqlite" | "better-sqlite3";

/** A value bound to a `?`. */
export type SqliteParam = string | number | Uint8Array | null;

/** An open database; every statement is prepared once, when asked for. */
export interface SqliteDatabase {
  /** The library serving it. */
  readonly driver: SqliteDriverName;
  /** A one-parameter query returning its first row's first column, `undefined` when no row. */
  value(sql: string): (param: SqliteParam) => unknown;
  /** A query returning every row as an array of its columns. */
  rows(sql: string): (...params: SqliteParam[]) => unknown[][];
  /** A one-parameter query yielding each row's first column (leave early with `break`). */
  column(sql: string): (param: SqliteParam) => Iterable<unknown>;
  /** A statement run for its effect. */
  run(sql: string): (...params: SqliteParam[]) => void;
  /** Runs SQL without results. */
  exec(sql: string): void;
  /** `PRAGMA <text>`'s first column (`journal_mode = WAL` gives `"wal"`). */
  pragma(text: string): unknown;
  close(): void;
}

interface NodeStatement {
  get(...p: SqliteParam[]): Record<string, unknown> | unknown[] | undefined;
  all(...p: SqliteParam[]): (Record<string, unknown> | unknown[])[];
  iterate(...p: SqliteParam[]): IterableIterator<Record<string, unknown>>;
  run(...p: SqliteParam[]): unknown;
  setReturnArrays?(on: boolean): void;
}
interface BunStatement {
  values(...p: SqliteParam[]): unknown[][];
  iterate(...p: SqliteParam[]): IterableIterator<Record<string, unknown>>;
  run(...p: SqliteParam[]): unknown;
}
interface BetterStatement {
  /** Whether it returns rows. */
  readonly reader: boolean;
  pluck(): BetterStatement;
  raw(): BetterStatement;
  get(...p: SqliteParam[]): unknown;
  all(...p: SqliteParam[]): unknown[][];
  iterate(...p: SqliteParam[]): IterableIterator<unknown>;
  run(...p: SqliteParam[]): unknown;
}
interface AnyDb<S> {
  prepare(sql: string): S;
  exec(sql: string): unknown;
  close(): void;
}

const first = (row: Record<string, unknown>): unknown => {
  for (const k in row) return row[k];
  return undefined;
};

function* firsts(rows: IterableIterator<Record<string, unknown>>): Generator<unknown> {
  for (const row of rows) yield first(row);
}

let chosen: SqliteDriverName | undefined;
type Opener = (file: string) => AnyDb<unknown>;
let opener: Opener | undefined;

/**
 * The library this runtime's `sqlite` profiles use: its own SQLite where it
 * has one (`bun:sqlite` on Bun, `node:sqlite` on Node 22.13+ and Deno),
 * else better-sqlite3. Does not load better-sqlite3.
 */
export function sqliteDriverName(): SqliteDriverName {
  if (chosen) return chosen;
  if (RUNTIME.name === "bun" && builtinModule("bun:sqlite")) chosen = "bun:sqlite";
  else if (builtinModule<{ DatabaseSync?: unknown }>("node:sqlite")?.DatabaseSync) chosen = "node:sqlite";
  else chosen = "better-sqlite3";
  return chosen;
}

function openerFor(driver: SqliteDriverName, profile: string): Opener {
  if (driver === "bun:sqlite") {
    const { Database } = builtinModule<{ Database: new (f: string) => AnyDb<unknown> }>("bun:sqlite")!;
    return (file) => new Database(file);
  }
  if (driver === "node:sqlite") {
    const { DatabaseSync } = builtinModule<{ DatabaseSync: new (f: string) => AnyDb<unknown> }>("node:sqlite")!;
    return (file) => new DatabaseSync(file);
  }
  const Database = requirePeer<new (f: string) => AnyDb<unknown>>("better-sqlite3", {
    profile,
    what: `sqlite on ${RUNTIME.name} ${RUNTIME.version} (no built-in SQLite)`,
  });
  return (file) => new Database(file);
}

/**
 * Opens (or creates) a database file with the runtime's SQLite library and
 * sets its busy timeout.
 * @throws ProfileError naming the install command when this runtime has no
 *   SQLite and better-sqlite3 is not installed; the library's error otherwise.
 */
export function openSqliteDatabase(file: string, busyTimeoutMs: number, profile: string): SqliteDatabase {
  const driver = sqliteDriverName();
  opener ??= openerFor(driver, profile);
  const db = opener(file);
  const out =
    driver === "node:sqlite"
      ? nodeDatabase(db as AnyDb<NodeStatement>)
      : driver === "bun:sqlite"
        ? bunDatabase(db as AnyDb<BunStatement>)
        : betterDatabase(db as AnyDb<BetterStatement>);
  try {
    out.exec(`PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
  } catch (err) {
    out.close();
    throw err;
  }
  return out;
}

/** `column` (rows are objects, or plucked), `run`, `exec` and `close`: the same calls in every library. */
function common(
  db: AnyDb<{ iterate(...p: SqliteParam[]): IterableIterator<unknown>; run(...p: SqliteParam[]): unknown }>,
): Pick<SqliteDatabase, "column" | "run" | "exec" | "close"> {
  return {
    column(sql) {
      const s = db.prepare(sql);
      return (p) => firsts(s.iterate(p) as IterableIterator<Record<string, unknown>>);
    },
    run(sql) {
      const s = db.prepare(sql);
      return (...p) => void s.run(...p);
    },
    exec: (sql) => void db.exec(sql),
    close: () => db.close(),
  };
}

function nodeDatabase(db: AnyDb<NodeStatement>): SqliteDatabase {
  const arrays = (sql: string) => {
    const s = db.prepare(sql);
    s.setReturnArrays?.(true);
    return s;
  };
  return {
    driver: "node:sqlite",
    value(sql) {
      const s = arrays(sql);
      // setReturnArrays came with Node 22.16 / 24: before it, rows are objects.
      if (!s.setReturnArrays) return (p) => first((s.get(p) as Record<string, unknown> | undefined) ?? {});
      return (p) => (s.get(p) as unknown[] | undefined)?.[0];
    },
    rows(sql) {
      const s = arrays(sql);
      if (!s.setReturnArrays) return (...p) => (s.all(...p) as Record<string, unknown>[]).map((r) => Object.values(r));
      return (...p) => s.all(...p) as unknown[][];
    },
    pragma: (text) => first((db.prepare(`PRAGMA ${text}`).get() as Record<string, unknown> | undefined) ?? {}),
    ...common(db),
  };
}

function bunDatabase(db: AnyDb<BunStatement>): SqliteDatabase {
  return {
    driver: "bun:sqlite",
    value(sql) {
      const s = db.prepare(sql);
      // `values` gives arrays (no row object); `get` answers null for no row.
      return (p) => s.values(p)[0]?.[0];
    },
    rows(sql) {
      const s = db.prepare(sql);
      return (...p) => s.values(...p);
    },
    pragma: (text) => db.prepare(`PRAGMA ${text}`).values()[0]?.[0],
    ...common(db),
  };
}

function betterDatabase(db: AnyDb<BetterStatement>): SqliteDatabase {
  return {
    driver: "better-sqlite3",
    value(sql) {
      const s = db.prepare(sql).pluck();
      return (p) => s.get(p);
    },
    rows(sql) {
      const s = db.prepare(sql).raw();
      return (...p) => s.all(...p);
    },
    pragma(text) {
      // better-sqlite3 refuses pluck() on a statement that returns no row (`synchronous = NORMAL`).
      const s = db.prepare(`PRAGMA ${text}`);
      if (s.reader) return s.pluck().get();
      s.run();
      return undefined;
    },
    ...common(db),
    column(sql) {
      const s = db.prepare(sql).pluck();
      return (p) => s.iterate(p);
    },
  };
}

/** SQLite's primary result codes by number, and the texts `sqlite3_errstr` gives them. */
const RESULT_CODES: readonly [number, string, RegExp][] = [
  [3, "SQLITE_PERM", /access permission denied/i],
  [5, "SQLITE_BUSY", /database is locked/i],
  [6, "SQLITE_LOCKED", /database table is locked/i],
  [8, "SQLITE_READONLY", /readonly database/i],
  [10, "SQLITE_IOERR", /disk I\/O error/i],
  [11, "SQLITE_CORRUPT", /malformed/i],
  [13, "SQLITE_FULL", /database or disk is full/i],
  [14, "SQLITE_CANTOPEN", /unable to open database/i],
  [26, "SQLITE_NOTADB", /not a database/i],
];

/**
 * The SQLite result code of an error from any of the three libraries, as a
 * name (`SQLITE_READONLY`, `SQLITE_BUSY`, ...): better-sqlite3 and Bun put it
 * in `code`, node:sqlite a number in `errcode` (Deno only the text).
 */
export function sqliteErrorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown } | undefined;
  if (typeof e?.code === "string" && e.code.startsWith("SQLITE_")) return e.code;
  if (typeof e?.errcode === "number") {
    const primary = e.errcode & 0xff;
    const known = RESULT_CODES.find(([n]) => n === primary);
    if (known) return known[1];
  }
  const text = typeof e?.message === "string" ? e.message : "";
  return RESULT_CODES.find(([, , re]) => re.test(text))?.[1];
}

/** An error of the SQLite library, with the result code in `code` (what {@link readOnlyReason} looks for). */
export class SqliteCodeError extends Error {
  /** The SQLite result code, e.g. `SQLITE_READONLY`. */
  readonly code: string;
  constructor(code: string, cause: unknown) {
    super(`${code}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "SqliteCodeError";
    this.code = code;
  }
}

/** The library's error with its SQLite code where it has one (wrapped so that the code is in `code`). */
export function withSqliteCode(err: unknown): unknown {
  const code = sqliteErrorCode(err);
  if (code === undefined || (err as { code?: unknown })?.code === code) return err;
  return new SqliteCodeError(code, err);
}
