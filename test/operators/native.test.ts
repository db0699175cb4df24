import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidKeyError, ProfileError } from "../../src/errors.js";
import { createOperator } from "../../src/operators/index.js";
import { quotaOperator } from "../../src/operators/wrappers/quota.js";
import { describeOperatorConformance } from "../conformance/index.js";
import { RawSqlite } from "../helpers/raw-sqlite.js";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-native-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describeOperatorConformance({ name: "memory", create: () => createOperator("memory") });
describeOperatorConformance({
  name: "dashmap",
  create: () => createOperator("dashmap", { root: "/nonexistent/ignored" }),
});
const sqliteDir = tempDir();
describeOperatorConformance({ name: "sqlite", create: () => createOperator("sqlite", { datadir: sqliteDir }) });
const fsRoot = tempDir();
describeOperatorConformance({ name: "fs", create: () => createOperator("fs", { root: fsRoot }) });
// The quota wrapper (max_size / max_items) is what a profile with a quota opens: the same contract.
describeOperatorConformance({
  name: "memory under an lru quota",
  create: async () => quotaOperator(await createOperator("memory"), { maxItems: 100_000, policy: "lru" }),
});
const quotaDir = tempDir();
describeOperatorConformance({
  name: "sqlite under a rejecting quota",
  create: async () =>
    quotaOperator(await createOperator("sqlite", { datadir: quotaDir }), { maxSize: 1 << 30, policy: "reject" }),
});

describe("memory / dashmap", () => {
  it("writeSync copies unless the caller hands the bytes over (adopt)", async () => {
    const op = await createOperator("memory");
    const mine = new Uint8Array([1, 2, 3]);
    op.writeSync!("copied", mine);
    expect(op.readSync!("copied")).not.toBe(mine);
    const given = new Uint8Array([4, 5, 6]);
    op.writeSync!("adopted", given, true);
    expect(op.readSync!("adopted")).toBe(given);
  });

  it("each instance is its own store", async () => {
    const a = await createOperator("dashmap");
    const b = await createOperator("dashmap");
    await a.write("k.json", "1");
    expect(await b.exists("k.json")).toBe(false);
    expect(a.scheme).toBe("dashmap");
  });
});

describe("sqlite", () => {
  it("uses the Rust layout: table, key TEXT PRIMARY KEY, value BLOB, WAL while open; one file after close", async () => {
    const dir = tempDir();
    const op = await createOperator("sqlite", {
      datadir: dir,
      connection_string: `${dir}/x.db?mode=rwc`,
      table: "my_kv",
    });
    await op.write("document_a.json", '{"id":"a"}');
    // WAL while open, as the Rust crate sets it.
    const live = new RawSqlite(`${dir}/x.db`, { readonly: true });
    expect(live.pragma("journal_mode", { simple: true })).toBe("wal");
    live.close();
    await op.close();
    const db = new RawSqlite(`${dir}/x.db`, { readonly: true });
    const cols = db.prepare("PRAGMA table_info(my_kv)").all() as { name: string; type: string; pk: number }[];
    expect(cols.map((c) => [c.name, c.type, c.pk])).toEqual([
      ["key", "TEXT", 1],
      ["value", "BLOB", 0],
    ]);
    // Closed: one self-contained file (opens read-only on read-only media; the next open makes it WAL again).
    expect(db.pragma("journal_mode", { simple: true })).toBe("delete");
    expect(existsSync(`${dir}/x.db-wal`) || existsSync(`${dir}/x.db-shm`)).toBe(false);
    const row = db.prepare("SELECT typeof(value) t, value FROM my_kv WHERE key = ?").get("document_a.json") as {
      t: string;
      value: Uint8Array;
    };
    expect(row.t).toBe("blob");
    expect(Buffer.from(row.value).toString()).toBe('{"id":"a"}');
    db.close();
  });

  it("defaults the file to <datadir>/terraphim.db and the table to terraphim_kv", async () => {
    const dir = tempDir();
    const op = await createOperator("sqlite", { datadir: dir });
    await op.write("k", "v");
    await op.close();
    const db = new RawSqlite(join(dir, "terraphim.db"), { readonly: true });
    expect(
      Buffer.from(db.prepare("SELECT value FROM terraphim_kv WHERE key='k'").pluck().get() as Uint8Array).toString(),
    ).toBe("v");
    db.close();
  });

  it("data survives close and reopen", async () => {
    const dir = tempDir();
    const a = await createOperator("sqlite", { datadir: dir });
    await a.write("persist.json", "kept");
    await a.close();
    const b = await createOperator("sqlite", { datadir: dir });
    expect(Buffer.from(await b.read("persist.json")).toString()).toBe("kept");
    await b.close();
  });

  it("creates the database without world access", async () => {
    const dir = tempDir();
    const op = await createOperator("sqlite", { datadir: dir });
    await op.close();
    expect(statSync(join(dir, "terraphim.db")).mode & 0o077).toBe(0);
  });

  it.each(["kv; drop table x", "1abc", "a-b", "", "x".repeat(100), 'kv"'])(
    "rejects table %j as a SQL identifier",
    async (table) => {
      const dir = tempDir();
      if (table === "") {
        // empty means "default", not an injection
        const op = await createOperator("sqlite", { datadir: dir, table });
        await op.close();
        return;
      }
      await expect(createOperator("sqlite", { datadir: dir, table }, { profile: "db" })).rejects.toThrow(
        /Expected `table` in profile "db" to be a SQL identifier/,
      );
    },
  );

  it("needs datadir or connection_string", async () => {
    await expect(createOperator("sqlite", {}, { profile: "s" })).rejects.toBeInstanceOf(ProfileError);
  });

  it("a file that is not a database is a ProfileError, and the file is left alone", async () => {
    const dir = tempDir();
    const file = join(dir, "terraphim.db");
    writeFileSync(file, "this is not sqlite ".repeat(100));
    await expect(createOperator("sqlite", { datadir: dir })).rejects.toBeInstanceOf(ProfileError);
    expect(statSync(file).size).toBe(1900);
  });
});

describe("fs", () => {
  it("writes files under root only, 0600, and reserves its temp folder", async () => {
    const root = tempDir();
    const op = await createOperator("fs", { root });
    await op.write("conversations/index.json", "[]");
    expect(statSync(join(root, "conversations", "index.json")).mode & 0o077).toBe(0);
    await expect(op.write(".terraphim-tmp/x", "1")).rejects.toBeInstanceOf(InvalidKeyError);
    expect(await op.list()).toEqual(["conversations/index.json"]);
  });

  it("sweeps temp files left by crashed writes (older than a minute) when it opens", async () => {
    const root = tempDir();
    const first = await createOperator("fs", { root });
    await first.close();
    const tmp = join(root, ".terraphim-tmp");
    writeFileSync(join(tmp, "old.tmp"), "torn");
    writeFileSync(join(tmp, "recent.tmp"), "in flight elsewhere");
    const past = new Date(Date.now() - 5 * 60_000);
    utimesSync(join(tmp, "old.tmp"), past, past);
    await createOperator("fs", { root });
    expect(readdirSync(tmp)).toEqual(["recent.tmp"]);
  });

  it("needs a root", async () => {
    await expect(createOperator("fs", {})).rejects.toBeInstanceOf(ProfileError);
  });
});

describe("createOperator", () => {
  it("rejects a malformed scheme", async () => {
    await expect(createOperator("../x")).rejects.toBeInstanceOf(ProfileError);
    await expect(createOperator("")).rejects.toBeInstanceOf(ProfileError);
  });
});
