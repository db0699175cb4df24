/**
 * Which listening connections an instance keeps: one per server, carrying
 * the bus's channel where the bus is on that server and the change reports of
 * every shared tier there (Redis: tracking of the tier's key prefix, on every
 * master of a cluster; PostgreSQL: the table trigger's channel, installed
 * here). Connections to the same server are shared.
 *
 * @module
 */
import type { Logger } from "../../logger.js";
import { redisConfig } from "../../operators/drivers/_redis-options.js";
import type { CoherenceConfig } from "../../settings/coherence.js";
import type { Feed } from "./feeds.js";
import type { Interests, Listener } from "./listener.js";
import { feedNames, prepareTrigger } from "./pg-trigger.js";
import { PostgresqlListener } from "./postgresql-listener.js";
import { clusterMasters, type RedisEndpoint, RedisListener, redisAddress } from "./redis-listener.js";

/** One listening connection and what it carries. */
export interface Planned {
  listener: Listener;
  /** Whether the bus's channel is on it. */
  bus: boolean;
  /** Redis feeds tracked on it. */
  tracked: Feed[];
  /** PostgreSQL feeds by their trigger's channel. */
  channels: Map<string, Feed>;
}

interface Draft {
  make(interests: Interests): Listener;
  interests: Interests;
  bus: boolean;
  tracked: Feed[];
  channels: Map<string, Feed>;
}

/** Where a PostgreSQL connection string points, for messages (never a credential). */
export function pgWhere(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    return `${url.hostname}:${url.port || 5432}${url.pathname}`;
  } catch {
    return "postgresql";
  }
}

/**
 * The listeners for `bus` (undefined: a watcher of feeds only) and `feeds`. PostgreSQL feeds get their
 * trigger here: one that cannot be installed (nor is there) leaves its feed on the bus, with the reason.
 */
export async function planListeners(
  bus: CoherenceConfig | undefined,
  feeds: readonly Feed[],
  logger: Logger,
): Promise<Planned[]> {
  const drafts = new Map<string, Draft>();
  const draft = (key: string, make: (i: Interests) => Listener): Draft => {
    let d = drafts.get(key);
    if (!d) {
      d = {
        make,
        interests: { channels: new Set(), prefixes: new Set() },
        bus: false,
        tracked: [],
        channels: new Map(),
      };
      drafts.set(key, d);
    }
    return d;
  };
  const needsRedis = bus?.type === "redis" || feeds.some((f) => f.source.kind === "redis");
  const ioredis = needsRedis ? await import("ioredis") : undefined;
  const needsPg = bus?.type === "postgresql" || feeds.some((f) => f.source.kind === "postgresql");
  const pg = needsPg ? (await import("pg")).default : undefined;
  const redisDraft = (e: RedisEndpoint) =>
    draft(`redis ${redisAddress(e.target)} ${e.username ?? ""}`, (i) => new RedisListener(ioredis!, e, i));
  const redisEndpoints = (targets: RedisEndpoint["target"][], cluster: boolean, user?: string, password?: string) => {
    const seeds = targets.map((target) => ({ target, username: user, password }));
    return cluster ? clusterMasters(ioredis!, seeds) : Promise.resolve(seeds);
  };
  const pgDraft = (connectionString: string) => {
    const where = pgWhere(connectionString);
    return draft(`postgresql ${connectionString}`, (i) => new PostgresqlListener(pg!, connectionString, where, i));
  };

  if (bus?.type === "redis") {
    const rc = redisConfig(bus.connection, "coherence");
    for (const e of await redisEndpoints(rc.targets, rc.cluster, rc.username, rc.password)) {
      const d = redisDraft(e);
      d.bus = true;
      d.interests.channels.add(bus.channel);
    }
  } else if (bus?.type === "postgresql") {
    const d = pgDraft(bus.connection.connection_string!);
    d.bus = true;
    d.interests.channels.add(bus.channel);
  }
  for (const feed of feeds) {
    const s = feed.source;
    if (s.kind === "redis") {
      for (const e of await redisEndpoints([...s.targets], s.cluster, s.username, s.password)) {
        const d = redisDraft(e);
        d.tracked.push(feed);
        d.interests.prefixes.add(s.prefix);
      }
      continue;
    }
    // Listened to whatever the install says: the trigger may be another role's, and a role that may not
    // install it still hears every change it reports. Installed (or found) on each connection.
    const d = pgDraft(s.connectionString);
    const { channel } = feedNames(s);
    d.channels.set(channel, feed);
    d.interests.channels.add(channel);
    let warned = false;
    d.interests.prepare ??= [];
    d.interests.prepare.push(async (client) => {
      const outcome = await prepareTrigger(client, s);
      const via = `postgresql trigger on "${s.table}"`;
      const reason = outcome.installed ? undefined : `no trigger on table "${s.table}": ${outcome.reason}`;
      feed.untriggered(channel, reason, via);
      if (outcome.installed || warned) return;
      warned = true;
      logger.warn(
        { profile: feed.tier, reason: outcome.reason },
        "coherence bus: cannot install the change trigger; this instance's writes announce themselves (pg_notify in their own statement), other programs' changes of the table go unseen",
      );
    });
  }
  return [...drafts.values()].map((d) => ({
    listener: d.make(d.interests),
    bus: d.bus,
    tracked: d.tracked,
    channels: d.channels,
  }));
}
