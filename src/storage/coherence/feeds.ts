/**
 * Change feeds: shared tiers whose server reports every change of their keys
 * itself (Redis tracking, a PostgreSQL trigger). A report names a key as the
 * server stores it; the feed turns it into the storage key to drop locally.
 *
 * The server reports this instance's own writes too. Dropping the local copy
 * just saved would cost the next load a round trip, so each write this
 * instance sends to such a tier is *expected* (counted per key, before it is
 * sent), and a report of an expected key is taken as that write's own. A
 * write that fails or ends unknown un-expects its key and drops the local
 * copies: a later report then never passes for ours when it is not. Counting
 * errs one way only: a report taken for a foreign change costs a reload,
 * never a stale value. Deletes expect nothing (dropping again is harmless),
 * since deleting a missing key changes nothing and so reports nothing.
 *
 * @module
 */
import { isReservedKey, META_SIDECAR_PREFIX, validateKey } from "../../keys/index.js";
import type { ChangeFeedSource, Operator } from "../../operators/types.js";

/** How a shared tier's changes reach other instances. */
export type FeedState =
  /** The server reports every change (anyone's): the tier's saves need no announcement. */
  | { kind: "server"; via: string }
  /** Not known yet (the listener has not connected): saves are announced on the bus meanwhile. */
  | { kind: "pending" }
  /** The server cannot or may not: this instance announces its own saves; other programs' changes go unseen. */
  | { kind: "bus"; reason: string };

/** What a report of the server means here. */
export type Report = { drop: string } | { dropAll: true } | undefined;

export class Feed {
  /** The profile. */
  readonly tier: string;
  readonly source: ChangeFeedSource;
  state: FeedState = { kind: "pending" };
  /** Reports received, and those taken as this instance's own writes. */
  reports = 0;
  own = 0;
  /** Own writes sent and not reported yet, per key as the operator names it. */
  readonly #expected = new Map<string, number>();

  constructor(tier: string, source: ChangeFeedSource) {
    this.tier = tier;
    this.source = source;
  }

  /** Whether the server announces this tier's changes (its saves need no bus message). */
  get announcedByServer(): boolean {
    return this.state.kind === "server";
  }

  /** A write of `path` is about to be sent. */
  expect(path: string): void {
    this.#expected.set(path, (this.#expected.get(path) ?? 0) + 1);
  }

  /** A write of `path` failed or its outcome is unknown: its report, if any, is not taken for ours. */
  unexpect(path: string): void {
    const n = this.#expected.get(path);
    if (n === undefined) return;
    if (n <= 1) this.#expected.delete(path);
    else this.#expected.set(path, n - 1);
  }

  /** The listener (re)connected: reports of writes sent before may be lost, so nothing is expected any more. */
  forget(): void {
    this.#expected.clear();
  }

  /** Writes sent and not yet reported. */
  get expecting(): number {
    let n = 0;
    for (const v of this.#expected.values()) n += v;
    return n;
  }

  /** The server reports `raw` (a key as it stores it; `""` from a trigger: everything) changed. */
  reported(raw: string): Report {
    this.reports++;
    if (raw === "" && this.source.kind === "postgresql") return { dropAll: true };
    const prefix = this.source.prefix;
    if (!raw.startsWith(prefix)) return undefined;
    const path = raw.slice(prefix.length);
    if (this.#expected.has(path)) {
      this.unexpect(path);
      this.own++;
      return undefined;
    }
    return keyReport(path);
  }
}

/** The key whose local copies a change of `path` makes stale: the value's, for a TTL sidecar; none for other reserved keys. */
export function keyReport(path: string): Report {
  if (path.startsWith(META_SIDECAR_PREFIX)) return keyReport(path.slice(META_SIDECAR_PREFIX.length));
  if (isReservedKey(path)) return undefined;
  try {
    validateKey(path);
  } catch {
    // Another program's key that this library cannot hold: no local copy of it exists.
    return undefined;
  }
  return { drop: path };
}

/**
 * `op` with every write counted in `feed` before it is sent (see the module). A failed write
 * un-expects its key and calls `failed`, which drops the local copies.
 */
export function expectingOperator(op: Operator, feed: Feed, failed: (path: string) => void): Operator {
  const write = (path: string, data: Uint8Array | string) => {
    feed.expect(path);
    return op.write(path, data).catch((err: unknown) => {
      feed.unexpect(path);
      failed(path);
      throw err;
    });
  };
  return new Proxy(op, {
    get(target, prop) {
      if (prop === "write") return write;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
