/**
 * Raw access to a SQLite file for tests, straight on the runtime's `node:sqlite`
 * (not through the library's driver): what the library wrote is checked by an
 * independent reader. Shaped like the part of better-sqlite3 the tests used;
 * on a runtime without `node:sqlite` (Node 20, CI's fallback leg) it is
 * better-sqlite3 itself.
 */
import { createRequire } from "node:module";
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";

const require = createRequire(import.meta.url);
type Sqlite = { DatabaseSync: typeof DatabaseSync };
const sqlite: Sqlite | undefined = (() => {
  try {
    return require("node:sqlite") as Sqlite;
  } catch {
    return undefined;
  }
})();

/** A prepared statement; `pluck()` makes `get` / `all` return the first column. */
export interface RawStatement {
  get(...params: SQLInputValue[]): unknown;
  all(...params: SQLInputValue[]): unknown[];
  run(...params: SQLInputValue[]): void;
  pluck(): RawStatement;
}

const first = (row: unknown): unknown => (row === undefined ? undefined : Object.values(row as object)[0]);

function statement(s: StatementSync, pluck: boolean): RawStatement {
  return {
    get: (...p) => (pluck ? first(s.get(...p)) : s.get(...p)),
    all: (...p) => (pluck ? s.all(...p).map(first) : s.all(...p)),
    run: (...p) => void s.run(...p),
    pluck: () => statement(s, true),
  };
}

/** A database file opened with node:sqlite (read-only when asked; the file must exist then). */
export class RawSqlite {
  readonly #db!: DatabaseSync;
  constructor(file: string, options: { readonly?: boolean } = {}) {
    if (!sqlite) {
      const Better = require("better-sqlite3") as new (f: string, o: object) => RawSqlite;
      // biome-ignore lint/correctness/noConstructorReturn: better-sqlite3's Database has this class's shape.
      return new Better(file, { readonly: options.readonly === true, fileMustExist: options.readonly === true });
    }
    this.#db = new sqlite.DatabaseSync(file, { readOnly: options.readonly === true });
  }
  prepare(sql: string): RawStatement {
    return statement(this.#db.prepare(sql), false);
  }
  exec(sql: string): void {
    this.#db.exec(sql);
  }
  /** `PRAGMA text`: its first row, or with `simple` the first column of it. */
  pragma(text: string, options: { simple?: boolean } = {}): unknown {
    const row = this.#db.prepare(`PRAGMA ${text}`).get();
    return options.simple ? first(row) : row;
  }
  close(): void {
    this.#db.close();
  }
}
