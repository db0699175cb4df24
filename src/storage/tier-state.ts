/**
 * A tier's state (`ready`, `read-only`, `down`): the one place it changes.
 * A change is logged once (warn when a tier degrades, info when it is back)
 * and published on the `state` diagnostics channel.
 *
 * @module
 */
import { BackendError, type ReadOnlyReason, readOnlyReason } from "../errors.js";
import type { Logger } from "../logger.js";
import type { ChangeFeedSource, Operator, OperatorCapabilities } from "../operators/types.js";
import { stateChannel } from "./channels.js";
import type { ProfileStats, TierState } from "./types.js";

/** The state of a tier that reads and writes. */
export const READY: TierState = Object.freeze({ kind: "ready" });

/** What a profile that cannot be opened yet claims it can do: durable, until it says otherwise (the safe answer). */
const UNKNOWN_CAPABILITIES: OperatorCapabilities = Object.freeze({
  list: false,
  lastModified: false,
  durable: true,
  shared: true,
  syncRead: false,
});

/**
 * Keeps what a tier's writes found (`ready`, or `read-only` with the reason)
 * and announces each change of the tier's state (which `down` overrides).
 */
export class StateKeeper {
  /** Ready or read-only, as the last write (or the probe) found. */
  #base: TierState;
  /** The state last announced. */
  #announced: TierState;
  /** The down state while the tier is down (checked first on every call: no lookup when undefined). */
  down: (TierState & { kind: "down" }) | undefined;
  readonly #profile: string;
  readonly #logger: Logger;
  /** Set by the `read_only` option: stays `read-only` whatever writes do. */
  readonly configured: boolean;

  constructor(profile: string, initial: TierState, configured: boolean, logger: Logger) {
    this.#profile = profile;
    this.#logger = logger;
    this.configured = configured;
    const base = configured ? { kind: "read-only" as const, reason: "configured" as const } : initial;
    this.#base = base.kind === "down" ? READY : Object.freeze(base);
    this.#announced = initial.kind === "down" ? initial : this.#base;
    this.down = initial.kind === "down" ? initial : undefined;
  }

  /** The whole state, given when the tier's breaker allows its next trial (0: closed). */
  now(breakerOpenUntil: number): TierState {
    if (this.down) return this.down;
    if (breakerOpenUntil === 0) return this.#base;
    return { kind: "down", reason: "circuit open after repeated failures", nextRetryAt: breakerOpenUntil };
  }

  /** Takes the tier out of service until {@link up}. */
  markDown(reason: string, nextRetryAt: number): void {
    this.down = Object.freeze({ kind: "down", reason, nextRetryAt });
    this.announce(this.down);
  }

  /** The tier answered again: `state` (ready or read-only) as its probe found. */
  up(state: TierState, breakerOpenUntil: number): void {
    this.down = undefined;
    this.base = state;
    this.announce(this.now(breakerOpenUntil));
  }

  /** A write succeeded: a tier found read-only is ready again (one configured read-only stays so). */
  wrote(breakerOpenUntil: number): void {
    if (this.#base.kind !== "read-only" || this.configured) return;
    this.#base = READY;
    this.announce(this.now(breakerOpenUntil));
  }

  /** Ready or read-only (what the tier is when it is not down). */
  get base(): TierState {
    return this.#base;
  }

  set base(next: TierState) {
    if (!this.configured && next.kind !== "down") this.#base = next;
  }

  /** Announces `now` (the tier's whole state) if it differs from the last one announced. */
  announce(now: TierState): void {
    const from = this.#announced;
    this.#announced = now;
    // A new retry time for the same trouble is not a change worth announcing.
    if (sameState(from, now)) return;
    const log = { profile: this.#profile, from: describeState(from), to: describeState(now) };
    if (now.kind === "ready") this.#logger.info(log, "storage profile is ready again");
    else this.#logger.warn(log, `storage profile is ${now.kind}`);
    if (stateChannel.hasSubscribers) stateChannel.publish({ profile: this.#profile, from, to: now });
  }

  /** What a failed write says: a read-only reason, if it has one (then the tier is `read-only`). */
  writeFailed(err: unknown, breakerOpenUntil: number): ReadOnlyReason | undefined {
    const reason = readOnlyReason(err);
    if (!reason) return undefined;
    this.base = Object.freeze({ kind: "read-only", reason });
    this.announce(this.now(breakerOpenUntil));
    return reason;
  }
}

/** Counters of a new tier, all zero. */
export function emptyStats(): ProfileStats {
  return {
    hits: 0,
    misses: 0,
    fallbacks: 0,
    writeBacks: 0,
    writeBacksSkipped: 0,
    failures: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };
}

/** One line for logs and the CLI: `ready`, `read-only (disk full)`, `down (reason; next retry in 2 s)`. */
export function describeState(state: TierState, now = Date.now()): string {
  if (state.kind === "ready") return "ready";
  if (state.kind === "read-only") return `read-only (${state.reason})`;
  const inMs = Math.max(0, state.nextRetryAt - now);
  return `down (${state.reason}; next retry in ${inMs < 1000 ? `${inMs} ms` : `${Math.round(inMs / 1000)} s`})`;
}

function sameState(a: TierState, b: TierState): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "read-only" && b.kind === "read-only") return a.reason === b.reason;
  if (a.kind === "down" && b.kind === "down") return a.reason === b.reason;
  return true;
}

/** The error of a call to a tier that is down: fast, without touching the backend. */
export function downError(profile: string, state: TierState & { kind: "down" }, key?: string): BackendError {
  return new BackendError(`profile "${profile}" is ${describeState(state)}`, { profile, key, transient: true });
}

/**
 * The operator of a profile that could not be opened yet (its server did not
 * answer at start-up): every call fails with `error`. Replaced by the real
 * operator when the profile rejoins.
 */
export function unopenedOperator(scheme: string, error: Error, changeFeed?: ChangeFeedSource): Operator {
  const fail = () => Promise.reject(error);
  return {
    scheme,
    capabilities: UNKNOWN_CAPABILITIES,
    // Known from the options: the coherence bus listens for the server's reports before it answers.
    ...(changeFeed && { changeFeed }),
    read: fail,
    write: fail,
    stat: fail,
    delete: fail,
    exists: fail,
    list: fail,
    close: () => Promise.resolve(),
  };
}
