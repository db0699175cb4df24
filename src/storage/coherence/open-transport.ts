/** Opens the publishing side a `[coherence]` table names, its client package loaded lazily. @module */
import { ProfileError, SettingsError } from "../../errors.js";
import { redisConfig } from "../../operators/drivers/_redis-options.js";
import type { CoherenceConfig } from "../../settings/coherence.js";
import { pgWhere } from "./listeners.js";
import type { Publisher } from "./transport.js";

/**
 * Opens the publisher the config names.
 * @throws SettingsError for bad connection options; ProfileError if the client package fails to load.
 */
export async function openPublisher(config: CoherenceConfig): Promise<Publisher> {
  try {
    if (config.type === "redis") {
      const rc = redisConfig(config.connection, "coherence");
      return (await import("./redis-transport.js")).redisPublisher(rc, config);
    }
    const where = pgWhere(config.connection.connection_string!);
    if (where === "postgresql") throw new SettingsError("coherence.connection_string: expected a postgresql:// URL");
    return (await import("./postgresql-transport.js")).postgresqlPublisher(where, config);
  } catch (err) {
    if (err instanceof ProfileError) {
      // The connection options are checked by the profile option parsers: say where they are.
      throw new SettingsError(err.message.replace(/profiles\.coherence\./g, "coherence."), { cause: err });
    }
    throw err;
  }
}
