// policy/restrict: the consent rules of decide.ts as query conditions, merged into every search
// plan so that pages, totals, includes and chains only ever count what the actor may see.

import type { Actor } from '../auth/actor.js';
import { Forbidden } from '../base/outcome.js';
import type { Condition, ReferenceValue } from '../search/types.js';
import { DIRECTORY, OWNED_TYPES, patientParamOf, hasCompartment } from './compartment.js';
import { PURPOSE_SYSTEM } from './consents.js';
import { CONFIDENTIAL_FROM_REPRESENTATIVES, creatorKey, NOTIFICATION_CREATOR } from './decide.js';
import { isProfileType, type ReadableTypes } from './matrix.js';
import { holdForAll, type KnownPatients } from './known.js';

const NOTHING: Condition = { kind: 'any', of: [] };

/**
 * A Consent in force at `now` (epoch ms): active, and `now` within its provision.period when it
 * has one (the bounds the index gives a Period, as consents.ts inForce reads them).
 */
export function inForceNow(now: number): Condition[] {
  const at = (prefix: 'le' | 'ge') => ({ prefix, value: now, low: now, high: now + 1 });
  return [
    { kind: 'token', param: 'status', values: [{ code: 'active' }] },
    { kind: 'any', of: [{ kind: 'missing', param: 'period', missing: true }, { kind: 'all', of: [{ kind: 'date', param: 'period', values: [at('le')] }, { kind: 'date', param: 'period', values: [at('ge')] }] }] },
  ];
}

function activeConsents(provisionType: 'permit' | 'deny', extra: Condition[], now: number): Condition {
  return {
    kind: 'has',
    sourceType: 'Consent',
    param: 'patient',
    where: [...inForceNow(now), { kind: 'token', param: 'provision-type', values: [{ code: provisionType }] }, ...extra],
  };
}

type Practitioner = Extract<Actor, { kind: 'practitioner' }>;

/** Conditions on a Patient (alias of the searched Patient, or the target of a chain). */
function patientConditions(actor: Practitioner, withRelationship: boolean, now: number): Condition[] {
  const me: ReferenceValue = { targetType: 'Practitioner', targetId: actor.practitionerId };
  const blockers: ReferenceValue[] = [me, ...(actor.organizationId ? [{ targetType: 'Organization', targetId: actor.organizationId }] : [])];
  const conditions: Condition[] = [
    // The account is open: Patient.active is derived from the account's state (policy/account.ts),
    // true only when open, so a notified, objected, closed or archived account is excluded too.
    { kind: 'token', param: 'active', values: [{ code: 'false' }], not: true },
    // The patient has not blocked this professional or their organisation.
    { kind: 'not', condition: activeConsents('deny', [{ kind: 'reference', param: 'actor', values: blockers }], now) },
  ];
  if (withRelationship) {
    const relationship: Condition[] = [
      { kind: 'reference', param: 'general-practitioner', values: [me] },
      activeConsents('permit', [{ kind: 'reference', param: 'actor', values: [me] }], now),
    ];
    if (actor.purposeOfUse === 'ETREAT') {
      relationship.push({ kind: 'not', condition: activeConsents('deny', [{ kind: 'token', param: 'purpose', values: [{ system: PURPOSE_SYSTEM, code: 'ETREAT' }] }], now) });
    }
    conditions.push({ kind: 'any', of: relationship });
  }
  return conditions;
}

/**
 * The resource's patient (through its patient parameter) satisfies `where`; resources without one
 * pass. Undefined (no condition) when the search is pinned to patients who all satisfy it: each
 * candidate refers to one of them, so the query need not check it again for every row.
 */
function ofPatient(type: string, where: Condition[], known: KnownPatients | undefined): Condition | undefined {
  if (known && holdForAll(known, where)) return undefined;
  if (type === 'Patient') return { kind: 'all', of: where };
  const param = patientParamOf(type) as string;
  return { kind: 'any', of: [{ kind: 'chain', param, targetTypes: ['Patient'], where, perRow: true }, { kind: 'missing', param, missing: true }] };
}

/** What the archive service reads (decide.ts decideArchive): the records of archived accounts, the directory. */
function archiveConditions(type: string): Condition[] {
  if (DIRECTORY.has(type)) return [];
  if (type === 'AuditEvent' || !hasCompartment(type)) return [NOTHING];
  const archived: Condition[] = [{ kind: 'token', param: 'account-state', values: [{ code: 'archived' }] }];
  if (type === 'Patient') return archived;
  const param = patientParamOf(type) as string;
  // Every resource it reads belongs to an archived patient's record: one without a patient is nobody's.
  return [{ kind: 'chain', param, targetTypes: ['Patient'], where: archived, perRow: true }];
}

/** AuditEvents about these patients' records (decide.ts aboutPatients): an entity names one of them. */
function aboutRecords(patientIds: string[]): Condition {
  return { kind: 'reference', param: 'entity', values: patientIds.map((targetId) => ({ targetType: 'Patient', targetId })) };
}

const byPatientAuthor: Condition = {
  kind: 'all',
  of: [
    { kind: 'reference', param: 'author', values: [{ targetType: 'Patient' }, { targetType: 'RelatedPerson' }] },
    { kind: 'not', condition: { kind: 'reference', param: 'author', values: ['Practitioner', 'PractitionerRole', 'Organization', 'Device'].map((targetType) => ({ targetType })) } },
  ],
};

/** The access matrix as a condition on DocumentReference (see ReadableTypes in matrix.ts). */
function documentTypes(readable: ReadableTypes): Condition | undefined {
  if (readable.all) return undefined;
  const allowed: Condition[] = [];
  if (readable.types.length > 0) allowed.push({ kind: 'token', param: 'type', values: readable.types });
  if (readable.classes.length > 0) allowed.push({ kind: 'token', param: 'category', values: readable.classes });
  if (readable.patientDeposited) allowed.push(byPatientAuthor);
  // Exceptions match on the code whatever the system (matrix.ts: a sender using LOINC's OID, or no
  // system, cannot slip past a deny).
  const loose = (codings: { system: string; code: string }[]) => codings.map((c) => ({ code: c.code }));
  const except: Condition[] = [];
  if (readable.except.types.length > 0) except.push({ kind: 'token', param: 'type', values: loose(readable.except.types) });
  if (readable.except.classes.length > 0) except.push({ kind: 'token', param: 'category', values: loose(readable.except.classes) });
  if (readable.except.patientDeposited) except.push(byPatientAuthor);
  return { kind: 'all', of: [{ kind: 'any', of: allowed }, ...(except.length > 0 ? [{ kind: 'not', condition: { kind: 'any', of: except } } as Condition] : [])] };
}

function practitionerConditions(actor: Practitioner, type: string, readable: ReadableTypes, now: number, known: KnownPatients | undefined): Condition[] {
  if (DIRECTORY.has(type)) return [];
  if (type === 'AuditEvent') return [NOTHING];
  // Binaries are read one at a time, through their securityContext (policy/index.ts); a search
  // lists only those the professional created.
  if (type === 'Binary') return [{ kind: 'creator', creators: [creatorKey(actor)] }];
  if (type === 'Consent') {
    return [
      ...inForceNow(now),
      { kind: 'token', param: 'provision-type', values: [{ code: 'permit' }] },
      { kind: 'reference', param: 'actor', values: [{ targetType: 'Practitioner', targetId: actor.practitionerId }] },
    ];
  }
  if (!hasCompartment(type)) return [];
  const present = (condition: Condition | undefined): Condition[] => (condition ? [condition] : []);
  // Not masked by the patient: no active deny Consent names this resource in its data.
  const notMasked: Condition = { kind: 'not', condition: { kind: 'has', sourceType: 'Consent', param: 'data', where: [...inForceNow(now), { kind: 'token', param: 'provision-type', values: [{ code: 'deny' }] }] } };
  if (type === 'Communication') {
    // The patient's notifications name who accessed the record: theirs alone; every other
    // Communication is a message, read by the professionals it names as sender or recipient,
    // without a care relationship but never once blocked or the account closed (decide.ts).
    const me: ReferenceValue[] = [{ targetType: 'Practitioner', targetId: actor.practitionerId }];
    return [
      { kind: 'not', condition: { kind: 'creator', creators: [NOTIFICATION_CREATOR] } },
      { kind: 'any', of: [{ kind: 'reference', param: 'sender', values: me }, { kind: 'reference', param: 'recipient', values: me }] },
      ...present(ofPatient(type, patientConditions(actor, false, now), known)),
    ];
  }
  if (isProfileType(type)) {
    // An entry of the medical profile: the matrix by its type, then the patient's masks (decide.ts).
    if (!readable.all && !readable.resourceTypes.includes(type)) return [NOTHING];
    return [...present(ofPatient(type, patientConditions(actor, true, now), known)), notMasked];
  }
  if (type !== 'DocumentReference') return present(ofPatient(type, patientConditions(actor, true, now), known));
  const authored: Condition = { kind: 'all', of: [{ kind: 'reference', param: 'author', values: [{ targetType: 'Practitioner', targetId: actor.practitionerId }] }, ...present(ofPatient(type, patientConditions(actor, false, now), known))] };
  const types = documentTypes(readable);
  const cared: Condition = {
    kind: 'all',
    of: [
      ...present(ofPatient(type, patientConditions(actor, true, now), known)),
      ...(types ? [types] : []),
      // Not retracted by its author (decide.ts).
      { kind: 'token', param: 'status', values: [{ code: 'entered-in-error' }], not: true },
      notMasked,
    ],
  };
  return [{ kind: 'any', of: [authored, cared] }];
}

/**
 * The conditions to add to a search of `type` by `actor`. Throws 403 when the actor may not search
 * patient data at all. Patient compartments are added by fhir/access (scopes), not here. `known`:
 * the consent state of the patients the search is pinned to (policy/known.ts), if any.
 */
export function policyConditions(actor: Actor, type: string, readableTypes: (profession: string, specialty?: string) => ReadableTypes, now: number, known?: KnownPatients): Condition[] {
  if (actor.kind !== 'organisation' && OWNED_TYPES.has(type)) return [{ kind: 'creator', creators: [creatorKey(actor)] }];
  switch (actor.kind) {
    case 'organisation':
      if (actor.role === 'archive') return archiveConditions(type);
      throw new Forbidden(`A ${actor.role} never reads record content`);
    case 'patient':
      return type === 'AuditEvent' ? [aboutRecords([actor.patientId])] : [];
    case 'representative':
      return [{ kind: 'token', param: '_security', values: [CONFIDENTIAL_FROM_REPRESENTATIVES], not: true }, ...(type === 'AuditEvent' ? [aboutRecords(actor.patientIds)] : [])];
    case 'system':
      return DIRECTORY.has(type) ? [] : [{ kind: 'creator', creators: [creatorKey(actor)] }];
    case 'practitioner':
      return practitionerConditions(actor, type, readableTypes(actor.profession, actor.specialty), now, known);
  }
}
