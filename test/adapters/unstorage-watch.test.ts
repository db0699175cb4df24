/**
 * The unstorage driver's `watch` over a coherence bus (issue 14 with issue 13):
 * another instance's `setItem` / `removeItem` reach this instance's watchers as
 * `update` / `remove` of the unstorage key, and its memory copy is dropped, so
 * `getItem` gives the new value. Real servers: the machine's Redis (tier and bus)
 * and PostgreSQL (bus).
 */
import { randomUUID } from "node:crypto";
import { createStorage } from "unstorage";
import { afterAll, describe, expect, it } from "vitest";
import { terraphimDriver } from "../../src/adapters/unstorage.js";
import { DeviceStorage, silentLogger } from "../../src/index.js";
import { deleteRedisKeys } from "../coherence/_gaps-util.js";
import { POSTGRES, requireServer } from "../helpers/servers.js";

const redisUp = await requireServer("redis (unstorage watch)", "127.0.0.1", 6379);
const pgUp = await requireServer("postgresql (unstorage watch)", POSTGRES.host, POSTGRES.port);
const opened: DeviceStorage[] = [];
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await deleteRedisKeys("tp-unwatch-*");
});

async function eventually(check: () => boolean | Promise<boolean>): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > 5000) throw new Error("condition not met within 5 s");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const buses: { name: string; up: boolean; table: Record<string, string> }[] = [
  { name: "redis", up: redisUp, table: { type: "redis", endpoint: "tcp://127.0.0.1:6379" } },
  {
    name: "postgresql",
    up: pgUp && redisUp,
    table: { type: "postgresql", connection_string: `postgresql://postgres@${POSTGRES.host}:${POSTGRES.port}/test` },
  },
];

describe.each(buses)("unstorage watch over a $name coherence bus", ({ up, table }) => {
  it.skipIf(!up)("reports another instance's setItem and removeItem, and getItem sees the new value", async () => {
    const id = randomUUID().slice(0, 8);
    const settings = {
      profiles: {
        mem: { type: "memory" },
        r: { type: "redis", endpoint: "tcp://127.0.0.1:6379", root: `/tp-unwatch-${id}/` },
      },
      coherence: { ...table, channel: `tp-unwatch-${id}` },
    };
    const a = await DeviceStorage.fromSettings(settings, { logger: silentLogger });
    const b = await DeviceStorage.fromSettings(settings, { logger: silentLogger });
    opened.push(a, b);
    const ua = createStorage({ driver: terraphimDriver({ storage: a }) });
    const ub = createStorage({ driver: terraphimDriver({ storage: b }) });
    const events: string[] = [];
    const unwatch = await ub.watch((event, key) => events.push(`${event} ${key}`));

    await ua.setItem("users:42", { name: "Ada" });
    expect(await ub.getItem("users:42")).toEqual({ name: "Ada" });
    expect(await ub.getItem("users:42")).toEqual({ name: "Ada" }); // now from b's memory tier
    await ua.setItem("users:42", { name: "Grace" });
    await eventually(async () => JSON.stringify(await ub.getItem("users:42")) === '{"name":"Grace"}');
    await ua.removeItem("users:42");
    await eventually(async () => (await ub.getItem("users:42")) === null);
    await eventually(() => events.includes("remove users:42"));
    expect(events.filter((e) => e === "update users:42").length).toBeGreaterThanOrEqual(2);
    await unwatch();
  });
});
