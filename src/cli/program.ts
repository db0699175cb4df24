/**
 * The `terraphim-persistence` command: look into the stores of a
 * `settings.toml`, move data between them, and check them.
 *
 * Exit codes: 0 ok, 1 the operation failed, 2 the command line was wrong.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { EXIT_OK, EXIT_USAGE, Output, reportError } from "./_run.js";
import { registerBench } from "./bench.js";
import { registerDemo } from "./demo.js";
import { registerDoctor } from "./doctor.js";
import { registerGet } from "./get.js";
import { registerLs } from "./ls.js";
import { registerMigrate } from "./migrate.js";
import { registerProfiles } from "./profiles.js";
import { registerPut } from "./put.js";
import { registerRepair } from "./repair.js";
import { registerRm } from "./rm.js";
import { registerStat } from "./stat.js";
import { registerVerify } from "./verify.js";
import { registerWatch } from "./watch.js";

/** Builds the command-line program (without running it). */
export function createProgram(): Command {
  const program = new Command("terraphim-persistence")
    .description(
      "Inspect, move and check the stores of a terraphim settings.toml (memory, sqlite, fs, redb, sled, s3, redis, postgresql, ...)",
    )
    .version(packageVersion(), "-V, --version")
    .option(
      "--settings <path>",
      "settings folder (holding settings.toml) or file; default: TERRAPHIM_SETTINGS_PATH, else the platform folder",
    )
    .option("--json", "machine-readable output on stdout")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  program.addHelpText(
    "after",
    "\nExit codes: 0 ok, 1 the operation failed, 2 usage error.\nSecrets (S3 keys, passwords in connection strings) are never printed.",
  );
  // In the order `--help` lists them.
  for (const register of [
    registerProfiles,
    registerGet,
    registerPut,
    registerRm,
    registerStat,
    registerLs,
    registerMigrate,
    registerVerify,
    registerRepair,
    registerWatch,
    registerBench,
    registerDoctor,
    registerDemo,
  ]) {
    register(program);
  }
  return program;
}

/** Runs the program on `argv` (user arguments only) and returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = createProgram();
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return EXIT_USAGE;
  }
  try {
    await program.parseAsync([...argv], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end with an exit code of 0; every parse error is a usage error.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    return reportError(err, new Output(argv.includes("--json")));
  }
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}
