/**
 * The write fence: which keys have a save or delete in progress, and which
 * fallback reads are in flight for a key. A write that starts marks every
 * such read stale, so its write-back never lands over the newer value; a read
 * that starts while a write is in progress is stale from the start. Shared by
 * the tiered reader, the tiered writer and every tier's own writes.
 *
 * @module
 */

/** A read whose write-back must be dropped once a newer write of its key starts. */
export interface Fenced {
  stale: boolean;
}

/** Many keys read together (a revalidation batch): which of them a write has made stale. */
export interface FencedBatch {
  /** The keys of the batch whose read is stale. */
  readonly stale: Set<string>;
  /** Stops watching the batch. */
  release(): void;
}

export class WriteFence {
  /** Keys with a save or delete in progress (count of writers). */
  readonly #writing = new Map<string, number>();
  /** Fallback reads in flight (or writing back), per key. */
  readonly #reads = new Map<string, Set<Fenced>>();
  /** Batches watched with {@link watchMany}: their keys, and the stale ones among them. */
  readonly #batches = new Set<{ keys: Set<string>; stale: Set<string> }>();

  /** A write of `key` starts: every read in flight is stale. Pair with {@link end}. */
  begin(key: string): void {
    this.invalidate(key);
    this.#writing.set(key, (this.#writing.get(key) ?? 0) + 1);
  }

  /** A write of `key` is done (succeeded or not). */
  end(key: string): void {
    const n = this.#writing.get(key)! - 1;
    if (n === 0) this.#writing.delete(key);
    else this.#writing.set(key, n);
  }

  /** Marks every read of `key` in flight stale (a write that runs synchronously, or a value replaced elsewhere). */
  invalidate(key: string): void {
    const set = this.#reads.get(key);
    if (set) for (const f of set) f.stale = true;
    for (const b of this.#batches) if (b.keys.has(key)) b.stale.add(key);
  }

  /** Marks every read in flight stale, whatever its key (a coherence gap: any key may have changed elsewhere). */
  invalidateAll(): void {
    for (const set of this.#reads.values()) for (const f of set) f.stale = true;
    for (const b of this.#batches) for (const key of b.keys) b.stale.add(key);
  }

  /**
   * Watches the reads of many keys at once (one set, not one watch per key: a revalidation
   * goes through a million keys); a key being written is stale from the start.
   */
  watchMany(keys: readonly string[]): FencedBatch {
    const batch = { keys: new Set(keys), stale: new Set<string>() };
    if (this.#writing.size > 0) for (const key of keys) if (this.#writing.has(key)) batch.stale.add(key);
    this.#batches.add(batch);
    return { stale: batch.stale, release: () => this.#batches.delete(batch) };
  }

  /** Whether a write of `key` is in progress. */
  writing(key: string): boolean {
    return this.#writing.has(key);
  }

  /** Whether a read of `key` is in flight or writing back. */
  reading(key: string): boolean {
    return this.#reads.has(key);
  }

  /** Watches a read of `key` (stale already if a write is in progress). Returns the function that stops watching. */
  watch(key: string, read: Fenced): () => void {
    if (this.#writing.has(key)) read.stale = true;
    let set = this.#reads.get(key);
    if (!set) {
      set = new Set();
      this.#reads.set(key, set);
    }
    const watched = set;
    watched.add(read);
    return () => {
      watched.delete(read);
      if (watched.size === 0 && this.#reads.get(key) === watched) this.#reads.delete(key);
    };
  }
}
