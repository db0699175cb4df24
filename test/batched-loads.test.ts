/**
 * `loadValues` and `cachePrefetch` over shared tiers go in batches (Redis MGET,
 * PostgreSQL `= ANY($1)`): counted on a redis-server of the test's own
 * (`INFO commandstats`) and on PostgreSQL (`pg_stat_statements` is not assumed:
 * a chaos wrapper counts the operator's calls). Results, absent keys, write-backs
 * into the memory tier, TTLs carried, and the fence against a save during the
 * batch all hold as for one load at a time.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { NotFoundError } from "../src/errors.js";
import { silentLogger } from "../src/logger.js";
import { memoryOperator } from "../src/operators/drivers/memory.js";
import { postgresqlOperator } from "../src/operators/drivers/postgresql.js";
import { redisOperator } from "../src/operators/drivers/redis.js";
import type { Operator } from "../src/operators/types.js";
import { DeviceStorage } from "../src/storage/device-storage.js";
import { hasCommand, requireBinaries, requireServer, startRedis } from "./helpers/servers.js";

const ok =
  (await requireBinaries("batched loads (own redis-server)", await hasCommand("redis-server"))) &&
  (await requireServer("batched loads (machine PostgreSQL)", "127.0.0.1", 5432));
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

const doc = (i: number) => ({ id: `d${i}`, body: "x".repeat(200 + (i % 17)) });
const key = (i: number) => `doc_${i}.json`;

/** Counts each operator method call (the wrapper adds nothing else). */
function counting(op: Operator): { op: Operator; calls: Record<string, number> } {
  const calls: Record<string, number> = {};
  const wrapped = new Proxy(op, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        calls[String(prop)] = (calls[String(prop)] ?? 0) + 1;
        return v.apply(target, args);
      };
    },
  });
  return { op: wrapped, calls };
}

describe.skipIf(!ok)("batched loads over shared tiers", () => {
  it("redis: loadValues of 2,500 keys (memory over redis) is 3 MGETs, with absent keys, TTLs and write-backs right", async () => {
    const server = await startRedis();
    cleanups.push(() => server.stop());
    const admin = new Redis(server.port, "127.0.0.1");
    cleanups.push(async () => admin.disconnect());
    const redis = await redisOperator({ endpoint: server.endpoint, root: "/b/" }, "r");
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "mem", op: memoryOperator() },
        { name: "r", op: redis },
      ],
      { logger: silentLogger },
    );
    cleanups.push(() => storage.close());
    const n = 2500;
    const keys = Array.from({ length: n }, (_, i) => key(i));
    for (let i = 0; i < n; i += 1) if (i % 10 !== 3) await storage.saveValue(key(i), doc(i), { profiles: ["r"] });
    await storage.saveValue(key(5), doc(5), { profiles: ["r"], ttlMs: 600_000 });
    const ttl = (await storage.profile("r").readEntry(key(5)))!.expiresAt;
    expect(ttl).toBeGreaterThan(Date.now());
    await admin.config("RESETSTAT");

    const out = await storage.loadValues(keys);
    const stats = await admin.info("commandstats");
    const calls = (cmd: string) => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    expect(calls("mget")).toBe(3);
    expect(calls("get")).toBeLessThan(10); // the TTL sidecar of key 5 at most, never one per key
    out.forEach((o, i) => {
      if (i % 10 === 3) {
        expect(o.ok).toBe(false);
        expect((o as { error: Error }).error).toBeInstanceOf(NotFoundError);
      } else {
        expect(o).toMatchObject({ ok: true, value: doc(i), profile: "r", writeBack: true });
      }
    });
    await storage.flush();
    // Written back: now from memory, with the shared tier's expiry.
    expect((await storage.loadValue(key(7))).profile).toBe("mem");
    expect((await storage.profile("mem").readEntry(key(5)))!.expiresAt).toBe(ttl);
    expect(storage.stats().mem!.writeBacks).toBe(n - n / 10);

    // cachePrefetch: already cached, found, missing, in batches again.
    await admin.config("RESETSTAT");
    await storage.profile("mem").delete(key(1));
    const p = await storage.cachePrefetch([key(0), key(1), key(3)]);
    expect(p).toEqual({ found: 1, alreadyCached: 1, missing: 1, failed: [] });
  });

  it("redis: a save during the batch wins over its write-back", async () => {
    const server = await startRedis();
    cleanups.push(() => server.stop());
    const counted = counting(await redisOperator({ endpoint: server.endpoint }, "r"));
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "mem", op: memoryOperator() },
        { name: "r", op: counted.op },
      ],
      { logger: silentLogger },
    );
    cleanups.push(() => storage.close());
    for (let i = 0; i < 50; i++) await storage.saveValue(key(i), doc(i), { profiles: ["r"] });
    const loading = storage.loadValues(Array.from({ length: 50 }, (_, i) => key(i)));
    const saving = storage.saveValue(key(9), { id: "new" });
    await Promise.all([loading, saving]);
    await storage.flush();
    expect((await storage.loadValue(key(9))).value).toEqual({ id: "new" });
    expect(counted.calls.readManyStored).toBe(1);
  });

  it("postgresql: loadValues of 2,500 keys over a postgresql-only storage is 3 readMany calls", async () => {
    const table = `tp_batch_${randomBytes(4).toString("hex")}`;
    const pg = await postgresqlOperator(
      { connection_string: "postgresql://postgres@127.0.0.1:5432/test", table },
      "pg",
    );
    const counted = counting(pg);
    const storage = await DeviceStorage.fromOperators([{ name: "pg", op: counted.op }], { logger: silentLogger });
    cleanups.push(async () => {
      await storage.close();
      const { default: pgLib } = await import("pg");
      const c = new pgLib.Client({ connectionString: "postgresql://postgres@127.0.0.1:5432/test" });
      await c.connect();
      await c.query(`DROP TABLE IF EXISTS ${table}`);
      await c.end();
    });
    const n = 2500;
    await Promise.all(Array.from({ length: n }, (_, i) => storage.saveValue(key(i), doc(i))));
    const before = counted.calls.read ?? 0;
    const out = await storage.loadValues(Array.from({ length: n + 1 }, (_, i) => key(i)));
    expect(counted.calls.readMany).toBe(3);
    expect(counted.calls.read ?? 0).toBe(before);
    expect(out.slice(0, n).every((o, i) => o.ok && (o as { value: unknown }).value !== undefined && i >= 0)).toBe(true);
    expect((out[n] as { error: Error }).error).toBeInstanceOf(NotFoundError);
  });
});
