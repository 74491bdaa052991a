// search/types: the values that cross the search module's boundary. Index entries are what a
// resource contributes to the index (computed at write time, stored by engines); a SearchPlan is
// a parsed query that every engine compiles. Both are storage-free and HTTP-free.

/** FHIR search parameter types (R4 search 3.1.1.4), plus `id` for _id (read off the envelope). */
export type ParamType = 'number' | 'date' | 'string' | 'token' | 'reference' | 'composite' | 'quantity' | 'uri' | 'special' | 'id';

// ---------------------------------------------------------------------------------------------
// Index entries

interface EntryBase {
  /** The search parameter code, e.g. "identifier"; for composite components "<code>#<i>". */
  param: string;
  /**
   * Composite parameters: entries of one composite value share a group number (>= 1), so that
   * an engine can require every component to match within the same group. 0 elsewhere.
   */
  group: number;
}

/** Token: system null means "no system"; code null means "any code". `text` is normalised text (display, CodeableConcept.text, Identifier.type.text) for :text. */
export interface TokenEntry extends EntryBase {
  kind: 'token';
  system: string | null;
  code: string | null;
  text: string | null;
}

/** String: `value` is normalised (lower case, accents and punctuation folded, see normalizeString); `exact` is the original text, for :exact. */
export interface StringEntry extends EntryBase {
  kind: 'string';
  value: string;
  exact: string;
}

/** Date, dateTime, instant, Period, Timing: the implicit range [low, high] in epoch milliseconds, both inclusive. Open ends use MIN_TIME / MAX_TIME. */
export interface DateEntry extends EntryBase {
  kind: 'date';
  low: number;
  high: number;
}

export interface NumberEntry extends EntryBase {
  kind: 'number';
  value: number;
}

export interface QuantityEntry extends EntryBase {
  kind: 'quantity';
  value: number;
  system: string | null;
  code: string | null;
  unit: string | null;
}

/**
 * Reference: a literal reference split into target type and id when it is relative ("Patient/1")
 * or absolute on any base ("http://x/fhir/Patient/1", then `url` keeps the whole); canonical and
 * other URLs keep `url` only. Reference.identifier is indexed as a TokenEntry with param
 * "<code>:identifier".
 */
export interface ReferenceEntry extends EntryBase {
  kind: 'reference';
  targetType: string | null;
  targetId: string | null;
  url: string | null;
}

export interface UriEntry extends EntryBase {
  kind: 'uri';
  value: string;
}

export type IndexEntry = TokenEntry | StringEntry | DateEntry | NumberEntry | QuantityEntry | ReferenceEntry | UriEntry;

/** Bounds for open date ranges: the limits of a JavaScript Date. */
export const MIN_TIME = -8.64e15;
export const MAX_TIME = 8.64e15;

// ---------------------------------------------------------------------------------------------
// Search plans

export type Prefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';

/** One value of a token parameter: system undefined = any system, null = no system; code undefined = any code. */
export interface TokenValue {
  system?: string | null;
  code?: string;
}

/** A search value and the range its precision implies (R4 search 3.1.1.4.1, 3.1.1.4.2). */
export interface RangeValue {
  prefix: Prefix;
  /** For numbers and quantities: the value as written. For dates: the low bound. */
  value: number;
  /** The implicit range of the value: inclusive low, exclusive high. */
  low: number;
  high: number;
}

export interface QuantityValue extends RangeValue {
  system?: string | null;
  code?: string;
}

export interface ReferenceValue {
  /** Type/id (or id with a type taken from :Type or the only target) */
  targetType?: string;
  targetId?: string;
  /** An absolute URL or canonical, matched against ReferenceEntry.url. */
  url?: string;
}

/**
 * One parameter's condition: values are ORed. Every variant names the parameter code and, for
 * composite components, the component parameter codes are "<code>#<i>".
 */
export type Condition =
  | { kind: 'id'; ids: string[]; not?: boolean }
  | { kind: 'token'; param: string; values: TokenValue[]; not?: boolean }
  | { kind: 'token-text'; param: string; texts: string[] }
  /** :of-type on identifiers: type system|code and value. */
  | { kind: 'of-type'; param: string; values: { typeSystem: string; typeCode: string; value: string }[] }
  | { kind: 'string'; param: string; match: 'starts' | 'exact' | 'contains'; values: string[] }
  | { kind: 'date'; param: string; values: RangeValue[] }
  | { kind: 'number'; param: string; values: RangeValue[] }
  | { kind: 'quantity'; param: string; values: QuantityValue[] }
  | { kind: 'reference'; param: string; values: ReferenceValue[] }
  | { kind: 'uri'; param: string; match: 'exact' | 'below' | 'above'; values: string[] }
  /** :missing=true|false on any parameter. */
  | { kind: 'missing'; param: string; missing: boolean }
  /**
   * Chained: the reference parameter points at a resource of targetType matching `where` (all
   * conditions). `perRow` (set by policy/) asks the engine to check it for each candidate row
   * rather than by enumerating every matching target first: right when the other conditions are
   * the selective ones, as with a consent restriction.
   */
  | { kind: 'chain'; param: string; targetTypes: string[]; where: Condition[]; perRow?: boolean }
  /** _has:Type:param:...: some resource of sourceType whose reference parameter points here matches `where`. */
  | { kind: 'has'; sourceType: string; param: string; where: Condition[] }
  /** Composite: for one of the values, every component matches within the same group. */
  | { kind: 'composite'; param: string; values: Condition[][] }
  /** Any one of the conditions (made by policy/, e.g. "in this patient's compartment"; never by the parser). */
  | { kind: 'any'; of: Condition[] }
  /** Every one of the conditions (made by policy/). */
  | { kind: 'all'; of: Condition[] }
  /** The condition does not hold (made by policy/). */
  | { kind: 'not'; condition: Condition }
  /** Resources of one of these types (made by policy/ to give each type of a system search its own rules). */
  | { kind: 'types'; types: string[] }
  /** Resources created by one of these actors (`client:<id>`...; the store envelope's creator; made by policy/). */
  | { kind: 'creator'; creators: string[] };

export interface SortKey {
  /** A search parameter code, or _id / _lastUpdated. */
  param: string;
  descending: boolean;
}

export interface Include {
  /** The type whose reference parameter is followed (or '*'). */
  sourceType: string;
  /** The reference parameter code, or '*' for all reference parameters of sourceType. */
  param: string;
  /** :TargetType restriction. */
  targetType?: string;
  iterate: boolean;
}

export interface SearchPlan {
  /** The resource types searched: one for type search, several for system search with _type. */
  types: string[];
  /** Every condition must match (AND). */
  where: Condition[];
  sort: SortKey[];
}

export type SummaryMode = 'true' | 'text' | 'data' | 'count' | 'false';
export type TotalMode = 'none' | 'estimate' | 'accurate';

/** A whole parsed search request: the plan for the engine plus the result parameters. */
export interface ParsedSearch {
  plan: SearchPlan;
  /** _count, validated (>= 0); absent means the server default. */
  count?: number;
  /** _cursor: the opaque page cursor of a next link. */
  cursor?: string;
  include: Include[];
  revinclude: Include[];
  total?: TotalMode;
  summary?: SummaryMode;
  /** _elements, as element names (without the type prefix). */
  elements?: string[];
  /** Every parameter that was applied, as received (name with modifier, raw value), in order, without _cursor and _count: for self and next links. */
  applied: [string, string][];
  /** Parameters ignored under Prefer: handling=lenient (names as received). */
  ignored: string[];
}
