/**
 * The Tier handle (`storage.profile(name)`) and the rules it carries on every
 * path: TTL on read, readEntry, exists, stat and list; the write fence; the
 * counters. Also the defects the architecture issue found when each path kept
 * its own copy of a rule (exists after a TTL, the closed-storage error, the
 * singleton load path).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import {
  ClosedError,
  DeviceStorage,
  InvalidKeyError,
  NotFoundError,
  Persistable,
  ProfileError,
  Tier,
  UnsupportedError,
} from "../src/index.js";
import { silentLogger } from "../src/logger.js";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-tier-"));
  dirs.push(d);
  return d;
};
const open: DeviceStorage[] = [];
const make = async (profiles: Record<string, Record<string, string>>) => {
  const s = await DeviceStorage.fromSettings({ profiles }, { logger: silentLogger });
  open.push(s);
  return s;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("defects found by the architecture issue", () => {
  it("exists() is false once the key's TTL has passed, as loadValue says NotFound (memory-only)", async () => {
    const s = await make({ memory: { type: "memory" } });
    await s.saveValue("t.json", { v: 1 }, { ttlMs: 50 });
    expect(await s.exists("t.json")).toBe(true);
    await sleep(120);
    expect(await s.exists("t.json")).toBe(false);
    await expect(s.loadValue("t.json")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("exists() honours the TTL in every tier it asks, not only the fastest", async () => {
    const s = await make({
      memory: { type: "memory", speed: "1" },
      sqlite: { type: "sqlite", datadir: tempDir(), speed: "2" },
    });
    await s.saveValue("t.json", { v: 1 }, { ttlMs: 60, profiles: ["sqlite"] });
    expect(await s.exists("t.json")).toBe(true);
    await sleep(120);
    expect(await s.exists("t.json")).toBe(false);
  });

  it("a closed storage rejects with the exported ClosedError on every entry point", async () => {
    const s = await make({ memory: { type: "memory" } });
    await s.close();
    const calls: [string, () => Promise<unknown>][] = [
      ["loadValue", () => s.loadValue("a.json")],
      ["loadValues", () => s.loadValues(["a.json"])],
      ["saveValue", () => s.saveValue("a.json", {})],
      ["saveBytes", () => s.saveBytes("a.json", new Uint8Array([123, 125]))],
      ["deleteValue", () => s.deleteValue("a.json")],
      ["exists", () => s.exists("a.json")],
      ["cachePrefetch", () => s.cachePrefetch(["a.json"])],
      ["cleanupOldEntries", () => s.cleanupOldEntries(1000)],
    ];
    for (const [name, call] of calls) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, name).toBeInstanceOf(ClosedError);
      expect((err as ClosedError).code, name).toBe("E_CLOSED");
    }
    expect(() => s.profile("memory")).toThrow(ClosedError);
  });

  it("Persistable.load() through the ready singleton neither awaits instance() nor imports anything", async () => {
    class Note extends Persistable {
      text = "";
      constructor(public id: string) {
        super();
      }
      getKey() {
        return `note_${this.normalizeKey(this.id)}.json`;
      }
    }
    await DeviceStorage.resetInstance();
    try {
      const storage = await DeviceStorage.initMemoryOnly();
      expect(DeviceStorage.current).toBe(storage);
      await Object.assign(new Note("a"), { text: "hi" }).save();
      const instance = vi.spyOn(DeviceStorage, "instance");
      const hits = storage.stats().memory!.hits;
      for (let i = 0; i < 50; i++) expect((await new Note("a").load()).text).toBe("hi");
      expect(instance).not.toHaveBeenCalled();
      expect(storage.stats().memory!.hits - hits).toBe(50);
      instance.mockRestore();
    } finally {
      await DeviceStorage.resetInstance();
    }
    expect(DeviceStorage.current).toBeUndefined();
  });
});

describe("Persistable.load()'s synchronous hit", () => {
  class Item extends Persistable {
    static schema = z.object({ id: z.string(), n: z.number() });
    n = 0;
    constructor(public id: string) {
      super();
    }
    getKey() {
      return `item_${this.normalizeKey(this.id)}.json`;
    }
  }

  it("gives way to the general path for an expired value, a miss and a value that no longer fits", async () => {
    const s = await make({
      memory: { type: "memory", speed: "1" },
      sqlite: { type: "sqlite", datadir: tempDir(), speed: "2" },
    });
    await s.saveValue("item_ttl.json", { id: "ttl", n: 1 }, { ttlMs: 40 });
    await sleep(80);
    await expect(new Item("ttl").withStorage(s).load()).rejects.toBeInstanceOf(NotFoundError);
    await s.saveValue("item_slow.json", { id: "slow", n: 2 }, { profiles: ["sqlite"] });
    const fromSqlite = await new Item("slow").withStorage(s).loadWithSource();
    expect([fromSqlite.value.n, fromSqlite.profile]).toEqual([2, "sqlite"]);
    await s.saveValue("item_old.json", { id: "old", n: 3 }, { profiles: ["sqlite"] });
    await s.saveValue("item_old.json", { id: "old", n: "three" }, { profiles: ["memory"] });
    const evolved = await new Item("old").withStorage(s).load();
    expect(evolved.n).toBe(3);
    expect(evolved).toBeInstanceOf(Item);
    await s.flush();
    expect(text(await s.profile("memory").read("item_old.json"))).toBe('{"id":"old","n":3}');
  });
});

describe("storage.profile(name): the Tier handle", () => {
  it("names what is wrong with an unknown or left-out profile", async () => {
    const s = await DeviceStorage.fromSettings(
      { profiles: { memory: { type: "memory" }, broken: { type: "sqlite" } } },
      { logger: silentLogger },
    );
    open.push(s);
    expect(s.profile("memory")).toBeInstanceOf(Tier);
    expect(() => s.profile("nope")).toThrow(/Unknown profile name: nope\. Available profiles: memory/);
    expect(() => s.profile("broken")).toThrow(ProfileError);
    expect(() => s.profile("broken")).toThrow(/not available: .*datadir/);
  });

  it("read, readEntry, stat, exists and list honour the TTL; reserved keys are never listed", async () => {
    const s = await make({ sqlite: { type: "sqlite", datadir: tempDir() } });
    const t = s.profile("sqlite");
    await t.write("keep.json", '{"k":1}');
    await t.write("short.json", '{"s":1}', { ttlMs: 60 });
    const at = Date.now() + 60_000;
    await t.write("abs.json", '{"a":1}', { expiresAt: at });
    expect((await t.readEntry("abs.json"))?.expiresAt).toBe(at);
    expect(text(await t.read("short.json"))).toBe('{"s":1}');
    expect((await t.stat("short.json")).expiresAt).toBeGreaterThan(Date.now());
    expect(await t.list()).toEqual(["abs.json", "keep.json", "short.json"]);
    await sleep(120);
    await expect(t.read("short.json")).rejects.toBeInstanceOf(NotFoundError);
    expect(await t.readEntry("short.json")).toBeUndefined();
    await expect(t.stat("short.json")).rejects.toBeInstanceOf(NotFoundError);
    expect(await t.exists("short.json")).toBe(false);
    expect(await t.list()).toEqual(["abs.json", "keep.json"]);
    // The raw operator does hold TTL metadata beside the values; the handle never shows it.
    expect((await t.op.list()).some((k) => k.startsWith(".terraphim-"))).toBe(true);
    expect((await t.readEntry("keep.json"))?.expiresAt).toBeUndefined();
  });

  it("counts reads and writes, checks keys and options, and says when a backend cannot list", async () => {
    const dir = tempDir();
    const s = await make({
      memory: { type: "memory" },
      redb: { type: "redb", datadir: join(dir, "x.redb"), table: "kv" },
    });
    const t = s.profile("redb");
    await t.write("a.json", '{"a":1}');
    await t.read("a.json");
    expect(s.stats().redb).toMatchObject({ bytesWritten: 7, bytesRead: 7 });
    await expect(t.list()).rejects.toBeInstanceOf(UnsupportedError);
    await expect(t.read("../x")).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(t.write("a.json", "{}", { ttlMs: -1 })).rejects.toThrow(
      /ttlMs.*positive number of milliseconds, got -1/,
    );
    // Infinity would be stored as JSON null ("never expires"): refused, like NaN.
    await expect(s.saveValue("inf.json", 1, { ttlMs: Number.POSITIVE_INFINITY })).rejects.toThrow(
      /ttlMs.*positive number of milliseconds \(finite\), got Infinity/,
    );
    await expect(t.write("a.json", "{}", { expiresAt: Number.NaN })).rejects.toThrow(/\(finite\), got NaN/);
    expect(await s.exists("inf.json")).toBe(false);
    await t.delete("a.json");
    expect(await t.exists("a.json")).toBe(false);
  });

  it("a tier write fences a write-back in flight, as a storage save does", async () => {
    // A time limit on sqlite keeps the fallback asynchronous, so the write lands while the read is in flight.
    const s = await make({
      memory: { type: "memory", speed: "1" },
      sqlite: { type: "sqlite", datadir: tempDir(), speed: "2", timeout_ms: "5000" },
    });
    await s.saveValue("f.json", { v: "old" }, { profiles: ["sqlite"] });
    const loading = s.loadValue("f.json");
    await s.profile("memory").write("f.json", JSON.stringify({ v: "new" }));
    expect((await loading).value).toEqual({ v: "old" });
    await s.flush();
    expect(text(await s.profile("memory").read("f.json"))).toBe('{"v":"new"}');
    expect(s.stats().memory!.writeBacksSkipped).toBe(1);
  });

  it("a write-back lives no longer than the cache tier's ttl_ms (its bound on copies), nor than the value", async () => {
    const s = await make({
      memory: { type: "memory", speed: "1", ttl_ms: "150" },
      sqlite: { type: "sqlite", datadir: tempDir(), speed: "2" },
    });
    await s.saveValue("w.json", { v: 1 }, { profiles: ["sqlite"] });
    await s.saveValue("short.json", { v: 1 }, { profiles: ["sqlite"], ttlMs: 60 });
    expect(await s.loadValue("w.json")).toMatchObject({ profile: "sqlite", writeBack: true });
    expect(await s.loadValue("short.json")).toMatchObject({ profile: "sqlite", writeBack: true });
    await s.flush();
    const copy = await s.profile("memory").readEntry("w.json");
    // Copied with the memory tier's own bound, though the value itself never expires in sqlite.
    expect(copy?.expiresAt).toBeGreaterThan(Date.now());
    expect(copy?.expiresAt).toBeLessThanOrEqual(Date.now() + 150);
    expect((await s.profile("memory").readEntry("short.json"))?.expiresAt).toBeLessThanOrEqual(Date.now() + 60);
    await sleep(200);
    expect(await s.profile("memory").readEntry("w.json")).toBeUndefined();
    expect(await s.loadValue("w.json")).toMatchObject({ profile: "sqlite", writeBack: true });
  });
});
