/**
 * The nemesis of a fault-injection run: until its time is up, each of its
 * lanes picks a fault at random (seeded), applies it to one worker slot not
 * already under a fault, keeps it for a random time, heals it, waits, and
 * picks again; the server restart happens once, at a random time in the
 * middle. Every fault is recorded in the history. At the end everything is
 * healed: proxies pass, paused workers run, the server is up.
 *
 * @module
 */
import { seededRandom } from "../../src/index.js";
import type { OwnServer } from "../helpers/servers.js";
import type { Fleet, Slot } from "./_fleet.js";
import type { Recorder } from "./history.js";

/** The faults the nemesis injects. */
export const FAULT_KINDS = [
  /** Every connection of one process held (a silent partition). */
  "hold-all",
  /** Only the listening connection held. */
  "hold-listener",
  /** The listening connection drops every frame it would read. */
  "drop-listener",
  /** The listening connection drops only pushes (messages, invalidations, notifications); PING / SELECT 1 still answered. */
  "drop-push",
  /** Every connection of one process delayed 50-400 ms each way. */
  "delay-all",
  /** The listening connection reset (and reset again on each reconnect while it lasts). */
  "reset-listener",
  /** A reader SIGSTOPped, then SIGCONTed. */
  "pause-reader",
  /** A writer SIGKILLs itself right after its next acknowledged save (then is respawned). */
  "kill-writer",
  /** The server killed and started again (once per run). */
  "restart-server",
] as const;

/** One of {@link FAULT_KINDS}. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * The kinds a run injects when FAULT_KINDS does not say: all of them. `drop-push` loses pushes alone on a
 * live connection (which no healthy Redis or PostgreSQL does, but a cluster bus between nodes can): a
 * round trip on the listener would not see it; the library's echoes through the push path do.
 */
export const DEFAULT_FAULT_KINDS: readonly FaultKind[] = FAULT_KINDS;

/** How often a kind is picked relative to the others: the quiet failures (issue 19's subject) more than the loud ones. */
const WEIGHT: Record<FaultKind, number> = {
  "hold-all": 2,
  "hold-listener": 2,
  "drop-listener": 2,
  "drop-push": 2,
  "delay-all": 1,
  "reset-listener": 1,
  "pause-reader": 2,
  "kill-writer": 3,
  "restart-server": 0,
};

/** What the nemesis acts on, which faults it picks, for how long. */
export interface NemesisOptions {
  fleet: Fleet;
  server: OwnServer;
  recorder: Recorder;
  /** Seeds the choices: each lane, and the restart, draws from its own stream (the lanes interleave by timing). */
  seed: number;
  kinds: readonly FaultKind[];
  durationMs: number;
  /** How long one fault lasts, ms. */
  faultMs: [number, number];
  /** Pause of a lane between two faults, ms. */
  gapMs: [number, number];
  /** Faults at once (on different slots). @default 2 */
  lanes?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs the nemesis (see the module doc); resolves once everything is healed. */
export async function runNemesis(o: NemesisOptions): Promise<void> {
  const between = (random: () => number, [lo, hi]: [number, number]) => lo + random() * (hi - lo);
  const pick = <T>(random: () => number, xs: readonly T[]): T | undefined => xs[Math.floor(random() * xs.length)];
  const end = performance.now() + o.durationMs;
  const busy = new Set<number>();
  const kinds = o.kinds.flatMap((k) => Array<FaultKind>(WEIGHT[k]).fill(k));

  async function one(kind: FaultKind, random: () => number): Promise<void> {
    const candidates = o.fleet.slots.filter(
      (s) =>
        !busy.has(s.index) &&
        (kind === "kill-writer" ? s.role === "writer" : kind === "pause-reader" ? s.role === "reader" : true),
    );
    const slot = pick(random, candidates);
    if (!slot) return;
    if (kind === "kill-writer") {
      // Recorded by the fleet when the writer dies.
      o.fleet.armKill(slot);
      return;
    }
    busy.add(slot.index);
    const ms = between(random, o.faultMs);
    const undo = apply(kind, slot, o.fleet, random);
    const done = o.recorder.fault(kind, `slot ${slot.index}`, undo.detail);
    await sleep(Math.min(ms, Math.max(0, end - performance.now())));
    undo.heal();
    done();
    busy.delete(slot.index);
  }

  async function lane(_: unknown, i: number): Promise<void> {
    const random = seededRandom(o.seed * 7 + i);
    while (performance.now() < end) {
      const kind = pick(random, kinds);
      if (kind) await one(kind, random);
      await sleep(between(random, o.gapMs));
    }
  }

  async function restart(): Promise<void> {
    const random = seededRandom(o.seed * 7 + 99);
    await sleep(o.durationMs * (0.3 + 0.3 * random()));
    const done = o.recorder.fault("restart-server", o.server.name);
    await o.server.kill();
    await sleep(between(random, [300, 900]));
    await o.server.start();
    done();
  }

  const work = Array.from({ length: o.lanes ?? 2 }, lane);
  if (o.kinds.includes("restart-server")) work.push(restart());
  await Promise.all(work);
  for (const s of o.fleet.slots) {
    s.proxy.heal();
    o.fleet.resume(s);
  }
  if (!o.server.running) await o.server.start();
}

/** Applies one fault to `slot`; returns how to heal it and a detail for the history. */
function apply(kind: FaultKind, slot: Slot, fleet: Fleet, random: () => number): { heal: () => void; detail: string } {
  const proxy = slot.proxy;
  const heal = () => proxy.heal();
  switch (kind) {
    case "hold-all":
      proxy.set({ kind: "hold" });
      return { heal, detail: "" };
    case "hold-listener":
      proxy.set({ kind: "hold" }, "listener");
      return { heal, detail: "" };
    case "drop-listener":
      proxy.set({ kind: "drop", frames: "all" }, "listener");
      return { heal, detail: "" };
    case "drop-push":
      proxy.set({ kind: "drop", frames: "push" }, "listener");
      return { heal, detail: "" };
    case "delay-all": {
      const ms = Math.round(50 + random() * 350);
      proxy.set({ kind: "delay", ms });
      return { heal, detail: `${ms} ms` };
    }
    case "reset-listener":
      proxy.set({ kind: "reset" }, "listener");
      return { heal, detail: "" };
    case "pause-reader":
      fleet.pause(slot);
      return { heal: () => fleet.resume(slot), detail: "" };
    default:
      throw new Error(`nemesis: ${kind} is not applied to one slot`);
  }
}
