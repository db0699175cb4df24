/**
 * `demo`: the library's main job on the configured profiles (by default an
 * in-memory cache over SQLite, no servers): rank the profiles, save a
 * Document to all of them, load it back, then start again as a new process
 * would and watch the write-back refill the cache.
 */
import type { Command } from "commander";
import { DeviceStorage, Document } from "../index.js";
import { formatCapabilities, formatMicros } from "./_format.js";
import { action, cliLogger, type GlobalOptions, type Output, readSettings } from "./_run.js";

/** The result of `demo --json`. */
export interface DemoResult {
  settings: string | null;
  profiles: { name: string; scheme: string; speed: number; durable: boolean }[];
  leftOut: { name: string; error: string }[];
  key: string;
  savedTo: string[];
  loadedFrom: string;
  afterRestart: { loadedFrom: string; writeBack: boolean; fastest: string };
  nextLoadFrom: string;
  kept: boolean;
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      "the main job on the configured profiles (default: memory cache over SQLite): rank, save a document, load it, restart, see the write-back",
    )
    .option("--keep", "keep the demo document instead of deleting it at the end")
    .action(action(async (output, options, opts: { keep?: boolean }) => demo(output, options, opts.keep === true)));
}

async function demo(output: Output, options: GlobalOptions, keep: boolean): Promise<number> {
  const say = (line: string) => output.line(line);
  const settings = await readSettings(options, output); // writes a default settings.toml on first run
  say(`settings: ${settings.source ?? "(built-in defaults)"}`);

  const logger = cliLogger();
  let storage = await DeviceStorage.fromSettings(settings, { logger });
  const result: Partial<DemoResult> = {
    settings: settings.source ?? null,
    profiles: storage.ranked.map((e) => ({
      name: e.name,
      scheme: e.scheme,
      speed: Math.round(e.probeLatencyUs * 10) / 10,
      durable: e.capabilities.durable,
    })),
    leftOut: [...storage.profileErrors].map(([name, err]) => ({ name, error: err.message })),
    kept: keep,
  };
  say("profiles, fastest first (timed at start-up with a reserved probe key):");
  storage.ranked.forEach((e, i) => {
    say(
      `  ${i + 1}. ${e.name.padEnd(10)} ${e.scheme.padEnd(8)} ${formatMicros(e.probeLatencyUs).padStart(9)}  ${formatCapabilities(e.capabilities)}`,
    );
  });
  for (const l of result.leftOut ?? []) say(`  left out: ${l.name}: ${l.error}`);

  const id = `demo-${Date.now()}-${process.pid}`;
  try {
    const doc = new Document(id, {
      title: "Hello from terraphim-persistence",
      body: "Saved to every profile in parallel.",
      tags: ["demo"],
    });
    result.key = doc.getKey();
    await doc.withStorage(storage).save();
    result.savedTo = storage.ranked.map((e) => e.name);
    say(`saved ${result.key} to: ${result.savedTo.join(", ")}`);

    let r = await new Document(id).withStorage(storage).loadWithSource();
    result.loadedFrom = r.profile;
    say(`loaded "${r.value.title}" from ${r.profile} (the fastest profile)`);
    await storage.close();

    // A new process: the memory cache starts empty, the durable profiles still hold the document.
    say("restart: new storage over the same settings (in-memory profiles start empty)");
    storage = await DeviceStorage.fromSettings(settings, { logger });
    r = await new Document(id).withStorage(storage).loadWithSource();
    result.afterRestart = { loadedFrom: r.profile, writeBack: r.writeBack, fastest: storage.fastestProfile };
    say(
      r.writeBack
        ? `after restart: loaded from ${r.profile}; write-back to ${storage.fastestProfile} scheduled`
        : `after restart: loaded from ${r.profile} (already the fastest holder: no write-back needed)`,
    );
    await storage.flush();
    r = await new Document(id).withStorage(storage).loadWithSource();
    result.nextLoadFrom = r.profile;
    say(`next load served by ${r.profile}`);
  } finally {
    if (!keep && !storage.closed)
      await new Document(id)
        .withStorage(storage)
        .delete()
        .catch(() => {});
    await storage.close();
  }
  if (keep) say(`kept ${result.key} (delete it with: terraphim-persistence rm ${result.key})`);
  if (output.json) output.result(result, () => []);
  return 0;
}
