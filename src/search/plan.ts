// search/plan: parsing a query into a SearchPlan, the storage-free description of a search
// that every engine compiles. Comma is OR within a parameter, a repeated parameter is AND.

import { Invalid } from '../fhir/outcome.js';
import { findParam } from './params.js';

export interface TokenValue {
  /** undefined: any system; null: no system (`|code`). */
  system?: string | null;
  /** undefined: any code (`system|`). */
  code?: string;
}

export type Clause = { kind: 'id'; ids: string[] } | { kind: 'token'; param: string; values: TokenValue[] };

export interface SearchPlan {
  type: string;
  /** Every clause must match (AND); within a clause any value may match (OR). */
  clauses: Clause[];
}

export interface ParsedQuery {
  plan: SearchPlan;
  /** Parameters that were applied, for the Bundle's self link. */
  applied: [string, string][];
  /** Parameters ignored under Prefer: handling=lenient. */
  ignored: string[];
}

// Result parameters handled outside the plan (paging and formatting).
const CONTROL = new Set(['_count', '_format', '_pretty']);

// Splits on commas not escaped with a backslash (R4 search 3.1.1.3 escaping), then unescapes.
function splitValues(raw: string): string[] {
  const parts = raw.split(/(?<!\\),/);
  return parts.map((p) => p.replace(/\\([,|$\\])/g, '$1'));
}

function splitToken(raw: string): TokenValue {
  const bar = raw.search(/(?<!\\)\|/);
  if (bar < 0) return { code: raw };
  const system = raw.slice(0, bar);
  const code = raw.slice(bar + 1);
  return { system: system === '' ? null : system, ...(code === '' ? {} : { code }) };
}

/**
 * Parses search parameters for `type`. Unknown or malformed parameters throw 400 naming the
 * parameter, unless `lenient` (Prefer: handling=lenient), where they are ignored and reported.
 */
export function parseSearch(type: string, params: [string, string][], lenient = false): ParsedQuery {
  const clauses: Clause[] = [];
  const applied: [string, string][] = [];
  const ignored: string[] = [];
  const reject = (name: string, why: string) => {
    if (!lenient) throw new Invalid(`Search parameter "${name}": ${why}`, name);
    ignored.push(name);
  };
  for (const [name, raw] of params) {
    if (CONTROL.has(name)) continue;
    const [code, modifier] = name.split(':', 2);
    const param = findParam(type, code);
    if (!param) {
      reject(name, `not supported on ${type}`);
      continue;
    }
    if (modifier !== undefined) {
      reject(name, `modifier ":${modifier}" is not supported`);
      continue;
    }
    const values = splitValues(raw).filter((v) => v !== '');
    if (values.length === 0) {
      reject(name, 'an empty value matches nothing; omit the parameter instead');
      continue;
    }
    if (param.type === 'id') clauses.push({ kind: 'id', ids: values });
    else clauses.push({ kind: 'token', param: code, values: values.map(splitToken) });
    applied.push([name, raw]);
  }
  return { plan: { type, clauses }, applied, ignored };
}

/** Parses conditional criteria (If-None-Exist, `Type?query` URLs), which are never lenient. */
export function parseCriteria(type: string, query: string): SearchPlan {
  // Some senders (the HL7 XDS example among them) write If-None-Exist as a full "Type?query".
  if (query.startsWith(`${type}?`)) query = query.slice(type.length + 1);
  const params = [...new URLSearchParams(query)] as [string, string][];
  const { plan } = parseSearch(type, params);
  if (plan.clauses.length === 0) throw new Invalid(`Conditional criteria "${query}" select nothing: give at least one search parameter`);
  return plan;
}
