/**
 * The foreign writer of a fault-injection run: another program (a script,
 * the Rust crate, an operator's `redis-cli` or `psql`) that writes and
 * deletes shared keys directly with a raw client, in the library's value
 * format, and announces nothing. Each write is recorded in the history as
 * `foreign-save` / `foreign-delete`.
 *
 * @module
 */
import type { SharedStore } from "./_store.js";
import { encodeFaultValue, faultValue } from "./_values.js";
import type { Recorder } from "./history.js";

/** What the foreign writer writes to, where it records, and how often. */
export interface ForeignWriterOptions {
  store: SharedStore;
  recorder: Recorder;
  keys: readonly string[];
  random: () => number;
  /** Pause between two writes, ms. */
  pauseMs: [number, number];
  /** Share of deletes among its writes. @default 0.3 */
  deleteShare?: number;
}

/** Starts writing; `stop()` resolves once the write in flight has completed. */
export function startForeignWriter(o: ForeignWriterOptions): { stop: () => Promise<void> } {
  let running = true;
  let n = 0;
  const name = o.recorder.process;
  const loop = (async () => {
    while (running) {
      const key = o.keys[Math.floor(o.random() * o.keys.length)]!;
      if (o.random() < (o.deleteShare ?? 0.3)) {
        const id = o.recorder.invoke("foreign-delete", key);
        await o.store.del(key).then(
          () => o.recorder.complete(id, "ok"),
          (err: Error) => o.recorder.complete(id, `foreign:${err.name}`),
        );
      } else {
        const value = faultValue(name, ++n);
        const id = o.recorder.invoke("foreign-save", key, value.id);
        await o.store.set(key, encodeFaultValue(value)).then(
          () => o.recorder.complete(id, "ok"),
          (err: Error) => o.recorder.complete(id, `foreign:${err.name}`),
        );
      }
      const [lo, hi] = o.pauseMs;
      await new Promise((r) => setTimeout(r, lo + o.random() * (hi - lo)));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
