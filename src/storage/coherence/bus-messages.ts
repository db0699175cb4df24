/**
 * Receiving the bus's own messages (announcements of changes no server
 * reports): each drops its keys' local copies and is passed on to the
 * application; one that is not ours, or names invalid keys, is a gap. With one
 * bus listener each origin's messages arrive once and in order, so a skipped
 * sequence number is a gap too (a cross-check: the lease is the proof); with
 * several (a cluster's masters) every copy is handled. An origin silent for
 * 10 minutes is forgotten (each process start is a new one); no loss can hide
 * there, since a lost message stops the lease's echoes as well.
 *
 * @module
 */
import { validateKey } from "../../keys/index.js";
import { busChannel } from "../channels.js";
import type { Tier } from "../tier.js";
import type { RemoteChange } from "./coherence-stats.js";
import type { LocalCopies } from "./local-copies.js";
import { type BusMessage, decodeMessage } from "./message.js";

/** An origin silent this long is forgotten. */
const PRUNE_MS = 10 * 60_000;

export class BusMessages {
  readonly #origin: string;
  readonly #copies: LocalCopies;
  readonly #local: () => readonly Tier[];
  readonly #gap: (reason: string) => void;
  /** The last sequence number seen per origin, and when. */
  readonly #seen = new Map<string, { seq: number; at: number }>();
  readonly #timer: NodeJS.Timeout;
  received = 0;

  constructor(origin: string, copies: LocalCopies, local: () => readonly Tier[], gap: (reason: string) => void) {
    this.#origin = origin;
    this.#copies = copies;
    this.#local = local;
    this.#gap = gap;
    this.#timer = setInterval(() => this.#prune(), PRUNE_MS / 4);
    this.#timer.unref();
  }

  /** Origins whose sequence numbers are tracked. */
  get origins(): number {
    return this.#seen.size;
  }

  /** The bus listener was down: messages were missed (the resync covers them), numbering starts over. */
  forget(): void {
    this.#seen.clear();
  }

  /** A payload on the bus channel; `single`: it has one listener (so each message arrives once, in order). */
  receive(payload: string, single: boolean): void {
    let m: BusMessage;
    try {
      m = decodeMessage(payload);
    } catch (err) {
      this.#gap((err as Error).message);
      return;
    }
    if (m.origin === this.#origin || m.op === "heartbeat") return;
    const last = this.#seen.get(m.origin)?.seq;
    if (single && last !== undefined && m.seq <= last) return;
    this.#seen.set(m.origin, { seq: Math.max(m.seq, last ?? 0), at: Date.now() });
    this.received++;
    const keys = m.keys.filter((k) => {
      try {
        validateKey(k);
        return true;
      } catch {
        return false;
      }
    });
    if (busChannel.hasSubscribers) {
      busChannel.publish({ event: "received", origin: this.#origin, from: m.origin, op: m.op, keys, seq: m.seq });
    }
    if (keys.length < m.keys.length) this.#gap(`a message from ${m.origin} named keys that are not valid`);
    const local = this.#local();
    // A message names keys, not whether their TTL changed: their expiries are read again.
    if (m.op === "clear") {
      this.#copies.clear(m.prefix ?? "", local);
      this.#copies.expiryChanged(null);
    } else {
      for (const key of keys) {
        this.#copies.drop(key, local);
        this.#copies.expiryChanged(key);
      }
    }
    if (single && last !== undefined && m.seq > last + 1) {
      this.#gap(`missed ${m.seq - last - 1} message(s) from ${m.origin}`);
    }
    const change: RemoteChange = { op: m.op, keys, origin: m.origin, source: "bus" };
    if (m.prefix !== undefined) change.prefix = m.prefix;
    this.#copies.tell(change);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #prune(): void {
    const before = Date.now() - PRUNE_MS;
    for (const [origin, s] of this.#seen) if (s.at < before) this.#seen.delete(origin);
  }
}
