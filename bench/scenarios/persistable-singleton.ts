/**
 * Scenario 9: a hot load of a user's own `Persistable` subclass through the
 * process singleton, the way the README tells users to write it: no
 * `withStorage`, the storage made memory-only with
 * `DeviceStorage.initMemoryOnly()`, then `await new Note(id).load()` (the key
 * computed by `getKey()`, the storage found by the object itself). Against the
 * raw floor of scenario 1, `JSON.parse(map.get(key))` on a `Map` holding the
 * same JSON texts.
 *
 * A second row times `new Note(id).withStorage(storage).load()` on the same
 * singleton storage in the same rounds: the gap between the two rows is what
 * finding the singleton costs per load. Everything comes from the public
 * entry, as a user's code would import it.
 */
import { DeviceStorage, Persistable } from "../../src/index.js";
import { DOC_BYTES, docData, docId } from "../_data.js";
import { compareMany, type Row, row } from "../_harness.js";
import { type Context, sink } from "../_setup.js";

/**
 * A user's own persistable class, as in the `Persistable` JSDoc example (no
 * schema), with the few fields a note has: its JSON is an object of several
 * fields, as stored values usually are (one 1 KB string alone would make the
 * raw `JSON.parse` a copy).
 */
class Note extends Persistable {
  title = "";
  text = "";
  tags: string[] = [];
  created = 0;
  pinned = false;
  constructor(public id: string) {
    super();
  }
  getKey() {
    return `note_${this.normalizeKey(this.id)}.json`;
  }
}

/** Benchmark note `i`: its JSON is exactly {@link DOC_BYTES} bytes, like the other scenarios' documents. */
function note(i: number): Note {
  const n = Object.assign(new Note(docId(i)), {
    title: `Note ${i} on tiered persistence`,
    tags: ["bench", "tiered", "notes"],
    created: 1_700_000_000_000 + i * 60_000,
    pinned: i % 7 === 0,
  });
  const room = DOC_BYTES - Buffer.byteLength(JSON.stringify(n));
  const body = docData(i).body;
  let text = "";
  while (text.length < room) text += body;
  n.text = text.slice(0, room);
  return n;
}

export async function persistableSingleton(ctx: Context): Promise<Row[]> {
  const K = 1000;
  const ids = Array.from({ length: K }, (_, i) => docId(i));
  const storage = await DeviceStorage.initMemoryOnly();
  try {
    if (storage.ranked.length !== 1 || storage.fastestProfile !== "memory") {
      throw new Error(`expected a memory-only singleton, got ${storage.ranked.map((p) => p.name).join(", ")}`);
    }
    const notes = Array.from({ length: K }, (_, i) => note(i));
    // Saved through the singleton too: the same path a user's code takes.
    for (const n of notes) await n.save();
    const keys = notes.map((n) => n.getKey());
    const map = new Map<string, string>(notes.map((n) => [n.getKey(), JSON.stringify(n)]));
    const back = await new Note(ids[0]!).load();
    if (back.text !== notes[0]!.text || Buffer.byteLength(map.get(keys[0]!)!) !== DOC_BYTES) {
      throw new Error("the singleton did not give back the saved note");
    }

    ctx.log("9 Persistable via singleton: new Note(id).load() and .withStorage(s).load() vs Map.get + JSON.parse");
    const [single, given, raw] = await compareMany(
      [
        {
          name: "ours (singleton)",
          async batch(n, s) {
            for (let i = 0; i < n; i++) sink.v = await new Note(ids[(s + i) % K]!).load();
          },
        },
        {
          name: "ours (withStorage)",
          async batch(n, s) {
            for (let i = 0; i < n; i++) sink.v = await new Note(ids[(s + i) % K]!).withStorage(storage).load();
          },
        },
        {
          // As scenario 1's floor: the key precomputed, nothing awaited, no instance built.
          name: "raw",
          batch(n, s) {
            for (let i = 0; i < n; i++) sink.v = JSON.parse(map.get(keys[(s + i) % K]!)!);
          },
        },
      ],
      // Fewer operations per round than scenario 1: a singleton load run under tsx is ~7k/s today
      // (its loader hooks see every dynamic import()), so 50k would be two minutes for this side alone.
      { n: ctx.quick ? 5_000 : 20_000, rounds: ctx.quick ? 3 : 15 },
    );
    const baseline: [string, number] = ["JSON.parse(map.get(key))", raw!.opsPerS];
    return [
      row(
        "9 Persistable via singleton",
        ["await new Note(id).load()", single!.opsPerS],
        baseline,
        { kind: "ratio<=", max: 2, text: "<= 2.0x" },
        `memory-only singleton (initMemoryOnly), no withStorage; ours builds a Note, the key from getKey(); ` +
          `the singleton path takes ${(given!.opsPerS / single!.opsPerS).toFixed(2)}x the withStorage path's time`,
      ),
      row(
        "9 Persistable withStorage",
        ["await new Note(id).withStorage(s).load()", given!.opsPerS],
        baseline,
        undefined,
        "for comparison with the singleton row (no target): the same storage, given explicitly",
      ),
    ];
  } finally {
    await DeviceStorage.resetInstance();
  }
}
