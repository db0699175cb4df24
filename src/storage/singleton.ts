/**
 * A process-wide value created once, on first use (the Rust crate's
 * `AsyncOnceCell`), in one of two modes: from settings, or memory-only. A
 * failed creation is forgotten, so the next call tries again. Once created,
 * the value is also available synchronously (the singleton hot path pays for
 * no promise).
 *
 * @module
 */
import { ProfileError } from "../errors.js";

export class ProcessSingleton<T extends { close(): Promise<void> }> {
  #promise: Promise<T> | undefined;
  #value: T | undefined;
  #memoryOnly = false;

  /** The value, if it was created and is ready. */
  get current(): T | undefined {
    return this.#value;
  }

  /** Whether the value was (or is being) created memory-only. */
  get memoryOnly(): boolean {
    return this.#memoryOnly;
  }

  /** Whether creation has started. */
  get started(): boolean {
    return this.#promise !== undefined;
  }

  /** The value, created with `create` on first call. */
  get(create: () => Promise<T>, memoryOnly: boolean): Promise<T> {
    if (this.#promise) return this.#promise;
    this.#memoryOnly = memoryOnly;
    const p = create();
    this.#promise = p;
    p.then(
      (v) => {
        if (this.#promise === p) this.#value = v;
      },
      () => {
        if (this.#promise === p) this.#promise = undefined;
      },
    );
    return p;
  }

  /**
   * The memory-only value, created with `create` on first call.
   * @throws ProfileError if the value was already created from settings.
   */
  memoryOnlyValue(create: () => Promise<T>): Promise<T> {
    if (this.started && !this.memoryOnly) {
      throw new ProfileError(
        "DeviceStorage.initMemoryOnly(): the storage singleton was already created from settings; call initMemoryOnly() before the first DeviceStorage.instance(), or use DeviceStorage.fromSettings() for an independent store",
      );
    }
    return this.get(create, true);
  }

  /** Forgets the value and closes it. */
  async reset(): Promise<void> {
    const p = this.#promise;
    this.#promise = undefined;
    this.#value = undefined;
    this.#memoryOnly = false;
    if (p) await (await p.catch(() => undefined))?.close();
  }
}
