/**
 * Shell-like expansion of settings values, compatible with what the Rust
 * crate accepts (twelf + shellexpand): `$NAME`, `${NAME}`, `${NAME:-default}`,
 * and a leading `~` / `~/...` for the home directory.
 *
 * Differences from shellexpand, all supersets:
 * - a default may nest (`${A:-${B:-x}}`) and may itself start with `~`;
 * - `${NAME:-default}` uses the default when NAME is unset *or empty* (as in
 *   a shell); shellexpand only when unset.
 * Text that is not a valid reference (`$` before a non-name character, `${`
 * without a closing `}`, `${A:?x}`) is kept as-is, like shellexpand does.
 */

/** Where expansion looks things up. */
export interface ExpandContext {
  /** Environment variables (missing or `undefined` means unset). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Home directory for `~`. */
  readonly home: string;
  /** Whether `~\` also means home (Windows). */
  readonly windows?: boolean;
}

/** A `${NAME}` / `$NAME` reference whose variable is unset and has no default. */
export class UnsetVariable extends Error {
  constructor(readonly variable: string) {
    super(`environment variable ${variable} is not set and has no default`);
  }
}

const NAME_CHAR = /[A-Za-z0-9_]/;

/** Replaces a leading `~` or `~/...` with the home directory. */
export function expandTilde(value: string, ctx: ExpandContext): string {
  if (value === "~") return ctx.home;
  if (value.startsWith("~/") || (ctx.windows && value.startsWith("~\\"))) return ctx.home + value.slice(1);
  return value;
}

/**
 * Expands variables, then a leading `~` in the result (so a variable or a
 * default that yields `~/x` lands in the home directory, as the Rust crate's
 * later `expand_tilde` does). Throws {@link UnsetVariable}.
 */
export function expandValue(value: string, ctx: ExpandContext): string {
  return expandTilde(expandVariables(value, ctx), ctx);
}

/** Index of the `}` closing the `${` whose `{` is at `open`, or -1. */
function closingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
  }
  return -1;
}

function expandVariables(text: string, ctx: ExpandContext): string {
  if (!text.includes("$")) return text;
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c !== "$") {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === "{") {
      const close = closingBrace(text, i + 1);
      const inner = close === -1 ? undefined : text.slice(i + 2, close);
      const m = inner === undefined ? null : /^([A-Za-z0-9_]+)(?::-([\s\S]*))?$/.exec(inner);
      if (!m) {
        out += c;
        i++;
        continue;
      }
      out += lookup(m[1] as string, m[2], ctx);
      i = close + 1;
      continue;
    }
    if (next !== undefined && NAME_CHAR.test(next)) {
      let end = i + 1;
      while (end < text.length && NAME_CHAR.test(text[end] as string)) end++;
      out += lookup(text.slice(i + 1, end), undefined, ctx);
      i = end;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

function lookup(name: string, fallback: string | undefined, ctx: ExpandContext): string {
  const value = Object.hasOwn(ctx.env, name) ? ctx.env[name] : undefined;
  if (fallback !== undefined) return value === undefined || value === "" ? expandValue(fallback, ctx) : value;
  if (value === undefined) throw new UnsetVariable(name);
  return value;
}
