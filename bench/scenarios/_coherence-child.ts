/**
 * Instance B of the coherence scenario (scenario 11, `coherence.ts`): a
 * storage (memory over a shared profile, with a coherence bus) in its own
 * process, plus a raw subscriber (ioredis SUBSCRIBE or pg LISTEN) for the
 * baseline. Driven over IPC by the bench process (instance A):
 *
 * - `{ t: "arm", key }`: once the bus announced A's first save of `key`, loads
 *   it until the memory profile answers with version 1, says `armed`, then
 *   polls (every turn of the event loop) until a load returns version 2 and
 *   says `seen` with the end of that load;
 * - `{ t: "raw-arm" }`: says `armed`, then `seen` when the next raw message arrives;
 * - `{ t: "stop" }`: closes everything and exits.
 *
 * Times are ms on CLOCK_MONOTONIC (`process.hrtime`), shared by every process
 * of the machine, so A's ack time and B's `seen` time compare directly.
 *
 * Usage: fork("bench/scenarios/_coherence-child.ts", [settingsJson, rawJson], { execArgv: ["--import", "tsx"] })
 */
import { setImmediate as turn } from "node:timers/promises";
import { Redis } from "ioredis";
import pg from "pg";
import { DeviceStorage, silentLogger } from "../../src/index.js";

/** The raw subscriber the baseline uses. */
export type RawBus =
  | { type: "redis"; host: string; port: number; channel: string }
  | { type: "postgresql"; connectionString: string; channel: string };

export type ToB = { t: "arm"; key: string } | { t: "raw-arm" } | { t: "stop" };
export type FromB =
  | { t: "ready" }
  | { t: "armed" }
  | { t: "seen"; at: number; ok: boolean }
  | { t: "error"; error: string };

/** A version not seen by then is reported as not seen. */
const DEADLINE_MS = 5000;

const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const send = (m: FromB) => process.send?.(m);

async function main() {
  const [settingsJson, rawJson] = process.argv.slice(2);
  if (!settingsJson || !rawJson || !process.send) throw new Error("usage: fork _coherence-child.ts <settings> <raw>");
  const raw = JSON.parse(rawJson) as RawBus;
  const storage = await DeviceStorage.fromSettings(JSON.parse(settingsJson), { logger: silentLogger });
  const start = now();
  for (;;) {
    const s = storage.coherenceStats();
    if (s?.connected && s.distrusted.length === 0) break;
    if (now() - start > 15_000) throw new Error(`bus not ready after 15 s: ${JSON.stringify(s)}`);
    await sleep(10);
  }
  /** How many announcements of each key arrived. */
  const heard = new Map<string, number>();
  storage.onRemoteChange((c) => {
    for (const k of c.keys) heard.set(k, (heard.get(k) ?? 0) + 1);
  });

  let rawSeen: ((at: number) => void) | undefined;
  const rawMessage = () => {
    const at = now();
    rawSeen?.(at);
    rawSeen = undefined;
  };
  let closeRaw: () => Promise<unknown>;
  if (raw.type === "redis") {
    const sub = new Redis({ host: raw.host, port: raw.port });
    await sub.subscribe(raw.channel);
    sub.on("message", rawMessage);
    closeRaw = () => sub.quit();
  } else {
    const client = new pg.Client({ connectionString: raw.connectionString });
    await client.connect();
    await client.query(`LISTEN "${raw.channel}"`);
    client.on("notification", rawMessage);
    closeRaw = () => client.end();
  }

  const version = async (key: string) => {
    const r = await storage.loadValue<{ v: number }>(key);
    return { v: r.value.v, local: r.profile === "mem" };
  };
  const arm = async (key: string) => {
    const t0 = now();
    // A's save of version 1 has been announced here, so no later message drops the copy primed below.
    while ((heard.get(key) ?? 0) < 1) {
      if (now() - t0 > DEADLINE_MS) throw new Error(`no announcement of ${key} within ${DEADLINE_MS} ms`);
      await sleep(1);
    }
    for (;;) {
      const got = await version(key);
      if (got.local && got.v === 1) break;
      if (now() - t0 > DEADLINE_MS) throw new Error(`${key} v1 not in the memory profile within ${DEADLINE_MS} ms`);
      await storage.flush(); // the write-back into memory
    }
    send({ t: "armed" });
    for (;;) {
      const v = (await version(key)).v;
      const at = now();
      if (v >= 2) return send({ t: "seen", at, ok: true });
      if (at - t0 > DEADLINE_MS) return send({ t: "seen", at, ok: false });
      await turn();
    }
  };

  // The coordinator is gone (it ended, or died): so is this instance.
  process.once("disconnect", () => process.exit(0));
  process.on("message", (m: ToB) => {
    if (m.t === "arm") arm(m.key).catch((err: Error) => send({ t: "error", error: err.message }));
    else if (m.t === "raw-arm") {
      rawSeen = (at) => send({ t: "seen", at, ok: true });
      send({ t: "armed" });
    } else if (m.t === "stop") {
      void Promise.allSettled([storage.close(), closeRaw()]).then(() => process.disconnect());
    }
  });
  send({ t: "ready" });
}

main().catch((err: Error) => {
  send({ t: "error", error: err.stack ?? err.message });
  process.exitCode = 1;
  process.disconnect?.();
});
