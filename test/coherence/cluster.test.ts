/**
 * The coherence bus on a Redis Cluster (a local 3-master cluster the test
 * starts on free ports): the shared tier is the cluster. Each instance keeps
 * a listening connection on every master (tracking reports a change only on
 * the node holding the key), whichever seed its settings name first, and
 * hears every change of the other instance from the server itself.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceStorage } from "../../src/index.js";
import { silentLogger } from "../../src/index.js";
import { type RedisCluster, startRedisCluster } from "../helpers/redis-cluster.js";
import { hasCommand, requireBinaries } from "../helpers/servers.js";
import { openInstance, uid, waitFor } from "./_gaps-util.js";

const ok = await requireBinaries(
  "coherence on a Redis Cluster (redis-server, redis-cli)",
  await hasCommand("redis-server"),
);
let cluster: RedisCluster | undefined;
const open: DeviceStorage[] = [];

beforeAll(async () => {
  if (ok) cluster = await startRedisCluster();
}, 60_000);
afterAll(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await cluster?.stop();
});

describe("coherence bus on a Redis Cluster", () => {
  it.skipIf(!ok)(
    "every master reports the changes of its keys: B, seeded through another node, drops every copy A replaced",
    async () => {
      const c = cluster!;
      const id = uid();
      const seeds = c.endpoints.split(",");
      // A publishes through the first seed, B listens on the second: the message must cross nodes.
      const rotated = [seeds[1]!, seeds[0]!, seeds[2]!].join(",");
      const shared = { type: "redis", cluster_endpoints: c.endpoints, root: `/tp-cluster-${id}/` };
      const a = await openInstance(
        { mem: { type: "memory" }, r: shared },
        { type: "redis", cluster_endpoints: c.endpoints, channel: `tp-cluster-${id}` },
        { logger: silentLogger },
      );
      const b = await openInstance(
        { mem: { type: "memory" }, r: { ...shared, cluster_endpoints: rotated } },
        { type: "redis", cluster_endpoints: rotated, channel: `tp-cluster-${id}` },
        { logger: silentLogger },
      );
      open.push(a, b);
      const keys = Array.from({ length: 20 }, (_, i) => `doc_${i}.json`); // spread over the three masters' slots
      for (const k of keys) await a.saveValue(k, { v: 1 });
      for (const k of keys) await b.loadValue(k);
      await b.flush();
      for (const k of keys) expect((await b.loadValue(k)).profile).toBe("mem");
      for (const k of keys) await a.saveValue(k, { v: 2 });
      await waitFor(async () => {
        for (const k of keys) if ((await b.loadValue<{ v: number }>(k)).value.v !== 2) return false;
        return true;
      }, "B sees every v2 through the masters' reports");
      expect(b.coherenceStats()).toMatchObject({ gaps: 0, connected: true });
      expect(b.coherenceStats()!.serverReports).toBeGreaterThanOrEqual(keys.length);
      // One listening connection per master, each proving it hears (the lease needs all three).
      const listeners = b.coherenceStats()!.lease!.listeners;
      expect(listeners).toHaveLength(3);
      for (const l of listeners) expect(l.connected).toBe(true);
      expect(b.coherenceStats()!.lease!.trusted).toBe(true);
    },
    30_000,
  );
});
