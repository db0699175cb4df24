/**
 * A TCP fault proxy of the project's own, one per process under test, so that
 * faults are per process: it listens on a free port of 127.0.0.1 and forwards
 * every connection to a target (a Redis or PostgreSQL server), frame by frame
 * (see frames.ts). Its mode can change at any time, for every connection or
 * only for those of one role: the listening connection (Redis `SUBSCRIBE` or
 * `CLIENT TRACKING` without `REDIRECT`; PostgreSQL `LISTEN`) or the data ones.
 *
 * | mode | what the connections of that role get |
 * |---|---|
 * | `pass` | every byte at once |
 * | `delay` | each frame `ms` late, both ways, in order |
 * | `hold` | nothing either way, sockets open; the bytes are released in order when the mode changes (a partition) |
 * | `drop` | server→client frames discarded whole as they arrive (`push`: only pub/sub deliveries, invalidations, NotificationResponse); the connection stays open and the client's parser never sees a torn frame |
 * | `reset` | RST now, and every new connection of the role as soon as it is known |
 *
 * @example
 * const proxy = await FaultProxy.start({ target: { host: "127.0.0.1", port: 6379 }, protocol: "redis" });
 * proxy.set({ kind: "hold" }, "listener"); // the subscriber hears nothing; data connections still work
 * proxy.heal(); // everything held is delivered, in order
 * await proxy.close();
 *
 * @module
 */
import { createServer, type Server, type Socket } from "node:net";
import { type FaultMode, Link, type LinkCounters, type Role } from "./_proxy-link.js";
import type { Protocol } from "./frames.js";

export type { FaultMode, Role } from "./_proxy-link.js";

/** Where a proxy forwards, and how it frames the traffic. */
export interface FaultProxyOptions {
  target: { host: string; port: number };
  /** `raw` forwards bytes as they come (no roles, no drop). */
  protocol: Protocol;
}

/** What a proxy saw and did, from {@link FaultProxy.stats}. */
export interface ProxyStats extends LinkCounters {
  /** Connections accepted since the start. */
  accepted: number;
  /** Connections open now, by role. */
  open: Record<Role, number>;
  /** Bytes held or delayed now. */
  held: number;
}

const PASS: FaultMode = { kind: "pass" };

/** A TCP proxy whose connections can be delayed, held, dropped or reset (see the module doc). */
export class FaultProxy {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  readonly #server: Server;
  readonly #links = new Set<Link>();
  readonly #modes: Record<Role, FaultMode> = { listener: PASS, data: PASS };
  readonly #counters: LinkCounters = {
    bytesUp: 0,
    bytesDown: 0,
    droppedFrames: 0,
    droppedPushFrames: 0,
    resets: 0,
    framingErrors: 0,
  };
  #accepted = 0;

  private constructor(server: Server, port: number) {
    this.#server = server;
    this.port = port;
  }

  /** Starts a proxy to `options.target` on a free port. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    let accept: (socket: Socket) => void = (socket) => socket.destroy();
    const server = createServer({ allowHalfOpen: true }, (socket) => accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    const address = server.address();
    if (typeof address !== "object" || address === null) throw new Error("fault proxy: no port");
    const proxy = new FaultProxy(server, address.port);
    accept = (socket) => proxy.#accept(socket, options);
    return proxy;
  }

  /** `tcp://127.0.0.1:<port>`, a Redis endpoint through the proxy. */
  get endpoint(): string {
    return `tcp://127.0.0.1:${this.port}`;
  }

  /** `connectionString` with its host and port replaced by the proxy's. */
  postgresUrl(connectionString: string): string {
    const url = new URL(connectionString);
    url.hostname = "127.0.0.1";
    url.port = String(this.port);
    return url.toString();
  }

  /** The mode of the connections of `role`. */
  mode(role: Role): FaultMode {
    return this.#modes[role];
  }

  /** Sets the mode of the connections of `role` (`all`: both roles), effective at once for open connections. */
  set(mode: FaultMode, role: Role | "all" = "all"): void {
    if (mode.kind === "delay" && !(mode.ms >= 0)) throw new Error(`fault proxy: delay needs ms >= 0, got ${mode.ms}`);
    for (const r of role === "all" ? (["listener", "data"] as const) : [role]) this.#modes[r] = mode;
    for (const link of [...this.#links]) link.apply();
  }

  /** Back to `pass` for every role: held and delayed bytes are delivered, in order. */
  heal(): void {
    this.set(PASS);
  }

  /** The open connections' roles. */
  roles(): Role[] {
    return [...this.#links].filter((l) => !l.closed).map((l) => l.role);
  }

  /** Counters and the current state. */
  stats(): ProxyStats {
    const open = { listener: 0, data: 0 };
    let held = 0;
    for (const l of this.#links) {
      open[l.role]++;
      held += l.held;
    }
    return { ...this.#counters, accepted: this.#accepted, open, held };
  }

  /** Stops listening and closes every connection (both ends). */
  async close(): Promise<void> {
    for (const link of this.#links) link.destroy();
    this.#links.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket, options: FaultProxyOptions): void {
    this.#accepted++;
    socket.on("error", () => {});
    if (this.#modes.data.kind === "reset") {
      this.#counters.resets++;
      socket.resetAndDestroy();
      return;
    }
    const link = new Link(
      socket,
      options.target,
      options.protocol,
      (role) => this.#modes[role],
      this.#counters,
      (l) => this.#links.delete(l),
    );
    this.#links.add(link);
  }
}
