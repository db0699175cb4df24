/**
 * The missed-messages workload of gaps.test.ts: several instances save and
 * load overlapping keys while a test kills their bus listeners
 * (`CLIENT KILL TYPE pubsub`, `pg_terminate_backend`). It records what the
 * tests assert: how many listeners each kill hit, the read path at each gap,
 * and, after every listener is back, every key each instance reads that is
 * not the last acknowledged value.
 */
import type { DeviceStorage } from "../../src/index.js";
import { type BusDiagnostic, ready, recordBus, sleep, waitFor } from "./_gaps-util.js";

/** What one run saw; the tests assert on it. */
export interface MissedRun {
  /** Saves acknowledged during the run. */
  saves: number;
  /** Listener connections each kill ended. */
  kills: number[];
  /** Gaps per instance (from its stats, after the run). */
  gaps: number[];
  /** `coherenceStats().distrusted` of the instance right after each of its gaps. */
  distrustedAtGap: string[][];
  /** The profile that served a load started right at each gap. */
  gapLoadProfiles: string[];
  /** Whether some instance heard of fewer changes than were made (reports or messages really were lost). */
  lostMessages: boolean;
  /** Loads that failed during the run (they must keep working through the gaps). */
  loadFailures: string[];
  /** After recovery: a key an instance read with another value than the last acknowledged one. */
  stale: string[];
  /** After recovery: the profile serving a repeated load of a key, per instance (the local tier is back). */
  servedAfter: string[];
  keysChecked: number;
}

export interface MissedOptions {
  /** Ends listener connections; resolves with how many it ended. */
  kill: () => Promise<number>;
  kills: number;
  /** Pause between kills. */
  everyMs: number;
  keys: number;
}

const turn = () => new Promise<void>((r) => setImmediate(r));

/** Runs the workload on `instances` (each already subscribed and resynced), killing listeners `o.kills` times. */
export async function missedMessages(instances: readonly DeviceStorage[], o: MissedOptions): Promise<MissedRun> {
  const keys = Array.from({ length: o.keys }, (_, i) => `gap_${i}.json`);
  const run: MissedRun = {
    saves: 0,
    kills: [],
    gaps: [],
    distrustedAtGap: [],
    gapLoadProfiles: [],
    lostMessages: false,
    loadFailures: [],
    stale: [],
    servedAfter: [],
    keysChecked: 0,
  };
  const last = new Map<string, number>();
  let n = 0;
  /** Saves made: each is one change every instance should hear of (a server report, or a bus message's key). */
  let writes = 0;
  for (const k of keys) {
    await instances[0]!.saveValue(k, { n });
    last.set(k, n);
    writes++;
  }
  const byOrigin = new Map(instances.map((s) => [s.coherenceStats()!.origin, s]));
  const recorder = recordBus((e: BusDiagnostic) => {
    const s = byOrigin.get(e.origin);
    if (e.event !== "gap" || !s) return;
    // The gap event comes before the tiers leave the read path, in the same turn: look right after it.
    queueMicrotask(() => {
      run.distrustedAtGap.push(s.coherenceStats()!.distrusted);
      s.loadValue(keys[0]!).then(
        (r) => run.gapLoadProfiles.push(r.profile),
        (err: Error) => run.loadFailures.push(`load at a gap: ${err.message}`),
      );
    });
  });
  let stop = false;
  const pick = <T>(a: readonly T[]): T => a[Math.floor(Math.random() * a.length)]!;
  const writer = (async () => {
    while (!stop) {
      const k = pick(keys);
      const value = ++n;
      await pick(instances).saveValue(k, { n: value });
      last.set(k, value);
      run.saves++;
      writes++;
      await turn();
    }
  })();
  // Readers keep the memory tiers warm, so a missed message would leave a stale copy behind.
  const readers = instances.map(async (s) => {
    while (!stop) {
      const k = pick(keys);
      await s.loadValue(k).catch((err: Error) => run.loadFailures.push(`${k}: ${err.message}`));
      await turn();
    }
  });
  try {
    for (let i = 0; i < o.kills; i++) {
      await sleep(o.everyMs);
      const gaps = instances.map((s) => s.coherenceStats()!.gaps);
      run.kills.push(await o.kill());
      await waitFor(
        () => instances.every((s, j) => s.coherenceStats()!.gaps > gaps[j]!),
        "every listener saw the kill",
      );
    }
  } finally {
    stop = true;
    await Promise.all([writer, ...readers]);
  }
  // The listeners are still down (they come back 100 ms after at the earliest): each key changes once
  // more, and no later message of that key repairs what the others missed; only the resync can.
  for (const [i, k] of keys.entries()) {
    const value = ++n;
    await instances[i % instances.length]!.saveValue(k, { n: value });
    last.set(k, value);
    run.saves++;
    writes++;
  }
  await Promise.all(instances.map((s) => s.flush()));
  await Promise.all(instances.map((s) => ready(s)));
  // A last change from each instance, seen by every other: everything it sent before has arrived
  // (one connection per sender keeps the order) or its loss was seen as a gap.
  const barrier = instances.map((_, i) => `barrier_${i}.json`);
  const seen = instances.map(() => new Set<string>());
  const stops = instances.map((s, i) =>
    s.onRemoteChange((c) => {
      for (const k of c.keys) seen[i]!.add(k);
    }),
  );
  await Promise.all(instances.map((s, i) => s.saveValue(barrier[i]!, i)));
  writes += barrier.length;
  await Promise.all(instances.map((s) => s.flush()));
  await waitFor(() => seen.every((set, i) => barrier.every((b, j) => i === j || set.has(b))), "barrier messages");
  for (const s of stops) s();
  await Promise.all(instances.map((s) => ready(s)));
  recorder.stop();

  const stats = instances.map((s) => s.coherenceStats()!);
  run.gaps = stats.map((s) => s.gaps);
  // The server reports every save to every instance (own ones included); a bus message names its keys once.
  run.lostMessages = stats.some((s) => s.serverReports + s.received < writes);
  for (const [i, s] of instances.entries()) {
    for (const k of keys) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const r = await s.loadValue<{ n: number }>(k);
        if (r.value.n !== last.get(k)) {
          run.stale.push(`instance ${i} read ${k} = ${r.value.n} from ${r.profile}, last saved ${last.get(k)}`);
        }
        if (attempt === 1) run.servedAfter.push(r.profile);
        // The first load writes the value back into the memory tier; the second is served there.
        await s.flush();
      }
      run.keysChecked++;
    }
  }
  return run;
}
