/** Opens the transport a `[coherence]` table names, its client package loaded lazily. @module */
import { ProfileError, SettingsError } from "../../errors.js";
import type { CoherenceConfig } from "../../settings/coherence.js";
import type { Transport } from "./transport.js";

/**
 * Opens the transport the config names (its client package loaded lazily).
 * @throws SettingsError for bad connection options; ProfileError if the client package fails to load.
 */
export async function openTransport(config: CoherenceConfig): Promise<Transport> {
  try {
    if (config.type === "redis") return (await import("./redis-transport.js")).redisTransport(config);
    return (await import("./postgresql-transport.js")).postgresqlTransport(config);
  } catch (err) {
    if (err instanceof ProfileError) {
      // The connection options are checked by the profile option parsers: say where they are.
      throw new SettingsError(err.message.replace(/profiles\.coherence\./g, "coherence."), { cause: err });
    }
    throw err;
  }
}
