/**
 * One {@link Tier} per profile: the object that owns that profile's rules.
 * Every read and write of a profile goes through its tier, whoever asks (the
 * tiered reader and writer, `exists`, prefetch, cleanup, the CLI), so the time
 * limit, retries, per-key write order, TTL metadata, quota, breaker and
 * counters hold on every path by construction.
 *
 * @module
 */
import { storedSize } from "../codec.js";
import { isCallerError, NotFoundError, UnsupportedError } from "../errors.js";
import { validateKey, validatePrefix } from "../keys/index.js";
import type { StoredValue } from "../operators/types.js";
import { checkMs } from "./options.js";
import { TierBase } from "./tier-base.js";
import { downError } from "./tier-state.js";
import type * as T from "./types.js";

export type { TierContext } from "./tier-base.js";

export class Tier extends TierBase {
  /** @internal Reads the tier's TTL marker (and sidecars) at start-up. */
  init(): Promise<void> {
    return this.expiry.init();
  }

  // ---- The handle: what users and the CLI call. Each honours TTL, the call policy and the counters.

  /**
   * The stored bytes of `key` as they are (a `ZSTD` frame or the raw JSON).
   * @throws NotFoundError when absent or expired.
   */
  async read(key: string): Promise<Uint8Array> {
    const entry = await this.readEntry(key);
    if (!entry) throw this.#notFound(key);
    return entry.data;
  }

  /** The stored bytes of `key` with their expiry, or `undefined` when absent or expired. */
  async readEntry(key: string): Promise<T.TierEntry | undefined> {
    validateKey(key, this.name);
    // Where the expiry must be read (a sidecar), it is read along with the value, not after it.
    const at = this.expiresAt(key);
    if (at instanceof Promise) at.catch(() => {}); // awaited below, unless the value's read fails
    let data: Uint8Array;
    try {
      data = await this.#counted(this.call("read", key, () => this.op.read(key)));
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    const expiresAt = await this.#counted(Promise.resolve(at));
    if (this.#expired(key, expiresAt)) return undefined;
    this.counters.bytesRead += data.length;
    return { data, expiresAt };
  }

  /**
   * Writes stored bytes (or JSON text) under `key`, with an expiry from `options` or the profile's
   * `ttl_ms`. A write-back of `key` in flight from an earlier read will not land over it.
   */
  async write(key: string, data: Uint8Array | string, options: T.ExpiryOptions = {}): Promise<void> {
    validateKey(key, this.name);
    const expiresAt = this.expiryOf(options, Date.now(), key);
    this.ctx.fence.begin(key);
    try {
      await this.store("write", key, data, storedSize(data), expiresAt);
    } finally {
      this.ctx.fence.end(key);
    }
  }

  /** Deletes `key` (and its TTL metadata); deleting a missing key succeeds. */
  async delete(key: string): Promise<void> {
    validateKey(key, this.name);
    this.ctx.fence.begin(key);
    try {
      await this.remove(key);
    } finally {
      this.ctx.fence.end(key);
    }
  }

  /** Whether the tier holds an unexpired value under `key`. */
  async exists(key: string): Promise<boolean> {
    validateKey(key, this.name);
    if (!(await this.#counted(this.call("exists", key, () => this.op.exists(key))))) return false;
    return !this.#expired(key, await this.#counted(Promise.resolve(this.expiresAt(key))));
  }

  /**
   * Size, modification time (where the backend keeps one) and expiry of `key`.
   * @throws NotFoundError when absent or expired.
   */
  async stat(key: string): Promise<T.TierStat> {
    validateKey(key, this.name);
    const st = await this.#counted(this.call("stat", key, () => this.op.stat(key)));
    const expiresAt = await this.#counted(Promise.resolve(this.expiresAt(key)));
    if (this.#expired(key, expiresAt)) throw this.#notFound(key);
    return expiresAt === undefined ? st : { ...st, expiresAt };
  }

  /**
   * Every key starting with `prefix`, sorted, without the library's reserved keys and expired values.
   * @throws UnsupportedError where the backend cannot list (`capabilities.list` is false).
   */
  async list(prefix = ""): Promise<string[]> {
    validatePrefix(prefix, this.name);
    if (!this.op.capabilities.list) {
      throw new UnsupportedError(`profile "${this.name}" (${this.scheme}) cannot list its keys`, {
        profile: this.name,
      });
    }
    const keys = await this.#counted(this.call("list", prefix, () => this.op.list(prefix)));
    return this.expiry.visible(keys);
  }

  /** Whether reads may go to this tier now (its circuit breaker is closed or due a trial). */
  available(): boolean {
    return this.ctx.monitor.available(this.name);
  }

  /** Reports the latency (µs) of a synchronous read to live ranking. */
  observe(us: number): void {
    this.ctx.monitor.success(this.name, us);
  }

  /** One backend call under the time limit and retries (fails at once while down); `sampled`: its latency ranks the tier. */
  call<T>(what: string, key: string, fn: () => Promise<T>, sampled = true): Promise<T> {
    if (this.keeper.down) return Promise.reject(downError(this.name, this.keeper.down, key));
    return this.calls.call(what, key, fn, sampled);
  }

  /** As {@link call}, run after every earlier queued write of `key`. */
  queued<T>(what: string, key: string, fn: () => Promise<T>): Promise<T> {
    if (this.keeper.down) return Promise.reject(downError(this.name, this.keeper.down, key));
    return this.calls.queued(what, key, fn);
  }

  /**
   * Whether a synchronous call for `key` is as good as the general path: no
   * time limit, no retries, no TTL metadata, nothing queued for the key. The
   * one rule the synchronous read and write paths share.
   */
  syncSafe(key: string): boolean {
    return (
      this.keeper.down === undefined &&
      this.timeoutMs === undefined &&
      this.retries === 0 &&
      this.defaultTtlMs === undefined &&
      !this.expiry.active &&
      !this.calls.hasQueued(key) &&
      !(this.shared && this.ctx.changes)
    );
  }

  /** Whether the backend answers reads synchronously. */
  get readsSync(): boolean {
    return this.op.readSync !== undefined || this.op.readStoredSync !== undefined;
  }

  /** A synchronous read in the form the store keeps the value (text where it can); no TTL check. */
  readStoredSync(key: string): StoredValue | undefined {
    const op = this.op;
    if (op.readStoredSync) return op.readStoredSync(key);
    const data = op.readSync!(key);
    return data === undefined ? undefined : { data, size: data.length };
  }

  /** A shared tier's `key` (`null`: every key) changed elsewhere: its expiry is read again (see TierExpiry). */
  changedElsewhere(key: string | null): void {
    this.expiry.changedElsewhere(key);
  }

  /** Expiry of `key` here: a number, `undefined` (none), or a promise when it must be read. */
  expiresAt(key: string): number | undefined | Promise<number | undefined> {
    return this.expiry.expiresAt(key);
  }

  /** The expiry a write with `options` gets here: `expiresAt`, else now + (`ttlMs` or the profile's `ttl_ms`). */
  expiryOf(options: T.ExpiryOptions, now: number, key?: string): number | undefined {
    if (options.expiresAt !== undefined) return checkMs(options.expiresAt, "expiresAt", "positive", key);
    const ttl = options.ttlMs === undefined ? this.defaultTtlMs : checkMs(options.ttlMs, "ttlMs", "positive", key);
    return ttl === undefined ? undefined : now + ttl;
  }

  /** A synchronous write (see {@link syncSafe}); throws as the backend does. */
  writeSync(key: string, data: Uint8Array | string, size: number, owned: boolean): void {
    try {
      this.opNow.writeSync!(key, data, owned);
    } catch (err) {
      if (!isCallerError(err)) {
        this.counters.failures++;
        // Not writable now is not a reason to take the tier out of the read path.
        if (!this.keeper.writeFailed(err, this.breaker())) this.ctx.monitor.failure(this.name);
        else this.ctx.watcher?.readOnly(this);
      }
      throw err;
    }
    if (this.keeper.base.kind === "read-only") this.keeper.wrote(this.breaker());
    this.counters.bytesWritten += size;
  }

  /**
   * A write queued behind earlier writes of `key`, with its TTL metadata; counted. With a coherence bus, a
   * shared tier's write resolves once other instances will hear of it; a local tier's failed write drops its copy.
   */
  async store(what: string, key: string, data: Uint8Array | string, size: number, at: number | undefined) {
    try {
      await this.#counted(this.queued(what, key, () => this.writeNow(key, data, at)));
    } catch (err) {
      if (!this.shared && !isCallerError(err)) this.ctx.changes?.localFailed(this.name, key);
      throw err;
    }
    this.counters.bytesWritten += size;
    if (this.shared) await this.ctx.changes?.changed("save", key, this.name);
  }

  /** A delete queued behind earlier writes of `key`, with its TTL metadata; counted (announced as {@link store}). */
  async remove(key: string): Promise<void> {
    const del = () => (this.expiry.needsMeta(key, undefined) ? this.expiry.delete(key) : this.op.delete(key));
    await this.#counted(this.queued("delete", key, del));
    if (this.shared) await this.ctx.changes?.changed("delete", key, this.name);
  }

  /** A write with its TTL metadata, right now (inside a queued task: a write-back); a read-only reason sets the state. */
  writeNow(key: string, data: Uint8Array | string, at: number | undefined): Promise<void> {
    const p = this.expiry.needsMeta(key, at) ? this.expiry.write(key, data, at) : this.opNow.write(key, data);
    return p.then(
      () => this.keeper.wrote(this.breaker()),
      (err) => {
        if (!isCallerError(err) && this.keeper.writeFailed(err, this.breaker())) this.ctx.watcher?.readOnly(this);
        throw err;
      },
    );
  }

  /** Known keys whose TTL has passed (cleanup). */
  expiredKeys(now: number): string[] {
    return this.expiry.expired(now);
  }

  /** Whether every TTL of this tier is known (so expired values can be enumerated). */
  get expiryComplete(): boolean {
    return this.expiry.complete;
  }

  /** Removes an expired value in the background, unless it was rewritten meanwhile. */
  purge(key: string): void {
    const failed = (err: unknown) => this.ctx.logger.debug({ profile: this.name, key, err }, "purge failed");
    this.expiry.purge(key, (task) => this.queued("purge", key, task), failed);
  }

  /** Resolves when the background purges started so far are done. */
  flush(): Promise<void> {
    return this.expiry.flush();
  }

  #expired(key: string, at: number | undefined): boolean {
    if (at === undefined || at > Date.now()) return false;
    this.purge(key);
    return true;
  }

  #notFound(key: string): NotFoundError {
    return new NotFoundError(`"${key}" not found in profile "${this.name}"`, { profile: this.name, key });
  }

  /** Counts a failure of `p` (not an absence, not the caller's error) against this tier. */
  #counted<T>(p: Promise<T>): Promise<T> {
    return p.catch((err) => {
      if (!(err instanceof NotFoundError) && !isCallerError(err)) this.counters.failures++;
      throw err;
    });
  }
}
