/**
 * The Rust `terraphim_types::Thesaurus` (synonyms mapped to normalized
 * concepts), persisted as `thesaurus_<normalized name>.json`.
 *
 * @module
 */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { Persistable } from "../persistable.js";
import {
  bool,
  field,
  jsonObject,
  mapOf,
  none,
  nullable,
  type Parse,
  REQUIRED,
  serdeSchema,
  str,
  uint,
} from "./_serde.js";

/**
 * `terraphim_types::NormalizedTerm`: the concept a synonym maps to. Optional
 * fields are left out of the JSON when unset (`skip_serializing_if =
 * "Option::is_none"`); `pinned` is always written.
 */
export interface NormalizedTerm {
  /** Unique id of the concept (Rust `u64`). */
  id: number;
  /** The normalized value (trimmed, lowercase). The Rust field is `value`, serialized as `nterm`. */
  nterm: string;
  /** The value with its original case, for display. */
  display_value?: string | null | undefined;
  /** URL of the concept. */
  url?: string | null | undefined;
  /** CLI action template with `{{ model }}` and `{{ prompt }}` placeholders. */
  action?: string | null | undefined;
  /** Routing tie-break priority, higher preferred (Rust `u8`). */
  priority?: number | null | undefined;
  /** Pattern or alias that activates this term. */
  trigger?: string | null | undefined;
  /** @default false */
  pinned: boolean;
}

/** The JSON of a {@link Thesaurus}, with `data` as a `Map` (term -> concept). */
export interface ThesaurusData {
  name: string;
  data: Map<string, NormalizedTerm>;
  /** SHA-256 of the sources the thesaurus was built from; left out of the JSON when unset. */
  source_hash: string | null;
}

/**
 * `NormalizedTermValue::new`: trims and lowercases a term.
 * (JavaScript's `trim` also strips U+FEFF, which Rust's does not.)
 */
export function normalizeTermValue(term: string): string {
  return term.trim().toLowerCase();
}

/** A {@link NormalizedTerm} for `value` (normalized), as `NormalizedTerm::new(id, value)`. */
export function createNormalizedTerm(id: number, value: string): NormalizedTerm {
  return { id, nterm: normalizeTermValue(value), pinned: false };
}

const u64 = uint("u64");
const u8 = uint("u8");
const optString = nullable(str);

const normalizedTerm: Parse<NormalizedTerm> = (v, r, p) => {
  const o = jsonObject(v, r, p, "struct NormalizedTerm");
  if (!o) return { id: 0, nterm: "", pinned: false };
  return termJson({
    id: field(o, "id", u64, r, p, REQUIRED),
    nterm: field(o, "nterm", str, r, p, REQUIRED),
    display_value: field(o, "display_value", optString, r, p, none),
    url: field(o, "url", optString, r, p, none),
    action: field(o, "action", optString, r, p, none),
    priority: field(o, "priority", nullable(u8), r, p, none),
    trigger: field(o, "trigger", optString, r, p, none),
    pinned: field(o, "pinned", bool, r, p, () => false),
  });
};

const thesaurusData: Parse<ThesaurusData> = (v, r, p) => {
  const o = jsonObject(v, r, p, "struct Thesaurus");
  if (!o) return undefined as never;
  return {
    name: field(o, "name", str, r, p, REQUIRED),
    data: field(o, "data", mapOf(normalizedTerm), r, p, REQUIRED),
    source_hash: field(o, "source_hash", optString, r, p, none),
  };
};

/**
 * Standard Schema of the stored thesaurus JSON, with serde's rules: `name`
 * and `data` required; each term needs `id` (u64) and `nterm`; optional term
 * fields may be missing or `null`; unknown fields are ignored.
 */
export const thesaurusSchema: StandardSchemaV1<unknown, ThesaurusData> = serdeSchema(thesaurusData);

/**
 * A thesaurus: terms (synonyms) mapped to normalized concepts, persisted as
 * `thesaurus_<normalizeKey(name)>.json` in the Rust crate's JSON:
 * `{"name": ..., "data": {"<term>": {"id": 1, "nterm": "...", "pinned": false}}}`.
 *
 * Keys given to {@link insert} and {@link get} are normalized
 * ({@link normalizeTermValue}), as Rust callers build them with
 * `NormalizedTermValue::from`. Keys read from a store are kept as stored.
 *
 * @example
 * const t = new Thesaurus("Engineer");
 * t.insert("ML", createNormalizedTerm(1, "machine learning"));
 * await t.withStorage(storage).save();
 * const back = await new Thesaurus("Engineer").withStorage(storage).load();
 * back.get("ml")?.nterm; // "machine learning"
 */
export class Thesaurus extends Persistable implements ThesaurusData, Iterable<[string, NormalizedTerm]> {
  /** Validates stored JSON as serde would (see {@link thesaurusSchema}). */
  static schema: StandardSchemaV1<unknown, ThesaurusData> = thesaurusSchema;

  name: string;
  /** Term -> concept, in insertion order. */
  data: Map<string, NormalizedTerm> = new Map();
  source_hash: string | null = null;

  /** An empty thesaurus (`Thesaurus::new`). */
  constructor(name: string) {
    super();
    this.name = name;
  }

  /** `thesaurus_<normalizeKey(name)>.json`. */
  getKey(): string {
    return `thesaurus_${this.normalizeKey(this.name)}.json`;
  }

  /** Maps `key` (normalized) to `term`, replacing any earlier entry. Returns `this`. */
  insert(key: string, term: NormalizedTerm): this {
    this.data.set(normalizeTermValue(key), term);
    return this;
  }

  /** The concept `key` (normalized) maps to. */
  get(key: string): NormalizedTerm | undefined {
    return this.data.get(normalizeTermValue(key));
  }

  /** Number of terms (Rust `len()`). */
  get size(): number {
    return this.data.size;
  }

  /** Number of terms, as Rust's `len()`. */
  len(): number {
    return this.data.size;
  }

  /** Whether the thesaurus has no terms. */
  isEmpty(): boolean {
    return this.data.size === 0;
  }

  /** The terms. */
  keys(): IterableIterator<string> {
    return this.data.keys();
  }

  /** `[term, concept]` pairs, as iterating `&Thesaurus` in Rust. */
  [Symbol.iterator](): IterableIterator<[string, NormalizedTerm]> {
    return this.data.entries();
  }

  /**
   * The Rust JSON. `data` becomes an object, so (as for any JS object) terms
   * that look like array indices ("42") are written first; map order has no
   * meaning in Rust either.
   */
  toJSON(): { name: string; data: Record<string, NormalizedTerm>; source_hash?: string } {
    // Object.fromEntries defines own properties, so a term named "__proto__" stays data.
    const data = Object.fromEntries([...this.data].map(([k, t]) => [k, termJson(t)])) as Record<string, NormalizedTerm>;
    return this.source_hash != null
      ? { name: this.name, data, source_hash: this.source_hash }
      : { name: this.name, data };
  }
}

/** A term in the Rust field order, unset options left out. */
function termJson(t: NormalizedTerm): NormalizedTerm {
  const out: NormalizedTerm = { id: t.id, nterm: t.nterm } as NormalizedTerm;
  if (t.display_value != null) out.display_value = t.display_value;
  if (t.url != null) out.url = t.url;
  if (t.action != null) out.action = t.action;
  if (t.priority != null) out.priority = t.priority;
  if (t.trigger != null) out.trigger = t.trigger;
  out.pinned = t.pinned === true;
  return out;
}
