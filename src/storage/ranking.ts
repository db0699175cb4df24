/**
 * Which tier is fastest, now. The start-up probe gives each tier a latency;
 * with live ranking, real calls then keep the median of each tier's last few
 * latencies, and the tiers are re-ranked when a slower one overtakes the
 * fastest (with hysteresis, so two close tiers do not flap; a median, so one
 * slow sample, say a GC pause, moves nothing). A tier failing repeatedly is
 * taken out of the read path (circuit breaker) and let back in after a
 * cool-down, once a trial call succeeds.
 *
 * @module
 */
import type { Logger } from "../logger.js";
import type { LiveRankingOptions, TierMonitor, TierState } from "./types.js";

export type { LiveRankingOptions };

/** What ranking needs of a tier. */
export interface RankedTier {
  readonly name: string;
  /** What ranks it at start: the probe's median read in µs, or the profile's fixed `speed`. */
  readonly rankLatencyUs: number;
  /** Told when its breaker opens or closes. */
  breakerChanged?(): void;
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

/** A tier's latency and breaker as {@link LiveRanking.snapshot} reports them. */
export interface TierHealth {
  latencyUs: number;
  open: boolean;
  consecutiveFailures: number;
  /** Whether the tier serves now (from {@link DeviceStorage.health}; live ranking's own snapshot has none). */
  state?: TierState;
}

export class LiveRanking<E extends RankedTier> implements TierMonitor {
  readonly #health = new Map<string, Health>();
  readonly #fixed: (e: E) => boolean;
  readonly #window: number;
  readonly #hysteresis: number;
  readonly #threshold: number;
  readonly #cooldown: number;
  #order: E[];
  /** Tiers whose breaker is open (0 most of the time: then `available` needs no lookup). */
  #open = 0;
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
    this.#fixed = fixed;
    for (const e of ranked) this.#track(e);
  }

  /** A tier that was down joins, ranked by its fresh probe latency. */
  add(e: E): void {
    this.#track(e);
    this.#order = [...this.#order.filter((x) => x !== e), e];
    this.#rerank(`${e.name} joined`, true);
  }

  #track(e: E): void {
    this.#health.set(e.name, {
      samples: Array.from({ length: this.#window }, () => e.rankLatencyUs),
      latency: e.rankLatencyUs,
      fixed: this.#fixed(e) ? e.rankLatencyUs : undefined,
      consecutiveFailures: 0,
      openUntil: 0,
    });
  }

  breakerOpenUntil(name: string): number {
    if (this.#open === 0) return 0;
    return this.#health.get(name)?.openUntil ?? 0;
  }

  get order(): readonly E[] {
    return this.#order;
  }

  /** Current median latency (µs) and breaker state per tier. */
  snapshot(): Record<string, TierHealth> {
    const out: Record<string, TierHealth> = {};
    for (const [name, h] of this.#health) {
      out[name] = { latencyUs: h.latency, open: h.openUntil > 0, consecutiveFailures: h.consecutiveFailures };
    }
    return out;
  }

  available(name: string): boolean {
    if (this.#open === 0) return true;
    const h = this.#health.get(name);
    if (!h || h.openUntil === 0) return true;
    const now = Date.now();
    if (now < h.openUntil) return false;
    // Half-open: one trial per cool-down period.
    h.openUntil = now + this.#cooldown;
    return true;
  }

  success(name: string, us: number): void {
    const h = this.#health.get(name);
    if (!h) return;
    h.consecutiveFailures = 0;
    const wasOpen = h.openUntil !== 0;
    if (wasOpen) this.#open--;
    h.openUntil = 0;
    if (wasOpen) {
      h.samples.fill(us);
      this.#order.find((e) => e.name === name)?.breakerChanged?.();
    } else {
      h.samples.shift();
      h.samples.push(us);
    }
    const before = h.latency;
    h.latency = median(h.samples);
    if (wasOpen || h.latency !== before) {
      this.#rerank(wasOpen ? `${name} recovered` : `${name} latency ${h.latency.toFixed(1)}us`);
    }
  }

  retrySoon(name: string): void {
    const h = this.#health.get(name);
    // Half-open at once: the next call is the trial (instead of waiting out the cool-down).
    if (h && h.openUntil > Date.now()) h.openUntil = Date.now();
  }

  failure(name: string): void {
    const h = this.#health.get(name);
    if (!h) return;
    h.consecutiveFailures++;
    if (h.openUntil === 0 && h.consecutiveFailures >= this.#threshold) {
      h.openUntil = Date.now() + this.#cooldown;
      this.#open++;
      this.#order.find((e) => e.name === name)?.breakerChanged?.();
      this.#rerank(`${name} failed ${h.consecutiveFailures} times in a row: taken out of the read path`);
    }
  }

  #effective(e: E): number {
    const h = this.#health.get(e.name)!;
    if (h.openUntil !== 0) return Number.POSITIVE_INFINITY;
    return h.fixed ?? h.latency;
  }

  #rerank(reason: string, changed = false): void {
    const current = this.#order;
    const next = [...current].sort((a, b) => this.#effective(a) - this.#effective(b));
    const head = current[0]!;
    const challenger = next[0]!;
    if (challenger !== head && this.#effective(challenger) * this.#hysteresis > this.#effective(head)) {
      // Not clearly faster: the current fastest keeps first place.
      next.splice(next.indexOf(head), 1);
      next.unshift(head);
    }
    if (!changed && next.every((e, i) => e === current[i])) return;
    this.#order = next;
    this.#onChange(next, reason);
  }
}

/**
 * The current order of a storage's tiers, fastest first, and the monitor
 * their calls report to. Without live ranking (turned off, or one tier) the
 * order is the start-up order for good and the monitor does nothing.
 */
export class Ranking<E extends RankedTier> implements TierMonitor {
  #order: readonly E[] = [];
  #fastest!: E;
  #slower: readonly E[] = [];
  #live: LiveRanking<E> | undefined;
  #byName: { order: readonly E[]; map: ReadonlyMap<string, E> } | undefined;
  /** Tiers that are down: not in the read path until they {@link add | join}. */
  #standby: readonly E[] = [];
  /** Ranked tiers kept out of the read path (still written): local tiers after a coherence gap. */
  readonly #distrusted = new Set<E>();
  #read: { order: readonly E[]; slower: readonly E[] } = { order: [], slower: [] };
  /** The coherence lease: asked on every look at the read path (it distrusts tiers once it has run out). */
  #guard: { check(): unknown } | undefined;
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Sets the tiers (fastest first) once they exist, and the ones that are down
   * (`standby`); with `live`, starts live ranking over them.
   */
  start(tiers: readonly E[], fixed: (e: E) => boolean, live: LiveRankingOptions | undefined, standby: readonly E[]) {
    this.#set(tiers);
    this.#standby = standby;
    if (live && tiers.length + standby.length > 1) {
      this.#live = new LiveRanking(
        tiers,
        fixed,
        (order, reason) => {
          this.#set(order);
          this.#logger.info({ ranking: order.map((e) => e.name).join(", "), reason }, "profiles re-ranked");
        },
        live,
      );
    }
  }

  /** The ranked tiers by name, fastest first (rebuilt only when the order changed). */
  get byName(): ReadonlyMap<string, E> {
    const order = this.#order;
    if (this.#byName?.order !== order) this.#byName = { order, map: new Map(order.map((t) => [t.name, t])) };
    return this.#byName.map;
  }

  /** Every tier: the ranked ones, then the ones down. */
  get all(): readonly E[] {
    return this.#standby.length === 0 ? this.#order : [...this.#order, ...this.#standby];
  }

  /** Tiers that are down, in settings order: not read until they join. */
  get standby(): readonly E[] {
    return this.#standby;
  }

  /** A tier that was down joins the read path, ranked by its rank latency. */
  add(e: E): void {
    this.#standby = this.#standby.filter((x) => x !== e);
    if (this.#order.includes(e)) return;
    if (this.#live) {
      this.#live.add(e);
      return;
    }
    const next = [...this.#order];
    const at = next.findIndex((x) => x.rankLatencyUs > e.rankLatencyUs);
    next.splice(at === -1 ? next.length : at, 0, e);
    this.#set(next);
    this.#logger.info(
      { ranking: next.map((x) => x.name).join(", "), reason: `${e.name} joined` },
      "profiles re-ranked",
    );
  }

  breakerOpenUntil(name: string): number {
    return this.#live?.breakerOpenUntil(name) ?? 0;
  }

  retrySoon(name: string): void {
    this.#live?.retrySoon(name);
  }

  /** Whether live ranking is on (latencies of real calls are worth reporting). */
  get live(): boolean {
    return this.#live !== undefined;
  }

  get order(): readonly E[] {
    return this.#order;
  }

  /**
   * The read path: {@link order} without the distrusted tiers (the same array when none is).
   * Empty when every ranked tier is distrusted.
   */
  get readOrder(): readonly E[] {
    this.#guard?.check();
    return this.#read.order;
  }

  /** The tier reads start with and write-back fills: the first of {@link readOrder} (none if it is empty). */
  get readFastest(): E {
    // Typed as always present: only the reader's entry points meet an empty read path, and they check.
    this.#guard?.check();
    return this.#read.order[0] as E;
  }

  /** {@link readOrder} but its first. */
  get readSlower(): readonly E[] {
    this.#guard?.check();
    return this.#read.slower;
  }

  /**
   * Makes the read path depend on a lease: each look at it calls `lease.check()` first (which
   * distrusts the tiers the lease covers once it has run out). `undefined` removes it.
   */
  guard(lease: { check(): unknown } | undefined): void {
    this.#guard = lease;
  }

  /** Keeps `e` out of the read path (it is still written) until {@link trust}. */
  distrust(e: E): void {
    if (this.#distrusted.has(e)) return;
    this.#distrusted.add(e);
    this.#setRead();
  }

  /** Puts a distrusted tier back in the read path. */
  trust(e: E): void {
    if (this.#distrusted.delete(e)) this.#setRead();
  }

  /** Whether `e` is kept out of the read path. */
  distrusted(e: E): boolean {
    return this.#distrusted.has(e);
  }

  /** The tier reads start with, and write-back fills. */
  get fastest(): E {
    return this.#fastest;
  }

  /** Every tier but the fastest, in order. */
  get slower(): readonly E[] {
    return this.#slower;
  }

  available(name: string): boolean {
    return this.#live?.available(name) ?? true;
  }

  success(name: string, us: number): void {
    this.#live?.success(name, us);
  }

  failure(name: string): void {
    this.#live?.failure(name);
  }

  /** Latency and breaker state per tier (empty when live ranking is off). */
  snapshot(): Record<string, TierHealth> {
    return this.#live?.snapshot() ?? {};
  }

  #set(order: readonly E[]): void {
    this.#order = order;
    this.#fastest = order[0]!;
    this.#slower = order.slice(1);
    this.#setRead();
  }

  #setRead(): void {
    const order = this.#distrusted.size === 0 ? this.#order : this.#order.filter((e) => !this.#distrusted.has(e));
    this.#read = order === this.#order ? { order, slower: this.#slower } : { order, slower: order.slice(1) };
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
