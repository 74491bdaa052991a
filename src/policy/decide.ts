// policy/decide: may this actor do this to this one resource? Pure: everything it needs comes as
// arguments (the patient's consent state is loaded by the caller). restrict.ts says the same
// thing as query conditions; the tests hold the two to agreement.

import type { AuditEvent, Communication, Consent, DocumentReference, Patient, Resource } from '@medplum/fhirtypes';
import type { Actor } from '../auth/actor.js';
import { inForce, rulesOf, type ConsentRule, type ConsentState } from './consents.js';
import { DIRECTORY, OWNED_TYPES } from './compartment.js';
import { isProfileType, type DocumentFacts, type ProfileFacts } from './matrix.js';
import { accountOf, representedAt, type AccountState } from './account.js';

export type Action = 'read' | 'create' | 'update' | 'delete';
/** The actions that change something. */
export type WriteAction = Exclude<Action, 'read'>;

export type Decision =
  | {
      permit: true;
      /** Granted through emergency access only: flagged in the audit record. */
      emergency: boolean;
      /** Obligation of a write: the stamps it bumps (the consent states it may change: Policy.stateOf). */
      stamps?: string[];
    }
  | {
      permit: false;
      /** 404 when the reason must stay hidden, 403 when it is visible, 422 for a Consent the engine would not enforce. */
      status: 403 | 404 | 422;
      reason: string;
      /** For a 422: the elements at fault (FHIRPath), one per reason. */
      issues?: { expression: string; diagnostics: string }[];
    };

/** The label that keeps a resource from a minor's legal representatives (docs/consent.md). */
export const CONFIDENTIAL_FROM_REPRESENTATIVES = { system: 'urn:carnet:security', code: 'confidential-from-representatives' };


export interface DecideInput {
  actor: Actor;
  action: Action;
  resource: Resource;
  /** The consent state of the resource's patient, when it belongs to one. */
  state?: ConsentState;
  /** Who created the resource (`client:<id>`, `practitioner:<id>`...), from the store envelope. */
  creator?: string;
  /** The time of the decision (epoch milliseconds): Consent periods start and end. */
  now: number;
  /** The access matrix: may this profession (and specialty) read a document with these facts, or a profile entry of this type? */
  mayRead: (profession: string, specialty: string | undefined, facts: DocumentFacts | ProfileFacts) => boolean;
}

/**
 * Who creates the patient's notifications (Communications in their inbox, notify/): the server.
 * They name who accessed the record: only the patient side reads them.
 */
export const NOTIFICATION_CREATOR = 'carnet:notification';

export const PERMIT: Decision = { permit: true, emergency: false };
export const hidden = (reason: string): Decision => ({ permit: false, status: 404, reason });
export const refused = (reason: string): Decision => ({ permit: false, status: 403, reason });

/** The creator key of what a patient creates themselves. */
export const patientCreator = (patientId: string) => `patient:${patientId}`;

/** The creator key of an actor, as stored with what it creates. */
export function creatorKey(actor: Actor): string {
  switch (actor.kind) {
    case 'patient':
      return patientCreator(actor.patientId);
    case 'representative':
      return `related-person:${actor.relatedPersonId}`;
    case 'practitioner':
      return `practitioner:${actor.practitionerId}`;
    case 'system':
      return `client:${actor.clientId}`;
    case 'organisation':
      return `organization:${actor.organizationId}`;
  }
}

/**
 * Who the actor is in a conversation (docs/messaging.md), as [type, id]: the patient; a
 * representative, who acts for their patients; a professional. Systems and organisations take
 * part in none.
 */
export function identities(actor: Actor): [string, string][] {
  switch (actor.kind) {
    case 'patient':
      return [['Patient', actor.patientId]];
    case 'representative':
      return [['RelatedPerson', actor.relatedPersonId], ...actor.patientIds.map((id): [string, string] => ['Patient', id])];
    case 'practitioner':
      return [['Practitioner', actor.practitionerId]];
    default:
      return [];
  }
}

/** Whether `references` name the actor (one of their identities). */
export function namesActor(actor: Actor, references: readonly (string | undefined)[]): boolean {
  const me = identities(actor);
  return references.some((ref) => me.some(([type, id]) => refersTo(ref, type, id)));
}

/** Whether the actor takes part in a message: its sender or one of its recipients. */
export function takesPart(actor: Actor, message: Resource): boolean {
  const m = message as Communication;
  return namesActor(actor, [m.sender?.reference, ...(m.recipient ?? []).map((r) => r.reference)]);
}

/** Whether a literal reference (relative or absolute) names Type/id. Plain string tests: this runs for every read. */
export function refersTo(reference: string | undefined, type: string, id: string | undefined): boolean {
  if (id === undefined || reference === undefined) return false;
  const target = `${type}/${id}`;
  return reference === target || (reference.endsWith(target) && reference[reference.length - target.length - 1] === '/');
}

/** The authors of a DocumentReference, as Type/id references. */
export function authors(resource: Resource): string[] {
  return resource.resourceType === 'DocumentReference' ? ((resource as DocumentReference).author ?? []).map((a) => a.reference ?? '') : [];
}

/** A document the patient (or their representative) deposited: every author is one of them. */
export function depositedByPatient(resource: Resource): boolean {
  const list = authors(resource);
  return list.length > 0 && list.every((ref) => /(?:^|\/)(Patient|RelatedPerson)\/[^/]+$/.test(ref));
}

export function documentFacts(doc: DocumentReference): DocumentFacts {
  return {
    types: doc.type?.coding ?? [],
    classes: (doc.category ?? []).flatMap((c) => c.coding ?? []),
    authoredByPatient: depositedByPatient(doc),
  };
}

export function hasLabel(resource: Resource, label: { system: string; code: string }): boolean {
  return (resource.meta?.security ?? []).some((s) => s.system === label.system && s.code === label.code);
}

type PractitionerActor = Extract<Actor, { kind: 'practitioner' }>;

/** How a professional stands with a patient: the facts every rule on the patient's record reads. */
export interface CareAccess {
  /** The Patient exists (a record whose Patient was deleted is no one's to enter). */
  exists: boolean;
  /** Named in Patient.generalPractitioner. */
  gp: boolean;
  /** Named in an active permit in force. */
  permitted: boolean;
  /** ETREAT token, and the patient has not turned emergency access off. */
  emergency: boolean;
  /** The patient blocks the professional or their organisation. */
  blocked: boolean;
  /** The account is not open (notified, objected, closed...: Patient.active false, derived from it). */
  closed: boolean;
  /** The account's state (policy/account.ts), named in refusals the professional may see. */
  account: AccountState | undefined;
}

/** The rules of a state in force at `now`. */
export function rulesInForce(state: ConsentState | undefined, now: number): ConsentRule[] {
  return (state?.rules ?? []).filter((r) => inForce(r, now));
}

export function careAccess(actor: PractitionerActor, state: ConsentState, now: number): CareAccess {
  const rules = rulesInForce(state, now);
  return {
    exists: state.patient !== undefined,
    gp: (state.patient?.generalPractitioner ?? []).some((g) => refersTo(g.reference, 'Practitioner', actor.practitionerId)),
    permitted: rules.some((r) => r.kind === 'care-relationship' && r.practitionerId === actor.practitionerId),
    emergency: actor.purposeOfUse === 'ETREAT' && !rules.some((r) => r.kind === 'emergency-off'),
    blocked: rules.some((r) => r.kind === 'block' && ((r.target.type === 'Practitioner' && r.target.id === actor.practitionerId) || (r.target.type === 'Organization' && r.target.id === actor.organizationId))),
    // Patient.active is derived from the account (true only when open) and changed by nothing
    // else, so that restrict.ts's condition on `active` says the same as this.
    closed: state.patient?.active === false,
    account: state.patient ? accountOf(state.patient).state : undefined,
  };
}

/**
 * Whether the professional may enter the patient's record at all (a care relationship or
 * emergency access, no block, an open account): the condition of every read and write of its
 * content, except a document's author reading it. Undefined when they may.
 */
export function recordRefusal(care: CareAccess, author = false): Decision | undefined {
  if (!care.exists) return hidden('no such patient');
  if (!care.gp && !care.permitted && !author && !care.emergency) return hidden('no care relationship with this patient');
  if (care.blocked) return hidden('the patient has blocked this professional or their organisation');
  if (care.closed) return hidden(`the patient's account is ${care.account ?? 'closed'}`);
  return undefined;
}

/** A permit through emergency access only: flagged in the audit record. */
export function emergencyOnly(care: CareAccess, author = false): boolean {
  return care.emergency && !care.gp && !care.permitted && !author;
}

/** A mask in force names this resource. */
function masked(state: ConsentState, now: number, resource: Resource): boolean {
  return rulesInForce(state, now).some((r) => r.kind === 'mask' && r.resourceType === resource.resourceType && r.documentId === resource.id);
}

function decidePractitioner(input: DecideInput & { actor: PractitionerActor }): Decision {
  const { actor, resource, state, now } = input;
  const type = resource.resourceType;
  if (DIRECTORY.has(type)) return PERMIT;
  if (type === 'AuditEvent') return hidden('the access log is the patient\'s');
  if (type === 'Consent') {
    // A professional reads the permits that name them, nothing else of the patient's choices.
    const names = rulesOf(resource as Consent).some((r) => r.kind === 'care-relationship' && r.practitionerId === actor.practitionerId && inForce(r, now));
    return names ? PERMIT : hidden('a patient\'s choices are theirs');
  }
  if (type === 'Communication' && input.creator === NOTIFICATION_CREATOR) return hidden('the patient\'s notifications are theirs');
  // Every other Communication is a message (docs/messaging.md): a professional reads the ones
  // they send or receive, as an author reads their document (blocks and closed accounts apply).
  const message = type === 'Communication';
  if (message && !takesPart(actor, resource)) return hidden('a professional reads only the conversations they take part in');
  if (!state) return PERMIT; // not patient data
  const author = message || authors(resource).some((ref) => refersTo(ref, 'Practitioner', actor.practitionerId));
  const care = careAccess(actor, state, now);
  const refusal = recordRefusal(care, author);
  if (refusal) return refusal;
  if (type === 'DocumentReference' && !author) {
    // Retracted by its author (docs/mhd.md): gone from other professionals' view, bytes included.
    if ((resource as DocumentReference).status === 'entered-in-error') return hidden('the document was retracted by its author');
    if (!input.mayRead(actor.profession, actor.specialty, documentFacts(resource as DocumentReference))) return hidden('this document type is not open to the profession');
    if (masked(state, now, resource)) return hidden('the patient has masked this document');
  }
  // An entry of the medical profile (docs/profile.md): the matrix by its type, and the patient's masks.
  if (isProfileType(type)) {
    if (!input.mayRead(actor.profession, actor.specialty, { resourceType: type })) return hidden('this part of the medical profile is not open to the profession');
    if (masked(state, now, resource)) return hidden('the patient has masked this entry');
  }
  return { permit: true, emergency: emergencyOnly(care, author) };
}

/**
 * The archive service (organisation role `archive`, docs/accounts.md): it reads the records of
 * archived accounts, and nothing else: no open, closed or objected record, no access log, no
 * resource outside a patient's record but the directory. It writes nothing (write.ts).
 */
function decideArchive(input: DecideInput): Decision {
  const { resource, state } = input;
  if (DIRECTORY.has(resource.resourceType)) return PERMIT;
  if (resource.resourceType === 'AuditEvent') return hidden('the access log is the patient\'s');
  if (!state?.patient) return hidden('the archive service reads archived records only');
  return accountOf(state.patient).state === 'archived' ? PERMIT : hidden(`the patient's account is ${accountOf(state.patient).state}, not archived`);
}

/** Whether a representative still acts for this patient at `now`: a minor's, until the majority their account records. */
export function representable(patient: Patient, now: number): boolean {
  return representedAt(patient, now);
}

/** Why a representative no longer reaches a patient's record. */
export function representationEnded(patient: Patient): string {
  return `the patient came of age on ${accountOf(patient).majority ?? 'their eighteenth birthday'}: a representative's access ended then`;
}

/** Whether an AuditEvent is about one of these patients' records (an entity names one of them). */
export function aboutPatients(event: Resource, patientIds: string[]): boolean {
  const entities = (event as AuditEvent).entity ?? [];
  return entities.some((e) => patientIds.some((id) => refersTo(e.what?.reference, 'Patient', id)));
}

/**
 * May the actor read this resource? Writes are decided by write.ts (decideWrite), which starts
 * from this decision on what the write replaces.
 */
export function decide(input: DecideInput): Decision {
  const { actor, resource } = input;
  if (actor.kind !== 'organisation' && OWNED_TYPES.has(resource.resourceType)) return input.creator === creatorKey(actor) ? PERMIT : hidden(`a ${resource.resourceType} is its owner's`);
  switch (actor.kind) {
    case 'organisation':
      if (actor.role === 'archive') return decideArchive(input);
      return refused(`a ${actor.role} never reads record content`);
    case 'patient':
    case 'representative': {
      if (actor.kind === 'representative' && hasLabel(resource, CONFIDENTIAL_FROM_REPRESENTATIVES)) return hidden('kept confidential from representatives');
      // A minor's legal representatives act for them until their eighteenth birthday (docs/accounts.md).
      if (actor.kind === 'representative' && input.state?.patient && !representable(input.state.patient, input.now)) return hidden(representationEnded(input.state.patient));
      // The access log of their record: the records about it, never one of their own attempts
      // on another record (it would name what they cannot see).
      if (resource.resourceType === 'AuditEvent' && !aboutPatients(resource, actor.kind === 'patient' ? [actor.patientId] : actor.patientIds)) return hidden('this record is not about your record');
      // Their compartment (enforced with the scopes) holds their whole record, masked documents,
      // their Consents and their access log included.
      return PERMIT;
    }
    case 'system':
      // Vendor systems push data for patients; they read back only what they wrote.
      if (DIRECTORY.has(resource.resourceType)) return PERMIT;
      return input.creator === creatorKey(actor) ? PERMIT : hidden('a system reads back only what it wrote');
    case 'practitioner':
      return decidePractitioner({ ...input, actor });
  }
}
