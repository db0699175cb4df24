/**
 * The worker processes of a fault-injection run (_worker.ts), one per slot:
 * each slot has its own fault proxy (so faults are per process) and keeps it
 * across respawns. A writer that SIGKILLed itself after an acknowledged save
 * (armed by the nemesis) is recorded as a `kill-writer` fault and respawned
 * under the next generation's name (`w0.1` after `w0.0`), with the same proxy
 * and the same sqlite file. Any other exit before the end is a crash, and the
 * run fails with its stderr.
 *
 * @module
 */
import { type ChildProcess, fork } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FromWorker, ToWorker, WorkerConfig } from "./_worker.js";
import type { Recorder } from "./history.js";
import type { FaultProxy } from "./proxy.js";

const WORKER = fileURLToPath(new URL("./_worker.ts", import.meta.url));
/** How long a worker may take to finish its final loads and close. */
const FINISH_MS = 20_000;

/** A writer may be killed and respawned; a reader may be paused. */
export type SlotRole = "writer" | "reader";

/** One worker slot. */
export interface Slot {
  readonly index: number;
  readonly role: SlotRole;
  readonly proxy: FaultProxy;
  /** The worker config of this slot, without name, history file and seed (set per generation). */
  readonly config: Omit<WorkerConfig, "name" | "historyFile" | "seed">;
}

interface Running {
  child: ChildProcess;
  name: string;
  done: boolean;
  ready: Promise<boolean>;
  exited: Promise<void>;
  stderr: string;
}

/** The worker processes of one run (see the module doc). */
export class Fleet {
  readonly #slots: Slot[];
  readonly #dir: string;
  readonly #seed: number;
  readonly #recorder: Recorder;
  readonly #running = new Map<number, Running>();
  readonly #generation = new Map<number, number>();
  readonly #files: string[] = [];
  readonly #paused = new Set<number>();
  readonly crashes: string[] = [];
  #finishing = false;
  /** Workers started (respawns included). */
  spawned = 0;

  constructor(slots: Slot[], dir: string, seed: number, recorder: Recorder) {
    this.#slots = slots;
    this.#dir = dir;
    this.#seed = seed;
    this.#recorder = recorder;
  }

  get slots(): readonly Slot[] {
    return this.#slots;
  }

  /** Every history file written so far (one per worker process). */
  get historyFiles(): string[] {
    return [...this.#files];
  }

  /** Starts every slot's first worker; resolves with how many said their local tier was trusted. */
  async start(): Promise<number> {
    const ready = await Promise.all(this.#slots.map((s) => this.#spawn(s).ready));
    return ready.filter(Boolean).length;
  }

  /** The worker of `slot` kills itself right after its next acknowledged save. */
  armKill(slot: Slot): void {
    const r = this.#running.get(slot.index);
    if (r && !r.done) r.child.send({ t: "arm-kill" } satisfies ToWorker);
  }

  /** SIGSTOP / SIGCONT of the worker of `slot`. */
  pause(slot: Slot): void {
    const r = this.#running.get(slot.index);
    if (!r?.child.pid || r.done) return;
    this.#paused.add(slot.index);
    r.child.kill("SIGSTOP");
  }

  resume(slot: Slot): void {
    this.#paused.delete(slot.index);
    this.#running.get(slot.index)?.child.kill("SIGCONT");
  }

  /** Resumes every worker, tells each to make its final loads, and waits until all have exited. */
  async finish(): Promise<void> {
    this.#finishing = true;
    for (const s of this.#slots) this.resume(s);
    const all = [...this.#running.values()].filter((r) => !r.done);
    for (const r of all) r.child.send({ t: "final" } satisfies ToWorker);
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, FINISH_MS).unref());
    await Promise.race([Promise.all(all.map((r) => r.exited)), timeout]);
    for (const r of all) {
      if (r.done) continue;
      this.crashes.push(`${r.name} did not finish within ${FINISH_MS} ms: ${r.stderr.slice(-1500)}`);
      r.child.kill("SIGKILL");
    }
  }

  /** Kills whatever still runs (after a failure). */
  kill(): void {
    this.#finishing = true;
    for (const r of this.#running.values()) if (!r.done) r.child.kill("SIGKILL");
  }

  #spawn(slot: Slot): Running {
    const gen = this.#generation.get(slot.index) ?? 0;
    this.#generation.set(slot.index, gen + 1);
    const name = `${slot.role === "writer" ? "w" : "r"}${slot.index}.${gen}`;
    const historyFile = join(this.#dir, `${name}.jsonl`);
    this.#files.push(historyFile);
    const config: WorkerConfig = { ...slot.config, name, historyFile, seed: this.#seed * 1000 + slot.index * 31 + gen };
    const child = fork(WORKER, [JSON.stringify(config)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "pipe", "ipc"],
    });
    this.spawned++;
    let readyResolve: (ok: boolean) => void = () => {};
    const running: Running = {
      child,
      name,
      done: false,
      ready: new Promise((r) => {
        readyResolve = r;
      }),
      exited: new Promise((r) => child.once("exit", () => r())),
      stderr: "",
    };
    child.stderr?.on("data", (c: Buffer) => {
      running.stderr = (running.stderr + c.toString()).slice(-4000);
    });
    child.on("message", (m: FromWorker) => {
      if (m.t === "ready") readyResolve(m.trusted);
      else if (m.t === "done") running.done = true;
    });
    child.once("exit", (code, signal) => {
      readyResolve(false);
      if (running.done) return;
      running.done = true;
      if (signal === "SIGKILL" && slot.role === "writer" && !this.#finishing) {
        // Armed by the nemesis: it died right after an acknowledged save. Respawn it.
        this.#recorder.fault("kill-writer", name)();
        this.#spawn(slot);
        return;
      }
      if (!this.#finishing || code !== 0) this.crashes.push(`${name} exited (${code ?? signal}): ${running.stderr}`);
    });
    this.#running.set(slot.index, running);
    return running;
  }
}
