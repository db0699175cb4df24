/**
 * The change feed of a shared PostgreSQL table: a trigger that calls
 * `pg_notify(<channel>, <key>)` for every row inserted, updated or deleted
 * (and `''`, meaning "everything", for a `TRUNCATE` or a key too long for a
 * notification). It runs inside the writer's transaction, whoever the writer
 * is (another instance, the Rust crate, `psql`), and PostgreSQL delivers the
 * notification at commit: the change and its announcement are one step.
 * Every instance installs the same trigger (idempotently, under an advisory
 * lock); one whose role may not gets the reason, and falls back to announcing
 * its own writes.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Client } from "pg";
import { redactSecrets } from "../../errors.js";
import { quoteIdentifier } from "../../operators/drivers/_sql.js";
import type { ChangeFeedSource, PostgresqlChangeFeed } from "../../operators/types.js";

/** Keys longer than this (bytes) are announced as "everything" (NOTIFY payloads stay under 8000 bytes). */
const MAX_KEY_BYTES = 7900;
/** Trigger names on the table: one per table, whoever installs it. */
const ROW_TRIGGER = "terraphim_changes";
const TRUNCATE_TRIGGER = "terraphim_changes_truncate";

/** The channel, function and lock of one table's feed: the same in every instance. */
export function feedNames(feed: Pick<PostgresqlChangeFeed, "table" | "keyField">) {
  const id = createHash("sha256").update(`${feed.table}\0${feed.keyField}`).digest("hex").slice(0, 16);
  return {
    /** LISTEN channel (an identifier: at most 63 bytes). */
    channel: `terraphim_changes_${id}`,
    fn: `terraphim_notify_${id}`,
    /** Advisory lock key: installs of one table's trigger never race each other. */
    lock: BigInt.asIntN(64, BigInt(`0x${id}`)).toString(),
  };
}

/** The channel a table's changes are announced on (its trigger's, and its statements' without one); "" for Redis. */
export function feedChannel(source: ChangeFeedSource): string {
  return source.kind === "postgresql" ? feedNames(source).channel : "";
}

/** What installing the trigger found. */
export type TriggerOutcome = { installed: true } | { installed: false; reason: string };

/**
 * Installs (or refreshes) the table's trigger, in one transaction under an advisory lock.
 * A role that may not create it gets `{ installed: false, reason }`.
 * @throws when the connection fails (the question stays open: asked again on the next connection).
 */
/** The trigger function's body for `feed` (what {@link installTrigger} installs, and {@link hasTrigger} compares). */
function triggerBody(feed: PostgresqlChangeFeed): string {
  const { channel } = feedNames(feed);
  const key = quoteIdentifier(feed.keyField, '"');
  const notify = (row: "OLD" | "NEW") =>
    `PERFORM pg_notify('${channel}', CASE WHEN octet_length(${row}.${key}) <= ${MAX_KEY_BYTES} THEN ${row}.${key} ELSE '' END);`;
  return `
    BEGIN
      IF TG_OP = 'TRUNCATE' THEN PERFORM pg_notify('${channel}', ''); RETURN NULL; END IF;
      IF TG_OP <> 'INSERT' THEN ${notify("OLD")} END IF;
      IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.${key} IS DISTINCT FROM OLD.${key}) THEN ${notify("NEW")} END IF;
      RETURN NULL;
    END`;
}

export async function installTrigger(client: Client, feed: PostgresqlChangeFeed): Promise<TriggerOutcome> {
  const names = feedNames(feed);
  const q = (name: string) => quoteIdentifier(name, '"');
  const [table, fn] = [q(feed.table), q(names.fn)];
  const body = triggerBody(feed);
  try {
    await client.query("BEGIN");
    await client.query(`SELECT pg_advisory_xact_lock(${names.lock})`);
    await client.query(`CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $tp$${body}$tp$`);
    await client.query(
      `CREATE OR REPLACE TRIGGER ${q(ROW_TRIGGER)} AFTER INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
    );
    await client.query(
      `CREATE OR REPLACE TRIGGER ${q(TRUNCATE_TRIGGER)} AFTER TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
    );
    await client.query("COMMIT");
    return { installed: true };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    // The server's answer (a SQLSTATE: no permission, no such table) settles it; a broken connection does not.
    if (typeof (err as { code?: unknown }).code !== "string") throw err;
    return { installed: false, reason: redactSecrets((err as Error).message) };
  }
}

/**
 * Makes sure `feed`'s table reports its changes: installs the trigger where the role may, else finds one
 * another role installed. Asked on every (re)connection of the listener, on that connection.
 * @throws when the connection fails.
 */
export async function prepareTrigger(client: Client, feed: PostgresqlChangeFeed): Promise<TriggerOutcome> {
  if (await hasTrigger(client, feed, true)) return { installed: true };
  const installed = await installTrigger(client, feed);
  // Another role's (or an earlier version's) trigger reports changes all the same.
  if (installed.installed || (await hasTrigger(client, feed))) return { installed: true };
  return installed;
}

/**
 * Whether the table has both triggers, enabled, calling the function (`current`: with this version's
 * body). Cheap (the catalog), so instances that reconnect together do not lock the table to reinstall it.
 */
export async function hasTrigger(client: Client, feed: PostgresqlChangeFeed, current = false): Promise<boolean> {
  const names = feedNames(feed);
  const r = await client.query({
    text: `SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
           WHERE t.tgrelid = to_regclass($1) AND t.tgname = ANY($2) AND p.proname = $3 AND t.tgenabled <> 'D'
             AND ($4::text IS NULL OR p.prosrc = $4)`,
    values: [
      quoteIdentifier(feed.table, '"'),
      [ROW_TRIGGER, TRUNCATE_TRIGGER],
      names.fn,
      current ? triggerBody(feed) : null,
    ],
    rowMode: "array",
  });
  return Number((r.rows[0] as unknown[])[0]) === 2;
}
