/**
 * What every {@link Tier} is before it does anything: its profile's identity
 * and options, the operator serving it (replaced when it rejoins), its state,
 * its rank and its counters. `tier.ts` adds what it does (the handle, calls,
 * writes); the split keeps each file small.
 *
 * @module
 */
import type { Logger } from "../logger.js";
import type { Operator, OperatorCapabilities } from "../operators/types.js";
import { CallPolicy } from "./calls.js";
import { TierExpiry } from "./expiry.js";
import type { WriteFence } from "./fence.js";
import { emptyStats, StateKeeper } from "./tier-state.js";
import type * as T from "./types.js";

/** The storage-wide collaborators of every tier. */
export interface TierContext {
  readonly logger: Logger;
  readonly monitor: T.TierMonitor;
  readonly lifecycle: T.Lifecycle;
  readonly fence: WriteFence;
  /** Told when the tier's breaker opens or closes (its trial is scheduled), and when a write finds it read-only. */
  readonly watcher?: { breakerChanged(tier: TierBase): void; readOnly(tier: TierBase): void };
  /** Told of every save and delete that reached a shared tier (the coherence bus publishes them). */
  readonly changes?: T.ChangeSink | undefined;
}

export abstract class TierBase {
  /** Profile name from the settings. */
  readonly name: string;
  /** Its scheme (`type`). */
  readonly scheme: string;
  /** Time limit of each call in ms, if any (`timeout_ms`; remote schemes default to 10 s). */
  readonly timeoutMs: number | undefined;
  /** Retries of a call that failed with a transient error (`retries`). */
  readonly retries: number;
  /** Default time to live of values saved here (`ttl_ms`), if any. */
  readonly defaultTtlMs: number | undefined;
  /** Whether the rank is fixed by a `speed` override (live ranking never moves it). */
  readonly fixedRank: boolean;
  /** Other instances write to it (the `shared` option); its changes go out on the coherence bus. */
  readonly shared: boolean;
  /** @internal Counters, kept by the tier and by the reader and writer. Read them with {@link stats}. */
  readonly counters: T.ProfileStats = emptyStats();
  protected readonly calls: CallPolicy;
  protected opNow: Operator;
  /** The operator as opened (`opNow` may wrap it: see {@link watched}). */
  protected raw: Operator;
  protected expiry: TierExpiry;
  /** The probe's median read in µs and its reserved key (measured again when the tier rejoins). */
  protected probe: { latencyUs: number; probeKey: string };
  protected readonly fixedRankUs: number | undefined;
  protected readonly keeper: StateKeeper;
  protected readonly ctx: TierContext;

  constructor(spec: T.TierSpec, context: TierContext, live: boolean) {
    this.name = spec.name;
    this.scheme = spec.scheme;
    this.opNow = spec.op;
    this.timeoutMs = spec.timeoutMs;
    this.retries = spec.retries;
    this.defaultTtlMs = spec.defaultTtlMs;
    this.probe = { latencyUs: spec.probeLatencyUs, probeKey: spec.probeKey };
    this.fixedRankUs = spec.fixedRankUs;
    this.fixedRank = spec.fixedRankUs !== undefined;
    this.shared = spec.shared === true;
    this.keeper = new StateKeeper(spec.name, spec.state, spec.readOnly === true, context.logger);
    this.ctx = context;
    this.raw = spec.op;
    this.opNow = this.watched(spec.op);
    this.expiry = new TierExpiry(this.opNow);
    const monitor = live ? context.monitor : undefined;
    this.calls = new CallPolicy(this as TierBase & { shared: boolean }, {
      logger: context.logger,
      monitor,
      lifecycle: context.lifecycle,
      stats: this.counters,
    });
  }

  /** The operator serving it (raw: no time limit, TTL or counters; use the tier's methods). */
  get op(): Operator {
    return this.opNow;
  }

  /** The reserved key the start-up probe used (and health checks ask for). */
  get probeKey(): string {
    return this.probe.probeKey;
  }

  /** The start-up probe's median read in µs (measured again when the tier rejoins). */
  get probeLatencyUs(): number {
    return this.probe.latencyUs;
  }

  /** What ranks it at start: the fixed `speed` override, else {@link probeLatencyUs}. Lower is faster. */
  get rankLatencyUs(): number {
    return this.fixedRankUs ?? this.probe.latencyUs;
  }

  /** Whether it serves now: `ready`, `read-only` (why) or `down` (unreachable or breaker open: why, next retry). */
  get state(): T.TierState {
    return this.keeper.now(this.breaker());
  }

  /** Whether the `read_only` option is set: saves skip this tier, and the CLI writes to it only when forced. */
  get readOnly(): boolean {
    return this.keeper.configured;
  }

  /** @internal Takes the tier out of service until {@link rejoin}: calls fail at once, saying why. */
  markDown(reason: string, nextRetryAt: number): void {
    this.keeper.markDown(reason, nextRetryAt);
  }

  /** @internal The tier answered again: `op` serves it (a new one if it was reopened), ranked by `probeLatencyUs`. */
  async rejoin(op: Operator, probe: { latencyUs: number; probeKey: string }, state: T.TierState): Promise<void> {
    const old = this.raw;
    if (op !== old) {
      this.raw = op;
      this.opNow = this.watched(op);
      this.expiry = new TierExpiry(this.opNow);
      await old.close().catch(() => {});
    }
    await this.expiry.init();
    this.probe = probe;
    this.keeper.up(state, this.breaker());
    if (!this.shared) this.ctx.changes?.rejoined(this.name);
  }

  /** @internal The breaker opened or closed: announced as a state change. */
  breakerChanged(): void {
    this.keeper.announce(this.state);
    this.ctx.watcher?.breakerChanged(this);
  }

  /** @deprecated The rank value; use {@link rankLatencyUs}. */
  get speed(): number {
    return this.rankLatencyUs;
  }

  /** @deprecated The measured probe latency; use {@link probeLatencyUs}. */
  get measuredSpeed(): number {
    return this.probeLatencyUs;
  }

  /** What the backend can do. */
  get capabilities(): OperatorCapabilities {
    return this.op.capabilities;
  }

  /** Counters, with quota usage where the profile has a quota. */
  stats(): T.ProfileStats {
    const usage = this.opNow.usage?.();
    return { ...this.counters, shared: this.shared, state: this.state, ...(usage ? { usage } : {}) };
  }

  /** A shared tier's operator as the coherence bus watches it (its own writes expected where the server reports). */
  protected watched(op: Operator): Operator {
    return this.shared && this.ctx.changes ? this.ctx.changes.watch(this.name, op) : op;
  }

  protected breaker(): number {
    return this.ctx.monitor.breakerOpenUntil(this.name);
  }

  /** The server answered on another connection (a listener back after a partition): an open breaker tries now. */
  serverAnswered(): void {
    this.ctx.monitor.retrySoon?.(this.name);
  }
}
