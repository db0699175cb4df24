/**
 * The table a `mysql` profile names: created when missing, its layout checked
 * (a unique, case-sensitive key column and a binary value column), and what
 * its key column holds.
 *
 * @module
 */
import type { Pool } from "mysql2";
import { ProfileError } from "../../errors.js";
import { type RedactedCopyOptions, redactedCopy } from "./_shared.js";
import { quoteIdentifier } from "./_sql.js";

/** The table check at open (the connect has its own limit). */
const OPEN_QUERY_TIMEOUT_MS = 5000;
/** An error kept as a cause: message and stack without secrets, its codes kept. */
export const CAUSE: RedactedCopyOptions = { fields: ["code", "errno", "sqlState"] };

/** How the key column limits keys: a length (bytes or characters) and whether trailing spaces are ignored. */
export interface KeyColumn {
  maxBytes: number | undefined;
  maxChars: number | undefined;
  /** A PAD SPACE collation: `a` and `a ` would be one key. */
  padSpace: boolean;
}

/** Whether `key` fits in the key column (its length limit, in bytes or characters). */
export function fits(key: string, column: KeyColumn): boolean {
  // A UTF-16 unit is at most 3 UTF-8 bytes and at least one character: most keys need no counting.
  if (column.maxBytes !== undefined && key.length * 3 > column.maxBytes) {
    return Buffer.byteLength(key, "utf8") <= column.maxBytes;
  }
  if (column.maxChars !== undefined && key.length > column.maxChars) {
    let n = 0;
    for (const _ of key) n++;
    return n <= column.maxChars;
  }
  return true;
}

/** What {@link checkTable} needs to know: the names, the DDL to suggest, where for messages. */
export interface TableCheck {
  table: string;
  keyField: string;
  valueField: string;
  ddl: string;
  profile: string;
  where: string;
}

/**
 * Reads the table's columns (creating the table when it is missing) and
 * checks the layout: the key column unique and case-sensitive, the value
 * column binary. Any failure is a {@link ProfileError} saying what to run.
 */
export async function checkTable(pool: Pool, c: TableCheck): Promise<KeyColumn> {
  const { profile } = c;
  const quoted = (name: string) => quoteIdentifier(name, "`");
  const t = quoted(c.table);
  const show = () =>
    new Promise<Record<string, unknown>[]>((resolve, reject) => {
      pool.query({ sql: `SHOW FULL COLUMNS FROM ${t}`, timeout: OPEN_QUERY_TIMEOUT_MS }, (err, rows) =>
        err ? reject(err) : resolve(rows as Record<string, unknown>[]),
      );
    });
  const cannot = (what: string, err: unknown, extra = "") =>
    new ProfileError(
      `profile "${profile}": cannot ${what} mysql table ${t} at ${c.where}: ${(err as Error).message}${extra}`,
      { profile, cause: redactedCopy(err, CAUSE) },
    );
  let columns: Record<string, unknown>[];
  try {
    columns = await show();
  } catch (err) {
    if ((err as { code?: string }).code !== "ER_NO_SUCH_TABLE") throw cannot("open", err);
    try {
      await new Promise<void>((resolve, reject) => {
        pool.query({ sql: c.ddl, timeout: OPEN_QUERY_TIMEOUT_MS }, (e) => (e ? reject(e) : resolve()));
      });
      columns = await show();
    } catch (e) {
      throw cannot("create", e, `; create it yourself with: ${c.ddl}`);
    }
  }
  const column = (name: string) => columns.find((col) => String(col.Field).toLowerCase() === name.toLowerCase());
  const key = column(c.keyField);
  const value = column(c.valueField);
  const layout = `profiles.${profile}.table: mysql table ${t}`;
  const found = columns.map((col) => quoted(String(col.Field))).join(", ");
  if (!key || !value) {
    const missing = !key ? `key column ${quoted(c.keyField)}` : `value column ${quoted(c.valueField)}`;
    throw new ProfileError(
      `${layout} has no ${missing} (it has ${found}); set key_field / value_field, or use a table made by: ${c.ddl}`,
      { profile },
    );
  }
  const k = quoted(String(key.Field));
  const v = quoted(String(value.Field));
  const keyType = String(key.Type).toLowerCase();
  const collation = key.Collation == null ? "" : String(key.Collation).toLowerCase();
  const length = Number(/\((\d+)\)/.exec(keyType)?.[1] ?? 0);
  if (key.Key !== "PRI" && key.Key !== "UNI") {
    throw new ProfileError(
      `${layout}: its key column ${k} is not unique, so writes would add rows instead of replacing them; run: ALTER TABLE ${t} ADD PRIMARY KEY (${k})`,
      { profile },
    );
  }
  let keyColumn: KeyColumn;
  if (/^varbinary\(/.test(keyType)) {
    keyColumn = { maxBytes: length, maxChars: undefined, padSpace: false };
  } else if (/^(var)?char\(/.test(keyType) && collation.startsWith("utf8mb4_") && /_(bin|cs)$/.test(collation)) {
    keyColumn = { maxBytes: undefined, maxChars: length, padSpace: !/nopad|_0900_/.test(collation) };
  } else {
    const len = length || 255;
    throw new ProfileError(
      `${layout}: its key column ${k} is ${keyType}${collation ? ` ${collation}` : ""}, which does not compare keys byte for byte (keys are case-sensitive here: "A.json" and "a.json" are two keys); run: ALTER TABLE ${t} MODIFY ${k} VARCHAR(${len}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL`,
      { profile },
    );
  }
  const valueType = String(value.Type).toLowerCase();
  if (!/^(tiny|medium|long)?blob$|^varbinary\(/.test(valueType)) {
    throw new ProfileError(
      `${layout}: its value column ${v} is ${valueType}, not binary (values are raw bytes); run: ALTER TABLE ${t} MODIFY ${v} LONGBLOB NOT NULL`,
      { profile },
    );
  }
  return keyColumn;
}
