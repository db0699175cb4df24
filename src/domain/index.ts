/**
 * The Terraphim domain types, persisted in the Rust crate's layout and JSON:
 * {@link Document}, {@link Thesaurus} and conversations ({@link ConversationStore}).
 *
 * @module
 */
export {
  addMessage,
  type ChatMessage,
  CONVERSATION_INDEX_KEY,
  type ContextItem,
  type ContextType,
  type Conversation,
  type ConversationIndex,
  type ConversationSummary,
  conversationIndexSchema,
  conversationKey,
  conversationSchema,
  createChatMessage,
  createConversation,
  summarizeConversation,
  validateConversationId,
} from "./conversation.js";
export { ConversationStore } from "./conversation-store.js";
export {
  DOCUMENT_TYPES,
  Document,
  type DocumentData,
  type DocumentType,
  documentSchema,
  type FailedDocumentLoad,
  type LoadDocumentsOptions,
  type LoadDocumentsResult,
  loadDocumentsByIds,
  type QualityScore,
  type RouteDirective,
} from "./document.js";
export {
  createNormalizedTerm,
  type NormalizedTerm,
  normalizeTermValue,
  Thesaurus,
  type ThesaurusData,
  thesaurusSchema,
} from "./thesaurus.js";
