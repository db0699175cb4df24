/**
 * LLM conversations (`terraphim_types::Conversation`): the types, their
 * serde-compatible schemas and the helpers that make and summarise them.
 * The store is `conversation-store.ts`.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { InvalidKeyError } from "../errors.js";
import { validateKey } from "../keys/index.js";
import { schemaDecoder } from "../persistable.js";
import {
  arrayOf,
  field,
  float,
  jsonObject,
  mapOf,
  none,
  nullable,
  oneOf,
  type Parse,
  REQUIRED,
  serdeSchema,
  str,
  stringRecord,
  timestamp,
  uint,
} from "./_serde.js";

/** `terraphim_types::ContextType` (no `rename_all`: variants are written as named). */
export type ContextType =
  | "System"
  | "UserInput"
  | "Document"
  | "SearchResult"
  | "External"
  | "KGTermDefinition"
  | "KGIndex";

const CONTEXT_TYPES: readonly ContextType[] = [
  "System",
  "UserInput",
  "Document",
  "SearchResult",
  "External",
  "KGTermDefinition",
  "KGIndex",
];

/** `terraphim_types::ContextItem`: context given to the LLM. Timestamps are RFC 3339 strings. */
export interface ContextItem {
  id: string;
  context_type: ContextType;
  title: string;
  summary: string | null;
  content: string;
  metadata: Record<string, string>;
  created_at: string;
  relevance_score: number | null;
}

/** `terraphim_types::ChatMessage`. */
export interface ChatMessage {
  id: string;
  /** `"system"`, `"user"` or `"assistant"`. */
  role: string;
  content: string;
  context_items: ContextItem[];
  created_at: string;
  /** Rust `u32`. */
  token_count: number | null;
  /** Model that generated an assistant message. */
  model: string | null;
}

/**
 * `terraphim_types::Conversation`, field for field as `serde_json` writes it.
 * `id` is the `ConversationId` newtype and `role` the `RoleName` (both strings
 * in JSON); timestamps are RFC 3339 strings kept as written (Rust writes
 * nanoseconds; `Date` would drop them).
 */
export interface Conversation {
  id: string;
  title: string;
  messages: ChatMessage[];
  global_context: ContextItem[];
  role: string;
  created_at: string;
  updated_at: string;
  metadata: Record<string, string>;
  /** Token budget (Rust `usize`). @default null */
  token_budget: number | null;
}

/** `terraphim_types::ConversationSummary`: one entry of the index. */
export interface ConversationSummary {
  id: string;
  title: string;
  role: string;
  message_count: number;
  context_count: number;
  created_at: string;
  updated_at: string;
  /** The first user message, cut to 100 UTF-8 bytes plus `...`. */
  preview: string | null;
}

/** The index file `conversations/index.json` (Rust `ConversationIndex`), with `conversations` as a `Map`. */
export interface ConversationIndex {
  /** Index format version; new indexes are `"1.0.0"`. */
  version: string;
  updated_at: string;
  conversations: Map<string, ConversationSummary>;
}

/** Key of the conversation index. */
export const CONVERSATION_INDEX_KEY = "conversations/index.json";

const usize = uint("usize");
const optString = nullable(str);

const contextItem: Parse<ContextItem> = (v, r, p) => {
  const o = jsonObject(v, r, p, "struct ContextItem");
  if (!o) return undefined as never;
  return {
    id: field(o, "id", str, r, p, REQUIRED),
    context_type: field(o, "context_type", oneOf(CONTEXT_TYPES), r, p, REQUIRED),
    title: field(o, "title", str, r, p, REQUIRED),
    summary: field(o, "summary", optString, r, p, none),
    content: field(o, "content", str, r, p, REQUIRED),
    metadata: field(o, "metadata", stringRecord, r, p, REQUIRED),
    created_at: field(o, "created_at", timestamp, r, p, REQUIRED),
    relevance_score: field(o, "relevance_score", nullable(float), r, p, none),
  };
};

const chatMessage: Parse<ChatMessage> = (v, r, p) => {
  const o = jsonObject(v, r, p, "struct ChatMessage");
  if (!o) return undefined as never;
  return {
    id: field(o, "id", str, r, p, REQUIRED),
    role: field(o, "role", str, r, p, REQUIRED),
    content: field(o, "content", str, r, p, REQUIRED),
    context_items: field(o, "context_items", arrayOf(contextItem), r, p, REQUIRED),
    created_at: field(o, "created_at", timestamp, r, p, REQUIRED),
    token_count: field(o, "token_count", nullable(uint("u32")), r, p, none),
    model: field(o, "model", optString, r, p, none),
  };
};

const conversation: Parse<Conversation> = (v, r, p) => {
  const o = jsonObject(v, r, p, "struct Conversation");
  if (!o) return undefined as never;
  return {
    id: field(o, "id", str, r, p, REQUIRED),
    title: field(o, "title", str, r, p, REQUIRED),
    messages: field(o, "messages", arrayOf(chatMessage), r, p, REQUIRED),
    global_context: field(o, "global_context", arrayOf(contextItem), r, p, REQUIRED),
    role: field(o, "role", str, r, p, REQUIRED),
    created_at: field(o, "created_at", timestamp, r, p, REQUIRED),
    updated_at: field(o, "updated_at", timestamp, r, p, REQUIRED),
    metadata: field(o, "metadata", stringRecord, r, p, REQUIRED),
    token_budget: field(o, "token_budget", nullable(usize), r, p, none),
  };
};

const conversationSummary: Parse<ConversationSummary> = (v, r, p) => {
  const o = jsonObject(v, r, p, "struct ConversationSummary");
  if (!o) return undefined as never;
  return {
    id: field(o, "id", str, r, p, REQUIRED),
    title: field(o, "title", str, r, p, REQUIRED),
    role: field(o, "role", str, r, p, REQUIRED),
    message_count: field(o, "message_count", usize, r, p, REQUIRED),
    context_count: field(o, "context_count", usize, r, p, REQUIRED),
    created_at: field(o, "created_at", timestamp, r, p, REQUIRED),
    updated_at: field(o, "updated_at", timestamp, r, p, REQUIRED),
    preview: field(o, "preview", optString, r, p, none),
  };
};

const conversationIndex: Parse<ConversationIndex> = (v, r, p) => {
  const o = jsonObject(v, r, p, "struct ConversationIndex");
  if (!o) return undefined as never;
  return {
    version: field(o, "version", str, r, p, REQUIRED),
    updated_at: field(o, "updated_at", timestamp, r, p, REQUIRED),
    conversations: field(o, "conversations", mapOf(conversationSummary), r, p, REQUIRED),
  };
};

/**
 * Standard Schema of a stored conversation, with serde's rules (required
 * fields, `Option`s missing or `null`, unknown fields ignored). The output has
 * the Rust field order, so writing it back gives Rust's JSON layout.
 */
export const conversationSchema: StandardSchemaV1<unknown, Conversation> = serdeSchema(conversation);

/** Standard Schema of the index file `conversations/index.json`. */
export const conversationIndexSchema: StandardSchemaV1<unknown, ConversationIndex> = serdeSchema(conversationIndex);

// One decoder per schema for the process: the tiered reader shares fallback reads per decoder.
export const decodeConversation = schemaDecoder(conversationSchema);
export const decodeIndex = schemaDecoder(conversationIndexSchema);

/**
 * Checks a conversation id, which becomes a path segment of
 * `conversations/<id>.json`: not empty, no `/`, `\`, NUL, and no `..`.
 * @throws InvalidKeyError naming what was wrong.
 */
export function validateConversationId(id: unknown): string {
  if (typeof id !== "string") {
    throw new InvalidKeyError(`Expected conversation id to be a string, got ${id === null ? "null" : typeof id}`);
  }
  const fail = (why: string): never => {
    const shown = id.length > 80 ? `${id.slice(0, 80)}...` : id;
    throw new InvalidKeyError(`Invalid conversation id ${JSON.stringify(shown)}: ${why}`, { key: shown });
  };
  if (id === "") fail("empty");
  if (id.includes("\0")) fail("contains NUL");
  if (id.includes("/")) fail("contains /");
  if (id.includes("\\")) fail("contains a backslash");
  if (id.includes("..")) fail("contains ..");
  return id;
}

/** `conversations/<id>.json`, after {@link validateConversationId}. */
export function conversationKey(id: string): string {
  return validateKey(`conversations/${validateConversationId(id)}.json`);
}

/** A timestamp for now, RFC 3339 in UTC (millisecond precision; chrono reads it). */
/** @internal The current time as the Rust crate writes it. */
export function now(): string {
  return new Date().toISOString();
}

/** A new, empty conversation with a random UUID id (`Conversation::new`). */
export function createConversation(title: string, role: string): Conversation {
  const t = now();
  return {
    id: randomUUID(),
    title,
    messages: [],
    global_context: [],
    role,
    created_at: t,
    updated_at: t,
    metadata: {},
    token_budget: null,
  };
}

/** A new message (`ChatMessage::user` / `assistant` / `system`). */
export function createChatMessage(role: "user" | "assistant" | "system", content: string, model?: string): ChatMessage {
  return {
    id: randomUUID(),
    role,
    content,
    context_items: [],
    created_at: now(),
    token_count: null,
    model: model ?? null,
  };
}

/** Appends `message` and bumps `updated_at` (`Conversation::add_message`). Returns the conversation. */
export function addMessage(conv: Conversation, message: ChatMessage): Conversation {
  conv.messages.push(message);
  conv.updated_at = now();
  return conv;
}

export const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * The index entry of a conversation (`From<&Conversation> for ConversationSummary`).
 * The preview is the first user message; past 100 UTF-8 bytes it is cut and
 * `...` added. Rust cuts at byte 100 exactly and panics when that splits a
 * character; here the cut moves back to the character boundary.
 */
export function summarizeConversation(conv: Conversation): ConversationSummary {
  const contextCount = conv.global_context.length + conv.messages.reduce((n, m) => n + m.context_items.length, 0);
  const first = conv.messages.find((m) => m.role === "user");
  let preview: string | null = null;
  if (first) {
    const bytes = utf8.encode(first.content);
    if (bytes.length > 100) {
      let end = 100;
      while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
      preview = `${utf8Decoder.decode(bytes.subarray(0, end))}...`;
    } else preview = first.content;
  }
  return {
    id: conv.id,
    title: conv.title,
    role: conv.role,
    message_count: conv.messages.length,
    context_count: contextCount,
    created_at: conv.created_at,
    updated_at: conv.updated_at,
    preview,
  };
}
