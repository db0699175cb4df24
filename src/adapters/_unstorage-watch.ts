/**
 * The unstorage driver's `watch`: unstorage reports changes itself only for
 * drivers without `watch`, so this driver reports its own saves and deletes,
 * and, where the storage has a coherence bus, other instances' ones
 * (`DeviceStorage.onRemoteChange`), mapped back to unstorage keys.
 *
 * @module
 */
import type { WatchCallback, WatchEvent } from "unstorage";
import type { DeviceStorage, Logger } from "../index.js";
import type { UnstorageKeys } from "./_unstorage-keys.js";

/** A change the coherence bus reports (the shape of `DeviceStorage.onRemoteChange`'s argument). */
interface RemoteChange {
  op: "save" | "delete" | "clear" | "change";
  /** Storage keys saved or deleted (none for a `clear`). */
  keys: readonly string[];
  /** The storage prefix a `clear` dropped (`""` or absent: everything). */
  prefix?: string;
  origin: string;
}
/** Read defensively: a storage without a bus may lack the method. */
type RemoteChangeSource = { onRemoteChange?: (listener: (change: RemoteChange) => void) => () => void };

/** One `watch` call: its callback and how to stop its bus subscription. */
interface Watcher {
  callback: WatchCallback;
  off: (() => void) | undefined;
}

/** The watchers of one driver. */
export class Watchers {
  readonly #keys: UnstorageKeys;
  readonly #logger: () => Logger | undefined;
  readonly #all = new Set<Watcher>();

  /** @param logger where a callback's failure is reported (the storage's logger, once open). */
  constructor(keys: UnstorageKeys, logger: () => Logger | undefined) {
    this.#keys = keys;
    this.#logger = logger;
  }

  /** This driver saved (`update`) or deleted (`remove`) unstorage key `key`. */
  local(event: WatchEvent, key: string): void {
    for (const w of this.#all) this.#call(w.callback, event, key);
  }

  /** Calls `callback` for this driver's changes and, with a coherence bus, other instances'; returns the unwatch. */
  add(storage: DeviceStorage, callback: WatchCallback): () => void {
    const subscribe = (storage as RemoteChangeSource).onRemoteChange;
    const watcher: Watcher = { callback, off: undefined };
    if (typeof subscribe === "function") {
      watcher.off = subscribe.call(storage, (change) => this.#remote(storage, change, callback));
    }
    this.#all.add(watcher);
    return () => {
      if (this.#all.delete(watcher)) watcher.off?.();
    };
  }

  /** Stops every watcher (dispose). */
  clear(): void {
    for (const w of this.#all) w.off?.();
    this.#all.clear();
  }

  #remote(storage: DeviceStorage, change: RemoteChange, callback: WatchCallback): void {
    for (const storageKey of change.keys) {
      const key = this.#keys.fromStorage(storageKey);
      if (key === undefined) continue;
      if (change.op !== "change") {
        this.#call(callback, change.op === "save" ? "update" : "remove", key);
        continue;
      }
      // A server's report does not say whether the key was saved or deleted: the storage does.
      storage.exists(storageKey).then(
        (there) => this.#call(callback, there ? "update" : "remove", key),
        () => this.#call(callback, "update", key),
      );
    }
    // A clear names no keys: its base stands for them ("" when it dropped everything).
    if (change.op === "clear") {
      const base = this.#keys.baseOf(change.prefix ?? "");
      if (base !== undefined) this.#call(callback, "remove", base);
    }
  }

  #call(callback: WatchCallback, event: WatchEvent, key: string): void {
    try {
      callback(event, key);
    } catch (err) {
      // A callback's failure must not fail the save that triggered it, nor reach the bus.
      this.#logger()?.warn({ err, key }, "unstorage watch callback failed");
    }
  }
}
