/**
 * TTLs on a shared profile written by several instances: an expiry one instance set must not
 * outlive a later save without one by another (its purge would delete the newer value), and an
 * expiry set by another instance must be honoured by this one, even when this one had never seen
 * a TTL in the store when it started. Over Redis and over PostgreSQL, each with its bus.
 */
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { DeviceStorage, NotFoundError, silentLogger } from "../../src/index.js";
import { psql } from "../helpers/servers.js";
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

const logger = silentLogger;
const ok = await serversFor({ redis: true, postgres: true });
const open: DeviceStorage[] = [];
const tables: string[] = [];
afterAll(async () => {
  await Promise.all(open.splice(0).map((s) => s.close().catch(() => {})));
  await deleteRedisKeys("tp-ttlshared-*");
  for (const t of tables) await psql(`DROP TABLE IF EXISTS ${t}`).catch(() => {});
});

const engines = [
  {
    name: "redis",
    shared: () => ({ type: "redis", endpoint: MACHINE_REDIS, root: `/tp-ttlshared-${uid()}/` }),
    bus: () => ({ type: "redis", endpoint: MACHINE_REDIS, channel: `ttlshared-${uid()}` }),
  },
  {
    name: "postgresql",
    shared: () => {
      const table = `tp_ttlshared_${uid()}`;
      tables.push(table);
      return { type: "postgresql", connection_string: MACHINE_PG, table };
    },
    bus: () => ({ type: "postgresql", connection_string: MACHINE_PG, channel: `ttlshared_${uid()}` }),
  },
];

async function pair(engine: (typeof engines)[number]): Promise<[DeviceStorage, DeviceStorage]> {
  const profiles = { mem: { type: "memory" }, shared: engine.shared() };
  const coherence = engine.bus();
  const a = await openInstance(profiles, coherence, { logger });
  const b = await openInstance(profiles, coherence, { logger });
  open.push(a, b);
  return [a, b];
}

/** The value of `key` in the shared profile itself, as `storage` reads it; undefined when absent or expired. */
async function inStore(storage: DeviceStorage, key: string): Promise<unknown> {
  const entry = await storage.profile("shared").readEntry(key);
  return entry === undefined ? undefined : JSON.parse(Buffer.from(entry.data).toString("utf8"));
}

describe.skipIf(!ok).each(engines)("a TTL on a shared profile, several instances ($name)", (engine) => {
  it("a save without a TTL by B outlives the TTL A's earlier save had: A never purges B's value", async () => {
    const [a, b] = await pair(engine);
    const heard = b.coherenceStats()!.serverReports;
    await a.saveValue("k.json", { by: "a" }, { ttlMs: 600 });
    // B's save is later than A's: B heard it (the marker, the sidecar and the value: three reports).
    await waitFor(() => b.coherenceStats()!.serverReports >= heard + 3, "B hears A's save");
    await b.saveValue("k.json", { by: "b" });
    await a.flush();
    await sleep(900);
    expect(await a.loadValue("k.json")).toMatchObject({ value: { by: "b" } });
    await a.flush(); // a purge, had one been started, is done
    expect(await b.loadValue("k.json")).toMatchObject({ value: { by: "b" } });
    expect(await inStore(b, "k.json")).toEqual({ by: "b" });
  });

  it("an expiry B set is honoured by A, which had seen no TTL in the store when it started", async () => {
    const [a, b] = await pair(engine);
    await a.saveValue("e.json", { v: 1 });
    expect(await a.loadValue("e.json")).toMatchObject({ value: { v: 1 } });
    await b.saveValue("e.json", { v: 2 }, { ttlMs: 600 });
    await sleep(900);
    await expect(a.loadValue("e.json")).rejects.toBeInstanceOf(NotFoundError);
    expect(await inStore(a, "e.json")).toBeUndefined();
  });
});

describe.skipIf(!ok)("a TTL on a shared profile after another program emptied it (postgresql TRUNCATE)", () => {
  it("A forgets every expiry it knew, reads them again, and honours the ones written after", async () => {
    const engine = engines[1]!;
    const profiles = { mem: { type: "memory" }, shared: engine.shared() };
    const table = (profiles.shared as { table: string }).table;
    const coherence = engine.bus();
    const a = await openInstance(profiles, coherence, { logger });
    const b = await openInstance(profiles, coherence, { logger });
    open.push(a, b);
    await a.saveValue("t.json", { by: "a" }, { ttlMs: 700 });
    await psql(`TRUNCATE ${table}`);
    // The trigger's report reaches A (and B): A's memory copy goes, the key is not found.
    const gone = async () => (await a.loadValue("t.json").catch((e: unknown) => e)) instanceof NotFoundError;
    await waitFor(gone, "A hears the TRUNCATE");
    await b.saveValue("t.json", { by: "b" }); // no TTL: A's old expiry must not delete it
    await b.saveValue("u.json", { by: "b" }, { ttlMs: 300 });
    await sleep(900);
    expect(await a.loadValue("t.json")).toMatchObject({ value: { by: "b" } });
    await expect(a.loadValue("u.json")).rejects.toBeInstanceOf(NotFoundError);
    await a.flush();
    expect(await inStore(b, "t.json")).toEqual({ by: "b" });
  });
});

describe.skipIf(!ok).each(engines)("a TTL on a shared profile, instances without a bus ($name)", (engine) => {
  it("a save without a TTL by B is never purged by A, whose earlier save had one", async () => {
    const profiles = { shared: engine.shared() };
    const a = await DeviceStorage.fromSettings({ profiles }, { logger });
    const b = await DeviceStorage.fromSettings({ profiles }, { logger });
    open.push(a, b);
    await sleep(1_100); // B looks for the TTL marker at most once a second
    await a.saveValue("n.json", { by: "a" }, { ttlMs: 600 });
    await b.saveValue("n.json", { by: "b" });
    await sleep(900);
    // Without a bus A knows only its own expiry: it may take the key for expired, but never deletes it.
    await a.loadValue("n.json").catch(() => undefined);
    await a.flush();
    expect(await b.loadValue("n.json")).toMatchObject({ value: { by: "b" } });
    expect(await inStore(b, "n.json")).toEqual({ by: "b" });
  });
});

describe.skipIf(!ok).each(engines)(
  "a TTL on a shared profile, value rewritten by another program ($name)",
  (engine) => {
    it("a value another program wrote over ours (leaving our sidecar) is never purged at our TTL", async () => {
      const shared = engine.shared();
      const profiles = { mem: { type: "memory" }, shared };
      const a = await openInstance(profiles, engine.bus(), { logger });
      open.push(a);
      await a.saveValue("f.json", { by: "a" }, { ttlMs: 600 });
      const foreign = '{"by":"foreign"}';
      if (engine.name === "redis") {
        const raw = new Redis(6379, "127.0.0.1");
        await raw.set(`${(shared as { root: string }).root.slice(1)}f.json`, foreign);
        raw.disconnect();
      } else {
        const table = (shared as { table: string }).table;
        await psql(
          `UPDATE ${table} SET value = convert_to('${foreign}', 'UTF8') WHERE key LIKE '%f.json' AND key NOT LIKE '%terraphim-meta%'`,
        );
      }
      await sleep(900);
      // The first look after our TTL may take it for expired; the purge finds the value is not ours and keeps it.
      await a.loadValue("f.json").catch(() => undefined);
      await a.flush();
      expect(await a.loadValue("f.json")).toMatchObject({ value: { by: "foreign" } });
      expect(await inStore(a, "f.json")).toEqual({ by: "foreign" });
    });
  },
);
