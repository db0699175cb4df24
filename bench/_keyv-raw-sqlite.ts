/**
 * A Keyv storage adapter over this runtime's SQLite library (the one ours
 * uses: `node:sqlite`, `bun:sqlite`, or better-sqlite3 on Node 20), for the
 * `cacheable` peer.
 *
 * Why not `@keyv/sqlite`: it depends on `sqlite3`, which has no prebuilt
 * binary reachable here and compiles SQLite from source on every `npm ci`
 * (measured: 2 min 52 s wall, 1 min 41 s CPU on this machine), past the CI
 * budget for a dev dependency. This adapter does what `@keyv/sqlite` does
 * (one `keyv(key TEXT PRIMARY KEY, value)` table, Keyv's serialized strings
 * as values) with statements prepared once, WAL and `synchronous=NORMAL`, on
 * the same library as ours. It is faster than `@keyv/sqlite` (no thread hop
 * per call), so it flatters the peer, not us.
 */
import { EventEmitter } from "node:events";
import { type RawSqlite, rawSqlite } from "./_raw-sqlite.js";

export class KeyvRawSqlite extends EventEmitter {
  namespace?: string;
  readonly opts: { dialect: "sqlite"; url: string };
  readonly #db: RawSqlite;

  constructor(file: string) {
    super();
    this.opts = { dialect: "sqlite", url: file };
    this.#db = rawSqlite(file, "keyv");
  }

  async get(key: string): Promise<string | undefined> {
    return this.#db.get.get(key);
  }

  async getMany(keys: string[]): Promise<(string | undefined)[]> {
    return keys.map((k) => this.#db.get.get(k));
  }

  async set(key: string, value: string): Promise<void> {
    this.#db.put.run(key, value);
  }

  async delete(key: string): Promise<boolean> {
    return this.#db.del.run(key);
  }

  async clear(): Promise<void> {
    this.#db.exec("DELETE FROM keyv");
  }

  async has(key: string): Promise<boolean> {
    return this.#db.get.get(key) !== undefined;
  }

  async disconnect(): Promise<void> {
    this.#db.close();
  }
}
