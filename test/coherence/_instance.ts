/**
 * One application instance of the multi-process coherence test
 * (multi-process.test.ts): a memory profile over a shared profile (Redis or
 * PostgreSQL) with a coherence bus, driven by the test over IPC. It keeps
 * loading random keys in the background (every load is logged with its
 * start and end on CLOCK_MONOTONIC, which every process of the machine
 * shares), saves when told to, and after a save acknowledged elsewhere polls
 * the key until it sees that version, reporting when.
 *
 * Usage: fork("test/coherence/_instance.ts", [settingsJson, instanceId, keyCount], { execArgv: ["--import", "tsx"] })
 */
import { DeviceStorage, NotFoundError, silentLogger } from "../../src/index.js";
import { type FromChild, keyName, type Load, type ToChild, type Value } from "./_protocol.js";

const [settingsJson, idArg, keysArg] = process.argv.slice(2);
if (!settingsJson || !idArg || !keysArg || !process.send)
  throw new Error("usage: fork _instance.ts <settings> <id> <keys>");
const id = Number(idArg);
const keyCount = Number(keysArg);
/** Pause between two background loads. */
const LOAD_PAUSE_MS = 4;
/** Pause between two loads of a watched key. */
const POLL_MS = 1;
/** A watched version not seen by then is reported as not seen. */
const WATCH_DEADLINE_MS = 3000;

const send = (m: FromChild) => process.send?.(m);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const storage = await DeviceStorage.fromSettings(JSON.parse(settingsJson), { logger: silentLogger });
const loads: Load[] = [];
let running = true;

/** One load of key `k`, logged: the version it returned (0: absent) and where from. */
async function load(k: number, watch: boolean): Promise<Load> {
  const start = now();
  let v = 0;
  let fromLocal = false;
  try {
    const r = await storage.loadValue<Value>(keyName(k));
    v = r.value.v;
    fromLocal = r.profile === "mem";
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  const l: Load = { k, v, start, end: now(), fromLocal, watch };
  loads.push(l);
  return l;
}

async function background(): Promise<void> {
  while (running) {
    await load(Math.floor(Math.random() * keyCount), false);
    await sleep(LOAD_PAUSE_MS);
  }
}

async function watch(k: number, v: number, ackAt: number): Promise<void> {
  for (;;) {
    const l = await load(k, true);
    if (l.v >= v) return void send({ t: "seen", k, v, at: l.end, delay: l.end - ackAt, ok: true });
    if (now() - ackAt > WATCH_DEADLINE_MS)
      return void send({ t: "seen", k, v, at: l.end, delay: l.end - ackAt, ok: false });
    await sleep(POLL_MS);
  }
}

// Ready once subscribed and resynced: until then the memory profile is out of the read path.
const deadline = now() + 15_000;
for (;;) {
  const s = storage.coherenceStats();
  if (s?.connected && s.distrusted.length === 0) break;
  if (now() > deadline) throw new Error(`instance ${id}: bus not ready after 15 s: ${JSON.stringify(s)}`);
  await sleep(10);
}
const bg = background();
send({ t: "ready", origin: storage.coherenceStats()?.origin ?? "" });

// The coordinator is gone (it ended, or died): so is this instance.
process.once("disconnect", () => process.exit(0));
process.on("message", (m: ToChild) => {
  if (m.t === "save") {
    const value: Value = { w: id, v: m.v, pad: "x".repeat(200) };
    storage.saveValue(keyName(m.k), value).then(
      () => send({ t: "acked", k: m.k, v: m.v, at: now() }),
      (err: Error) => send({ t: "failed", k: m.k, v: m.v, error: err.message }),
    );
  } else if (m.t === "watch") {
    void watch(m.k, m.v, m.ackAt);
  } else if (m.t === "stop") {
    running = false;
    void bg.then(async () => {
      const stats = storage.coherenceStats();
      await storage.close();
      // Disconnect once the (large) message is out, not before.
      process.send?.({ t: "done", loads, stats } satisfies FromChild, undefined, {}, () => process.disconnect());
    });
  }
});
