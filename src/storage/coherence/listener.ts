/**
 * A listening connection of the coherence bus: one per server (per master of
 * a Redis Cluster). It carries the bus's own messages (Redis pub/sub,
 * PostgreSQL LISTEN) and the server's own reports of changed keys (Redis
 * client-side-caching invalidations, a PostgreSQL trigger's `pg_notify`), and
 * answers pings on the same connection: the proof the lease rests on.
 *
 * @module
 */

/** What a listener tells the bus. */
export interface ListenerEvents {
  /** A payload on one of its channels (the bus's own, or a trigger's). */
  message(channel: string, payload: string): void;
  /** The server reports these keys (as stored on the server) changed; `null`: every key (FLUSHALL). */
  invalidated(keys: readonly string[] | null): void;
  /** The connection was lost, or never listened: messages may be missed until {@link up}. */
  down(reason: string): void;
  /** Subscribed (again): everything announced from now on arrives. */
  up(): void;
  /** The server refused to report changes itself (no `CLIENT TRACKING`): the reason, once per connection. */
  unsupported?(reason: string): void;
}

/** One listening connection, kept open (reconnected after every loss) until {@link close}. */
export interface Listener {
  /** Where it listens, for messages: `redis 127.0.0.1:6379` (never a credential). */
  readonly description: string;
  /** Whether the server reports changes itself on this connection (known once it was up). */
  readonly tracking: boolean | undefined;
  start(events: ListenerEvents): void;
  /**
   * A round trip on the listening connection carrying `n`. Resolves once the server's answer
   * (with `n`) arrived: every message the server sent before it has been delivered.
   * @throws when the connection is not listening, or an answer came back out of order.
   */
  ping(n: number): Promise<void>;
  /** Drops the connection (silent, or answering out of order); a new one follows, as after any loss. */
  replace(reason: string): void;
  close(): Promise<void>;
}

/** What the bus wants a listener to carry. */
export interface Interests {
  /** Pub/sub or LISTEN channels. */
  channels: Set<string>;
  /** Key prefixes the server should report changes of (Redis tracking; `""`: every key). Empty: none. */
  prefixes: Set<string>;
  /**
   * Run on each new PostgreSQL listening connection once it listens, before it says `up` (the tables'
   * triggers). A rejection fails the connection (a new one follows).
   */
  prepare?: ((client: import("pg").Client) => Promise<void>)[];
}

/** Reconnect back-off of a listener: 100 ms more per failed attempt, at most this. */
export const MAX_RECONNECT_DELAY_MS = 2000;
export const reconnectDelay = (attempt: number): number => Math.min(100 * attempt, MAX_RECONNECT_DELAY_MS);

/**
 * A listener's life: one connection at a time (`connect(attempt)`), and when
 * it ends, the next after the back-off, until {@link close}.
 */
export class ReconnectLoop {
  readonly #connect: (attempt: number) => void;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(connect: (attempt: number) => void) {
    this.#connect = connect;
  }

  get closed(): boolean {
    return this.#closed;
  }

  start(): void {
    this.#connect(0);
  }

  /** The connection listens: the back-off starts over. */
  listening(): void {
    this.#attempt = 0;
  }

  /** The connection ended: the next one after the back-off. */
  lost(): void {
    if (this.#closed) return;
    this.#attempt++;
    const attempt = this.#attempt;
    this.#timer = setTimeout(() => this.#closed || this.#connect(attempt), reconnectDelay(attempt));
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}

/** A ping answered with another number than it carried: an answer (or a message) was lost on the way. */
export function outOfOrder(description: string, sent: number, got: unknown): Error {
  return new Error(`${description}: ping ${sent} answered with ${JSON.stringify(got)}`);
}

/**
 * The pings of one listening connection that wait for their echo: a message the
 * listener sent itself through the server's own push path (a `PUBLISH` to a
 * channel only it subscribes to, a `pg_notify` on a channel only it listens
 * to). An echo proves the push path delivers, not only that the connection
 * answers: a loss of pushes alone (a proxy, or a server, dropping messages on
 * a live connection) stops the proofs as surely as a silent socket. Echoes
 * come back in order; one coming before an earlier one's means that one was lost.
 */
export class Echoes {
  readonly #description: string;
  #waiting: { n: number; resolve(): void; reject(err: Error): void }[] = [];

  constructor(description: string) {
    this.#description = description;
  }

  /** Resolves when the echo of `n` arrives. */
  wait(n: number): Promise<void> {
    return new Promise((resolve, reject) => this.#waiting.push({ n, resolve, reject }));
  }

  /** An echo arrived on the listening connection. */
  heard(payload: string): void {
    const n = Number(payload);
    while (this.#waiting.length > 0 && this.#waiting[0]!.n < n) {
      const lost = this.#waiting.shift()!;
      lost.reject(outOfOrder(this.#description, lost.n, payload));
    }
    if (this.#waiting[0]?.n === n) this.#waiting.shift()!.resolve();
  }

  /** The echo of `n` cannot come (its message could not be sent). */
  failed(n: number, err: Error): void {
    const at = this.#waiting.findIndex((w) => w.n === n);
    if (at !== -1) this.#waiting.splice(at, 1)[0]!.reject(err);
  }

  /** The connection is gone: no echo will come. */
  clear(why: string): void {
    for (const w of this.#waiting.splice(0)) w.reject(new Error(`${this.#description}: ${why}`));
  }
}

/** A channel name for one listener's echoes, unique to it. */
export const echoChannel = (prefix: string): string =>
  `${prefix}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
