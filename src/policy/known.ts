// policy/known: the patients a search is pinned to, and a restriction's patient conditions decided
// on their consent state in memory. When every candidate of a search belongs to patients who
// satisfy those conditions, the query need not re-check them for each candidate row (restrict.ts).

import type { Resource } from '@medplum/fhirtypes';
import { findParam, type SearchParam } from '../search/params.js';
import { indexEntries } from '../search/extract.js';
import type { Condition, DateEntry, IndexEntry, RangeValue, ReferenceValue, TokenValue } from '../search/types.js';
import type { ConsentState } from './consents.js';
import { patientParamOf } from './compartment.js';

/** The consent state of the patients every candidate of a search belongs to (see pinnedPatients). */
export interface KnownPatients {
  states: ConsentState[];
}

/** The parts of an expression that apply to `type` ("A.x | B.y" lists several types). */
function partsOn(type: string, expression: string): string[] {
  return expression.split('|').map((part) => part.trim()).filter((part) => part.startsWith(`${type}.`));
}

/**
 * Whether every Patient a resource's `code` parameter refers to is also referred to by its
 * parameter `patientParam`: the same parameter, or one whose expression is patientParam's narrowed
 * to Patients (DocumentReference `patient` is `DocumentReference.subject.where(resolve() is Patient)`).
 */
function narrows(type: string, code: string, patientParam: string): boolean {
  if (code === patientParam) return true;
  const own = findParam(type, code);
  const wide = findParam(type, patientParam);
  if (!own?.expression || !wide?.expression) return false;
  // Keyed by the definitions themselves: the registry may gain or replace some after start-up.
  let byWide = narrowing.get(own);
  if (!byWide) narrowing.set(own, (byWide = new WeakMap()));
  let byType = byWide.get(wide);
  if (!byType) byWide.set(wide, (byType = new Map()));
  let answer = byType.get(type);
  if (answer === undefined) {
    const ownParts = partsOn(type, own.expression);
    const wideParts = partsOn(type, wide.expression);
    answer = ownParts.length > 0 && ownParts.every((part) => wideParts.some((w) => part === w || part === `${w}.where(resolve() is Patient)`));
    byType.set(type, answer);
  }
  return answer;
}
const narrowing = new WeakMap<SearchParam, WeakMap<SearchParam, Map<string, boolean>>>();

/**
 * The Patients every resource of `type` matching `where` refers to through its patient parameter
 * (patientParamOf), taken from a `patient=Patient/<id>` kind of criterion; undefined when the
 * criteria pin no patient. Each matching resource refers to at least one of them.
 */
export function pinnedPatients(type: string, where: Condition[]): string[] | undefined {
  const patientParam = patientParamOf(type);
  if (patientParam === undefined) return undefined;
  let pinned: string[] | undefined;
  for (const condition of where) {
    if (condition.kind !== 'reference' || condition.values.length === 0) continue;
    if (!condition.values.every((v) => v.targetType === 'Patient' && v.targetId !== undefined && v.url === undefined)) continue;
    if (!narrows(type, condition.param, patientParam)) continue;
    const ids = [...new Set(condition.values.map((v) => v.targetId as string))];
    if (!pinned || ids.length < pinned.length) pinned = ids;
  }
  return pinned;
}

// ------------------------------------------------------------------------------------------------
// Conditions decided on index entries in memory: true, false, or undefined when it cannot tell (a
// condition kind it does not evaluate, Consents it has not all loaded). Same semantics as the
// engines' compilers (store/sqlite/compile.ts) for the kinds it knows.

type Truth = boolean | undefined;

// indexEntries runs FHIRPath over every parameter of the type: once per cached resource.
const entriesOf = new WeakMap<Resource, IndexEntry[]>();
function entries(resource: Resource): IndexEntry[] {
  let found = entriesOf.get(resource);
  if (!found) entriesOf.set(resource, (found = indexEntries(resource)));
  return found;
}

function tokenMatches(entry: IndexEntry, value: TokenValue): boolean {
  if (entry.kind !== 'token') return false;
  if (value.code !== undefined && entry.code !== value.code) return false;
  if (value.system === null) return entry.system === null;
  return value.system === undefined || entry.system === value.system;
}

function referenceMatches(entry: IndexEntry, value: ReferenceValue): boolean {
  if (entry.kind !== 'reference') return false;
  const local = value.targetId !== undefined || value.targetType !== undefined ? (value.targetId === undefined || entry.targetId === value.targetId) && (value.targetType === undefined || entry.targetType === value.targetType) : undefined;
  if (value.url !== undefined) return local === true || entry.url === value.url;
  return local === true;
}

/** The prefixes restrict.ts uses on dates, with the engines' semantics (store/sqlite/compile.ts). */
function dateMatches(entry: DateEntry, value: RangeValue): boolean {
  return value.prefix === 'ge' ? entry.high >= value.low : entry.low < value.high;
}

const ACTIVE: TokenValue = { code: 'active' };

/** Whether `where` (conditions of a has on Consent) keeps only active Consents, the only ones a state holds. */
function activeOnly(where: Condition[]): boolean {
  return where.some((c) => c.kind === 'token' && c.param === 'status' && !c.not && c.values.length === 1 && c.values[0].code === ACTIVE.code && c.values[0].system === undefined);
}

function all(truths: Truth[]): Truth {
  if (truths.includes(false)) return false;
  return truths.includes(undefined) ? undefined : true;
}

function any(truths: Truth[]): Truth {
  if (truths.includes(true)) return true;
  return truths.includes(undefined) ? undefined : false;
}

/** `condition` on `resource`; `state` supplies the Consents of a `_has:Consent:patient` on the state's Patient. */
function truth(condition: Condition, resource: Resource, state: ConsentState): Truth {
  switch (condition.kind) {
    case 'token': {
      const found = entries(resource).some((e) => e.param === condition.param && condition.values.some((v) => tokenMatches(e, v)));
      return condition.not ? !found : found;
    }
    case 'reference':
      return entries(resource).some((e) => e.param === condition.param && condition.values.some((v) => referenceMatches(e, v)));
    case 'missing': {
      const present = entries(resource).some((e) => e.param === condition.param);
      return condition.missing ? !present : present;
    }
    case 'date':
      if (!condition.values.every((v) => v.prefix === 'ge' || v.prefix === 'le')) return undefined;
      return entries(resource).some((e) => e.kind === 'date' && e.param === condition.param && condition.values.some((v) => dateMatches(e, v)));
    case 'all':
      return all(condition.of.map((c) => truth(c, resource, state)));
    case 'any':
      return any(condition.of.map((c) => truth(c, resource, state)));
    case 'not': {
      const inner = truth(condition.condition, resource, state);
      return inner === undefined ? undefined : !inner;
    }
    case 'has':
      // The state holds the patient's active Consents, found through their `patient` parameter.
      if (resource !== state.patient || condition.sourceType !== 'Consent' || condition.param !== 'patient' || !state.complete || !activeOnly(condition.where)) return undefined;
      return any(state.consents.map((consent) => all(condition.where.map((c) => truth(c, consent, state)))));
    default:
      return undefined;
  }
}

/** Whether every known patient exists and satisfies all of `where` (false when it cannot tell). */
export function holdForAll(known: KnownPatients, where: Condition[]): boolean {
  return known.states.length > 0 && known.states.every((state) => state.patient !== undefined && all(where.map((c) => truth(c, state.patient as Resource, state))) === true);
}
