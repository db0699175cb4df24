/**
 * The benchmark ratios as an SVG chart (`bench/ratios.svg`, shown at the top
 * of BENCHMARKS.md): one panel per scenario, one horizontal bar per row of the
 * table (ours against one baseline or peer), on a log scale of the ratio.
 * Bars start at 1.0 (a dashed rule), so a bar to the left means we are faster
 * and one to the right that we take longer; a black tick marks the row's
 * target ratio where it has one, and the colour says whether the row's target
 * was met.
 *
 * `ratioChartSvg` is a pure function from records to an SVG string (vega-lite
 * compiles the spec, vega renders it headless: no canvas, no browser), so it
 * is tested without running the bench; `writeRatioChart` is the bench's step.
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { Row } from "./_harness.js";

/** One bar of the chart: one comparison, i.e. one row of the bench table. */
export interface ChartRecord {
  /**
   * The panel the bar is drawn in, in first-seen order.
   * @example "4 peers"
   */
  scenario: string;
  /**
   * The bar's label; unique within its scenario (a repeated one gets ` (2)`, ` (3)`...).
   * @example "get, memory hit vs bentocache get"
   */
  label: string;
  /**
   * Our time over the baseline's (below 1 we are faster); finite and above 0 (log scale).
   * @example 0.2
   */
  ratio: number;
  /**
   * The highest ratio the row's target allows, if the target is a ratio; drawn as a tick.
   * @default undefined (no tick)
   * @example 2
   */
  target?: number;
  /**
   * The row's target as the table states it, shown after the value when it is not a ratio.
   * @default undefined
   * @example ">= 100k keys/s"
   */
  targetText?: string;
  /**
   * Whether the row's target holds in this run; `undefined` for a row without a target.
   * @default undefined ("no target": grey)
   */
  met?: boolean;
}

/** The rows one scenario returned, under the scenario's number and name. */
export interface ChartSection {
  /**
   * Scenario number and name, as `bench/index.ts` lists it.
   * @example "10 shared tiers"
   */
  scenario: string;
  /** The scenario's rows, as printed in the table. */
  rows: readonly Row[];
}

/** Titles of the chart. */
export interface ChartOptions {
  /**
   * @default "terraphim-persistence benchmarks: our time / baseline time"
   */
  title?: string;
  /**
   * A line under the title, e.g. the machine and the date of the run.
   * @default the reading instructions only
   * @example "Node v20.20.2, 2 x AMD EPYC, 2026-11-29 20:10 UTC"
   */
  subtitle?: string;
}

const MET = "target met";
const MISSED = "target missed";
const NONE = "no target (for scale)";
/** Pixels per bar (band step); 11 px labels stay legible with 5 px between bars. */
const BAR_STEP = 16;
/** Width of the plotting area: one log decade takes about 80-130 px for the spans seen (0.02x-130x). */
const PLOT_WIDTH = 420;
/**
 * Axis labels wider than this are cut with an ellipsis (the table has the full text). Without a canvas
 * vega estimates text widths high, so 560 px here is about 400 px rendered (~65 characters).
 */
const LABEL_LIMIT = 560;
/** Width of a value label such as `1.32x`, in pixels. */
const VALUE_LABEL_PX = 32;
/** Room the value labels at the bars' ends need on the log scale (a factor on each side). */
const DOMAIN_PAD = 1.6;

/**
 * The highest ratio a row's target allows, read from its text: `<= 1.2x`,
 * `... (ratio <= 0.125)`, `<= 2x payload` (whose ratio is the same quotient);
 * `1` for "faster than ...". Targets that are not ratios (`<= 150 ms`,
 * `>= 100k keys/s`) give `undefined`.
 * @example targetRatio({ target: ">= 80% of CLI throughput (<= 1.25x)" }) // 1.25
 */
export function targetRatio(row: Pick<Row, "target">): number | undefined {
  const text = row.target;
  if (text === undefined) return undefined;
  const m = /ratio\s*<=\s*(\d+(?:\.\d+)?)/.exec(text) ?? /<=\s*(\d+(?:\.\d+)?)x/.exec(text);
  if (m) return Number(m[1]);
  return /^faster\b/.test(text) ? 1 : undefined;
}

/**
 * The chart's records from the bench's rows, one per row, in order. A label
 * is the row's scenario text (without its number) and its baseline; rows of
 * one scenario with the same label are told apart by what differs in `ours`
 * (e.g. `(OpenDAL operator)`).
 */
export function chartRecords(sections: readonly ChartSection[]): ChartRecord[] {
  const out: ChartRecord[] = [];
  for (const { scenario, rows } of sections) {
    const base = rows.map((r) => `${r.scenario.replace(/^\d+\s+/, "")} vs ${r.baseline}`);
    rows.forEach((r, i) => {
      const twins = rows.filter((_, j) => base[j] === base[i]).map((t) => t.ours);
      const extra = twins.length > 1 ? distinctPart(r.ours, twins) : "";
      const what = r.scenario.replace(/^\d+\s+/, "");
      const rec: ChartRecord = {
        scenario,
        label: extra ? `${what} [${extra}] vs ${r.baseline}` : base[i]!,
        ratio: r.ratio,
      };
      const target = targetRatio(r);
      if (target !== undefined) rec.target = target;
      else if (r.target !== undefined) rec.targetText = r.target;
      if (r.met !== undefined) rec.met = r.met;
      out.push(rec);
    });
  }
  return out;
}

/** `text` without the words it shares at the start with every other of `all` ("" if nothing is left). */
function distinctPart(text: string, all: readonly string[]): string {
  let n = 0;
  const first = all[0]!;
  while (n < first.length && all.every((t) => t[n] === first[n])) n++;
  // Back to a word boundary, so "(OpenDAL operator)" is not cut to "penDAL operator)".
  const boundary = (i: number) => /\s/.test(first[i - 1]!) || all.every((t) => i === t.length || /\s/.test(t[i]!));
  while (n > 0 && !boundary(n)) n--;
  const rest = text.slice(n).trim();
  return /^\(.*\)$/.test(rest) ? rest.slice(1, -1) : rest;
}

/**
 * Renders the records as an SVG document (a string starting with `<svg`).
 * Pure: no file, no clock; the same records give the same SVG.
 * @throws RangeError when there is no record, or a ratio or target is not a finite number above 0.
 * @example
 * const svg = await ratioChartSvg([{ scenario: "1 hot load", label: "hot load vs JSON.parse(map.get)", ratio: 1.3, target: 2, met: true }]);
 */
export async function ratioChartSvg(records: readonly ChartRecord[], options: ChartOptions = {}): Promise<string> {
  if (records.length === 0) throw new RangeError("Expected at least one ratio record to chart, got none");
  const seen = new Map<string, number>();
  const values = records.map((r, index) => {
    for (const [name, v] of [
      ["ratio", r.ratio],
      ["target", r.target],
    ] as const) {
      if (v !== undefined && !(Number.isFinite(v) && v > 0)) {
        throw new RangeError(`Expected ${name} of "${r.scenario}: ${r.label}" to be a finite number above 0, got ${v}`);
      }
    }
    const key = `${r.scenario}\u0000${r.label}`;
    const count = (seen.get(key) ?? 0) + 1;
    seen.set(key, count);
    return {
      index,
      scenario: r.scenario,
      label: count > 1 ? `${r.label} (${count})` : r.label,
      ratio: r.ratio,
      target: r.target ?? null,
      status: r.met === undefined ? NONE : r.met ? MET : MISSED,
      text: `${fmtRatio(r.ratio)}${r.targetText ? ` (target ${r.targetText})` : ""}`,
    };
  });
  // Errors only: vega-lite warns that the panels' independent y scales come from one data source, which they do.
  const compiled = compile(spec(values, options), { logger: vega.logger(vega.Error) });
  const view = new vega.View(vega.parse(compiled.spec), { renderer: "none", logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** `0.0234` -> `0.023x`, `1.316` -> `1.32x`, `131.6` -> `132x`. */
function fmtRatio(x: number): string {
  if (x >= 100) return `${x.toFixed(0)}x`;
  if (x >= 0.1) return `${x.toFixed(2)}x`;
  return `${x.toPrecision(2)}x`;
}

/** The 1-2-5 series (0.01, 0.02, 0.05, 0.1, ...) from the step at or below `min` to the one at or above `max`. */
function niceSteps(min: number, max: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(min)); ; e++) {
    for (const m of [1, 2, 5]) {
      // toPrecision drops the float noise of 10 ** e (0.30000000000000004 and the like).
      const v = Number((m * 10 ** e).toPrecision(1));
      const next = Number(((m === 5 ? 10 : m === 2 ? 5 : 2) * 10 ** e).toPrecision(1));
      if (next <= min) continue;
      out.push(v);
      if (v >= max) return out;
    }
  }
}

type Datum = { ratio: number; target: number | null; scenario: string };

function spec(values: readonly Datum[], options: ChartOptions): TopLevelSpec {
  const xs = values.flatMap((v) => (v.target === null ? [v.ratio] : [v.ratio, v.target]));
  // 1-2-5 steps (always including 1), padded so the value labels at the bars' ends fit.
  const steps = niceSteps(Math.min(1, ...xs) / DOMAIN_PAD, Math.max(1, ...xs) * DOMAIN_PAD);
  const lo = steps[0]!;
  const hi = steps[steps.length - 1]!;
  // A value label next to a target tick would overprint it: such labels go past the tick instead.
  const near = 10 ** (VALUE_LABEL_PX / (PLOT_WIDTH / Math.log10(hi / lo)));
  const data = values.map((v) => {
    const t = v.target;
    const past = t !== null && (v.ratio >= 1 ? t >= v.ratio && t < v.ratio * near : t <= v.ratio && t > v.ratio / near);
    return { ...v, at: past ? t : v.ratio };
  });
  const x = {
    type: "quantitative" as const,
    scale: { type: "log" as const, domain: [lo, hi], nice: false },
    axis: {
      title: "\u2190 ours faster  \u00b7  ratio = our time / baseline time (log scale)  \u00b7  ours slower \u2192",
      values: steps,
      labelExpr: "datum.value + 'x'",
      grid: true,
    },
  };
  const scenarios = [...new Set(values.map((v) => v.scenario))];
  const y = {
    field: "label",
    type: "nominal" as const,
    sort: { field: "index" },
    axis: { title: null, labelLimit: LABEL_LIMIT, labelFontSize: 11, ticks: false },
  };
  const text = (filter: string, align: "left" | "right", dx: number) => ({
    transform: [{ filter }],
    mark: { type: "text" as const, align, dx, fontSize: 10, color: "#333", aria: false },
    encoding: { x: { field: "at", ...x }, y, text: { field: "text", type: "nominal" as const } },
  });
  const chart: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: options.title ?? "terraphim-persistence benchmarks: our time / baseline time",
      subtitle: [
        ...(options.subtitle ? [options.subtitle] : []),
        "Bars start at 1.0 (dashed): left = we are faster. Black tick: the row's target ratio (at most).",
      ],
      anchor: "start",
      fontSize: 15,
      subtitleFontSize: 11,
    },
    background: "white",
    padding: 12,
    data: { values: data },
    facet: {
      row: {
        field: "scenario",
        type: "nominal",
        sort: scenarios,
        header: {
          title: null,
          labelAngle: 0,
          labelOrient: "top",
          labelAnchor: "start",
          labelAlign: "left",
          labelFontSize: 12,
          labelFontWeight: "bold",
          labelPadding: 4,
        },
      },
    },
    spacing: 8,
    resolve: { scale: { y: "independent" } },
    spec: {
      width: PLOT_WIDTH,
      height: { step: BAR_STEP },
      // No shared y: the 1.0 rule has none, so it spans the panel instead of drawing one line per bar.
      layer: [
        {
          mark: { type: "bar", height: { band: 0.72 } },
          encoding: {
            x: { field: "ratio", ...x },
            x2: { datum: 1 },
            y,
            color: {
              field: "status",
              type: "nominal",
              scale: { domain: [MET, MISSED, NONE], range: ["#4c9a5b", "#d6453d", "#a9b1ba"] },
              legend: { title: null, orient: "top", direction: "horizontal", labelLimit: 300 },
            },
          },
        },
        {
          // One row per panel, so the rule is drawn once, not once per bar.
          transform: [{ aggregate: [{ op: "count", as: "bars" }] }],
          mark: { type: "rule", color: "#222", strokeDash: [4, 3] },
          encoding: { x: { datum: 1, ...x } },
        },
        {
          transform: [{ filter: "isValid(datum.target)" }],
          mark: { type: "tick", color: "black", opacity: 1, thickness: 2, size: BAR_STEP - 2 },
          encoding: { x: { field: "target", ...x }, y },
        },
        text("datum.ratio >= 1", "left", 3),
        text("datum.ratio < 1", "right", -3),
      ],
    },
  };
  return chart;
}

/**
 * The bench's chart step: renders the sections' rows and writes the SVG to
 * `BENCH_CHART` if set, else to `bench/ratios.svg` unless the run is partial
 * (`--quick` or `--only`: its picture would replace the full one with rough
 * or missing figures). Returns the line to print.
 */
export async function writeRatioChart(sections: readonly ChartSection[], run: { partial: boolean }): Promise<string> {
  const file =
    process.env.BENCH_CHART || (run.partial ? undefined : fileURLToPath(new URL("./ratios.svg", import.meta.url)));
  if (!file) return "chart: not written (--quick or --only run; BENCH_CHART=path writes one anyway)";
  const records = chartRecords(sections);
  if (records.length === 0) return "chart: not written (no rows)";
  const cpu = cpus()[0]?.model.trim() ?? "?";
  const when = new Date().toISOString().slice(0, 16).replace("T", " ");
  const svg = await ratioChartSvg(records, {
    subtitle: `${records.length} comparisons, ${when} UTC; Node ${process.version}, ${cpus().length} x ${cpu}`,
  });
  writeFileSync(file, svg);
  return `chart: ${file}`;
}
