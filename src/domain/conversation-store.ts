/**
 * The conversation store, laid out as the Rust `OpenDALConversationPersistence`
 * lays it out: `conversations/<id>.json` per conversation and one index,
 * `conversations/index.json`, mapping each id to a summary.
 *
 * @module
 */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { NotFoundError, PersistenceError } from "../errors.js";
import { DeviceStorage } from "../storage/device-storage.js";
import { KeyedQueue } from "../storage/keyed-queue.js";
import type { LoadResult } from "../storage/types.js";
import { normalizeTimestamp } from "./_serde.js";
import {
  CONVERSATION_INDEX_KEY,
  type Conversation,
  type ConversationIndex,
  type ConversationSummary,
  conversationKey,
  conversationSchema,
  decodeConversation,
  decodeIndex,
  now,
  summarizeConversation,
  utf8,
  validateConversationId,
} from "./conversation.js";

/** Index updates of every store over one storage run one at a time (per process). */
const indexQueues = new WeakMap<DeviceStorage, KeyedQueue>();

/**
 * Conversations in a {@link DeviceStorage}, compatible with the Rust
 * `OpenDALConversationPersistence`: each conversation at
 * `conversations/<id>.json`, summaries in `conversations/index.json`
 * (`{"version":"1.0.0","updated_at":...,"conversations":{"<id>":{...}}}`).
 *
 * Unlike the Rust store:
 * - loads fall back through every profile (Rust reads only the fastest);
 * - the index is only ever created when it is absent from every profile. A
 *   failed or corrupt index read raises (`BackendError`, `DeserializeError`)
 *   and nothing is written (Rust writes a fresh empty index over the real one);
 * - index updates are serialized within the process for every store over the
 *   same storage, so concurrent saves all end up in the index (Rust's
 *   read-modify-write loses updates). Separate processes are not coordinated;
 * - `save` and `delete` read the index first, so a failed index read writes
 *   nothing at all; write failures raise a `PartialWriteError` naming each
 *   profile's outcome (Rust stops at the first, or ignores delete errors);
 * - `listIds`, `exists` and `listSummaries` never write (Rust creates an
 *   empty index on first read).
 *
 * Values are written as plain JSON, never zstd-compressed: Rust's
 * conversation reader does not decompress.
 *
 * @example
 * const store = new ConversationStore(storage);
 * const conv = addMessage(createConversation("Hello", "Engineer"), createChatMessage("user", "Hi!"));
 * await store.save(conv);
 * const summaries = await store.listSummaries(); // most recently updated first
 */
export class ConversationStore {
  readonly #given: DeviceStorage | undefined;

  /** A store over `storage`, or over `DeviceStorage.instance()` when none is given (as Rust's `new()`). */
  constructor(storage?: DeviceStorage) {
    this.#given = storage;
  }

  /** The storage this store uses. */
  async storage(): Promise<DeviceStorage> {
    return this.#given ?? DeviceStorage.instance();
  }

  /**
   * Writes the conversation to every profile and its summary to the index.
   * @throws InvalidKeyError for a bad id; PersistenceError if the value is not
   *   a valid conversation (it would not load in Rust); BackendError or
   *   DeserializeError if the index cannot be read (nothing is written then);
   *   PartialWriteError if a profile's write failed.
   */
  async save(conv: Conversation): Promise<void> {
    const key = conversationKey(conv?.id);
    const checked = conversationSchema["~standard"].validate(conv) as StandardSchemaV1.Result<Conversation>;
    if (checked.issues) {
      throw new PersistenceError(
        `Expected a conversation Rust can read, got one with ${describeIssues(checked.issues)}`,
        { key },
      );
    }
    const value = checked.value;
    const storage = await this.storage();
    await this.#withIndex(storage, async () => {
      const index = (await this.#readIndex(storage)) ?? newIndex();
      await storage.saveBytes(key, utf8.encode(JSON.stringify(value)));
      index.conversations.set(value.id, summarizeConversation(value));
      index.updated_at = now();
      await this.#writeIndex(storage, index);
    });
  }

  /**
   * Loads a conversation: fastest profile first, then the others (with the
   * usual write-back and schema-evolution rules).
   * @throws NotFoundError, DeserializeError, BackendError as `DeviceStorage.loadValue`.
   */
  async load(id: string): Promise<Conversation> {
    return (await this.loadWithSource(id)).value;
  }

  /** As {@link load}, also telling which profile served it. */
  async loadWithSource(id: string): Promise<LoadResult<Conversation>> {
    const key = conversationKey(id);
    return (await this.storage()).loadValue(key, decodeConversation);
  }

  /**
   * Deletes the conversation from every profile and from the index.
   * @throws BackendError or DeserializeError if the index cannot be read (nothing is deleted then);
   *   PartialWriteError if a profile's delete or index write failed.
   */
  async delete(id: string): Promise<void> {
    const key = conversationKey(id);
    const storage = await this.storage();
    await this.#withIndex(storage, async () => {
      const index = await this.#readIndex(storage);
      await storage.deleteValue(key);
      if (index?.conversations.delete(id)) {
        index.updated_at = now();
        await this.#writeIndex(storage, index);
      }
    });
  }

  /** Ids in the index, in index order. An absent index is empty. */
  async listIds(): Promise<string[]> {
    return [...(await this.#currentIndex()).keys()];
  }

  /** Whether the index lists `id` (as Rust: the index, not the conversation file, is asked). */
  async exists(id: string): Promise<boolean> {
    validateConversationId(id);
    return (await this.#currentIndex()).has(id);
  }

  /** Every summary in the index, most recently updated first (ties by id). */
  async listSummaries(): Promise<ConversationSummary[]> {
    const list = [...(await this.#currentIndex()).values()];
    const at = new Map(list.map((s) => [s, instant(s.updated_at)]));
    return list.sort((a, b) => {
      const [ams, ans] = at.get(a)!;
      const [bms, bns] = at.get(b)!;
      return bms - ams || bns - ans || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    });
  }

  async #currentIndex(): Promise<Map<string, ConversationSummary>> {
    const storage = await this.storage();
    // Queued behind pending updates, so a read right after a save sees it.
    const index = await this.#withIndex(storage, () => this.#readIndex(storage));
    return index?.conversations ?? new Map();
  }

  /** The index, or `undefined` if every profile says it is absent. Any other failure raises. */
  async #readIndex(storage: DeviceStorage): Promise<ConversationIndex | undefined> {
    try {
      return (await storage.loadValue(CONVERSATION_INDEX_KEY, decodeIndex)).value;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async #writeIndex(storage: DeviceStorage, index: ConversationIndex): Promise<void> {
    const json = {
      version: index.version,
      updated_at: index.updated_at,
      // Object.fromEntries defines own properties: an id "__proto__" stays data.
      conversations: Object.fromEntries(index.conversations),
    };
    await storage.saveBytes(CONVERSATION_INDEX_KEY, utf8.encode(JSON.stringify(json)));
  }

  #withIndex<T>(storage: DeviceStorage, task: () => Promise<T>): Promise<T> {
    let queue = indexQueues.get(storage);
    if (!queue) {
      queue = new KeyedQueue();
      indexQueues.set(storage, queue);
    }
    return queue.run(CONVERSATION_INDEX_KEY, task);
  }
}

function newIndex(): ConversationIndex {
  return { version: "1.0.0", updated_at: now(), conversations: new Map() };
}

/** [epoch ms, sub-millisecond ns] of an RFC 3339 timestamp, for ordering (Date.parse drops the nanoseconds). */
function instant(ts: string): [number, number] {
  const ms = Date.parse(normalizeTimestamp(ts));
  if (Number.isNaN(ms)) return [Number.NEGATIVE_INFINITY, 0];
  const frac = /\.(\d+)/.exec(ts.slice(19))?.[1] ?? "";
  return [ms, Number(frac.padEnd(9, "0").slice(3, 9))];
}

function describeIssues(issues: readonly StandardSchemaV1.Issue[]): string {
  return issues
    .slice(0, 5)
    .map((i) => {
      const path = (i.path ?? []).map((s) => String(typeof s === "object" ? s.key : s)).join(".");
      return path ? `${path}: ${i.message}` : i.message;
    })
    .join("; ");
}
