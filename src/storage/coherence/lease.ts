/**
 * The lease: an instance may serve reads from its local tiers only while it
 * holds fresh proof that it would have heard of every change to the shared
 * tiers. Proof is a round trip on each listening connection (see
 * `liveness.ts`): an answer to a ping sent at `t` shows that everything the
 * server announced before `t` has arrived and been applied, so local copies
 * are current as of `t`, and may be served until `t + bound`.
 *
 * The check on the read path must cost next to nothing: a background thread
 * (`_lease-clock.ts`) watches the clock and raises a flag in shared memory
 * once the lease runs out, so a hit reads one integer instead of the clock;
 * the flag only says "look at the clock", which the main thread then does.
 *
 * @module
 */
import { type LeaseClock, startLeaseClock } from "./_lease-clock.js";

/** How long before the bound a lease stops: the clock thread wakes this often at most, plus scheduling slack. */
const LEASE_MARGIN_MS = 25;

/** The staleness bound Δ of a bus whose listeners are pinged every `heartbeatMs`: three periods. */
export function stalenessBoundMs(heartbeatMs: number): number {
  return 3 * heartbeatMs;
}

/** The lease as {@link Lease.snapshot} reports it. */
export interface LeaseState {
  /** Whether local tiers may serve now. */
  trusted: boolean;
  /** The bound Δ in ms (3 × `heartbeat_ms`). */
  boundMs: number;
  /** When the last proof's ping was sent (ms since the epoch), if any. */
  lastProofAt: number | undefined;
  /** Until when the lease runs (ms since the epoch), if it was ever proven. */
  validUntil: number | undefined;
  /** Times the lease ran out. */
  lapses: number;
}

export class Lease {
  readonly boundMs: number;
  /** Lease end on the `performance.now()` time line; -Infinity until the first proof. */
  #until = Number.NEGATIVE_INFINITY;
  #lastProof: number | undefined;
  #lapses = 0;
  #lapsed = true;
  #timer: NodeJS.Timeout | undefined;
  readonly #clock: LeaseClock;
  readonly #onLapse: () => void;

  /** @param onLapse called once each time the lease runs out (on the read path or by a timer). */
  constructor(boundMs: number, onLapse: () => void) {
    this.boundMs = boundMs;
    this.#onLapse = onLapse;
    this.#clock = startLeaseClock();
  }

  /**
   * The flag the read path tests (`flag[0] !== 0`: call {@link check}). Always raised while the lease is
   * out, and where no clock thread could be started (every read then looks at the clock).
   */
  get flag(): Int32Array {
    return this.#clock.flag;
  }

  /** Whether local tiers may serve now; notices a lease that ran out (and calls `onLapse`). */
  check(now = performance.now()): boolean {
    if (now < this.#until) {
      if (this.#clock.live) this.#clock.lower();
      return true;
    }
    this.#lapse();
    return false;
  }

  /** Whether a proof is fresh now, without side effects. */
  get valid(): boolean {
    return performance.now() < this.#until;
  }

  /**
   * A ping sent at `sentAt` (performance.now() time line) was answered on every listening connection
   * that had to answer it: the lease runs until `sentAt + bound` (never shortened).
   * @returns whether this proof ended a lapse.
   */
  renew(sentAt: number): boolean {
    const until = sentAt + this.boundMs - LEASE_MARGIN_MS;
    this.#lastProof = Math.max(this.#lastProof ?? sentAt, sentAt);
    if (until <= this.#until) return false;
    const now = performance.now();
    this.#until = until;
    if (until <= now) return false;
    this.#clock.extend(until - now);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.check(), until - now + 1);
    this.#timer.unref();
    const ended = this.#lapsed;
    this.#lapsed = false;
    return ended;
  }

  /** Ends the lease now (a listener went down): local tiers leave the read path. */
  revoke(): void {
    this.#until = Number.NEGATIVE_INFINITY;
    this.#clock.extend(0);
    this.#lapse();
  }

  snapshot(): LeaseState {
    const toEpoch = (t: number) => Math.round(performance.timeOrigin + t);
    return {
      trusted: this.valid,
      boundMs: this.boundMs,
      lastProofAt: this.#lastProof === undefined ? undefined : toEpoch(this.#lastProof),
      validUntil: Number.isFinite(this.#until) ? toEpoch(this.#until) : undefined,
      lapses: this.#lapses,
    };
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#clock.stop();
  }

  #lapse(): void {
    if (this.#lapsed) return;
    this.#lapsed = true;
    this.#lapses++;
    this.#onLapse();
  }
}
