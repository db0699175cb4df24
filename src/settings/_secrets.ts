/** Which settings values are secrets, so that error messages never print them. */
import { registerSecret } from "../errors.js";

/** Keys whose values are credentials (`secret_access_key`, `password`, `private_key`, `session_token`, ...). */
const SECRET_KEY = /secret|password|passwd|private_key|token|credential/i;

/** Whether the value of `key` is a credential. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** Passwords embedded in a value: `scheme://user:PASSWORD@host` and `password=PASSWORD` (libpq, query strings). */
export function embeddedPasswords(value: string): string[] {
  const found: string[] = [];
  for (const m of value.matchAll(/[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:([^@\s/]+)@/gi)) found.push(m[1] as string);
  for (const m of value.matchAll(/\b(?:password|pwd)=([^\s&;]+)/gi)) found.push(m[1] as string);
  return found;
}

/** Registers every secret in a resolved key/value set with {@link registerSecret}. */
export function registerSecrets(values: Readonly<Record<string, string>>): void {
  for (const [key, value] of Object.entries(values)) {
    if (isSecretKey(key)) registerSecret(value);
    for (const password of embeddedPasswords(value)) {
      registerSecret(password);
      try {
        registerSecret(decodeURIComponent(password));
      } catch {
        // Not percent-encoded: the raw form is registered already.
      }
    }
  }
}

/**
 * Whether a value as written in the file holds a secret in clear (not a
 * `${VAR}` reference), for the world-readable file warning.
 */
export function isLiteralSecret(key: string, raw: string): boolean {
  if (isSecretKey(key) && raw !== "" && !raw.includes("$")) return true;
  return embeddedPasswords(raw).some((p) => !p.includes("$"));
}
