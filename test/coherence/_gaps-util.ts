/**
 * Shared helpers of the coherence-bus tests (gaps.test.ts, bus.test.ts): unique
 * names, polling, a recorder of `CHANNELS.bus` events, a logger that keeps every
 * line, and the servers the tests need (checked loudly, failing under CI).
 */
import { randomBytes } from "node:crypto";
import { channel } from "node:diagnostics_channel";
import { Redis } from "ioredis";
import { CHANNELS, DeviceStorage, type DeviceStorageOptions, type Logger } from "../../src/index.js";
import { hasCommand, requireBinaries, requireServer } from "../helpers/servers.js";

/** The machine's shared Redis (never stopped; every test uses its own key root and channel). */
export const MACHINE_REDIS = "tcp://127.0.0.1:6379";
/** The machine's shared PostgreSQL (trust auth). */
export const MACHINE_PG = "postgresql://postgres@127.0.0.1:5432/test";

/** A short random id for key roots and channel names (lower case: a PostgreSQL channel too). */
export const uid = (): string => randomBytes(5).toString("hex");

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 5 ms until it is true; rejects after `ms` saying what it waited for. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await sleep(5);
  }
}

/** One `CHANNELS.bus` event as the library publishes it. */
export interface BusDiagnostic {
  event: string;
  origin: string;
  [field: string]: unknown;
}

/** Records every `CHANNELS.bus` event (of every storage in this process) until `stop()`. */
export function recordBus(onEvent?: (e: BusDiagnostic) => void): { events: BusDiagnostic[]; stop: () => void } {
  const events: BusDiagnostic[] = [];
  const ch = channel(CHANNELS.bus);
  const listener = (m: unknown) => {
    const e = m as BusDiagnostic;
    events.push(e);
    onEvent?.(e);
  };
  ch.subscribe(listener);
  return { events, stop: () => ch.unsubscribe(listener) };
}

/** A logger keeping every call as one line of text (errors with message, stack and causes). */
export function captureLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const text = (v: unknown, depth = 0): string => {
    if (depth > 5) return "";
    if (v instanceof Error) {
      const own = Object.entries(v).map(([k, x]) => `${k}=${text(x, depth + 1)}`);
      return `${v.name}: ${v.message} ${v.stack ?? ""} ${own.join(" ")} cause=${text(v.cause, depth + 1)}`;
    }
    if (typeof v === "object" && v !== null) {
      return Object.entries(v)
        .map(([k, x]) => `${k}=${text(x, depth + 1)}`)
        .join(" ");
    }
    return String(v);
  };
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      lines.push(`${level} ${msg ?? ""} ${text(obj)}`);
    };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A storage over `profiles` with a `[coherence]` table, waited until its local tiers serve reads. */
export async function openInstance(
  profiles: Record<string, Record<string, string>>,
  coherence: Record<string, string>,
  options: DeviceStorageOptions,
): Promise<DeviceStorage> {
  const storage = await DeviceStorage.fromSettings({ profiles, coherence }, options);
  await ready(storage);
  return storage;
}

/** Waits until the storage's listener is subscribed and no local tier is out of the read path. */
export async function ready(storage: DeviceStorage, ms = 10_000): Promise<void> {
  await waitFor(
    () => {
      const s = storage.coherenceStats();
      return s?.connected === true && s.distrusted.length === 0;
    },
    `storage ${storage.coherenceStats()?.origin} subscribed and resynced`,
    ms,
  );
}

/** Whether a tier's own copy of `key` is absent (read through the tier handle, trusted or not). */
export async function localCopy(storage: DeviceStorage, profile: string, key: string): Promise<unknown> {
  const entry = await storage.profile(profile).readEntry(key);
  return entry === undefined ? undefined : JSON.parse(Buffer.from(entry.data).toString("utf8"));
}

/** The servers a test group needs: false (after a loud warning) when one is missing; throws under CI. */
export async function serversFor(what: { ownRedis?: boolean; redis?: boolean; postgres?: boolean }): Promise<boolean> {
  let ok = true;
  if (what.ownRedis) ok &&= await requireBinaries("coherence (own redis-server)", await hasCommand("redis-server"));
  if (what.redis) ok &&= await requireServer("coherence (machine Redis)", "127.0.0.1", 6379);
  if (what.postgres) ok &&= await requireServer("coherence (machine PostgreSQL)", "127.0.0.1", 5432);
  return ok;
}

/**
 * Deletes the machine Redis keys matching each pattern (the key roots a test file used): tests clean up
 * after themselves, and a Redis full of leftovers slows every listing that scans it.
 */
export async function deleteRedisKeys(...patterns: string[]): Promise<void> {
  const redis = new Redis(6379, "127.0.0.1", { lazyConnect: true });
  try {
    await redis.connect();
    for (const pattern of patterns) {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 10_000);
        if (keys.length > 0) await redis.unlink(...keys);
        cursor = next;
      } while (cursor !== "0");
    }
  } catch {
    // Nothing to clean where Redis is not running (those tests said so already).
  } finally {
    redis.disconnect();
  }
}
