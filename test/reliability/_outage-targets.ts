/**
 * The servers the outage tests run (their own redis-server, s3rver and
 * PostgreSQL, never the machine's shared ones) and the settings over them.
 */
import type { StorageSettings } from "../../src/index.js";
import {
  hasCommand,
  type OwnServer,
  postgresBinDir,
  requireBinaries,
  startOwnS3rver,
  startPostgres,
  startRedis,
} from "../helpers/servers.js";

export const TIMEOUT_MS = 1000;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Target {
  name: string;
  server: OwnServer;
  /** Profile options of the server (without speed / timeout_ms). */
  profile: Record<string, string>;
}

export type Start = () => Promise<Target>;

export const targets: Record<string, Start> = {
  redis: async () => {
    const server = await startRedis();
    return { name: "redis", server, profile: { type: "redis", endpoint: server.endpoint } };
  },
  s3: async () => {
    const server = await startOwnS3rver();
    return {
      name: "s3",
      server,
      profile: {
        type: "s3",
        bucket: server.bucket,
        endpoint: server.endpoint,
        region: "us-east-1",
        access_key_id: "S3RVER",
        secret_access_key: "S3RVER",
        delete_max_size: "1",
      },
    };
  },
  postgresql: async () => {
    const server = await startPostgres();
    await server.psql("CREATE TABLE kv (key TEXT PRIMARY KEY, value BYTEA NOT NULL)");
    return {
      name: "postgresql",
      server,
      profile: { type: "postgresql", connection_string: server.connectionString, table: "kv" },
    };
  },
};

/** memory (fastest) -> the server -> sqlite, by fixed speeds: loads that miss memory must get past the server. */
export function settingsFor(t: Target, datadir: string): StorageSettings {
  return {
    profiles: {
      memory: { type: "memory", speed: "1" },
      [t.name]: { ...t.profile, speed: "2", timeout_ms: String(TIMEOUT_MS) },
      sqlite: { type: "sqlite", datadir, speed: "3" },
    },
  };
}

/** A redis-server that keeps its data across a kill (append-only file, fsync on every write). */
export const durableRedis: Start = async () => {
  const server = await startRedis({ args: ["--appendonly", "yes", "--appendfsync", "always"] });
  return { name: "redis", server, profile: { type: "redis", endpoint: server.endpoint } };
};

export const installed: Record<string, boolean> = {
  redis: await requireBinaries("redis outage", await hasCommand("redis-server")),
  s3: true,
  postgresql: await requireBinaries("postgresql outage", postgresBinDir() !== undefined && (await hasCommand("psql"))),
};
