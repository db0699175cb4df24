/**
 * The fault proxy (proxy.ts) against the machine's real Redis and PostgreSQL:
 * each mode does what it says, for every connection or only the listening
 * one, and dropped traffic is cut in whole frames (the clients' own parsers
 * keep working through thousands of mode switches). Own channels and keys.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { POSTGRES, requireServer } from "../helpers/servers.js";
import { FaultProxy } from "./proxy.js";

const REDIS = { host: "127.0.0.1", port: 6379 };
const PG_URL = `postgresql://${POSTGRES.user}@${POSTGRES.host}:${POSTGRES.port}/${POSTGRES.database}`;
const redisOk = await requireServer("redis (fault proxy)", REDIS.host, REDIS.port);
const pgOk = await requireServer("postgresql (fault proxy)", POSTGRES.host, POSTGRES.port);

const uid = () => randomBytes(5).toString("hex");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Resolves with "timeout" if `p` has not settled within `ms`. */
const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, sleep(ms).then(() => "timeout" as const)]).catch((e: Error) => `error: ${e.message}`);
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await Promise.resolve(f()).catch(() => {});
});

async function redisProxy() {
  const proxy = await FaultProxy.start({ target: REDIS, protocol: "redis" });
  cleanup.push(() => proxy.close());
  const client = (direct = false) => {
    const c = new Redis({ ...(direct ? REDIS : { host: "127.0.0.1", port: proxy.port }), maxRetriesPerRequest: 0 });
    c.on("error", () => {});
    cleanup.push(() => c.disconnect());
    return c;
  };
  const channel = `tp-proxy-${uid()}`;
  /** A subscriber through the proxy, collecting what it receives. */
  const subscriber = async () => {
    const sub = client();
    const got: string[] = [];
    sub.on("message", (_c: string, m: string) => got.push(m));
    await sub.subscribe(channel);
    return { sub, got };
  };
  return { proxy, client, channel, subscriber };
}

describe.skipIf(!redisOk)("fault proxy on Redis", () => {
  it("pass forwards, and the subscriber's connection is told from the data one", async () => {
    const { proxy, client, subscriber } = await redisProxy();
    const c = client();
    const key = `tp-proxy-${uid()}`;
    await c.set(key, "v");
    expect(await c.get(key)).toBe("v");
    await c.del(key);
    await subscriber();
    expect(proxy.roles().sort()).toEqual(["data", "listener"]);
  });

  it("delay: each direction late by ms, order kept", async () => {
    const { proxy, client, channel, subscriber } = await redisProxy();
    const c = client();
    const key = `tp-proxy-${uid()}`;
    await c.ping();
    const { got } = await subscriber();
    const pub = client(true);
    proxy.set({ kind: "delay", ms: 60 });
    // Round trip: both directions.
    const t0 = performance.now();
    await c.ping();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(119);
    // Server to client only: a message published on a direct connection.
    const t1 = performance.now();
    await pub.publish(channel, "late");
    await until(() => got.length === 1, "the delayed message");
    expect(performance.now() - t1).toBeGreaterThanOrEqual(59);
    // Client to server only: a write through the proxy, seen on a direct connection.
    const t2 = performance.now();
    const written = c.set(key, "0");
    let seen = false;
    while (!seen) seen = (await pub.get(key)) === "0";
    expect(performance.now() - t2).toBeGreaterThanOrEqual(59);
    await written;
    await c.del(key);
    const pipe = c.pipeline();
    for (let i = 0; i < 100; i++) pipe.incr(key);
    const replies = (await pipe.exec())!.map(([, v]) => v);
    expect(replies).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    await c.del(key);
  });

  it("hold on the listener: nothing arrives, data still flows; healed, everything arrives in order", async () => {
    const { proxy, client, channel, subscriber } = await redisProxy();
    const { sub, got } = await subscriber();
    const data = client();
    const pub = client(true);
    proxy.set({ kind: "hold" }, "listener");
    for (let i = 0; i < 5; i++) await pub.publish(channel, `m${i}`);
    expect(await data.ping()).toBe("PONG");
    expect(await within(sub.ping(), 300)).toBe("timeout");
    expect(got).toEqual([]);
    expect(proxy.stats().held).toBeGreaterThan(0);
    proxy.heal();
    await until(() => got.length === 5, "the held messages");
    expect(got).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    expect(sub.status).toBe("ready");
  });

  it("hold on every connection: a GET waits, and is answered after healing", async () => {
    const { proxy, client } = await redisProxy();
    const c = client();
    const key = `tp-proxy-${uid()}`;
    await c.set(key, "1");
    proxy.set({ kind: "hold" });
    const get = c.get(key);
    expect(await within(get, 300)).toBe("timeout");
    proxy.heal();
    expect(await get).toBe("1");
    await c.del(key);
  });

  it("drop of pushes: messages lost, PING still answered, the connection stays; drop all: PING unanswered", async () => {
    const { proxy, client, channel, subscriber } = await redisProxy();
    const { sub, got } = await subscriber();
    const pub = client(true);
    proxy.set({ kind: "drop", frames: "push" }, "listener");
    for (let i = 0; i < 5; i++) await pub.publish(channel, `lost${i}`);
    expect(await sub.ping()).toEqual(["pong", ""]);
    expect(proxy.stats().droppedPushFrames).toBe(5);
    proxy.heal();
    await pub.publish(channel, "after");
    await until(() => got.length === 1, "the message after healing");
    expect(got).toEqual(["after"]);

    proxy.set({ kind: "drop", frames: "all" }, "listener");
    expect(await within(sub.ping(), 300)).toBe("timeout");
    await pub.publish(channel, "lost");
    await sleep(50);
    expect(got).toEqual(["after"]);
    expect(sub.status).toBe("ready");
  });

  it("frames stay whole: 400 messages of 1 B to 200 KB while the listener flips between pass and drop", async () => {
    const { proxy, client, channel, subscriber } = await redisProxy();
    const { sub, got } = await subscriber();
    let errors = 0;
    sub.on("error", () => errors++);
    const pub = client(true);
    const sent: string[] = [];
    let flips = 0;
    const flipper = setInterval(() => {
      flips++;
      proxy.set(flips % 3 === 0 ? { kind: "pass" } : { kind: "drop", frames: flips % 2 ? "all" : "push" }, "listener");
    }, 2);
    try {
      for (let i = 0; i < 400; i++) {
        const size = i % 10 === 0 ? 200_000 : 1 + ((i * 7919) % 3000);
        const body = `${i}:${randomBytes(Math.ceil(size / 2))
          .toString("hex")
          .slice(0, size)}`;
        sent.push(body);
        await pub.publish(channel, body);
      }
    } finally {
      clearInterval(flipper);
    }
    proxy.heal();
    await pub.publish(channel, "end");
    await until(() => got.at(-1) === "end", "the last message");
    const received = got.slice(0, -1);
    // Each one arrived whole, in the order sent; the rest were dropped whole.
    const index = received.map((m) => sent.indexOf(m));
    expect(index.every((x) => x >= 0)).toBe(true);
    expect([...index].sort((a, b) => a - b)).toEqual(index);
    expect(received.length + proxy.stats().droppedPushFrames).toBe(sent.length);
    expect(received.length).toBeGreaterThan(0);
    expect(proxy.stats().droppedPushFrames).toBeGreaterThan(0);
    expect(errors).toBe(0);
    expect(proxy.stats().framingErrors).toBe(0);
  });

  it("reset: open connections get an RST, new ones too while in reset; listener-only spares data", async () => {
    const { proxy, client, subscriber } = await redisProxy();
    const { sub } = await subscriber();
    const data = client();
    await data.ping();
    let subClosed = 0;
    sub.on("close", () => subClosed++);
    proxy.set({ kind: "reset" }, "listener");
    await until(() => subClosed > 0, "the subscriber reset");
    expect(await data.ping()).toBe("PONG");
    proxy.set({ kind: "reset" });
    const errors: string[] = [];
    const fresh = new Redis({ host: "127.0.0.1", port: proxy.port, retryStrategy: () => null, lazyConnect: true });
    fresh.on("error", (e: Error & { code?: string }) => errors.push(e.code ?? e.message));
    cleanup.push(() => fresh.disconnect());
    await fresh.connect().catch(() => {});
    await until(() => errors.length > 0, "the new connection reset");
    expect(errors).toContain("ECONNRESET");
    expect(proxy.stats().resets).toBeGreaterThanOrEqual(3);
    proxy.heal();
    const again = client();
    expect(await again.ping()).toBe("PONG");
  });
});

async function pgProxy() {
  const proxy = await FaultProxy.start({
    target: { host: POSTGRES.host, port: POSTGRES.port },
    protocol: "postgresql",
  });
  cleanup.push(() => proxy.close());
  const connect = async (direct = false) => {
    const c = new pg.Client({ connectionString: direct ? PG_URL : proxy.postgresUrl(PG_URL) });
    c.on("error", () => {});
    await c.connect();
    cleanup.push(() => within(c.end(), 500));
    return c;
  };
  const channel = `tp_proxy_${uid()}`;
  const listener = async () => {
    const c = await connect();
    const got: string[] = [];
    c.on("notification", (n) => got.push(n.payload ?? ""));
    await c.query(`LISTEN ${channel}`);
    return { c, got };
  };
  return { proxy, connect, channel, listener };
}

describe.skipIf(!pgOk)("fault proxy on PostgreSQL", () => {
  it("pass forwards; the LISTEN connection is the listener; delay makes a round trip late", async () => {
    const { proxy, connect, listener } = await pgProxy();
    const c = await connect();
    expect((await c.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    await listener();
    expect(proxy.roles().sort()).toEqual(["data", "listener"]);
    proxy.set({ kind: "delay", ms: 50 }, "data");
    const t0 = performance.now();
    await c.query("SELECT 1");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(99);
  });

  it("hold on the listener: no notification, data flows; healed, all arrive in order", async () => {
    const { proxy, connect, channel, listener } = await pgProxy();
    const { c: l, got } = await listener();
    const data = await connect();
    const direct = await connect(true);
    proxy.set({ kind: "hold" }, "listener");
    for (let i = 0; i < 5; i++) await direct.query("SELECT pg_notify($1, $2)", [channel, `m${i}`]);
    expect((await data.query("SELECT 2 AS two")).rows).toEqual([{ two: 2 }]);
    expect(await within(l.query("SELECT 1"), 300)).toBe("timeout");
    expect(got).toEqual([]);
    proxy.heal();
    await until(() => got.length === 5, "the held notifications");
    expect(got).toEqual(["m0", "m1", "m2", "m3", "m4"]);
  });

  it("drop of pushes: notifications lost, SELECT 1 on the listener answered; drop all spares only the start-up", async () => {
    const { proxy, connect, channel, listener } = await pgProxy();
    const { c: l, got } = await listener();
    const direct = await connect(true);
    proxy.set({ kind: "drop", frames: "push" }, "listener");
    for (let i = 0; i < 3; i++) await direct.query("SELECT pg_notify($1, $2)", [channel, `lost${i}`]);
    expect((await l.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    expect(got).toEqual([]);
    expect(proxy.stats().droppedPushFrames).toBe(3);
    proxy.heal();
    await direct.query("SELECT pg_notify($1, 'after')", [channel]);
    await until(() => got.length === 1, "the notification after healing");

    // A new connection under drop-all completes its start-up, then hears nothing.
    proxy.set({ kind: "drop", frames: "all" });
    const fresh = await connect();
    expect(await within(fresh.query("SELECT 1"), 300)).toBe("timeout");
  });

  it("frames stay whole: 300 notifications of up to 7,900 bytes while the listener flips between pass and drop", async () => {
    const { proxy, connect, channel, listener } = await pgProxy();
    const { c: l, got } = await listener();
    let errors = 0;
    l.on("error", () => errors++);
    const direct = await connect(true);
    const sent: string[] = [];
    let flips = 0;
    const flipper = setInterval(() => {
      flips++;
      proxy.set(flips % 2 ? { kind: "drop", frames: "push" } : { kind: "pass" }, "listener");
    }, 2);
    try {
      for (let i = 0; i < 300; i++) {
        const body = `${i}:${"x".repeat((i * 7919) % 7900)}`;
        sent.push(body);
        await direct.query("SELECT pg_notify($1, $2)", [channel, body]);
      }
    } finally {
      clearInterval(flipper);
    }
    proxy.heal();
    await direct.query("SELECT pg_notify($1, 'end')", [channel]);
    await until(() => got.at(-1) === "end", "the last notification");
    const index = got.slice(0, -1).map((m) => sent.indexOf(m));
    expect(index.every((x) => x >= 0)).toBe(true);
    expect([...index].sort((a, b) => a - b)).toEqual(index);
    expect(index.length + proxy.stats().droppedPushFrames).toBe(sent.length);
    expect(proxy.stats().droppedPushFrames).toBeGreaterThan(0);
    expect((await l.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    expect(errors + proxy.stats().framingErrors).toBe(0);
  });

  it("reset: the listener's connection errors out, a new connection is refused while in reset", async () => {
    const { proxy, connect, listener } = await pgProxy();
    const { c: l } = await listener();
    const data = await connect();
    const lost = new Promise<string>((resolve) =>
      l.once("error", (e: Error & { code?: string }) => resolve(e.code ?? e.message)),
    );
    proxy.set({ kind: "reset" }, "listener");
    expect(await within(lost, 2000)).toBe("ECONNRESET");
    expect((await data.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    proxy.set({ kind: "reset" });
    const fresh = new pg.Client({ connectionString: proxy.postgresUrl(PG_URL) });
    fresh.on("error", () => {});
    expect(String(await within(fresh.connect(), 2000))).toMatch(/error: /);
    proxy.heal();
    const again = await connect();
    expect((await again.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
  });
});
