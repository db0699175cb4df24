/**
 * `migrate --from A --to B`: copies every key of a listable profile into
 * another, as stored bytes (so compression and format are kept) with their
 * expiry (an expired value is not copied), with bounded concurrency, a
 * progress bar, and a checkpoint file that lets an interrupted run resume
 * without copying finished keys again. Both sides go through their profile's
 * tier: its time limit, retries, TTL, quota and counters apply.
 */
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { PersistenceError, resolveSettingsFile } from "../index.js";
import { Checkpoint } from "./_checkpoint.js";
import { copyValue } from "./_copy.js";
import { formatBytes, formatDuration, formatRate, plural } from "./_format.js";
import { concurrencyOption, forEachLimit } from "./_pool.js";
import {
  action,
  checkPrefix,
  type GlobalOptions,
  messageOf,
  type Output,
  openStorage,
  readSettings,
  UsageError,
  withStorage,
  writable,
} from "./_run.js";

interface MigrateOptions {
  from: string;
  to: string;
  prefix?: string;
  checkpoint?: string;
  concurrency: number;
  fresh?: boolean;
  force?: boolean;
}

/** The result of `migrate --json`. */
export interface MigrateSummary {
  from: string;
  to: string;
  prefix: string;
  /** Keys the source listed. */
  total: number;
  copied: number;
  /** Keys a previous, interrupted run had copied (from the checkpoint). */
  skipped: number;
  /** Keys listed but gone from the source when read. */
  vanished: number;
  failed: number;
  failures: { key: string; error: string }[];
  bytes: number;
  seconds: number;
  interrupted: boolean;
  /** The checkpoint file, while there is something left to resume (else `null`: it was removed). */
  checkpoint: string | null;
}

const MAX_FAILURES_SHOWN = 20;

export function registerMigrate(program: Command): void {
  program
    .command("migrate")
    .description(
      "copy every key from one profile to another as stored bytes; resumable (a checkpoint records finished keys)",
    )
    .requiredOption("--from <profile>", "source profile (must be able to list its keys)")
    .requiredOption("--to <profile>", "destination profile (need not list)")
    .option("--prefix <prefix>", "only keys starting with this")
    .option(
      "--checkpoint <path>",
      "checkpoint file (default: migrate-<from>-to-<to>[-<prefix hash>].checkpoint next to settings.toml)",
    )
    .option("--fresh", "ignore an existing checkpoint and copy every key again")
    .option("--force", 'write to the destination even if it has read_only = "true"')
    .addOption(concurrencyOption("copies in flight"))
    .action(action(async (output, options, opts: MigrateOptions) => migrate(output, options, opts)));
}

async function migrate(output: Output, options: GlobalOptions, opts: MigrateOptions): Promise<number> {
  if (opts.from === opts.to) throw new UsageError(`--from and --to are the same profile ("${opts.from}")`);
  const prefix = checkPrefix(opts.prefix);
  const settings = await readSettings(options, output);
  const checkpointPath = opts.checkpoint
    ? resolve(opts.checkpoint)
    : join(
        dirname(settings.source ?? (await resolveSettingsFile({ path: options.settings }))),
        defaultName(opts, prefix),
      );

  return withStorage(await openStorage(settings, [opts.from, opts.to]), async (storage) => {
    const src = storage.profile(opts.from);
    const [dst] = writable(output, [storage.profile(opts.to)], { command: "migrate", named: true, force: opts.force });
    if (!dst) throw new UsageError(`migrate: no destination profile "${opts.to}"`);
    if (!src.capabilities.list) {
      throw new PersistenceError(
        `profile "${src.name}" (${src.scheme}) cannot list its keys, so migrate cannot find what to copy; use a listable profile as the source (memory, sqlite, fs, sled, s3, ...)`,
        { profile: src.name },
      );
    }
    const started = performance.now();
    // Without reserved keys and expired values.
    const keys = await src.list(prefix);
    const checkpoint = Checkpoint.open(checkpointPath, { from: src.name, to: dst.name, prefix }, opts.fresh === true);
    const todo = keys.filter((k) => !checkpoint.done.has(k));

    const summary: MigrateSummary = {
      from: src.name,
      to: dst.name,
      prefix,
      total: keys.length,
      copied: 0,
      skipped: keys.length - todo.length,
      vanished: 0,
      failed: 0,
      failures: [],
      bytes: 0,
      seconds: 0,
      interrupted: false,
      checkpoint: checkpointPath,
    };
    const progress = makeProgress(output, summary, started);
    if (!output.json) {
      output.note(
        `migrating ${plural(keys.length, "key")} from ${src.name} (${src.scheme}) to ${dst.name} (${dst.scheme})${prefix ? ` with prefix "${prefix}"` : ""}${summary.skipped ? `; ${summary.skipped} already copied by an earlier run (checkpoint ${checkpointPath})` : ""}`,
      );
    }

    // Ctrl-C / SIGTERM: stop taking keys, let copies in flight finish, keep the checkpoint.
    const stop = () => {
      summary.interrupted = true;
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    progress.start();
    try {
      await forEachLimit(
        todo,
        opts.concurrency,
        async (key) => {
          try {
            const n = await copyValue(src, dst, key);
            if (n === undefined) summary.vanished++;
            else {
              summary.copied++;
              summary.bytes += n;
            }
            checkpoint.record(key);
          } catch (err) {
            summary.failed++;
            if (summary.failures.length < MAX_FAILURES_SHOWN) summary.failures.push({ key, error: messageOf(err) });
          }
          progress.update();
        },
        () => summary.interrupted,
      );
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      progress.stop();
      checkpoint.close();
    }
    summary.seconds = Math.round(performance.now() - started) / 1000;
    const complete = !summary.interrupted && summary.failed === 0;
    if (complete) {
      checkpoint.remove();
      summary.checkpoint = null;
    }
    output.result(summary, () => summaryLines(summary));
    return complete ? 0 : 1;
  });
}

function summaryLines(s: MigrateSummary): string[] {
  const rate = s.seconds > 0 ? s.copied / s.seconds : Number.POSITIVE_INFINITY;
  const lines = [
    `${s.interrupted ? "interrupted" : "migrated"} ${s.from} -> ${s.to}: ${plural(s.total, "key")} listed, ${s.copied} copied, ${s.skipped} skipped (copied before), ${s.vanished} vanished, ${s.failed} failed`,
    `${formatBytes(s.bytes)} in ${formatDuration(s.seconds * 1000)} (${formatRate(rate)} keys/s, ${formatBytes(Math.round(s.seconds > 0 ? s.bytes / s.seconds : 0))}/s)`,
  ];
  for (const f of s.failures) lines.push(`failed: ${f.key}: ${f.error}`);
  if (s.failed > s.failures.length) lines.push(`... and ${s.failed - s.failures.length} more failures`);
  if (s.checkpoint) lines.push(`checkpoint kept at ${s.checkpoint}: run the same command again to resume`);
  return lines;
}

function defaultName(opts: MigrateOptions, prefix: string): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, "_");
  const tag = prefix ? `-${createHash("sha256").update(prefix).digest("hex").slice(0, 10)}` : "";
  return `migrate-${safe(opts.from)}-to-${safe(opts.to)}${tag}.checkpoint`;
}

/** The subset of cli-progress this command uses (the package ships no types). */
interface ProgressBar {
  start(total: number, startValue: number, payload?: Record<string, string>): void;
  update(value: number, payload?: Record<string, string>): void;
  stop(): void;
}
interface CliProgress {
  SingleBar: new (options: Record<string, unknown>, preset?: unknown) => ProgressBar;
  Presets: { shades_classic: unknown };
}

interface Progress {
  start(): void;
  update(): void;
  stop(): void;
}

/**
 * A cli-progress bar on stderr when it is a terminal (keys, bytes, rates,
 * ETA); otherwise a plain line every 10 s; nothing with `--json`.
 */
function makeProgress(output: Output, s: MigrateSummary, started: number): Progress {
  const done = () => s.skipped + s.copied + s.vanished + s.failed;
  const payload = () => {
    const secs = Math.max((performance.now() - started) / 1000, 0.001);
    return {
      bytes: formatBytes(s.bytes),
      byteRate: `${formatBytes(Math.round(s.bytes / secs))}/s`,
      keyRate: formatRate(s.copied / secs),
      failed: String(s.failed),
    };
  };
  if (output.json) return { start() {}, update() {}, stop() {} };
  if (!process.stderr.isTTY) {
    let last = performance.now();
    return {
      start() {},
      update() {
        if (performance.now() - last < 10_000) return;
        last = performance.now();
        const p = payload();
        output.note(`migrate: ${done()}/${s.total} keys, ${p.bytes} (${p.keyRate} keys/s, ${p.byteRate})`);
      },
      stop() {},
    };
  }
  const cliProgress = createRequire(import.meta.url)("cli-progress") as CliProgress;
  const bar = new cliProgress.SingleBar(
    {
      format:
        "migrate |{bar}| {percentage}% | {value}/{total} keys | {bytes} at {byteRate} | {keyRate} keys/s | failed {failed} | ETA {eta_formatted}",
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 500,
      fps: 10,
      barsize: 24,
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    start: () => bar.start(s.total, done(), payload()),
    update: () => bar.update(done(), payload()),
    stop: () => bar.stop(),
  };
}
