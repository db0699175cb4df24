/**
 * `doctor`: validates the settings and reaches every profile (open, write,
 * read back, list, delete a reserved key), explaining each failure in plain
 * words with the fix.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import type { Command } from "commander";
import {
  type DeviceSettings,
  loadSettings,
  type Operator,
  openProfileOperator,
  PersistenceError,
  type ProfileOptions,
  parseProfileOptions,
  RESERVED_KEY_PREFIX,
  type Requirement,
  resolveSettingsFile,
  runtimeSupport,
  schemeRequirements,
  withTimeout,
} from "../index.js";
import { explainOption, explainProfile, explainSettings, explainUnreachable, type Finding } from "./_diagnose.js";
import { coherenceFindings } from "./_doctor-coherence.js";
import { formatDuration, formatOptions, redactOptions } from "./_format.js";
import { action, type GlobalOptions, messageOf, type Output } from "./_run.js";

export type { Finding } from "./_diagnose.js";

/**
 * Time limit of each step for a profile without one (`timeout_ms`; native
 * schemes have none), so that doctor always ends with an answer.
 */
const DOCTOR_TIMEOUT_MS = 10_000;

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description(
      "check the settings and reach every profile (write, read, list, delete a reserved key); explain each failure and its fix",
    )
    .action(action(async (output, options) => doctor(output, options)));
}

async function doctor(output: Output, options: GlobalOptions): Promise<number> {
  const file = await resolveSettingsFile(options.settings === undefined ? {} : { path: options.settings });
  const findings: Finding[] = [];
  const report = (exitCode: number) => {
    let code = exitCode;
    const runtime = runtimeFinding();
    findings.push(runtime);
    if (!runtime.ok) code = 1;
    const broken = findings.filter((f) => !f.ok).length;
    output.result({ settings: file, ok: broken === 0, findings }, () => [
      `settings: ${file}`,
      ...findings.flatMap(findingLines),
      broken === 0
        ? "everything works"
        : `${broken} problem${broken === 1 ? "" : "s"} found (profiles that fail are left out by the library: it runs on the others)`,
    ]);
    return code;
  };

  let settings: DeviceSettings;
  const exists = existsSync(file);
  if (!exists && options.settings !== undefined) {
    findings.push({
      subject: "settings",
      ok: false,
      summary: `there is no settings file at ${file}`,
      fix: "point --settings at a folder holding settings.toml or at the file itself (or omit --settings to use the default location)",
    });
    return report(1);
  }
  try {
    settings = await loadSettings({ path: file, writeDefault: false });
  } catch (err) {
    findings.push({ subject: "settings", ok: false, ...explainSettings(err), detail: messageOf(err) });
    return report(1);
  }
  findings.push({
    subject: "settings",
    ok: true,
    summary: exists
      ? `parsed: ${Object.keys(settings.profiles).length + Object.keys(settings.profileErrors ?? {}).length} profiles`
      : "no settings file yet: the defaults apply (memory + sqlite under TERRAPHIM_DATA_PATH or ~/.terraphim), and the library writes this file on first use",
  });
  for (const w of settings.warnings ?? []) {
    findings.push({ subject: "settings", ok: true, summary: `warning: ${w}` });
  }
  for (const [name, err] of Object.entries(settings.profileErrors ?? {})) {
    findings.push({ subject: name, ok: false, ...explainSettings(err), detail: messageOf(err) });
  }
  const checks = await Promise.all(Object.entries(settings.profiles).map(([name, p]) => checkProfile(name, p)));
  findings.push(...checks);
  // Only when every profile opens on its own: the bus check opens them all together.
  if (checks.every((c) => c.ok)) findings.push(...(await coherenceFindings(settings)));
  return report(findings.some((f) => !f.ok) ? 1 : 0);
}

/** The runtime, and the libraries the embedded default (sqlite, zstd) uses on it. */
function runtimeFinding(): Finding {
  const r = runtimeSupport();
  const missing = [r.sqlite, r.zstd].filter((q) => !q.installed);
  return {
    subject: "runtime",
    ok: missing.length === 0,
    summary: `${r.runtime} ${r.version}: sqlite on ${needLine(r.sqlite)}, zstd on ${needLine(r.zstd)}`,
    ...(missing.length > 0 && { fix: missing.map((q) => q.install).join(" && ") }),
  };
}

function needLine(q: Requirement): string {
  const what = q.source === "optional peer" ? `${q.module}@${q.version} (optional peer` : `${q.module} (${q.source}`;
  return `${what}${q.installed ? "" : `, NOT INSTALLED: ${q.install}`})`;
}

function findingLines(f: Finding): string[] {
  const head = `${f.ok ? "  ok  " : "  FAIL"}  ${f.subject}${f.scheme ? ` (${f.scheme})` : ""}: ${f.summary}`;
  const needs = f.needs?.length ? [`        needs: ${f.needs.map(needLine).join(", ")}`] : [];
  if (f.ok) return [head, ...needs];
  const lines = [head, ...needs];
  if (f.fix) lines.push(`        fix: ${f.fix}`);
  if (f.detail && f.detail !== f.summary) lines.push(`        error: ${f.detail}`);
  if (f.options) lines.push(`        options: ${formatOptions(f.options)}`);
  return lines;
}

/**
 * Opens a profile on its own, as storage does (its options checked, the quota
 * wrapper where it has a quota), and runs write, read, list and delete of a
 * reserved key.
 */
async function checkProfile(name: string, profile: Readonly<Record<string, string>>): Promise<Finding> {
  const scheme = profile.type ?? "";
  const needs = scheme ? schemeRequirements(scheme) : [];
  const base = { subject: name, scheme, options: redactOptions(profile), needs };
  let parsed: ProfileOptions;
  try {
    parsed = parseProfileOptions(name, profile);
  } catch (err) {
    return { ...base, ok: false, ...explainOption(err, name) };
  }
  const backend = parsed.backend;
  const key = `${RESERVED_KEY_PREFIX}doctor-${process.pid}-${randomBytes(6).toString("hex")}`;
  const limit = <T>(p: Promise<T>, what: string) =>
    withTimeout(p, parsed.timeoutMs ?? DOCTOR_TIMEOUT_MS, `${what} in profile "${name}"`, name, key);
  const started = performance.now();
  let op: Operator | undefined;
  let stage = "open";
  try {
    const o = (await limit(openProfileOperator(name, profile), "open")).op;
    op = o;
    const payload = randomBytes(64);
    stage = "write";
    await limit(o.write(key, payload), "write");
    stage = "read";
    const back = await limit(o.read(key), "read");
    if (!Buffer.from(back).equals(payload)) {
      throw new PersistenceError(`profile "${name}" returned different bytes than were written`, { profile: name });
    }
    let listed = "";
    if (o.capabilities.list) {
      stage = "list";
      const keys = await limit(o.list(RESERVED_KEY_PREFIX), "list");
      listed = keys.includes(key) ? ", list" : ", list (did not show the new key)";
    }
    stage = "delete";
    await limit(o.delete(key), "delete");
    const ms = performance.now() - started;
    const durability = o.capabilities.durable ? "" : "; not durable (data lives in this process only)";
    return {
      subject: name,
      scheme,
      needs,
      ok: true,
      summary: `write, read${listed || " (cannot list keys)"} and delete work (${formatDuration(ms)})${durability}`,
      ms: Math.round(ms),
    };
  } catch (err) {
    if (op && stage !== "write" && stage !== "open") await op.delete(key).catch(() => {});
    const absent = needs.find((q) => !q.installed);
    if (absent) {
      return {
        ...base,
        ok: false,
        summary: `needs the ${absent.source} "${absent.module}", which is not installed`,
        fix: `${absent.install}`,
        detail: messageOf(err),
      };
    }
    const why = (await explainUnreachable(err, name, backend)) ?? explainProfile(err, name, scheme, backend, stage);
    return { ...base, ok: false, ...why, detail: messageOf(err) };
  } finally {
    await op?.close().catch(() => {});
  }
}
