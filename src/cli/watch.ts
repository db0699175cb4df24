/** `watch`: prints the coherence bus traffic (origin, operation, sequence number, keys) for debugging. */
import type { Command } from "commander";
import { type BusEvent, watchCoherenceBus } from "../index.js";
import { action, readSettings, UsageError } from "./_run.js";

interface WatchOptions {
  count?: string;
  timeout?: string;
  heartbeats?: boolean;
}

export function registerWatch(program: Command): void {
  program
    .command("watch")
    .description(
      "print the coherence bus traffic of the settings' [coherence] table (each message's origin, operation, sequence number and keys; never values) until Ctrl-C",
    )
    .option("-n, --count <n>", "stop after N messages")
    .option("-t, --timeout <seconds>", "stop after this many seconds")
    .option("--heartbeats", "also print heartbeats")
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
          if (e.kind === "up") output.note(`listening on ${e.bus}`);
          else if (e.kind === "down") output.note(`bus connection lost (${e.reason}); reconnecting`);
          else if (e.kind === "malformed") output.note(`a message that is not ours: ${e.reason}`);
          else if (e.message.op !== "heartbeat" || opts.heartbeats) {
            const m = e.message;
            const at = new Date().toISOString();
            if (output.json) process.stdout.write(`${JSON.stringify({ at, ...m })}\n`);
            else {
              const what = m.op === "clear" ? `prefix ${JSON.stringify(m.prefix)}` : m.keys.join(" ");
              output.line(`${at}  ${m.origin}  ${m.op}  #${m.seq}  ${what}`);
            }
            if (m.op !== "heartbeat" && count !== undefined && ++seen >= count) done();
          }
        };
        const stop = await watchCoherenceBus(settings.coherence, print);
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

function positive(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag}: expected a positive number, got "${raw}"`);
  return n;
}
