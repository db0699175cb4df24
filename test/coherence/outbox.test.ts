/**
 * The sending side of the bus: a loop of awaited saves does not send one
 * message per save (changes are gathered for `batch_ms` while the bus is
 * busy), yet every key still reaches the other instance; an idle bus sends
 * at once; `batch_ms` is checked like every other coherence value.
 * Real servers: the machine's Redis and PostgreSQL.
 */
import { afterAll, describe, expect, it } from "vitest";
import { checkCoherence, type DeviceStorage, SettingsError, silentLogger } from "../../src/index.js";
import { MACHINE_PG, MACHINE_REDIS, openInstance, serversFor, uid, waitFor } from "./_gaps-util.js";

const ok = await serversFor({ redis: true, postgres: true });
const open: DeviceStorage[] = [];
afterAll(() => Promise.all(open.splice(0).map((s) => s.close())));

const engines: { name: string; bus: Record<string, string> }[] = [
  { name: "redis", bus: { type: "redis", endpoint: MACHINE_REDIS } },
  { name: "postgresql", bus: { type: "postgresql", connection_string: MACHINE_PG } },
];

describe.each(engines)("outbox over $name", ({ bus }) => {
  it.skipIf(!ok)(
    "a loop of 300 awaited saves sends far fewer messages, and the other instance drops every key",
    async () => {
      const id = uid();
      const profiles = {
        mem: { type: "memory" },
        r: { type: "redis", endpoint: MACHINE_REDIS, root: `/tp-outbox-${id}/` },
      };
      const coherence = { ...bus, channel: `tp-outbox-${id}` };
      const a = await openInstance(profiles, coherence, { logger: silentLogger });
      const b = await openInstance(profiles, coherence, { logger: silentLogger });
      open.push(a, b);
      const keys = Array.from({ length: 300 }, (_, i) => `doc_${i}.json`);
      for (const k of keys) await a.saveValue(k, { v: 1 });
      // B caches every key in its memory tier.
      for (const k of keys) await b.loadValue(k);
      await b.flush();
      for (const k of keys) expect((await b.loadValue(k)).profile).toBe("mem");

      const before = a.coherenceStats()!.sent;
      for (const k of keys) await a.saveValue(k, { v: 2 });
      await a.flush();
      const sent = a.coherenceStats()!.sent - before;
      expect(sent).toBeGreaterThan(0);
      expect(sent).toBeLessThan(keys.length / 3);
      await waitFor(async () => {
        for (const k of keys) if ((await b.loadValue<{ v: number }>(k)).value.v !== 2) return false;
        return true;
      }, "B sees every v2");
      expect(b.coherenceStats()!.gaps).toBe(0);
    },
  );

  it.skipIf(!ok)("an idle bus sends a single change at once (not after a batch window)", async () => {
    const id = uid();
    const profiles = {
      mem: { type: "memory" },
      r: { type: "redis", endpoint: MACHINE_REDIS, root: `/tp-idle-${id}/` },
    };
    // A long window: if an idle bus waited for it, the change would take 500 ms to arrive.
    const coherence = { ...bus, channel: `tp-idle-${id}`, batch_ms: "500" };
    const a = await openInstance(profiles, coherence, { logger: silentLogger });
    const b = await openInstance(profiles, coherence, { logger: silentLogger });
    open.push(a, b);
    await a.saveValue("k.json", { v: 1 });
    await b.loadValue("k.json");
    await b.flush();
    await new Promise((r) => setTimeout(r, 600)); // the bus is idle again
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

describe("batch_ms setting", () => {
  it("defaults per engine and refuses bad values with the path", () => {
    expect(checkCoherence({ type: "redis" }).batchMs).toBe(1);
    expect(checkCoherence({ type: "postgresql", connection_string: MACHINE_PG }).batchMs).toBe(3);
    expect(checkCoherence({ type: "redis", batch_ms: "0" }).batchMs).toBe(0);
    for (const bad of ["-1", "soon", "5000"]) {
      expect(() => checkCoherence({ type: "redis", batch_ms: bad })).toThrow(SettingsError);
      expect(() => checkCoherence({ type: "redis", batch_ms: bad })).toThrow(/^coherence\.batch_ms: expected/);
    }
  });
});

describe("origins heard on the bus", () => {
  it.skipIf(!ok)(
    "an origin is tracked while it heartbeats and forgotten once silent for 20 heartbeat periods",
    async () => {
      const id = uid();
      const profiles = {
        mem: { type: "memory" },
        r: { type: "redis", endpoint: MACHINE_REDIS, root: `/tp-prune-${id}/` },
      };
      const coherence = { type: "redis", endpoint: MACHINE_REDIS, channel: `tp-prune-${id}`, heartbeat_ms: "50" };
      const a = await openInstance(profiles, coherence, { logger: silentLogger });
      const b = await openInstance(profiles, coherence, { logger: silentLogger });
      open.push(b);
      await a.saveValue("k.json", 1);
      await waitFor(() => b.coherenceStats()!.origins === 1, "B tracks A");
      // 20 heartbeat periods are 1 s: A keeps heartbeating, so B keeps it.
      await new Promise((r) => setTimeout(r, 2500));
      expect(b.coherenceStats()!.origins).toBe(1);
      await a.close();
      await waitFor(() => b.coherenceStats()!.origins === 0, "B forgets A once it is silent", 5000);
      expect(b.coherenceStats()!.gaps).toBe(0);
    },
    20_000,
  );
});
