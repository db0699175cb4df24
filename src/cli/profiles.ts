/** `profiles`: the configured profiles in speed order, with their state (ready, read-only, down), what each can do, or why it was left out. */
import type { Command } from "commander";
import { NoOperatorError, type OperatorCapabilities, silentLogger, type TierState } from "../index.js";
import { type CoherenceRow, coherenceLines, coherenceRow } from "./_coherence.js";
import { formatCapabilities, formatMicros, formatOptions, redactOptions, table } from "./_format.js";
import { action, allProfileNames, errorJson, openStorage, readSettings, withStorage } from "./_run.js";

/** One row of `profiles --json`. */
export interface ProfileRow {
  name: string;
  scheme: string;
  /** 1 = fastest; absent for a profile left out or down. */
  rank?: number;
  /** `ok`: in the ranking (ready or read-only); `down`: kept and retried; `error`: left out (misconfigured). */
  status: "ok" | "down" | "error";
  /** Ready, read-only (with the reason) or down (with the reason and the next retry); absent when left out. */
  state?: TierState;
  /** Rank value in µs (measured, or the `speed` override). */
  speed?: number;
  /** Measured median probe read in µs. */
  measuredSpeed?: number;
  timeoutMs?: number;
  /**
   * Sharing: whether other instances write to it (`shared`), or it is this instance's own (`local`); absent
   * when left out. (The backend's ability to be opened by several processes is `capabilities.shared`, shown
   * as "multi-process".)
   */
  shared?: boolean;
  capabilities?: OperatorCapabilities;
  /** Options as configured, secrets replaced by `***`. */
  options: Record<string, string>;
  error?: { code: string; message: string };
}

export function registerProfiles(program: Command): void {
  program
    .command("profiles")
    .description("list the profiles in speed order: scheme, measured speed, capabilities, and why any was left out")
    .action(
      action(async (output, options) => {
        const settings = await readSettings(options, output);
        const optionsOf = (name: string) =>
          redactOptions(settings.profiles[name] ?? Object.fromEntries([["type", "(unresolved)"]]));
        let rows: ProfileRow[];
        let coherence: CoherenceRow | undefined;
        try {
          const opened = await openStorage(settings, undefined, silentLogger, settings.coherence !== undefined);
          rows = await withStorage(opened, async (storage) => {
            coherence = await coherenceRow(storage);
            const ok: ProfileRow[] = storage.ranked.map((e, i) => ({
              name: e.name,
              scheme: e.scheme,
              rank: i + 1,
              status: "ok",
              state: e.state,
              speed: round(e.rankLatencyUs),
              measuredSpeed: round(e.probeLatencyUs),
              ...(e.timeoutMs === undefined ? {} : { timeoutMs: e.timeoutMs }),
              shared: e.shared,
              capabilities: { ...e.capabilities },
              options: optionsOf(e.name),
            }));
            const down: ProfileRow[] = storage.tiers
              .filter((e) => !storage.ranked.includes(e))
              .map((e) => ({
                name: e.name,
                scheme: e.scheme,
                status: "down",
                state: e.state,
                ...(e.timeoutMs === undefined ? {} : { timeoutMs: e.timeoutMs }),
                shared: e.shared,
                options: optionsOf(e.name),
                ...(storage.profileErrors.get(e.name) ? { error: errorJson(storage.profileErrors.get(e.name)) } : {}),
              }));
            const failed: ProfileRow[] = [...storage.profileErrors]
              .filter(([name]) => !down.some((d) => d.name === name))
              .map(([name, err]) => ({
                name,
                scheme: settings.profiles[name]?.type ?? "?",
                status: "error",
                options: optionsOf(name),
                error: errorJson(err),
              }));
            return [...ok, ...down, ...failed];
          });
        } catch (err) {
          if (!(err instanceof NoOperatorError)) throw err;
          // Nothing opened: still one row per profile, each with the whole reason.
          rows = allProfileNames(settings).map((name) => ({
            name,
            scheme: settings.profiles[name]?.type ?? "?",
            status: "error",
            options: optionsOf(name),
            error: errorJson(settings.profileErrors?.[name] ?? err),
          }));
        }
        output.result({ settings: settings.source ?? null, profiles: rows, ...(coherence && { coherence }) }, () => [
          `settings: ${settings.source ?? "(built-in defaults)"}`,
          ...table(
            ["#", "profile", "scheme", "speed", "capabilities", "status", "state", "sharing", "options"],
            rows.map((r) => [
              r.rank === undefined ? "-" : String(r.rank),
              r.name,
              r.scheme,
              r.measuredSpeed === undefined ? "-" : speedText(r),
              r.capabilities ? formatCapabilities(r.capabilities) : "-",
              r.status === "ok" ? (r.rank === 1 ? "ok (fastest)" : "ok") : r.status === "down" ? "down" : "left out",
              r.state ? stateText(r.state) : "-",
              r.shared === undefined ? "-" : r.shared ? "shared" : "local",
              formatOptions(r.options),
            ]),
          ),
          ...rows
            .filter((r) => r.error)
            .map((r) => `${r.status === "down" ? "down" : "left out"}: ${r.name}: ${r.error?.message ?? ""}`),
          ...(coherence ? coherenceLines(coherence) : []),
        ]);
        return rows.some((r) => r.status === "ok") ? 0 : 1;
      }),
    );
}

/** `ready`, `read-only (disk full)`, `down (next retry in 3 s)`: the reason of a down profile is printed below the table. */
function stateText(state: TierState): string {
  if (state.kind === "ready") return "ready";
  if (state.kind === "read-only") return `read-only (${state.reason})`;
  return `down (next retry in ${Math.max(0, Math.round((state.nextRetryAt - Date.now()) / 1000))} s)`;
}

function speedText(r: ProfileRow): string {
  const measured = formatMicros(r.measuredSpeed ?? 0);
  return r.speed !== undefined && r.speed !== r.measuredSpeed ? `${measured} (rank ${r.speed})` : measured;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
