/**
 * The `[coherence]` table: which engine carries the coherence bus (Redis
 * pub/sub or PostgreSQL LISTEN/NOTIFY), where it is, and on which channel.
 * Checked once, with the path of the bad value in the message.
 *
 * @module
 */
import { SettingsError } from "../errors.js";
import { registerSecrets } from "./_secrets.js";

/** The raw `[coherence]` table: string values, as in a settings file. */
export type CoherenceSettings = Readonly<Record<string, string>>;

/** The engines a coherence bus runs on. */
export const COHERENCE_TYPES = ["redis", "postgresql"] as const;
export type CoherenceType = (typeof COHERENCE_TYPES)[number];

/** The `[coherence]` table, checked by {@link checkCoherence}. */
export interface CoherenceConfig {
  type: CoherenceType;
  /** Channel name (Redis channel, or PostgreSQL LISTEN channel). @default "terraphim-persistence" */
  channel: string;
  /**
   * How often each listening connection is pinged (the lease's proof). The staleness bound Δ is three of
   * these: a load never returns a value the shared tiers replaced more than Δ before it began. @default 500
   */
  heartbeatMs: number;
  /**
   * @deprecated No longer used: a save waits for its announcement, and changes gather by themselves while
   * a message is on its way. Still checked, so settings files that set it keep loading (with a warning).
   */
  batchMs: number;
  /** What the table asks for that has no effect (said once at start-up). */
  warnings: string[];
  /** The connection options (`endpoint`, `cluster_endpoints`, `username`, `password`, `db`; or `connection_string`). */
  connection: Record<string, string>;
}

export const DEFAULT_CHANNEL = "terraphim-persistence";
const DEFAULT_HEARTBEAT_MS = 500;
/** PostgreSQL identifiers (and so LISTEN channels) are at most 63 bytes. */
const MAX_PG_CHANNEL_BYTES = 63;
/** A NOTIFY costs PostgreSQL more than a PUBLISH costs Redis: it gathers longer (measured in BENCHMARKS.md, scenario 11). */
const DEFAULT_BATCH_MS: Record<CoherenceType, number> = { redis: 1, postgresql: 3 };
const MAX_BATCH_MS = 1000;
const COMMON_KEYS = ["type", "channel", "heartbeat_ms", "batch_ms"];
const CONNECTION_KEYS: Record<CoherenceType, readonly string[]> = {
  redis: ["endpoint", "cluster_endpoints", "username", "password", "db", "tls_ca_file"],
  postgresql: ["connection_string"],
};

/**
 * Checks a `[coherence]` table (from a settings file, or given to
 * `DeviceStorage.fromSettings({ profiles, coherence })`).
 * @throws SettingsError naming the bad key: `coherence.type: expected "redis" or "postgresql", got "kafka"`.
 * @example
 * checkCoherence({ type: "redis", endpoint: "tcp://127.0.0.1:6379" }); // { type: "redis", channel: "terraphim-persistence", ... }
 */
export function checkCoherence(raw: CoherenceSettings, where = ""): CoherenceConfig {
  if (typeof raw !== "object" || raw === null) {
    throw new SettingsError(`coherence: expected a table, got ${JSON.stringify(raw)}${where}`);
  }
  const type = raw.type?.trim().toLowerCase();
  if (type === undefined || type === "") {
    throw new SettingsError(`coherence.type: required ("redis" or "postgresql")${where}`);
  }
  if (!(COHERENCE_TYPES as readonly string[]).includes(type)) {
    throw new SettingsError(
      `coherence.type: expected "redis" or "postgresql", got ${JSON.stringify(raw.type)}${where}`,
    );
  }
  registerSecrets(raw);
  const t = type as CoherenceType;
  const accepted = [...COMMON_KEYS, ...CONNECTION_KEYS[t]];
  for (const [key, value] of Object.entries(raw)) {
    if (!accepted.includes(key)) {
      throw new SettingsError(
        `coherence.${key}: unknown option for a ${t} bus (accepted: ${accepted.join(", ")})${where}`,
      );
    }
    if (typeof value !== "string") {
      throw new SettingsError(`coherence.${key}: expected a string, got ${typeof value}${where}`);
    }
  }
  const channel = raw.channel ?? DEFAULT_CHANNEL;
  if (channel === "" || /[\0\r\n]/.test(channel)) {
    throw new SettingsError(
      `coherence.channel: expected a non-empty name on one line, got ${JSON.stringify(channel)}${where}`,
    );
  }
  if (t === "postgresql" && Buffer.byteLength(channel) > MAX_PG_CHANNEL_BYTES) {
    throw new SettingsError(
      `coherence.channel: expected at most ${MAX_PG_CHANNEL_BYTES} bytes (a PostgreSQL identifier), got ${Buffer.byteLength(channel)}${where}`,
    );
  }
  if (t === "postgresql" && !raw.connection_string?.trim()) {
    throw new SettingsError(`coherence.connection_string: required for a postgresql bus${where}`);
  }
  if (t === "redis" && raw.endpoint !== undefined && raw.cluster_endpoints !== undefined) {
    throw new SettingsError(`coherence.cluster_endpoints: give either endpoint or cluster_endpoints, not both${where}`);
  }
  let heartbeatMs = DEFAULT_HEARTBEAT_MS;
  if (raw.heartbeat_ms !== undefined) {
    heartbeatMs = Number(raw.heartbeat_ms.trim());
    if (!Number.isInteger(heartbeatMs) || heartbeatMs < 50) {
      throw new SettingsError(
        `coherence.heartbeat_ms: expected an integer number of ms >= 50, got ${JSON.stringify(raw.heartbeat_ms)}${where}`,
      );
    }
  }
  let batchMs = DEFAULT_BATCH_MS[t];
  const warnings: string[] = [];
  if (raw.batch_ms !== undefined) {
    warnings.push(
      "coherence.batch_ms is no longer used: a save waits for its announcement, and changes gather while one is on its way",
    );
    batchMs = Number(raw.batch_ms.trim());
    if (!Number.isFinite(batchMs) || batchMs < 0 || batchMs > MAX_BATCH_MS) {
      throw new SettingsError(
        `coherence.batch_ms: expected a number of ms from 0 to ${MAX_BATCH_MS}, got ${JSON.stringify(raw.batch_ms)}${where}`,
      );
    }
  }
  const connection: Record<string, string> = {};
  for (const key of CONNECTION_KEYS[t]) if (raw[key] !== undefined) connection[key] = raw[key];
  return { type: t, channel, heartbeatMs, batchMs, connection, warnings };
}
