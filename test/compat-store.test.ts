/**
 * A SQLite store written by the Rust crate (compat/rust-sqlite-store) must
 * read back here: every value decodes (zstd where it was compressed) to the
 * exact JSON text Rust wrote.
 */
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeJson, isCompressed, maybeDecompress } from "../src/codec.js";
import { sqliteOperator } from "../src/operators/drivers/sqlite.js";
import type { Operator } from "../src/operators/types.js";
import { RawSqlite } from "./helpers/raw-sqlite.js";

interface Expected {
  sha256_of_json: string;
  json_bytes: number;
  stored_bytes: number;
  compressed: boolean;
  id_or_name: string;
}

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const storeDir = resolve(repoRoot, "../shared/compat/rust-sqlite-store");
const expected = JSON.parse(readFileSync(join(storeDir, "expected.json"), "utf8")) as Record<string, Expected>;

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

function checkValue(key: string, stored: Uint8Array): void {
  const want = expected[key];
  expect(want, `unexpected key ${key} in the Rust store`).toBeDefined();
  if (!want) return;
  expect(stored.length, `${key}: stored_bytes`).toBe(want.stored_bytes);
  expect(isCompressed(stored), `${key}: compressed`).toBe(want.compressed);
  const json = maybeDecompress(stored);
  if (want.compressed) expect(json, `${key}: decompressed`).not.toBe(stored);
  expect(json.length, `${key}: json_bytes`).toBe(want.json_bytes);
  expect(sha256(json), `${key}: sha256_of_json`).toBe(want.sha256_of_json);
  const value = decodeJson(stored, { key, profile: "rust-sqlite" });
  expect(value).toBeTypeOf("object");
  expect(value).not.toBeNull();
}

let dir: string;
let dbFile: string;

beforeEach(() => {
  // Tests must not touch shared/: work on a copy.
  dir = mkdtempSync(join(tmpdir(), "compat-store-"));
  dbFile = join(dir, "terraphim.db");
  copyFileSync(join(storeDir, "terraphim.db"), dbFile);
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("Rust SQLite store (compat/rust-sqlite-store)", () => {
  it("expects a plain, a thesaurus and a compressed value", () => {
    const keys = Object.keys(expected);
    expect(keys.length).toBeGreaterThanOrEqual(3);
    expect(Object.values(expected).some((e) => e.compressed)).toBe(true);
    expect(Object.values(expected).some((e) => !e.compressed)).toBe(true);
  });

  it("every raw row decodes to the JSON Rust wrote (the runtime's SQLite, read-only)", () => {
    const db = new RawSqlite(dbFile, { readonly: true });
    try {
      const rows = db.prepare("SELECT key, value FROM terraphim_kv ORDER BY key").all() as {
        key: string;
        value: Uint8Array;
      }[];
      expect(rows.map((r) => r.key).sort()).toEqual(Object.keys(expected).sort());
      for (const { key, value } of rows) checkValue(key, value);
    } finally {
      db.close();
    }
  });

  it("every key reads back through the sqlite operator", async () => {
    let op: Operator | undefined;
    try {
      op = sqliteOperator({ datadir: dir, connection_string: dbFile, table: "terraphim_kv" }, "rust-sqlite");
      expect((await op.list()).sort()).toEqual(Object.keys(expected).sort());
      for (const key of Object.keys(expected)) {
        expect(await op.exists(key), key).toBe(true);
        checkValue(key, await op.read(key));
      }
    } finally {
      await op?.close();
    }
  });

  it("decodes to the documented shapes", () => {
    const db = new RawSqlite(dbFile, { readonly: true });
    try {
      const get = db.prepare("SELECT value FROM terraphim_kv WHERE key = ?").pluck();
      for (const [key, want] of Object.entries(expected)) {
        const value = decodeJson(get.get(key) as Uint8Array, { key }) as Record<string, unknown>;
        if (key.startsWith("document_")) expect(value.id, key).toBe(want.id_or_name);
        if (key.startsWith("thesaurus_")) expect(value.name, key).toBe(want.id_or_name);
      }
    } finally {
      db.close();
    }
  });
});
