/**
 * `verify`: compares profiles key by key (missing, differing, undecodable),
 * and `repair`: fixes what verify finds by copying one profile's stored
 * bytes over the others.
 *
 * Values are compared decoded: a compressed and an uncompressed copy of the
 * same JSON are equal, and so are objects whose keys are in another order.
 */
import { createHash } from "node:crypto";
import type { Command } from "commander";
import { decodeJson } from "../codec.js";
import type { DeviceStorage, ProfileEntry } from "../device-storage.js";
import { PersistenceError } from "../errors.js";
import { copyRaw, readRaw } from "./_copy.js";
import { formatDuration, plural } from "./_format.js";
import { forEachLimit, positiveInt } from "./_pool.js";
import {
  action,
  allProfileNames,
  checkPrefix,
  type GlobalOptions,
  messageOf,
  type Output,
  openStorage,
  parseList,
  profileEntry,
  readSettings,
  UsageError,
  unknownProfile,
  withStorage,
} from "./_run.js";
import { listAll } from "./keys.js";

/** One profile's copy of a key. */
type Copy =
  | { state: "missing" }
  | { state: "ok"; digest: string }
  | { state: "undecodable"; error: string }
  | { state: "error"; error: string };

/** A key whose copies disagree (or could not be read), with every profile's copy. */
interface KeyReport {
  key: string;
  copies: Map<string, Copy>;
}

const DEFAULT_CONCURRENCY = 16;
const SHOWN = 50;

export function registerVerify(program: Command): void {
  program
    .command("verify")
    .description(
      "compare profiles key by key: keys missing from some, values that differ (compared decoded), values that do not decode",
    )
    .option("--profiles <names>", "comma-separated profiles to compare (default: all)")
    .option("--prefix <prefix>", "only keys starting with this")
    .option(
      "-c, --concurrency <n>",
      `keys checked at once (default ${DEFAULT_CONCURRENCY})`,
      positiveInt("--concurrency", 1024),
      DEFAULT_CONCURRENCY,
    )
    .action(action(async (output, options, opts: VerifyOptions) => verify(output, options, opts)));

  program
    .command("repair")
    .description("fix what verify finds by copying the stored bytes of one profile (--from) over the others")
    .requiredOption("--from <profile>", "the profile whose values are right")
    .option("--profiles <names>", "comma-separated profiles to repair (default: all others)")
    .option("--prefix <prefix>", "only keys starting with this")
    .option("--delete-extra", "delete keys the source does not hold from the other profiles")
    .option("--dry-run", "say what would be done, change nothing")
    .option(
      "-c, --concurrency <n>",
      `keys handled at once (default ${DEFAULT_CONCURRENCY})`,
      positiveInt("--concurrency", 1024),
      DEFAULT_CONCURRENCY,
    )
    .action(action(async (output, options, opts: RepairOptions) => repair(output, options, opts)));
}

interface VerifyOptions {
  profiles?: string;
  prefix?: string;
  concurrency: number;
}

interface RepairOptions extends VerifyOptions {
  from: string;
  deleteExtra?: boolean;
  dryRun?: boolean;
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

async function verify(output: Output, options: GlobalOptions, opts: VerifyOptions): Promise<number> {
  const settings = await readSettings(options, output);
  const given = parseList(opts.profiles);
  if (given && given.length < 2)
    throw new UsageError(`verify needs at least two profiles to compare, got: ${given.join(", ")}`);
  const started = performance.now();
  return withStorage(await openStorage(settings, given), async (storage) => {
    // Named profiles must all be there; by default, every profile that opened (the others are noted).
    const entries = given ? given.map((n) => profileEntry(storage, n)) : [...storage.ranked];
    if (entries.length < 2) {
      throw new PersistenceError(
        `verify needs at least two working profiles, and only ${entries.map((e) => e.name).join(", ")} opened${leftOutText(storage)}`,
      );
    }
    const names = entries.map((e) => e.name);
    noteLeftOut(output, storage);
    const result: VerifyResult = {
      profiles: names,
      unlisted: entries.filter((e) => !e.op.capabilities.list).map((e) => e.name),
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

async function repair(output: Output, options: GlobalOptions, opts: RepairOptions): Promise<number> {
  const settings = await readSettings(options, output);
  const given = parseList(opts.profiles)?.filter((n) => n !== opts.from);
  if (given && given.length === 0) throw new UsageError("repair needs at least one profile besides --from to repair");
  const started = performance.now();
  const opened = given ? [opts.from, ...new Set(given)] : undefined;
  if (!opened && !allProfileNames(settings).includes(opts.from)) throw unknownProfile(settings, opts.from);
  return withStorage(await openStorage(settings, opened), async (storage) => {
    // Named profiles must all be there; by default, every other profile that opened (the others are noted).
    const names = opened ?? [opts.from, ...storage.ranked.map((e) => e.name).filter((n) => n !== opts.from)];
    const entries = names.map((n) => profileEntry(storage, n));
    if (entries.length < 2) {
      throw new PersistenceError(
        `repair found no working profile besides ${opts.from} to repair${leftOutText(storage)}`,
      );
    }
    noteLeftOut(output, storage);
    const src = entries[0] as ProfileEntry;
    const result: RepairResult = {
      from: src.name,
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
    await scan(entries, keys, opts.concurrency, async (r) => {
      const source = r.copies.get(src.name);
      const others = entries.slice(1);
      if (source?.state === "missing") {
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
        return;
      }
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
            // The stored bytes as they are: compressed stays compressed.
            if ((await copyRaw(src, e, r.key)) === undefined) {
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
    });
    result.seconds = Math.round(performance.now() - started) / 1000;
    output.result(result, () => repairLines(result));
    return result.failed.length > 0 ? 1 : 0;
  });
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

function leftOut(storage: DeviceStorage): { profile: string; error: string }[] {
  return [...storage.profileErrors].map(([profile, e]) => ({ profile, error: e.message }));
}

function leftOutText(storage: DeviceStorage): string {
  const left = [...storage.profileErrors].map(([n, e]) => `${n}: ${e.message}`);
  return left.length ? ` (left out: ${left.join("; ")})` : "";
}

function noteLeftOut(output: Output, storage: DeviceStorage): void {
  if (output.json) return;
  for (const [n, e] of storage.profileErrors) output.note(`note: profile ${n} is left out: ${e.message}`);
}

/** Every key the listable profiles hold (merged). At least one profile must list. */
async function keysOf(entries: readonly ProfileEntry[], prefix: string | undefined): Promise<string[]> {
  if (!entries.some((e) => e.op.capabilities.list)) {
    throw new PersistenceError(
      `none of ${entries.map((e) => `${e.name} (${e.scheme})`).join(", ")} can list its keys, so there is nothing to compare by; include a listable profile`,
    );
  }
  const listed = await listAll(entries, prefix ?? "");
  const failed = listed.profiles.filter((p) => p.error);
  if (failed.length) {
    throw new PersistenceError(`cannot list ${failed.map((p) => `${p.name}: ${p.error}`).join("; ")}`);
  }
  return listed.keys.map((k) => k.key);
}

/**
 * Reads every key from every profile (bounded concurrency) and calls
 * `onIssue` for each key whose copies are not all present and equal.
 */
async function scan(
  entries: readonly ProfileEntry[],
  keys: readonly string[],
  concurrency: number,
  onIssue: (r: KeyReport) => void | Promise<void>,
): Promise<void> {
  await forEachLimit(keys, concurrency, async (key) => {
    const copies = new Map<string, Copy>();
    await Promise.all(
      entries.map(async (e) => {
        copies.set(e.name, await readCopy(e, key));
      }),
    );
    const states = [...copies.values()];
    const first = states[0];
    const same = first?.state === "ok" && states.every((c) => c.state === "ok" && c.digest === first.digest);
    if (!same) await onIssue({ key, copies: new Map(entries.map((e) => [e.name, copies.get(e.name)!])) });
  });
}

async function readCopy(e: ProfileEntry, key: string): Promise<Copy> {
  let raw: Uint8Array | undefined;
  try {
    raw = await readRaw(e, key);
  } catch (err) {
    return { state: "error", error: messageOf(err) };
  }
  if (raw === undefined) return { state: "missing" };
  try {
    const value = decodeJson(raw, { profile: e.name, key });
    return { state: "ok", digest: createHash("sha256").update(canonicalJson(value)).digest("hex") };
  } catch (err) {
    return { state: "undecodable", error: messageOf(err) };
  }
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

/** JSON text with object keys sorted, so that equal values compare equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(",")}}`;
}
