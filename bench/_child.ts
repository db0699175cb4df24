/**
 * Measurements that need a fresh process: start-up time (native bindings not
 * yet loaded, files not yet open) and resident memory. Run by scenarios 7 and
 * 8 as `node --expose-gc --import tsx bench/_child.ts <mode> <dir> [n]`;
 * prints one line of JSON.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { rawSqlite } from "./_raw-sqlite.js";

const require = createRequire(import.meta.url);
const [mode, dir = ".", nArg = "0"] = process.argv.slice(2);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

function settings(d: string) {
  return {
    profiles: {
      memory: { type: "memory" },
      sqlite: { type: "sqlite", datadir: join(d, "sqlite") },
      redb: { type: "redb", datadir: join(d, "terraphim.redb"), table: "terraphim" },
    },
  };
}

async function startupOurs() {
  const t0 = performance.now();
  const { DeviceStorage } = await import("../src/storage/device-storage.js");
  const { silentLogger } = await import("../src/logger.js");
  const t1 = performance.now();
  const storage = await DeviceStorage.fromSettings(settings(dir), { logger: silentLogger });
  const ms = performance.now() - t1;
  const ranking = storage.ranked.map((e) => `${e.name}=${e.measuredSpeed.toFixed(0)}us`).join(" ");
  const left = [...storage.profileErrors.keys()];
  await storage.close();
  return { ms, importMs: t1 - t0, ranking, left };
}

async function startupRaw() {
  const t0 = performance.now();
  const map = new Map<string, Uint8Array>();
  const db = rawSqlite(join(dir, "raw.db"));
  const { Operator } = require("opendal") as typeof import("opendal");
  const redb = new Operator("redb", { datadir: join(dir, "raw.redb"), table: "terraphim" });
  // One call each, so a lazily opened backend has really opened its file.
  map.set("x", new Uint8Array(1));
  db.get.get("x");
  await redb.exists("x");
  const ms = performance.now() - t0;
  db.close();
  return { ms };
}

async function rss(ours: boolean) {
  const n = Number(nArg);
  const { docData, docKey, DOC_BYTES } = await import("./_data.js");
  let save: (i: number) => unknown;
  let close: () => unknown;
  if (ours) {
    const { DeviceStorage } = await import("../src/storage/device-storage.js");
    const { silentLogger } = await import("../src/logger.js");
    const storage = await DeviceStorage.fromSettings(
      { profiles: { memory: { type: "memory" }, sqlite: { type: "sqlite", datadir: join(dir, "sqlite") } } },
      { logger: silentLogger },
    );
    save = (i) => storage.saveValue(docKey(i), docData(i));
    close = () => storage.close();
  } else {
    const map = new Map<string, string>();
    const db = rawSqlite(join(dir, "raw.db"));
    save = (i) => {
      const text = JSON.stringify(docData(i));
      db.put.run(docKey(i), text);
      map.set(docKey(i), text);
    };
    close = () => db.close();
  }
  // Everything loaded and warm before the first reading (one save, then the same key again).
  await save(0);
  gc();
  gc();
  const before = process.memoryUsage();
  for (let i = 0; i < n; i++) await save(i);
  gc();
  gc();
  const after = process.memoryUsage();
  await close();
  return { n, payload: n * DOC_BYTES, before, after };
}

const out =
  mode === "startup-ours"
    ? await startupOurs()
    : mode === "startup-raw"
      ? await startupRaw()
      : mode === "rss-ours"
        ? await rss(true)
        : mode === "rss-raw"
          ? await rss(false)
          : undefined;
if (!out) throw new Error(`unknown mode ${mode}`);
console.log(JSON.stringify(out));
