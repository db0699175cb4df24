/**
 * `watch`: prints the coherence bus traffic (origin, operation, sequence number, keys), the changes the
 * shared profiles' servers report, and (with `--pings`) the proofs of the lease, for debugging.
 */
import type { Command } from "commander";
import { type BusEvent, type ChangeFeedSource, openProfileOperator, watchCoherenceBus } from "../index.js";
import { action, readSettings, UsageError } from "./_run.js";

interface WatchOptions {
  count?: string;
  timeout?: string;
  heartbeats?: boolean;
  pings?: boolean;
}

export function registerWatch(program: Command): void {
  program
    .command("watch")
    .description(
      "print the coherence bus traffic of the settings' [coherence] table (each message's origin, operation, sequence number and keys; each change a shared profile's server reports; never values) until Ctrl-C",
    )
    .option("-n, --count <n>", "stop after N messages and reports")
    .option("-t, --timeout <seconds>", "stop after this many seconds")
    .option(
      "--pings",
      "also print each proof of the lease (a ping answered on a listening connection, with its round trip)",
    )
    .option("--heartbeats", "also print heartbeats (sent by instances of earlier versions)")
    .action(
      action(async (output, options, opts: WatchOptions) => {
        const count = positive(opts.count, "--count");
        const timeoutS = positive(opts.timeout, "--timeout");
        const settings = await readSettings(options, output);
        if (!settings.coherence) {
          throw new UsageError("watch: the settings have no [coherence] table (see README, Running several instances)");
        }
        let seen = 0;
        let done: () => void = () => {};
        const finished = new Promise<void>((resolve) => {
          done = resolve;
        });
        const print = (e: BusEvent) => {
          const at = new Date().toISOString();
          const row = (fields: Record<string, unknown>, text: string) => {
            if (output.json) process.stdout.write(`${JSON.stringify({ at, ...fields })}\n`);
            else output.line(`${at}  ${text}`);
          };
          if (e.kind === "up") output.note(`listening on ${e.bus}`);
          else if (e.kind === "down") output.note(`${e.bus}: connection lost (${e.reason}); reconnecting`);
          else if (e.kind === "malformed") output.note(`a message that is not ours: ${e.reason}`);
          else if (e.kind === "proof") {
            if (opts.pings) row({ source: "lease", ...e }, `lease  ${e.bus}  ping answered in ${e.rttMs} ms`);
            return;
          } else if (e.kind === "report") {
            row({ source: "server", ...e }, `server  ${e.profile}  change  ${e.key ?? "(every key)"}`);
          } else if (e.message.op !== "heartbeat" || opts.heartbeats) {
            const m = e.message;
            const what = m.op === "clear" ? `prefix ${JSON.stringify(m.prefix)}` : m.keys.join(" ");
            row({ source: "bus", ...m }, `bus  ${m.origin}  ${m.op}  #${m.seq}  ${what}`);
            if (m.op === "heartbeat") return;
          } else return;
          if (
            e.kind !== "up" &&
            e.kind !== "down" &&
            e.kind !== "malformed" &&
            count !== undefined &&
            ++seen >= count
          ) {
            done();
          }
        };
        const feeds = await changeFeeds(settings.profiles, (m) => output.note(m));
        const stop = await watchCoherenceBus(settings.coherence, print, { feeds });
        const timer = timeoutS === undefined ? undefined : setTimeout(done, timeoutS * 1000);
        process.once("SIGINT", done);
        process.once("SIGTERM", done);
        await finished;
        clearTimeout(timer);
        await stop();
        return 0;
      }),
    );
}

/** The shared profiles whose server reports their changes: each opened once to learn where (then closed). */
async function changeFeeds(
  profiles: Readonly<Record<string, Readonly<Record<string, string>>>>,
  note: (m: string) => void,
): Promise<{ profile: string; source: ChangeFeedSource }[]> {
  const feeds: { profile: string; source: ChangeFeedSource }[] = [];
  for (const [profile, raw] of Object.entries(profiles)) {
    try {
      const { options, op } = await openProfileOperator(profile, raw);
      if (options.shared && op.changeFeed) feeds.push({ profile, source: op.changeFeed });
      await op.close();
    } catch (err) {
      note(`profile "${profile}" not watched: ${(err as Error).message}`);
    }
  }
  return feeds;
}

function positive(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag}: expected a positive number, got "${raw}"`);
  return n;
}
