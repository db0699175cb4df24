/**
 * The benchmark suite: each scenario measures ours next to its baseline (a
 * raw driver, a peer library or a CLI) in the same process and run, and
 * reports the ratio. See BENCHMARKS.md for the method and the figures.
 *
 *   npm run bench                 # every scenario (~3 min), table + bench/results.json + bench/ratios.svg (chart.ts)
 *   npm run bench -- --quick      # every scenario, briefly (~35 s smoke run; rough figures, no results file)
 *   npm run bench -- --only 1,3   # some scenarios (profiling a compiled build: see BENCHMARKS.md)
 *
 * Exit code 0 whether targets are met or not (the table says which): this
 * measures, it does not gate. `--strict` exits 1 when a target is missed.
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { tempDir } from "./_data.js";
import { printTable, type Row } from "./_harness.js";
import type { Context, Scenario } from "./_setup.js";
import { type ChartSection, writeRatioChart } from "./chart.js";
import { batchedLoads } from "./scenarios/batched-loads.js";
import { coherence } from "./scenarios/coherence.js";
import { compression } from "./scenarios/compression.js";
import { fallbackLoad } from "./scenarios/fallback.js";
import { firstRead } from "./scenarios/first-read.js";
import { hotLoad } from "./scenarios/hot-load.js";
import { loadMany } from "./scenarios/load-many.js";
import { memoryFootprint } from "./scenarios/memory.js";
import { peers } from "./scenarios/peers.js";
import { persistableSingleton } from "./scenarios/persistable-singleton.js";
import { resyncScale } from "./scenarios/resync-scale.js";
import { save } from "./scenarios/save.js";
import { sharedTiers } from "./scenarios/shared-tiers.js";
import { startup } from "./scenarios/startup.js";

const SCENARIOS: [number, string, Scenario][] = [
  [1, "hot load", hotLoad],
  [2, "save", save],
  [3, "fallback load + write-back", fallbackLoad],
  [4, "peers", peers],
  [5, "compression", compression],
  [6, "loadDocumentsByIds", loadMany],
  [7, "start-up", startup],
  [8, "memory footprint", memoryFootprint],
  [9, "Persistable via singleton", persistableSingleton],
  [10, "shared tiers", sharedTiers],
  [11, "coherence bus", coherence],
  [12, "first read over Redis", firstRead],
  [13, "loadValues in batches", batchedLoads],
  [14, "resync at scale", resyncScale],
];

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const strict = args.includes("--strict");
const liveRanking = !args.includes("--no-live-ranking");
const onlyArg = args[args.indexOf("--only") + 1];
const only = args.includes("--only") && onlyArg ? new Set(onlyArg.split(",").map(Number)) : undefined;
const out = args.includes("--out") ? args[args.indexOf("--out") + 1] : undefined;

const tmp = tempDir("suite");
const started = performance.now();
const ctx: Context = {
  quick,
  dir: tmp.dir,
  liveRanking,
  log: (msg) => console.error(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${msg}`),
};

console.log(
  `terraphim-persistence benchmarks${quick ? " (--quick: rough figures)" : ""}: Node ${process.version}, ` +
    `${cpus().length} x ${cpus()[0]?.model.trim() ?? "?"}, 1 KB documents unless said` +
    `${liveRanking ? "" : ", live ranking OFF (--no-live-ranking)"}\n`,
);

const rows: Row[] = [];
const sections: ChartSection[] = [];
const failures: string[] = [];
try {
  for (const [n, name, run] of SCENARIOS) {
    if (only && !only.has(n)) continue;
    ctx.log(`scenario ${n}: ${name}`);
    try {
      const got = await run(ctx);
      rows.push(...got);
      sections.push({ scenario: `${n} ${name}`, rows: got });
    } catch (err) {
      // One broken scenario must not hide the others' figures; it fails the run at the end.
      const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
      console.error(`scenario ${n} (${name}) FAILED: ${msg}`);
      failures.push(`${n} ${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
} finally {
  tmp.remove();
}

console.log("");
printTable(rows);
const judged = rows.filter((r) => r.met !== undefined);
const missed = judged.filter((r) => !r.met);
console.log(
  `\ntargets: ${judged.length - missed.length} met, ${missed.length} MISSED` +
    (missed.length ? ` (${missed.map((r) => r.scenario).join("; ")})` : ""),
);
const notes = rows.filter((r) => r.note);
if (notes.length) {
  console.log("\nnotes:");
  for (const r of notes) console.log(`  ${r.scenario}: ${r.note}`);
}
console.log(
  `\nratio = our time / baseline time (below 1: we are faster). Total ${((performance.now() - started) / 1000).toFixed(0)} s.`,
);

const file = out ?? (quick || only ? undefined : new URL("./results.json", import.meta.url));
if (file) writeFileSync(file, `${JSON.stringify(rows, null, 2)}\n`);
// The SVG of the ratios (bench/ratios.svg, or BENCH_CHART=path); a partial run writes none unless asked.
await writeRatioChart(sections, { partial: Boolean(quick || only) }).then(
  (line) => console.log(`\n${line}`),
  (err) => {
    console.log(`\nchart FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
if (failures.length) {
  console.log(`\nscenarios that FAILED (no figures):\n${failures.map((f) => `  ${f}`).join("\n")}`);
  process.exitCode = 1;
}
if (strict && missed.length) process.exitCode = 1;
