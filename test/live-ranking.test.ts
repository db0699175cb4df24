import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BackendError } from "../src/errors.js";
import { silentLogger } from "../src/logger.js";
import { memoryOperator as memoryOp } from "../src/operators/drivers/memory.js";
import { createOperator } from "../src/operators/index.js";
import { chaosOperator } from "../src/operators/wrappers/chaos.js";
import { DeviceStorage } from "../src/storage/device-storage.js";
import { LiveRanking } from "../src/storage/ranking.js";

const dir = mkdtempSync(join(tmpdir(), "tp-live-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("live ranking", () => {
  it("a profile slowed down drops out of first place within a few loads and returns when it recovers", async () => {
    const memory = chaosOperator(await createOperator("memory"));
    const fs = await createOperator("fs", { root: mkdtempSync(join(dir, "fs-")) });
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "memory", op: memory },
        { name: "fs", op: fs },
      ],
      // Recovery is seen through health checks: every 32 loads here, not once a second.
      { logger: silentLogger, liveRanking: { healthCheckMs: 0 } },
    );
    expect(storage.fastestProfile).toBe("memory");
    await storage.saveValue("k.json", { v: 1 });

    memory.faults.latencyMs = 30;
    let demotedAfter = 0;
    for (let i = 1; i <= 10 && storage.fastestProfile === "memory"; i++) {
      await storage.loadValue("k.json");
      demotedAfter = i;
    }
    expect(storage.fastestProfile).toBe("fs");
    expect(demotedAfter).toBeLessThanOrEqual(3);
    expect([...storage.ops.keys()]).toEqual(["fs", "memory"]);
    expect(storage.health().memory!.latencyUs).toBeGreaterThan(storage.health().fs!.latencyUs);
    // Reads now start at fs: memory is not asked on a hit.
    const before = memory.calls.read;
    expect((await storage.loadValue("k.json")).profile).toBe("fs");
    expect(memory.calls.read).toBe(before);

    memory.faults.latencyMs = 0;
    let recoveredAfter = 0;
    for (let i = 1; i <= 3000 && storage.fastestProfile !== "memory"; i++) {
      await storage.loadValue("k.json");
      await new Promise((r) => setImmediate(r)); // let background health checks finish
      recoveredAfter = i;
    }
    expect(storage.fastestProfile).toBe("memory");
    expect(recoveredAfter).toBeLessThan(3000);
    await storage.close();
  });

  it("a re-rank between the fastest profile's miss and the fallback still reads the new fastest", async () => {
    const memory = chaosOperator(await createOperator("memory"));
    const sqlite = await createOperator("sqlite", { datadir: mkdtempSync(join(dir, "sq-")) });
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "memory", op: memory },
        { name: "sqlite", op: sqlite },
      ],
      { logger: silentLogger, liveRanking: { window: 1 } },
    );
    await storage.saveValue("only-sqlite.json", { v: 1 }, { profiles: ["sqlite"] });
    memory.faults.latencyMs = 30; // this miss is slow enough to hand first place to sqlite
    const r = await storage.loadValue("only-sqlite.json");
    expect(storage.fastestProfile).toBe("sqlite");
    expect(r).toMatchObject({ value: { v: 1 }, profile: "sqlite", writeBack: false });
    await storage.close();
  });

  it("health checks of slower profiles are throttled in time, so hot loads do not flood a remote profile", async () => {
    const sqlite = chaosOperator(await createOperator("sqlite", { datadir: mkdtempSync(join(dir, "sq-")) }));
    const open = (liveRanking: { healthCheckMs?: number }) =>
      DeviceStorage.fromOperators(
        [
          { name: "memory", op: memoryOp() },
          { name: "sqlite", op: sqlite },
        ],
        { logger: silentLogger, liveRanking },
      );
    const checks = async (storage: DeviceStorage) => {
      expect(storage.fastestProfile).toBe("memory");
      await storage.saveValue("k.json", 1);
      const before = sqlite.calls.exists;
      for (let i = 0; i < 10_000; i++) await storage.loadValue("k.json");
      await storage.flush();
      await new Promise((r) => setImmediate(r));
      return sqlite.calls.exists - before;
    };
    const byDefault = await open({});
    // 10,000 hits take well under the default second: at most one or two checks, not 10,000 / 32.
    expect(await checks(byDefault)).toBeLessThanOrEqual(2);
    const every32 = await open({ healthCheckMs: 0 });
    expect(await checks(every32)).toBeGreaterThanOrEqual(300);
    await expect(open({ healthCheckMs: -1 })).rejects.toThrow(/healthCheckMs/);
    await every32.close();
    await byDefault.close();
  });

  it("one slow sample (a GC pause) does not move the ranking; a sustained slowdown does", () => {
    const a = { name: "a", rankLatencyUs: 1 };
    const b = { name: "b", rankLatencyUs: 5 };
    const changes: string[] = [];
    const live = new LiveRanking(
      [a, b],
      () => false,
      (order) => changes.push(order.map((e) => e.name).join(",")),
    );
    live.success("a", 500); // one pause
    for (let i = 0; i < 20; i++) live.success("a", 1);
    expect(live.order.map((e) => e.name)).toEqual(["a", "b"]);
    expect(changes).toEqual([]);
    for (let i = 0; i < 3; i++) live.success("a", 500); // three slow reads out of the last five
    expect(live.order.map((e) => e.name)).toEqual(["b", "a"]);
    expect(changes).toEqual(["b,a"]);
  });

  it("profiles with a speed override keep their rank", async () => {
    const memory = chaosOperator(await createOperator("memory"));
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "memory", op: memory, speed: 1 },
        { name: "sqlite", op: await createOperator("sqlite", { datadir: mkdtempSync(join(dir, "sq-")) }), speed: 2 },
      ],
      { logger: silentLogger },
    );
    await storage.saveValue("k.json", { v: 1 });
    memory.faults.latencyMs = 20;
    for (let i = 0; i < 5; i++) await storage.loadValue("k.json");
    expect(storage.fastestProfile).toBe("memory");
    await storage.close();
  });

  it("a repeatedly failing profile is taken out of the read path, then let back in after a cool-down", async () => {
    const sqlite = chaosOperator(await createOperator("sqlite", { datadir: mkdtempSync(join(dir, "sq-")) }));
    const fs = await createOperator("fs", { root: mkdtempSync(join(dir, "fs-")) });
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "memory", op: await createOperator("memory"), speed: 1 },
        { name: "sqlite", op: sqlite, speed: 2 },
        { name: "fs", op: fs, speed: 3 },
      ],
      { logger: silentLogger, liveRanking: { failureThreshold: 3, cooldownMs: 300, healthCheckMs: 0 } },
    );
    await storage.saveValue("k.json", { v: "durable" }, { profiles: ["sqlite", "fs"] });
    sqlite.faults.fail = ["read"];
    const load = async () => {
      const r = await storage.loadValue("k.json");
      await storage.deleteValue("k.json", { profiles: ["memory"] }); // keep missing the cache
      return r;
    };
    for (let i = 0; i < 3; i++) expect((await load()).profile).toBe("fs");
    expect(storage.health().sqlite!.open).toBe(true);
    expect([...storage.ops.keys()].at(-1)).toBe("sqlite");
    const reads = sqlite.calls.read;
    for (let i = 0; i < 5; i++) expect((await load()).profile).toBe("fs");
    expect(sqlite.calls.read).toBe(reads); // skipped while open

    sqlite.faults.fail = [];
    await new Promise((r) => setTimeout(r, 350));
    // After the cool-down a background health check is its trial; success lets it back in at its rank.
    for (let i = 0; i < 64 && storage.health().sqlite!.open; i++) {
      await load();
      await new Promise((r) => setImmediate(r));
    }
    expect(storage.health().sqlite!.open).toBe(false);
    expect([...storage.ops.keys()]).toEqual(["memory", "sqlite", "fs"]);
    expect((await load()).profile).toBe("sqlite");
    await storage.close();
  });

  it("with every profile tripped, a load says so instead of pretending the key is absent", async () => {
    // A durable profile (fs): a volatile one that could not be asked does not make absence uncertain (issue 15).
    const a = chaosOperator(await createOperator("fs", { root: mkdtempSync(join(dir, "fs-")) }));
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "a", op: await createOperator("memory"), speed: 1 },
        { name: "b", op: a, speed: 2 },
      ],
      { logger: silentLogger, liveRanking: { failureThreshold: 2, cooldownMs: 10_000 } },
    );
    a.faults.fail = ["read"];
    for (let i = 0; i < 3; i++) await storage.loadValue("x.json").catch(() => {});
    const err = await storage.loadValue("x.json").catch((e) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(err.message).toMatch(/circuit open/);
    await storage.close();
  });
});
