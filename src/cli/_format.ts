/** Text formatting for the CLI: tables, sizes, durations, and profile options with secrets hidden. */
import { isSecretKey, type OperatorCapabilities, redactSecrets } from "../index.js";

/** A plain-text table: a header row, then rows, columns padded to the widest cell. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)];
}

/** `1536` -> `1.5 KiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** Milliseconds as `850 ms`, `12.3 s`, `4m 05s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m}m ${String(Math.round(s - m * 60)).padStart(2, "0")}s`;
}

/** Microseconds as `4.2 µs`, `350 µs`, `12.5 ms`. */
export function formatMicros(us: number): string {
  if (us < 10) return `${us.toFixed(1)} µs`;
  if (us < 1000) return `${Math.round(us)} µs`;
  return `${(us / 1000).toFixed(1)} ms`;
}

/** A count per second, rounded for reading. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return "-";
  if (perSecond >= 100) return String(Math.round(perSecond));
  return perSecond.toFixed(1);
}

/** Capabilities as words: `list durable shared sync-read`, with `no-list` where listing is missing. */
export function formatCapabilities(c: OperatorCapabilities): string {
  return [
    c.list ? "list" : "no-list",
    c.durable ? "durable" : "volatile",
    // "shared" names a profile other instances write to (the sharing column); this is what the backend can be.
    c.shared ? "multi-process" : "",
    c.syncRead ? "sync-read" : "",
    c.lastModified ? "mtime" : "",
  ]
    .filter((s) => s !== "")
    .join(" ");
}

/**
 * A profile's options fit to show: values of secret-looking keys
 * (`secret_access_key`, `password`, `token`, ...) become `***`, and passwords
 * inside values (`postgresql://user:pw@host`) are redacted.
 */
export function redactOptions(options: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(options)) out[k] = isSecretKey(k) && v !== "" ? "***" : redactSecrets(v);
  return out;
}

/** Options as `key=value key=value` (already redacted by {@link redactOptions}). */
export function formatOptions(options: Readonly<Record<string, string>>): string {
  return Object.entries(options)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

/** `n` with the noun, singular or plural: `1 key`, `2 keys`. */
export function plural(n: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : pluralNoun}`;
}
