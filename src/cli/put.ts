/** `put KEY [FILE]`: validates a JSON value and saves it to every profile, or one. */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { PersistenceError } from "../index.js";
import { formatBytes } from "./_format.js";
import { action, checkKey, messageOf, UsageError, withTargets, writable } from "./_run.js";

export function registerPut(program: Command): void {
  program
    .command("put")
    .description("validate a JSON value and save it under KEY to every profile (or one), compressed when 1 MiB or more")
    .argument("<key>", "storage key")
    .argument("[file]", 'file holding the JSON value; "-" or nothing reads stdin')
    .option("-p, --profile <name>", "write this profile only")
    .option("--force", 'also write to profiles with read_only = "true"')
    .action(
      action(
        async (
          output,
          options,
          rawKey: string,
          file: string | undefined,
          opts: { profile?: string; force?: boolean },
        ) => {
          const key = checkKey(rawKey);
          const text = await readInput(file);
          let value: unknown;
          try {
            value = JSON.parse(text);
          } catch (err) {
            throw new PersistenceError(
              `${file && file !== "-" ? file : "stdin"} is not valid JSON (${messageOf(err)}); nothing was written`,
              { key },
            );
          }
          await withTargets(output, options, opts.profile, async (storage, all) => {
            const how = { command: "put", named: opts.profile !== undefined, force: opts.force };
            const profiles = writable(output, all, how).map((e) => e.name);
            await storage.saveValue(key, value, { profiles });
            const bytes = Buffer.byteLength(JSON.stringify(value));
            output.result(
              { key, bytes, profiles },
              () => `saved ${key} (${formatBytes(bytes)}) to ${profiles.join(", ")}`,
            );
          });
        },
      ),
    );
}

/** The JSON text to `put`: a file, or stdin for `-` or no file. */
async function readInput(file: string | undefined): Promise<string> {
  if (file !== undefined && file !== "-") {
    try {
      return await readFile(file, "utf8");
    } catch (err) {
      throw new PersistenceError(`cannot read ${file}: ${messageOf(err)}`);
    }
  }
  if (process.stdin.isTTY) {
    throw new UsageError('put: give a FILE with the JSON value, or pipe it on stdin ("-")');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
