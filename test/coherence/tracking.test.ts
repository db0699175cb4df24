/**
 * The change feed of a shared Redis profile (issue 19): Redis reports every
 * change of the profile's keys itself (client-side-caching tracking on the
 * listening connection). Besides SET and DEL (quiet-failures.test.ts): a
 * FLUSHALL drops every local copy, an expiry set by another program drops the
 * copy when Redis expires the key, a TTL saved by another instance reaches
 * the copy through its sidecar; and a server that refuses CLIENT TRACKING
 * leaves the profile announced on the bus, said once, with saves still
 * reaching the other instances. Servers this test starts itself (a FLUSHALL
 * must not touch the machine's Redis).
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeviceStorage, silentLogger } from "../../src/index.js";
import { freePort, type OwnServer, startRedis } from "../helpers/servers.js";
import { captureLogger, localCopy, openInstance, serversFor, uid, waitFor } from "./_gaps-util.js";

const ok = await serversFor({ ownRedis: true });
const open: DeviceStorage[] = [];
let server: OwnServer & { endpoint: string };
let raw: Redis;
beforeAll(async () => {
  if (!ok) return;
  server = await startRedis();
  raw = new Redis(server.port, "127.0.0.1");
});
afterAll(async () => {
  await Promise.all(open.splice(0).map((s) => s.close().catch(() => {})));
  raw?.disconnect();
  await server?.stop();
});

const settings = (endpoint: string) => {
  const root = `tp-track-${uid()}`;
  return {
    root,
    profiles: { mem: { type: "memory" }, r: { type: "redis", endpoint, root: `/${root}/` } },
    coherence: { type: "redis", endpoint, channel: `tp-track-${uid()}`, heartbeat_ms: "100" },
  };
};

async function pair(endpoint: string, logger = silentLogger) {
  const s = settings(endpoint);
  const a = await openInstance(s.profiles, s.coherence, { logger });
  const b = await openInstance(s.profiles, s.coherence, { logger });
  open.push(a, b);
  return { ...s, a, b };
}

/** B caches `key` in its memory tier once the report of A's save was handled. */
async function cached(b: DeviceStorage, key: string): Promise<void> {
  await b.flush();
  await b.loadValue(key);
  await b.flush();
  expect((await b.loadValue(key)).profile).toBe("mem");
}

describe.skipIf(!ok)("redis change feed (tracking)", () => {
  it("FLUSHALL by another program drops every local copy", async () => {
    const { a, b } = await pair(server.endpoint);
    for (const k of ["f1.json", "f2.json"]) await a.saveValue(k, { k });
    await waitFor(() => b.coherenceStats()!.serverReports >= 2, "B heard A's saves");
    for (const k of ["f1.json", "f2.json"]) await cached(b, k);
    await raw.flushall();
    await waitFor(
      async () =>
        (await localCopy(b, "mem", "f1.json")) === undefined && (await localCopy(b, "mem", "f2.json")) === undefined,
      "every copy dropped",
      b.coherenceStats()!.lease!.boundMs,
    );
    expect(await b.exists("f1.json")).toBe(false);
    expect(b.coherenceStats()!.gaps).toBe(0);
  });

  it("a key another program gave an expiry: the copy goes when Redis expires it", async () => {
    const { root, a, b } = await pair(server.endpoint);
    await a.saveValue("x.json", { v: 1 });
    await waitFor(() => b.coherenceStats()!.serverReports >= 1, "B heard A's save");
    await cached(b, "x.json");
    await raw.pexpire(`${root}/x.json`, 400);
    // Setting the expiry changes the key: reported, dropped; B caches the value again meanwhile.
    await waitFor(async () => (await localCopy(b, "mem", "x.json")) === undefined, "the copy dropped at PEXPIRE");
    await cached(b, "x.json");
    // Redis expires it lazily or in its active cycle (10 per second): that is reported too.
    await waitFor(async () => (await localCopy(b, "mem", "x.json")) === undefined, "the copy dropped at expiry", 3000);
    expect(await b.exists("x.json")).toBe(false);
  });

  it("a TTL saved by another instance reaches B's copy (its sidecar is reported)", async () => {
    const { a, b } = await pair(server.endpoint);
    await a.saveValue("t.json", { v: 1 });
    await waitFor(() => b.coherenceStats()!.serverReports >= 1, "B heard A's save");
    await cached(b, "t.json");
    await a.saveValue("t.json", { v: 2 }, { ttlMs: 60_000 });
    await waitFor(async () => (await localCopy(b, "mem", "t.json")) === undefined, "the copy dropped");
    expect((await b.loadValue("t.json")).value).toEqual({ v: 2 });
  });

  it("a shared profile down at start-up is listened for from the start: local tiers wait for it, then hear it", async () => {
    const port = await freePort();
    const endpoint = `tcp://127.0.0.1:${port}`;
    const s = settings(endpoint);
    // The bus is up (the server this file started); the shared profile's own server is not, yet.
    const coherence = { ...s.coherence, endpoint: server.endpoint };
    const b = await DeviceStorage.fromSettings({ profiles: s.profiles, coherence }, { logger: silentLogger });
    open.push(b);
    expect(b.stats().r?.state?.kind).toBe("down");
    // Its changes cannot be heard, so nothing local may be served.
    expect(b.coherenceStats()!.distrusted).toEqual(["mem"]);
    expect(b.coherenceStats()!.lease!.listeners).toContainEqual(
      expect.objectContaining({ listener: `redis 127.0.0.1:${port}`, connected: false }),
    );
    const late = await startRedis({ port });
    try {
      const a = await openInstance(s.profiles, coherence, { logger: silentLogger });
      open.push(a);
      await b.retryDown();
      await waitFor(() => b.coherenceStats()!.connected && b.coherenceStats()!.distrusted.length === 0, "B trusts");
      await a.saveValue("late.json", { v: 1 });
      await waitFor(() => b.coherenceStats()!.serverReports >= 1, "B heard A's save");
      await cached(b, "late.json");
      await a.saveValue("late.json", { v: 2 });
      await waitFor(
        async () => (await b.loadValue<{ v: number }>("late.json")).value.v === 2,
        "B serves v2",
        b.coherenceStats()!.lease!.boundMs,
      );
    } finally {
      await Promise.all(open.splice(0).map((x) => x.close().catch(() => {})));
      await late.stop();
    }
  });

  it("a server that refuses CLIENT TRACKING: the profile's saves are announced on the bus; said once", async () => {
    const refusing = await startRedis({ args: ["--rename-command", "CLIENT", ""] });
    try {
      const log = captureLogger();
      const { a, b } = await pair(refusing.endpoint, log);
      for (const s of [a, b]) {
        expect(s.coherenceStats()!.feeds).toEqual([
          expect.objectContaining({
            profile: "r",
            announcedBy: "bus",
            reason: expect.stringContaining("CLIENT TRACKING"),
          }),
        ]);
      }
      expect(log.lines.filter((l) => l.includes("does not report changes (CLIENT TRACKING)"))).toHaveLength(2);
      const heard = new Set<string>();
      b.onRemoteChange((c) => {
        for (const k of c.keys) heard.add(k);
      });
      await a.saveValue("y.json", { v: 1 });
      await waitFor(() => heard.has("y.json"), "A's announcement at B");
      await cached(b, "y.json");
      const sent = a.coherenceStats()!.sent;
      await a.saveValue("y.json", { v: 2 });
      expect(a.coherenceStats()!.sent).toBe(sent + 1); // the save waited for its announcement
      await waitFor(async () => (await b.loadValue<{ v: number }>("y.json")).value.v === 2, "B serves v2");
    } finally {
      await Promise.all(open.splice(0).map((s) => s.close().catch(() => {})));
      await refusing.stop();
    }
  });
});
