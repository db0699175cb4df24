/**
 * Raw access to a SQLite file for tests, straight on the runtime's `node:sqlite`
 * (not through the library's driver): what the library wrote is checked by an
 * independent reader. Shaped like the part of better-sqlite3 the tests used.
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";

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
  readonly #db: DatabaseSync;
  constructor(file: string, options: { readonly?: boolean } = {}) {
    this.#db = new DatabaseSync(file, { readOnly: options.readonly === true });
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
