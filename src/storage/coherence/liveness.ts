/**
 * Proof of hearing, per listening connection: every `heartbeat_ms` a ping
 * goes out, numbered, and comes back as an *echo* through the server's own
 * push path onto the listening connection (`listener.ts`: a `PUBLISH` to a
 * channel only that connection subscribes to; a `pg_notify` on a channel only
 * it listens to). An echo that comes back in order proves that everything the
 * server pushed to the connection before it arrived (one TCP stream), whether
 * the connection went silent or only its pushes were lost. A ping without its
 * echo for two periods (or an echo out of order) replaces the connection,
 * which the bus treats as any other loss. Traffic: one ping per instance and
 * connection per period, whatever the number of instances.
 *
 * @module
 */
import type { Listener } from "./listener.js";

/** Periods a ping may stay unanswered before its connection is replaced. */
const DEADLINE_PERIODS = 2;

export class Liveness {
  readonly listener: Listener;
  readonly #periodMs: number;
  readonly #proved: (sentAt: number) => void;
  readonly #silent: (reason: string) => void;
  #n = 0;
  /** Pings sent and not answered yet, oldest first: [number, sent at (performance.now())]. */
  #outstanding: [number, number][] = [];
  #timer: NodeJS.Timeout | undefined;
  /** Generation of the connection: answers to pings of an earlier one are ignored. */
  #epoch = 0;
  /** When the last answered ping was sent (performance.now()), on the current connection. */
  lastProof: number | undefined;

  /**
   * @param proved an answer came for a ping sent at `sentAt` (performance.now() time line).
   * @param silent the connection stopped answering (it is being replaced).
   */
  constructor(listener: Listener, periodMs: number, proved: (sentAt: number) => void, silent: (r: string) => void) {
    this.listener = listener;
    this.#periodMs = periodMs;
    this.#proved = proved;
    this.#silent = silent;
  }

  /** The connection listens: pings start at once (the first proof ends the wait). */
  up(): void {
    this.down();
    this.#timer = setInterval(() => this.#tick(), this.#periodMs);
    this.#timer.unref();
    this.#ping();
  }

  /** The connection is gone: no proof until the next {@link up}. */
  down(): void {
    this.#epoch++;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#outstanding = [];
    this.lastProof = undefined;
  }

  #tick(): void {
    const oldest = this.#outstanding[0];
    if (oldest && performance.now() - oldest[1] > DEADLINE_PERIODS * this.#periodMs) {
      // Answers already in the socket are read before `setImmediate` callbacks run: a loop that was
      // busy (a long GC, a CPU-bound stretch) must not take its own delay for a silent connection.
      const epoch = this.#epoch;
      setImmediate(() => {
        const still = this.#outstanding[0];
        if (epoch !== this.#epoch || still !== oldest) return;
        const ms = Math.round(performance.now() - oldest[1]);
        this.#silent(`no answer to a ping for ${ms} ms`);
        this.listener.replace(`no answer to a ping for ${ms} ms`);
      });
      return;
    }
    this.#ping();
  }

  #ping(): void {
    const n = ++this.#n;
    const sentAt = performance.now();
    const epoch = this.#epoch;
    this.#outstanding.push([n, sentAt]);
    this.listener.ping(n).then(
      () => {
        if (epoch !== this.#epoch) return;
        // Answers come in order (one connection): this one settles every earlier ping too.
        const at = this.#outstanding.findIndex(([m]) => m === n);
        if (at === -1) return;
        this.#outstanding.splice(0, at + 1);
        this.lastProof = sentAt;
        this.#proved(sentAt);
      },
      (err: Error) => {
        if (epoch !== this.#epoch) return;
        // Out of order, or the connection broke: either way it cannot be trusted to have delivered everything.
        this.#silent(err.message);
        this.listener.replace(err.message);
      },
    );
  }

  stop(): void {
    this.down();
  }
}
