/**
 * One fault-injection run, in the spirit of Jepsen: writer and reader
 * processes (_worker.ts), each behind its own fault proxy, with a local tier
 * (memory or sqlite) over the test's own Redis or PostgreSQL and the matching
 * coherence bus; a foreign writer with a raw client; the nemesis injecting
 * faults at random (seeded). Then everything is healed, the run quiesces for
 * Δ and a second, the workers load every key once more, the final state is
 * read from the shared store directly, and the history is checked
 * (checker.ts) against Δ (_bound.ts).
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { seededRandom } from "../../src/index.js";
import type { OwnPostgres, OwnServer } from "../helpers/servers.js";
import { stalenessBoundMs } from "./_bound.js";
import { Fleet, type Slot, type SlotRole } from "./_fleet.js";
import { startForeignWriter } from "./_foreign.js";
import { type FaultKind, runNemesis } from "./_nemesis.js";
import { postgresStore, redisStore, retrying, type SharedStore } from "./_store.js";
import { faultValueId } from "./_values.js";
import { type CheckResult, check } from "./checker.js";
import { type History, now, Recorder, readHistory } from "./history.js";
import { FaultProxy } from "./proxy.js";
import { formatReport } from "./report.js";

/** The server of a run: the test's own redis-server, or its own PostgreSQL. */
export type ScenarioServer =
  | { engine: "redis"; server: OwnServer & { endpoint: string } }
  | { engine: "postgresql"; server: OwnPostgres };

/**
 * The local tier of every worker; `none` (the shared tier alone, nothing to keep coherent) is the control:
 * its histories must check clean under every fault, or the harness itself is wrong.
 */
export type LocalTier = "memory" | "sqlite" | "none";

/** One run: server, local tier, seed, durations, workers, keys, faults. */
export interface ScenarioOptions {
  target: ScenarioServer;
  local: LocalTier;
  seed: number;
  durationMs: number;
  heartbeatMs: number;
  writers: number;
  readers: number;
  keys: number;
  kinds: readonly FaultKind[];
  /** The shared tier's `timeout_ms` (a load never waits longer on it). */
  timeoutMs: number;
  /** How to replay this run, for the report (`FAULT_SEED=42`). */
  replay?: string;
  /** Whether the foreign writer writes (off: only the library writes, to tell its findings apart). */
  foreign: boolean;
  /** How long a tripped shared tier stays out of the read path (the library's default, 5 s, makes a restart cost 5 s of loads). */
  breakerCooldownMs: number;
}

/** What a run gives back. */
export interface ScenarioResult {
  result: CheckResult;
  report: string;
  history: History;
  /** Crashed or hung workers (each fails the run). */
  crashes: string[];
  /** Workers whose local tier was trusted at start (else the run tested little). */
  trustedAtStart: number;
  spawned: number;
  /** Proxy counters summed over the slots. */
  proxy: { dropped: number; resets: number; framingErrors: number };
}

const LOCAL = "local";
const uid = () => randomBytes(4).toString("hex");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs one scenario (see the module doc). */
export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), "tp-faults-"));
  const tag = `tp_faults_${uid()}`;
  const keys = Array.from({ length: o.keys }, (_, i) => `k${i}.json`);
  const foreignRandom = seededRandom(o.seed * 7 + 50);
  const delta = stalenessBoundMs(o.heartbeatMs);
  const server = o.target.server;
  let store: SharedStore;
  let sharedProfile: (proxy: FaultProxy) => Record<string, string>;
  let bus: (proxy: FaultProxy) => Record<string, string>;
  const common = { timeout_ms: String(o.timeoutMs), retries: "0" };
  if (o.target.engine === "redis") {
    const root = `/${tag}/`;
    store = redisStore("127.0.0.1", server.port, root);
    sharedProfile = (p) => ({ type: "redis", endpoint: p.endpoint, root, ...common });
    bus = (p) => ({ type: "redis", endpoint: p.endpoint, channel: tag, heartbeat_ms: String(o.heartbeatMs) });
  } else {
    const pg = o.target.server;
    await pg.psql(`CREATE TABLE ${tag} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
    store = postgresStore(pg.connectionString, tag);
    sharedProfile = (p) => ({
      type: "postgresql",
      connection_string: p.postgresUrl(pg.connectionString),
      table: tag,
      pool_size: "2",
      ...common,
    });
    bus = (p) => ({
      type: "postgresql",
      connection_string: p.postgresUrl(pg.connectionString),
      channel: tag,
      heartbeat_ms: String(o.heartbeatMs),
    });
  }
  const protocol = o.target.engine;
  const roles: SlotRole[] = [...Array(o.writers).fill("writer"), ...Array(o.readers).fill("reader")];
  const slots: Slot[] = [];
  for (const [index, role] of roles.entries()) {
    const proxy = await FaultProxy.start({ target: { host: "127.0.0.1", port: server.port }, protocol });
    const datadir = join(dir, `sqlite-${index}`);
    mkdirSync(datadir);
    const locals: Record<LocalTier, Record<string, Record<string, string>>> = {
      memory: { [LOCAL]: { type: "memory" } },
      sqlite: { [LOCAL]: { type: "sqlite", datadir, table: "kv" } },
      none: {},
    };
    slots.push({
      index,
      role,
      proxy,
      config: {
        settings: { profiles: { ...locals[o.local], shared: sharedProfile(proxy) }, coherence: bus(proxy) },
        keys,
        mix: role === "writer" ? { save: 2, delete: 1, load: 7 } : { save: 0, delete: 0, load: 1 },
        pauseMs: role === "writer" ? [20, 60] : [3, 12],
        breakerCooldownMs: o.breakerCooldownMs,
      },
    });
  }
  const nemesisLog = new Recorder("nemesis", { file: join(dir, "nemesis.jsonl") });
  const foreignLog = new Recorder("foreign", { file: join(dir, "foreign.jsonl") });
  const fleet = new Fleet(slots, dir, o.seed, nemesisLog);
  try {
    const trustedAtStart = await fleet.start();
    const t0 = now();
    const foreign = o.foreign
      ? startForeignWriter({ store, recorder: foreignLog, keys, random: foreignRandom, pauseMs: [150, 450] })
      : { stop: async () => {} };
    await runNemesis({
      fleet,
      server,
      recorder: nemesisLog,
      seed: o.seed,
      kinds: o.kinds,
      durationMs: o.durationMs,
      faultMs: [4 * o.heartbeatMs, 12 * o.heartbeatMs],
      gapMs: [200, 800],
    });
    await foreign.stop();
    // Quiesce: anything in flight settles, every bound has run out.
    await sleep(delta + 1000);
    await fleet.finish();
    const final = new Map<string, string | null>();
    for (const k of keys) {
      const text = await retrying(() => store.get(k));
      final.set(k, text === null ? null : faultValueId(text));
    }
    nemesisLog.close();
    foreignLog.close();
    const history = readHistory([...fleet.historyFiles, join(dir, "nemesis.jsonl"), join(dir, "foreign.jsonl")]);
    const result = check(history, { deltaMs: delta, final, localProfiles: [LOCAL] });
    const title = `${o.local === "none" ? "control (no local tier)" : o.local} over ${o.target.engine} (${o.writers} writers, ${o.readers} readers, ${o.foreign ? "foreign writer" : "no foreign writer"}, ${o.durationMs} ms, heartbeat ${o.heartbeatMs} ms)`;
    const report = formatReport(result, history, { title, seed: o.seed, replay: o.replay, t0 });
    const stats = slots.map((s) => s.proxy.stats());
    return {
      result,
      report,
      history,
      crashes: fleet.crashes,
      trustedAtStart,
      spawned: fleet.spawned,
      proxy: {
        dropped: stats.reduce((n, s) => n + s.droppedFrames, 0),
        resets: stats.reduce((n, s) => n + s.resets, 0),
        framingErrors: stats.reduce((n, s) => n + s.framingErrors, 0),
      },
    };
  } finally {
    fleet.kill();
    await Promise.all(slots.map((s) => s.proxy.close()));
    await retrying(() => store.clear(), 5000).catch(() => {});
    await store.close();
    if (o.target.engine === "postgresql") await o.target.server.psql(`DROP TABLE IF EXISTS ${tag}`).catch(() => {});
    if (process.env.FAULT_KEEP_HISTORY) console.log(`fault run history kept in ${dir} (FAULT_KEEP_HISTORY)`);
    else rmSync(dir, { recursive: true, force: true });
  }
}
