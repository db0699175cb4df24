/**
 * One process of the fault tests: a DeviceStorage with a local tier (memory,
 * or a sqlite file) over a shared tier (Redis or PostgreSQL) reached through
 * this process's own fault proxy, with the matching `[coherence]` bus through
 * the same proxy. It does random saves, deletes and loads of a small key set
 * (values unique per save, see _values.ts) and records each one in its
 * history file (history.ts, `fs.writeSync`: a SIGKILL loses nothing already
 * acknowledged). Armed, it SIGKILLs itself right after its next acknowledged
 * save, once the completion is recorded: the announcement queued for the end
 * of the event-loop turn never leaves ("killed writer").
 *
 * IPC from the test: `{ t: "arm-kill" }`; `{ t: "final" }` (stop, load every
 * key once, close, exit). To the test: `{ t: "ready", trusted }`, `{ t: "done" }`.
 *
 * Usage: fork("test/faults/_worker.ts", [JSON.stringify(config)], { execArgv: ["--import", "tsx"] })
 */
import { channel } from "node:diagnostics_channel";
import { openSync, writeSync } from "node:fs";
import { CHANNELS, DeviceStorage, NotFoundError, seededRandom, silentLogger } from "../../src/index.js";
import { faultValue, faultValueId } from "./_values.js";
import { Recorder } from "./history.js";

/** What a worker is told at start (argv[2], JSON). */
export interface WorkerConfig {
  /** Its name in the history, unique per process (`w1.0`, then `w1.1` after a respawn). */
  name: string;
  historyFile: string;
  /** `DeviceStorage.fromSettings` input: `{ profiles, coherence }`. */
  settings: { profiles: Record<string, Record<string, string>>; coherence: Record<string, string> };
  keys: string[];
  seed: number;
  /** Relative weights of the operations. */
  mix: { save: number; delete: number; load: number };
  /** Pause between two operations, ms (uniform in [min, max]). */
  pauseMs: [number, number];
  /** SIGKILL itself right after the first acknowledged save. */
  armed?: boolean;
  /** How long to wait for the bus to be subscribed and the local tier trusted before starting. @default 5000 */
  readyMs?: number;
  /** `liveRanking.cooldownMs`: how long a tripped shared tier stays out of the read path. @default the library's */
  breakerCooldownMs?: number;
}

/** Messages from the test. */
export type ToWorker = { t: "arm-kill" } | { t: "final" };
/** Messages to the test. */
export type FromWorker = { t: "ready"; trusted: boolean } | { t: "done" };

const config = JSON.parse(process.argv[2] ?? "") as WorkerConfig;
const send = (m: FromWorker, then?: () => void) => process.send?.(m, undefined, {}, then);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const random = seededRandom(config.seed);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const rec = new Recorder(config.name, { file: config.historyFile });

let armed = config.armed ?? false;
let stopping = false;
let saves = 0;
process.once("disconnect", () => process.exit(0));
process.on("message", (m: ToWorker) => {
  if (m.t === "arm-kill") armed = true;
  else if (m.t === "final") stopping = true;
});

const options = {
  logger: silentLogger,
  ...(config.breakerCooldownMs !== undefined ? { liveRanking: { cooldownMs: config.breakerCooldownMs } } : {}),
};
/**
 * A respawned writer may start while a fault is on (its proxy resets or holds, the server restarts): with
 * every profile unreachable the library refuses to start (NoOperatorError), and a process manager would
 * start it again. So does this one, for a few seconds.
 */
async function open(): Promise<DeviceStorage> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await DeviceStorage.fromSettings(config.settings, options);
    } catch (err) {
      if ((err as { code?: string }).code !== "E_NO_OPERATOR" || attempt >= 20) throw err;
      await sleep(250);
    }
  }
}
const storage = await open();
// With FAULT_KEEP_HISTORY, the bus's own account (reports, messages, gaps, lapses) beside the history.
if (process.env.FAULT_KEEP_HISTORY) {
  const log = openSync(`${config.historyFile}.bus`, "a");
  channel(CHANNELS.bus).subscribe((m) => {
    writeSync(log, `${JSON.stringify({ at: performance.timeOrigin + performance.now(), ...(m as object) })}\n`);
  });
}
const deadline = Date.now() + (config.readyMs ?? 5000);
const trusted = () => {
  const s = storage.coherenceStats();
  return s?.connected === true && s.distrusted.length === 0;
};
while (!trusted() && Date.now() < deadline) await sleep(20);
send({ t: "ready", trusted: trusted() });

const code = (err: unknown) => String((err as { code?: unknown }).code ?? (err as Error).name ?? "error");

async function load(key: string): Promise<void> {
  const n = rec.invoke("load", key);
  try {
    const r = await storage.loadValue(key);
    rec.complete(n, "ok", faultValueId(r.value), r.profile);
  } catch (err) {
    if (err instanceof NotFoundError) rec.complete(n, "ok", null);
    else rec.complete(n, code(err));
  }
}

async function save(key: string): Promise<void> {
  const value = faultValue(config.name, ++saves);
  const n = rec.invoke("save", key, value.id);
  try {
    await storage.saveValue(key, value);
  } catch (err) {
    rec.complete(n, code(err));
    return;
  }
  rec.complete(n, "ok");
  // At once, in the same turn as the resolution: nothing queued for later leaves the process.
  if (armed) process.kill(process.pid, "SIGKILL");
}

async function remove(key: string): Promise<void> {
  const n = rec.invoke("delete", key);
  try {
    await storage.deleteValue(key);
    rec.complete(n, "ok");
  } catch (err) {
    rec.complete(n, code(err));
  }
}

const total = config.mix.save + config.mix.delete + config.mix.load;
while (!stopping) {
  const r = random() * total;
  const key = pick(config.keys);
  if (r < config.mix.save) await save(key);
  else if (r < config.mix.save + config.mix.delete) await remove(key);
  else await load(key);
  const [lo, hi] = config.pauseMs;
  await sleep(lo + random() * (hi - lo));
}

// After healing and quiescence: every key once more, then out.
for (const key of config.keys) await load(key);
await Promise.race([storage.close(), sleep(3000)]);
rec.close();
send({ t: "done" }, () => process.exit(0));
