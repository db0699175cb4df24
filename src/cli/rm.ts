/** `rm KEY`: deletes a key from every profile, or one. */
import type { Command } from "commander";
import { action, checkKey, withTargets, writable } from "./_run.js";

export function registerRm(program: Command): void {
  program
    .command("rm")
    .description("delete KEY from every profile (or one)")
    .argument("<key>", "storage key")
    .option("-p, --profile <name>", "delete from this profile only")
    .option("-f, --force", 'succeed even if no profile held the key; also delete from profiles with read_only = "true"')
    .action(
      action(async (output, options, rawKey: string, opts: { profile?: string; force?: boolean }) => {
        const key = checkKey(rawKey);
        return withTargets(output, options, opts.profile, async (storage, all) => {
          const targets = writable(output, all, {
            command: "rm",
            named: opts.profile !== undefined,
            force: opts.force,
          });
          const held = await Promise.all(targets.map((e) => e.exists(key).catch(() => true)));
          const wasIn = targets.filter((_, i) => held[i]).map((e) => e.name);
          const deletedFrom = targets.map((e) => e.name);
          await storage.deleteValue(key, { profiles: deletedFrom });
          if (wasIn.length === 0 && !opts.force) {
            output.result({ key, found: false, deletedFrom: [], wasIn }, () => []);
            output.note(`error: ${key} is not in ${opts.profile ? `profile ${opts.profile}` : "any profile"}`);
            return 1;
          }
          output.result({ key, found: wasIn.length > 0, deletedFrom, wasIn }, () =>
            wasIn.length === 0
              ? `${key} was not in any profile`
              : `deleted ${key} from ${wasIn.join(", ")}${wasIn.length < deletedFrom.length ? ` (checked ${deletedFrom.join(", ")})` : ""}`,
          );
          return 0;
        });
      }),
    );
}
