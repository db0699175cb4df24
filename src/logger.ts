import { redactSecrets } from "./errors.js";

/** A pino-compatible logger: pass `pino()` or anything with these four methods. */
export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

const LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
type Level = (typeof LEVELS)[number];

function format(obj: object | string, msg?: string): string {
  if (typeof obj === "string") return redactSecrets(obj);
  const fields = Object.entries(obj)
    .map(([k, v]) => `${k}=${v instanceof Error ? v.message : typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return redactSecrets(msg ? `${msg} ${fields}` : fields);
}

/**
 * The default logger: writes `[terraphim-persistence] LEVEL message` to stderr
 * at or above `level`. The level comes from `TERRAPHIM_LOG`
 * (`debug`, `info`, `warn`, `error`, `silent`); the default is `warn`.
 * Every line passes through secret redaction.
 */
export function consoleLogger(level: string | undefined = process.env.TERRAPHIM_LOG): Logger {
  const min = LEVELS.indexOf(((level ?? "warn").toLowerCase() as Level) ?? "warn");
  const at = min < 0 ? LEVELS.indexOf("warn") : min;
  const make = (l: Level) =>
    LEVELS.indexOf(l) >= at && l !== "silent"
      ? (obj: object | string, msg?: string) =>
          process.stderr.write(`[terraphim-persistence] ${l.toUpperCase()} ${format(obj, msg)}\n`)
      : () => {};
  return { debug: make("debug"), info: make("info"), warn: make("warn"), error: make("error") };
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
