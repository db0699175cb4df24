/**
 * Many processes, one truth (issue 13, first "Must show"): four instances,
 * each a child process with a memory profile over the same shared profile
 * (Redis, or PostgreSQL) and a coherence bus (Redis pub/sub, or PostgreSQL
 * LISTEN/NOTIFY), load random keys of a small overlapping set all the time,
 * and save when the test (the coordinator) tells them to.
 *
 * Version order is well defined: the coordinator hands out each key's next
 * version and lets one instance at a time save a key, so a key's versions are
 * acknowledged in increasing order. After each acknowledged save the other
 * three instances poll the key until they load that version (or a newer one):
 * the delay from the ack to the end of that load is the propagation window
 * (an upper bound: it includes the IPC hop that tells them to look), whose
 * p99 must stay within 100 ms. Every load of every instance is then checked: a
 * load that began more than 100 ms after a version was acknowledged must not
 * return an older one; an instance must never read an older value than its
 * own acknowledged save; and once an instance has seen a version it must never
 * go back to an older one. Times are CLOCK_MONOTONIC (`process.hrtime`),
 * shared by every process of the machine.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { POSTGRES, psql, requireServer } from "../helpers/servers.js";
import type { FromChild, Load, ToChild } from "./_protocol.js";

const INSTANCES = 4;
/** Keys every instance reads and writes. */
const KEYS = 12;
/** How long the coordinator keeps saving (the whole test of one engine stays under ~20 s). */
const RUN_MS = Number(process.env.MP_RUN_MS ?? 8000);
/** Saves (of different keys) in flight at once. */
const SAVES_IN_FLIGHT = 3;
/** The propagation window the issue allows. */
const WINDOW_MS = 100;
const CHILD = join(dirname(fileURLToPath(import.meta.url)), "_instance.ts");
const REDIS = { host: "127.0.0.1", port: 6379 };

const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const pick = (n: number) => Math.floor(Math.random() * n);

interface Ack {
  k: number;
  v: number;
  writer: number;
  at: number;
}
interface Sample {
  k: number;
  v: number;
  reader: number;
  at: number;
  delay: number;
  ok: boolean;
}
type Done = Extract<FromChild, { t: "done" }>;

/** Starts the instances, runs the workload, stops them; returns what happened. */
async function run(settings: object) {
  const procs: ChildProcess[] = [];
  const waiting = new Map<string, (m: FromChild) => void>();
  const wait = (key: string) => new Promise<FromChild>((resolve) => waiting.set(key, resolve));
  let crash: (err: Error) => void = () => {};
  const crashed = new Promise<never>((_, reject) => {
    crash = reject;
  });
  crashed.catch(() => {});
  const guard = <T>(p: Promise<T>) => Promise.race([p, crashed]);
  /** Instances that sent their loads: only they may exit. */
  const finished = new Set<number>();
  for (let i = 0; i < INSTANCES; i++) {
    const p = fork(CHILD, [JSON.stringify(settings), String(i), String(KEYS)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "pipe", "ipc"],
    });
    let stderr = "";
    p.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    p.on("message", (m: FromChild) => {
      const key =
        m.t === "ready" || m.t === "done"
          ? `${m.t}:${i}`
          : m.t === "seen"
            ? `seen:${m.k}:${m.v}:${i}`
            : `ack:${m.k}:${m.v}`;
      if (m.t === "done") finished.add(i);
      const resolve = waiting.get(key);
      waiting.delete(key);
      resolve?.(m);
    });
    p.once("exit", (code, signal) => {
      if (!finished.has(i) || code !== 0)
        crash(new Error(`instance ${i} exited (${code ?? signal}): ${stderr.slice(-2000)}`));
    });
    procs.push(p);
  }
  const send = (i: number, m: ToChild) => procs[i]!.send(m);
  try {
    const t0 = now();
    await guard(Promise.all(procs.map((_, i) => wait(`ready:${i}`))));
    const startupMs = now() - t0;

    const version = new Array<number>(KEYS).fill(0);
    const busy = new Set<number>();
    const acks: Ack[] = [];
    const samples: Sample[] = [];
    const failures: string[] = [];
    /** One save of a free key by a random instance, then the others' watch of it. */
    const saveOne = async () => {
      let k = pick(KEYS);
      while (busy.has(k)) k = pick(KEYS);
      busy.add(k);
      const writer = pick(INSTANCES);
      const v = ++version[k]!;
      const acked = wait(`ack:${k}:${v}`);
      send(writer, { t: "save", k, v });
      const m = await guard(acked);
      if (m.t !== "acked") {
        failures.push(`save of key ${k} v${v} by instance ${writer} failed: ${m.t === "failed" ? m.error : m.t}`);
        // Not handed out again (the failed save may have landed): the test fails on it anyway.
        busy.delete(k);
        return;
      }
      acks.push({ k, v, writer, at: m.at });
      const readers = [...procs.keys()].filter((i) => i !== writer);
      const seen = readers.map((i) => wait(`seen:${k}:${v}:${i}`));
      for (const i of readers) send(i, { t: "watch", k, v, ackAt: m.at });
      const got = await guard(Promise.all(seen));
      got.forEach((s, j) => {
        if (s.t === "seen") samples.push({ k, v, reader: readers[j]!, at: s.at, delay: s.delay, ok: s.ok });
      });
      busy.delete(k);
    };
    const end = now() + RUN_MS;
    const lane = async () => {
      while (now() < end) {
        await saveOne();
        // Quiet spells, so background loads fill the memory profiles (write-backs) between saves.
        await sleep(pick(20));
      }
    };
    await Promise.all(Array.from({ length: SAVES_IN_FLIGHT }, lane));

    const done = procs.map((_, i) => wait(`done:${i}`));
    for (let i = 0; i < INSTANCES; i++) send(i, { t: "stop" });
    const results = (await guard(Promise.all(done))) as Done[];
    await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once("exit", r)) : undefined)));
    return { startupMs, acks, samples, failures, results };
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  }
}

const percentile = (sorted: readonly number[], q: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

/** Checks every load against the acknowledged saves; returns counts and the first problems. */
function analyse(acks: readonly Ack[], samples: readonly Sample[], loads: readonly Load[][]) {
  const byKey = Array.from({ length: KEYS }, () => new Map<number, Ack>());
  for (const a of acks) byKey[a.k]!.set(a.v, a);
  const problems: string[] = [];
  const problem = (p: string) => {
    if (problems.length < 20) problems.push(p);
  };
  /** Older values returned within the window, by background loads and by polls of a watched key. */
  const staleWithinWindow = { background: 0, polls: 0 };
  let staleAfterWindow = 0;
  let ownStale = 0;
  let regressions = 0;
  /** The oldest a version an instance still returned had been replaced (ms after the newer one's ack). */
  let maxStaleAge = 0;
  loads.forEach((mine, i) => {
    for (const l of mine) {
      // The first version newer than the one returned, if it was acknowledged before this load began.
      const missed = byKey[l.k]!.get(l.v + 1);
      if (!missed || missed.at > l.start) continue;
      const age = l.start - missed.at;
      maxStaleAge = Math.max(maxStaleAge, age);
      // Did this instance itself acknowledge a newer version before the load began?
      let own = false;
      for (const a of byKey[l.k]!.values()) if (a.writer === i && a.v > l.v && a.at <= l.start) own = true;
      if (own) {
        ownStale++;
        problem(`instance ${i} read key ${l.k} v${l.v} after acknowledging a newer save of its own`);
      } else if (age > WINDOW_MS) {
        staleAfterWindow++;
        problem(`instance ${i} read key ${l.k} v${l.v} ${age.toFixed(1)} ms after v${l.v + 1} was acknowledged`);
      } else staleWithinWindow[l.watch ? "polls" : "background"]++;
    }
  });
  for (const s of samples) {
    if (!s.ok) continue;
    for (const l of loads[s.reader]!) {
      if (l.k === s.k && l.start > s.at && l.v < s.v) {
        regressions++;
        problem(`instance ${s.reader} read key ${s.k} v${l.v} after it had already seen v${s.v}`);
      }
    }
  }
  return { staleWithinWindow, staleAfterWindow, ownStale, regressions, maxStaleAge, problems };
}

async function check(engine: string, settings: object) {
  const r = await run(settings);
  const loads = r.results.map((d) => d.loads);
  const a = analyse(r.acks, r.samples, loads);
  const delays = r.samples
    .filter((s) => s.ok)
    .map((s) => s.delay)
    .sort((x, y) => x - y);
  const notSeen = r.samples.filter((s) => !s.ok).length;
  const all = loads.flat();
  const local = all.filter((l) => l.fromLocal).length;
  const p50 = percentile(delays, 0.5);
  const p99 = percentile(delays, 0.99);
  const stats = r.results.map((d) => d.stats);
  console.log(
    [
      `multi-process coherence over ${engine}: ${INSTANCES} instances, ${KEYS} keys, ${r.acks.length} acknowledged saves, ` +
        `start-up ${r.startupMs.toFixed(0)} ms`,
      `  propagation window (ack -> another instance loads that version), ${delays.length} samples: ` +
        `p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${percentile(delays, 1).toFixed(2)} ms; not seen within 3 s: ${notSeen}`,
      `  loads: ${all.length} (${((100 * local) / all.length).toFixed(0)}% from memory); older value returned: ` +
        `${a.staleWithinWindow.background} background loads and ${a.staleWithinWindow.polls} polls within ${WINDOW_MS} ms ` +
        `of the newer ack (the oldest ${a.maxStaleAge.toFixed(2)} ms after it), ` +
        `${a.staleAfterWindow} after it, ${a.ownStale} after an own save, ${a.regressions} after having seen the newer one`,
      `  bus: sent ${stats.map((s) => s?.sent).join("/")}, received ${stats.map((s) => s?.received).join("/")}, ` +
        `server reports ${stats.map((s) => s?.serverReports).join("/")}, ` +
        `gaps ${stats.map((s) => s?.gaps).join("/")}, publish failures ${stats.map((s) => s?.publishFailures).join("/")}`,
      ...a.problems.slice(0, 10).map((p) => `  !! ${p}`),
    ].join("\n"),
  );
  expect(r.failures).toEqual([]);
  expect(a.problems).toEqual([]);
  expect(notSeen).toBe(0);
  expect(p99).toBeLessThanOrEqual(WINDOW_MS);
  // Enough traffic for a p99, and the memory profiles really served reads (else nothing was tested).
  expect(r.acks.length).toBeGreaterThanOrEqual(100);
  expect(r.samples.length).toBe(r.acks.length * (INSTANCES - 1));
  expect(local / all.length).toBeGreaterThan(0.3);
  // Every instance heard the others: from the shared tier's server itself (redis tracking, the table trigger).
  for (const s of stats) expect(s?.serverReports).toBeGreaterThan(0);
}

const id = () => randomBytes(6).toString("hex");
const redisOk = await requireServer("redis (multi-process coherence)", REDIS.host, REDIS.port);
const pgOk = await requireServer("postgresql (multi-process coherence)", POSTGRES.host, POSTGRES.port);

describe.skipIf(!redisOk)("four processes, memory over Redis, bus on Redis pub/sub", () => {
  it("no instance returns an older value once the window has passed; p99 window <= 100 ms", async () => {
    const tag = `tp-mp-${id()}`;
    const endpoint = `tcp://${REDIS.host}:${REDIS.port}`;
    try {
      await check("redis pub/sub", {
        profiles: { mem: { type: "memory" }, shared: { type: "redis", endpoint, root: `/${tag}/` } },
        coherence: { type: "redis", endpoint, channel: tag },
      });
    } finally {
      const redis = new Redis({ ...REDIS, lazyConnect: true });
      await redis.connect();
      const keys = await redis.keys(`*${tag}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
  });
});

describe.skipIf(!pgOk)("four processes, memory over PostgreSQL, bus on LISTEN/NOTIFY", () => {
  it("no instance returns an older value once the window has passed; p99 window <= 100 ms", async () => {
    const tag = `tp_mp_${id()}`;
    const connection_string = `postgresql://${POSTGRES.user}@${POSTGRES.host}:${POSTGRES.port}/${POSTGRES.database}`;
    // Created here, not by four instances at once (concurrent CREATE TABLE IF NOT EXISTS can collide).
    await psql(`CREATE TABLE ${tag} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
    try {
      await check("postgresql LISTEN/NOTIFY", {
        profiles: {
          mem: { type: "memory" },
          shared: { type: "postgresql", connection_string, table: tag, pool_size: "2" },
        },
        coherence: { type: "postgresql", connection_string, channel: tag },
      });
    } finally {
      await psql(`DROP TABLE IF EXISTS ${tag}`);
    }
  });
});
