/** Commands on single keys and listings: `get`, `put`, `rm`, `stat`, `ls`. */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { decodeJson, isCompressed, maybeDecompress } from "../codec.js";
import type { ProfileEntry } from "../device-storage.js";
import { NotFoundError, PersistenceError } from "../errors.js";
import { formatBytes, table } from "./_format.js";
import {
  action,
  call,
  checkKey,
  checkPrefix,
  isReservedKey,
  messageOf,
  openStorage,
  profileEntry,
  readSettings,
  UsageError,
  withStorage,
} from "./_run.js";

interface ProfileOption {
  profile?: string;
}

export function registerKeys(program: Command): void {
  program
    .command("get")
    .description(
      "print the JSON value stored under KEY (decompressed); without --profile, a tiered load: fastest profile first, then fallback and write-back",
    )
    .argument("<key>", "storage key, e.g. document_my_doc.json")
    .option("-p, --profile <name>", "read this profile only (no fallback, no write-back)")
    .action(
      action(async (output, options, rawKey: string, opts: ProfileOption) => {
        const key = checkKey(rawKey);
        const settings = await readSettings(options, output);
        const names = opts.profile === undefined ? undefined : [opts.profile];
        await withStorage(await openStorage(settings, names), async (storage) => {
          if (opts.profile !== undefined) {
            const entry = profileEntry(storage, opts.profile);
            const raw = await call(entry, "read", key, () => entry.op.read(key));
            const value = decodeJson(raw, { profile: entry.name, key });
            output.value(
              { key, profile: entry.name, writeBack: false, storedBytes: raw.length, compressed: isCompressed(raw) },
              value,
            );
            return;
          }
          const r = await storage.loadValue(key);
          output.value({ key, profile: r.profile, writeBack: r.writeBack }, r.value);
          if (!output.json)
            output.note(`(from ${r.profile}${r.writeBack ? `, written back to ${storage.fastestProfile}` : ""})`);
        });
      }),
    );

  program
    .command("put")
    .description("validate a JSON value and save it under KEY to every profile (or one), compressed when 1 MiB or more")
    .argument("<key>", "storage key")
    .argument("[file]", 'file holding the JSON value; "-" or nothing reads stdin')
    .option("-p, --profile <name>", "write this profile only")
    .action(
      action(async (output, options, rawKey: string, file: string | undefined, opts: ProfileOption) => {
        const key = checkKey(rawKey);
        const text = await readInput(file);
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch (err) {
          throw new PersistenceError(
            `${file && file !== "-" ? file : "stdin"} is not valid JSON (${messageOf(err)}); nothing was written`,
            { key },
          );
        }
        const settings = await readSettings(options, output);
        const names = opts.profile === undefined ? undefined : [opts.profile];
        await withStorage(await openStorage(settings, names), async (storage) => {
          const targets = opts.profile === undefined ? storage.ranked : [profileEntry(storage, opts.profile)];
          await storage.saveValue(key, value, { profiles: targets.map((e) => e.name) });
          const bytes = Buffer.byteLength(JSON.stringify(value));
          const profiles = targets.map((e) => e.name);
          output.result(
            { key, bytes, profiles },
            () => `saved ${key} (${formatBytes(bytes)}) to ${profiles.join(", ")}`,
          );
        });
      }),
    );

  program
    .command("rm")
    .description("delete KEY from every profile (or one)")
    .argument("<key>", "storage key")
    .option("-p, --profile <name>", "delete from this profile only")
    .option("-f, --force", "succeed even if no profile held the key")
    .action(
      action(async (output, options, rawKey: string, opts: ProfileOption & { force?: boolean }) => {
        const key = checkKey(rawKey);
        const settings = await readSettings(options, output);
        const names = opts.profile === undefined ? undefined : [opts.profile];
        return withStorage(await openStorage(settings, names), async (storage) => {
          const targets = opts.profile === undefined ? storage.ranked : [profileEntry(storage, opts.profile)];
          const held = await Promise.all(
            targets.map((e) => call(e, "exists", key, () => e.op.exists(key)).catch(() => true)),
          );
          const wasIn = targets.filter((_, i) => held[i]).map((e) => e.name);
          await storage.deleteValue(key, { profiles: targets.map((e) => e.name) });
          const deletedFrom = targets.map((e) => e.name);
          if (wasIn.length === 0 && !opts.force) {
            output.result({ key, found: false, deletedFrom: [], wasIn }, () => []);
            output.note(`error: ${key} is not in ${opts.profile ? `profile ${opts.profile}` : "any profile"}`);
            return 1;
          }
          output.result({ key, found: wasIn.length > 0, deletedFrom, wasIn }, () =>
            wasIn.length === 0
              ? `${key} was not in any profile`
              : `deleted ${key} from ${wasIn.join(", ")}${wasIn.length < deletedFrom.length ? ` (checked ${deletedFrom.join(", ")})` : ""}`,
          );
          return 0;
        });
      }),
    );

  program
    .command("stat")
    .description("show which profiles hold KEY, its stored size, and whether it is compressed")
    .argument("<key>", "storage key")
    .option("-p, --profile <name>", "look in this profile only")
    .action(
      action(async (output, options, rawKey: string, opts: ProfileOption) => {
        const key = checkKey(rawKey);
        const settings = await readSettings(options, output);
        const names = opts.profile === undefined ? undefined : [opts.profile];
        return withStorage(await openStorage(settings, names), async (storage) => {
          const targets = opts.profile === undefined ? storage.ranked : [profileEntry(storage, opts.profile)];
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

  program
    .command("ls")
    .description("list keys (starting with PREFIX) in every profile that can list, or one")
    .argument("[prefix]", "only keys starting with this")
    .option("-p, --profile <name>", "list this profile only")
    .action(
      action(async (output, options, rawPrefix: string | undefined, opts: ProfileOption) => {
        const prefix = checkPrefix(rawPrefix);
        const settings = await readSettings(options, output);
        const names = opts.profile === undefined ? undefined : [opts.profile];
        return withStorage(await openStorage(settings, names), async (storage) => {
          const targets = opts.profile === undefined ? storage.ranked : [profileEntry(storage, opts.profile)];
          const listed = await listAll(targets, prefix);
          const only = opts.profile === undefined ? undefined : listed.profiles[0];
          if (only && !only.listable) {
            throw new PersistenceError(
              `profile "${only.name}" (${only.scheme}) cannot list its keys: the backend has no listing. Read known keys with get/stat, or list a profile that can (${storage.ranked
                .filter((e) => e.op.capabilities.list)
                .map((e) => e.name)
                .join(", ")})`,
              { profile: only.name },
            );
          }
          output.result({ prefix, keys: listed.keys, profiles: listed.profiles }, () => listed.keys.map((k) => k.key));
          if (!output.json) {
            for (const p of listed.profiles) {
              if (!p.listable)
                output.note(`note: profile ${p.name} (${p.scheme}) cannot list keys; keys only there are not shown`);
              if (p.error) output.note(`error: listing profile ${p.name} failed: ${p.error}`);
            }
          }
          return listed.profiles.some((p) => p.error) ? 1 : 0;
        });
      }),
    );
}

/** One profile's view of a key, for `stat`. */
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
  error?: string;
}

async function statOne(e: ProfileEntry, key: string): Promise<StatRow> {
  const row: StatRow = { profile: e.name, scheme: e.scheme, present: false };
  try {
    const st = await call(e, "stat", key, () => e.op.stat(key));
    const raw = await call(e, "read", key, () => e.op.read(key));
    row.present = true;
    row.storedBytes = raw.length;
    row.compressed = isCompressed(raw);
    if (st.lastModified) row.lastModified = st.lastModified.toISOString();
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

/** The keys of every listable profile, merged, with which profiles hold each. */
export async function listAll(
  targets: readonly ProfileEntry[],
  prefix: string,
): Promise<{
  keys: { key: string; profiles: string[] }[];
  profiles: { name: string; scheme: string; listable: boolean; count?: number; error?: string }[];
}> {
  const byKey = new Map<string, string[]>();
  const profiles = await Promise.all(
    targets.map(async (e) => {
      const info = { name: e.name, scheme: e.scheme, listable: e.op.capabilities.list };
      if (!info.listable) return info;
      try {
        const keys = (await call(e, "list", prefix, () => e.op.list(prefix))).filter((k) => !isReservedKey(k));
        for (const k of keys) {
          const held = byKey.get(k);
          if (held) held.push(e.name);
          else byKey.set(k, [e.name]);
        }
        return { ...info, count: keys.length };
      } catch (err) {
        return { ...info, error: messageOf(err) };
      }
    }),
  );
  const order = new Map(targets.map((e, i) => [e.name, i]));
  const keys = [...byKey]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, held]) => ({ key, profiles: held.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0)) }));
  return { keys, profiles };
}

/** The JSON text to `put`: a file, or stdin for `-` or no file. */
async function readInput(file: string | undefined): Promise<string> {
  if (file !== undefined && file !== "-") {
    try {
      return await readFile(file, "utf8");
    } catch (err) {
      throw new PersistenceError(`cannot read ${file}: ${messageOf(err)}`);
    }
  }
  if (process.stdin.isTTY) {
    throw new UsageError('put: give a FILE with the JSON value, or pipe it on stdin ("-")');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
