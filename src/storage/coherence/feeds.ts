/**
 * Change feeds: shared tiers whose server reports every change of their keys
 * itself (Redis tracking, a PostgreSQL trigger). A report names a key as the
 * server stores it; the feed turns it into the storage key to drop locally.
 *
 * The server reports this instance's own writes too. Dropping the local copy
 * just saved would cost the next load a round trip, and telling the
 * application of its own change would be wrong, so each write this instance
 * sends to such a tier is *expected* (counted per key, before it is sent), and
 * a report of an expected key is taken as that write's own: a save's leaves
 * the local copy alone, a delete's drops it again (harmless) quietly. A write
 * that fails or ends unknown un-expects its key and drops the local copies,
 * and so does a delete that found nothing (it changed nothing, so nothing is
 * reported): a later report then never passes for ours when it is not.
 * Counting errs one way only: a report taken for a foreign change costs a
 * reload, never a stale value.
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
  /** No trigger (`reason`), but this instance's writes announce themselves in their own statement; other programs' go unseen. */
  | { kind: "statement"; reason: string }
  /** The server cannot or may not: this instance announces its own saves; other programs' changes go unseen. */
  | { kind: "bus"; reason: string };

/** What a report of the server means here (`quiet`: this instance's own delete, not a change to tell of). */
export type Report = { drop: string; quiet?: boolean; sidecar?: boolean } | { dropAll: true } | undefined;

export class Feed {
  /** The profile. */
  readonly tier: string;
  readonly source: ChangeFeedSource;
  state: FeedState = { kind: "pending" };
  /** Reports received, and those taken as this instance's own writes. */
  reports = 0;
  own = 0;
  /** Own saves and deletes sent and not reported yet, per key as the operator names it. */
  readonly #saves = new Map<string, number>();
  readonly #deletes = new Map<string, number>();

  constructor(tier: string, source: ChangeFeedSource) {
    this.tier = tier;
    this.source = source;
  }

  /** The tier's operator as opened (it may be asked to announce its own writes: `Operator.announceWrites`). */
  op: Operator | undefined;

  /** Whether this tier's saves are announced without a bus message (by the server, or by their own statement). */
  get announced(): boolean {
    return this.state.kind === "server" || this.state.kind === "statement";
  }

  /**
   * The server has no trigger (`reason`): this instance's writes announce themselves on `channel` in their own
   * statement where the operator can, else on the bus. `undefined`: the trigger is there again.
   */
  untriggered(channel: string, reason: string | undefined, via: string): void {
    if (reason === undefined) {
      this.op?.announceWrites?.(undefined);
      this.state = { kind: "server", via };
    } else if (this.op?.announceWrites) {
      this.op.announceWrites(channel);
      this.state = { kind: "statement", reason };
    } else this.state = { kind: "bus", reason };
  }

  /** A save (or a delete) of `path` is about to be sent. */
  expect(path: string, op: "save" | "delete" = "save"): void {
    const m = op === "save" ? this.#saves : this.#deletes;
    m.set(path, (m.get(path) ?? 0) + 1);
  }

  /** That write failed, its outcome is unknown, or (a delete) it changed nothing: no report of it will come. */
  unexpect(path: string, op: "save" | "delete" = "save"): void {
    take(op === "save" ? this.#saves : this.#deletes, path);
  }

  /** The listener (re)connected: reports of writes sent before may be lost, so nothing is expected any more. */
  forget(): void {
    this.#saves.clear();
    this.#deletes.clear();
  }

  /** Writes sent and not yet reported. */
  get expecting(): number {
    let n = 0;
    for (const v of this.#saves.values()) n += v;
    for (const v of this.#deletes.values()) n += v;
    return n;
  }

  /** The server reports `raw` (a key as it stores it; `""` from a trigger: everything) changed. */
  reported(raw: string): Report {
    this.reports++;
    if (raw === "" && this.source.kind === "postgresql") return { dropAll: true };
    const prefix = this.source.prefix;
    if (!raw.startsWith(prefix)) return undefined;
    const path = raw.slice(prefix.length);
    if (take(this.#saves, path)) {
      this.own++;
      return undefined;
    }
    const report = keyReport(path);
    if (!take(this.#deletes, path)) return report;
    this.own++;
    return report && "drop" in report ? { ...report, quiet: true } : report;
  }
}

/** Takes one expectation of `path` off `m`; whether there was one. */
function take(m: Map<string, number>, path: string): boolean {
  const n = m.get(path);
  if (n === undefined) return false;
  if (n <= 1) m.delete(path);
  else m.set(path, n - 1);
  return true;
}

/**
 * The key whose local copies a change of `path` makes stale: the value's, for a TTL sidecar (marked
 * `sidecar`: the key's expiry changed too); none for other reserved keys.
 */
export function keyReport(path: string): Report {
  if (path.startsWith(META_SIDECAR_PREFIX)) {
    const report = keyReport(path.slice(META_SIDECAR_PREFIX.length));
    return report && "drop" in report ? { ...report, sidecar: true } : report;
  }
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
 * `op` with every write and delete counted in `feed` before it is sent (see the module). One that
 * fails un-expects its key and calls `failed`, which drops the local copies.
 */
export function expectingOperator(op: Operator, feed: Feed, failed: (path: string) => void): Operator {
  const write = (path: string, data: Uint8Array | string) => {
    feed.expect(path, "save");
    return op.write(path, data).catch((err: unknown) => {
      feed.unexpect(path, "save");
      failed(path);
      throw err;
    });
  };
  const del = async (path: string) => {
    feed.expect(path, "delete");
    try {
      const removed = await op.delete(path);
      // Nothing was there: nothing changed, nothing will be reported.
      if (removed === false) feed.unexpect(path, "delete");
      return removed;
    } catch (err) {
      feed.unexpect(path, "delete");
      failed(path);
      throw err;
    }
  };
  return new Proxy(op, {
    get(target, prop) {
      if (prop === "write") return write;
      if (prop === "delete") return del;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
