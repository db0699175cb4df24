/**
 * The sending side of the bus and the cost of liveness, on real servers:
 * a shared tier whose server reports changes itself (redis tracking) needs
 * no message at all; one no server announces (a shared folder) gets an
 * announcement per save, which the save waits for, gathered while one is on
 * its way (a burst of concurrent saves costs few messages); an idle bus sends
 * at once; idle instances send nothing, and liveness is one ping per instance
 * and listening connection (never a message to every other instance).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { checkCoherence, type DeviceStorage, SettingsError, silentLogger } from "../../src/index.js";
import { startRedis } from "../helpers/servers.js";
import {
  deleteRedisKeys,
  MACHINE_PG,
  MACHINE_REDIS,
  openInstance,
  serversFor,
  sleep,
  uid,
  waitFor,
} from "./_gaps-util.js";

const ok = await serversFor({ ownRedis: true, redis: true, postgres: true });
const open: DeviceStorage[] = [];
const dirs: string[] = [];
afterAll(async () => {
  await deleteRedisKeys("tp-outbox-*");
  await Promise.all(open.splice(0).map((s) => s.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const sharedFolder = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-outbox-"));
  dirs.push(d);
  return { type: "fs", root: d, shared: "true" };
};

const engines: { name: string; bus: Record<string, string> }[] = [
  { name: "redis", bus: { type: "redis", endpoint: MACHINE_REDIS } },
  { name: "postgresql", bus: { type: "postgresql", connection_string: MACHINE_PG } },
];

/** A and B over `shared`, B's memory tier holding every key of `keys` (v1). */
async function warmPair(shared: Record<string, string>, coherence: Record<string, string>, keys: string[]) {
  const profiles = { mem: { type: "memory" }, r: shared };
  const a = await openInstance(profiles, coherence, { logger: silentLogger });
  const b = await openInstance(profiles, coherence, { logger: silentLogger });
  open.push(a, b);
  // B hears of every first save before it caches the key (else the news would drop the fresh copy).
  const heard = new Set<string>();
  const stop = b.onRemoteChange((c) => {
    for (const k of c.keys) heard.add(k);
  });
  await Promise.all(keys.map((k) => a.saveValue(k, { v: 1 })));
  await waitFor(() => keys.every((k) => heard.has(k)), "A's first saves heard at B");
  stop();
  await b.flush(); // its drops done: they fence write-backs while they run
  for (const k of keys) await b.loadValue(k);
  await b.flush();
  for (const k of keys) expect((await b.loadValue(k)).profile).toBe("mem");
  return [a, b] as const;
}

const allAt = (s: DeviceStorage, keys: string[], v: number) => async () => {
  for (const k of keys) if ((await s.loadValue<{ v: number }>(k)).value.v !== v) return false;
  return true;
};

describe.each(engines)("outbox over $name", ({ bus }) => {
  it.skipIf(!ok)(
    "a tier its server announces (redis): 300 awaited saves send no message; B drops every key",
    async () => {
      const id = uid();
      const keys = Array.from({ length: 300 }, (_, i) => `doc_${i}.json`);
      const shared = { type: "redis", endpoint: MACHINE_REDIS, root: `/tp-outbox-${id}/` };
      const [a, b] = await warmPair(shared, { ...bus, channel: `tp-outbox-${id}` }, keys);
      for (const k of keys) await a.saveValue(k, { v: 2 });
      expect(a.coherenceStats()!.sent).toBe(0);
      await waitFor(allAt(b, keys, 2), "B sees every v2");
      expect(b.coherenceStats()).toMatchObject({ gaps: 0, received: 0 });
      expect(b.coherenceStats()!.serverReports).toBeGreaterThanOrEqual(600);
    },
  );

  it.skipIf(!ok)(
    "a tier no server announces (a shared folder): each awaited save waits for its message; 300 at once go out in few",
    async () => {
      const id = uid();
      const keys = Array.from({ length: 300 }, (_, i) => `doc_${i}.json`);
      const [a, b] = await warmPair(sharedFolder(), { ...bus, channel: `tp-outbox-${id}` }, keys);
      // Awaited one by one: a save resolves only once its announcement was taken, so one message each.
      let before = a.coherenceStats()!.sent;
      for (const k of keys.slice(0, 30)) {
        const sent = a.coherenceStats()!.sent;
        await a.saveValue(k, { v: 2 });
        expect(a.coherenceStats()!.sent).toBe(sent + 1);
      }
      expect(a.coherenceStats()!.sent - before).toBe(30);
      // At once: keys gather while a message is on its way.
      before = a.coherenceStats()!.sent;
      await Promise.all(keys.map((k) => a.saveValue(k, { v: 3 })));
      const sent = a.coherenceStats()!.sent - before;
      expect(sent).toBeGreaterThan(0);
      expect(sent).toBeLessThan(10);
      await waitFor(allAt(b, keys, 3), "B sees every v3");
      expect(b.coherenceStats()!.gaps).toBe(0);
    },
  );

  it.skipIf(!ok)("an idle bus sends a single change at once", async () => {
    const id = uid();
    const [a, b] = await warmPair(sharedFolder(), { ...bus, channel: `tp-idle-${id}` }, ["k.json"]);
    await sleep(300);
    const arrived = new Promise<number>((resolve) => {
      const t0 = performance.now();
      const stop = b.onRemoteChange(() => {
        stop();
        resolve(performance.now() - t0);
      });
    });
    await a.saveValue("k.json", { v: 2 });
    expect(await arrived).toBeLessThan(250);
  });
});

describe("liveness traffic", () => {
  it.skipIf(!ok)(
    "idle instances send nothing on the bus; each proves its listener with an echo only it hears, once per period (O(instances), not O(instances^2))",
    async () => {
      const server = await startRedis();
      const admin = new Redis(server.port, "127.0.0.1");
      const sub = new Redis(server.port, "127.0.0.1");
      try {
        const id = uid();
        const coherence = { type: "redis", endpoint: server.endpoint, channel: `tp-live-${id}`, heartbeat_ms: "100" };
        const profiles = { mem: { type: "memory" }, r: { type: "redis", endpoint: server.endpoint, root: `/${id}/` } };
        const n = 4;
        const all: DeviceStorage[] = [];
        for (let i = 0; i < n; i++) all.push(await openInstance(profiles, coherence, { logger: silentLogger }));
        open.push(...all);
        const onBus: string[] = [];
        await sub.subscribe(coherence.channel);
        sub.on("message", (_ch: string, m: string) => onBus.push(m));
        const publishes = async () => {
          const info = String(await admin.info("commandstats"));
          return Number(/cmdstat_publish:calls=(\d+)/.exec(info)?.[1] ?? 0);
        };
        const before = await publishes();
        await sleep(2000);
        const echoes = (await publishes()) - before;
        // Nothing to every other instance: the bus channel stays silent.
        expect(onBus).toEqual([]);
        // 2 s at 100 ms per ping and 4 instances: ~80 echoes in all, each to a channel one connection hears.
        expect(echoes).toBeGreaterThanOrEqual(n * 10);
        expect(echoes).toBeLessThanOrEqual(n * 25);
        const channels = (await admin.call("PUBSUB", "CHANNELS", "terraphim-echo:*")) as string[];
        expect(channels).toHaveLength(n);
        const numsub = (await admin.call("PUBSUB", "NUMSUB", ...channels)) as (string | number)[];
        for (let i = 1; i < numsub.length; i += 2) expect(Number(numsub[i])).toBe(1);
        for (const s of all) expect(s.coherenceStats()!.lease).toMatchObject({ trusted: true, lapses: 0 });
      } finally {
        sub.disconnect();
        admin.disconnect();
        await server.stop();
      }
    },
    30_000,
  );
});

describe("batch_ms setting", () => {
  it("is still checked (settings files keep working), refuses bad values with the path, and is said to be unused", () => {
    expect(checkCoherence({ type: "redis" }).batchMs).toBe(1);
    expect(checkCoherence({ type: "postgresql", connection_string: MACHINE_PG }).batchMs).toBe(3);
    expect(checkCoherence({ type: "redis", batch_ms: "0" }).batchMs).toBe(0);
    expect(checkCoherence({ type: "redis" }).warnings).toEqual([]);
    expect(checkCoherence({ type: "redis", batch_ms: "5" }).warnings).toEqual([
      expect.stringContaining("coherence.batch_ms is no longer used"),
    ]);
    for (const bad of ["-1", "soon", "5000"]) {
      expect(() => checkCoherence({ type: "redis", batch_ms: bad })).toThrow(SettingsError);
      expect(() => checkCoherence({ type: "redis", batch_ms: bad })).toThrow(/^coherence\.batch_ms: expected/);
    }
  });
});
