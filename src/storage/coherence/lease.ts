/**
 * The lease: an instance may serve reads from its local tiers only while it
 * holds fresh proof that it would have heard of every change to the shared
 * tiers. Proof is a ping echoed back to each listening connection through the
 * server's push path (see `liveness.ts`): the echo of a ping sent at `t` shows
 * that everything the server announced before `t` has arrived and been
 * applied, so local copies are current as of `t`, and may be served until
 * `t + bound`.
 *
 * The read path asks the lease on every look (one monotonic clock read and a
 * comparison, ~40 ns here): nothing cheaper stays right after a pause. A
 * flag raised by a timer or a clock thread is stale for the first reads after
 * SIGSTOP/SIGCONT or a VM pause, which resume before any timer runs. Without a
 * coherence bus nothing is asked.
 *
 * @module
 */
/** How long before the bound a lease stops: slack for the drop of a reported key to finish. */
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
  readonly #onLapse: () => void;

  /** @param onLapse called once each time the lease runs out (on the read path or by a timer). */
  constructor(boundMs: number, onLapse: () => void) {
    this.boundMs = boundMs;
    this.#onLapse = onLapse;
  }

  /** Whether local tiers may serve now; notices a lease that ran out (and calls `onLapse` once). */
  check(): boolean {
    if (performance.now() < this.#until) return true;
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
  }

  #lapse(): void {
    if (this.#lapsed) return;
    this.#lapsed = true;
    this.#lapses++;
    this.#onLapse();
  }
}
