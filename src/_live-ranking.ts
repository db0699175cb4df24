/**
 * Live ranking: the start-up probe gives each profile a speed; real
 * operations then keep the median of each profile's last few latencies, and
 * the profiles are re-ranked when a slower one overtakes the fastest (with
 * hysteresis, so two close profiles do not flap; a median, so one slow
 * sample, say a GC pause, moves nothing). A profile failing
 * repeatedly is taken out of the read path (circuit breaker) and let back in
 * after a cool-down, once a trial call succeeds.
 */

/** Tuning of {@link LiveRanking}. */
export interface LiveRankingOptions {
  /** Latency samples per profile whose median ranks it. @default 5 */
  window?: number;
  /** A challenger takes first place only when this many times faster. @default 1.5 */
  hysteresis?: number;
  /** Consecutive failures that open the breaker. @default 5 */
  failureThreshold?: number;
  /** Milliseconds a tripped profile stays out of the read path before a trial. @default 5000 */
  cooldownMs?: number;
  /**
   * Least milliseconds between two background health checks: loads keep the
   * slower profiles' latencies fresh (and give a tripped one its trial) with an
   * `exists` of the probe key, one profile at a time, at most this often, so a
   * busy cache never turns into a stream of requests to a remote profile.
   * 0 checks every 32 loads. @default 1000
   */
  healthCheckMs?: number;
}

interface Health {
  /** The last latencies in µs, oldest first (filled with the probe's median at start). */
  samples: number[];
  /** Median of `samples`. */
  latency: number;
  /** Fixed rank value (`speed` override): never re-ranked by latency. */
  fixed: number | undefined;
  consecutiveFailures: number;
  /** 0 when closed; else when the next trial is allowed (ms since epoch). */
  openUntil: number;
}

export interface RankedProfile {
  readonly name: string;
  readonly speed: number;
}

export class LiveRanking<E extends RankedProfile> {
  readonly #health = new Map<string, Health>();
  readonly #window: number;
  readonly #hysteresis: number;
  readonly #threshold: number;
  readonly #cooldown: number;
  #order: E[];
  readonly #onChange: (order: readonly E[], reason: string) => void;

  constructor(
    ranked: readonly E[],
    fixed: (e: E) => boolean,
    onChange: (order: readonly E[], reason: string) => void,
    options: LiveRankingOptions = {},
  ) {
    this.#order = [...ranked];
    this.#onChange = onChange;
    this.#window = Math.max(1, Math.floor(options.window ?? 5));
    this.#hysteresis = options.hysteresis ?? 1.5;
    this.#threshold = options.failureThreshold ?? 5;
    this.#cooldown = options.cooldownMs ?? 5000;
    for (const e of ranked) {
      this.#health.set(e.name, {
        samples: Array.from({ length: this.#window }, () => e.speed),
        latency: e.speed,
        fixed: fixed(e) ? e.speed : undefined,
        consecutiveFailures: 0,
        openUntil: 0,
      });
    }
  }

  get order(): readonly E[] {
    return this.#order;
  }

  /** Current moving-average latency (µs) and breaker state per profile. */
  snapshot(): Record<string, { latencyUs: number; open: boolean; consecutiveFailures: number }> {
    const out: Record<string, { latencyUs: number; open: boolean; consecutiveFailures: number }> = {};
    for (const [name, h] of this.#health) {
      out[name] = { latencyUs: h.latency, open: h.openUntil > 0, consecutiveFailures: h.consecutiveFailures };
    }
    return out;
  }

  /** Whether reads may go to `name` now (closed breaker, or an open one due for a trial). */
  available(name: string): boolean {
    const h = this.#health.get(name);
    if (!h || h.openUntil === 0) return true;
    const now = Date.now();
    if (now < h.openUntil) return false;
    // Half-open: one trial per cool-down period.
    h.openUntil = now + this.#cooldown;
    return true;
  }

  /** Records a successful call that took `us` microseconds. */
  success(name: string, us: number): void {
    const h = this.#health.get(name);
    if (!h) return;
    h.consecutiveFailures = 0;
    const wasOpen = h.openUntil !== 0;
    h.openUntil = 0;
    if (wasOpen) h.samples.fill(us);
    else {
      h.samples.shift();
      h.samples.push(us);
    }
    const before = h.latency;
    h.latency = median(h.samples);
    if (wasOpen || h.latency !== before) {
      this.#rerank(wasOpen ? `${name} recovered` : `${name} latency ${h.latency.toFixed(1)}us`);
    }
  }

  /** Records a failed call (not a NotFound: absence is an answer). */
  failure(name: string): void {
    const h = this.#health.get(name);
    if (!h) return;
    h.consecutiveFailures++;
    if (h.openUntil === 0 && h.consecutiveFailures >= this.#threshold) {
      h.openUntil = Date.now() + this.#cooldown;
      this.#rerank(`${name} failed ${h.consecutiveFailures} times in a row: taken out of the read path`);
    }
  }

  #effective(e: E): number {
    const h = this.#health.get(e.name)!;
    if (h.openUntil !== 0) return Number.POSITIVE_INFINITY;
    return h.fixed ?? h.latency;
  }

  #rerank(reason: string): void {
    const current = this.#order;
    const next = [...current].sort((a, b) => this.#effective(a) - this.#effective(b));
    const head = current[0]!;
    const challenger = next[0]!;
    if (challenger !== head && this.#effective(challenger) * this.#hysteresis > this.#effective(head)) {
      // Not clearly faster: the current fastest keeps first place.
      next.splice(next.indexOf(head), 1);
      next.unshift(head);
    }
    if (next.every((e, i) => e === current[i])) return;
    this.#order = next;
    this.#onChange(next, reason);
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
