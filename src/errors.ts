/**
 * Every error this library throws is a {@link PersistenceError} with a stable
 * `code`, and where known the `profile` and `key` it concerns. The original
 * error, when there is one, is kept as `cause`.
 *
 * Messages never contain secrets (S3 keys, passwords in connection strings):
 * text coming from a backend goes through {@link redactSecrets} first.
 */

/** Stable error codes; match on these, never on message text. */
export type ErrorCode =
  | "E_PERSISTENCE"
  | "E_NOT_FOUND"
  | "E_INVALID_KEY"
  | "E_BACKEND"
  | "E_UNSUPPORTED"
  | "E_PROFILE"
  | "E_NO_OPERATOR"
  | "E_DESERIALIZE"
  | "E_SETTINGS"
  | "E_PARTIAL_WRITE"
  | "E_LOCKED"
  | "E_TIMEOUT"
  | "E_CLOSED"
  | "E_QUOTA"
  | "E_UNAVAILABLE"
  | "E_FACTORY"
  | "E_UNANNOUNCED";

/** Context attached to an error. */
export interface ErrorContext {
  /** Profile (named backend) the error concerns. */
  profile?: string | undefined;
  /** Storage key the error concerns. */
  key?: string | undefined;
  /** Underlying error. */
  cause?: unknown;
}

/** Base class of every error thrown by this library. */
export class PersistenceError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** Profile the error concerns, if any. */
  readonly profile: string | undefined;
  /** Key the error concerns, if any. */
  readonly key: string | undefined;

  constructor(message: string, context: ErrorContext = {}, code: ErrorCode = "E_PERSISTENCE") {
    super(redactSecrets(message), context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.code = code;
    this.profile = context.profile;
    this.key = context.key;
  }
}

/** The key does not exist in the backend (or in any profile). */
export class NotFoundError extends PersistenceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context, "E_NOT_FOUND");
  }
}

/** A key was rejected before any I/O (empty, NUL, absolute, `..`, too long). */
export class InvalidKeyError extends PersistenceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context, "E_INVALID_KEY");
  }
}

/** A backend failed (I/O, network, permission, server error). */
export class BackendError extends PersistenceError {
  /** Whether retrying the same call may succeed. */
  readonly transient: boolean;
  constructor(message: string, context: ErrorContext & { transient?: boolean } = {}) {
    super(message, context, "E_BACKEND");
    this.transient = context.transient ?? false;
  }
}

/** The backend cannot do this (e.g. `list` on redb, redis, postgresql). */
export class UnsupportedError extends PersistenceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context, "E_UNSUPPORTED");
  }
}

/** A profile is unknown, misconfigured, or could not be opened. */
export class ProfileError extends PersistenceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context, "E_PROFILE");
  }
}

/** A file-backed store (redb, sled) is already held by another operator. */
export class LockedError extends ProfileError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context);
    Object.defineProperty(this, "code", { value: "E_LOCKED" });
  }
}

/** No profile could be opened, so there is nothing to read from or write to. */
export class NoOperatorError extends PersistenceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context, "E_NO_OPERATOR");
  }
}

/** Stored bytes exist but cannot be decoded into the expected value. */
export class DeserializeError extends PersistenceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context, "E_DESERIALIZE");
  }
}

/** The settings file or environment is malformed. */
export class SettingsError extends PersistenceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context, "E_SETTINGS");
  }
}

/** A call did not finish in the time allowed. */
export class TimeoutError extends BackendError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, { ...context, transient: true });
    Object.defineProperty(this, "code", { value: "E_TIMEOUT" });
  }
}

/**
 * A key was not found in any profile that answered, but a durable profile
 * could not be asked (down, circuit open, timed out, failed): absence is not
 * certain, so this is never a {@link NotFoundError}. `unavailable` names each
 * profile not asked and why. A `BackendError` (transient) by kind.
 */
export class UnavailableError extends BackendError {
  /** The durable profiles that could not be asked, with the reason. */
  readonly unavailable: readonly { profile: string; reason: string }[];
  constructor(
    message: string,
    unavailable: readonly { profile: string; reason: string }[],
    context: ErrorContext = {},
  ) {
    super(message, { ...context, transient: true });
    Object.defineProperty(this, "code", { value: "E_UNAVAILABLE" });
    this.unavailable = unavailable;
  }
}

/**
 * A change reached a shared profile whose server cannot announce it (S3,
 * MySQL), but the coherence bus did not take its announcement in time: other
 * instances may serve their local copies of the key until it does (it is
 * still being sent). A `BackendError` (transient) by kind; in a save, the
 * profile's outcome in its `PartialWriteError`.
 */
export class AnnounceError extends BackendError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, { ...context, transient: true });
    Object.defineProperty(this, "code", { value: "E_UNANNOUNCED" });
  }
}

/** The operator or storage was closed. */
export class ClosedError extends PersistenceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context, "E_CLOSED");
  }
}

/** A write would take a profile over its `max_size` / `max_items` quota (durable profiles refuse, they never evict). */
export class QuotaExceededError extends PersistenceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context, "E_QUOTA");
  }
}

/**
 * Whether `err` is the caller's doing (a bad key, a closed storage) rather
 * than a backend's: such an error is passed straight back, never retried,
 * never counted against a tier and never a reason to fall back. The one
 * classification rule every path uses.
 */
export function isCallerError(err: unknown): boolean {
  return err instanceof InvalidKeyError || err instanceof ClosedError;
}

/** Why a profile takes reads but not writes (see {@link readOnlyReason}); `configured` is the `read_only` option. */
export type ReadOnlyReason =
  | "read-only file system"
  | "disk full"
  | "permission denied"
  | "read-only credentials"
  | "configured";

/** Error codes (errno, SQLite) that mean "readable, not writable", and what each means. */
const READ_ONLY_CODES: Readonly<Record<string, ReadOnlyReason>> = {
  EROFS: "read-only file system",
  SQLITE_READONLY: "read-only file system",
  ENOSPC: "disk full",
  EDQUOT: "disk full",
  SQLITE_FULL: "disk full",
  EACCES: "permission denied",
  EPERM: "permission denied",
};

/** OpenDAL puts the kind only in the text; S3 says AccessDenied. */
const READ_ONLY_TEXT = /\bPermissionDenied\b|\bAccessDenied\b/;

/**
 * Why a failed write means the profile is read-only for now (a read-only file
 * system, a full disk, missing permission, read-only credentials), or
 * `undefined` when it is some other failure. Looks through the `cause` chain
 * for the errno or SQLite code the drivers keep. The one place a write
 * failure is classified.
 */
export function readOnlyReason(err: unknown): ReadOnlyReason | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      const reason = READ_ONLY_CODES[code] ?? READ_ONLY_CODES[code.replace(/_[A-Z]+$/, "")];
      if (reason) return reason;
    }
    if (READ_ONLY_TEXT.test(e.message)) return "read-only credentials";
  }
  return undefined;
}

/**
 * Whether `err` says the backend could not be reached (a server that is down
 * or hung: a time limit passed, a transient failure, a refused connection)
 * rather than that it is misconfigured: such a profile is `down` and retried,
 * never left out for good. Looks through the `cause` chain.
 */
export function isUnreachable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof BackendError && e.transient) return true;
  }
  return false;
}

/** Outcome of a write to one profile. */
export type ProfileOutcome = { profile: string; ok: true } | { profile: string; ok: false; error: Error };

/** A write to several profiles failed in at least one of them. */
export class PartialWriteError extends PersistenceError {
  /** Every profile's outcome, in the order the profiles were written. */
  readonly outcomes: readonly ProfileOutcome[];
  constructor(key: string, outcomes: readonly ProfileOutcome[]) {
    const failed = outcomes.filter((o) => !o.ok);
    const ok = outcomes.filter((o) => o.ok).map((o) => o.profile);
    const detail = failed.map((o) => `${o.profile}: ${o.ok ? "" : o.error.message}`).join("; ");
    super(
      `Write of "${key}" failed in ${failed.length} of ${outcomes.length} profiles (${detail}); written to: ${ok.length ? ok.join(", ") : "none"}`,
      { key, cause: failed.length === 1 && !failed[0]?.ok ? failed[0]?.error : undefined },
      "E_PARTIAL_WRITE",
    );
    this.outcomes = outcomes;
  }
}

const SECRET_PATTERNS: [RegExp, string][] = [
  // user:password@ in URLs (postgresql://u:p@h, redis://:p@h)
  [/([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*):[^@\s/]*@/gi, "$1:***@"],
  // key=value / key: value for secret-ish keys
  [
    /(?<![\w.])((?:secret_access_key|access_key_id|password|passwd|pwd|secret|token|private_key|session_token)["']?\s*[=:]\s*["']?)([^\s"',;&}]+)/gi,
    "$1***",
  ],
];

/** Known secret values (registered by settings loading) to scrub from any text. */
const knownSecrets = new Set<string>();

/**
 * Register a value that must never appear in messages (an S3 secret, a password).
 * Values shorter than 4 characters are ignored to avoid scrubbing ordinary text.
 */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) knownSecrets.add(value);
}

/** Removes credentials from a piece of text (URLs with passwords, `secret=...`, registered secrets). */
export function redactSecrets(text: string): string {
  let out = text;
  for (const [re, rep] of SECRET_PATTERNS) out = out.replace(re, rep);
  for (const s of knownSecrets) if (out.includes(s)) out = out.split(s).join("***");
  return out;
}

/**
 * The factory of `DeviceStorage.getOrSet` failed (threw, rejected, or returned
 * `undefined`, which JSON cannot store) and there was no value to serve
 * instead. `key` is the key asked for; `cause` is the factory's own error
 * (absent for `undefined`).
 */
export class FactoryError extends PersistenceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context, "E_FACTORY");
  }
}
