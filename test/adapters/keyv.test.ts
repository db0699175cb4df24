/**
 * The Keyv store adapter on real backends: Keyv's official test suite over a
 * memory + SQLite storage and over a memory + Redis storage (the machine's
 * Redis, a unique root), then our own cases: injective keys (property tests),
 * namespaces isolated on clear, error events, TTL expiry, faithful values,
 * entries that outlive the process's cache.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import keyvTestSuite, { keyvIteratorTests } from "@keyv/test-suite";
import fc from "fast-check";
import { Redis } from "ioredis";
import Keyv, { type KeyvStoreAdapter } from "keyv";
import * as vitest from "vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyvTerraphim } from "../../src/adapters/keyv.js";
import {
  DeviceStorage,
  InvalidKeyError,
  MAX_KEY_BYTES,
  type PersistenceError,
  type StorageSettings,
  silentLogger,
  validateKey,
} from "../../src/index.js";
import { freePort, requireServer } from "../helpers/servers.js";

/** The installed @keyv/test-suite's version (its `exports` hide package.json: found beside its entry). */
const suiteVersion = (() => {
  const entry = createRequire(import.meta.url).resolve("@keyv/test-suite");
  const pkg = JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8"));
  if (pkg.name !== "@keyv/test-suite") throw new Error(`expected @keyv/test-suite's package.json, got ${pkg.name}`);
  return pkg.version as string;
})();

const REDIS = "tcp://127.0.0.1:6379";
const redisUp = await requireServer("redis (keyv adapter)", "127.0.0.1", 6379);
const redisPrefix = `tp-keyv-${randomBytes(4).toString("hex")}`;

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-keyv-"));
  dirs.push(d);
  return d;
};
const opened: DeviceStorage[] = [];
async function open(profiles: StorageSettings["profiles"]): Promise<DeviceStorage> {
  const storage = await DeviceStorage.fromSettings({ profiles }, { logger: silentLogger });
  opened.push(storage);
  return storage;
}
const sqliteProfiles = (datadir = tempDir()) => ({
  memory: { type: "memory" },
  sqlite: { type: "sqlite", datadir, table: "keyv_kv" },
});
const redisProfiles = (root = `/${redisPrefix}/${randomBytes(3).toString("hex")}/`) => ({
  memory: { type: "memory" },
  redis: { type: "redis", endpoint: REDIS, root },
});

afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (redisUp) {
    const raw = new Redis(6379, "127.0.0.1");
    let cursor = "0";
    do {
      const [next, keys] = await raw.scan(cursor, "MATCH", `${redisPrefix}*`, "COUNT", 1000);
      if (keys.length) await raw.del(...keys);
      cursor = next;
    } while (cursor !== "0");
    raw.disconnect();
  }
});

// The adapter fits Keyv's store type (but `setMany`, which returns each entry's result where Keyv's type says void).
const _fits = (s: KeyvTerraphim): Omit<KeyvStoreAdapter, "setMany"> => s;

describe(`@keyv/test-suite ${suiteVersion}: memory + sqlite storage`, () => {
  let storage: DeviceStorage;
  beforeAll(async () => {
    storage = await open(sqliteProfiles());
  });
  const store = () => new KeyvTerraphim({ storage });
  keyvTestSuite(vitest, Keyv, store);
  keyvIteratorTests(vitest, Keyv, store);
});

describe.skipIf(!redisUp)(`@keyv/test-suite ${suiteVersion}: memory + redis storage (127.0.0.1:6379)`, () => {
  let storage: DeviceStorage;
  beforeAll(async () => {
    storage = await open(redisProfiles());
    expect(storage.tiers.map((t) => [t.name, t.state.kind])).toContainEqual(["redis", "ready"]);
  });
  const store = () => new KeyvTerraphim({ storage });
  keyvTestSuite(vitest, Keyv, store);
  keyvIteratorTests(vitest, Keyv, store);
});

/** Keyv keys that stress the mapping: case, dropped characters, separators, surrogates, escapes. */
const tricky = fc.string({
  unit: fc.constantFrom("a", "A", "z", "Z", "0", "é", "e\u0301", "/", ".", "..", " ", "_", "-", "~", "~7e", ":", "\\"),
  maxLength: 40,
});
const anyUnits = fc.string({ unit: "binary", maxLength: 120 });
const surrogates = fc.string({
  unit: fc.constantFrom("\ud800", "\udc00", "\ufffd", "\ud83d\ude00", "x"),
  maxLength: 12,
});
const long = fc
  .tuple(fc.string({ unit: "grapheme-ascii", minLength: 150, maxLength: 3000 }), tricky)
  .map(([a, b]) => a + b);
const keyArb = fc.oneof(tricky, anyUnits, surrogates, long);

describe("keys map injectively to valid storage keys", () => {
  let storage: DeviceStorage;
  let store: KeyvTerraphim;
  beforeAll(async () => {
    storage = await open(sqliteProfiles());
    store = new KeyvTerraphim({ storage });
  });

  it("two different Keyv keys (or namespaces) never share a storage key, and every storage key is valid", () => {
    const shape = /^keyv\/(-|[kh][a-z0-9._~-]*)\/[kh][a-z0-9._~-]*$/;
    fc.assert(
      fc.property(keyArb, keyArb, fc.option(keyArb, { nil: undefined }), (a, b, ns) => {
        const ka = store.storageKey(a, ns);
        expect(validateKey(ka)).toBe(ka);
        expect(ka).toMatch(shape); // lowercase ASCII: no case-folding or normalising backend can merge two
        expect(Buffer.byteLength(ka)).toBeLessThanOrEqual(MAX_KEY_BYTES);
        if (a !== b) expect(store.storageKey(b, ns)).not.toBe(ka);
        if (ns !== undefined && ns !== "") expect(store.storageKey(a, undefined)).not.toBe(ka);
      }),
      { numRuns: 2000 },
    );
  });

  it("near twins of any key (case, Unicode normal forms, dropped or swapped characters) map elsewhere", () => {
    const twins = (k: string) => [
      k.toUpperCase(),
      k.toLowerCase(),
      k.normalize("NFD"),
      k.normalize("NFC"),
      k.replace(/[^A-Za-z0-9]+/g, "_"),
      k.replace(/[^A-Za-z0-9]/g, ""),
      k.slice(0, -1),
      `${k}\u0000`,
    ];
    fc.assert(
      fc.property(keyArb, (k) => {
        const mapped = store.storageKey(k, "keyv");
        for (const twin of twins(k)) if (twin !== k) expect(store.storageKey(twin, "keyv"), twin).not.toBe(mapped);
      }),
      { numRuns: 1000 },
    );
  });

  it("keys that differ by case, by characters normalisation drops, or only at the end of a long key stay apart", () => {
    const groups = [
      ["Foo", "foo", "FOO"],
      ["a b", "a_b", "a-b", "a.b", "a/b", "ab", "a~20b"],
      ["\u00e9", "e\u0301", "e"],
      ["", "-", ".", "..", "k", "h"],
      ["\ud800", "\udc00", "\ufffd", "\ud83d\ude00"],
      ["x".repeat(5000), `${"x".repeat(4999)}y`, `${"x".repeat(4999)}Y`, "x".repeat(5001)],
    ];
    for (const group of groups) {
      const mapped = group.map((k) => store.storageKey(`keyv:${k}`, "keyv"));
      expect(new Set(mapped).size, JSON.stringify(group)).toBe(group.length);
    }
    expect(store.storageKey("keyv:Foo", "keyv")).toBe("keyv/kkeyv/kkeyv~3a~46oo");
  });

  it("round trip through Keyv: each key reads its own value, and the iterator gives back exactly the keys set", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(keyArb, { minLength: 1, maxLength: 8 }), async (keys) => {
        const keyv = new Keyv({ store: new KeyvTerraphim({ storage }), namespace: `prop${run++}` });
        await Promise.all(keys.map((k, i) => keyv.set(k, { i })));
        for (const [i, k] of keys.entries()) expect(await keyv.get(k)).toEqual({ i });
        const seen: [string, unknown][] = [];
        for await (const entry of keyv.iterator!(undefined)) seen.push(entry as [string, unknown]);
        expect(new Map(seen)).toEqual(new Map(keys.map((k, i) => [k, { i }])));
        expect(seen).toHaveLength(keys.length);
        await keyv.clear();
        expect(await keyv.get(keys[0] as string)).toBeUndefined();
      }),
      { numRuns: 25 },
    );
  });

  it("a hashed (long) storage key holding another key's entry reads as absent, is not iterated, not deleted", async () => {
    const keyv = new Keyv({ store: new KeyvTerraphim({ storage }), namespace: "twins" });
    const a = `${"k".repeat(3000)}a`;
    const b = `${"k".repeat(3000)}b`;
    await keyv.set(a, "A");
    await keyv.set(b, "B");
    expect([await keyv.get(a), await keyv.get(b)]).toEqual(["A", "B"]);
    // Forge a SHA-256 twin: b's entry stored under a's storage key.
    const forged = store.storageKey(`twins:${a}`, "twins");
    await storage.saveValue(forged, { keyv: 1, key: `twins:${b}`, ns: "twins", text: '{"value":"B2"}' });
    expect(await keyv.get(a)).toBeUndefined();
    expect(await keyv.has(a)).toBe(false);
    expect(await keyv.delete(a)).toBe(false);
    expect(await storage.exists(forged)).toBe(true);
    const seen: string[] = [];
    for await (const [k] of keyv.iterator!(undefined)) seen.push(k as string);
    expect(seen).toEqual([b]);
  });

  it("checks root once: a valid, unreserved storage key", () => {
    expect(() => new KeyvTerraphim({ storage, root: ".terraphim-meta" })).toThrow(InvalidKeyError);
    expect(() => new KeyvTerraphim({ storage, root: "a//b" })).toThrow(InvalidKeyError);
    expect(() => new KeyvTerraphim({ storage: {} as DeviceStorage })).toThrow(
      /Expected `storage` to be a DeviceStorage, got Object/,
    );
    expect(new KeyvTerraphim({ storage, root: "apps/web/" }).storageKey("k", undefined)).toBe("apps/web/-/kk");
  });
});

describe("namespaces, TTL, values", () => {
  let storage: DeviceStorage;
  beforeAll(async () => {
    storage = await open(sqliteProfiles());
  });

  it("clear() deletes its namespace only: never another namespace, another root, or non-Keyv data", async () => {
    const a = new Keyv({ store: new KeyvTerraphim({ storage }), namespace: "a" });
    const b = new Keyv({ store: new KeyvTerraphim({ storage }), namespace: "b" });
    const none = new Keyv({ store: new KeyvTerraphim({ storage }), namespace: undefined });
    const other = new Keyv({ store: new KeyvTerraphim({ storage, root: "other" }), namespace: "a" });
    await storage.saveValue("document_x.json", { id: "x" });
    await storage.saveValue("keyv/not-an-entry.json", { id: "y" });
    for (const keyv of [a, b, none, other]) {
      await keyv.set("k1", "v1");
      await keyv.set("k2", "v2", 60_000);
    }
    await a.clear();
    expect(await a.get(["k1", "k2"])).toEqual([undefined, undefined]);
    for (const keyv of [b, none, other]) expect(await keyv.get(["k1", "k2"])).toEqual(["v1", "v2"]);
    await none.clear();
    expect(await none.get("k1")).toBeUndefined();
    expect(await b.get("k1")).toBe("v1");
    expect((await storage.loadValue("document_x.json")).value).toEqual({ id: "x" });
    expect((await storage.loadValue("keyv/not-an-entry.json")).value).toEqual({ id: "y" });
    // Gone from every profile, not only the cache.
    const sk = new KeyvTerraphim({ storage }).storageKey("a:k1", "a");
    for (const tier of storage.tiers) expect(await tier.exists(sk)).toBe(false);
  });

  it("ttl (ms) becomes the storage's TTL: the entry expires in every profile", async () => {
    const store = new KeyvTerraphim({ storage });
    store.namespace = "ttl";
    const before = Date.now();
    expect(await store.set("ttl:t", "v", 150)).toBe(true);
    const sk = store.storageKey("ttl:t");
    for (const tier of storage.tiers) {
      const entry = await tier.readEntry(sk);
      expect(entry?.expiresAt).toBeGreaterThanOrEqual(before + 150);
      expect(entry?.expiresAt).toBeLessThanOrEqual(Date.now() + 150);
    }
    expect(await store.get("ttl:t")).toBe("v");
    await new Promise((r) => setTimeout(r, 250));
    // The raw store, below Keyv's own `expires` check: the storage expired it.
    expect(await store.get("ttl:t")).toBeUndefined();
    expect(await store.has("ttl:t")).toBe(false);
    expect(await storage.exists(sk)).toBe(false);
    // No ttl, 0, or a non-finite one: no expiry.
    for (const ttl of [undefined, 0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await store.set("ttl:none", "v", ttl);
      expect((await storage.profile("sqlite").readEntry(store.storageKey("ttl:none")))?.expiresAt).toBeUndefined();
    }
  });

  it("stores what Keyv gives faithfully: exact strings, and any cloneable value with serialization off", async () => {
    const store = new KeyvTerraphim({ storage });
    const text = 'a "quoted" \u0000 \ud800 lone surrogate, \u00e9, \ud83d\ude00, {"value":1}';
    await store.set("raw:s", text);
    expect(await store.get("raw:s")).toBe(text);
    const keyv = new Keyv({ store, namespace: "raw", serialize: undefined, deserialize: undefined });
    const value = {
      buf: Buffer.from([0, 255, 1]),
      big: 2n ** 70n,
      when: new Date(0),
      map: new Map([[1, "x"]]),
      u: undefined,
    };
    await keyv.set("v", value);
    const back = await keyv.get("v");
    expect(back).toEqual(value);
    expect(Buffer.isBuffer(back.buf)).toBe(true);
    // A value V8 cannot clone is an error event naming its type, never its text.
    const errors: unknown[] = [];
    store.on("error", (e) => errors.push(e));
    expect(await store.set("raw:f", () => "secret-body")).toBe(false);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toMatch(/got a function$/);
    expect((errors[0] as Error).message).not.toContain("secret-body");
  });

  it("entries outlive the cache: a new storage over the same SQLite file reads and iterates them", async () => {
    const datadir = tempDir();
    const first = await open(sqliteProfiles(datadir));
    const keyv = new Keyv({ store: new KeyvTerraphim({ storage: first }), namespace: "p" });
    await keyv.set("Some Key/1", "one");
    await keyv.set("some key/1", "two");
    await first.close();
    const second = await open(sqliteProfiles(datadir));
    const again = new Keyv({ store: new KeyvTerraphim({ storage: second }), namespace: "p" });
    const seen = new Map<string, unknown>();
    for await (const [k, v] of again.iterator!(undefined)) seen.set(k as string, v);
    expect(seen).toEqual(
      new Map([
        ["Some Key/1", "one"],
        ["some key/1", "two"],
      ]),
    );
  });

  it.skipIf(!redisUp)(
    "entries outlive the cache: a new storage over the same Redis root reads and iterates them",
    async () => {
      const root = `/${redisPrefix}/persist/`;
      const first = await open(redisProfiles(root));
      const keyv = new Keyv({ store: new KeyvTerraphim({ storage: first }), namespace: "p" });
      await keyv.set("user:1", { name: "Ada" });
      await first.close();
      const second = await open(redisProfiles(root));
      const again = new Keyv({ store: new KeyvTerraphim({ storage: second }), namespace: "p" });
      expect(await again.get("user:1")).toEqual({ name: "Ada" });
      const seen: unknown[] = [];
      for await (const entry of again.iterator!(undefined)) seen.push(entry);
      expect(seen).toEqual([["user:1", { name: "Ada" }]]);
    },
  );
});

describe("errors are error events", () => {
  it("a closed storage: Keyv gets undefined / false and an E_CLOSED error event per call", async () => {
    const storage = await open(sqliteProfiles());
    const keyv = new Keyv({ store: new KeyvTerraphim({ storage }) });
    await keyv.set("a", 1);
    await storage.close();
    const errors: PersistenceError[] = [];
    keyv.on("error", (e: PersistenceError) => errors.push(e));
    expect(await keyv.get("a")).toBeUndefined();
    expect(await keyv.set("a", 2)).toBe(false);
    expect(await keyv.delete("a")).toBe(false);
    expect(await keyv.has("a")).toBe(false);
    await keyv.clear();
    expect(errors.map((e) => e.code)).toEqual(["E_CLOSED", "E_CLOSED", "E_CLOSED", "E_CLOSED", "E_CLOSED"]);
  });

  it("without a listener the call rejects (never lost); with throwOnErrors it emits and rejects", async () => {
    const storage = await open(sqliteProfiles());
    await storage.close();
    await expect(new KeyvTerraphim({ storage }).get("k")).rejects.toMatchObject({ code: "E_CLOSED" });
    const loud = new KeyvTerraphim({ storage, throwOnErrors: true });
    const errors: unknown[] = [];
    loud.on("error", (e) => errors.push(e));
    await expect(loud.set("k", "v")).rejects.toMatchObject({ code: "E_CLOSED" });
    await expect(loud.getMany(["k", "j"])).rejects.toMatchObject({ code: "E_CLOSED" });
    expect(errors).toHaveLength(2);
  });

  it("disconnect(): later calls fail; the storage closes only when the store owns it", async () => {
    const storage = await open(sqliteProfiles());
    const borrowed = new KeyvTerraphim({ storage });
    await borrowed.disconnect();
    expect(storage.closed).toBe(false);
    await expect(borrowed.get("k")).rejects.toThrow(/disconnected/);
    const owned = await KeyvTerraphim.fromSettings(
      { profiles: { memory: { type: "memory" } } },
      { storageOptions: { logger: silentLogger } },
    );
    await owned.disconnect();
    expect(owned.storage.closed).toBe(true);
  });

  it("a down profile: set is false with E_PARTIAL_WRITE, clear deletes what it can and names the profile", async () => {
    const port = await freePort(); // nothing listens there
    const storage = await open({
      memory: { type: "memory" },
      sqlite: { type: "sqlite", datadir: tempDir() },
      redis: { type: "redis", endpoint: `tcp://127.0.0.1:${port}`, root: `/${redisPrefix}/down/`, timeout_ms: "500" },
    });
    expect(storage.profile("redis").state.kind).toBe("down");
    const keyv = new Keyv({ store: new KeyvTerraphim({ storage }) });
    const errors: PersistenceError[] = [];
    keyv.on("error", (e: PersistenceError) => errors.push(e));
    expect(await keyv.set("k", "v")).toBe(false);
    expect(errors.map((e) => e.code)).toEqual(["E_PARTIAL_WRITE"]);
    await keyv.clear();
    // The listing that missed redis, then the deletes that could not reach it.
    expect(errors.map((e) => e.code)).toEqual(["E_PARTIAL_WRITE", "E_UNAVAILABLE", "E_PARTIAL_WRITE"]);
    expect(errors[1]?.message).toMatch(/could not be listed \(redis: /);
    expect(await storage.profile("sqlite").exists(new KeyvTerraphim({ storage }).storageKey("keyv:k", "keyv"))).toBe(
      false,
    );
  });
});
