/**
 * `doctor`'s coherence findings: whether the bus listens and proves it hears
 * (the lease), and, per shared profile, who announces its changes: its server
 * (Redis tracking, a PostgreSQL trigger), or only this library's saves (then
 * writes by other programs go unseen by running instances, and the fix).
 */
import { type DeviceSettings, DeviceStorage, silentLogger } from "../index.js";
import { coherenceRow } from "./_coherence.js";
import type { Finding } from "./_diagnose.js";
import { messageOf } from "./_run.js";

/** How a profile's server can be made to announce changes, by scheme. */
const FEED_FIX: Readonly<Record<string, string>> = {
  redis:
    "use Redis 6 or later and allow CLIENT TRACKING for this user (ACL: +client|tracking +client|id); managed services that disable CLIENT commands cannot report changes",
  postgresql:
    'let the table\'s owner start an instance once (it installs the trigger), or run as the owner: the trigger "terraphim_changes" needs CREATE on the schema and ownership of the table',
};

export async function coherenceFindings(settings: DeviceSettings): Promise<Finding[]> {
  if (!settings.coherence) return [];
  let storage: DeviceStorage;
  try {
    storage = await DeviceStorage.fromSettings(settings, { logger: silentLogger });
  } catch (err) {
    return [{ subject: "coherence", ok: false, summary: "the coherence bus could not start", detail: messageOf(err) }];
  }
  try {
    const row = await coherenceRow(storage);
    if (!row)
      return [
        { subject: "coherence", ok: true, summary: "configured, but no profile is shared: nothing to keep coherent" },
      ];
    const silent = row.listeners.filter((l) => !l.connected || l.lastProofAgoMs === null);
    const findings: Finding[] = [
      silent.length === 0
        ? {
            subject: "coherence",
            ok: true,
            summary: `listening on ${row.listeners.map((l) => l.listener).join(", ")}; lease proven: staleness bound ${row.boundMs} ms`,
          }
        : {
            subject: "coherence",
            ok: false,
            summary: `no proof of hearing from ${silent.map((l) => l.listener).join(", ")} within 3 s: local profiles would not serve`,
            fix: "check that the [coherence] server and the shared profiles' servers run and accept this user",
          },
    ];
    for (const f of row.feeds) {
      if (f.announcedBy === "server") {
        findings.push({ subject: f.profile, ok: true, summary: `changes announced by its server (${f.via})` });
        continue;
      }
      const scheme = storage.profile(f.profile).scheme;
      findings.push({
        subject: f.profile,
        scheme,
        ok: false,
        summary: `its server does not announce changes${f.reason ? ` (${f.reason})` : ""}: ${f.announcedBy === "statement" ? "this library's writes announce themselves in their own statement" : "this library announces its own saves on the bus"}, but writes by other programs (the Rust crate, scripts, an operator) go unseen by running instances`,
        ...(FEED_FIX[scheme] ? { fix: FEED_FIX[scheme] } : {}),
      });
    }
    for (const name of row.announcedOnBus.filter((n) => !row.feeds.some((f) => f.profile === n))) {
      findings.push({
        subject: name,
        scheme: storage.profile(name).scheme,
        ok: true,
        summary:
          "warning: its server cannot announce changes: this library's saves are announced on the bus (each save waits for it); writes by other programs go unseen, bound the age of local copies with ttl_ms on the local profiles",
      });
    }
    return findings;
  } finally {
    await storage.close();
  }
}
