/**
 * The coherence bus's publishing side on PostgreSQL: `pg_notify` on one
 * connection (so messages keep their order), replaced when it fails or does
 * not answer in time. Payloads stay under NOTIFY's 8000-byte limit.
 *
 * @module
 */
import { Socket } from "node:net";
import type { Client } from "pg";
import type { CoherenceConfig } from "../../settings/coherence.js";
import { type Publisher, publishFailed, within } from "./transport.js";

/** NOTIFY refuses payloads of 8000 bytes or more. */
export const PG_MAX_PAYLOAD_BYTES = 7999;
const CONNECT_TIMEOUT_MS = 3000;

export async function postgresqlPublisher(where: string, config: CoherenceConfig): Promise<Publisher> {
  const pg = (await import("pg")).default;
  let current: { client: Client; socket: Socket; ready: Promise<unknown> } | undefined;
  const drop = () => {
    current?.socket.destroy();
    current?.client.end().catch(() => {});
    current = undefined;
  };
  const connection = () => {
    if (current) return current;
    const socket = new Socket();
    const client = new pg.Client({
      connectionString: config.connection.connection_string!,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      stream: () => socket,
    });
    client.on("error", drop);
    const c = { client, socket, ready: client.connect() };
    current = c;
    return c;
  };
  const description = `postgresql ${where}, channel ${JSON.stringify(config.channel)}`;
  const limitMs = config.heartbeatMs * 2;
  return {
    maxPayloadBytes: PG_MAX_PAYLOAD_BYTES,
    description,
    async publish(payload) {
      const c = connection();
      try {
        await within(
          c.ready.then(() => c.client.query("SELECT pg_notify($1, $2)", [config.channel, payload])),
          limitMs,
          "NOTIFY",
        );
      } catch (err) {
        if (current === c) drop();
        throw publishFailed(description, "notify", err);
      }
    },
    async close() {
      const c = current;
      current = undefined;
      if (c) await within(c.client.end(), 1000, "close").catch(() => c.socket.destroy());
    },
  };
}
