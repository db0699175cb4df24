/**
 * Scenario 12: the first read of a key, memory over Redis with a Redis
 * coherence bus: the memory tier misses, Redis serves, the value is copied into
 * memory. One key at a time (the latency a request pays), every round on keys
 * never read before (so every read misses memory, without emptying anything),
 * against bentocache 1.6.1 doing the same job (memory L1, Redis L2, Redis bus:
 * an L1 miss reads L2 and copies the value into L1). The raw floor (one ioredis
 * GET + `JSON.parse`) is shown for scale. Uses the machine's Redis
 * (127.0.0.1:6379); keys under a random prefix, deleted at the end.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { silentLogger } from "../../src/logger.js";
import { DeviceStorage } from "../../src/storage/device-storage.js";
import { docData, docKey } from "../_data.js";
import { compareMany, type Measured, type Row, row, type Side } from "../_harness.js";
import { type Context, deleteRedisPrefix, sink } from "../_setup.js";

const HOST = "127.0.0.1";
const PORT = 6379;

export async function firstRead(ctx: Context): Promise<Row[]> {
  const n = ctx.quick ? 300 : 2000;
  const rounds = ctx.quick ? 3 : 11;
  const total = n * (rounds + 1);
  const prefix = `tp-bench-first-${randomBytes(4).toString("hex")}`;
  const keys = Array.from({ length: total }, (_, i) => docKey(i));
  const raw = new Redis(PORT, HOST);
  const { BentoCache, bentostore } = await import("bentocache");
  const { memoryDriver } = await import("bentocache/drivers/memory");
  const { redisDriver, redisBusDriver } = await import("bentocache/drivers/redis");
  const connection = { host: HOST, port: PORT };
  const bento = (l1: boolean) =>
    new BentoCache({
      default: "c",
      logger: undefined,
      stores: {
        c: (l1 ? bentostore().useL1Layer(memoryDriver({ maxItems: 1_000_000 })) : bentostore())
          .useL2Layer(redisDriver({ connection, prefix: `${prefix}-bento` }))
          .useBus(redisBusDriver({ connection })),
      },
    });
  const bentoReader = bento(true);
  const bentoSeeder = bento(false);
  const ours = await DeviceStorage.fromSettings(
    {
      profiles: {
        memory: { type: "memory" },
        redis: { type: "redis", endpoint: `tcp://${HOST}:${PORT}`, root: `/${prefix}-ours/` },
      },
      coherence: { type: "redis", endpoint: `tcp://${HOST}:${PORT}`, channel: `${prefix}-bus` },
    },
    { logger: silentLogger, ...(ctx.liveRanking ? {} : { liveRanking: false }) },
  );
  try {
    for (let t = 0; ours.coherenceStats()?.distrusted.length !== 0; t++) {
      if (t > 500) throw new Error("first read: our coherence bus did not come up");
      await new Promise((r) => setTimeout(r, 10));
    }
    ctx.log(`12 first read: seeding ${total} keys for each side`);
    for (let i = 0; i < total; i += 500) {
      const part = keys.slice(i, i + 500);
      await Promise.all(
        part.map((k, j) =>
          Promise.all([
            raw.set(`${prefix}-ours/${k}`, JSON.stringify(docData(i + j))),
            bentoSeeder.set({ key: k, value: docData(i + j) }),
          ]),
        ),
      );
    }
    ctx.log("12 first read: loadValue (memory miss, Redis, copy into memory; Redis bus) vs bentocache vs raw GET");
    const side = (name: string, get: (k: string) => Promise<unknown>, after?: () => unknown): Side => ({
      name,
      async batch(count, start) {
        for (let i = 0; i < count; i++) sink.v = await get(keys[(start + i) % total]!);
      },
      ...(after ? { after, afterTimed: true } : {}),
    });
    const [o, b, r] = (await compareMany(
      [
        side(
          "ours",
          (k) => ours.loadValue(k),
          () => ours.flush(),
        ),
        side("bentocache", (k) => bentoReader.get({ key: k })),
        side("raw", async (k) => JSON.parse((await raw.get(`${prefix}-ours/${k}`))!)),
      ],
      { n, rounds },
    )) as [Measured, Measured, Measured];
    const st = ours.stats();
    if ((st.memory?.writeBacks ?? 0) < n)
      throw new Error(`first read: expected write-backs, got ${JSON.stringify(st.memory)}`);
    return [
      row(
        "12 first read, memory over Redis (bus)",
        ["await loadValue (memory miss, Redis, copy into memory)", o.opsPerS],
        ["bentocache get (L1 miss, L2 Redis, copy into L1; Redis bus)", b.opsPerS],
        { kind: "ratio<=", max: 1.0, text: "<= 1.0x" },
        "one key at a time, each key read for the first time; ours waits for its copies (flush) inside the round",
      ),
      row(
        "12 first read vs raw GET",
        ["await loadValue (memory miss, Redis, copy into memory)", o.opsPerS],
        ["ioredis JSON.parse(await redis.get(key))", r.opsPerS],
        undefined,
        "for scale: the Redis round trip alone",
      ),
    ];
  } finally {
    await ours.close();
    await bentoReader.disconnectAll();
    await bentoSeeder.disconnectAll();
    await deleteRedisPrefix(raw, prefix);
    raw.disconnect();
  }
}
