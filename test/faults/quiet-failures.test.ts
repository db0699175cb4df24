/**
 * One test per quiet failure of issue 19, on Redis and on PostgreSQL: two
 * instances A and B (memory over the shared tier, the matching bus,
 * heartbeat_ms 200, so Δ = stalenessBoundMs(200) = 600 ms), each through its
 * own fault proxy. B first serves A's v1 from its memory tier; then the
 * failure, and the key is replaced (by A, by a writer killed the moment its
 * save resolved, or by another program). B keeps loading; no load of B may
 * return the replaced value when it began more than Δ after the replacement
 * was acknowledged, during the failure or after it healed. Loads may fail
 * (UnavailableError, TimeoutError: the shared tier's timeout_ms is 500, so
 * none hangs) but never return the replaced value beyond Δ.
 *
 * Real servers: the machine's Redis and PostgreSQL, own key roots, tables and
 * channels. These tests fail on a tree without leases and server-side
 * invalidation; that is what they are for.
 */
import { afterEach, describe, expect, it } from "vitest";
import { POSTGRES, requireServer } from "../helpers/servers.js";
import { type Engine, Pair, type Phase, type Verdict } from "./_pair.js";
import { now } from "./history.js";

const HEARTBEAT_MS = 200;
const TIMEOUT_MS = 500;
/** Origins silent this many heartbeats are forgotten by the current bus (coherence.ts PRUNE_HEARTBEATS). */
const PRUNE_HEARTBEATS = 20;
const ok: Record<Engine, boolean> = {
  redis: await requireServer("redis (quiet failures)", "127.0.0.1", 6379),
  postgresql: await requireServer("postgresql (quiet failures)", POSTGRES.host, POSTGRES.port),
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let pair: Pair | undefined;
afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

/** Prints the figures and fails on any read stale beyond Δ, naming the phase. */
function expectBound(title: string, v: Verdict): void {
  const figures = v.phases
    .map(
      (p) =>
        `  ${p.name}: ${p.loads} loads (${p.fromMemory} from memory, ${p.failed} failed), ` +
        `${p.stale} returned the replaced value beyond Δ (worst ${p.worstMs.toFixed(0)} ms)`,
    )
    .join("\n");
  console.log(`${title}\n${figures}\n${v.report}`);
  for (const p of v.phases) expect(p.stale, `${p.name}: reads stale beyond Δ\n${figures}\n${v.report}`).toBe(0);
  expect(v.result.byKind["phantom-read"]).toBe(0);
  const failures = Object.keys(v.result.counts.ops.load ?? {}).filter((o) => o !== "ok");
  expect(
    failures.filter((o) => o !== "E_UNAVAILABLE" && o !== "E_TIMEOUT"),
    "loads may fail only as unavailable",
  ).toEqual([]);
  expect(v.result.violations).toEqual([]);
}

/**
 * B serves v1 from memory; `fault` is applied to B's proxy; A saves v2; B loads for `duringMs`;
 * healed; B loads for `afterMs` more.
 */
async function partitioned(
  engine: Engine,
  title: string,
  kind: string,
  fault: (p: Pair) => void,
  duringMs: number,
): Promise<void> {
  pair = await Pair.open(engine, HEARTBEAT_MS, TIMEOUT_MS);
  const p = pair;
  await p.warm();
  const start = now();
  fault(p);
  const ended = p.recForeign.fault(kind, "B");
  await p.saveA();
  await p.probe(now() + duringMs);
  const healed = now();
  p.proxyB.heal();
  ended();
  await p.probe(now() + 2 * p.deltaMs + 1000);
  const phases: Phase[] = [
    { name: "during the failure", from: start, to: healed },
    { name: "after healing", from: healed, to: Number.POSITIVE_INFINITY },
  ];
  expectBound(`${title} over ${engine}`, p.verdict(`${title} over ${engine}`, phases));
}

/** B serves v1 from memory; `replace` changes the key without any fault on B; B loads for Δ + 2 s. */
async function replaced(engine: Engine, title: string, replace: (p: Pair) => Promise<unknown>): Promise<void> {
  pair = await Pair.open(engine, HEARTBEAT_MS, TIMEOUT_MS);
  const p = pair;
  await p.warm();
  const start = now();
  let done = false;
  const probing = (async () => {
    while (!done) await p.probe(now() + 50);
  })();
  await replace(p);
  await sleep(p.deltaMs + 2000);
  done = true;
  await probing;
  expectBound(
    `${title} over ${engine}`,
    p.verdict(`${title} over ${engine}`, [{ name: "after the change", from: start, to: Infinity }]),
  );
}

for (const engine of ["redis", "postgresql"] as const) {
  describe.skipIf(!ok[engine])(`quiet failures over ${engine}`, () => {
    it("silent partition: every connection of B held for 4Δ; B never serves v1 later than Δ after A saved v2", async () => {
      await partitioned(
        engine,
        "silent partition (B held)",
        "hold-all",
        (p) => p.proxyB.set({ kind: "hold" }),
        4 * 3 * HEARTBEAT_MS,
      );
    }, 30_000);

    it("after a silent partition heals, B's loads succeed again as soon as its listener is back, not after the breaker's cool-down", async () => {
      pair = await Pair.open(engine, HEARTBEAT_MS, TIMEOUT_MS);
      const p = pair;
      await p.warm();
      p.proxyB.set({ kind: "hold" });
      await p.saveA();
      // Long enough for the shared profile's calls to time out 5 times in a row: its breaker opens (5 s cool-down).
      await p.probe(now() + 4_000);
      p.proxyB.heal();
      const healed = now();
      let back: number | undefined;
      while (back === undefined && now() < healed + 10_000) {
        if (!("error" in (await p.loadB()))) back = now();
        else await sleep(20);
      }
      console.log(
        `${engine}: B's first successful load ${back === undefined ? "never" : `${back - healed} ms`} after healing`,
      );
      expect(back).toBeDefined();
      // The listener reconnects within a couple of heartbeats; the breaker's cool-down alone is 5 s.
      expect(back! - healed).toBeLessThan(1_500);
    }, 30_000);

    it("held messages: B's listening connection held for 4Δ, its data connections fine", async () => {
      await partitioned(
        engine,
        "held messages (B's listener held)",
        "hold-listener",
        (p) => p.proxyB.set({ kind: "hold" }, "listener"),
        4 * 3 * HEARTBEAT_MS,
      );
    }, 30_000);

    it("lost messages: B's listener drops everything it reads, longer than the pruning of silent origins", async () => {
      // The current bus forgets an origin silent for a whole prune period; the tick comes at most one period later.
      const dropMs = 2 * PRUNE_HEARTBEATS * HEARTBEAT_MS + 2 * HEARTBEAT_MS;
      await partitioned(
        engine,
        "lost messages (B's listener drops)",
        "drop-listener",
        (p) => p.proxyB.set({ kind: "drop", frames: "all" }, "listener"),
        dropMs,
      );
    }, 40_000);

    it("killed writer: a third instance saves v2 and is SIGKILLed the moment the save resolves", async () => {
      await replaced(engine, "killed writer", (p) => p.killedWriterSaves());
    }, 40_000);

    it(`foreign write: another program ${engine === "redis" ? "SETs" : "UPDATEs"} the key`, async () => {
      await replaced(engine, "foreign write", (p) => p.foreignSave());
    }, 30_000);

    it(`foreign delete: another program ${engine === "redis" ? "DELs" : "DELETEs"} the key`, async () => {
      await replaced(engine, "foreign delete", (p) => p.foreignDelete());
    }, 30_000);

    it("paused process: a reader SIGSTOPped for 4Δ while A saves v2 never serves v1 beyond Δ once it runs again", async () => {
      pair = await Pair.open(engine, HEARTBEAT_MS, TIMEOUT_MS);
      const p = pair;
      await p.saveA();
      // P is stopped before A's save and runs again 4Δ after it: every load of P after the save is after SIGCONT.
      let saved = 0;
      await p.pausedReader(
        async () => {
          saved = now();
          await p.saveA();
        },
        4 * p.deltaMs,
        p.deltaMs + 1000,
      );
      const title = `paused process over ${engine}`;
      const phases = [{ name: "after SIGCONT", from: saved, to: Number.POSITIVE_INFINITY }];
      expectBound(title, p.verdict(title, phases, "P"));
    }, 40_000);
  });
}
