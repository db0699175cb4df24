/**
 * The unstorage driver, through unstorage's own `createStorage`, mounts,
 * `prefixStorage`, `snapshot` / `restoreSnapshot`, over real backends: a
 * memory tier over SQLite (temp dir) and a memory tier over the machine's
 * Redis (a random root per test, removed afterwards). Plus a property test of
 * the key mapping (injective, reversible, valid storage keys, no file/folder clash).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { createStorage, prefixStorage, restoreSnapshot, type Storage, type StorageValue, snapshot } from "unstorage";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { UnstorageKeys } from "../../src/adapters/_unstorage-keys.js";
import { terraphimDriver } from "../../src/adapters/unstorage.js";
import {
  DeviceStorage,
  InvalidKeyError,
  PersistenceError,
  type StorageSettings,
  silentLogger,
  validateKey,
} from "../../src/index.js";
import { requireServer } from "../helpers/servers.js";

const redisUp = await requireServer("redis (unstorage driver)", "127.0.0.1", 6379);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bytes = (...b: number[]) => new Uint8Array(b);

const dirs: string[] = [];
const redisRoots: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tp-unstorage-"));
  dirs.push(dir);
  return dir;
}
const sqliteSettings = (): StorageSettings => ({
  profiles: { mem: { type: "memory", speed: "1" }, db: { type: "sqlite", datadir: tempDir(), speed: "2" } },
});
function redisSettings(): StorageSettings {
  const root = `tp-unstorage-${process.pid}-${randomBytes(4).toString("hex")}`;
  redisRoots.push(root);
  const r = { type: "redis", endpoint: "tcp://127.0.0.1:6379", root: `/${root}/`, speed: "2" };
  return { profiles: { mem: { type: "memory", speed: "1" }, r } };
}
/** Each backend: fresh settings per test (a memory tier in front of a durable profile, `durable`). */
const backends = [
  { name: "memory over sqlite", up: true, durable: "db", settings: sqliteSettings },
  { name: "memory over redis", up: redisUp, durable: "r", settings: redisSettings },
];

const opened: DeviceStorage[] = [];
async function open(settings: StorageSettings): Promise<DeviceStorage> {
  const s = await DeviceStorage.fromSettings(settings, { logger: silentLogger });
  opened.push(s);
  return s;
}

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});
afterAll(async () => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  if (!redisUp) return;
  const cli = (...args: string[]) => promisify(execFile)("redis-cli", ["-h", "127.0.0.1", "-p", "6379", ...args]);
  for (const root of redisRoots.splice(0)) {
    const keys = (await cli("--scan", "--pattern", `${root}/*`)).stdout.split("\n").filter(Boolean);
    for (let i = 0; i < keys.length; i += 500) await cli("del", ...keys.slice(i, i + 500));
  }
});

describe.each(backends)("unstorage driver over $name", (backend) => {
  /** A storage and an unstorage `Storage` over it (default base). */
  async function make(): Promise<{ settings: StorageSettings; ds: DeviceStorage; us: Storage }> {
    const settings = backend.settings();
    const ds = await open(settings);
    return { settings, ds, us: createStorage({ driver: terraphimDriver({ storage: ds }) }) };
  }

  it.skipIf(!backend.up)("round-trips strings exactly, the falsy values and JSON-looking ones included", async () => {
    const { ds, us } = await make();
    const cases: [string, StorageValue][] = [
      ["zero", 0],
      ["false", false],
      ["empty", ""],
      ["null", null],
      ["obj", { a: [1, "x"], n: null }],
      ["zstd", "ZSTD\u0028\u00b5\u002f\u00fd not a frame"],
      ["envelope", { $bytes: "AAEC" }],
      ["unicode", "ünïcødé 😀 \u0000 end"],
    ];
    for (const [k, v] of cases) await us.setItem(k, v);
    for (const [k, v] of cases) {
      expect(await us.getItem(k), k).toEqual(v);
      expect(await us.hasItem(k), k).toBe(true);
    }
    // An object made of a "$bytes" field by the user stays an object (its text was saved as a string).
    expect(await us.getItem("envelope")).not.toBeInstanceOf(Uint8Array);
    // What unstorage passed (a string) is what the durable profile holds, as a JSON string.
    const db = ds.profile(backend.durable);
    expect(new TextDecoder().decode(await db.read("unstorage/zero.json"))).toBe('"0"');
    expect(new TextDecoder().decode(await db.read("unstorage/empty.json"))).toBe('""');
    // A string that looks like JSON is kept as that exact string (unstorage's getItem then parses it).
    const driver = terraphimDriver({ storage: ds });
    await us.setItem("jsonish", '{ "a" :  1 }');
    expect(await driver.getItem("jsonish", {})).toBe('{ "a" :  1 }');
    expect((await ds.loadValue("unstorage/jsonish.json")).value).toBe('{ "a" :  1 }');
    expect(await us.getItemRaw("jsonish")).toEqual(new TextEncoder().encode('{ "a" :  1 }'));
    expect(await us.getItem("jsonish")).toEqual({ a: 1 });
    expect(await us.getItem("missing")).toBeNull();
    expect(await us.hasItem("missing")).toBe(false);
    await us.removeItem("zero");
    expect(await us.hasItem("zero")).toBe(false);
    expect(await db.exists("unstorage/zero.json")).toBe(false);
  });

  it.skipIf(!backend.up)("round-trips raw bytes exactly, from the durable profile after a restart too", async () => {
    const { settings, us } = await make();
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const zstdFrame = bytes(0x5a, 0x53, 0x54, 0x44, 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xff); // "ZSTD" + zstd magic
    const badUtf8 = bytes(0xc3, 0x28, 0xa0, 0xa1, 0xf0, 0x28, 0x8c, 0xbc);
    const large = randomBytes(1_200_000); // over the 1 MiB compression threshold
    const raws: [string, Uint8Array][] = [
      ["bin:all", all],
      ["bin:zstd", zstdFrame],
      ["bin:bad-utf8", badUtf8],
      ["bin:empty", new Uint8Array(0)],
      ["bin:large", large],
    ];
    for (const [k, v] of raws) await us.setItemRaw(k, v);
    await us.setItemRaw("bin:arraybuffer", all.buffer.slice(10, 20));
    await us.setItemRaw("bin:view", new DataView(all.buffer, 5, 3));
    for (const [k, v] of raws) {
      const got = await us.getItemRaw(k);
      expect(got, k).toBeInstanceOf(Uint8Array);
      expect(Buffer.compare(got as Uint8Array, v), k).toBe(0);
    }
    expect(await us.getItemRaw("bin:arraybuffer")).toEqual(all.slice(10, 20));
    expect(await us.getItemRaw("bin:view")).toEqual(bytes(5, 6, 7));
    // getItem of a raw value gives the bytes (as unstorage's memory driver), getItemRaw of a string its UTF-8.
    expect(await us.getItem("bin:zstd")).toEqual(zstdFrame);
    await us.setItem("text", "héllo");
    expect(await us.getItemRaw("text")).toEqual(new TextEncoder().encode("héllo"));

    // A new process: an empty memory tier, so every read is served by the durable profile.
    const again = await open(settings);
    const us2 = createStorage({ driver: terraphimDriver({ storage: again }) });
    for (const [k, v] of raws) expect(Buffer.compare((await us2.getItemRaw(k)) as Uint8Array, v), k).toBe(0);
    expect(await us2.getItem("text")).toBe("héllo");
    expect(await us2.getKeys("bin")).toEqual(
      ["bin:all", "bin:arraybuffer", "bin:bad-utf8", "bin:empty", "bin:large", "bin:view", "bin:zstd"].sort(),
    );
  });

  it.skipIf(!backend.up)("keys: query strings are stripped by unstorage; any segment text round-trips", async () => {
    const { ds, us } = await make();
    await us.setItem("q?x=1", "v");
    expect(await us.getItem("q?y=2")).toBe("v");
    expect(await us.hasItem("q")).toBe(true);
    expect(await us.getKeys()).toEqual(["q"]);
    await us.setItem("a/b\\c", "slashes"); // unstorage turns / and \ into ":"
    expect(await us.getItem("a:b:c")).toBe("slashes");

    // The driver itself takes any non-empty segments, even those unstorage never passes.
    const driver = terraphimDriver({ storage: ds });
    const odd = [
      "a",
      "a:b",
      "a.json",
      "a.json:x",
      "a%2Ejson",
      "%",
      "%25",
      ".hidden",
      ".terraphim-probe",
      "x/y",
      "x%2Fy",
    ];
    const more = ["a:..:b", "a:.:b", " sp ace ", "ünï:😀", "back\\slash", "nul\u0000byte", "a$"];
    const all = [...odd, ...more];
    for (const [i, k] of all.entries()) await driver.setItem!(k, `v${i}`, {});
    for (const [i, k] of all.entries()) expect(await driver.getItem(k), k).toBe(`v${i}`);
    expect((await driver.getKeys("", {})).sort()).toEqual([...all, "a:b:c", "q"].sort());
    // Nothing escapes the base folder or lands on a reserved key.
    const stored = await ds.profile(backend.durable).list();
    expect(stored.every((k) => k.startsWith("unstorage/"))).toBe(true);
    expect(stored).toContain("unstorage/a/%2E./b.json");
    // Both a value "a" and values under "a:" exist (file a.json, folder a/), also on a file-system profile.
    expect(stored).toEqual(expect.arrayContaining(["unstorage/a.json", "unstorage/a/b.json"]));

    await expect(driver.getItem("a::b")).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(driver.setItem!("", "x", {})).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(us.setItem("k".repeat(2000), "x")).rejects.toMatchObject({ code: "E_INVALID_KEY" });
    await expect(driver.getItem("lone\ud800", {})).rejects.toThrow(/lone UTF-16 surrogate/);
  });

  it.skipIf(!backend.up)("getKeys and clear respect bases, depth and meta keys", async () => {
    const { ds, us } = await make();
    const driver = terraphimDriver({ storage: ds });
    for (const k of ["a", "a:b", "a:b:c", "ab", "b:x"]) await us.setItem(k, k);
    await us.setMeta("a", { note: "m" }); // stored as "a$"; unstorage never lists it
    expect((await us.getKeys()).sort()).toEqual(["a", "a:b", "a:b:c", "ab", "b:x"]);
    expect((await us.getKeys("a")).sort()).toEqual(["a:b", "a:b:c"]);
    expect(await us.getKeys("a:b")).toEqual(["a:b:c"]);
    expect(await us.getKeys("zz")).toEqual([]);
    expect((await us.getKeys("", { maxDepth: 0 })).sort()).toEqual(["a", "ab"]);
    expect((await us.getMeta("a")).note).toBe("m");

    // The driver's clear(base) removes exactly the keys under the base (unstorage 1.17's
    // storage.clear(base) only clears whole mounts, see the mount test).
    await driver.clear!("a:", {});
    expect((await us.getKeys()).sort()).toEqual(["a", "ab", "b:x"]);
    expect(await us.getItem("a")).toBe("a");
    expect(await us.hasItem("a:b")).toBe(false);
    expect(await ds.profile(backend.durable).exists("unstorage/a/b/c.json")).toBe(false);
    await us.clear();
    expect(await us.getKeys()).toEqual([]);
    expect(await us.hasItem("a$")).toBe(false);
  });

  it.skipIf(!backend.up)("mounts and prefixStorage: each driver sees only its base", async () => {
    const { ds } = await make();
    const outer = createStorage(); // unstorage's memory driver at the root
    outer.mount("cache", terraphimDriver({ storage: ds }));
    outer.mount("other", terraphimDriver({ storage: ds, base: "other-app" }));
    await outer.setItem("root-key", "in memory");
    await outer.setItem("cache:x:1", { n: 1 });
    await outer.setItem("other:x:1", { n: 2 });
    expect(await outer.getItem("cache:x:1")).toEqual({ n: 1 });
    expect(await outer.getItem("other:x:1")).toEqual({ n: 2 });
    expect((await outer.getKeys()).sort()).toEqual(["cache:x:1", "other:x:1", "root-key"]);
    expect(await outer.getKeys("cache")).toEqual(["cache:x:1"]);
    expect((await ds.loadValue("unstorage/x/1.json")).value).toBe('{"n":1}');
    expect((await ds.loadValue("other-app/x/1.json")).value).toBe('{"n":2}');

    const users = prefixStorage(outer, "cache:users");
    await users.setItem("42", "Ada");
    await users.setItemRaw("avatar", bytes(1, 2, 3));
    expect(await users.getItem("42")).toBe("Ada");
    expect(await users.getItemRaw("avatar")).toEqual(bytes(1, 2, 3));
    expect((await users.getKeys()).sort()).toEqual(["42", "avatar"]);
    expect(await ds.exists("unstorage/users/42.json")).toBe(true);

    await outer.clear("cache"); // the whole mount
    expect((await outer.getKeys()).sort()).toEqual(["other:x:1", "root-key"]);
    expect(await ds.exists("unstorage/x/1.json")).toBe(false);
    expect(await ds.exists("other-app/x/1.json")).toBe(true);
  });

  it.skipIf(!backend.up)("batches: getItems (null for a missing key) and setItems with a TTL", async () => {
    const { us } = await make();
    await us.setItems<StorageValue>([
      { key: "b:1", value: 1 },
      { key: "b:2", value: "two" },
      { key: "b:3", value: { three: 3 }, options: { ttl: 0.3 } },
    ]);
    const got = await us.getItems(["b:1", "b:2", "b:3", "b:none"]);
    expect(got).toEqual([
      { key: "b:1", value: 1 },
      { key: "b:2", value: "two" },
      { key: "b:3", value: { three: 3 } },
      { key: "b:none", value: null },
    ]);
    await sleep(400);
    expect(await us.getItem("b:3")).toBeNull();
    expect(await us.getKeys("b")).toEqual(["b:1", "b:2"]);
  });

  it.skipIf(!backend.up)("TTL in seconds per item or per driver; getMeta reports size, mtime and ttl", async () => {
    const { ds, us } = await make();
    const before = Date.now();
    await us.setItem("m:plain", "hello");
    await us.setItem("m:ttl", "soon", { ttl: 60 });
    const meta = await us.getMeta("m:plain");
    // Size of the stored value ("hello" as JSON), mtime from the memory tier.
    expect(meta.size).toBe((await ds.profile("mem").read("unstorage/m/plain.json")).length);
    expect(meta.size).toBe(7);
    expect(meta.mtime).toBeInstanceOf(Date);
    expect(meta.mtime!.getTime()).toBeGreaterThanOrEqual(before - 5);
    expect(meta.ttl).toBeUndefined();
    const ttl = (await us.getMeta("m:ttl")).ttl!;
    expect(ttl).toBeGreaterThan(58);
    expect(ttl).toBeLessThanOrEqual(60);
    expect(await us.getMeta("m:none")).toEqual({});

    const short = createStorage({ driver: terraphimDriver({ storage: ds, base: "short", ttl: 0.3 }) });
    await short.setItem("k", "v");
    await short.setItem("kept", "v", { ttl: 0 }); // 0: no TTL, as unstorage's redis driver
    expect(await short.getItem("k")).toBe("v");
    await sleep(400);
    expect(await short.getItem("k")).toBeNull();
    expect(await short.hasItem("k")).toBe(false);
    expect(await short.getItem("kept")).toBe("v");
    await expect(us.setItem("bad", "v", { ttl: -1 })).rejects.toBeInstanceOf(PersistenceError);
  });

  it.skipIf(!backend.up)("snapshot and restoreSnapshot carry a storage's items to another", async () => {
    const { ds, us } = await make();
    await us.setItem("s:a", "x");
    await us.setItem("s:b:c", { deep: true });
    await us.setItem("s:n", 0);
    await us.setItem("t:other", "not in the snapshot");
    const snap = await snapshot(us, "s");
    expect(snap).toEqual({ a: "x", "b:c": { deep: true }, n: 0 });
    const target = createStorage({ driver: terraphimDriver({ storage: ds, base: "restored" }) });
    await restoreSnapshot(target, snap, "copy");
    expect((await target.getKeys()).sort()).toEqual(["copy:a", "copy:b:c", "copy:n"]);
    expect(await target.getItem("copy:b:c")).toEqual({ deep: true });
    expect(await target.getItem("copy:n")).toBe(0);
  });
});

describe("unstorage driver options and lifecycle", () => {
  it("opens a storage from settings on first use and closes it on dispose", async () => {
    const driver = terraphimDriver({ settings: sqliteSettings(), storageOptions: { logger: silentLogger } });
    expect(driver.getInstance!()).toBeUndefined();
    const us = createStorage({ driver });
    await us.setItem("k", "v");
    const ds = driver.getInstance!()!;
    expect(ds).toBeInstanceOf(DeviceStorage);
    expect(await us.getItem("k")).toBe("v");
    await us.dispose();
    expect(ds.closed).toBe(true);
    await expect(us.getItem("k")).rejects.toMatchObject({ code: "E_CLOSED" });
  });

  it("watch reports this driver's own changes (unstorage leaves that to a driver with watch)", async () => {
    const ds = await open(sqliteSettings());
    const outer = createStorage();
    outer.mount("cache", terraphimDriver({ storage: ds }));
    const events: string[] = [];
    const unwatch = await outer.watch((event, key) => events.push(`${event} ${key}`));
    await outer.setItem("cache:a", "1");
    await outer.setItemRaw("cache:b:c", bytes(1));
    await outer.removeItem("cache:a");
    await outer.setItem("root", "x"); // the memory mount: reported by unstorage itself
    await outer.clear("cache");
    expect(events).toEqual(["update cache:a", "update cache:b:c", "remove cache:a", "update root", "remove cache:b:c"]);
    await unwatch();
    await outer.setItem("cache:z", "1");
    expect(events).toHaveLength(5);
  });

  it("a value and values under it coexist on a file-system profile (file k.json, folder k/)", async () => {
    const ds = await open({ profiles: { fs: { type: "fs", root: tempDir() } } });
    const us = createStorage({ driver: terraphimDriver({ storage: ds }) });
    const all = ["a", "a:b", "a:b:c", "a.json", "a.json:x", ".x", ".x:y", "%2E:z"];
    for (const k of all) await us.setItem(k, `v-${k}`);
    for (const k of all) expect(await us.getItem(k), k).toBe(`v-${k}`);
    expect((await us.getKeys()).sort()).toEqual([...all].sort());
    await us.clear();
    expect(await us.getKeys()).toEqual([]);
  });

  it("never closes a storage it was given", async () => {
    const ds = await open(sqliteSettings());
    const us = createStorage({ driver: terraphimDriver({ storage: ds }) });
    await us.setItem("k", "v");
    await us.dispose();
    expect(ds.closed).toBe(false);
    expect((await ds.loadValue("unstorage/k.json")).value).toBe("v");
  });

  it('with base "", the library\'s own JSON values are unstorage items', async () => {
    const ds = await open(sqliteSettings());
    await ds.saveValue("document_a.json", { id: "a", body: "b" });
    const us = createStorage({ driver: terraphimDriver({ storage: ds, base: "" }) });
    expect(await us.getKeys()).toEqual(["document_a"]);
    expect(await us.getItem("document_a")).toEqual({ id: "a", body: "b" });
    await us.setItem(".terraphim-x", "v"); // escaped: never a reserved key
    expect(await ds.profile("db").list()).toEqual(["%2Eterraphim-x.json", "document_a.json"]);
  });

  it("rejects bad options and values with typed errors that never show the value", async () => {
    const ds = await open({ profiles: { mem: { type: "memory" } } });
    expect(() => terraphimDriver({})).toThrow(/`storage` or `settings`.*got neither/);
    expect(() => terraphimDriver({ storage: ds, settings: { profiles: {} } })).toThrow(/got both/);
    expect(() => terraphimDriver({ storage: ds, base: ".terraphim-meta" })).toThrow(InvalidKeyError);
    expect(() => terraphimDriver({ storage: ds, base: "a/../b" })).toThrow(InvalidKeyError);
    expect(() => terraphimDriver({ storage: ds, ttl: -5 })).toThrow(/non-negative number of seconds, got -5/);
    const driver = terraphimDriver({ storage: ds });
    const secret = new Map([["password", "hunter2"]]);
    const err = await Promise.resolve(driver.setItemRaw!("k", 12345, {})).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PersistenceError);
    expect((err as Error).message).toMatch(
      /Expected a raw value to be a Uint8Array, ArrayBuffer or string, got number/,
    );
    expect((err as Error).message).not.toContain("12345");
    const err2 = await Promise.resolve(driver.setItem!("k", secret as unknown as string, {})).catch((e: unknown) => e);
    expect((err2 as Error).message).toMatch(/Expected an item value to be a string .*got Map/);
    expect((err2 as Error).message).not.toContain("hunter2");
  });
});

describe("unstorage key mapping", () => {
  /** unstorage keys as unstorage passes them: non-empty segments without / or \ (any other text). */
  const tricky = fc.constantFrom(".", "..", ".json", "a.json", "%", "%2E", "%25", ".terraphim-x", "\0", " ", "$", "?");
  const pieces = fc.array(fc.constantFrom(".", "%", "json", "2E", "25", "a", "\0", "😀"), {
    minLength: 1,
    maxLength: 6,
  });
  const segment = fc
    .oneof(
      fc.string({ unit: "grapheme", minLength: 1, maxLength: 8 }),
      tricky,
      pieces.map((p) => p.join("")),
    )
    .filter((s) => !/[:/\\]/.test(s));
  const key = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join(":"));

  it("is injective and reversible, gives valid non-reserved keys, and never makes a file where a folder is", () => {
    for (const base of ["unstorage", ""]) {
      const keys = new UnstorageKeys(base);
      fc.assert(
        fc.property(key, key, (a, b) => {
          const sa = keys.toStorage(a);
          const sb = keys.toStorage(b);
          expect(validateKey(sa)).toBe(sa);
          expect(sa.startsWith(".terraphim-")).toBe(false);
          expect(keys.fromStorage(sa)).toBe(a);
          if (a !== b) expect(sa).not.toBe(sb);
          // A value's name is never a folder of another value's name.
          expect(sb.startsWith(`${sa}/`)).toBe(false);
          expect(sb.startsWith(keys.listPrefix(a))).toBe(b.startsWith(`${a}:`));
        }),
        {
          numRuns: 2000,
          examples: [
            ["a", "a.json:x"],
            [".", ".."],
            ["%", "%25"],
            ["a:b", "a:b.json"],
          ],
        },
      );
      // The clash to avoid on a file-system profile: value `k` (file `k.json`) and a value under `k.json:`.
      fc.assert(
        fc.property(key, segment, (a, s) => {
          const file = keys.toStorage(a);
          expect(keys.toStorage(`${a}.json:${s}`).startsWith(`${file}/`)).toBe(false);
        }),
        { numRuns: 500 },
      );
    }
  });

  it("ignores storage keys it did not make", () => {
    const keys = new UnstorageKeys("unstorage");
    for (const foreign of [
      "document_a.json",
      "unstorage/a.txt",
      "unstorage/%2e.json",
      "unstorage/.x.json",
      "unstorage/a%zz.json",
    ]) {
      expect(keys.fromStorage(foreign), foreign).toBeUndefined();
    }
    expect(keys.baseOf("unstorage/a/b/")).toBe("a:b");
    expect(keys.baseOf("")).toBe("");
    expect(keys.baseOf("unst")).toBe("");
    expect(keys.baseOf("unstorage/a/b")).toBe("a"); // ends inside a segment: its folder
    expect(keys.baseOf("unstorage/%2Eh/")).toBe(".h");
    expect(keys.baseOf("unstorage/.x/")).toBeUndefined(); // a folder this driver never makes
    expect(keys.baseOf("other/")).toBeUndefined();
  });
});
