/**
 * The degraded-mode API without servers (issue 15): a durable profile hung at
 * start-up is `down`, not left out; loads of a key it may hold reject with
 * UnavailableError (Persistable.load too); retryDown() brings it into the
 * ranking once it answers; a volatile profile that cannot be asked does not
 * make absence uncertain.
 */
import { channel } from "node:diagnostics_channel";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CHANNELS, DeviceStorage, Document, NotFoundError, UnavailableError } from "../src/index.js";
import { silentLogger } from "../src/logger.js";
import { createOperator } from "../src/operators/index.js";
import { chaosOperator } from "../src/operators/wrappers/chaos.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), "tp-degraded-api-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("down at start-up, then retryDown()", () => {
  it("UnavailableError while down (loadValue, exists, loadValues, Persistable.load); ready and serving after retryDown()", async () => {
    const fs = await createOperator("fs", { root: join(dir, "fs") });
    await fs.write("document_a.json", JSON.stringify({ id: "a", url: "", body: "from fs", title: "", tags: [] }));
    const hung = chaosOperator(fs, { hang: true });
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "memory", op: await createOperator("memory") },
        { name: "fs", op: hung, timeoutMs: 100 },
      ],
      { logger: silentLogger },
    );
    try {
      expect(storage.ranked.map((t) => t.name)).toEqual(["memory"]);
      expect(storage.profile("fs").state).toMatchObject({ kind: "down" });
      const err = await storage.loadValue("document_a.json").catch((e) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err.unavailable).toEqual([{ profile: "fs", reason: expect.stringMatching(/down/) }]);
      await expect(storage.exists("document_a.json")).rejects.toBeInstanceOf(UnavailableError);
      const [one] = await storage.loadValues(["document_a.json"]);
      expect(one?.ok === false && one.error).toBeInstanceOf(UnavailableError);
      await expect(new Document("a").withStorage(storage).load()).rejects.toBeInstanceOf(UnavailableError);

      hung.faults.hang = false;
      hung.release();
      expect(await storage.retryDown()).toEqual(["fs"]);
      expect(storage.profile("fs").state).toEqual({ kind: "ready" });
      expect(storage.ranked.map((t) => t.name).sort()).toEqual(["fs", "memory"]);
      expect(storage.profileErrors.has("fs")).toBe(false);
      expect((await new Document("a").withStorage(storage).load()).body).toBe("from fs");
      await expect(storage.loadValue("nothing.json")).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      await storage.close();
    }
    await expect(storage.retryDown()).rejects.toThrow(/closed/);
  });

  it("a tier whose breaker opens is down (announced once), gets its trial in the background, and is ready again", async () => {
    const fs = chaosOperator(await createOperator("fs", { root: join(dir, "fs-breaker") }));
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "memory", op: await createOperator("memory"), speed: 1 },
        { name: "fs", op: fs, speed: 2 },
      ],
      { logger: silentLogger, liveRanking: { failureThreshold: 2, cooldownMs: 200 } },
    );
    const seen: { profile: string; to: { kind: string } }[] = [];
    const onMessage = (m: unknown) => seen.push(m as { profile: string; to: { kind: string } });
    channel(CHANNELS.state).subscribe(onMessage);
    try {
      fs.faults.fail = ["read", "exists"];
      for (let i = 0; i < 3; i++) await storage.loadValue("x.json").catch(() => {});
      expect(storage.profile("fs").state).toMatchObject({
        kind: "down",
        reason: expect.stringMatching(/circuit open/),
      });
      expect(storage.health().fs?.state?.kind).toBe("down");
      await expect(storage.loadValue("x.json")).rejects.toBeInstanceOf(UnavailableError);
      fs.faults.fail = [];
      const t0 = Date.now();
      while (storage.profile("fs").state.kind !== "ready" && Date.now() - t0 < 3000) await sleep(10);
      expect(storage.profile("fs").state).toEqual({ kind: "ready" });
      expect(seen.filter((m) => m.profile === "fs").map((m) => m.to.kind)).toEqual(["down", "ready"]);
    } finally {
      channel(CHANNELS.state).unsubscribe(onMessage);
      await storage.close();
    }
  });

  it("a volatile profile that fails does not make absence uncertain: NotFoundError", async () => {
    const mem = chaosOperator(await createOperator("memory"));
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "sqlite", op: await createOperator("sqlite", { datadir: join(dir, "sqlite") }), speed: 1 },
        { name: "cache", op: mem, speed: 2 },
      ],
      { logger: silentLogger, liveRanking: false },
    );
    try {
      mem.faults.fail = ["read", "exists"];
      await expect(storage.loadValue("absent.json")).rejects.toBeInstanceOf(NotFoundError);
      await expect(storage.exists("absent.json")).resolves.toBe(false);
    } finally {
      await storage.close();
    }
  });
});
