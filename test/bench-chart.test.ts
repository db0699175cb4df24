/**
 * The bench's SVG chart of ratios (bench/chart.ts), tested on made-up records
 * without running the bench: a well-formed SVG, one bar per record starting
 * at the 1.0 rule on a log scale, the labels, the target ticks, the colours.
 */
import { describe, expect, it } from "vitest";
import type { Row } from "../bench/_harness.js";
import { type ChartRecord, chartRecords, ratioChartSvg, targetRatio } from "../bench/chart.js";

const RECORDS: ChartRecord[] = [
  { scenario: "1 hot load", label: "hot load vs JSON.parse", ratio: 1.5, target: 2, met: true },
  { scenario: "1 hot load", label: "hot load + zod vs zod.parse", ratio: 2.5, target: 2, met: false },
  { scenario: "4 peers", label: "get vs bentocache get", ratio: 0.04, target: 1, met: true },
  { scenario: "4 peers", label: "get vs cacheable get", ratio: 0.4, target: 1, met: true },
  { scenario: "4 peers", label: "set vs unstorage [SKIPS WORK] set", ratio: 2.5 },
  {
    scenario: "6 loadDocumentsByIds",
    label: "sqlite vs SELECT loop",
    ratio: 1.2,
    targetText: ">= 100k keys/s",
    met: true,
  },
  { scenario: "7 start-up", label: "start-up vs raw open", ratio: 130 },
];

interface Bar {
  ratio: number;
  label: string;
  status: string;
  x0: number;
  x1: number;
  fill: string;
}

/** The bars of the SVG: vega writes each as a `<path>` whose aria-label names its fields. */
function bars(svg: string): Bar[] {
  const re =
    /<path aria-label="ratio: ([\d.e-]+); label: ([^;"]*); status: ([^"]*)" role="graphics-symbol" aria-roledescription="bar" d="M([\d.-]+),[\d.-]+h([\d.e-]+)[^"]*" fill="([^"]+)"/g;
  return [...svg.matchAll(re)].map((m) => ({
    ratio: Number(m[1]),
    label: unescapeXml(m[2]!),
    status: m[3]!,
    x0: Number(m[4]),
    x1: Number(m[4]) + Number(m[5]),
    fill: m[6]!,
  }));
}

/** x of the 1.0 rules (one per panel): the dashed rule marks of the chart's layer 1. */
function rules(svg: string): number[] {
  const groups = [...svg.matchAll(/<g class="mark-rule role-mark child_layer_1_marks"[^>]*>(.*?)<\/g>/g)];
  return groups.flatMap((g) =>
    [...g[1]!.matchAll(/<line transform="translate\(([\d.-]+),0\)"/g)].map((m) => Number(m[1])),
  );
}

/** Target ticks: their aria-labels and x. */
function ticks(svg: string): { target: number; label: string }[] {
  const re =
    /<path aria-label="target: ([\d.e-]+); label: ([^"]*)" role="graphics-symbol" aria-roledescription="tick"/g;
  return [...svg.matchAll(re)].map((m) => ({ target: Number(m[1]), label: unescapeXml(m[2]!) }));
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, "&");
}

/** Throws unless every tag is closed in order (the SVG is well-formed as XML as far as elements go). */
function assertWellFormed(svg: string): void {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:[^>"]|"[^"]*")*?)(\/?)>/g)) {
    const [, close, name, , selfClose] = m;
    if (selfClose) continue;
    if (!close) stack.push(name!);
    else if (stack.pop() !== name) throw new Error(`unbalanced </${name}> at ${m.index}`);
  }
  expect(stack).toEqual([]);
  expect(svg.replace(/<[^>]*>/g, "")).not.toMatch(/[<>]/);
}

describe("ratioChartSvg", () => {
  it("renders a well-formed SVG document with a size", async () => {
    const svg = await ratioChartSvg(RECORDS, { subtitle: "a test run" });
    expect(svg).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    const [, w, h] = /<svg [^>]*width="(\d+)" height="(\d+)"/.exec(svg)!;
    expect(Number(w)).toBeGreaterThan(600);
    expect(Number(h)).toBeGreaterThan(RECORDS.length * 16);
    assertWellFormed(svg);
    expect(svg).toContain("a test run");
  });

  it("draws one bar per record, each starting at the 1.0 rule, on a log scale", async () => {
    const svg = await ratioChartSvg(RECORDS);
    const got = bars(svg);
    expect(got.map((b) => [b.label, b.ratio])).toEqual(RECORDS.map((r) => [r.label, r.ratio]));
    const ruleX = rules(svg);
    // One rule per scenario panel, all at the same x (the panels share the x scale).
    expect(ruleX).toHaveLength(new Set(RECORDS.map((r) => r.scenario)).size);
    expect(new Set(ruleX).size).toBe(1);
    const one = ruleX[0]!;
    for (const b of got) {
      // Slower: from 1.0 rightwards; faster: leftwards to 1.0.
      if (b.ratio > 1) expect(b.x0).toBeCloseTo(one, 1);
      else expect(b.x1).toBeCloseTo(one, 1);
    }
    const width = (label: string) => {
      const b = got.find((x) => x.label === label)!;
      return b.x1 - b.x0;
    };
    // Log scale: 2.5x slower and 0.4x (2.5x faster) are bars of the same length; 130x is 5.3 times as long as 2.5x.
    expect(width("get vs cacheable get")).toBeCloseTo(width("set vs unstorage [SKIPS WORK] set"), 0);
    expect(width("start-up vs raw open") / width("set vs unstorage [SKIPS WORK] set")).toBeCloseTo(
      Math.log(130) / Math.log(2.5),
      1,
    );
  });

  it("labels each bar, each scenario, the values and the axis", async () => {
    const svg = await ratioChartSvg(RECORDS);
    const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => unescapeXml(m[1]!));
    for (const r of RECORDS) expect(texts).toContain(r.label);
    for (const s of new Set(RECORDS.map((r) => r.scenario))) expect(texts).toContain(s);
    for (const v of ["1.50x", "2.50x", "0.040x", "0.40x", "130x", "1.20x (target >= 100k keys/s)"]) {
      expect(texts).toContain(v);
    }
    expect(texts).toContain("1x");
    expect(texts.some((t) => t.includes("our time / baseline time"))).toBe(true);
  });

  it("marks each ratio target with a tick, and colours bars by whether their target was met", async () => {
    const svg = await ratioChartSvg(RECORDS);
    expect(ticks(svg)).toEqual(
      RECORDS.filter((r) => r.target !== undefined).map((r) => ({ target: r.target, label: r.label })),
    );
    const fills = new Map(bars(svg).map((b) => [b.label, [b.status, b.fill]]));
    const [met, missed, none] = [
      fills.get("hot load vs JSON.parse")!,
      fills.get("hot load + zod vs zod.parse")!,
      fills.get("start-up vs raw open")!,
    ];
    expect([met[0], missed[0], none[0]]).toEqual(["target met", "target missed", "no target (for scale)"]);
    expect(new Set([met[1], missed[1], none[1]]).size).toBe(3);
  });

  it("keeps a repeated label within a scenario as its own bar", async () => {
    const twice: ChartRecord[] = [
      { scenario: "1 a", label: "same", ratio: 1.1 },
      { scenario: "1 a", label: "same", ratio: 0.9 },
      { scenario: "2 b", label: "same", ratio: 3 },
    ];
    const got = bars(await ratioChartSvg(twice));
    expect(got.map((b) => [b.label, b.ratio])).toEqual([
      ["same", 1.1],
      ["same (2)", 0.9],
      ["same", 3],
    ]);
  });

  it("rejects what a log scale cannot show, naming the record", async () => {
    await expect(ratioChartSvg([])).rejects.toThrow(RangeError);
    const bad = (r: Partial<ChartRecord>) => ratioChartSvg([{ scenario: "1 s", label: "row x", ratio: 1, ...r }]);
    await expect(bad({ ratio: 0 })).rejects.toThrow(/ratio of "1 s: row x" to be a finite number above 0, got 0/);
    await expect(bad({ ratio: Number.POSITIVE_INFINITY })).rejects.toThrow(RangeError);
    await expect(bad({ target: -1 })).rejects.toThrow(/target of "1 s: row x"/);
  });
});

describe("chartRecords", () => {
  const row = (
    scenario: string,
    ours: string,
    baseline: string,
    ratio: number,
    target?: string,
    met?: boolean,
  ): Row => {
    const r: Row = { scenario, ours, ours_ops_per_s: 1, baseline, baseline_ops_per_s: 1, ratio };
    if (target !== undefined) r.target = target;
    if (met !== undefined) r.met = met;
    return r;
  };

  it("makes one record per row, labelled by the row's comparison, in the scenario's panel", () => {
    const recs = chartRecords([
      {
        scenario: "4 peers",
        rows: [
          row("4 get, memory hit", "ours loadValue", "bentocache get", 0.2, "faster than the peer", true),
          row("4 set, both tiers", "ours saveValue", "unstorage set [SKIPS WORK]", 2.5),
        ],
      },
      {
        scenario: "6 loadDocumentsByIds",
        rows: [row("6 loadDocumentsByIds sqlite", "c16", "SELECT loop", 1.5, ">= 100k keys/s", true)],
      },
    ]);
    expect(recs).toEqual([
      { scenario: "4 peers", label: "get, memory hit vs bentocache get", ratio: 0.2, target: 1, met: true },
      { scenario: "4 peers", label: "set, both tiers vs unstorage set [SKIPS WORK]", ratio: 2.5 },
      {
        scenario: "6 loadDocumentsByIds",
        label: "loadDocumentsByIds sqlite vs SELECT loop",
        ratio: 1.5,
        targetText: ">= 100k keys/s",
        met: true,
      },
    ]);
  });

  it("tells apart rows with the same comparison by what differs in `ours`", () => {
    const base = "ioredis JSON.parse(await redis.get(key))";
    const recs = chartRecords([
      {
        scenario: "10 shared tiers",
        rows: [
          row("redis GET, one at a time", "await storage.loadValue(key)", base, 1.1, "<= 1.2x", true),
          row("redis GET, one at a time", "await storage.loadValue(key) (OpenDAL operator)", base, 3),
        ],
      },
    ]);
    expect(recs.map((r) => r.label)).toEqual([
      `redis GET, one at a time vs ${base}`,
      `redis GET, one at a time [OpenDAL operator] vs ${base}`,
    ]);
  });

  it("reads the target ratio of every target text the bench uses", () => {
    const cases: [string, number | undefined][] = [
      ["<= 2.0x", 2],
      ["<= 1.10x", 1.1],
      ["<= 1.2x", 1.2],
      [">= 80% of CLI throughput (<= 1.25x)", 1.25],
      ["bounded >= 8x sequential (ratio <= 0.125)", 0.125],
      ["<= 2x payload", 2],
      ["faster than the peer", 1],
      [">= 100k keys/s", undefined],
      ["<= 150 ms", undefined],
    ];
    for (const [target, want] of cases) expect([target, targetRatio({ target })]).toEqual([target, want]);
    expect(targetRatio({})).toBeUndefined();
  });
});
