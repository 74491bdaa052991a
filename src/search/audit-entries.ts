// search/audit-entries: the search index entries of an AuditEvent, found by walking the elements
// each AuditEvent search parameter names instead of evaluating its FHIRPath expression. Every
// interaction writes one AuditEvent, and FHIRPath over its ~24 parameters cost about a quarter of
// the audit record (docs/performance.md). The entries are built by search/extract's own element
// extractors, so only the navigation is written here; test/audit/index-entries.test.ts holds the
// result equal to FHIRPath's (fhirPathEntries) over many generated events. extract's indexEntries()
// sends every AuditEvent here, so the audit group commit, which gives the entries of the records it
// journals, uses it too. A parameter this table does not know (a new definition in profiles/)
// sends every AuditEvent back to FHIRPath.

import type { AuditEvent } from '@medplum/fhirtypes';
import { elementsEntries, fhirPathEntries, type IndexEntry } from './extract.js';
import { paramsOf, type SearchParam } from './params.js';

type Elements = (event: AuditEvent) => readonly unknown[];

const list = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);
const agents = (e: AuditEvent) => e.agent ?? [];
const entities = (e: AuditEvent) => e.entity ?? [];
const present = <T>(values: (T | undefined)[]): T[] => values.filter((v): v is T => v !== undefined);

// The rewritten `.where(resolve() is Patient)` of search/params: a literal reference of type Patient.
const PATIENT_REFERENCE = /(^|\/)Patient\/[^/]+(\/_history\/[^/]+)?$/;
const patientReference = (ref: { reference?: string } | undefined) => ref !== undefined && typeof ref.reference === 'string' && PATIENT_REFERENCE.test(ref.reference);

/** What each AuditEvent parameter's expression selects (R4 definitions, as search/params reads them). */
const ELEMENTS: Record<string, Elements> = {
  _lastUpdated: (e) => present([e.meta?.lastUpdated]),
  _profile: (e) => list(e.meta?.profile),
  _security: (e) => list(e.meta?.security),
  _source: (e) => present([e.meta?.source]),
  _tag: (e) => list(e.meta?.tag),
  action: (e) => present([e.action]),
  address: (e) => present(agents(e).map((a) => a.network?.address)),
  agent: (e) => present(agents(e).map((a) => a.who)),
  'agent-name': (e) => present(agents(e).map((a) => a.name)),
  'agent-role': (e) => agents(e).flatMap((a) => list(a.role)),
  altid: (e) => present(agents(e).map((a) => a.altId)),
  date: (e) => present([e.recorded]),
  entity: (e) => present(entities(e).map((x) => x.what)),
  'entity-name': (e) => present(entities(e).map((x) => x.name)),
  'entity-role': (e) => present(entities(e).map((x) => x.role)),
  'entity-type': (e) => present(entities(e).map((x) => x.type)),
  outcome: (e) => present([e.outcome]),
  patient: (e) => [...present(agents(e).map((a) => a.who)).filter(patientReference), ...present(entities(e).map((x) => x.what)).filter(patientReference)],
  policy: (e) => agents(e).flatMap((a) => list(a.policy)),
  site: (e) => present([e.source?.site]),
  source: (e) => present([e.source?.observer]),
  subtype: (e) => list(e.subtype),
  type: (e) => present([e.type]),
};

let params: { param: SearchParam; elements: Elements }[] | undefined | null;

/** The AuditEvent parameters with their element walkers; null when one is unknown here. */
function table(): { param: SearchParam; elements: Elements }[] | null {
  if (params !== undefined) return params;
  const known: { param: SearchParam; elements: Elements }[] = [];
  for (const param of paramsOf('AuditEvent')) {
    if (!param.evaluate) continue; // `_id` and the like: stored by the engine, not indexed
    const elements = ELEMENTS[param.code];
    if (!elements || param.type === 'composite') return (params = null);
    known.push({ param, elements });
  }
  return (params = known);
}

/** The index entries of an AuditEvent: the same, in the same order, as fhirPathEntries(event). */
export function auditIndexEntries(event: AuditEvent): IndexEntry[] {
  const known = table();
  if (!known) return fhirPathEntries(event);
  const entries: IndexEntry[] = [];
  for (const { param, elements } of known) {
    const found = elements(event);
    if (found.length > 0) entries.push(...elementsEntries(param.type, param.code, found));
  }
  return entries;
}
