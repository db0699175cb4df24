/**
 * The seed's planned features on real backends: prefetch, quotas, TTL and
 * age-based cleanup; and that values written with them stay readable by the
 * Rust layout rules (metadata lives beside values, never inside them).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { maybeDecompress } from "../src/codec.js";
import { NotFoundError, PartialWriteError, ProfileError, QuotaExceededError } from "../src/errors.js";
import { silentLogger } from "../src/logger.js";
import { createOperator } from "../src/operators/index.js";
import { chaosOperator } from "../src/operators/wrappers/chaos.js";
import { DeviceStorage } from "../src/storage/device-storage.js";
import { requireServer } from "./helpers/servers.js";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-features-"));
  dirs.push(d);
  return d;
};
const open: DeviceStorage[] = [];
const make = async (profiles: Record<string, Record<string, string>>) => {
  const s = await DeviceStorage.fromSettings({ profiles }, { logger: silentLogger });
  open.push(s);
  return s;
};
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Reads a value the way the Rust crate does: raw bytes, maybe ZSTD, then JSON. */
const rustRead = (bytes: Uint8Array) => JSON.parse(Buffer.from(maybeDecompress(bytes)).toString("utf8"));

describe("prefetch", () => {
  it("copies keys from slower profiles into the fastest, and the next loads hit it", async () => {
    const s = await make({
      memory: { type: "memory", speed: "1" },
      sqlite: { type: "sqlite", datadir: tempDir(), speed: "2" },
    });
    for (let i = 0; i < 50; i++) await s.saveValue(`document_p${i}.json`, { i }, { profiles: ["sqlite"] });
    await s.saveValue("document_cached.json", { c: 1 });
    const keys = [
      ...Array.from({ length: 50 }, (_, i) => `document_p${i}.json`),
      "document_cached.json",
      "document_none.json",
    ];
    const r = await s.cachePrefetch(keys, { concurrency: 8 });
    expect(r).toEqual({ found: 50, alreadyCached: 1, missing: 1, failed: [] });
    const before = s.stats();
    for (let i = 0; i < 50; i++) expect((await s.loadValue(`document_p${i}.json`)).profile).toBe("memory");
    const after = s.stats();
    expect(after.memory!.hits - before.memory!.hits).toBe(50);
    expect(after.sqlite!.fallbacks - before.sqlite!.fallbacks).toBe(0);
  });

  it("bounds concurrency and reports failures per key", async () => {
    const slow = chaosOperator(await createOperator("sqlite", { datadir: tempDir() }));
    const s = await DeviceStorage.fromOperators(
      [
        { name: "memory", op: await createOperator("memory"), speed: 1 },
        { name: "slow", op: slow, speed: 2 },
      ],
      { logger: silentLogger },
    );
    open.push(s);
    for (let i = 0; i < 20; i++) await s.saveValue(`k${i}.json`, { i }, { profiles: ["slow"] });
    await slow.inner.write("bad.json", "{nope");
    let inFlight = 0;
    let peak = 0;
    const read = slow.read;
    slow.read = async (k) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      try {
        await new Promise((r) => setTimeout(r, 5));
        return await read(k);
      } finally {
        inFlight--;
      }
    };
    const r = await s.cachePrefetch([...Array.from({ length: 20 }, (_, i) => `k${i}.json`), "bad.json"], {
      concurrency: 4,
    });
    expect(peak).toBeLessThanOrEqual(4);
    expect(r.found).toBe(20);
    expect(r.failed.map((f) => [f.key, f.error.name])).toEqual([["bad.json", "DeserializeError"]]);
    await expect(s.cachePrefetch(["a"], { concurrency: 0 })).rejects.toThrow(/concurrency/);
  });
});

describe("quotas", () => {
  it("an LRU cache profile never exceeds max_items and keeps the recently used", async () => {
    const s = await make({
      memory: { type: "memory", speed: "1", max_items: "10" },
      sqlite: { type: "sqlite", datadir: tempDir(), speed: "2" },
    });
    for (let i = 0; i < 10; i++) await s.saveValue(`k${i}.json`, { i });
    await s.loadValue("k0.json"); // k0 becomes the most recently used
    for (let i = 10; i < 15; i++) {
      await s.saveValue(`k${i}.json`, { i });
      expect(s.stats().memory!.usage!.items).toBeLessThanOrEqual(10);
    }
    const mem = s.ops.get("memory")!.op;
    const held = (await mem.list()).filter((k) => !k.startsWith("."));
    // k1..k5 were the least recently used; k0 was read after them, so it stays.
    expect(held.sort()).toEqual([
      "k0.json",
      "k10.json",
      "k11.json",
      "k12.json",
      "k13.json",
      "k14.json",
      "k6.json",
      "k7.json",
      "k8.json",
      "k9.json",
    ]);
    expect(s.stats().memory!.usage).toMatchObject({ items: 10, maxItems: 10, policy: "lru", evictions: 5 });
    // Evicted from the cache only: the durable profile still has everything, and a load refills the cache.
    expect((await s.loadValue("k1.json")).profile).toBe("sqlite");
  });

  it("an LRU cache profile stays under max_size in bytes", async () => {
    const s = await make({ memory: { type: "memory", max_size: "1KiB" } });
    for (let i = 0; i < 40; i++) await s.saveValue(`k${i}.json`, { pad: "x".repeat(90) });
    const u = s.stats().memory!.usage!;
    expect(u.bytes).toBeLessThanOrEqual(1024);
    expect(u.maxSize).toBe(1024);
    await expect(s.saveValue("huge.json", { pad: "x".repeat(2000) })).rejects.toBeInstanceOf(PartialWriteError);
  });

  it("a durable profile at quota refuses the write with QuotaExceededError and keeps its data", async () => {
    const dir = tempDir();
    const s = await make({
      memory: { type: "memory", speed: "1" },
      sqlite: { type: "sqlite", datadir: dir, speed: "2", max_items: "3" },
    });
    for (let i = 0; i < 3; i++) await s.saveValue(`d${i}.json`, { i });
    const err = await s.saveValue("d3.json", { i: 3 }).catch((e) => e);
    expect(err).toBeInstanceOf(PartialWriteError);
    const failed = err.outcomes.find((o: { ok: boolean }) => !o.ok);
    expect(failed.profile).toBe("sqlite");
    expect(failed.error).toBeInstanceOf(QuotaExceededError);
    expect(failed.error.code).toBe("E_QUOTA");
    expect(failed.error.message).toMatch(/3\/3 items/);
    // Overwriting an existing key is allowed at quota; nothing stored was lost.
    await s.saveValue("d0.json", { i: "again" });
    const sqlite = s.ops.get("sqlite")!.op;
    expect((await sqlite.list()).filter((k) => !k.startsWith("."))).toEqual(["d0.json", "d1.json", "d2.json"]);
    expect(rustRead(await sqlite.read("d0.json"))).toEqual({ i: "again" });
    expect(s.stats().sqlite!.usage).toMatchObject({ items: 3, policy: "reject" });
  });

  it("existing content counts at start-up; bad quota options and unlistable backends are profile errors", async () => {
    const dir = tempDir();
    const a = await make({ sqlite: { type: "sqlite", datadir: dir } });
    for (let i = 0; i < 5; i++) await a.saveValue(`x${i}.json`, { i });
    await a.close();
    const b = await make({ sqlite: { type: "sqlite", datadir: dir, max_items: "5" } });
    expect(b.stats().sqlite!.usage!.items).toBe(5);
    await expect(b.saveValue("x5.json", {})).rejects.toBeInstanceOf(PartialWriteError);
    const c = await make({
      m: { type: "memory" },
      bad1: { type: "memory", max_size: "lots" },
      bad2: { type: "memory", quota_policy: "fifo", max_items: "1" },
      redb: { type: "redb", datadir: join(tempDir(), "q.redb"), table: "t", max_items: "10" },
    });
    expect(c.profileErrors.get("bad1")!.message).toMatch(/profiles\.bad1\.max_size/);
    expect(c.profileErrors.get("bad2")!.message).toMatch(/profiles\.bad2\.quota_policy/);
    expect(c.profileErrors.get("redb")).toBeInstanceOf(ProfileError);
    expect(c.profileErrors.get("redb")!.message).toMatch(/needs a backend that can list/);
  });

  it("a redis cache profile with an LRU quota evicts what this process wrote", async () => {
    if (!(await requireServer("redis", "127.0.0.1", 6379))) return;
    const root = `/tp-quota-${process.pid}-${Date.now()}/`;
    const s = await make({
      redis: { type: "redis", endpoint: "tcp://127.0.0.1:6379", root, max_items: "3", quota_policy: "lru", speed: "1" },
      sqlite: { type: "sqlite", datadir: tempDir(), speed: "2" },
    });
    for (let i = 0; i < 6; i++) await s.saveValue(`r${i}.json`, { i });
    const redis = s.ops.get("redis")!.op;
    const present = [];
    for (let i = 0; i < 6; i++) if (await redis.exists(`r${i}.json`)) present.push(i);
    expect(present).toEqual([3, 4, 5]);
    expect(s.stats().redis!.usage).toMatchObject({ items: 3, evictions: 3, policy: "lru" });
    for (let i = 3; i < 6; i++) await s.deleteValue(`r${i}.json`);
  });
});

describe("TTL", () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("an expired value is not returned from any tier, and write-back does not extend it", async () => {
    const dir = tempDir();
    const s = await make({
      memory: { type: "memory", speed: "1" },
      sqlite: { type: "sqlite", datadir: dir, speed: "2" },
      fs: { type: "fs", root: tempDir(), speed: "3" },
    });
    await s.saveValue("t.json", { v: 1 }, { ttlMs: 400, profiles: ["sqlite", "fs"] });
    const first = await s.loadValue("t.json");
    expect(first.profile).toBe("sqlite");
    await s.flush();
    expect((await s.loadValue("t.json")).profile).toBe("memory"); // written back, with the same expiry
    await sleep(450);
    await expect(s.loadValue("t.json")).rejects.toBeInstanceOf(NotFoundError);
    await s.flush(); // expired copies are purged in the background
    for (const name of ["memory", "sqlite"]) expect(await s.ops.get(name)!.op.exists("t.json"), name).toBe(false);
  });

  it("the TTL survives a restart (metadata beside the value), and the value stays Rust-readable", async () => {
    const dir = tempDir();
    const a = await make({ sqlite: { type: "sqlite", datadir: dir } });
    await a.saveValue("document_ttl.json", { id: "ttl", body: "x" }, { ttlMs: 300 });
    await a.saveValue("document_forever.json", { id: "forever" });
    // A Rust reader sees plain JSON values; the sidecars are separate keys it never asks for.
    const raw = a.ops.get("sqlite")!.op;
    expect(rustRead(await raw.read("document_ttl.json"))).toEqual({ id: "ttl", body: "x" });
    expect((await raw.list()).filter((k) => k.startsWith(".terraphim-meta/"))).toEqual([
      ".terraphim-meta/enabled",
      ".terraphim-meta/k/document_ttl.json",
    ]);
    await a.close();
    await sleep(350);
    const b = await make({ sqlite: { type: "sqlite", datadir: dir } });
    await expect(b.loadValue("document_ttl.json")).rejects.toBeInstanceOf(NotFoundError);
    expect((await b.loadValue("document_forever.json")).value).toEqual({ id: "forever" });
  });

  it("saving again without a TTL makes the value permanent; a profile's ttl_ms is its default", async () => {
    const s = await make({
      memory: { type: "memory", speed: "1", ttl_ms: "200" },
      sqlite: { type: "sqlite", datadir: tempDir(), speed: "2" },
    });
    await s.saveValue("a.json", { v: 1 }, { ttlMs: 200 });
    await s.saveValue("a.json", { v: 2 }, { profiles: ["sqlite"] });
    await s.saveValue("b.json", { v: 1 }); // memory keeps it 200 ms, sqlite forever
    await sleep(250);
    expect((await s.loadValue("a.json")).value).toEqual({ v: 2 });
    const b = await s.loadValue("b.json");
    expect(b).toMatchObject({ value: { v: 1 }, profile: "sqlite" });
    await expect(s.saveValue("c.json", {}, { ttlMs: -5 })).rejects.toThrow(/ttlMs/);
  });

  it("a TTL on a backend that cannot list (redb) is still honoured", async () => {
    const file = join(tempDir(), "ttl.redb");
    const a = await make({ redb: { type: "redb", datadir: file, table: "t" } });
    await a.saveValue("r.json", { v: 1 }, { ttlMs: 250 });
    expect((await a.loadValue("r.json")).value).toEqual({ v: 1 });
    await a.close();
    const b = await make({ redb: { type: "redb", datadir: file, table: "t" } });
    expect((await b.loadValue("r.json")).value).toEqual({ v: 1 });
    await sleep(300);
    await expect(b.loadValue("r.json")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("cleanupOldEntries removes old entries where age is known and says where it is not", async () => {
    const s = await make({
      memory: { type: "memory", speed: "1" },
      sqlite: { type: "sqlite", datadir: tempDir(), speed: "2" },
      fs: { type: "fs", root: tempDir(), speed: "3" },
    });
    await s.saveValue("old.json", { v: "old" });
    await s.saveValue("short.json", { v: 1 }, { ttlMs: 50 });
    await sleep(120);
    await s.saveValue("new.json", { v: "new" });
    const report = await s.cleanupOldEntries(100);
    expect(report.memory).toEqual({ removed: 1, expired: 1 });
    expect(report.fs).toEqual({ removed: 1, expired: 1 });
    expect(report.sqlite).toMatchObject({ removed: 0, expired: 1 });
    expect(report.sqlite!.skipped).toMatch(/cannot tell age: sqlite keeps no modification time/);
    expect(await s.ops.get("fs")!.op.exists("old.json")).toBe(false);
    expect(await s.ops.get("fs")!.op.exists("new.json")).toBe(true);
    expect(await s.ops.get("sqlite")!.op.exists("old.json")).toBe(true);
  });
});
