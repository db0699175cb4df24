/**
 * The write-back race across processes (issue 13): instance B, a child
 * process, falls back to the shared redis tier for `v1`, its read slowed by
 * the chaos wrapper; instance A (this process) saves `v2` meanwhile. B's slow
 * load returns `v1` (it began before the save) but B's memory tier never
 * caches it: v2's message marks the read stale and its write-back is skipped.
 * Real servers: the machine's Redis (tier and bus).
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type DeviceStorage, silentLogger } from "../../src/index.js";
import { deleteRedisKeys, MACHINE_REDIS, openInstance, serversFor, uid } from "./_gaps-util.js";

const CHILD = fileURLToPath(new URL("./_race-child.ts", import.meta.url));
const ok = await serversFor({ redis: true });
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  await Promise.all(cleanup.map((f) => f()));
  await deleteRedisKeys("tp-race-proc-*");
});

/** The child's next IPC message of kind `ev`. */
function next(child: ChildProcess, ev: string, ms = 15_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${ev}" from instance B within ${ms} ms`)), ms);
    const on = (m: Record<string, unknown>) => {
      if (m.ev !== ev) return;
      clearTimeout(timer);
      child.off("message", on);
      resolve(m);
    };
    child.on("message", on);
  });
}

describe("write-back race across processes", () => {
  it.skipIf(!ok)(
    "B's slowed read of v1 never lands in B's memory tier once v2's message arrived",
    async () => {
      const root = `/tp-race-proc-${uid()}/`;
      const channel = `tp-race-proc-${uid()}`;
      const a: DeviceStorage = await openInstance(
        { mem: { type: "memory" }, r: { type: "redis", endpoint: MACHINE_REDIS, root } },
        { type: "redis", endpoint: MACHINE_REDIS, channel },
        { logger: silentLogger },
      );
      cleanup.push(() => a.close());
      const key = "race.json";
      await a.saveValue(key, { v: 1 });

      const b = fork(CHILD, [root, channel], {
        execArgv: ["--import", "tsx"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      cleanup.push(async () => {
        if (b.exitCode === null) b.kill("SIGKILL");
      });
      await next(b, "ready");

      const answered = next(b, "read-answered");
      const slowLoaded = next(b, "slow-loaded");
      b.send({ cmd: "slow-load", key });
      await answered; // redis answered B's read with v1; the reply is held back for 1 s
      await a.saveValue(key, { v: 2 });
      await a.flush();

      const slow = await slowLoaded;
      expect(slow.value).toEqual({ v: 1 }); // it began before the save
      expect(slow.messagesDuringLoad).toBeGreaterThanOrEqual(1); // v2's message came while the read was in flight
      expect(slow.memCopy).toBeNull(); // ... and v1 was never cached
      expect(slow.writeBacksSkipped).toBe(1);

      const loaded = next(b, "loaded");
      b.send({ cmd: "load", key });
      expect(await loaded).toMatchObject({ value: { v: 2 }, profile: "r", memCopy: { v: 2 } });
      b.send({ cmd: "exit", key });
      await new Promise((r) => b.once("exit", r));
    },
    40_000,
  );
});
