/**
 * `bench`: times each profile with writes, reads and a 80/20 read/write mix
 * at a few value sizes, under reserved keys that it deletes afterwards.
 * Calls go through the profile's tier, as storage makes them (time limit,
 * retries, TTL metadata, quota). Sequential calls: the numbers are
 * latencies, not throughput under load.
 */
import { randomBytes } from "node:crypto";
import type { Command } from "commander";
import { RESERVED_KEY_PREFIX, type Tier } from "../index.js";
import { formatBytes, formatMicros, formatRate, table } from "./_format.js";
import { positiveInt } from "./_pool.js";
import {
  action,
  type GlobalOptions,
  messageOf,
  type Output,
  openStorage,
  parseList,
  readSettings,
  UsageError,
  withStorage,
} from "./_run.js";

interface BenchOptions {
  profiles?: string;
  ops: number;
  sizes: string;
}

/** One row of `bench --json`: one profile at one value size. */
export interface BenchRow {
  profile: string;
  scheme: string;
  size: number;
  ops: number;
  write?: PhaseStats;
  read?: PhaseStats;
  /** 80% reads, 20% writes over the same keys. */
  mixed?: PhaseStats;
  error?: string;
}

/** Timings of one phase, in microseconds per call. */
export interface PhaseStats {
  opsPerSecond: number;
  p50: number;
  p95: number;
}

const DEFAULT_OPS = 200;
const DEFAULT_SIZES = "1k,64k";

export function registerBench(program: Command): void {
  program
    .command("bench")
    .description(
      `time each profile: writes, reads and an 80/20 mix at a few value sizes, under reserved ${RESERVED_KEY_PREFIX}bench-* keys deleted afterwards`,
    )
    .option("--profiles <names>", "comma-separated profiles to time (default: all)")
    .option(
      "-n, --ops <n>",
      `calls per phase and size (default ${DEFAULT_OPS})`,
      positiveInt("--ops", 1_000_000),
      DEFAULT_OPS,
    )
    .option("--sizes <sizes>", `value sizes, e.g. 1k,64k,1m (default ${DEFAULT_SIZES})`, DEFAULT_SIZES)
    .action(action(async (output, options, opts: BenchOptions) => bench(output, options, opts)));
}

async function bench(output: Output, options: GlobalOptions, opts: BenchOptions): Promise<number> {
  const sizes = parseSizes(opts.sizes);
  const settings = await readSettings(options, output);
  const names = parseList(opts.profiles);
  return withStorage(await openStorage(settings, names), async (storage) => {
    const entries = names ? names.map((n) => storage.profile(n)) : [...storage.ranked];
    let interrupted = false;
    const stop = () => {
      interrupted = true;
    };
    process.once("SIGINT", stop);
    const rows: BenchRow[] = [];
    try {
      for (const e of entries) {
        for (const size of sizes) {
          if (interrupted) break;
          if (!output.json) output.note(`bench: ${e.name} at ${formatBytes(size)} ...`);
          rows.push(await benchOne(e, size, opts.ops, () => interrupted));
        }
      }
    } finally {
      process.off("SIGINT", stop);
    }
    const left = [...storage.profileErrors].map(([name, err]) => ({ profile: name, error: err.message }));
    output.result({ ops: opts.ops, sizes, rows, leftOut: left, interrupted }, () => [
      ...table(
        ["profile", "scheme", "size", "write/s", "write p50", "write p95", "read/s", "read p50", "read p95", "mix/s"],
        rows.map((r) =>
          r.error
            ? [r.profile, r.scheme, formatBytes(r.size), `failed: ${r.error}`]
            : [
                r.profile,
                r.scheme,
                formatBytes(r.size),
                formatRate(r.write?.opsPerSecond ?? 0),
                formatMicros(r.write?.p50 ?? 0),
                formatMicros(r.write?.p95 ?? 0),
                formatRate(r.read?.opsPerSecond ?? 0),
                formatMicros(r.read?.p50 ?? 0),
                formatMicros(r.read?.p95 ?? 0),
                formatRate(r.mixed?.opsPerSecond ?? 0),
              ],
        ),
      ),
      `${opts.ops} sequential calls per phase; the ${RESERVED_KEY_PREFIX}bench-* keys were deleted`,
      ...left.map((l) => `left out: ${l.profile}: ${l.error}`),
    ]);
    return rows.some((r) => r.error) || interrupted ? 1 : 0;
  });
}

async function benchOne(e: Tier, size: number, ops: number, stopped: () => boolean): Promise<BenchRow> {
  const row: BenchRow = { profile: e.name, scheme: e.scheme, size, ops };
  const base = `${RESERVED_KEY_PREFIX}bench-${process.pid}-${randomBytes(4).toString("hex")}-${size}-`;
  // At most 100 distinct keys: enough to defeat a one-key fast path, few to delete.
  const keyCount = Math.min(ops, 100);
  const keys = Array.from({ length: keyCount }, (_, i) => `${base}${i}`);
  const value = payload(size);
  const written = new Set<string>();
  try {
    row.write = await phase(ops, stopped, async (i) => {
      const key = keys[i % keyCount] as string;
      written.add(key);
      await e.write(key, value);
    });
    row.read = await phase(ops, stopped, async (i) => {
      const key = keys[i % keyCount] as string;
      await e.read(key);
    });
    // A fixed pattern rather than random draws, so that every run does the same work.
    row.mixed = await phase(ops, stopped, async (i) => {
      const key = keys[(i * 7) % keyCount] as string;
      if (i % 5 === 4) await e.write(key, value);
      else await e.read(key);
    });
  } catch (err) {
    row.error = messageOf(err);
  } finally {
    await Promise.all([...written].map((k) => e.delete(k).catch(() => {})));
  }
  return row;
}

async function phase(ops: number, stopped: () => boolean, fn: (i: number) => Promise<void>): Promise<PhaseStats> {
  const times: number[] = [];
  const started = performance.now();
  for (let i = 0; i < ops && !stopped(); i++) {
    const t0 = performance.now();
    await fn(i);
    times.push((performance.now() - t0) * 1000);
  }
  const total = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
  return { opsPerSecond: round(times.length / Math.max(total, 1e-9)), p50: round(at(0.5)), p95: round(at(0.95)) };
}

/** A JSON document of exactly `size` bytes (random text, so compression would not shrink it). */
function payload(size: number): Uint8Array {
  const frame = '{"bench":""}';
  const fill = Math.max(0, size - frame.length);
  const text = `{"bench":"${randomBytes(Math.ceil(fill / 2))
    .toString("hex")
    .slice(0, fill)}"}`;
  return Buffer.from(text, "utf8");
}

/** `1k,64k,1m` -> bytes. */
function parseSizes(text: string): number[] {
  const sizes = text.split(",").map((s) => {
    const m = /^\s*(\d+)\s*([kmKM]?)(i?[bB])?\s*$/.exec(s);
    if (!m) throw new UsageError(`--sizes: expected sizes like 1k,64k,1m, got "${s}"`);
    const n = Number(m[1]) * (m[2]?.toLowerCase() === "k" ? 1024 : m[2]?.toLowerCase() === "m" ? 1024 * 1024 : 1);
    if (n < 1 || n > 64 * 1024 * 1024) throw new UsageError(`--sizes: ${s} is out of range (1 byte to 64m)`);
    return n;
  });
  return [...new Set(sizes)];
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
