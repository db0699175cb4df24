/**
 * The coherence bus on PostgreSQL LISTEN/NOTIFY: `pg_notify` through a one-connection
 * pool (so messages keep their order), and a dedicated listener connection (never a pooled one: a pooler in
 * transaction mode would break LISTEN), reconnected by this module so that it
 * knows when it was deaf. Payloads stay under NOTIFY's 8000-byte limit.
 *
 * @module
 */
import type { Client, Notification, Pool } from "pg";
import { redactSecrets, SettingsError } from "../../errors.js";
// A channel is quoted as an identifier for LISTEN; `pg_notify` takes it as text, so both name the same one.
import { quoteIdentifier } from "../../operators/drivers/_sql.js";
import type { CoherenceConfig } from "../../settings/coherence.js";
import { publishFailed, ReconnectLoop, type Transport, type TransportEvents } from "./transport.js";

/** NOTIFY refuses payloads of 8000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7999;
const CONNECT_TIMEOUT_MS = 3000;

export async function postgresqlTransport(config: CoherenceConfig): Promise<Transport> {
  const connectionString = config.connection.connection_string!;
  let where: string;
  try {
    const url = new URL(connectionString);
    where = `${url.hostname}:${url.port || 5432}${url.pathname}`;
  } catch {
    throw new SettingsError("coherence.connection_string: expected a postgresql:// URL");
  }
  const pg = (await import("pg")).default;
  const options = { connectionString, connectionTimeoutMillis: CONNECT_TIMEOUT_MS };
  // One connection: notifications then arrive in the order of their sequence numbers.
  const pool = new pg.Pool({ ...options, max: 1 });
  pool.on("error", () => {
    // An idle connection died: the pool replaces it; a failed notify reports itself.
  });
  return new PostgresqlTransport(where, config.channel, pool, () => new pg.Client(options));
}

class PostgresqlTransport implements Transport {
  readonly maxPayloadBytes = MAX_PAYLOAD_BYTES;
  readonly description: string;
  readonly #channel: string;
  readonly #pool: Pool;
  readonly #client: () => Client;
  #listener: Client | undefined;
  #loop: ReconnectLoop | undefined;

  constructor(where: string, channel: string, pool: Pool, client: () => Client) {
    this.#channel = channel;
    this.#pool = pool;
    this.#client = client;
    this.description = `postgresql ${where}, channel ${JSON.stringify(channel)}`;
  }

  async publish(payload: string): Promise<void> {
    try {
      await this.#pool.query("SELECT pg_notify($1, $2)", [this.#channel, payload]);
    } catch (err) {
      throw publishFailed(this.description, "notify", err);
    }
  }

  listen(events: TransportEvents): void {
    const loop = new ReconnectLoop(() => this.#connect(events, loop));
    this.#loop = loop;
    loop.start();
  }

  /** One listener connection (a dedicated one: never from the pool). */
  #connect(events: TransportEvents, loop: ReconnectLoop): void {
    const client = this.#client();
    this.#listener = client;
    let listening = false;
    let ended = false;
    const lost = (why: string) => {
      if (ended) return;
      ended = true;
      if (this.#listener === client) this.#listener = undefined;
      client.end().catch(() => {});
      if (loop.closed) return;
      events.down(
        listening ? `the listener connection closed (${redactSecrets(why)})` : `cannot listen: ${redactSecrets(why)}`,
      );
      loop.lost();
    };
    client.on("error", (err) => lost(err.message));
    client.on("end", () => lost("connection ended"));
    client.on("notification", (n: Notification) => {
      if (n.channel === this.#channel && n.payload !== undefined) events.message(n.payload);
    });
    client
      .connect()
      .then(() => client.query(`LISTEN ${quoteIdentifier(this.#channel, '"')}`))
      .then(
        () => {
          if (ended || loop.closed) return;
          listening = true;
          loop.listening();
          events.up();
        },
        (err: Error) => lost(err.message),
      );
  }

  async close(): Promise<void> {
    this.#loop?.close();
    const listener = this.#listener;
    this.#listener = undefined;
    await Promise.all([listener?.end().catch(() => {}), this.#pool.end().catch(() => {})]);
  }
}
