// search/extract: the index entries of a resource, computed once at write time by evaluating
// each search parameter's FHIRPath expression. Engines store and query these entries.

import type { Resource } from '@medplum/fhirtypes';
import { paramsOf } from './params.js';

/** A token value: system null means "no system" (|code), code null means "any code" (system|). */
export interface TokenEntry {
  param: string;
  kind: 'token';
  system: string | null;
  code: string | null;
}

export type IndexEntry = TokenEntry;

interface Coded {
  system?: unknown;
  value?: unknown;
  code?: unknown;
  coding?: unknown;
}

function tokens(param: string, element: unknown): TokenEntry[] {
  if (typeof element === 'string' || typeof element === 'boolean' || typeof element === 'number') {
    return [{ param, kind: 'token', system: null, code: String(element) }];
  }
  if (!element || typeof element !== 'object') return [];
  const value = element as Coded;
  // Identifier (system, value), Coding (system, code), CodeableConcept (coding[]).
  if (Array.isArray(value.coding)) return value.coding.flatMap((c) => tokens(param, c));
  const code = typeof value.value === 'string' ? value.value : typeof value.code === 'string' ? value.code : null;
  const system = typeof value.system === 'string' ? value.system : null;
  if (code === null && system === null) return [];
  return [{ param, kind: 'token', system, code }];
}

/** Every index entry of a resource, deduplicated. */
export function indexEntries(resource: Resource): IndexEntry[] {
  const seen = new Set<string>();
  const entries: IndexEntry[] = [];
  for (const param of paramsOf(resource.resourceType)) {
    if (!param.evaluate) continue;
    for (const element of param.evaluate(resource)) {
      for (const entry of tokens(param.code, element)) {
        const key = `${entry.param}\u0000${entry.system}\u0000${entry.code}`;
        if (seen.has(key)) continue;
        seen.add(key);
        entries.push(entry);
      }
    }
  }
  return entries;
}
