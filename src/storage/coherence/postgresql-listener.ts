/**
 * A listening connection to one PostgreSQL database: `LISTEN` on the bus's
 * channel and on the change channels of the shared tables there (filled by
 * their trigger, see `pg-trigger.ts`). A dedicated connection, never a pooled
 * one (a pooler in transaction mode would break LISTEN); pinged with
 * `SELECT <n>` on the same connection, so an answer proves that every
 * notification committed before it was delivered. Reconnected by this
 * module, so that it knows when it was deaf.
 *
 * @module
 */
import { Socket } from "node:net";
import type { Client, Notification } from "pg";
import { redactSecrets } from "../../errors.js";
// A channel is quoted as an identifier for LISTEN; `pg_notify` takes it as text, so both name the same one.
import { quoteIdentifier } from "../../operators/drivers/_sql.js";
import { Echoes, echoChannel, type Interests, type Listener, type ListenerEvents, ReconnectLoop } from "./listener.js";

const CONNECT_TIMEOUT_MS = 3000;

export class PostgresqlListener implements Listener {
  readonly description: string;
  readonly tracking = undefined;
  readonly #connectionString: string;
  readonly #interests: Interests;
  readonly #pg: typeof import("pg").default;
  #client: Client | undefined;
  #socket: Socket | undefined;
  #listening = false;
  #loop: ReconnectLoop | undefined;
  /** A channel only this listener listens to: its own notifications there are the echoes of its pings. */
  readonly #echo = echoChannel("tp_echo_");
  readonly #echoes: Echoes;

  /** @param where `host:port/db`, for messages (the connection string holds secrets). */
  constructor(pg: typeof import("pg").default, connectionString: string, where: string, interests: Interests) {
    this.#pg = pg;
    this.#connectionString = connectionString;
    this.#interests = interests;
    this.description = `postgresql ${where}`;
    this.#echoes = new Echoes(this.description);
  }

  start(events: ListenerEvents): void {
    const loop = new ReconnectLoop(() => this.#connect(events, loop));
    this.#loop = loop;
    loop.start();
  }

  /** `pg_notify(<echo channel>, n)` on the listening connection itself; resolves when its notification arrives. */
  async ping(n: number): Promise<void> {
    const client = this.#client;
    if (!client || !this.#listening) throw new Error(`${this.description}: not listening`);
    const echo = this.#echoes.wait(n);
    client
      .query("SELECT pg_notify($1, $2)", [this.#echo, String(n)])
      .catch((err: Error) => this.#echoes.failed(n, err));
    await echo;
  }

  replace(_reason: string): void {
    // end() would wait for a silent server: the socket goes at once.
    this.#socket?.destroy();
  }

  async close(): Promise<void> {
    this.#loop?.close();
    const client = this.#client;
    this.#client = undefined;
    this.#socket?.destroy();
    await client?.end().catch(() => {});
  }

  #connect(events: ListenerEvents, loop: ReconnectLoop): void {
    const socket = new Socket();
    const client = new this.#pg.Client({
      connectionString: this.#connectionString,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // Tells an operator's pg_stat_activity which connections listen, and to what.
      application_name: `tp-listen ${[...this.#interests.channels].join(",")}`.slice(0, 63),
      stream: () => socket,
    });
    this.#client = client;
    this.#socket = socket;
    this.#listening = false;
    let listening = false;
    let ended = false;
    const lost = (why: string) => {
      if (ended) return;
      ended = true;
      if (this.#client === client) {
        this.#client = undefined;
        this.#listening = false;
        this.#echoes.clear("the listening connection closed");
      }
      socket.destroy();
      client.end().catch(() => {});
      if (loop.closed) return;
      events.down(
        listening ? `the listening connection closed (${redactSecrets(why)})` : `cannot listen: ${redactSecrets(why)}`,
      );
      loop.lost();
    };
    client.on("error", (err) => lost(err.message));
    client.on("end", () => lost("connection ended"));
    socket.on("close", () => lost("socket closed"));
    client.on("notification", (n: Notification) => {
      if (n.payload === undefined) return;
      if (n.channel === this.#echo) this.#echoes.heard(n.payload);
      else if (this.#interests.channels.has(n.channel)) events.message(n.channel, n.payload);
    });
    const listen = [...this.#interests.channels, this.#echo].map((c) => `LISTEN ${quoteIdentifier(c, '"')}`).join("; ");
    client
      .connect()
      .then(() => client.query(listen))
      .then(async () => {
        for (const prepare of this.#interests.prepare ?? []) await prepare(client);
      })
      .then(
        () => {
          if (ended || loop.closed) return;
          listening = true;
          this.#listening = true;
          loop.listening();
          events.up();
        },
        (err: Error) => lost(err.message),
      );
  }
}
