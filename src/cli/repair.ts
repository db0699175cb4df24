/**
 * `repair --from A`: fixes what verify finds by copying A's stored bytes,
 * with their expiry, over the other profiles (and, with `--delete-extra`,
 * deleting keys A does not hold).
 */
import type { Command } from "commander";
import { type DeviceStorage, PersistenceError, type Tier } from "../index.js";
import {
  type CompareOptions,
  type KeyReport,
  keysOf,
  leftOut,
  leftOutText,
  noteLeftOut,
  SHOWN,
  scan,
} from "./_compare.js";
import { copyValue } from "./_copy.js";
import { formatDuration, plural } from "./_format.js";
import { concurrencyOption } from "./_pool.js";
import {
  action,
  allProfileNames,
  checkPrefix,
  type GlobalOptions,
  messageOf,
  type Output,
  openStorage,
  parseList,
  readSettings,
  UsageError,
  unknownProfile,
  withStorage,
  writable,
} from "./_run.js";

interface RepairOptions extends CompareOptions {
  from: string;
  deleteExtra?: boolean;
  dryRun?: boolean;
  force?: boolean;
}

/** The result of `repair --json`. */
export interface RepairResult {
  from: string;
  profiles: string[];
  prefix: string;
  keys: number;
  dryRun: boolean;
  /** Copies written from the source: key and the profiles it was written to. */
  repaired: { key: string; profiles: string[] }[];
  /** Keys deleted from other profiles because the source does not hold them (`--delete-extra`). */
  deleted: { key: string; profiles: string[] }[];
  /** Keys the source does not hold, left as they are (without `--delete-extra`). */
  notInSource: string[];
  /** Keys that could not be repaired: the source's copy is undecodable or unreadable, or a write failed. */
  failed: { key: string; profile?: string; error: string }[];
  /** Configured profiles that could not be opened, so were not repaired. */
  leftOut: { profile: string; error: string }[];
  seconds: number;
}

export function registerRepair(program: Command): void {
  program
    .command("repair")
    .description("fix what verify finds by copying the stored bytes of one profile (--from) over the others")
    .requiredOption("--from <profile>", "the profile whose values are right")
    .option("--profiles <names>", "comma-separated profiles to repair (default: all others)")
    .option("--prefix <prefix>", "only keys starting with this")
    .option("--delete-extra", "delete keys the source does not hold from the other profiles")
    .option("--dry-run", "say what would be done, change nothing")
    .option("--force", 'also repair profiles with read_only = "true"')
    .addOption(concurrencyOption("keys handled at once"))
    .action(action(async (output, options, opts: RepairOptions) => repair(output, options, opts)));
}

async function repair(output: Output, options: GlobalOptions, opts: RepairOptions): Promise<number> {
  const settings = await readSettings(options, output);
  const given = parseList(opts.profiles)?.filter((n) => n !== opts.from);
  if (given && given.length === 0) throw new UsageError("repair needs at least one profile besides --from to repair");
  const started = performance.now();
  const opened = given ? [opts.from, ...new Set(given)] : undefined;
  if (!opened && !allProfileNames(settings).includes(opts.from)) throw unknownProfile(settings, opts.from);
  return withStorage(await openStorage(settings, opened), async (storage) => {
    // Named profiles must all be there; by default, every other profile that opened (the others are noted).
    const toRepair = (opened ?? storage.ranked.map((e) => e.name)).filter((n) => n !== opts.from);
    const how = { command: "repair", named: opened !== undefined, force: opts.force };
    const targets = writable(
      output,
      toRepair.map((n) => storage.profile(n)),
      how,
    );
    const names = [opts.from, ...targets.map((t) => t.name)];
    const entries = names.map((n) => storage.profile(n));
    if (entries.length < 2) {
      throw new PersistenceError(
        `repair found no working profile besides ${opts.from} to repair${leftOutText(storage)}`,
      );
    }
    noteLeftOut(output, storage);
    const result: RepairResult = {
      from: opts.from,
      profiles: names.slice(1),
      prefix: opts.prefix ?? "",
      keys: 0,
      dryRun: opts.dryRun === true,
      repaired: [],
      deleted: [],
      notInSource: [],
      failed: [],
      leftOut: leftOut(storage),
      seconds: 0,
    };
    const keys = await keysOf(entries, checkPrefix(opts.prefix));
    result.keys = keys.length;
    const [src, ...others] = entries as [Tier, ...Tier[]];
    await scan(entries, keys, opts.concurrency, async (r) => {
      if (r.copies.get(src.name)?.state === "missing") await removeExtra(storage, r, others, opts, result);
      else await repairKey(src, others, r, result);
    });
    result.seconds = Math.round(performance.now() - started) / 1000;
    output.result(result, () => repairLines(result));
    return result.failed.length > 0 ? 1 : 0;
  });
}

/** A key the source does not hold: noted, or with `--delete-extra` deleted from the profiles that hold it. */
async function removeExtra(
  storage: DeviceStorage,
  r: KeyReport,
  others: readonly Tier[],
  opts: RepairOptions,
  result: RepairResult,
): Promise<void> {
  const holders = others.filter((e) => r.copies.get(e.name)?.state !== "missing").map((e) => e.name);
  if (!opts.deleteExtra) {
    result.notInSource.push(r.key);
    return;
  }
  if (!result.dryRun) {
    try {
      await storage.deleteValue(r.key, { profiles: holders });
    } catch (err) {
      result.failed.push({ key: r.key, error: messageOf(err) });
      return;
    }
  }
  result.deleted.push({ key: r.key, profiles: holders });
}

/** A key the source holds: its copy written over every other profile whose copy is missing or differs. */
async function repairKey(src: Tier, others: readonly Tier[], r: KeyReport, result: RepairResult): Promise<void> {
  const source = r.copies.get(src.name);
  if (source?.state !== "ok") {
    const why = source && "error" in source ? source.error : "unreadable";
    result.failed.push({ key: r.key, profile: src.name, error: `the source's copy cannot be used: ${why}` });
    return;
  }
  const fix = others.filter((e) => {
    const c = r.copies.get(e.name);
    return c !== undefined && c.state !== "error" && (c.state !== "ok" || c.digest !== source.digest);
  });
  for (const e of others) {
    const c = r.copies.get(e.name);
    if (c?.state === "error") result.failed.push({ key: r.key, profile: e.name, error: c.error });
  }
  const done: string[] = [];
  for (const e of fix) {
    if (!result.dryRun) {
      try {
        // The stored bytes as they are (compressed stays compressed), with their expiry.
        if ((await copyValue(src, e, r.key)) === undefined) {
          result.failed.push({ key: r.key, profile: src.name, error: "the key vanished from the source" });
          return;
        }
      } catch (err) {
        result.failed.push({ key: r.key, profile: e.name, error: messageOf(err) });
        continue;
      }
    }
    done.push(e.name);
  }
  if (done.length) result.repaired.push({ key: r.key, profiles: done });
}

function repairLines(r: RepairResult): string[] {
  const verb = r.dryRun ? "would repair" : "repaired";
  const lines = [
    `${verb} ${plural(r.repaired.length, "key")} from ${r.from} into ${r.profiles.join(", ")} (${plural(r.keys, "key")} checked in ${formatDuration(r.seconds * 1000)})${r.deleted.length ? `; ${r.dryRun ? "would delete" : "deleted"} ${plural(r.deleted.length, "extra key")}` : ""}${r.failed.length ? `; ${r.failed.length} failed` : ""}`,
  ];
  const items = [
    ...r.repaired.map((x) => `${r.dryRun ? "would copy" : "copied"} ${x.key} -> ${x.profiles.join(", ")}`),
    ...r.deleted.map((x) => `${r.dryRun ? "would delete" : "deleted"} ${x.key} from ${x.profiles.join(", ")}`),
    ...r.failed.map((f) => `failed ${f.key}${f.profile ? ` (${f.profile})` : ""}: ${f.error}`),
  ];
  lines.push(...items.slice(0, SHOWN));
  if (items.length > SHOWN) lines.push(`... and ${items.length - SHOWN} more (use --json for all)`);
  if (r.notInSource.length) {
    lines.push(
      `${plural(r.notInSource.length, "key")} held elsewhere but not in ${r.from} left as they are (--delete-extra removes them): ${r.notInSource.slice(0, 10).join(", ")}${r.notInSource.length > 10 ? ", ..." : ""}`,
    );
  }
  return lines;
}
