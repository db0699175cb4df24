/**
 * What happens to this instance's local copies when a shared key changed
 * elsewhere: write-backs of the key are fenced off and every local copy is
 * dropped (or everything under a prefix, for a `clear`), and the application's
 * `onRemoteChange` listeners are told. Drops run in the background; a proof of
 * the lease waits for the ones pending (`settled`), so a lease never vouches
 * for a copy still being dropped. A copy that cannot be dropped is a gap.
 *
 * @module
 */
import type { Logger } from "../../logger.js";
import type { WriteFence } from "../fence.js";
import type { Tier } from "../tier.js";
import type { RemoteChange } from "./coherence-stats.js";

export class LocalCopies {
  readonly #fence: WriteFence;
  readonly #logger: Logger;
  readonly #failed: (tier: Tier) => void;
  /** Drops not finished yet. */
  readonly #pending = new Set<Promise<void>>();
  readonly #listeners = new Set<(change: RemoteChange) => void>();
  dropped = 0;

  readonly #shared: () => readonly Tier[];

  /**
   * @param failed a tier could not drop a copy (the bus treats it as a gap).
   * @param shared the shared tiers, whose TTL metadata a change elsewhere makes unknown ({@link expiryChanged}).
   */
  constructor(fence: WriteFence, logger: Logger, failed: (tier: Tier) => void, shared: () => readonly Tier[]) {
    this.#fence = fence;
    this.#logger = logger;
    this.#failed = failed;
    this.#shared = shared;
  }

  /** `key` changed elsewhere: no write-back of it may land, no copy in `tiers` may stay; `change` is told. */
  drop(key: string, tiers: readonly Tier[], change?: RemoteChange): void {
    this.#fence.invalidate(key);
    for (const tier of tiers) {
      if (tier.state.kind === "down") continue;
      this.dropped++;
      this.#track(tier.delete(key), tier);
    }
    if (change) this.tell(change);
  }

  /** Everything under `prefix` changed (`""`: everything): every copy in `tiers` goes. */
  clear(prefix: string, tiers: readonly Tier[], change?: RemoteChange): void {
    this.#fence.invalidateAll();
    for (const tier of tiers) {
      if (tier.state.kind === "down") continue;
      const all = tier.list(prefix).then((keys) =>
        Promise.all(
          keys.map((k) =>
            tier.delete(k).then(() => {
              this.dropped++;
            }),
          ),
        ),
      );
      this.#track(all, tier);
    }
    if (change) this.tell(change);
  }

  /**
   * The TTL sidecar of `key` (`null`: of every key) may have changed elsewhere in shared tier `profile`
   * (none: in any shared tier, as a bus message cannot say): its expiry is read again there.
   */
  expiryChanged(key: string | null, profile?: string): void {
    for (const tier of this.#shared()) if (profile === undefined || tier.name === profile) tier.changedElsewhere(key);
  }

  /** Resolves when every drop started so far has ended. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Whether drops are still running. */
  get pending(): boolean {
    return this.#pending.size > 0;
  }

  /** Calls `listener` for each change of a shared key made elsewhere. Returns the function that stops it. */
  onRemoteChange(listener: (change: RemoteChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  tell(change: RemoteChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (err) {
        this.#logger.warn({ err }, "coherence bus: a remote-change listener threw");
      }
    }
  }

  #track(work: Promise<unknown>, tier: Tier): void {
    const p = work.then(
      () => {},
      (err: unknown) => {
        this.#logger.warn(
          { profile: tier.name, err },
          "coherence bus: could not drop a local copy; resyncing the profile",
        );
        this.#failed(tier);
      },
    );
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }
}
