/**
 * The storage layer's public part: the {@link DeviceStorage} facade, the
 * {@link Tier} handle of one profile, profile option parsing, and the shapes
 * they take and give.
 *
 * @module
 */
export { withTimeout } from "./calls.js";
export type { CoherenceStats, FeedState, ListenerState, RemoteChange } from "./coherence/coherence-stats.js";
export { type LeaseState, stalenessBoundMs } from "./coherence/lease.js";
export type { BusMessage, BusOp } from "./coherence/message.js";
export { type BusEvent, type WatchOptions, watchCoherenceBus } from "./coherence/watch.js";
export { DeviceStorage } from "./device-storage.js";
export { type GetOrSetHost, getOrSetStats } from "./get-or-set.js";
export { openProfileOperator, type ProfileOptions, parseProfileOptions, STORAGE_OPTION_KEYS } from "./options.js";
export type { TierHealth } from "./ranking.js";
export { Tier } from "./tier.js";
export type {
  CleanupReport,
  Decoder,
  DeviceStorageOptions,
  ExpiryOptions,
  GetOrSetOptions,
  GetOrSetStats,
  KeyListing,
  LiveRankingOptions,
  LoadOutcome,
  LoadResult,
  MissedProfile,
  OperatorProfile,
  PrefetchResult,
  ProfileStats,
  SaveOptions,
  StorageSettings,
  TierEntry,
  TierSpec,
  TierStat,
  TierState,
} from "./types.js";

import type { Tier } from "./tier.js";
/** @deprecated A profile's runtime object is a {@link Tier}. */
export type ProfileEntry = Tier;
