/**
 * The connections of a `postgresql` operator: node-postgres clients in pipeline mode (each
 * query is written at once, without waiting for the answers of the ones before it, each with
 * its own Sync, so one failing query fails alone). `pg.Pool` cannot pipeline: it hands a
 * connection to one query at a time. Measured here (BENCHMARKS.md, 64 reads in flight):
 * pg.Pool of 10 50 µs per read, pipelined pg 24 µs, postgres.js 34-47 µs.
 *
 * @module
 */
import { Socket } from "node:net";
import type { Client, ClientConfig, QueryArrayConfig } from "pg";
import { CLOSE_GRACE_MS, type PoolHandle, tracked } from "./_sql.js";

/** A query's route: calls with the same route share a connection, so their order is kept. */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Up to `size` pipelined connections, opened as calls need them. A call goes to the connection
 * its route (the row key) hashes to, so calls on one key keep their order and a busy key never
 * waits behind a full pool; a connection that fails is dropped and the next call on its route
 * opens a new one.
 */
export class PipelinedConnections {
  /** Every socket of every connection (connecting ones too), so that an end can destroy them. */
  readonly sockets = new Set<Socket>();
  readonly #slots: (Promise<Client> | undefined)[];
  readonly #pg: typeof import("pg");
  readonly #config: ClientConfig;

  constructor(pg: typeof import("pg"), config: ClientConfig, size: number) {
    this.#pg = pg;
    this.#config = config;
    this.#slots = new Array(size).fill(undefined);
  }

  /** Runs `config` on the connection of `route`; the rows as arrays. */
  async query(config: QueryArrayConfig, route: string): Promise<unknown[][]> {
    const client = await this.#connection(this.#slot(route));
    return (await client.query(config)).rows;
  }

  /** How many connections are open or opening. */
  get open(): number {
    return this.#slots.filter(Boolean).length;
  }

  /** Ends every connection: queries already sent get their answers, then the sockets close. */
  end(): Promise<void> {
    const ending = this.#slots.map((slot) => slot?.then((c) => c.end()).catch(() => {}));
    this.#slots.fill(undefined);
    return Promise.all(ending).then(() => {});
  }

  #slot(route: string): number {
    let h = FNV_OFFSET;
    for (let i = 0; i < route.length; i++) h = Math.imul(h ^ route.charCodeAt(i), FNV_PRIME);
    return (h >>> 0) % this.#slots.length;
  }

  #connection(i: number): Promise<Client> {
    const existing = this.#slots[i];
    if (existing) return existing;
    const client = new this.#pg.Client({
      ...this.#config,
      pipeline: true,
      // node-postgres connects it (TCP or unix socket, TLS on top where asked); ours so that an end can destroy it.
      stream: () => tracked(this.sockets, new Socket()),
    });
    const opening = client.connect().then(
      () => client,
      (err) => {
        drop();
        client.end().catch(() => {});
        throw err;
      },
    );
    const drop = () => {
      if (this.#slots[i] === opening) this.#slots[i] = undefined;
    };
    // A connection that breaks (the server went away) is dropped; without a listener its error would crash the process.
    client.on("error", drop);
    client.on("end", drop);
    this.#slots[i] = opening;
    return opening;
  }
}

/**
 * Ends a set of connections. A connection the server never answered (connecting to a hung
 * server) is dropped at once; calls in flight on the others get
 * {@link CLOSE_GRACE_MS} to finish, then every socket still open is destroyed.
 */
export async function endConnections(handle: PoolHandle<PipelinedConnections>): Promise<void> {
  const ended = handle.pool.end();
  for (const socket of handle.sockets) if (socket.bytesRead === 0) socket.destroy();
  const force = setTimeout(() => {
    for (const socket of handle.sockets) socket.destroy();
  }, CLOSE_GRACE_MS);
  try {
    await ended;
  } finally {
    clearTimeout(force);
  }
}
