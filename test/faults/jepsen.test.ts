/**
 * The fault-injection suite, in the spirit of Jepsen (issue 19, "Must
 * show"): over the test's own Redis (appendonly, appendfsync always: an
 * acknowledged write survives the restart) and its own PostgreSQL, with a
 * memory and with a sqlite local tier, writer and reader processes each
 * behind its own fault proxy, plus a foreign writer, while the nemesis holds,
 * drops, delays and resets connections (the listener only, or all of a
 * process's), SIGKILLs writers right after acknowledged saves (respawned),
 * SIGSTOPs readers and restarts the server. Then heal, quiesce, read the final
 * state, and check the history: no acknowledged write lost, no load returning
 * a value replaced more than Δ = stalenessBoundMs(heartbeat_ms) before it
 * began, no value never written.
 *
 * Knobs (environment): FAULT_SEED (printed always; replays the same choices),
 * FAULT_DURATION_MS (faults per run, default 12000), FAULT_HEARTBEAT_MS
 * (default 300), FAULT_KINDS (comma-separated, default all of them; see
 * _nemesis.ts), FAULT_WRITERS / FAULT_READERS (default 2 / 2), FAULT_KEYS
 * (default 12), FAULT_TIMEOUT_MS (the shared tier's timeout_ms, default 1000),
 * FAULT_BREAKER_COOLDOWN_MS (the workers' liveRanking.cooldownMs, default 1000),
 * FAULT_ENGINES (redis,postgresql), FAULT_LOCALS (memory,sqlite), FAULT_CONTROL_MS (the control run
 * without a local tier, which must check clean under the same faults: default min(6000, duration); 0 skips it),
 * FAULT_FOREIGN (0: no foreign writer), FAULT_KEEP_HISTORY (keep each run's history files and print where).
 */
import { randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasCommand, postgresBinDir, requireBinaries, startPostgres, startRedis } from "../helpers/servers.js";
import { DEFAULT_FAULT_KINDS, FAULT_KINDS, type FaultKind } from "./_nemesis.js";
import { type LocalTier, runScenario, type ScenarioOptions, type ScenarioServer } from "./_scenario.js";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const list = (name: string, fallback: readonly string[]) =>
  process.env[name] ? process.env[name].split(",").map((s) => s.trim()) : [...fallback];
const SEED = env("FAULT_SEED", randomInt(1, 2 ** 31));
const DURATION_MS = env("FAULT_DURATION_MS", 12_000);
const HEARTBEAT_MS = env("FAULT_HEARTBEAT_MS", 300);
const KINDS = list("FAULT_KINDS", DEFAULT_FAULT_KINDS) as FaultKind[];
const ENGINES = list("FAULT_ENGINES", ["redis", "postgresql"]);
const LOCALS = list("FAULT_LOCALS", ["memory", "sqlite"]) as LocalTier[];
/** The control run (no local tier) is shorter: it only has to show the harness raises no false alarm. */
const CONTROL_MS = env("FAULT_CONTROL_MS", Math.min(DURATION_MS, 6000));
for (const k of KINDS)
  if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`FAULT_KINDS: unknown ${k}`);
console.log(
  `fault suite: FAULT_SEED=${SEED}, ${DURATION_MS} ms per run, heartbeat ${HEARTBEAT_MS} ms, faults ${KINDS.join(",")}`,
);

/** What a load may end with: a value, absence, or unavailability; `unknown` for a process killed mid-load. */
const ALLOWED_LOAD_OUTCOMES = ["ok", "unknown", "E_UNAVAILABLE", "E_TIMEOUT"];
/** Per run: start-up, faults, quiescence and checking. */
const RUN_TIMEOUT_MS = DURATION_MS + 60_000;
const redisOk = await requireBinaries("fault suite (own redis-server)", await hasCommand("redis-server"));
const pgOk = await requireBinaries("fault suite (own PostgreSQL)", postgresBinDir() !== undefined);

function options(target: ScenarioServer, local: LocalTier, run: number): ScenarioOptions {
  return {
    target,
    local,
    seed: SEED + run,
    replay: `FAULT_SEED=${SEED}`,
    durationMs: local === "none" ? CONTROL_MS : DURATION_MS,
    heartbeatMs: HEARTBEAT_MS,
    writers: env("FAULT_WRITERS", 2),
    readers: env("FAULT_READERS", 2),
    keys: env("FAULT_KEYS", 12),
    kinds: KINDS,
    timeoutMs: env("FAULT_TIMEOUT_MS", 1000),
    foreign: env("FAULT_FOREIGN", 1) !== 0,
    breakerCooldownMs: env("FAULT_BREAKER_COOLDOWN_MS", 1000),
  };
}

async function runAndCheck(target: ScenarioServer, local: LocalTier, run: number): Promise<void> {
  const r = await runScenario(options(target, local, run));
  console.log(
    `${r.report}\n  workers started ${r.spawned} (trusted at start ${r.trustedAtStart}); proxy: ${r.proxy.dropped} frames dropped, ` +
      `${r.proxy.resets} resets, ${r.proxy.framingErrors} framing errors`,
  );
  expect(r.crashes, r.crashes.join("\n")).toEqual([]);
  // Enough happened for the verdict to mean something.
  expect(r.result.counts.loads.value + r.result.counts.loads.notFound).toBeGreaterThan(200);
  expect(r.proxy.framingErrors).toBe(0);
  // A load may fail while a shared tier cannot be reached (availability is not promised), only in these ways.
  const loadOutcomes = Object.keys(r.result.counts.ops.load ?? {});
  expect(loadOutcomes.filter((o) => !ALLOWED_LOAD_OUTCOMES.includes(o))).toEqual([]);
  expect(r.result.violations.length, `FAULT_SEED=${SEED}\n${r.report}`).toBe(0);
}

/** The runs over one engine: the control, then each local tier; `run` numbers make each seed distinct. */
function engineSuite(title: string, ok: boolean, start: () => Promise<ScenarioServer>, firstRun: number): void {
  describe.skipIf(!ok)(title, () => {
    let target: ScenarioServer | undefined;
    beforeAll(async () => {
      target = await start();
    });
    afterAll(() => target?.server.stop());
    const engine = title.includes("Redis") ? "redis" : "postgresql";
    it.skipIf(CONTROL_MS <= 0)(
      `control, no local tier, over ${engine}: the harness raises no false alarm`,
      async () => {
        await runAndCheck(target!, "none", firstRun + 9);
      },
      RUN_TIMEOUT_MS,
    );
    for (const [i, local] of LOCALS.entries()) {
      it(
        `${local} over ${engine}: no lost write, no read stale beyond Δ, no phantom`,
        async () => {
          await runAndCheck(target!, local, firstRun + i);
        },
        RUN_TIMEOUT_MS,
      );
    }
  });
}

engineSuite(
  "fault injection over Redis",
  redisOk && ENGINES.includes("redis"),
  async () => ({
    engine: "redis",
    server: await startRedis({ args: ["--appendonly", "yes", "--appendfsync", "always"] }),
  }),
  0,
);
engineSuite(
  "fault injection over PostgreSQL",
  pgOk && ENGINES.includes("postgresql"),
  async () => ({ engine: "postgresql", server: await startPostgres() }),
  10,
);
