/**
 * What the coherence bus reports about itself: {@link CoherenceStats} (from
 * `storage.coherenceStats()`, the CLI's `profiles` and `watch`) and the
 * {@link RemoteChange}s `storage.onRemoteChange` passes on.
 *
 * @module
 */
import type { Feed } from "./feeds.js";
import type { LeaseState } from "./lease.js";
import type { OutboxStats } from "./outbox.js";

/** A change of shared keys made elsewhere, as {@link DeviceStorage.onRemoteChange} reports it. */
export interface RemoteChange {
  /**
   * `save` / `delete`: announced on the bus by another instance; `clear`: every key under `prefix`;
   * `change`: reported by the shared tier's server (which does not say whether it was a save or a delete).
   */
  op: "save" | "delete" | "clear" | "change";
  /** The keys changed (empty for `clear`). */
  keys: readonly string[];
  /** The prefix a `clear` dropped (`""`: everything). */
  prefix?: string;
  /** The instance that made it (`bus`), or `server <profile>` for a server's report. */
  origin: string;
  /** Where the news came from: another instance's message on the bus, or the shared tier's server itself. */
  source: "bus" | "server";
}

/** How one listening connection proves it hears. */
export interface ListenerState {
  /** `redis 127.0.0.1:6379`, `postgresql 127.0.0.1:5432/test` (never a credential). */
  listener: string;
  connected: boolean;
  /** How long ago the ping of its last proof was sent (ms), if it has one on this connection. */
  lastProofAgoMs: number | undefined;
}

/** How the changes of one shared profile reach other instances. */
export interface FeedState {
  profile: string;
  /**
   * `server`: its server reports every change, whoever made it (`via`: redis tracking, postgresql trigger);
   * `statement`: no trigger (`reason`), this instance's writes announce themselves in their own statement
   * (`pg_notify`); `bus`: this instance announces its own changes on the bus (`reason`: why the server does
   * not); `pending`: not known yet. Other programs' changes are seen only with `server`.
   */
  announcedBy: "server" | "statement" | "bus" | "pending";
  via?: string;
  reason?: string;
  /** Reports received from the server, and those that were this instance's own writes. */
  reports: number;
  ownReports: number;
}

/** Counters and state of the bus, from {@link DeviceStorage.coherenceStats}. */
export interface CoherenceStats {
  /** This instance's id on the bus. */
  origin: string;
  /** Whether every listening connection is up (always false for a publish-only storage). */
  connected: boolean;
  /** Messages sent, and received from other instances. */
  sent: number;
  received: number;
  /** Changes reported by the shared tiers' servers (own writes included). */
  serverReports: number;
  /** Local copies dropped because their key changed elsewhere. */
  droppedKeys: number;
  /** Gaps seen (a listener down, a skipped sequence number, a message that is not ours, a copy that could not be dropped). */
  gaps: number;
  /** Listening connections replaced because they stopped answering pings. */
  silentListeners: number;
  /** Sends that failed (sent again). */
  publishFailures: number;
  /** Keys waiting to be announced. */
  retryQueue: number;
  /** Keys dropped from a full queue (a clear of everything was sent instead). */
  overflowedKeys: number;
  /** Resyncs of local tiers finished. */
  resyncs: number;
  /** Other instances whose sequence numbers are tracked. */
  origins: number;
  /** Local profiles out of the read path now (lease lapsed, or not resynced). */
  distrusted: string[];
  /** The staleness bound Δ (ms) and the lease that keeps it; absent for a publish-only storage. */
  lease: (LeaseState & { listeners: ListenerState[] }) | undefined;
  /** Per shared profile: who announces its changes. */
  feeds: FeedState[];
}

/** What the bus knows, turned into {@link CoherenceStats}. */
export function statsOf(s: {
  origin: string;
  connected: boolean;
  outbox: OutboxStats | undefined;
  counts: {
    received: number;
    serverReports: number;
    droppedKeys: number;
    gaps: number;
    silent: number;
    resyncs: number;
  };
  origins: number;
  distrusted: string[];
  lease: LeaseState | undefined;
  boundMs: number;
  listeners: { description: string; up: boolean; lastProof: number | undefined }[];
  feeds: readonly Feed[];
}): CoherenceStats {
  const o = s.outbox ?? { sent: 0, publishFailures: 0, overflowedKeys: 0, retryQueue: 0 };
  const now = performance.now();
  return {
    origin: s.origin,
    connected: s.connected,
    ...o,
    received: s.counts.received,
    serverReports: s.counts.serverReports,
    droppedKeys: s.counts.droppedKeys,
    gaps: s.counts.gaps,
    silentListeners: s.counts.silent,
    resyncs: s.counts.resyncs,
    origins: s.origins,
    distrusted: s.distrusted,
    lease: s.lease && {
      ...s.lease,
      listeners: s.listeners.map((l) => ({
        listener: l.description,
        connected: l.up,
        lastProofAgoMs: l.lastProof === undefined ? undefined : Math.round(now - l.lastProof),
      })),
    },
    feeds: s.feeds.map((f) => ({
      profile: f.tier,
      announcedBy: f.state.kind,
      ...(f.state.kind === "server" ? { via: f.state.via } : {}),
      ...(f.state.kind === "bus" || f.state.kind === "statement" ? { reason: f.state.reason } : {}),
      reports: f.reports,
      ownReports: f.own,
    })),
  };
}
