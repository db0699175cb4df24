/** `ls [PREFIX]`: lists keys in every profile that can list, or one. */
import type { Command } from "commander";
import { PersistenceError } from "../index.js";
import { listAll } from "./_list.js";
import { action, checkPrefix, withTargets } from "./_run.js";

export function registerLs(program: Command): void {
  program
    .command("ls")
    .description("list keys (starting with PREFIX) in every profile that can list, or one")
    .argument("[prefix]", "only keys starting with this")
    .option("-p, --profile <name>", "list this profile only")
    .action(
      action(async (output, options, rawPrefix: string | undefined, opts: { profile?: string }) => {
        const prefix = checkPrefix(rawPrefix);
        return withTargets(output, options, opts.profile, async (storage, targets) => {
          const listed = await listAll(targets, prefix);
          const only = opts.profile === undefined ? undefined : listed.profiles[0];
          if (only && !only.listable) {
            throw new PersistenceError(
              `profile "${only.name}" (${only.scheme}) cannot list its keys: the backend has no listing. Read known keys with get/stat, or list a profile that can (${storage.ranked
                .filter((e) => e.capabilities.list)
                .map((e) => e.name)
                .join(", ")})`,
              { profile: only.name },
            );
          }
          output.result({ prefix, keys: listed.keys, profiles: listed.profiles }, () => listed.keys.map((k) => k.key));
          if (!output.json) {
            for (const p of listed.profiles) {
              if (!p.listable)
                output.note(`note: profile ${p.name} (${p.scheme}) cannot list keys; keys only there are not shown`);
              if (p.error) output.note(`error: listing profile ${p.name} failed: ${p.error}`);
            }
          }
          return listed.profiles.some((p) => p.error) ? 1 : 0;
        });
      }),
    );
}
