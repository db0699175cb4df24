/**
 * The messages between multi-process.test.ts (the coordinator) and its
 * instances (_instance.ts), over the IPC channel of `child_process.fork`.
 * Times are ms on CLOCK_MONOTONIC (`process.hrtime`), the same clock in
 * every process of the machine.
 */
import type { CoherenceStats } from "../../src/index.js";

/** The key of index `k` (every instance reads and writes the same few). */
export const keyName = (k: number): string => `mp_${k}.json`;

/** What is stored: the writing instance, and the key's version (handed out by the coordinator, one writer at a time). */
export interface Value {
  w: number;
  v: number;
  pad: string;
}

/** One load an instance made: key index, version returned (0: absent), start and end, whether memory answered. */
export interface Load {
  k: number;
  v: number;
  start: number;
  end: number;
  fromLocal: boolean;
  /** A poll of a watched key (else a background load of a random key). */
  watch: boolean;
}

export type ToChild =
  | { t: "save"; k: number; v: number }
  /** A save of version `v` was acknowledged at `ackAt` in another instance: poll until it shows. */
  | { t: "watch"; k: number; v: number; ackAt: number }
  | { t: "stop" };

export type FromChild =
  | { t: "ready"; origin: string }
  | { t: "acked"; k: number; v: number; at: number }
  | { t: "failed"; k: number; v: number; error: string }
  /** The first load returning >= `v` ended at `at`, `delay` ms after the ack (`ok` false: not within the deadline). */
  | { t: "seen"; k: number; v: number; at: number; delay: number; ok: boolean }
  | { t: "done"; loads: Load[]; stats: CoherenceStats | undefined };
