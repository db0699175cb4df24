/**
 * Scenario 5: compressing 1, 10 and 50 MB of JSON the way every save does
 * (`maybeCompress`: zstd level 3 with a content checksum, behind the `ZSTD`
 * header) against the `zstd -3` command-line tool on the same bytes, read
 * from a file in the page cache and written to /dev/null. The CLI's time
 * includes starting the process and reading the file: that is what "the
 * CLI's throughput" is. `--single-thread` is the fair comparison (one core,
 * as ours); the CLI's default (an I/O thread beside the compressor) is shown
 * too. Both write a checksum (the CLI does by default).
 *
 * Rows for decompression (`maybeDecompress` vs `zstd -d`) are for scale, not
 * judged.
 */
import { spawnSync } from "node:child_process";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { maybeCompress, maybeDecompress } from "../../src/codec.js";
import { runtimeSupport } from "../../src/operators/requirements.js";
import { bigJson, MiB } from "../_data.js";
import { compare, type Row, row, type Side } from "../_harness.js";
import { type Context, sink } from "../_setup.js";

function cli(args: string[], input: string, devNull: number): void {
  const r = spawnSync("zstd", [...args, "-q", "-c", input], { stdio: ["ignore", devNull, "pipe"] });
  if (r.status !== 0) throw new Error(`zstd ${args.join(" ")} failed: ${r.error?.message ?? r.stderr?.toString()}`);
}

export async function compression(ctx: Context): Promise<Row[]> {
  const probe = spawnSync("zstd", ["--version"]);
  if (probe.status !== 0) {
    ctx.log("5 compression: NOT MEASURED (no zstd CLI on PATH; apt-get install zstd)");
    return [];
  }
  const devNull = openSync("/dev/null", "w");
  const rows: Row[] = [];
  const sizes = ctx.quick ? [1] : [1, 10, 50];
  try {
    for (const mb of sizes) {
      const bytes = bigJson(mb * MiB);
      const file = join(ctx.dir, `s5-${mb}mb.json`);
      writeFileSync(file, bytes);
      const frame = maybeCompress(bytes);
      if (frame === bytes) throw new Error(`${mb} MB did not compress`);
      const zfile = join(ctx.dir, `s5-${mb}mb.json.zst`);
      writeFileSync(zfile, frame.subarray(4));
      const mbs = (ops: number) => `${((ops * bytes.length) / MiB).toFixed(0)} MB/s`;
      const rounds = ctx.quick ? 3 : mb >= 50 ? 5 : 9;
      const n = mb >= 10 ? 1 : 5;
      const ours: Side = {
        name: "ours",
        batch(k) {
          for (let i = 0; i < k; i++) sink.v = maybeCompress(bytes);
        },
      };
      const ratioText = `${(bytes.length / frame.length).toFixed(1)}:1`;
      ctx.log(`5 compression ${mb} MB: maybeCompress vs zstd -3 --single-thread / zstd -3`);
      for (const [flags, judged] of [
        [["-3", "--single-thread"], true],
        [["-3"], false],
      ] as const) {
        const [o, b] = await compare(
          ours,
          {
            name: "cli",
            batch(k) {
              for (let i = 0; i < k; i++) cli([...flags], file, devNull);
            },
          },
          { n, rounds },
        );
        rows.push(
          row(
            `5 compress ${mb} MB`,
            [`maybeCompress (${runtimeSupport().zstd.module}, level 3)`, o.opsPerS],
            [`zstd ${flags.join(" ")} (CLI, file -> /dev/null)`, b.opsPerS],
            judged ? { kind: "ratio<=", max: 1.25, text: ">= 80% of CLI throughput (<= 1.25x)" } : undefined,
            `ours ${mbs(o.opsPerS)}, CLI ${mbs(b.opsPerS)}; ${(bytes.length / MiB).toFixed(1)} MiB -> ${ratioText}`,
          ),
        );
      }
      const [o, b] = await compare(
        {
          name: "ours",
          batch(k) {
            for (let i = 0; i < k; i++) sink.v = maybeDecompress(frame);
          },
        },
        {
          name: "cli",
          batch(k) {
            for (let i = 0; i < k; i++) cli(["-d"], zfile, devNull);
          },
        },
        { n, rounds },
      );
      rows.push(
        row(
          `5 decompress ${mb} MB`,
          ["maybeDecompress", o.opsPerS],
          ["zstd -d (CLI, file -> /dev/null)", b.opsPerS],
          undefined,
          `for scale: ours ${mbs(o.opsPerS)}, CLI ${mbs(b.opsPerS)}`,
        ),
      );
    }
  } finally {
    closeSync(devNull);
  }
  return rows;
}
