/** `get KEY`: prints a stored JSON value, by a tiered load or from one profile. */
import type { Command } from "commander";
import { decodeJson, isCompressed } from "../index.js";
import { action, checkKey, withTargets } from "./_run.js";

export function registerGet(program: Command): void {
  program
    .command("get")
    .description(
      "print the JSON value stored under KEY (decompressed); without --profile, a tiered load: fastest profile first, then fallback and write-back",
    )
    .argument("<key>", "storage key, e.g. document_my_doc.json")
    .option("-p, --profile <name>", "read this profile only (no fallback, no write-back)")
    .action(
      action(async (output, options, rawKey: string, opts: { profile?: string }) => {
        const key = checkKey(rawKey);
        await withTargets(output, options, opts.profile, async (storage, targets) => {
          const tier = targets[0];
          if (opts.profile !== undefined && tier) {
            // An expired value is not found, as in a tiered load.
            const raw = await tier.read(key);
            const value = decodeJson(raw, { profile: tier.name, key });
            output.value(
              { key, profile: tier.name, writeBack: false, storedBytes: raw.length, compressed: isCompressed(raw) },
              value,
            );
            return;
          }
          const r = await storage.loadValue(key);
          output.value({ key, profile: r.profile, writeBack: r.writeBack }, r.value);
          if (!output.json)
            output.note(`(from ${r.profile}${r.writeBack ? `, written back to ${storage.fastestProfile}` : ""})`);
        });
      }),
    );
}
