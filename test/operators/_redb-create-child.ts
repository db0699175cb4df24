/**
 * The victim of redb.test.ts's creation test: creates one new redb database
 * after another under `<dir>` (db0.redb, db1.redb, ...) until it is killed,
 * printing READY after the first.
 *
 * Usage: node --import tsx test/operators/_redb-create-child.ts <dir>
 */
import { writeSync } from "node:fs";
import { join } from "node:path";
import { opendalOperator } from "../../src/operators/drivers/opendal.js";

const [dir] = process.argv.slice(2);
if (!dir) throw new Error("usage: _redb-create-child.ts <dir>");
for (let i = 0; ; i++) {
  await opendalOperator("redb", { datadir: join(dir, `db${i}.redb`), table: "t" });
  if (i === 0) writeSync(1, "READY\n");
}
