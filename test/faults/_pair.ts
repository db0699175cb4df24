/**
 * Two instances for the per-finding tests (quiet-failures.test.ts): A and B,
 * each a memory tier over the same shared tier (the machine's Redis, or a
 * table of the machine's PostgreSQL) with the matching coherence bus, each
 * through its own fault proxy, in this process. Every save, foreign write
 * and load is recorded in one history (history.ts) and checked against Δ
 * (checker.ts, _bound.ts), phase by phase.
 *
 * @module
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DeviceStorage, NotFoundError, silentLogger } from "../../src/index.js";
import { POSTGRES, psql } from "../helpers/servers.js";
import { stalenessBoundMs } from "./_bound.js";
import { postgresStore, redisStore, type SharedStore } from "./_store.js";
import { faultValue, faultValueId } from "./_values.js";
import type { FromWorker, ToWorker, WorkerConfig } from "./_worker.js";
import { type CheckResult, check } from "./checker.js";
import { type History, now, parseHistory, Recorder } from "./history.js";
import { FaultProxy } from "./proxy.js";
import { formatReport } from "./report.js";

/** The shared engine of a pair: the machine's Redis or PostgreSQL. */
export type Engine = "redis" | "postgresql";

const WORKER = fileURLToPath(new URL("./_worker.ts", import.meta.url));
const REDIS = { host: "127.0.0.1", port: 6379 };
const PG_URL = `postgresql://${POSTGRES.user}@${POSTGRES.host}:${POSTGRES.port}/${POSTGRES.database}`;
/** Pause between two loads of B's probe. */
const PROBE_PAUSE_MS = 10;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A phase of a test, for the verdict: loads that began in [from, to). */
export interface Phase {
  name: string;
  from: number;
  to: number;
}

/** The verdict of a test: the check, the report, and the violations and loads of each phase. */
export interface Verdict {
  result: CheckResult;
  report: string;
  phases: { name: string; loads: number; fromMemory: number; failed: number; stale: number; worstMs: number }[];
}

/** Settings of one instance whose connections go to `host:port` (a proxy, or the server itself). */
type SettingsFor = (port: number) => {
  profiles: Record<string, Record<string, string>>;
  coherence: Record<string, string>;
};

/** A and B over one engine (see the module doc). */
export class Pair {
  readonly key = `q-${randomBytes(4).toString("hex")}.json`;
  readonly deltaMs: number;
  readonly lines: string[] = [];
  readonly recA = new Recorder("A", { lines: this.lines });
  readonly recB = new Recorder("B", { lines: this.lines });
  /** The foreign writer's operations, and the faults of a test. */
  readonly recForeign = new Recorder("foreign", { lines: this.lines });
  readonly t0 = now();
  #saves = 0;
  #foreign = 0;
  readonly #extra: string[] = [];
  readonly #dir = mkdtempSync(join(tmpdir(), "tp-quiet-"));
  readonly #children: ChildProcess[] = [];

  private constructor(
    readonly engine: Engine,
    readonly a: DeviceStorage,
    readonly b: DeviceStorage,
    readonly proxyB: FaultProxy,
    readonly proxyA: FaultProxy,
    readonly store: SharedStore,
    private readonly settingsFor: SettingsFor,
    private readonly cleanup: () => Promise<void>,
    heartbeatMs: number,
  ) {
    this.deltaMs = stalenessBoundMs(heartbeatMs);
  }

  /** Opens A and B (heartbeat `heartbeatMs`, shared tier `timeout_ms` = `timeoutMs`) and waits until both serve from memory. */
  static async open(engine: Engine, heartbeatMs: number, timeoutMs: number): Promise<Pair> {
    const tag = `tp_quiet_${randomBytes(5).toString("hex")}`;
    const common = { timeout_ms: String(timeoutMs), retries: "0" };
    const target = engine === "redis" ? REDIS : { host: POSTGRES.host, port: POSTGRES.port };
    let settingsFor: SettingsFor;
    let store: SharedStore;
    let cleanup: () => Promise<void>;
    if (engine === "redis") {
      const root = `/${tag}/`;
      settingsFor = (port) => ({
        profiles: {
          mem: { type: "memory" },
          shared: { type: "redis", endpoint: `tcp://127.0.0.1:${port}`, root, ...common },
        },
        coherence: {
          type: "redis",
          endpoint: `tcp://127.0.0.1:${port}`,
          channel: tag,
          heartbeat_ms: String(heartbeatMs),
        },
      });
      store = redisStore(REDIS.host, REDIS.port, root);
      cleanup = () => store.clear();
    } else {
      await psql(`CREATE TABLE ${tag} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
      const url = (port: number) => `postgresql://${POSTGRES.user}@127.0.0.1:${port}/${POSTGRES.database}`;
      settingsFor = (port) => ({
        profiles: {
          mem: { type: "memory" },
          shared: { type: "postgresql", connection_string: url(port), table: tag, pool_size: "2", ...common },
        },
        coherence: {
          type: "postgresql",
          connection_string: url(port),
          channel: tag,
          heartbeat_ms: String(heartbeatMs),
        },
      });
      store = postgresStore(PG_URL, tag);
      cleanup = async () => {
        await psql(`DROP TABLE IF EXISTS ${tag}`);
      };
    }
    const proxyA = await FaultProxy.start({ target, protocol: engine });
    const proxyB = await FaultProxy.start({ target, protocol: engine });
    const a = await DeviceStorage.fromSettings(settingsFor(proxyA.port), { logger: silentLogger });
    const b = await DeviceStorage.fromSettings(settingsFor(proxyB.port), { logger: silentLogger });
    const pair = new Pair(engine, a, b, proxyB, proxyA, store, settingsFor, cleanup, heartbeatMs);
    for (const s of [a, b]) await pair.#ready(s);
    return pair;
  }

  /** Settings of a third instance connecting straight to the server (no proxy). */
  directSettings(): ReturnType<SettingsFor> {
    return this.settingsFor(this.engine === "redis" ? REDIS.port : POSTGRES.port);
  }

  async #ready(s: DeviceStorage): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const c = s.coherenceStats();
      if (c?.connected && c.distrusted.length === 0) return;
      if (Date.now() > deadline)
        throw new Error(`instance not subscribed and trusted after 10 s: ${JSON.stringify(c)}`);
      await sleep(10);
    }
  }

  /** A saves the next value of the key (recorded); returns its id. */
  async saveA(): Promise<string> {
    const v = faultValue("A", ++this.#saves);
    const n = this.recA.invoke("save", this.key, v.id);
    await this.a.saveValue(this.key, v);
    this.recA.complete(n, "ok");
    return v.id;
  }

  /** Another program writes the key (Redis `SET`, PostgreSQL `UPDATE`), recorded; returns the value id. */
  async foreignSave(): Promise<string> {
    const v = faultValue("foreign", ++this.#foreign);
    const n = this.recForeign.invoke("foreign-save", this.key, v.id);
    await this.store.set(this.key, JSON.stringify(v));
    this.recForeign.complete(n, "ok");
    return v.id;
  }

  /** Another program deletes the key (Redis `DEL`, PostgreSQL `DELETE`), recorded. */
  async foreignDelete(): Promise<void> {
    const n = this.recForeign.invoke("foreign-delete", this.key);
    await this.store.del(this.key);
    this.recForeign.complete(n, "ok");
  }

  /** One load by B, recorded; returns the value id (null: not found) and where from, or the error code. */
  async loadB(): Promise<{ id: string | null; from?: string } | { error: string }> {
    const n = this.recB.invoke("load", this.key);
    try {
      const r = await this.b.loadValue(this.key);
      const id = faultValueId(r.value);
      this.recB.complete(n, "ok", id, r.profile);
      return { id, from: r.profile };
    } catch (err) {
      if (err instanceof NotFoundError) {
        this.recB.complete(n, "ok", null);
        return { id: null };
      }
      const code = String((err as { code?: string }).code ?? (err as Error).name);
      this.recB.complete(n, code);
      return { error: code };
    }
  }

  /** A saves v1, and B loads it until B serves it from its memory tier (the copy the faults will leave behind). */
  async warm(): Promise<string> {
    const v1 = await this.saveA();
    await this.a.flush();
    for (let i = 0; i < 100; i++) {
      const r = await this.loadB();
      if ("id" in r && r.id === v1 && r.from === "mem") return v1;
      await this.b.flush();
      await sleep(20);
    }
    throw new Error(`precondition: B never served ${v1} from its memory tier`);
  }

  /** B loads the key every 10 ms until `until` ({@link now} time). */
  async probe(until: number): Promise<void> {
    while (now() < until) {
      await this.loadB();
      await sleep(PROBE_PAUSE_MS);
    }
  }

  /** A third instance as a child process (_worker.ts) connected straight to the server; its history joins ours. */
  #child(name: string, mix: WorkerConfig["mix"], armed: boolean) {
    const historyFile = join(this.#dir, `${name}.jsonl`);
    const config: WorkerConfig = {
      name,
      historyFile,
      settings: this.directSettings(),
      keys: [this.key],
      seed: 1,
      mix,
      pauseMs: [5, 5],
      armed,
      readyMs: 10_000,
    };
    const child = fork(WORKER, [JSON.stringify(config)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "pipe", "ipc"],
    });
    this.#children.push(child);
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    return {
      child,
      ready: new Promise<void>((r) => child.on("message", (m: FromWorker) => m.t === "ready" && r())),
      exited: new Promise<[number | null, string | null]>((r) => child.once("exit", (c, s) => r([c, s]))),
      stderr: () => stderr,
      joinHistory: () => this.#extra.push(...readFileSync(historyFile, "utf8").split("\n")),
    };
  }

  /**
   * A third instance saves the key once and SIGKILLs itself the moment the save resolves.
   * Resolves when it is dead; its save joins the history.
   */
  async killedWriterSaves(): Promise<void> {
    const k = this.#child("K", { save: 1, delete: 0, load: 0 }, true);
    const [code, signal] = await k.exited;
    if (signal !== "SIGKILL")
      throw new Error(`the killed writer exited (${code ?? signal}) without saving: ${k.stderr()}`);
    this.recForeign.fault("kill-writer", "K")();
    k.joinHistory();
  }

  /**
   * A third instance P loads the key every 5 ms; it is SIGSTOPped, `whilePaused` runs, P stays stopped
   * `pauseMs`, is SIGCONTed and loads for `afterMs` more. Its loads join the history.
   */
  async pausedReader(whilePaused: () => Promise<unknown>, pauseMs: number, afterMs: number): Promise<void> {
    const p = this.#child("P", { save: 0, delete: 0, load: 1 }, false);
    await p.ready;
    await sleep(300);
    p.child.kill("SIGSTOP");
    const paused = this.recForeign.fault("pause-reader", "P");
    try {
      await whilePaused();
      await sleep(pauseMs);
    } finally {
      p.child.kill("SIGCONT");
      paused();
    }
    await sleep(afterMs);
    p.child.send({ t: "final" } satisfies ToWorker);
    const [code, signal] = await p.exited;
    if (code !== 0) throw new Error(`the paused reader exited (${code ?? signal}): ${p.stderr()}`);
    p.joinHistory();
  }

  /** The history so far. */
  history(): History {
    return parseHistory([...this.lines, ...this.#extra]);
  }

  /** Checks the history against Δ; figures per phase. */
  verdict(title: string, phases: Phase[], reader = "B"): Verdict {
    const history = this.history();
    const result = check(history, { deltaMs: this.deltaMs, localProfiles: ["mem"] });
    const report = formatReport(result, history, { title, seed: 0, t0: this.t0 });
    const loadsOfB = history.ops.filter((o) => o.op === "load" && o.process === reader);
    return {
      result,
      report,
      phases: phases.map((p) => {
        const inside = (t: number) => t >= p.from && t < p.to;
        const loads = loadsOfB.filter((o) => inside(o.invoke));
        const stale = result.violations.filter(
          (v) => v.kind === "stale-read" && v.op.process === reader && inside(v.op.invoke),
        );
        return {
          name: p.name,
          loads: loads.length,
          fromMemory: loads.filter((o) => o.outcome === "ok" && o.from === "mem").length,
          failed: loads.filter((o) => o.outcome !== "ok").length,
          stale: stale.length,
          worstMs: Math.max(0, ...stale.map((v) => v.staleMs ?? 0)),
        };
      }),
    };
  }

  async close(): Promise<void> {
    for (const c of this.#children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    this.proxyA.heal();
    this.proxyB.heal();
    await Promise.all([this.a, this.b].map((s) => Promise.race([s.close(), sleep(3000)]).catch(() => {})));
    await Promise.all([this.proxyA.close(), this.proxyB.close()]);
    await this.cleanup().catch(() => {});
    await this.store.close();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
