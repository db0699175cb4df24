/**
 * The coherence part of `profiles`: the staleness bound, the lease as this
 * CLI (listening like an instance) holds it, and who announces the changes of
 * each shared profile (its server, or this library's saves on the bus).
 */
import type { CoherenceStats, DeviceStorage } from "../index.js";

/** What `profiles --json` shows under `coherence` (absent without a `[coherence]` table). */
export interface CoherenceRow {
  boundMs: number;
  trusted: boolean;
  listeners: { listener: string; connected: boolean; lastProofAgoMs: number | null }[];
  feeds: CoherenceStats["feeds"];
  /** Shared profiles whose server cannot announce: their changes reach other instances only as this library's messages. */
  announcedOnBus: string[];
}

/** Waits (up to `ms`) for every listener to prove it hears, then reports. */
export async function coherenceRow(storage: DeviceStorage, ms = 3000): Promise<CoherenceRow | undefined> {
  const deadline = Date.now() + ms;
  let s = storage.coherenceStats();
  while (s?.lease && !s.lease.trusted && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    s = storage.coherenceStats();
  }
  if (!s?.lease) return undefined;
  const fed = new Set(
    s.feeds.filter((f) => f.announcedBy === "server" || f.announcedBy === "statement").map((f) => f.profile),
  );
  return {
    boundMs: s.lease.boundMs,
    trusted: s.lease.trusted,
    listeners: s.lease.listeners.map((l) => ({ ...l, lastProofAgoMs: l.lastProofAgoMs ?? null })),
    feeds: s.feeds,
    announcedOnBus: storage.tiers.filter((t) => t.shared && !fed.has(t.name)).map((t) => t.name),
  };
}

/** The lines `profiles` prints for it. */
export function coherenceLines(c: CoherenceRow): string[] {
  const lines = [
    `coherence: staleness bound ${c.boundMs} ms (3 x heartbeat_ms); lease ${c.trusted ? "trusted" : "NOT trusted: local profiles do not serve"}`,
  ];
  for (const l of c.listeners) {
    const proof = l.lastProofAgoMs === null ? "no proof yet" : `last proof ${l.lastProofAgoMs} ms ago`;
    lines.push(`  listening: ${l.listener} (${l.connected ? "connected" : "not connected"}, ${proof})`);
  }
  for (const f of c.feeds) {
    if (f.announcedBy === "server") lines.push(`  changes of ${f.profile}: announced by its server (${f.via})`);
    if (f.announcedBy === "statement") {
      lines.push(
        `  changes of ${f.profile}: this library's writes announce themselves in their own statement (${f.reason}); other programs' writes go unseen`,
      );
    }
  }
  for (const name of c.announcedOnBus) {
    const why = c.feeds.find((f) => f.profile === name)?.reason;
    lines.push(
      `  changes of ${name}: announced on the bus by this library's saves only${why ? ` (${why})` : ""}; other programs' writes go unseen (bound them with ttl_ms on the local profiles)`,
    );
  }
  return lines;
}
