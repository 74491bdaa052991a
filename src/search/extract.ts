// search/extract: the index entries of a resource, computed once at write time by evaluating
// each search parameter's FHIRPath expression and turning the FHIR elements found into entries
// of the parameter's type (R4 search 3.1.1.4: what each data type contributes). Engines store and
// query these entries. Pure and synchronous; never throws on odd input.

import type { Resource } from '@medplum/fhirtypes';
import r4model from 'fhirpath/fhir-context/r4';
import { auditIndexEntries } from './audit-entries.js';
import { compileFhirPath, paramsOf, type FhirPathFn, type SearchParam } from './params.js';
import { dateRange, normalizeString } from './normalize.js';
import { MAX_TIME, MIN_TIME, type IndexEntry, type ParamType, type ReferenceEntry } from './types.js';

export type { IndexEntry, TokenEntry, StringEntry, DateEntry, NumberEntry, QuantityEntry, ReferenceEntry, UriEntry } from './types.js';
export { normalizeString, dateRange } from './normalize.js';

type Json = Record<string, unknown>;

/** The system of Money amounts in quantity entries (currency codes are ISO 4217). */
export const CURRENCY_SYSTEM = 'urn:iso:std:iso:4217';

// ---------------------------------------------------------------------------------------------
// Evaluating parameters

/** Every resource type of the R4 model (what a literal reference may name). */
const RESOURCE_TYPES: ReadonlySet<string> = (() => {
  const parents = r4model.type2Parent;
  const found = new Set<string>();
  for (const name of Object.keys(parents)) {
    for (let t: string | undefined = name, depth = 0; t && depth < 10; t = parents[t], depth++) {
      if (t === 'Resource') {
        found.add(name);
        break;
      }
    }
  }
  found.delete('DomainResource');
  return found;
})();

/** Splits a FHIRPath expression on its top-level `|` (outside parentheses, brackets and quotes). */
function splitUnion(expression: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote = '';
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
    } else if (c === "'" || c === '`' || c === '"') quote = c;
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === '|' && depth === 0) {
      parts.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(expression.slice(start).trim());
  return parts;
}

/** Whether a union branch only ever applies to another resource type (e.g. "Condition.code" on an Observation). */
function belongsElsewhere(branch: string, type: string): boolean {
  const m = /^\(?\s*([A-Za-z]+)(?=[.\s)]|$)/.exec(branch);
  if (!m || m[1] === type || !RESOURCE_TYPES.has(m[1])) return false;
  if (branch.startsWith('(')) {
    // "(A.x | B.y).z": the group's own branches decide.
    let depth = 0;
    for (let i = 0; i < branch.length; i++) {
      if (branch[i] === '(') depth++;
      else if (branch[i] === ')' && --depth === 0) return splitUnion(branch.slice(1, i)).length === 1;
    }
    return false;
  }
  return true;
}

const evaluators = new WeakMap<SearchParam, Map<string, FhirPathFn>>();

/**
 * The evaluation of a parameter on resources of one type (cached). The official definitions are
 * unions over every base type (the `code` expression has 15 branches): only the branches of this
 * type are evaluated, each on its own and the results concatenated (a FHIRPath union would also
 * compare every pair of results, and fhirpath.js finds 1e-245 g and 1e-22 g equal). A composite
 * branch that is the resource itself ("Observation | Observation.component") yields the resource
 * without an evaluation.
 */
function evaluatorOf(param: SearchParam, type: string): FhirPathFn | undefined {
  const original = param.evaluate as FhirPathFn | undefined;
  if (!original || !param.expression) return original;
  let byType = evaluators.get(param);
  if (!byType) evaluators.set(param, (byType = new Map()));
  let fn = byType.get(type);
  if (fn) return fn;
  const branches = splitUnion(param.expression).filter((b) => !belongsElsewhere(b, type));
  const parts: FhirPathFn[] = [];
  try {
    for (const branch of branches) parts.push(branch === type && param.type === 'composite' ? (input) => [input] : compileFhirPath(branch));
  } catch {
    parts.length = 0;
  }
  if (parts.length === 0) fn = original;
  else if (parts.length === 1) fn = parts[0];
  else fn = (input) => parts.flatMap((part) => evaluate(part, input));
  byType.set(type, fn);
  return fn;
}

function evaluate(fn: FhirPathFn, input: unknown): unknown[] {
  try {
    const found = fn(input);
    return Array.isArray(found) ? found : [];
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------
// Reading elements

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Json, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function strs(o: Json, key: string): string[] {
  const v = o[key];
  if (typeof v === 'string') return v === '' ? [] : [v];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : [];
}

function obj(o: Json, key: string): Json | undefined {
  const v = o[key];
  return isObject(v) ? v : undefined;
}

function objs(o: Json, key: string): Json[] {
  const v = o[key];
  if (isObject(v)) return [v];
  return Array.isArray(v) ? v.filter(isObject) : [];
}

function num(o: Json, key: string): number | undefined {
  const v = o[key];
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && NUMBER_RE.test(v)) return Number(v);
  return undefined;
}

const NUMBER_RE = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

/**
 * The FHIR type of an element found by fhirpath.js: its results carry a hidden `__path__` with
 * the type (fhirNodeDataType) when the model knows it. Primitives come back as plain JS values.
 */
function fhirType(v: Json): string | undefined {
  const info = v.__path__;
  return isObject(info) && typeof info.fhirNodeDataType === 'string' ? info.fhirNodeDataType : undefined;
}

const CONTACT_SYSTEMS = new Set(['phone', 'fax', 'email', 'pager', 'url', 'sms', 'other']);
const QUANTITY_TYPES = new Set(['Quantity', 'Age', 'Duration', 'Distance', 'Count', 'SimpleQuantity', 'MoneyQuantity']);

/** The type of a complex element: fhirpath's when known and useful, else guessed from its shape. */
function typeOf(v: Json): string {
  const known = fhirType(v);
  if (known && known !== 'BackboneElement' && known !== 'Element') return QUANTITY_TYPES.has(known) ? 'Quantity' : known;
  if (Array.isArray(v.coding)) return 'CodeableConcept';
  if ('reference' in v || ('identifier' in v && 'display' in v)) return 'Reference';
  if ('family' in v || 'given' in v) return 'HumanName';
  if ('line' in v || 'city' in v || 'postalCode' in v || 'country' in v || 'district' in v || 'state' in v) return 'Address';
  if ('event' in v || 'repeat' in v) return 'Timing';
  if ('start' in v || 'end' in v) return 'Period';
  if ('currency' in v) return 'Money';
  if ('origin' in v && 'dimensions' in v) return 'SampledData';
  if ('low' in v || 'high' in v) return 'Range';
  if (typeof v.value === 'string') {
    if ('rank' in v || (typeof v.system === 'string' && CONTACT_SYSTEMS.has(v.system))) return 'ContactPoint';
    return 'Identifier';
  }
  if ('value' in v) return 'Quantity';
  if ('code' in v || 'system' in v) return 'Coding';
  if ('identifier' in v) return 'Reference';
  if ('text' in v) return 'CodeableConcept';
  return 'Element';
}

// ---------------------------------------------------------------------------------------------
// Collecting entries

const NULL = '\u0000';
const SEP = '\u0001';

function k(v: string | number | null): string {
  return v === null ? NULL : String(v);
}

/** Accumulates entries, dropping exact duplicates. */
class Sink {
  readonly entries: IndexEntry[] = [];
  private readonly seen = new Set<string>();

  add(entry: IndexEntry): void {
    let key: string;
    switch (entry.kind) {
      case 'token':
        key = `t${SEP}${entry.param}${SEP}${entry.group}${SEP}${k(entry.system)}${SEP}${k(entry.code)}${SEP}${k(entry.text)}`;
        break;
      case 'string':
        key = `s${SEP}${entry.param}${SEP}${entry.group}${SEP}${entry.exact}`;
        break;
      case 'date':
        key = `d${SEP}${entry.param}${SEP}${entry.group}${SEP}${entry.low}${SEP}${entry.high}`;
        break;
      case 'number':
        key = `n${SEP}${entry.param}${SEP}${entry.group}${SEP}${entry.value}`;
        break;
      case 'quantity':
        key = `q${SEP}${entry.param}${SEP}${entry.group}${SEP}${entry.value}${SEP}${k(entry.system)}${SEP}${k(entry.code)}${SEP}${k(entry.unit)}`;
        break;
      case 'reference':
        key = `r${SEP}${entry.param}${SEP}${entry.group}${SEP}${k(entry.targetType)}${SEP}${k(entry.targetId)}${SEP}${k(entry.url)}`;
        break;
      case 'uri':
        key = `u${SEP}${entry.param}${SEP}${entry.group}${SEP}${entry.value}`;
        break;
    }
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.entries.push(entry);
  }

  token(param: string, group: number, system: string | null, code: string | null, text: string | null): void {
    if (system === null && code === null && text === null) return;
    this.add({ kind: 'token', param, group, system, code, text });
  }

  string(param: string, group: number, exact: string | undefined): void {
    if (exact === undefined) return;
    const value = normalizeString(exact);
    if (value !== '') this.add({ kind: 'string', param, group, value, exact });
  }
}

function textOf(s: string | undefined): string | null {
  if (s === undefined) return null;
  const t = normalizeString(s);
  return t === '' ? null : t;
}

/** Context of one extraction: the parameter code entries are filed under, their group, and whether to add the derived entries (":of-type", ":identifier"), which composites do not. */
interface Target {
  param: string;
  group: number;
  derived: boolean;
}

function identifierTokens(sink: Sink, t: Target, id: Json, param = t.param): void {
  const system = str(id, 'system') ?? null;
  const value = str(id, 'value') ?? null;
  if (system === null && value === null) return;
  const type = obj(id, 'type');
  sink.token(param, t.group, system, value, textOf(type && str(type, 'text')));
  if (t.derived && type && value !== null && param === t.param) {
    for (const coding of objs(type, 'coding')) {
      const code = str(coding, 'code');
      if (code !== undefined) sink.token(`${t.param}:of-type`, t.group, str(coding, 'system') ?? null, `${code}|${value}`, null);
    }
  }
}

function codingToken(sink: Sink, t: Target, coding: Json): void {
  const system = str(coding, 'system') ?? null;
  const code = str(coding, 'code') ?? null;
  if (system !== null || code !== null) sink.token(t.param, t.group, system, code, textOf(str(coding, 'display')));
}

function token(sink: Sink, t: Target, el: unknown): void {
  if (typeof el === 'string') {
    if (el !== '') sink.token(t.param, t.group, null, el, null);
    return;
  }
  if (typeof el === 'boolean') return sink.token(t.param, t.group, null, el ? 'true' : 'false', null);
  if (typeof el === 'number') {
    if (Number.isFinite(el)) sink.token(t.param, t.group, null, String(el), null);
    return;
  }
  if (!isObject(el)) return;
  switch (typeOf(el)) {
    case 'CodeableConcept': {
      for (const coding of objs(el, 'coding')) codingToken(sink, t, coding);
      const text = textOf(str(el, 'text'));
      if (text !== null) sink.token(t.param, t.group, null, null, text);
      return;
    }
    case 'Coding':
      return codingToken(sink, t, el);
    case 'Identifier':
      return identifierTokens(sink, t, el);
    case 'ContactPoint': {
      const value = str(el, 'value');
      if (value !== undefined) sink.token(t.param, t.group, null, value, null);
      return;
    }
  }
}

function string(sink: Sink, t: Target, el: unknown): void {
  if (typeof el === 'string') return sink.string(t.param, t.group, el);
  if (!isObject(el)) return;
  switch (typeOf(el)) {
    case 'HumanName':
      sink.string(t.param, t.group, str(el, 'family'));
      for (const key of ['given', 'prefix', 'suffix']) for (const s of strs(el, key)) sink.string(t.param, t.group, s);
      sink.string(t.param, t.group, str(el, 'text'));
      return;
    case 'Address':
      for (const s of strs(el, 'line')) sink.string(t.param, t.group, s);
      for (const key of ['city', 'district', 'state', 'postalCode', 'country', 'text']) sink.string(t.param, t.group, str(el, key));
      return;
  }
}

/** [low, high] of a Period: a missing start is open (MIN_TIME), a missing end too (MAX_TIME). Null when empty or invalid. */
function periodRange(p: Json): [number, number] | null {
  const start = str(p, 'start');
  const end = str(p, 'end');
  if (start === undefined && end === undefined) return null;
  const s = start === undefined ? null : dateRange(start);
  const e = end === undefined ? null : dateRange(end);
  if ((start !== undefined && !s) || (end !== undefined && !e)) return null;
  // start after end is not valid FHIR (per-1): cover both rather than index an empty range.
  if (s && e && s[0] > e[1]) return [e[0], s[1]];
  return [s ? s[0] : MIN_TIME, e ? e[1] : MAX_TIME];
}

/** The outer limits of a Timing: its events and repeat.boundsPeriod. */
function timingRange(timing: Json): [number, number] | null {
  let low = Infinity;
  let high = -Infinity;
  for (const event of strs(timing, 'event')) {
    const r = dateRange(event);
    if (!r) continue;
    low = Math.min(low, r[0]);
    high = Math.max(high, r[1]);
  }
  const bounds = obj(timing, 'repeat');
  const period = bounds && obj(bounds, 'boundsPeriod');
  const r = period && periodRange(period);
  if (r) {
    low = Math.min(low, r[0]);
    high = Math.max(high, r[1]);
  }
  return low <= high ? [low, high] : null;
}

function date(sink: Sink, t: Target, el: unknown): void {
  let range: [number, number] | null = null;
  if (typeof el === 'string') range = dateRange(el);
  else if (isObject(el)) {
    const type = typeOf(el);
    if (type === 'Period') range = periodRange(el);
    else if (type === 'Timing') range = timingRange(el);
  }
  if (range) sink.add({ kind: 'date', param: t.param, group: t.group, low: range[0], high: range[1] });
}

function number(sink: Sink, t: Target, el: unknown): void {
  let value: number | undefined;
  if (typeof el === 'number') value = Number.isFinite(el) ? el : undefined;
  else if (typeof el === 'string' && NUMBER_RE.test(el)) value = Number(el);
  else if (isObject(el) && typeOf(el) === 'Quantity') value = num(el, 'value');
  if (value !== undefined) sink.add({ kind: 'number', param: t.param, group: t.group, value });
}

function quantity(sink: Sink, t: Target, el: unknown): void {
  if (typeof el === 'number') {
    if (Number.isFinite(el)) sink.add({ kind: 'quantity', param: t.param, group: t.group, value: el, system: null, code: null, unit: null });
    return;
  }
  if (!isObject(el)) return;
  const type = typeOf(el);
  if (type === 'Range') {
    // QuantityEntry has no range: a Range contributes its bounds as two quantities.
    for (const key of ['low', 'high']) {
      const bound = obj(el, key);
      if (bound) plainQuantity(sink, t, bound);
    }
    return;
  }
  if (type === 'SampledData') return;
  const value = num(el, 'value');
  if (value === undefined) return;
  if (type === 'Money') {
    const currency = str(el, 'currency') ?? null;
    sink.add({ kind: 'quantity', param: t.param, group: t.group, value, system: currency === null ? null : CURRENCY_SYSTEM, code: currency, unit: null });
    return;
  }
  if (type === 'Quantity') plainQuantity(sink, t, el);
}

function plainQuantity(sink: Sink, t: Target, q: Json): void {
  const value = num(q, 'value');
  if (value === undefined) return;
  sink.add({ kind: 'quantity', param: t.param, group: t.group, value, system: str(q, 'system') ?? null, code: str(q, 'code') ?? null, unit: str(q, 'unit') ?? null });
}

const ID = '[A-Za-z0-9\\-.]{1,64}';
const RELATIVE_RE = new RegExp(`^([A-Z][A-Za-z]+)/(${ID})(?:/_history/${ID})?$`);
const ABSOLUTE_RE = new RegExp(`^[A-Za-z][A-Za-z0-9+.-]*://[^?#]*/([A-Z][A-Za-z]+)/(${ID})(?:/_history/${ID})?$`);
const SCHEME_RE = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** A literal reference as [targetType, targetId, url], or null when it cannot be searched (contained, malformed). */
export function parseReference(ref: string): [string | null, string | null, string | null] | null {
  if (ref === '' || ref.startsWith('#')) return null;
  let m = RELATIVE_RE.exec(ref);
  if (m && RESOURCE_TYPES.has(m[1])) return [m[1], m[2], null];
  m = ABSOLUTE_RE.exec(ref);
  if (m && RESOURCE_TYPES.has(m[1])) return [m[1], m[2], ref];
  return SCHEME_RE.test(ref) ? [null, null, ref] : null;
}

function reference(sink: Sink, t: Target, el: unknown): void {
  if (typeof el === 'string') {
    // canonical (or uri) values: the URL without its |version.
    const bar = el.indexOf('|');
    const url = bar >= 0 ? el.slice(0, bar) : el;
    if (url !== '') sink.add({ kind: 'reference', param: t.param, group: t.group, targetType: null, targetId: null, url });
    return;
  }
  if (!isObject(el) || typeOf(el) !== 'Reference') return;
  const ref = str(el, 'reference');
  const parsed = ref === undefined ? null : parseReference(ref);
  if (parsed) sink.add({ kind: 'reference', param: t.param, group: t.group, targetType: parsed[0], targetId: parsed[1], url: parsed[2] });
  const identifier = obj(el, 'identifier');
  if (identifier && t.derived) identifierTokens(sink, t, identifier, `${t.param}:identifier`);
}

function uri(sink: Sink, t: Target, el: unknown): void {
  if (typeof el === 'string' && el !== '') sink.add({ kind: 'uri', param: t.param, group: t.group, value: el });
}

const EXTRACTORS: Partial<Record<ParamType, (sink: Sink, t: Target, el: unknown) => void>> = {
  token,
  string,
  date,
  number,
  quantity,
  reference,
  uri,
};

function composite(sink: Sink, param: SearchParam, elements: unknown[], nextGroup: number): number {
  const components = param.components;
  if (!components || components.length === 0) return nextGroup;
  for (const element of elements) {
    // A group is kept only when every component has a value: an engine matches all of them
    // within one group, so a partial group can never match.
    const group = new Sink();
    let complete = true;
    for (let i = 0; i < components.length && complete; i++) {
      const extract = EXTRACTORS[components[i].param.type];
      const before = group.entries.length;
      if (extract) {
        const t: Target = { param: `${param.code}#${i}`, group: nextGroup, derived: false };
        for (const value of evaluate(components[i].evaluate, element)) extract(group, t, value);
      }
      complete = group.entries.length > before;
    }
    if (!complete) continue;
    for (const entry of group.entries) sink.add(entry);
    nextGroup++;
  }
  return nextGroup;
}

/**
 * Every index entry of a resource, deduplicated, in parameter order. Composite values get groups
 * 1, 2, ... (unique within the resource); every other entry has group 0. An AuditEvent (one per
 * interaction) is walked by search/audit-entries, which gives the same entries without FHIRPath.
 */
export function indexEntries(resource: Resource): IndexEntry[] {
  return resource.resourceType === 'AuditEvent' ? auditIndexEntries(resource) : fhirPathEntries(resource);
}

/** indexEntries() by evaluating every parameter's FHIRPath expression, whatever the type. */
export function fhirPathEntries(resource: Resource): IndexEntry[] {
  return entriesOf(resource, paramsOf(resource.resourceType));
}

/**
 * The reference entries of one reference parameter of a resource (of every one with `*`), as
 * indexEntries files them: what _include follows, without evaluating the resource's other
 * parameters (an Observation has about 40).
 */
export function referenceEntries(resource: Resource, code: string): ReferenceEntry[] {
  const type = resource.resourceType;
  const params = paramsOf(type).filter((p) => p.type === 'reference' && (code === '*' || p.code === code));
  const entries = type === 'AuditEvent' ? auditIndexEntries(resource) : entriesOf(resource, params);
  return entries.filter((e): e is ReferenceEntry => e.kind === 'reference' && params.some((p) => p.code === e.param));
}

/** The entries of the given parameters of a resource, each by its FHIRPath expression. */
function entriesOf(resource: Resource, params: readonly SearchParam[]): IndexEntry[] {
  // fhirpath.js marks the elements it returns with a hidden `__path__` property (its type): it
  // cannot on a frozen resource, so such a resource is indexed through a copy.
  if (Object.isFrozen(resource)) resource = structuredClone(resource);
  const sink = new Sink();
  const type = resource.resourceType;
  let nextGroup = 1;
  for (const param of params) {
    const fn = evaluatorOf(param, type);
    if (!fn) continue;
    try {
      const found = evaluate(fn, resource);
      if (found.length === 0) continue;
      if (param.type === 'composite') {
        nextGroup = composite(sink, param, found, nextGroup);
        continue;
      }
      const extract = EXTRACTORS[param.type];
      if (!extract) continue;
      const t: Target = { param: param.code, group: 0, derived: true };
      for (const value of found) extract(sink, t, value);
    } catch {
      // An element too odd to index is skipped: a write never fails on indexing.
    }
  }
  return sink.entries;
}

/**
 * The entries one FHIR element contributes to a (non-composite) parameter of the given type, as
 * indexEntries files them (group 0, derived ":of-type" / ":identifier" entries included).
 */
export function valueEntries(type: ParamType, code: string, element: unknown): IndexEntry[] {
  return elementsEntries(type, code, [element]);
}

/**
 * The entries of the given FHIR elements for one (non-composite) parameter, deduplicated as
 * indexEntries files them: for callers that find a parameter's elements without FHIRPath
 * (search/audit-entries, whose tests hold the two equal).
 */
export function elementsEntries(type: ParamType, code: string, elements: readonly unknown[]): IndexEntry[] {
  const sink = new Sink();
  const extract = EXTRACTORS[type];
  if (!extract) return [];
  const t: Target = { param: code, group: 0, derived: true };
  for (const element of elements) {
    try {
      extract(sink, t, element);
    } catch {
      // same contract as indexEntries: never throws
    }
  }
  return sink.entries;
}
