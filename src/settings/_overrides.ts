/**
 * `TERRAPHIM_` environment overrides, applied to the raw (unexpanded) values
 * before expansion, so an override replaces a `${VAR}` that would fail.
 */

/** A value as it will be expanded: from the file (full expansion) or from an override (only `~`). */
export interface RawEntry {
  value: string;
  /** From the environment: taken literally (a `$` in a password stays), only a leading `~` expands. */
  literal: boolean;
}

/** A profile before expansion. */
export interface RawProfile {
  entries: Map<string, RawEntry>;
  /** Structural problems found while reading the table (path-qualified). */
  problems: string[];
}

/** Env variables overriding top-level fields. */
export const TOP_LEVEL_OVERRIDES = {
  server_hostname: "TERRAPHIM_SERVER_HOSTNAME",
  api_endpoint: "TERRAPHIM_API_ENDPOINT",
  initialized: "TERRAPHIM_INITIALIZED",
  default_data_path: "TERRAPHIM_DEFAULT_DATA_PATH",
} as const;

const PROFILE_PREFIX = "TERRAPHIM_PROFILE_";

/**
 * Applies `TERRAPHIM_PROFILE_<NAME>_<KEY>=value`: sets `<key>` (lowercased)
 * in the profile whose name (compared case-insensitively, longest name first,
 * since names may contain `_`) prefixes `<NAME>_<KEY>`.
 *
 * A variable naming no existing profile creates one only when it sets
 * `TYPE` (`TERRAPHIM_PROFILE_CACHE_TYPE=memory` creates profile `cache`);
 * other keys for that new profile then apply too. Anything else that matches
 * no profile is reported in `warnings` and ignored. A variable with no
 * `_<KEY>` part (`TERRAPHIM_PROFILE_ATOMICSERVER`, referenced as `${...}` in
 * the Rust settings files) is not an override and is ignored silently.
 */
export function applyProfileOverrides(
  profiles: Map<string, RawProfile>,
  env: Readonly<Record<string, string | undefined>>,
  warnings: string[],
): void {
  const overrides: { variable: string; rest: string; value: string }[] = [];
  for (const [variable, value] of Object.entries(env)) {
    if (value === undefined || !variable.toUpperCase().startsWith(PROFILE_PREFIX)) continue;
    const rest = variable.slice(PROFILE_PREFIX.length).toLowerCase();
    if (rest.includes("_")) overrides.push({ variable, rest, value });
  }
  if (overrides.length === 0) return;
  overrides.sort((a, b) => (a.variable < b.variable ? -1 : a.variable > b.variable ? 1 : 0));

  const byLowerName = new Map<string, string>();
  for (const name of profiles.keys())
    if (!byLowerName.has(name.toLowerCase())) byLowerName.set(name.toLowerCase(), name);
  const match = (rest: string): { name: string; key: string } | undefined => {
    const names = [...byLowerName.keys()].sort((a, b) => b.length - a.length);
    for (const lower of names) {
      if (rest.length > lower.length + 1 && rest.startsWith(`${lower}_`)) {
        return { name: byLowerName.get(lower) as string, key: rest.slice(lower.length + 1) };
      }
    }
    return undefined;
  };

  // New profiles first, so that their other keys find them.
  for (const o of overrides) {
    if (match(o.rest) === undefined && o.rest.endsWith("_type") && o.rest.length > "_type".length) {
      const name = o.rest.slice(0, -"_type".length);
      profiles.set(name, { entries: new Map(), problems: [] });
      byLowerName.set(name, name);
    }
  }
  for (const o of overrides) {
    const m = match(o.rest);
    if (m === undefined) {
      warnings.push(
        `${o.variable} matches no profile and was ignored (set ${PROFILE_PREFIX}<NAME>_TYPE to create a profile from the environment)`,
      );
      continue;
    }
    profiles.get(m.name)?.entries.set(m.key, { value: o.value, literal: true });
  }
}
