/**
 * One proxied connection of the fault proxy (proxy.ts): the client's socket,
 * the upstream socket, and a pipe each way that delivers whole frames under
 * the mode of the connection's role, in order. A pipe holds frames (hold),
 * releases them late (delay), or discards server frames as they arrive
 * (drop); a close or reset from one side travels in order too, so a held
 * connection stays open on both ends until it heals, as TCP does across a
 * partition.
 *
 * @module
 */
import { connect, type Socket } from "node:net";
import { FramingError, type Protocol, type ProtocolSession, protocolSession } from "./frames.js";

/** What a connection is used for, as sniffed from the client's bytes. */
export type Role = "listener" | "data";

/** What the proxy does to a connection's traffic. */
export type FaultMode =
  /** Forward at once. */
  | { kind: "pass" }
  /** Forward each frame `ms` after it arrived, both directions, order kept. */
  | { kind: "delay"; ms: number }
  /** Deliver nothing either way; keep the bytes and release them in order when the mode changes. */
  | { kind: "hold" }
  /** Discard whole server→client frames as they arrive (`push`: only pushes); the client's bytes still go. */
  | { kind: "drop"; frames: "all" | "push" }
  /** Reset (RST) the connection, and every new one of its role while in this mode. */
  | { kind: "reset" };

/** Counters of a proxy, summed over its connections. */
export interface LinkCounters {
  bytesUp: number;
  bytesDown: number;
  droppedFrames: number;
  droppedPushFrames: number;
  resets: number;
  framingErrors: number;
}

type Item = { bytes: Buffer; at: number } | { close: "end" | "reset"; at: number };

/** One direction of a connection: a FIFO of frames and closes, delivered under the current mode. */
class Pipe {
  readonly #queue: Item[] = [];
  #timer: NodeJS.Timeout | undefined;
  #done = false;

  constructor(
    private readonly dest: Socket,
    private readonly mode: () => FaultMode,
    private readonly delivered: (bytes: number) => void,
  ) {}

  /** Bytes waiting. */
  get held(): number {
    return this.#queue.reduce((n, i) => n + ("bytes" in i ? i.bytes.length : 0), 0);
  }

  push(item: Item): void {
    if (this.#done) return;
    this.#queue.push(item);
    this.pump();
  }

  pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (;;) {
      const head = this.#queue[0];
      if (!head || this.#done) return;
      const mode = this.mode();
      if (mode.kind === "hold" || mode.kind === "reset") return;
      if (mode.kind === "delay") {
        const wait = head.at + mode.ms - performance.now();
        if (wait > 0) {
          this.#timer = setTimeout(() => this.pump(), wait);
          return;
        }
      }
      this.#queue.shift();
      if ("bytes" in head) {
        if (!this.dest.destroyed) this.dest.write(head.bytes);
        this.delivered(head.bytes.length);
      } else {
        this.#done = true;
        if (head.close === "end") this.dest.end();
        else if (!this.dest.destroyed) this.dest.resetAndDestroy();
      }
    }
  }

  stop(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    this.#queue.length = 0;
  }
}

/** A client connection and its upstream, under the proxy's modes. */
export class Link {
  role: Role = "data";
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #up: Pipe;
  readonly #down: Pipe;
  #session: ProtocolSession;
  readonly #counters: LinkCounters;
  readonly #modeOf: (role: Role) => FaultMode;
  #closed = false;

  constructor(
    client: Socket,
    target: { host: string; port: number },
    protocol: Protocol,
    modeOf: (role: Role) => FaultMode,
    counters: LinkCounters,
    onClosed: (link: Link) => void,
  ) {
    this.#client = client;
    this.#modeOf = modeOf;
    this.#counters = counters;
    this.#session = protocolSession(protocol);
    this.#upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const mode = () => modeOf(this.role);
    this.#up = new Pipe(this.#upstream, mode, (n) => {
      counters.bytesUp += n;
    });
    this.#down = new Pipe(client, mode, (n) => {
      counters.bytesDown += n;
    });
    client.setNoDelay(true);
    this.#upstream.setNoDelay(true);
    client.on("data", (chunk: Buffer) => this.#fromClient(chunk));
    this.#upstream.on("data", (chunk: Buffer) => this.#fromServer(chunk));
    client.on("end", () => this.#up.push({ close: "end", at: performance.now() }));
    this.#upstream.on("end", () => this.#down.push({ close: "end", at: performance.now() }));
    // A reset (or a refused upstream) reaches the other side in order, like any byte.
    client.on("error", () => this.#up.push({ close: "reset", at: performance.now() }));
    this.#upstream.on("error", () => this.#down.push({ close: "reset", at: performance.now() }));
    let open = 2;
    const closed = () => {
      if (--open > 0) return;
      this.#closed = true;
      onClosed(this);
    };
    client.once("close", closed);
    this.#upstream.once("close", closed);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes held or delayed in both directions. */
  get held(): number {
    return this.#up.held + this.#down.held;
  }

  /** The mode changed: deliver what it allows, or reset. */
  apply(): void {
    if (this.#modeOf(this.role).kind === "reset") this.reset();
    else {
      this.#up.pump();
      this.#down.pump();
    }
  }

  /** RST both sockets now. */
  reset(): void {
    if (this.#closed || (this.#client.destroyed && this.#upstream.destroyed)) return;
    this.#counters.resets++;
    this.#up.stop();
    this.#down.stop();
    if (!this.#client.destroyed) this.#client.resetAndDestroy();
    if (!this.#upstream.destroyed) this.#upstream.resetAndDestroy();
  }

  /** Closes both sockets (the proxy is closing). */
  destroy(): void {
    this.#up.stop();
    this.#down.stop();
    this.#client.destroy();
    this.#upstream.destroy();
  }

  #frames<T>(parse: () => T[], fallback: () => T[]): T[] {
    try {
      return parse();
    } catch (err) {
      if (!(err instanceof FramingError)) throw err;
      // Unparseable bytes: forward this connection raw from here on (nothing droppable), and say so.
      this.#counters.framingErrors++;
      this.#session = protocolSession("raw");
      return fallback();
    }
  }

  #fromClient(chunk: Buffer): void {
    const at = performance.now();
    const frames = this.#frames(
      () => this.#session.client(chunk),
      () => [{ bytes: chunk, listens: false }],
    );
    for (const f of frames) {
      if (f.listens && this.role !== "listener") {
        this.role = "listener";
        if (this.#modeOf("listener").kind === "reset") {
          this.reset();
          return;
        }
        this.#down.pump();
      }
      this.#up.push({ bytes: f.bytes, at });
    }
  }

  #fromServer(chunk: Buffer): void {
    const at = performance.now();
    const frames = this.#frames(
      () => this.#session.server(chunk),
      () => [{ bytes: chunk, push: false, droppable: false }],
    );
    for (const f of frames) {
      const mode = this.#modeOf(this.role);
      if (mode.kind === "drop" && f.droppable && (mode.frames === "all" || f.push)) {
        this.#counters.droppedFrames++;
        if (f.push) this.#counters.droppedPushFrames++;
        continue;
      }
      this.#down.push({ bytes: f.bytes, at });
    }
  }
}
