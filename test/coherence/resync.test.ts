/**
 * Batch revalidation of a durable local tier (sqlite) against each shared
 * engine, by digest (Redis `redis.sha1hex` script, PostgreSQL `md5(value)`,
 * S3 ETags from the listing on s3rver): after a restart and after a gap, with
 * values changed and deleted behind the instance's back (raw writes, never
 * announced), the resync replaces exactly the changed keys, deletes exactly the
 * deleted ones, fetches only the changed values, and keeps every expiry.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { createOperator, type DeviceStorage, type Operator, silentLogger } from "../../src/index.js";
import { FaultProxy } from "../faults/proxy.js";
import { requireServer, type S3rverInstance, s3Options, startS3rver } from "../helpers/servers.js";
import { type BusDiagnostic, MACHINE_PG, MACHINE_REDIS, openInstance, recordBus, uid, waitFor } from "./_gaps-util.js";

const ok =
  (await requireServer("resync (machine Redis)", "127.0.0.1", 6379)) &&
  (await requireServer("resync (machine PostgreSQL)", "127.0.0.1", 5432));
const dirs: string[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** One shared engine: its profile, the bus beside it, and a writer that is not this library's storage (no announcements). */
interface Engine {
  name: string;
  setup(): Promise<{
    shared: Record<string, string>;
    coherence: Record<string, string>;
    /** Writes or deletes a value in the shared store directly (another program's write: never announced). */
    raw: { put(key: string, text: string): Promise<unknown>; del(key: string): Promise<unknown> };
    /**
     * Makes the running instance miss what follows until `gap()`: its listening connection drops everything
     * (Redis and PostgreSQL report other programs' writes themselves, so the instance would otherwise drop
     * those copies at once). Engines whose server cannot report need nothing.
     */
    deafen?(): void;
    /** Makes the running instance see a gap (its listener reset, or a message on its channel that is not one of ours). */
    gap(): Promise<unknown>;
  }>;
}

/** A fault proxy in front of a server: the instance's connections go through it, so its listener can be deafened. */
async function proxied(port: number, protocol: "redis" | "postgresql") {
  const proxy = await FaultProxy.start({ target: { host: "127.0.0.1", port }, protocol });
  cleanups.push(() => proxy.close());
  return {
    proxy,
    deafen: () => proxy.set({ kind: "drop", frames: "all" }, "listener"),
    gap: async () => {
      proxy.set({ kind: "reset" }, "listener");
      await new Promise((r) => setTimeout(r, 50));
      proxy.heal();
    },
  };
}

const redisBus = (channel: string) => {
  const pub = new Redis(6379, "127.0.0.1");
  cleanups.push(async () => pub.disconnect());
  return {
    coherence: { type: "redis", endpoint: MACHINE_REDIS, channel },
    gap: () => pub.publish(channel, "{not a bus message"),
  };
};

const engines: Engine[] = [
  {
    name: "redis (sha1 script)",
    async setup() {
      const root = `tp-resync-${uid()}/`;
      const r = new Redis(6379, "127.0.0.1");
      cleanups.push(async () => {
        const keys = await r.keys(`${root}*`);
        if (keys.length) await r.del(...keys);
        r.disconnect();
      });
      const { proxy, deafen, gap } = await proxied(6379, "redis");
      return {
        shared: { type: "redis", endpoint: proxy.endpoint, root: `/${root}` },
        coherence: { type: "redis", endpoint: proxy.endpoint, channel: `resync-${uid()}` },
        deafen,
        gap,
        raw: { put: (k, t) => r.set(root + k, t), del: (k) => r.del(root + k) },
      };
    },
  },
  {
    name: "postgresql (md5)",
    async setup() {
      const table = `tp_resync_${uid()}`;
      const channel = `tp_resync_${uid()}`;
      const pool = new pg.Pool({ connectionString: MACHINE_PG, max: 2 });
      cleanups.push(async () => {
        await pool.query(`DROP TABLE IF EXISTS ${table}`);
        await pool.end();
      });
      const { proxy, deafen, gap } = await proxied(5432, "postgresql");
      const via = proxy.postgresUrl(MACHINE_PG);
      return {
        shared: { type: "postgresql", connection_string: via, table },
        coherence: { type: "postgresql", connection_string: via, channel },
        deafen,
        gap,
        raw: {
          put: (k, t) =>
            pool.query(
              `INSERT INTO ${table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
              [k, Buffer.from(t)],
            ),
          del: (k) => pool.query(`DELETE FROM ${table} WHERE key = $1`, [k]),
        },
      };
    },
  },
  {
    name: "s3 on s3rver (ETags from the listing)",
    async setup() {
      const s3: S3rverInstance = await startS3rver();
      cleanups.push(() => s3.stop());
      const op: Operator = await createOperator("s3", s3Options(s3), { profile: "raw" });
      cleanups.push(() => op.close());
      return {
        shared: { type: "s3", ...s3Options(s3) },
        ...redisBus(`resync-s3-${uid()}`),
        raw: { put: (k, t) => op.write(k, t), del: (k) => op.delete(k) },
      };
    },
  },
];

const N = 300;
const key = (i: number) => `doc_${String(i).padStart(3, "0")}.json`;
const value = (i: number, version: number) => ({ i, version, pad: "x".repeat(100 + (i % 50)) });
/** Keys 200 and up are saved with a TTL. */
const TTL_FROM = 200;

describe.skipIf(!ok)("batch revalidation of a durable local tier", () => {
  for (const engine of engines) {
    it(`${engine.name}: after a restart and after a gap, exactly the changed keys are replaced, the deleted ones dropped, expiries kept`, async () => {
      const e = await engine.setup();
      const dir = mkdtempSync(join(tmpdir(), "tp-resync-"));
      dirs.push(dir);
      const profiles = { sq: { type: "sqlite", datadir: dir, table: "kv" }, sh: e.shared };
      const resyncs: BusDiagnostic[] = [];
      const rec = recordBus((ev) => {
        if (ev.event === "resync" && ev.profile === "sq") resyncs.push(ev);
      });
      cleanups.push(async () => rec.stop());
      const open = async () => {
        const s = await openInstance(profiles, e.coherence, { logger: silentLogger });
        cleanups.push(() => s.close());
        return s;
      };

      let a: DeviceStorage = await open();
      for (let i = 0; i < N; i++) {
        await a.saveValue(key(i), value(i, 1), i >= TTL_FROM ? { ttlMs: 3_600_000 } : {});
      }
      await a.flush();
      const expiries = new Map<string, number | undefined>();
      for (let i = 0; i < N; i++) expiries.set(key(i), (await a.profile("sq").readEntry(key(i)))!.expiresAt);
      expect(expiries.get(key(TTL_FROM))).toBeGreaterThan(Date.now());
      await a.close();

      // Behind its back: 10 changed (3 with a TTL), 7 deleted (2 with a TTL).
      const changed = [3, 17, 42, 99, 150, 151, 199, 205, 230, 299];
      const deleted = [0, 5, 77, 160, 198, 210, 250];
      let changedBytes = 0;
      for (const i of changed) {
        const text = JSON.stringify(value(i, 2));
        changedBytes += text.length;
        await e.raw.put(key(i), text);
      }
      for (const i of deleted) await e.raw.del(key(i));

      const check = async (s: DeviceStorage, version: (i: number) => number, gone: Set<number>) => {
        for (let i = 0; i < N; i++) {
          const entry = await s.profile("sq").readEntry(key(i));
          if (gone.has(i)) {
            expect(entry, key(i)).toBeUndefined();
            continue;
          }
          expect(JSON.parse(Buffer.from(entry!.data).toString("utf8")), key(i)).toEqual(value(i, version(i)));
          expect(entry!.expiresAt, key(i)).toBe(expiries.get(key(i)));
        }
      };

      // Restart: the start-up resync (the first open's, of an empty tier, is not counted).
      const before = resyncs.length;
      a = await open();
      await waitFor(() => resyncs.length > before, "the start-up resync of sq");
      const first = resyncs[before]!;
      expect(first).toMatchObject({
        keys: N,
        replaced: changed.length,
        dropped: deleted.length,
        fetched: changed.length,
      });
      // A digest per key (40 hex at most) and the changed values: never every value.
      expect(first.bytesRead).toBeLessThanOrEqual(changedBytes + N * 40);
      await check(a, (i) => (changed.includes(i) ? 2 : 1), new Set(deleted));

      // A gap while running: 5 more changed, 3 more deleted while the instance hears nothing, found by the resync after it.
      e.deafen?.();
      const changed2 = [1, 50, 202, 250 - 1, 298];
      const deleted2 = [2, 201, 297];
      let changed2Bytes = 0;
      for (const i of changed2) {
        const text = JSON.stringify(value(i, 3));
        changed2Bytes += text.length;
        await e.raw.put(key(i), text);
      }
      for (const i of deleted2) await e.raw.del(key(i));
      await e.gap();
      await waitFor(
        () => resyncs.length > before + 1 && a.coherenceStats()!.distrusted.length === 0,
        "the resync after the gap",
      );
      const second = resyncs[before + 1]!;
      const left = N - deleted.length;
      expect(second).toMatchObject({
        keys: left,
        replaced: changed2.length,
        dropped: deleted2.length,
        fetched: changed2.length,
      });
      expect(second.bytesRead).toBeLessThanOrEqual(changed2Bytes + left * 40);
      await check(
        a,
        (i) => (changed2.includes(i) ? 3 : changed.includes(i) ? 2 : 1),
        new Set([...deleted, ...deleted2]),
      );
      await a.close();
    }, 60_000);
  }
});
