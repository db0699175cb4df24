/**
 * The Rust `terraphim_types::Document`, persisted as `document_<normalized id>.json`
 * with the JSON `serde_json` writes for it, plus `loadDocumentsByIds`. Its
 * schema is built from the serde-like readers of `_serde.ts`.
 *
 * @module
 */

import type { StandardSchemaV1 } from "@standard-schema/spec";
import { ClosedError, NotFoundError, PersistenceError } from "../errors.js";
import { normalizeKey } from "../keys/index.js";
import { adoptLoaded, FAST_DECODER, loadedFrom, Persistable, schemaDecoder } from "../persistable.js";
import { DeviceStorage } from "../storage/device-storage.js";
import { checkConcurrency } from "../storage/limit.js";
import {
  arrayOf,
  bool,
  describeJson,
  field,
  float,
  jsonObject,
  none,
  nullable,
  oneOf,
  type Parse,
  REQUIRED,
  type SerdePath,
  type SerdeReader,
  serdeSchema,
  str,
  timestamp,
  uint,
} from "./_serde.js";

// ---------------------------------------------------------------------------
// Document
// ---------------------------------------------------------------------------

/** `terraphim_types::DocumentType` (`#[serde(rename_all = "snake_case")]`). */
export type DocumentType = "kg_entry" | "document" | "config_document";

/** Every {@link DocumentType}, default first. */
export const DOCUMENT_TYPES: readonly DocumentType[] = ["kg_entry", "document", "config_document"];

/** `terraphim_types::RouteDirective`: which LLM provider and model to use. */
export interface RouteDirective {
  /** LLM provider name, e.g. `"anthropic"`. */
  provider: string;
  /** Model identifier within the provider. */
  model: string;
  /** CLI action template with `{{ model }}` and `{{ prompt }}` placeholders. @default null */
  action: string | null;
  /** Whether this model is free. @default false */
  is_free: boolean;
}

/** `terraphim_types::QualityScore`: K/L/S quality scores, each 0.0 to 1.0 when present. */
export interface QualityScore {
  knowledge: number | null;
  logic: number | null;
  structure: number | null;
  /** RFC 3339 timestamp of the last evaluation. */
  last_evaluated: string | null;
}

/**
 * The JSON fields of a {@link Document}, named and ordered as the Rust struct
 * serializes them. `Option` fields are `null` when unset.
 */
export interface DocumentData {
  /** Unique identifier (a UUID, a URL-based id, ...). */
  id: string;
  /** Source URL or file path. */
  url: string;
  title: string;
  body: string;
  /** Short description extracted from the content. */
  description: string | null;
  /** AI-generated summary. */
  summarization: string | null;
  /** Short excerpt. */
  stub: string | null;
  tags: string[] | null;
  /** Rank in search results (Rust `u64`). */
  rank: number | null;
  /** The haystack (data source) this document came from. */
  source_haystack: string | null;
  /** @default "kg_entry" */
  doc_type: DocumentType;
  synonyms: string[] | null;
  route: RouteDirective | null;
  /** Priority directive, 0 to 100 (Rust `u8`). */
  priority: number | null;
  /** Quality scores; left out of the JSON when unset (`skip_serializing_if = "Option::is_none"`). */
  quality_score?: QualityScore | null | undefined;
}

// Field readers are built once (not per value read: this runs for every document loaded).
const optStr = nullable(str);
const optFloat = nullable(float);
const optTimestamp = nullable(timestamp);
const optU64 = nullable(uint("u64"));
const optU8 = nullable(uint("u8"));
const docType = oneOf(DOCUMENT_TYPES);
const no = (): false => false;
const kgEntry = (): DocumentType => "kg_entry";

const routeDirective: Parse<RouteDirective> = (v, r, p) => {
  const o = jsonObject(v, r, p, "struct RouteDirective");
  if (!o) return { provider: "", model: "", action: null, is_free: false };
  return {
    provider: field(o, "provider", str, r, p, REQUIRED),
    model: field(o, "model", str, r, p, REQUIRED),
    action: field(o, "action", optStr, r, p, none),
    is_free: field(o, "is_free", bool, r, p, no),
  };
};

const qualityScore: Parse<QualityScore> = (v, r, p) => {
  const o = jsonObject(v, r, p, "struct QualityScore");
  if (!o) return { knowledge: null, logic: null, structure: null, last_evaluated: null };
  return {
    knowledge: field(o, "knowledge", optFloat, r, p, none),
    logic: field(o, "logic", optFloat, r, p, none),
    structure: field(o, "structure", optFloat, r, p, none),
    last_evaluated: field(o, "last_evaluated", optTimestamp, r, p, none),
  };
};

const strings = nullable(arrayOf(str));
const optRoute = nullable(routeDirective);
const optQuality = nullable(qualityScore);

/** Reads the fields of a stored Document into `doc` (every field is set). */
function readDocument<D extends DocumentData>(o: Record<string, unknown>, r: SerdeReader, p: SerdePath, doc: D): D {
  // No #[serde(default)]: required.
  doc.id = field(o, "id", str, r, p, REQUIRED);
  doc.url = field(o, "url", str, r, p, REQUIRED);
  doc.title = field(o, "title", str, r, p, REQUIRED);
  doc.body = field(o, "body", str, r, p, REQUIRED);
  // `Option` fields: serde treats a missing one as `None` even without #[serde(default)].
  doc.description = field(o, "description", optStr, r, p, none);
  doc.summarization = field(o, "summarization", optStr, r, p, none);
  doc.stub = field(o, "stub", optStr, r, p, none);
  doc.tags = field(o, "tags", strings, r, p, none);
  doc.rank = field(o, "rank", optU64, r, p, none);
  doc.source_haystack = field(o, "source_haystack", optStr, r, p, none);
  doc.doc_type = field(o, "doc_type", docType, r, p, kgEntry);
  doc.synonyms = field(o, "synonyms", strings, r, p, none);
  doc.route = field(o, "route", optRoute, r, p, none);
  doc.priority = field(o, "priority", optU8, r, p, none);
  // Always present in the output (null when unset) so a load never keeps a template's value.
  doc.quality_score = field(o, "quality_score", optQuality, r, p, none);
  return doc;
}

const documentData: Parse<DocumentData> = (v, r, p) => {
  const o = jsonObject(v, r, p, "struct Document");
  if (!o) return undefined as never;
  return readDocument(o, r, p, {} as DocumentData);
};

export const documentSchema: StandardSchemaV1<unknown, DocumentData> = serdeSchema(documentData);

/**
 * Stored JSON straight into a `Document`, with the same rules and messages as
 * {@link documentSchema}: the decoder of `Document` loads while its `schema` is
 * `documentSchema`, so a load builds one object and copies nothing.
 */
const asDocument = schemaDecoder(
  serdeSchema<Document>((v, r, p) => {
    const o = jsonObject(v, r, p, "struct Document");
    return o ? readDocument(o, r, p, new Document("")) : (undefined as never);
  }),
);

/**
 * A Terraphim document, persisted as `document_<normalizeKey(id)>.json` with
 * the same JSON the Rust crate writes (field names and order, `null` for unset
 * `Option`s, `quality_score` left out when unset), so Rust and TypeScript read
 * each other's stores.
 *
 * @example
 * const doc = new Document("rust-book-ch1", { title: "Getting Started", body: "..." });
 * await doc.withStorage(storage).save();
 * const back = await new Document("rust-book-ch1").withStorage(storage).load();
 */
export class Document extends Persistable implements DocumentData {
  /** Validates stored JSON as serde would (see {@link documentSchema}). */
  static schema: StandardSchemaV1<unknown, DocumentData> = documentSchema;
  static [FAST_DECODER] = { schema: documentSchema, decoder: asDocument };

  id: string;
  url = "";
  title = "";
  body = "";
  description: string | null = null;
  summarization: string | null = null;
  stub: string | null = null;
  tags: string[] | null = null;
  rank: number | null = null;
  source_haystack: string | null = null;
  doc_type: DocumentType = "kg_entry";
  synonyms: string[] | null = null;
  route: RouteDirective | null = null;
  priority: number | null = null;
  quality_score?: QualityScore | null | undefined;

  /** A document with this `id` and every other field at its Rust default (`Document::new`), then `init`. */
  constructor(id: string, init: Partial<Omit<DocumentData, "id">> = {}) {
    super();
    this.id = id;
    Object.assign(this, init);
  }

  /** `document_<normalizeKey(id)>.json`. */
  getKey(): string {
    return `document_${this.normalizeKey(this.id)}.json`;
  }

  /**
   * As Persistable's; when the stored value was decoded straight into a
   * Document and this one holds only Document fields (whose values the stored
   * ones replace, every one of them), that Document is the result as it is.
   */
  protected override fromStored(data: unknown): this {
    if (data instanceof Document && this.constructor === Document && onlyDocumentFields(this)) {
      return adoptLoaded(this, data as this);
    }
    return super.fromStored(data);
  }

  /** The fields in the Rust struct's order, as `serde_json` writes them. */
  toJSON(): DocumentData {
    const out: DocumentData = {
      id: this.id,
      url: this.url,
      title: this.title,
      body: this.body,
      description: this.description ?? null,
      summarization: this.summarization ?? null,
      stub: this.stub ?? null,
      tags: this.tags ?? null,
      rank: this.rank ?? null,
      source_haystack: this.source_haystack ?? null,
      doc_type: this.doc_type,
      synonyms: this.synonyms ?? null,
      route: this.route ? routeJson(this.route) : null,
      priority: this.priority ?? null,
    };
    if (this.quality_score != null) {
      const q = this.quality_score;
      out.quality_score = {
        knowledge: q.knowledge ?? null,
        logic: q.logic ?? null,
        structure: q.structure ?? null,
        last_evaluated: q.last_evaluated ?? null,
      };
    }
    return out;
  }
}

let documentFields: readonly string[] | undefined;

/** Whether `doc`'s own properties are exactly a new Document's (nothing added or removed), in order. */
function onlyDocumentFields(doc: Document): boolean {
  documentFields ??= Object.keys(new Document(""));
  const keys = Object.keys(doc);
  if (keys.length !== documentFields.length) return false;
  for (let i = 0; i < keys.length; i++) if (keys[i] !== documentFields[i]) return false;
  return true;
}

function routeJson(r: RouteDirective): RouteDirective {
  return { provider: r.provider, model: r.model, action: r.action ?? null, is_free: r.is_free ?? false };
}

// ---------------------------------------------------------------------------
// loadDocumentsByIds
// ---------------------------------------------------------------------------

/** Options of {@link loadDocumentsByIds}. */
export interface LoadDocumentsOptions {
  /** Storage to read from. @default DeviceStorage.instance() */
  storage?: DeviceStorage | undefined;
  /**
   * Most loads in flight at once.
   * @default 16
   */
  concurrency?: number | undefined;
}

/** An id whose document could not be loaded for a reason other than absence. */
export interface FailedDocumentLoad {
  id: string;
  /** `DeserializeError` (no profile holds a value that decodes), `BackendError` (a profile failed, so absence is not certain), ... */
  error: Error;
}

/** What {@link loadDocumentsByIds} found. */
export interface LoadDocumentsResult {
  /** The documents found, in the order of the ids asked for (missing and failed ones left out): what Rust returns. */
  documents: Document[];
  /** Ids that no profile holds (every profile said "not found"), in input order. */
  missing: string[];
  /** Ids that could not be loaded for another reason, in input order. Rust only logs these; here they are returned. */
  failed: FailedDocumentLoad[];
}

/**
 * Loads many documents at once, at most `concurrency` at a time, each through
 * the usual tiered read (fastest profile, fallback, write-back).
 *
 * Like Rust's `load_documents_by_ids`, documents that cannot be loaded are left
 * out of `documents` rather than failing the whole call; unlike it, the result
 * is in input order, concurrency is bounded, and the ids left out are reported:
 * absent ones in `missing`, corrupt values and backend failures in `failed`
 * (also logged at warn level). Check `failed` before treating the list as complete.
 *
 * @throws PersistenceError if `ids` is not an array of strings or `concurrency` is not a positive integer;
 *   the storage's `E_CLOSED` error if it is closed.
 * @example
 * const { documents, missing, failed } = await loadDocumentsByIds(["a", "b"], { storage });
 * if (failed.length) throw failed[0].error;
 */
export async function loadDocumentsByIds(
  ids: readonly string[],
  options: LoadDocumentsOptions = {},
): Promise<LoadDocumentsResult> {
  const concurrency = checkConcurrency(options.concurrency ?? 16);
  if (!Array.isArray(ids))
    throw new PersistenceError(`Expected \`ids\` to be an array of strings, got ${describeJson(ids)}`);
  ids.forEach((id, i) => {
    if (typeof id !== "string") {
      throw new PersistenceError(`Expected \`ids[${i}]\` to be a string, got ${describeJson(id)}`);
    }
  });
  const storage = options.storage ?? (await DeviceStorage.instance());

  // The key Document#getKey gives, without building a Document per id.
  const keys = ids.map((id) => `document_${normalizeKey(id)}.json`);
  // With the built-in schema, values decode straight into Documents; a replaced one is honoured.
  const direct = Document.schema === documentSchema;
  const outcomes = await storage.loadValues(keys, direct ? asDocument : schemaDecoder(Document.schema), {
    concurrency,
  });

  const result: LoadDocumentsResult = { documents: [], missing: [], failed: [] };
  outcomes.forEach((o, i) => {
    if (o.ok) {
      // Bound to `storage`, as `new Document(id).withStorage(storage).load()` would be.
      result.documents.push(
        direct
          ? (o.value as Document).withStorage(storage)
          : loadedFrom(new Document(ids[i]!).withStorage(storage), o.value),
      );
      return;
    }
    if (o.error instanceof NotFoundError) {
      result.missing.push(ids[i]!);
      return;
    }
    // The storage itself is unusable: not a per-document outcome.
    if (o.error instanceof ClosedError) throw o.error;
    storage.logger.warn({ id: ids[i], err: o.error }, "could not load document");
    result.failed.push({ id: ids[i]!, error: o.error });
  });
  return result;
}
