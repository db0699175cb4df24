/**
 * Failures of the coherence bus, on real servers (issue 13, "Must show"):
 * listener connections killed while saves go on (Redis `CLIENT KILL TYPE
 * pubsub` on a redis-server this test starts, PostgreSQL
 * `pg_terminate_backend`), skipped sequence numbers and malformed messages,
 * the write-back race across instances (a slowed fallback read, chaos
 * wrapper), the bus server down while the shared tier stays up, and a durable
 * local tier (sqlite) revalidated after its instance was away.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AnnounceError,
  chaosOperator,
  createOperator,
  DeviceStorage,
  memoryOperator,
  NotFoundError,
  type Operator,
  PartialWriteError,
  silentLogger,
} from "../../src/index.js";
import { type OwnServer, psql, startRedis } from "../helpers/servers.js";
import {
  deleteRedisKeys,
  localCopy,
  MACHINE_PG,
  MACHINE_REDIS,
  openInstance,
  ready,
  recordBus,
  serversFor,
  uid,
  waitFor,
} from "./_gaps-util.js";
import { type MissedRun, missedMessages } from "./_gaps-workload.js";

const logger = silentLogger;
const ok = await serversFor({ ownRedis: true, redis: true, postgres: true });
const dirs: string[] = [];
const open: DeviceStorage[] = [];
afterAll(async () => {
  await deleteRedisKeys("tp-gaps-*", "tp-race-*", "tp-durable-*");
  await Promise.all(open.splice(0).map((s) => s.close().catch(() => {})));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Opens `n` instances with a memory tier over one shared tier (redis at `redisEndpoint`, or `shared`), on one bus. */
async function instances(
  n: number,
  redisEndpoint: string,
  coherence: Record<string, string>,
  shared: Record<string, string> = { type: "redis", endpoint: redisEndpoint, root: `/tp-gaps-${uid()}/` },
): Promise<DeviceStorage[]> {
  const profiles = { mem: { type: "memory" }, r: shared };
  const out: DeviceStorage[] = [];
  for (let i = 0; i < n; i++) out.push(await openInstance(profiles, coherence, { logger }));
  open.push(...out);
  return out;
}

/** What every missed-messages run must show, whatever carries the bus. */
function expectRecovered(run: MissedRun, n: number): void {
  expect(run.kills.length).toBeGreaterThan(0);
  for (const killed of run.kills) expect(killed).toBeGreaterThanOrEqual(n);
  expect(run.saves).toBeGreaterThan(20);
  // Messages were lost for real, and each instance saw it.
  expect(run.lostMessages).toBe(true);
  for (const g of run.gaps) expect(g).toBeGreaterThan(0);
  // At each gap the memory tier left the read path at once; loads went on, from the shared tier.
  expect(run.distrustedAtGap.length).toBeGreaterThanOrEqual(n);
  for (const d of run.distrustedAtGap) expect(d).toEqual(["mem"]);
  expect(run.gapLoadProfiles.length).toBeGreaterThan(0);
  expect(new Set(run.gapLoadProfiles)).toEqual(new Set(["r"]));
  expect(run.loadFailures).toEqual([]);
  // After the listeners are back: no stale read anywhere, and the memory tier serves again.
  expect(run.stale).toEqual([]);
  expect(run.keysChecked).toBe(n * 6);
  expect(new Set(run.servedAfter)).toEqual(new Set(["mem"]));
}

describe.skipIf(!ok)("coherence gaps", () => {
  let bus: OwnServer & { endpoint: string };
  beforeAll(async () => {
    bus = await startRedis();
  });
  afterAll(async () => {
    await bus?.stop();
  });

  it("redis: listeners killed (CLIENT KILL TYPE pubsub) while saves go on: gaps, shared reads meanwhile, 0 stale reads after", async () => {
    const coherence = { type: "redis", endpoint: bus.endpoint, channel: `gaps-${uid()}` };
    const all = await instances(3, bus.endpoint, coherence);
    const admin = new Redis(bus.port, "127.0.0.1", { lazyConnect: false });
    try {
      const run = await missedMessages(all, {
        kill: async () => Number(await admin.call("CLIENT", "KILL", "TYPE", "pubsub")),
        kills: 3,
        everyMs: 400,
        keys: 6,
      });
      expectRecovered(run, 3);
    } finally {
      admin.disconnect();
    }
  });

  it("postgresql: listeners ended (pg_terminate_backend) while saves go on: 0 stale reads after", async () => {
    const channel = `tpgap_${uid()}`;
    const table = `tpgap_${uid()}`;
    await psql(`CREATE TABLE ${table} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
    try {
      // The shared tier is a table on the bus's server: one listening connection carries the bus and the trigger.
      const shared = { type: "postgresql", connection_string: MACHINE_PG, table };
      const all = await instances(
        3,
        MACHINE_REDIS,
        { type: "postgresql", connection_string: MACHINE_PG, channel },
        shared,
      );
      const listeners = `FROM pg_stat_activity WHERE application_name LIKE 'tp-listen %${channel}%'`;
      expect(Number(await psql(`SELECT count(*) ${listeners}`))).toBe(3);
      const run = await missedMessages(all, {
        kill: async () =>
          (await psql(`SELECT pg_terminate_backend(pid) ${listeners}`)).split("\n").filter((l) => l === "t").length,
        kills: 3,
        everyMs: 400,
        keys: 6,
      });
      expectRecovered(run, 3);
    } finally {
      await Promise.all(open.splice(0).map((s) => s.close().catch(() => {})));
      await psql(`DROP TABLE IF EXISTS ${table}`);
    }
  });

  it("a skipped sequence number and a malformed message are gaps; heartbeats (older versions) and own messages are ignored", async () => {
    const channel = `gaps-seq-${uid()}`;
    const [b] = await instances(1, MACHINE_REDIS, { type: "redis", endpoint: MACHINE_REDIS, channel });
    const s = b!;
    const pub = new Redis(6379, "127.0.0.1");
    const keys = ["s1.json", "s2.json", "s3.json", "s4.json"];
    const send = (m: Record<string, unknown>) => pub.publish(channel, JSON.stringify({ v: 1, ...m }));
    const stats = () => s.coherenceStats()!;
    const held = async () => (await s.profile("mem").list("")).filter((k) => keys.includes(k));
    const warm = async () => {
      for (const k of keys) await s.saveValue(k, { k });
      await s.flush();
      expect(await held()).toEqual(keys);
    };
    const resynced = async (gaps: number, resyncs: number) => {
      await waitFor(() => stats().gaps === gaps, `gaps = ${gaps}`);
      await waitFor(() => stats().resyncs > resyncs && stats().distrusted.length === 0, "resync after the gap");
    };
    try {
      await warm();
      const g0 = stats().gaps;
      // In sequence: each drops its keys only.
      await send({ o: "other", s: 1, op: "save", k: ["s1.json"] });
      await send({ o: "other", s: 2, op: "delete", k: ["s2.json"] });
      await waitFor(() => stats().received === 2, "two messages received");
      await waitFor(async () => (await held()).length === 2, "s1, s2 dropped");
      expect(await held()).toEqual(["s3.json", "s4.json"]);
      expect(stats().gaps).toBe(g0);
      expect(stats().droppedKeys).toBe(2);

      // Sequence 4 after 2: a message was missed, so every local copy goes, not only s3's.
      let r0 = stats().resyncs;
      await send({ o: "other", s: 4, op: "save", k: ["s3.json"] });
      await resynced(g0 + 1, r0);
      expect(await held()).toEqual([]);

      // A heartbeat (sent by earlier versions) proves nothing and costs nothing: the lease is the proof now.
      await warm();
      await send({ o: "third", s: 1, op: "save", k: ["none.json"] });
      await send({ o: "third", s: 2, op: "hb" });
      await send({ o: "third", s: 2, op: "save", k: ["none.json"] });
      await waitFor(() => stats().received === 5, "the third origin's two saves");
      expect(stats().gaps).toBe(g0 + 1);
      expect(await held()).toEqual(keys);

      // Not one of ours: anything may have been lost.
      await warm();
      r0 = stats().resyncs;
      await pub.publish(channel, "{not json");
      await resynced(g0 + 2, r0);
      expect(await held()).toEqual([]);
      await warm();
      r0 = stats().resyncs;
      await send({ v: 2, o: "other", s: 5, op: "save", k: ["s4.json"] });
      await resynced(g0 + 3, r0);
      expect(await held()).toEqual([]);

      // Its own origin (even with a skipped number) is ignored; a later message from another shows it was processed.
      await warm();
      const received = stats().received;
      await send({ o: stats().origin, s: 999, op: "delete", k: ["s4.json"] });
      await send({ o: "fourth", s: 1, op: "save", k: ["none.json"] });
      await waitFor(() => stats().received === received + 1, "the other origin's message");
      expect(await held()).toEqual(keys);
      expect(stats().gaps).toBe(g0 + 3);
    } finally {
      pub.disconnect();
    }
  });

  it("write-back race: a slowed fallback read of v1 never lands in the memory tier after v2's message arrived", async () => {
    const channel = `gaps-race-${uid()}`;
    const root = `/tp-race-${uid()}/`;
    const coherence = { type: "redis", endpoint: MACHINE_REDIS, channel };
    const writer = await openInstance(
      { mem: { type: "memory" }, r: { type: "redis", endpoint: MACHINE_REDIS, root } },
      coherence,
      { logger },
    );
    open.push(writer);
    // B's shared tier: the real redis operator, a spy saying when its read answered, and the chaos wrapper
    // delaying the reply (the read itself happens at once, so it sees v1).
    const inner = await createOperator("redis", { endpoint: MACHINE_REDIS, root });
    let readsAnswered = 0;
    const spy = new Proxy(inner, {
      get(target, p) {
        if (p === "read") {
          return async (key: string) => {
            const data = await target.read(key);
            readsAnswered++;
            return data;
          };
        }
        const v = Reflect.get(target, p, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    }) as Operator;
    const chaos = chaosOperator(spy);
    const b = await DeviceStorage.fromOperators(
      [
        { name: "mem", op: memoryOperator(), speed: 1 },
        { name: "r", op: chaos, speed: 1000, shared: true },
      ],
      { logger, coherence: { bus: coherence } },
    );
    open.push(b);
    await ready(b);
    const key = "race.json";
    const arrived: string[] = [];
    b.onRemoteChange((c) => arrived.push(...c.keys));

    await writer.saveValue(key, { v: 1 });
    await writer.flush();
    await waitFor(() => arrived.includes(key), "v1's message at B");
    arrived.length = 0;
    expect(await localCopy(b, "mem", key)).toBeUndefined();

    chaos.faults = { methods: ["read"], replyDelayMs: 1000 };
    const before = readsAnswered;
    const slow = b.loadValue<{ v: number }>(key);
    let returned = false;
    void slow.then(() => {
      returned = true;
    });
    await waitFor(() => readsAnswered > before, "B's fallback read answered by redis (holding v1)");
    await writer.saveValue(key, { v: 2 });
    await writer.flush();
    await waitFor(() => arrived.includes(key), "v2's message at B");
    expect(returned).toBe(false); // the message came while the read was in flight
    const skipped = b.stats().mem!.writeBacksSkipped;

    // The slow read returns what it read (v1: it began before the save) but never caches it.
    expect((await slow).value).toEqual({ v: 1 });
    await b.flush();
    expect(await localCopy(b, "mem", key)).toBeUndefined();
    expect(b.stats().mem!.writeBacksSkipped).toBe(skipped + 1);

    chaos.faults = {};
    expect((await b.loadValue(key)).value).toEqual({ v: 2 });
    await b.flush();
    expect(await b.loadValue(key)).toMatchObject({ value: { v: 2 }, profile: "mem" });
  });

  it("bus server down, shared tier announced by its server: saves succeed, nothing waits; local tiers step aside until the bus is back", async () => {
    const coherence = { type: "redis", endpoint: bus.endpoint, channel: `gaps-down-${uid()}` };
    const [a, b] = (await instances(2, MACHINE_REDIS, coherence)) as [DeviceStorage, DeviceStorage];
    for (const k of ["d1.json", "d2.json", "d3.json"]) await a.saveValue(k, { v: 1 });
    await a.flush();
    for (const k of ["d1.json", "d2.json", "d3.json"]) await b.loadValue(k);
    await b.flush();
    expect(await localCopy(b, "mem", "d1.json")).toEqual({ v: 1 });
    const resyncs = b.coherenceStats()!.resyncs;

    await bus.kill();
    await waitFor(() => [a, b].every((s) => !s.coherenceStats()!.connected), "both bus listeners down");
    for (const s of [a, b]) {
      expect(s.coherenceStats()!.distrusted).toEqual(["mem"]);
      expect(s.coherenceStats()!.gaps).toBeGreaterThan(0);
    }
    // The redis tier's server reports the changes itself: nothing to announce, nothing queued.
    await a.saveValue("d1.json", { v: 2 });
    await a.deleteValue("d2.json");
    await a.flush();
    expect(a.coherenceStats()).toMatchObject({ retryQueue: 0, publishFailures: 0 });
    expect(await b.loadValue("d1.json")).toMatchObject({ value: { v: 2 }, profile: "r" });
    await expect(b.loadValue("d2.json")).rejects.toBeInstanceOf(NotFoundError);

    await bus.start();
    await Promise.all([ready(a), ready(b)]);
    expect(b.coherenceStats()!.resyncs).toBeGreaterThan(resyncs);
    // Resynced (emptied): d3, which nothing named, is gone too; the memory tier serves again.
    expect(await localCopy(b, "mem", "d3.json")).toBeUndefined();
    expect(await b.loadValue("d1.json")).toMatchObject({ value: { v: 2 }, profile: "r" });
    await b.flush();
    expect(await b.loadValue("d1.json")).toMatchObject({ value: { v: 2 }, profile: "mem" });
  });

  it("bus server down, shared tier no server announces (fs): a save names it (E_UNANNOUNCED) and stays queued; sent once the bus is back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tp-gaps-fs-"));
    dirs.push(dir);
    const coherence = { type: "redis", endpoint: bus.endpoint, channel: `gaps-fs-${uid()}`, heartbeat_ms: "100" };
    const shared = { type: "fs", root: dir, shared: "true" };
    const [a, b] = (await instances(2, MACHINE_REDIS, coherence, shared)) as [DeviceStorage, DeviceStorage];
    const arrived = new Set<string>();
    b.onRemoteChange((c) => {
      for (const k of c.keys) arrived.add(k);
    });
    await a.saveValue("f1.json", { v: 1 });
    await waitFor(() => arrived.has("f1.json"), "A's message at B");
    expect(a.coherenceStats()!.sent).toBeGreaterThan(0);

    await bus.kill();
    await waitFor(() => !a.coherenceStats()!.connected, "A's listener down");
    const t0 = performance.now();
    const err = (await a.saveValue("f1.json", { v: 2 }).catch((e: unknown) => e)) as PartialWriteError;
    const waited = performance.now() - t0;
    expect(err).toBeInstanceOf(PartialWriteError);
    const fsOutcome = err.outcomes.find((o) => o.profile === "r");
    expect(fsOutcome).toMatchObject({ ok: false, error: expect.any(AnnounceError) });
    expect(fsOutcome && !fsOutcome.ok && (fsOutcome.error as AnnounceError).code).toBe("E_UNANNOUNCED");
    // It waited for the announcement up to the bound (3 x 100 ms), not longer.
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(2000);
    // The value is stored; its announcement waits in the queue.
    expect(await localCopy(a, "r", "f1.json")).toEqual({ v: 2 });
    expect(a.coherenceStats()!.retryQueue).toBeGreaterThan(0);

    arrived.clear();
    await bus.start();
    await Promise.all([ready(a), ready(b)]);
    await waitFor(() => a.coherenceStats()!.retryQueue === 0, "A's queue sent");
    await waitFor(() => arrived.has("f1.json"), "the queued announcement at B");
    expect(await b.loadValue("f1.json")).toMatchObject({ value: { v: 2 } });
  });

  it("durable local tier: a reopened instance revalidates its sqlite copies (equal kept, changed replaced, deleted removed)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tp-gaps-sqlite-"));
    dirs.push(dir);
    const root = `/tp-durable-${uid()}/`;
    const coherence = { type: "redis", endpoint: MACHINE_REDIS, channel: `gaps-durable-${uid()}` };
    const r = { type: "redis", endpoint: MACHINE_REDIS, root };
    // Ranks fixed (memory, sqlite, redis): what this test checks is the resync, not a timing that a
    // loaded machine can flip (the full suite once measured redis ahead of sqlite here).
    const withSqlite = {
      mem: { type: "memory", speed: "0" },
      sq: { type: "sqlite", datadir: dir, table: "kv", speed: "1" },
      r: { ...r, speed: "1000" },
    };
    const keys = ["same.json", "changed.json", "deleted.json"];

    const first = await openInstance(withSqlite, coherence, { logger });
    for (const k of keys) await first.saveValue(k, { v: 1 });
    await first.close();
    const other = await openInstance({ mem: { type: "memory" }, r }, coherence, { logger });
    open.push(other);
    await other.saveValue("changed.json", { v: 2 });
    await other.deleteValue("deleted.json");
    await other.flush();

    const origin = `durable-${uid()}`;
    const rec = recordBus();
    try {
      const again = await DeviceStorage.fromSettings(
        { profiles: withSqlite, coherence },
        { logger, coherence: { origin } },
      );
      open.push(again);
      // Before any resync can have finished: never the old sqlite values.
      expect(await again.loadValue("changed.json")).toMatchObject({ value: { v: 2 } });
      await expect(again.loadValue("deleted.json")).rejects.toBeInstanceOf(NotFoundError);
      await ready(again);
      await again.flush();
      const report = rec.events.find((e) => e.event === "resync" && e.origin === origin && e.profile === "sq");
      expect(report).toMatchObject({ keys: 3, dropped: 1, replaced: 1 });
      expect(await localCopy(again, "sq", "same.json")).toEqual({ v: 1 });
      expect(await localCopy(again, "sq", "changed.json")).toEqual({ v: 2 });
      expect(await localCopy(again, "sq", "deleted.json")).toBeUndefined();
      expect(again.coherenceStats()!.distrusted).toEqual([]);
      // Trusted again: the warm sqlite copy serves (the memory tier is empty after the restart).
      const state = JSON.stringify({
        lease: again.coherenceStats()?.lease,
        distrusted: again.coherenceStats()?.distrusted,
      });
      expect(await again.loadValue("same.json"), state).toMatchObject({ value: { v: 1 }, profile: "sq" });
    } finally {
      rec.stop();
    }
  });

  it("durable local tier over a shared redis with a quota: the reopened instance resyncs and serves its sqlite copies", async () => {
    // A quota (max_items) wraps the redis operator: the wrapper must pass on the batched reads and digests its
    // capabilities promise, else the resync failed on every attempt and sqlite never served again.
    const dir = mkdtempSync(join(tmpdir(), "tp-gaps-quota-"));
    dirs.push(dir);
    const coherence = { type: "redis", endpoint: MACHINE_REDIS, channel: `gaps-quota-${uid()}` };
    const r = {
      type: "redis",
      endpoint: MACHINE_REDIS,
      root: `/tp-durable-${uid()}/`,
      max_items: "1000",
      speed: "1000",
    };
    const profiles = { mem: { type: "memory", speed: "0" }, sq: { type: "sqlite", datadir: dir, speed: "1" }, r };
    const first = await openInstance(profiles, coherence, { logger });
    await first.saveValue("kept.json", { v: 1 });
    await first.saveValue("changed.json", { v: 1 });
    await first.close();
    const other = await openInstance({ mem: { type: "memory" }, r }, coherence, { logger });
    open.push(other);
    await other.saveValue("changed.json", { v: 2 });
    await other.flush();

    const again = await DeviceStorage.fromSettings({ profiles, coherence }, { logger });
    open.push(again);
    await ready(again);
    expect(again.coherenceStats()!.resyncs).toBeGreaterThan(0);
    expect(await localCopy(again, "sq", "changed.json")).toEqual({ v: 2 });
    expect(await again.loadValue("kept.json")).toMatchObject({ value: { v: 1 }, profile: "sq" });
  });
});
