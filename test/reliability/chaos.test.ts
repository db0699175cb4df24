/**
 * The chaos operator itself (latency, jitter, transient and permanent errors,
 * fail-N-times, random failures, hangs released late, writes failing after N
 * bytes, per-method selection), and what DeviceStorage does with each fault:
 * retries with backoff for transient errors only, time limits on hung calls,
 * late-landing writes kept in order, torn values read around.
 */
import { afterEach, describe, expect, it } from "vitest";
import { BackendError, DeserializeError, PartialWriteError, TimeoutError } from "../../src/errors.js";
import { silentLogger } from "../../src/logger.js";
import { createOperator } from "../../src/operators/index.js";
import type { Operator } from "../../src/operators/types.js";
import { CHAOS_METHODS, chaosOperator, seededRandom } from "../../src/operators/wrappers/chaos.js";
import { DeviceStorage } from "../../src/storage/device-storage.js";
import { readOrUndefined, removeTempDirs, tempDir } from "./_util.js";

const open: DeviceStorage[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  removeTempDirs();
});
const text = async (op: Operator, key: string) => {
  const b = await readOrUndefined(op, key);
  return b === undefined ? undefined : Buffer.from(b).toString();
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("chaos operator", () => {
  it("fails the next N calls of the chosen methods, then succeeds; other methods are untouched", async () => {
    const c = chaosOperator(await createOperator("memory"), { methods: ["write"], failTimes: 2, transient: true });
    const first = await c.write("k", "1").catch((e) => e);
    expect(first).toBeInstanceOf(BackendError);
    expect(first.transient).toBe(true);
    await expect(c.write("k", "1")).rejects.toThrow(/transient write failure/);
    await c.write("k", "ok");
    expect(await text(c, "k")).toBe("ok");
    expect(c.faults.failTimes).toBe(0);
    expect(c.calls.write).toBe(3);
    expect(c.injected.write).toBe(2);
    expect(c.injected.read).toBe(0);
  });

  it("`fail` lists always-failing methods; permanent unless `transient`", async () => {
    const c = chaosOperator(await createOperator("memory"), { fail: ["read", "exists"] });
    await c.write("k", "v");
    for (const call of [() => c.read("k"), () => c.exists("k")]) {
      const err = await call().catch((e) => e);
      expect(err).toBeInstanceOf(BackendError);
      expect(err.transient).toBe(false);
    }
    expect((await c.stat("k")).contentLength).toBe(1);
  });

  it("failRate with a seeded random source fails the same calls on every run", async () => {
    const pattern = async () => {
      const c = chaosOperator(await createOperator("memory"), { failRate: 0.3, random: seededRandom(42) });
      const out: boolean[] = [];
      for (let i = 0; i < 40; i++)
        out.push(
          await c.write(`k${i}`, "v").then(
            () => true,
            () => false,
          ),
        );
      return out;
    };
    const a = await pattern();
    expect(await pattern()).toEqual(a);
    const failures = a.filter((ok) => !ok).length;
    expect(failures).toBeGreaterThan(4);
    expect(failures).toBeLessThan(24);
  });

  it("latency, jitter and reply delay apply to the chosen methods only", async () => {
    const c = chaosOperator(await createOperator("memory"), { methods: ["read"], latencyMs: 200, jitterMs: 20 });
    let t0 = performance.now();
    await c.write("k", "v");
    expect(performance.now() - t0).toBeLessThan(150);
    t0 = performance.now();
    await c.read("k");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(199);
    c.faults = { replyDelayMs: 100 };
    t0 = performance.now();
    await c.write("k2", "v");
    // A slow reply: the call returns late although the backend answered at once.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(99);
  });

  it("a hung call waits for release(), then reaches the backend late", async () => {
    const c = chaosOperator(await createOperator("memory"), { hang: ["write"] });
    let settled = false;
    const w = c.write("k", "late").then(() => {
      settled = true;
    });
    await sleep(30);
    expect(settled).toBe(false);
    expect(c.hung).toBe(1);
    expect(await c.inner.exists("k")).toBe(false);
    expect(await text(c, "k")).toBeUndefined(); // reads are not hung
    c.faults.hang = false;
    expect(c.release()).toBe(1);
    await w;
    expect(await text(c.inner, "k")).toBe("late");
  });

  it("hang: true hangs every method in `methods`", async () => {
    const c = chaosOperator(await createOperator("memory"), { hang: true, methods: ["read", "stat"] });
    await c.write("k", "v");
    const r = c.read("k");
    const s = c.stat("k");
    await sleep(10);
    expect(c.hung).toBe(2);
    c.faults.hang = false;
    c.release();
    expect(Buffer.from(await r).toString()).toBe("v");
    expect((await s).contentLength).toBe(1);
  });

  it("a write failing after N bytes leaves nothing by default (an atomic backend)", async () => {
    const c = chaosOperator(await createOperator("memory"), { failAfterBytes: 4 });
    await c.write("small", "1234");
    await expect(c.write("big", "123456789")).rejects.toThrow(/after 4 of 9 bytes/);
    expect(await c.inner.exists("big")).toBe(false);
    expect(await text(c.inner, "small")).toBe("1234");
  });

  it("with tornWrites the backend keeps the first N bytes (a non-atomic backend)", async () => {
    const c = chaosOperator(await createOperator("memory"), { failAfterBytes: 5, tornWrites: true });
    await expect(c.write("k", '{"a":"long value"}')).rejects.toThrow(/torn/);
    expect(await text(c.inner, "k")).toBe('{"a":');
    expect(c.injected.write).toBe(1);
  });

  it("a custom error factory replaces the BackendError", async () => {
    const c = chaosOperator(await createOperator("memory"), {
      fail: ["delete"],
      error: (method, path) => new TimeoutError(`fake ${method} ${path}`),
    });
    const err = await c.delete("x").catch((e) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err.message).toBe("fake delete x");
  });

  it("hides readSync and passes capabilities through", async () => {
    const inner = await createOperator("sqlite", { connection_string: ":memory:" });
    const c = chaosOperator(inner);
    expect(c.readSync).toBeUndefined();
    expect(c.capabilities).toEqual({ ...inner.capabilities, syncRead: false });
    expect(CHAOS_METHODS).toEqual(["read", "write", "delete", "stat", "exists", "list"]);
    await c.close();
  });
});

/** memory (fastest) over sqlite, both wrapped, with fixed speeds. */
async function pair(options: { timeoutMs?: number; retries?: number } = {}) {
  const memory = chaosOperator(await createOperator("memory"));
  const sqlite = chaosOperator(await createOperator("sqlite", { datadir: tempDir() }));
  const storage = await DeviceStorage.fromOperators(
    [
      { name: "memory", op: memory, speed: 1, ...options },
      { name: "sqlite", op: sqlite, speed: 2, ...options },
    ],
    { logger: silentLogger, probeReads: 1 },
  );
  open.push(storage);
  return { memory, sqlite, storage };
}

describe("DeviceStorage under injected faults", () => {
  it("retries transient errors with backoff until they pass", async () => {
    const { sqlite, storage } = await pair({ retries: 3 });
    const before = sqlite.calls.write;
    sqlite.faults = { methods: ["write"], failTimes: 2, transient: true };
    await storage.saveValue("k.json", { v: 1 });
    expect(sqlite.calls.write - before).toBe(3);
    expect(await text(sqlite.inner, "k.json")).toBe('{"v":1}');
  });

  it("gives up after `retries` transient failures, naming the profile", async () => {
    const { sqlite, storage } = await pair({ retries: 2 });
    const before = sqlite.calls.write;
    sqlite.faults = { methods: ["write"], failTimes: 10, transient: true };
    const err = await storage.saveValue("k.json", 1).catch((e) => e);
    expect(err).toBeInstanceOf(PartialWriteError);
    expect(err.outcomes.filter((o: { ok: boolean }) => !o.ok).map((o: { profile: string }) => o.profile)).toEqual([
      "sqlite",
    ]);
    expect(sqlite.calls.write - before).toBe(3);
  });

  it("never retries a permanent error", async () => {
    const { sqlite, storage } = await pair({ retries: 3 });
    const before = sqlite.calls.write;
    sqlite.faults = { methods: ["write"], failTimes: 10, transient: false };
    await expect(storage.saveValue("k.json", 1)).rejects.toBeInstanceOf(PartialWriteError);
    expect(sqlite.calls.write - before).toBe(1);
  });

  it("a transient read failure of the fastest profile is retried there, without a fallback", async () => {
    const { memory, sqlite, storage } = await pair({ retries: 1 });
    await storage.saveValue("k.json", { v: 2 });
    memory.faults = { methods: ["read"], failTimes: 1, transient: true };
    const reads = sqlite.calls.read;
    expect(await storage.loadValue("k.json")).toMatchObject({ value: { v: 2 }, profile: "memory" });
    expect(sqlite.calls.read).toBe(reads);
  });

  it("a hung profile costs one time limit: saves fail there with a TimeoutError, loads are served by the next", async () => {
    const { memory, storage } = await pair({ timeoutMs: 150 });
    await storage.saveValue("k.json", { v: 3 });
    memory.faults.hang = true;
    let t0 = performance.now();
    const err = await storage.saveValue("k.json", { v: 4 }).catch((e) => e);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err).toBeInstanceOf(PartialWriteError);
    const failed = err.outcomes.find((o: { ok: boolean }) => !o.ok);
    expect(failed.profile).toBe("memory");
    expect(failed.error).toBeInstanceOf(TimeoutError);
    expect(failed.error.code).toBe("E_TIMEOUT");
    t0 = performance.now();
    expect(await storage.loadValue("k.json")).toMatchObject({ value: { v: 4 }, profile: "sqlite" });
    expect(performance.now() - t0).toBeLessThan(1000);
    memory.faults.hang = false;
    memory.release();
  });

  it("a write that timed out and lands late never overwrites a newer save", async () => {
    const { sqlite, storage } = await pair({ timeoutMs: 100 });
    await storage.saveValue("k.json", { v: "old" });
    sqlite.faults.hang = ["write"];
    await expect(storage.saveValue("k.json", { v: "stale" })).rejects.toBeInstanceOf(PartialWriteError);
    // The backend answers again, but the stale write is still on its way.
    sqlite.faults.hang = false;
    const newer = storage.saveValue("k.json", { v: "new" }).catch((e) => e);
    await sleep(20);
    expect(sqlite.release()).toBe(1); // the stale write lands now, late
    await newer;
    await sleep(20);
    expect(await text(sqlite.inner, "k.json")).toBe('{"v":"new"}');
    expect((await storage.loadValue("k.json")).value).toEqual({ v: "new" });
  });

  it("a shared tier never applies an acknowledged save a second time over another instance's newer one", async () => {
    // One store, two instances: A's calls go through the chaos wrapper (time limit 100 ms), B's straight in.
    const backend = await createOperator("memory");
    const chaos = chaosOperator(backend);
    const a = await DeviceStorage.fromOperators([{ name: "s", op: chaos, shared: true, timeoutMs: 100 }], {
      logger: silentLogger,
      liveRanking: false,
    });
    const b = await DeviceStorage.fromOperators([{ name: "s", op: backend, shared: true }], {
      logger: silentLogger,
      liveRanking: false,
    });
    const probeWrites = chaos.calls.write; // the start-up probe's
    try {
      chaos.faults.hang = ["write"];
      await expect(a.saveValue("k.json", { v: 1 })).rejects.toBeInstanceOf(PartialWriteError);
      chaos.faults.hang = false;
      // v2 waits for the timed-out v1 to end (it lands when released), then is applied: acknowledged.
      const v2 = a.saveValue("k.json", { v: 2 }).then(
        () => "ok",
        (e: Error) => e,
      );
      await sleep(20);
      expect(chaos.release()).toBe(1);
      expect(await v2).toBe("ok");
      await b.saveValue("k.json", { v: 3 });
      await sleep(100);
      // Before, v1's late landing made A apply v2 once more, over B's newer v3.
      expect(await text(backend, "k.json")).toBe('{"v":3}');

      // A write whose time ran out while it waited behind a hung one is never sent (it failed for certain).
      chaos.faults.hang = ["write"];
      await expect(a.saveValue("k.json", { v: 4 })).rejects.toBeInstanceOf(PartialWriteError);
      chaos.faults.hang = false;
      await expect(a.saveValue("k.json", { v: 5 })).rejects.toBeInstanceOf(PartialWriteError);
      await b.saveValue("k.json", { v: 6 });
      expect(chaos.release()).toBe(1); // v4 lands late: its outcome was unknown
      await sleep(100);
      expect(await text(backend, "k.json")).toBe('{"v":4}');
      expect(chaos.calls.write - probeWrites).toBe(3); // v1, v2, v4: never v5
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("a write that fails after N bytes in one profile: PartialWriteError, nothing stored there (atomic)", async () => {
    const { memory, sqlite, storage } = await pair();
    sqlite.faults = { failAfterBytes: 10 };
    const err = await storage.saveValue("k.json", { body: "x".repeat(100) }).catch((e) => e);
    expect(err).toBeInstanceOf(PartialWriteError);
    expect(await sqlite.inner.exists("k.json")).toBe(false);
    expect(JSON.parse((await text(memory.inner, "k.json"))!)).toEqual({ body: "x".repeat(100) });
  });

  it("a torn value in the fastest profile is read around and repaired from the next", async () => {
    const { memory, sqlite, storage } = await pair();
    memory.faults = { failAfterBytes: 12, tornWrites: true };
    const value = { body: "y".repeat(200) };
    await expect(storage.saveValue("k.json", value)).rejects.toBeInstanceOf(PartialWriteError);
    expect((await text(memory.inner, "k.json"))!.length).toBe(12); // torn
    memory.faults = {};
    const r = await storage.loadValue("k.json");
    expect(r).toMatchObject({ value, profile: "sqlite", writeBack: true });
    await storage.flush();
    expect(JSON.parse((await text(memory.inner, "k.json"))!)).toEqual(value);
    expect(await text(sqlite.inner, "k.json")).toBe(JSON.stringify(value));
  });

  it("a value torn in every profile is a DeserializeError, not 'not found'", async () => {
    const { memory, sqlite, storage } = await pair();
    memory.faults = { failAfterBytes: 7, tornWrites: true };
    sqlite.faults = { failAfterBytes: 9, tornWrites: true };
    await expect(storage.saveValue("k.json", { body: "z".repeat(50) })).rejects.toBeInstanceOf(PartialWriteError);
    await expect(storage.loadValue("k.json")).rejects.toBeInstanceOf(DeserializeError);
  });

  it("random transient faults on every method of the slower profile never surface as wrong data", async () => {
    const { sqlite, storage } = await pair({ retries: 2 });
    sqlite.faults = { failRate: 0.2, transient: true, random: seededRandom(7), jitterMs: 2 };
    const expected = new Map<string, number>();
    for (let i = 0; i < 120; i++) {
      const key = `k${i % 10}.json`;
      try {
        await storage.saveValue(key, i);
        expected.set(key, i);
      } catch (e) {
        expect(e).toBeInstanceOf(PartialWriteError); // only after 3 failed tries in a row
        expected.set(key, i); // memory has it
      }
      await storage.deleteValue(key, { profiles: ["memory"] }).catch(() => {});
      const r = await storage.loadValue(key).catch((e) => e);
      // Either the right value (from sqlite) or a typed error; never an older value.
      if (r instanceof Error) expect(r).toBeInstanceOf(BackendError);
      else if (r.value !== expected.get(key)) {
        // sqlite missed this save (all tries failed): it holds an older value, which is what it has.
        expect(await text(sqlite.inner, key)).toBe(String(r.value));
      }
    }
    expect(sqlite.injected.write + sqlite.injected.read).toBeGreaterThan(10);
  });
});
