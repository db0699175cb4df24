/**
 * How one backend call is made for a profile: under its time limit, with its
 * retries, measured for live ranking, and (writes) queued per key so every
 * profile applies a key's writes in call order.
 *
 * @module
 */

import { performance } from "node:perf_hooks";
import { KeyedQueue } from "./_keyed-queue.js";
import type { LiveRanking } from "./_live-ranking.js";
import { withTimeout } from "./_profiles.js";
import { isCallerError } from "./_tiered-read.js";
import type { ProfileEntry } from "./device-storage.js";
import { BackendError, NotFoundError, TimeoutError } from "./errors.js";
import type { Logger } from "./logger.js";

/** Consecutive timeouts after which a profile's client is reset. */
const RESET_AFTER_TIMEOUTS = 3;

export interface ProfileCallsDeps {
  logger: Logger;
  live: LiveRanking<ProfileEntry> | undefined;
  /** Whether the storage is closed (no retries, no late re-applies after that). */
  closed(): boolean;
  /** Counts a failure of a background call nobody awaits (a late write re-applied). */
  failed(profile: string): void;
}

export class ProfileCalls {
  readonly #d: ProfileCallsDeps;
  readonly #queue = new KeyedQueue();
  /** Keys of a profile with a timed-out write still in flight, and the newest write started since. */
  readonly #late = new Map<string, { stuck: number; newest: (() => Promise<unknown>) | undefined }>();
  /** Consecutive timeouts per profile (reset of the client after a few). */
  readonly #timeouts = new Map<string, number>();

  constructor(deps: ProfileCallsDeps) {
    this.#d = deps;
  }

  /** One backend call, retried on transient errors, under the profile's time limit. */
  call<T>(entry: ProfileEntry, what: string, key: string, fn: () => Promise<T>): Promise<T> {
    const live = this.#d.live;
    const t0 = live ? performance.now() : 0;
    let p = entry.retries > 0 ? this.#retrying(entry, what, key, fn) : fn();
    if (entry.timeoutMs !== undefined) p = this.#limit(p, entry, what, key);
    if (!live) return p;
    return p.then(
      (v) => {
        live.success(entry.name, (performance.now() - t0) * 1000);
        return v;
      },
      (err) => {
        // Absence is an answer, and a bad key is the caller's fault: neither counts against the profile.
        if (err instanceof NotFoundError || isCallerError(err))
          live.success(entry.name, (performance.now() - t0) * 1000);
        else live.failure(entry.name);
        throw err;
      },
    );
  }

  /** Whether a write of (profile, key) is queued or running. (No string is built when nothing is queued.) */
  hasQueued(profile: string, key: string): boolean {
    return this.#queue.size > 0 && this.#queue.has(queueKey(profile, key));
  }

  /**
   * A write (or write-back) of `key` in one profile: queued behind earlier
   * writes of the same key there, so every profile applies them in call order.
   * The time limit covers the wait in the queue. A call that times out gives
   * up its place (a backend stuck for 30 s must not block the key that long),
   * and if it lands after all, the newest write started meanwhile is applied
   * once more behind it, so the last call still wins.
   */
  queued<T>(entry: ProfileEntry, what: string, key: string, fn: () => Promise<T>): Promise<T> {
    const base = entry.retries > 0 ? () => this.#retrying(entry, what, key, fn) : fn;
    const qk = queueKey(entry.name, key);
    const task = entry.timeoutMs === undefined ? base : () => this.#holdAtMost(entry, what, key, qk, base);
    let p = this.#queue.run(qk, task);
    if (entry.timeoutMs !== undefined) p = this.#limit(p, entry, what, key);
    const live = this.#d.live;
    if (!live) return p;
    return p.catch((err) => {
      if (!isCallerError(err)) live.failure(entry.name);
      throw err;
    });
  }

  #holdAtMost<T>(entry: ProfileEntry, what: string, key: string, qk: string, task: () => Promise<T>): Promise<T> {
    const late = this.#late.get(qk);
    if (late) late.newest = task as () => Promise<unknown>;
    const call = task();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        let l = this.#late.get(qk);
        if (!l) {
          l = { stuck: 0, newest: undefined };
          this.#late.set(qk, l);
        }
        const record = l;
        record.stuck++;
        const settled = () => {
          record.stuck--;
          const redo = record.newest;
          record.newest = undefined;
          if (record.stuck === 0 && this.#late.get(qk) === record) this.#late.delete(qk);
          if (!redo || this.#d.closed()) return;
          this.#d.logger.debug(
            { profile: entry.name, key },
            "a timed-out write landed late; applying the newest write again",
          );
          this.#queue
            .run(qk, () => this.#holdAtMost(entry, what, key, qk, redo))
            .catch((err) => {
              this.#d.failed(entry.name);
              this.#d.logger.warn(
                { profile: entry.name, key, err },
                "re-applying the newest write after a late one failed",
              );
            });
        };
        call.then(settled, settled);
        reject(
          new TimeoutError(`${what} of "${key}" in profile "${entry.name}" timed out after ${entry.timeoutMs} ms`, {
            profile: entry.name,
            key,
          }),
        );
      }, entry.timeoutMs);
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

  #limit<T>(p: Promise<T>, entry: ProfileEntry, what: string, key: string): Promise<T> {
    return withTimeout(p, entry.timeoutMs!, `${what} of "${key}" in profile "${entry.name}"`, entry.name, key).then(
      (v) => {
        this.#timeouts.delete(entry.name);
        return v;
      },
      (err) => {
        if (err instanceof TimeoutError) this.#timedOut(entry);
        throw err;
      },
    );
  }

  /** After repeated timeouts a network client is reset: some stay wedged after an outage. */
  #timedOut(entry: ProfileEntry): void {
    const n = (this.#timeouts.get(entry.name) ?? 0) + 1;
    if (n < RESET_AFTER_TIMEOUTS || !entry.op.reset) {
      this.#timeouts.set(entry.name, n);
      return;
    }
    this.#timeouts.delete(entry.name);
    this.#d.logger.info(
      { profile: entry.name, timeouts: n },
      "resetting the backend's connections after repeated timeouts",
    );
    entry.op.reset();
  }

  /** Retries transient backend errors with exponential backoff and jitter (50 ms, 100 ms, ... up to 2 s). */
  async #retrying<T>(entry: ProfileEntry, what: string, key: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= entry.retries || !(err instanceof BackendError) || !err.transient || this.#d.closed()) throw err;
        const delay = Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2);
        this.#d.logger.debug(
          { profile: entry.name, key, attempt: attempt + 1, delayMs: Math.round(delay), err },
          `retrying ${what}`,
        );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}

function queueKey(profile: string, key: string): string {
  return `${profile}\0${key}`;
}
