/**
 * Scenario 4: the same two-tier setup (memory over SQLite, WAL,
 * `synchronous=NORMAL`, one file each in the same folder, the same 1 KB
 * documents) through ours and three peer libraries, for a memory hit, a
 * memory miss served by SQLite, and a set. Every library runs in alternating
 * rounds with the others, and with its defaults apart from what the setup
 * needs:
 *
 * - **bentocache** 1.6.1: `memoryDriver` L1 (serialized, as by default) +
 *   `knexDriver` L2 over knex + better-sqlite3. Sets write both tiers; an L1
 *   miss copies the L2 value back into L1.
 * - **cacheable** 2.5.0: its default primary (CacheableMemory through Keyv,
 *   values cloned) + a Keyv 5 secondary over better-sqlite3 (see
 *   `_keyv-raw-sqlite.ts` for why not `@keyv/sqlite`). Sets write both; a
 *   miss copies back.
 * - **unstorage** 1.17.6: the `overlay` driver over `memory` + `db0`
 *   (better-sqlite3 connector). **Skips work**: a set writes the memory layer
 *   only, and a miss served by SQLite is not copied back. A second set row
 *   writes both layers by hand (overlay + db0 storage), the same work as ours.
 */
import { join } from "node:path";
import { docData, docKey } from "../_data.js";
import { compareMany, type Row, row, type Side } from "../_harness.js";
import { KeyvRawSqlite } from "../_keyv-raw-sqlite.js";
import { rawSqliteDriver } from "../_raw-sqlite.js";
import { type Context, openOurs, sink } from "../_setup.js";

/** One library's two-tier cache, reduced to what the scenario calls. */
interface TwoTier {
  name: string;
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<unknown>;
  /** Writes a value into both tiers before the scenario (default: `set`). */
  seed?(key: string, value: unknown): Promise<unknown>;
  /** Replaces (or empties) the memory tier, keeping the SQLite one. */
  freshL1(keys: readonly string[]): Promise<void>;
  /** Waits for background work a get caused (ours: write-backs). */
  flush?(): Promise<void>;
  close(): Promise<void>;
}

async function ours(ctx: Context): Promise<TwoTier> {
  const { storage, memory } = await openOurs(ctx, "s4-ours");
  return {
    name: "ours",
    get: (k) => storage.loadValue(k),
    set: (k, v) => storage.saveValue(k, v),
    async freshL1(keys) {
      for (const k of keys) await memory.delete(k);
    },
    flush: () => storage.flush(),
    close: () => storage.close(),
  };
}

async function bentocache(ctx: Context): Promise<TwoTier> {
  const { BentoCache, bentostore } = await import("bentocache");
  const { memoryDriver } = await import("bentocache/drivers/memory");
  const { knexDriver } = await import("bentocache/drivers/knex");
  const { default: knex } = await import("knex");
  const connection = knex({
    client: "better-sqlite3",
    connection: { filename: join(ctx.dir, "s4-bentocache.db") },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      afterCreate(conn: { pragma(s: string): unknown }, done: (err: Error | null, conn: unknown) => void) {
        conn.pragma("journal_mode = WAL");
        conn.pragma("synchronous = NORMAL");
        done(null, conn);
      },
    },
  });
  const make = () =>
    new BentoCache({
      default: "cache",
      stores: {
        cache: bentostore()
          .useL1Layer(memoryDriver({ maxItems: 1_000_000 }))
          .useL2Layer(knexDriver({ connection, pruneInterval: false })),
      },
    });
  let bento = make();
  return {
    name: "bentocache",
    get: (key) => bento.get({ key }),
    set: (key, value) => bento.set({ key, value }),
    async freshL1() {
      bento = make();
    },
    async close() {
      await connection.destroy();
    },
  };
}

async function cacheable(ctx: Context): Promise<TwoTier> {
  const { Cacheable, Keyv, createKeyv } = await import("cacheable");
  const store = new KeyvRawSqlite(join(ctx.dir, "s4-cacheable.db"));
  const cache = new Cacheable({ secondary: new Keyv(store) });
  return {
    name: "cacheable",
    get: (k) => cache.get(k),
    set: (k, v) => cache.set(k, v),
    async freshL1() {
      cache.primary = createKeyv();
    },
    close: () => store.disconnect(),
  };
}

async function unstorage(ctx: Context, bothTiers: boolean): Promise<TwoTier> {
  const { createStorage } = await import("unstorage");
  const { default: overlay } = await import("unstorage/drivers/overlay");
  const { default: memory } = await import("unstorage/drivers/memory");
  const { default: db0Driver } = await import("unstorage/drivers/db0");
  const { createDatabase } = await import("db0");
  // db0's connector for the SQLite library ours uses on this runtime.
  const { default: sqlite } = process.versions.bun
    ? await import("db0/connectors/bun-sqlite")
    : rawSqliteDriver() === "node:sqlite"
      ? await import("db0/connectors/node-sqlite")
      : await import("db0/connectors/better-sqlite3");
  // db0's driver warns once that it is experimental; that is not a result.
  (globalThis as Record<string, unknown>).__unstorage_db0_experimental_warning__ = true;
  const database = createDatabase(sqlite({ path: join(ctx.dir, `s4-unstorage-${bothTiers ? "both" : "overlay"}.db`) }));
  const db = (await database.getInstance()) as { exec(s: string): unknown };
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
  const l2 = db0Driver({ database });
  const l2Storage = createStorage({ driver: l2 });
  const make = () => createStorage({ driver: overlay({ layers: [memory(), l2] }) });
  let storage = make();
  return {
    name: bothTiers ? "unstorage (both tiers)" : "unstorage",
    get: (k) => storage.getItem(k),
    // The overlay writes layer 0 only; `bothTiers` also writes the SQLite layer, as ours does.
    set: bothTiers
      ? (k, v) => Promise.all([storage.setItem(k, v as string), l2Storage.setItem(k, v as string)])
      : (k, v) => storage.setItem(k, v as string),
    seed: (k, v) => Promise.all([storage.setItem(k, v as string), l2Storage.setItem(k, v as string)]),
    async freshL1() {
      storage = make();
    },
    async close() {
      await database.dispose();
    },
  };
}

function sides(libs: TwoTier[], op: "hit" | "miss" | "set", keys: readonly string[], docs: readonly unknown[]) {
  const K = keys.length;
  return libs.map(
    (lib): Side => ({
      name: lib.name,
      ...(op === "miss"
        ? {
            before: () => lib.freshL1(keys),
            after: () => lib.flush?.(),
            afterTimed: true,
          }
        : {}),
      async batch(n, s) {
        if (op === "set") for (let i = 0; i < n; i++) await lib.set(keys[(s + i) % K]!, docs[(s + i) % K]);
        else if (op === "hit") for (let i = 0; i < n; i++) sink.v = await lib.get(keys[(s + i) % K]!);
        else for (let i = 0; i < n; i++) sink.v = await lib.get(keys[i]!);
      },
    }),
  );
}

export async function peers(ctx: Context): Promise<Row[]> {
  const K = ctx.quick ? 500 : 2_000;
  const keys = Array.from({ length: K }, (_, i) => docKey(i));
  const docs = Array.from({ length: K }, (_, i) => docData(i));
  // bentocache's SQL layer is knex, whose SQLite clients are better-sqlite3 and sqlite3 only.
  const knexSqlite = rawSqliteDriver() === "better-sqlite3";
  if (!knexSqlite) ctx.log(`4 peers: bentocache LEFT OUT (knex has no client for ${rawSqliteDriver()})`);
  const libs = [
    await ours(ctx),
    ...(knexSqlite ? [await bentocache(ctx)] : []),
    await cacheable(ctx),
    await unstorage(ctx, false),
    await unstorage(ctx, true),
  ];
  // Every library holds every key in both tiers.
  for (const lib of libs) {
    for (let i = 0; i < K; i++) await (lib.seed ?? lib.set)(keys[i]!, docs[i]);
    await lib.freshL1(keys);
    const got = (await lib.get(keys[1]!)) as { id?: string; value?: { id?: string } } | null;
    // Ours answers `{ value, profile, writeBack }`; the peers answer the value.
    const back = lib.name === "ours" ? got?.value : got;
    if (back?.id !== (docs[1] as { id: string }).id) throw new Error(`${lib.name} did not return the document`);
    for (let i = 0; i < K; i++) await (lib.seed ?? lib.set)(keys[i]!, docs[i]);
    await lib.flush?.();
  }

  const rows: Row[] = [];
  const skip: Record<string, Partial<Record<"hit" | "miss" | "set", string>>> = {
    unstorage: { miss: "no copy back to memory", set: "memory only: SQLite not written" },
    "unstorage (both tiers)": { miss: "no copy back to memory" },
  };
  const ops = [
    ["hit", "get, memory hit", { n: ctx.quick ? 2_000 : 20_000, rounds: ctx.quick ? 3 : 9 }],
    ["miss", "get, memory miss -> SQLite", { n: K, rounds: ctx.quick ? 3 : 7 }],
    ["set", "set, both tiers", { n: ctx.quick ? 500 : 4_000, rounds: ctx.quick ? 3 : 9 }],
  ] as const;
  for (const [op, what, opts] of ops) {
    // The overlay variant and the both-tiers one read the same way: measure the reads once.
    const inRound = op === "set" ? libs : libs.filter((l) => l.name !== "unstorage (both tiers)");
    ctx.log(`4 peers: ${what} (${inRound.map((l) => l.name).join(", ")})`);
    const measured = await compareMany(sides(inRound, op, keys, docs), opts);
    const o = measured[0]!.opsPerS;
    for (let i = 1; i < inRound.length; i++) {
      const name = inRound[i]!.name;
      const skipped = skip[name]?.[op];
      const label = op === "set" ? "set" : "get";
      rows.push(
        row(
          `4 ${what}`,
          [`ours ${op === "set" ? "saveValue" : "loadValue"}`, o],
          [`${name} ${label}${skipped ? ` [SKIPS WORK: ${skipped}]` : ""}`, measured[i]!.opsPerS],
          skipped && op === "set" ? undefined : { kind: "faster", text: "faster than the peer" },
          skipped && op === "set" ? "not judged: the peer does less work (see the both-tiers row)" : undefined,
        ),
      );
    }
  }
  for (const lib of libs) await lib.close();
  return rows;
}
