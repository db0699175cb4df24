/**
 * `verify`: compares profiles key by key and reports keys missing from some,
 * values that differ (compared decoded) and values that do not decode.
 */
import type { Command } from "commander";
import { PersistenceError } from "../index.js";
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
import { formatDuration, plural } from "./_format.js";
import { concurrencyOption } from "./_pool.js";
import {
  action,
  checkPrefix,
  type GlobalOptions,
  type Output,
  openStorage,
  parseList,
  readSettings,
  UsageError,
  withStorage,
} from "./_run.js";

export function registerVerify(program: Command): void {
  program
    .command("verify")
    .description(
      "compare profiles key by key: keys missing from some, values that differ (compared decoded), values that do not decode",
    )
    .option("--profiles <names>", "comma-separated profiles to compare (default: all)")
    .option("--prefix <prefix>", "only keys starting with this")
    .addOption(concurrencyOption("keys checked at once"))
    .action(action(async (output, options, opts: CompareOptions) => verify(output, options, opts)));
}

/** The result of `verify --json`. */
export interface VerifyResult {
  profiles: string[];
  /** Profiles that cannot list: keys held only there are not seen. */
  unlisted: string[];
  prefix: string;
  /** Keys compared (the union of every listable profile's keys). */
  keys: number;
  /** Keys with a problem (missing somewhere, differing, or undecodable somewhere). */
  differences: number;
  missing: { key: string; missingIn: string[]; presentIn: string[] }[];
  differing: { key: string; groups: string[][] }[];
  undecodable: { key: string; profile: string; error: string }[];
  /** Reads that failed, so nothing could be said about that copy. */
  errors: { key: string; profile: string; error: string }[];
  /** Configured profiles that could not be opened, so were not compared. */
  leftOut: { profile: string; error: string }[];
  seconds: number;
}

async function verify(output: Output, options: GlobalOptions, opts: CompareOptions): Promise<number> {
  const settings = await readSettings(options, output);
  const given = parseList(opts.profiles);
  if (given && given.length < 2)
    throw new UsageError(`verify needs at least two profiles to compare, got: ${given.join(", ")}`);
  const started = performance.now();
  return withStorage(await openStorage(settings, given), async (storage) => {
    // Named profiles must all be there; by default, every profile that opened (the others are noted).
    const entries = given ? given.map((n) => storage.profile(n)) : [...storage.ranked];
    if (entries.length < 2) {
      throw new PersistenceError(
        `verify needs at least two working profiles, and only ${entries.map((e) => e.name).join(", ")} opened${leftOutText(storage)}`,
      );
    }
    const names = entries.map((e) => e.name);
    noteLeftOut(output, storage);
    const result: VerifyResult = {
      profiles: names,
      unlisted: entries.filter((e) => !e.capabilities.list).map((e) => e.name),
      prefix: opts.prefix ?? "",
      keys: 0,
      differences: 0,
      missing: [],
      differing: [],
      undecodable: [],
      errors: [],
      leftOut: leftOut(storage),
      seconds: 0,
    };
    const keys = await keysOf(entries, checkPrefix(opts.prefix));
    result.keys = keys.length;
    await scan(entries, keys, opts.concurrency, (r) => {
      const c = classify(r);
      if (c.different) result.differences++;
      if (c.missingIn.length > 0) result.missing.push({ key: r.key, missingIn: c.missingIn, presentIn: c.presentIn });
      if (c.groups.length > 1) result.differing.push({ key: r.key, groups: c.groups });
      for (const [profile, copy] of r.copies) {
        if (copy.state === "undecodable") result.undecodable.push({ key: r.key, profile, error: copy.error });
        if (copy.state === "error") result.errors.push({ key: r.key, profile, error: copy.error });
      }
    });
    result.seconds = Math.round(performance.now() - started) / 1000;
    output.result(result, () => verifyLines(result));
    return result.differences > 0 || result.errors.length > 0 ? 1 : 0;
  });
}

function verifyLines(r: VerifyResult): string[] {
  const lines = [
    `compared ${plural(r.keys, "key")} across ${r.profiles.join(", ")} in ${formatDuration(r.seconds * 1000)}: ${plural(r.differences, "difference")} (${r.missing.length} missing, ${r.differing.length} differing, ${r.undecodable.length} undecodable)${r.errors.length ? `, ${r.errors.length} read errors` : ""}`,
  ];
  if (r.unlisted.length) {
    lines.push(`note: ${r.unlisted.join(", ")} cannot list keys: keys held only there were not seen`);
  }
  const issues = [
    ...r.missing.map((m) => `missing    ${m.key}: not in ${m.missingIn.join(", ")} (in ${m.presentIn.join(", ")})`),
    ...r.differing.map((d) => `differing  ${d.key}: ${d.groups.map((g) => g.join("+")).join(" vs ")}`),
    ...r.undecodable.map((u) => `undecodable ${u.key} in ${u.profile}: ${u.error}`),
    ...r.errors.map((e) => `read error ${e.key} in ${e.profile}: ${e.error}`),
  ];
  lines.push(...issues.slice(0, SHOWN));
  if (issues.length > SHOWN) lines.push(`... and ${issues.length - SHOWN} more (use --json for all)`);
  return lines;
}

/** What is wrong with a key: where it is missing, and the groups of profiles that agree. */
function classify(r: KeyReport): { different: boolean; missingIn: string[]; presentIn: string[]; groups: string[][] } {
  const missingIn: string[] = [];
  const presentIn: string[] = [];
  const groups = new Map<string, string[]>();
  let undecodable = false;
  for (const [profile, c] of r.copies) {
    if (c.state === "missing") missingIn.push(profile);
    else if (c.state !== "error") presentIn.push(profile);
    if (c.state === "undecodable") undecodable = true;
    if (c.state === "ok") groups.set(c.digest, [...(groups.get(c.digest) ?? []), profile]);
  }
  const g = [...groups.values()];
  return {
    different: (missingIn.length > 0 && presentIn.length > 0) || undecodable || g.length > 1,
    missingIn: presentIn.length > 0 ? missingIn : [],
    presentIn,
    groups: g,
  };
}
