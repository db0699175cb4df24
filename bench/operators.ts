/**
 * Per-driver read/write latency next to the raw library it wraps, measured in
 * the same run, reported as ratios (absolute times drift on shared machines).
 *
 *   npm run bench:operators            # prints a table, writes bench/results-operators.json
 *
 * Pairs: memory vs Map, sqlite vs the runtime's SQLite library (same pragmas, prepared
 * UPSERT), fs vs node:fs (our atomic write fsyncs; the raw baseline shows both
 * a plain and an fsync+rename write), redb vs OpenDAL direct.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Bench } from "tinybench";
import { createOperator } from "../src/operators/index.js";
import type { Operator } from "../src/operators/types.js";
import { rawSqlite } from "./_raw-sqlite.js";

const require = createRequire(import.meta.url);
const VALUE = randomBytes(1024);
const KEYS = Array.from({ length: 256 }, (_, i) => `document_bench_${i}.json`);
const dir = mkdtempSync(join(tmpdir(), "tp-bench-"));
const time = Number(process.env.BENCH_TIME_MS ?? 700);

interface Row {
  scenario: string;
  ours: string;
  ours_us: number;
  baseline: string;
  baseline_us: number;
  ratio: number;
}
const rows: Row[] = [];

async function pair(
  scenario: string,
  ours: [string, () => unknown],
  base: [string, () => unknown],
  target?: number,
): Promise<void> {
  const bench = new Bench({ time, warmupTime: 200 });
  bench.add(ours[0], ours[1]).add(base[0], base[1]);
  await bench.run();
  const mean = (name: string) => {
    const r = bench.getTask(name)?.result;
    if (!r || !("latency" in r)) throw new Error(`${scenario}/${name}: ${JSON.stringify(r)}`);
    return r.latency.mean * 1000; // ms -> µs
  };
  const o = mean(ours[0]);
  const b = mean(base[0]);
  const row = { scenario, ours: ours[0], ours_us: o, baseline: base[0], baseline_us: b, ratio: o / b };
  rows.push(row);
  const verdict =
    target === undefined
      ? ""
      : row.ratio <= target
        ? `  (target <= ${target}x: met)`
        : `  (target <= ${target}x: MISSED)`;
  console.log(
    `${scenario.padEnd(22)} ${o.toFixed(2).padStart(9)} µs  vs ${base[0].padEnd(34)} ${b.toFixed(2).padStart(9)} µs  ${row.ratio.toFixed(2).padStart(6)}x${verdict}`,
  );
}

let i = 0;
const nextKey = () => KEYS[i++ & 255]!;

async function fill(op: Operator) {
  for (const k of KEYS) await op.write(k, VALUE);
}

console.log(`1 KiB values, tinybench ${time} ms per task, Node ${process.version}\n`);

// memory vs Map
{
  const op = await createOperator("memory");
  await fill(op);
  const map = new Map<string, Uint8Array>(KEYS.map((k) => [k, VALUE.slice()]));
  await pair(
    "memory readSync",
    ["memory.readSync", () => op.readSync!(nextKey())],
    ["Map.get", () => map.get(nextKey())],
    3,
  );
  await pair(
    "memory read (async)",
    ["await memory.read", () => op.read(nextKey())],
    ["await Map.get", async () => map.get(nextKey())],
  );
  await pair(
    "memory write",
    ["await memory.write", () => op.write(nextKey(), VALUE)],
    ["Map.set(copy)", () => map.set(nextKey(), VALUE.slice())],
  );
}

// sqlite vs the runtime's SQLite library used directly
{
  const op = await createOperator("sqlite", { datadir: join(dir, "ours") });
  await fill(op);
  const raw = rawSqlite(join(dir, "raw.db"));
  const { put, get } = raw;
  for (const k of KEYS) put.run(k, VALUE);
  await pair(
    "sqlite readSync",
    ["sqlite.readSync", () => op.readSync!(nextKey())],
    [`${raw.driver} SELECT`, () => get.get(nextKey())],
  );
  await pair(
    "sqlite read (async)",
    ["await sqlite.read", () => op.read(nextKey())],
    ["await SELECT", async () => get.get(nextKey())],
  );
  await pair(
    "sqlite write",
    ["await sqlite.write", () => op.write(nextKey(), VALUE)],
    ["await UPSERT", async () => put.run(nextKey(), VALUE)],
  );
  await op.close();
  raw.close();
}

// fs vs node:fs
{
  const root = join(dir, "fs");
  const op = await createOperator("fs", { root });
  await fill(op);
  const rawRoot = join(dir, "fsraw");
  rmSync(rawRoot, { recursive: true, force: true });
  require("node:fs").mkdirSync(rawRoot);
  for (const k of KEYS) writeFileSync(join(rawRoot, k), VALUE);
  await pair(
    "fs read",
    ["await fs.read", () => op.read(nextKey())],
    ["await fs.promises.readFile", () => readFile(join(rawRoot, nextKey()))],
  );
  // For scale: the blocking call (which would stall the event loop on a slow disk).
  await pair(
    "fs read vs sync",
    ["await fs.read", () => op.read(nextKey())],
    ["readFileSync", () => readFileSync(join(rawRoot, nextKey()))],
  );
  await pair(
    "fs write (atomic)",
    ["await fs.write", () => op.write(nextKey(), VALUE)],
    [
      "open+write+fsync+rename (sync)",
      () => {
        const k = nextKey();
        const tmp = join(rawRoot, `${k}.tmp`);
        const fd = openSync(tmp, "w");
        writeSync(fd, VALUE);
        fsyncSync(fd);
        closeSync(fd);
        renameSync(tmp, join(rawRoot, k));
      },
    ],
  );
  await op.close();
}

// redb vs OpenDAL direct
try {
  const op = await createOperator("redb", { datadir: join(dir, "ours.redb"), table: "terraphim" });
  await fill(op);
  const { Operator: Raw } = await import("opendal");
  const raw = new Raw("redb", { datadir: join(dir, "raw.redb"), table: "terraphim" });
  for (const k of KEYS) await raw.write(k, VALUE);
  await pair(
    "redb read",
    ["await redb.read", () => op.read(nextKey())],
    ["await opendal.read", () => raw.read(nextKey())],
  );
  await pair(
    "redb write",
    ["await redb.write", () => op.write(nextKey(), VALUE)],
    ["await opendal.write", () => raw.write(nextKey(), VALUE)],
  );
  await op.close();
} catch (err) {
  console.log(`redb: NOT MEASURED (${(err as Error).message})`);
}

writeFileSync(new URL("./results-operators.json", import.meta.url), `${JSON.stringify(rows, null, 2)}\n`);
rmSync(dir, { recursive: true, force: true });
