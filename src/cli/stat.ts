/** `stat KEY`: which profiles hold a key, its stored size, and whether it is compressed. */
import type { Command } from "commander";
import { decodeJson, isCompressed, maybeDecompress, NotFoundError, type Tier } from "../index.js";
import { formatBytes, table } from "./_format.js";
import { action, checkKey, messageOf, withTargets } from "./_run.js";

/** One profile's view of a key. */
interface StatRow {
  profile: string;
  scheme: string;
  /** `null`: could not tell (the profile failed). */
  present: boolean | null;
  storedBytes?: number;
  compressed?: boolean;
  /** Size of the JSON after decompression. */
  jsonBytes?: number;
  validJson?: boolean;
  lastModified?: string;
  /** When the value expires (ISO time), if it has a TTL. */
  expiresAt?: string;
  error?: string;
}

export function registerStat(program: Command): void {
  program
    .command("stat")
    .description("show which profiles hold KEY, its stored size, and whether it is compressed")
    .argument("<key>", "storage key")
    .option("-p, --profile <name>", "look in this profile only")
    .action(
      action(async (output, options, rawKey: string, opts: { profile?: string }) => {
        const key = checkKey(rawKey);
        return withTargets(output, options, opts.profile, async (storage, targets, settings) => {
          const rows = await Promise.all(targets.map((e) => statOne(e, key)));
          for (const [name, err] of storage.profileErrors) {
            rows.push({
              profile: name,
              scheme: settings.profiles[name]?.type ?? "?",
              present: null,
              error: err.message,
            });
          }
          output.result({ key, profiles: rows }, () =>
            table(
              ["profile", "scheme", "present", "stored", "compressed", "json", "modified / error"],
              rows.map((r) => [
                r.profile,
                r.scheme,
                r.present === null ? "?" : r.present ? "yes" : "no",
                r.storedBytes === undefined ? "-" : formatBytes(r.storedBytes),
                r.compressed === undefined ? "-" : r.compressed ? "zstd" : "no",
                r.jsonBytes === undefined ? "-" : r.validJson ? formatBytes(r.jsonBytes) : "INVALID",
                r.error ?? r.lastModified ?? "",
              ]),
            ),
          );
          return rows.some((r) => r.present) ? 0 : 1;
        });
      }),
    );
}

async function statOne(e: Tier, key: string): Promise<StatRow> {
  const row: StatRow = { profile: e.name, scheme: e.scheme, present: false };
  try {
    // An expired value is absent (NotFoundError).
    const st = await e.stat(key);
    const raw = await e.read(key);
    row.present = true;
    row.storedBytes = raw.length;
    row.compressed = isCompressed(raw);
    if (st.lastModified) row.lastModified = st.lastModified.toISOString();
    if (st.expiresAt !== undefined) row.expiresAt = new Date(st.expiresAt).toISOString();
    try {
      row.jsonBytes = maybeDecompress(raw).length;
      decodeJson(raw, { profile: e.name, key });
      row.validJson = true;
    } catch (err) {
      row.validJson = false;
      row.error = messageOf(err);
    }
  } catch (err) {
    if (err instanceof NotFoundError) return row;
    row.present = null;
    row.error = messageOf(err);
  }
  return row;
}
