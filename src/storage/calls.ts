/**
 * How one backend call is made for a tier: under its time limit, with its
 * retries, watched by live ranking, and (writes) queued per key so the tier
 * applies a key's writes in call order. One {@link CallPolicy} per tier.
 *
 * @module
 */

import { performance } from "node:perf_hooks";
import { BackendError, isCallerError, NotFoundError, readOnlyReason, TimeoutError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Operator } from "../operators/types.js";
import { KeyedQueue } from "./keyed-queue.js";
import type { Lifecycle, ProfileStats, TierMonitor } from "./types.js";

/** Consecutive timeouts after which a tier's client is reset. */
const RESET_AFTER_TIMEOUTS = 3;
/** Time limits a shared tier's timed-out write may hang on (holding up the key's next writes) before its client is reset. */
const STUCK_PERIODS = 3;
/** Backoff of the first retry, doubled each time up to {@link MAX_BACKOFF_MS}. */
const FIRST_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2000;

/** What a call policy needs to know of its tier. */
export interface CallTarget {
  readonly name: string;
  readonly op: Operator;
  /** Time limit of each call in ms, if any. */
  readonly timeoutMs: number | undefined;
  /** Retries of a call that failed with a transient error. */
  readonly retries: number;
  /** Other instances write to it: a write of this one is never applied a second time (see {@link CallPolicy.queued}). */
  readonly shared: boolean;
}

/** The collaborators of a {@link CallPolicy}. */
export interface CallContext {
  readonly logger: Logger;
  /** Live ranking and the breaker; undefined when live ranking is off. */
  readonly monitor: TierMonitor | undefined;
  readonly lifecycle: Lifecycle;
  /** The tier's counters (a late write re-applied in the background counts its failure here). */
  readonly stats: ProfileStats;
}

export class CallPolicy {
  readonly #t: CallTarget;
  readonly #c: CallContext;
  readonly #queue = new KeyedQueue();
  /** Keys with a timed-out write still in flight, and the newest write started since. */
  readonly #late = new Map<string, { stuck: number; newest: (() => Promise<unknown>) | undefined }>();
  /** Consecutive timeouts (the client is reset after a few). */
  #timeouts = 0;

  constructor(target: CallTarget, context: CallContext) {
    this.#t = target;
    this.#c = context;
  }

  /**
   * One backend call, retried on transient errors, under the tier's time limit. Its latency
   * goes to live ranking unless `sampled` is false (a batch of many keys says nothing about the
   * latency of a read; its failure still counts against the tier).
   */
  call<T>(what: string, key: string, fn: () => Promise<T>, sampled = true): Promise<T> {
    const monitor = this.#c.monitor;
    const t0 = monitor ? performance.now() : 0;
    let p = this.#t.retries > 0 ? this.#retrying(what, key, fn) : fn();
    if (this.#t.timeoutMs !== undefined) p = this.#limit(p, what, key);
    if (!monitor) return p;
    const name = this.#t.name;
    return p.then(
      (v) => {
        if (sampled) monitor.success(name, (performance.now() - t0) * 1000);
        return v;
      },
      (err) => {
        // Absence is an answer, and a bad key is the caller's fault: neither counts against the tier.
        if (err instanceof NotFoundError || isCallerError(err)) monitor.success(name, (performance.now() - t0) * 1000);
        else monitor.failure(name);
        throw err;
      },
    );
  }

  /** Whether a write of `key` is queued or running. (No lookup when nothing is queued.) */
  hasQueued(key: string): boolean {
    return this.#queue.size > 0 && this.#queue.has(key);
  }

  /**
   * A write (or write-back, or purge) of `key`: queued behind earlier writes
   * of the same key, so the tier applies them in call order. The time limit
   * covers the wait in the queue.
   *
   * A call that times out may still land. On a tier only this instance writes,
   * it gives up its place (a backend stuck for 30 s must not block the key that
   * long), and if it lands after all, the newest write started meanwhile is
   * applied once more behind it, so the last call still wins. On a shared tier
   * that second application could overwrite another instance's newer write
   * (resurrect a value replaced long ago), so instead the next write of the key
   * waits until the timed-out one has really ended (the client is reset if it
   * hangs on), and a write whose time ran out while it waited is never sent.
   */
  queued<T>(what: string, key: string, fn: () => Promise<T>): Promise<T> {
    const base = this.#t.retries > 0 ? () => this.#retrying(what, key, fn) : fn;
    let p: Promise<T>;
    if (this.#t.timeoutMs === undefined) p = this.#queue.run(key, base);
    else if (this.#t.shared) p = this.#inTurn(what, key, base);
    else
      p = this.#limit(
        this.#queue.run(key, () => this.#holdAtMost(what, key, base)),
        what,
        key,
      );
    const monitor = this.#c.monitor;
    if (!monitor) return p;
    return p.catch((err) => {
      // A write refused for a read-only reason says nothing about reads: the breaker is for the read path.
      if (!isCallerError(err) && readOnlyReason(err) === undefined) monitor.failure(this.#t.name);
      throw err;
    });
  }

  /** A shared tier's queued write: see {@link queued}. */
  #inTurn<T>(what: string, key: string, task: () => Promise<T>): Promise<T> {
    const { timeoutMs, op } = this.#t;
    const limit = timeoutMs!;
    // Set by a timer made before the time limit's own, so it is set before any task could start after it.
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
    }, limit);
    timer.unref?.();
    const turn = this.#queue.run(key, () => {
      // Its time ran out in the queue: it was never sent, so it failed for certain (and must not land later).
      if (expired) return Promise.reject(new TimeoutError("never sent"));
      const call = task();
      // A call that hangs on keeps the key's later writes waiting: the client is reset, which ends it.
      const stuck = setTimeout(() => op.reset?.(), STUCK_PERIODS * limit);
      stuck.unref?.();
      return call.finally(() => clearTimeout(stuck));
    });
    const stop = () => clearTimeout(timer);
    turn.then(stop, stop);
    return this.#limit(turn, what, key);
  }

  #holdAtMost<T>(what: string, key: string, task: () => Promise<T>): Promise<T> {
    const late = this.#late.get(key);
    if (late) late.newest = task as () => Promise<unknown>;
    const call = task();
    const { name, timeoutMs } = this.#t;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        let l = this.#late.get(key);
        if (!l) {
          l = { stuck: 0, newest: undefined };
          this.#late.set(key, l);
        }
        const record = l;
        record.stuck++;
        const settled = () => {
          record.stuck--;
          const redo = record.newest;
          record.newest = undefined;
          if (record.stuck === 0 && this.#late.get(key) === record) this.#late.delete(key);
          if (!redo || this.#c.lifecycle.closed) return;
          this.#c.logger.debug(
            { profile: name, key },
            "a timed-out write landed late; applying the newest write again",
          );
          this.#queue
            .run(key, () => this.#holdAtMost(what, key, redo))
            .catch((err) => {
              this.#c.stats.failures++;
              this.#c.logger.warn({ profile: name, key, err }, "re-applying the newest write after a late one failed");
            });
        };
        call.then(settled, settled);
        reject(
          new TimeoutError(`${what} of "${key}" in profile "${name}" timed out after ${timeoutMs} ms`, {
            profile: name,
            key,
          }),
        );
      }, timeoutMs);
      timer.unref?.();
      call.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  #limit<T>(p: Promise<T>, what: string, key: string): Promise<T> {
    const { name, timeoutMs } = this.#t;
    return withTimeout(p, timeoutMs!, `${what} of "${key}" in profile "${name}"`, name, key).then(
      (v) => {
        this.#timeouts = 0;
        return v;
      },
      (err) => {
        if (err instanceof TimeoutError) this.#timedOut();
        throw err;
      },
    );
  }

  /** After repeated timeouts a network client is reset: some stay wedged after an outage. */
  #timedOut(): void {
    const op = this.#t.op;
    if (++this.#timeouts < RESET_AFTER_TIMEOUTS || !op.reset) return;
    this.#c.logger.info(
      { profile: this.#t.name, timeouts: this.#timeouts },
      "resetting the backend's connections after repeated timeouts",
    );
    this.#timeouts = 0;
    op.reset();
  }

  /** Retries transient backend errors with exponential backoff and jitter (50 ms, 100 ms, ... up to 2 s). */
  async #retrying<T>(what: string, key: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (
          attempt >= this.#t.retries ||
          !(err instanceof BackendError) ||
          !err.transient ||
          this.#c.lifecycle.closed
        ) {
          throw err;
        }
        const delay = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** attempt) * (0.5 + Math.random() / 2);
        this.#c.logger.debug(
          { profile: this.#t.name, key, attempt: attempt + 1, delayMs: Math.round(delay), err },
          `retrying ${what}`,
        );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}

/** Rejects with a `TimeoutError` if `p` does not settle within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string, profile?: string, key?: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`, { profile, key })), ms);
    timer.unref?.();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
