// policy/decide: may this actor do this to this one resource? Pure: everything it needs comes as
// arguments (the patient's consent state is loaded by the caller). restrict.ts says the same
// thing as query conditions; the tests hold the two to agreement.

import type { Consent, DocumentReference, Resource } from '@medplum/fhirtypes';
import type { Actor } from '../auth/actor.js';
import { ruleOf, type ConsentState } from './consents.js';
import { DIRECTORY } from './compartment.js';
import type { DocumentFacts } from './matrix.js';

export type Action = 'read' | 'create' | 'update' | 'delete';

export type Decision =
  | {
      permit: true;
      /** Granted through emergency access only: flagged in the audit record. */
      emergency: boolean;
      /** Obligation: tell the patient (a professional recorded a consent on their behalf). */
      notifyPatient?: string;
    }
  | { permit: false; /** 404 when the reason must stay hidden, 403 when it is visible */ status: 403 | 404; reason: string };

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
  /** The access matrix: may this profession (and specialty) read a document with these facts? */
  mayRead: (profession: string, specialty: string | undefined, facts: DocumentFacts) => boolean;
}

const PERMIT: Decision = { permit: true, emergency: false };
const hidden = (reason: string): Decision => ({ permit: false, status: 404, reason });
const refused = (reason: string): Decision => ({ permit: false, status: 403, reason });

/** The creator key of an actor, as stored with what it creates. */
export function creatorKey(actor: Actor): string {
  switch (actor.kind) {
    case 'patient':
      return `patient:${actor.patientId}`;
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

/** Whether a literal reference (relative or absolute) names Type/id. Plain string tests: this runs for every read. */
function refersTo(reference: string | undefined, type: string, id: string | undefined): boolean {
  if (id === undefined || reference === undefined) return false;
  const target = `${type}/${id}`;
  return reference === target || (reference.endsWith(target) && reference[reference.length - target.length - 1] === '/');
}

/** The authors of a DocumentReference, as Type/id references. */
function authors(resource: Resource): string[] {
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

function hasLabel(resource: Resource, label: { system: string; code: string }): boolean {
  return (resource.meta?.security ?? []).some((s) => s.system === label.system && s.code === label.code);
}

function decidePractitioner(input: DecideInput & { actor: Extract<Actor, { kind: 'practitioner' }> }): Decision {
  const { actor, resource, state, action } = input;
  const type = resource.resourceType;
  if (DIRECTORY.has(type)) return PERMIT;
  if (type === 'AuditEvent') return hidden('the access log is the patient\'s');
  const rules = state?.rules ?? [];
  if (type === 'Consent') {
    // A professional may record that the patient agreed to their care (a permit naming only
    // them): the patient is then notified. They read that permit, nothing else of the choices.
    const rule = ruleOf(resource as Consent);
    const own = rule?.kind === 'care-relationship' && rule.practitionerId === actor.practitionerId && ((resource as Consent).provision?.actor ?? []).length === 1;
    if (action === 'create') return own && state ? { permit: true, emergency: false, notifyPatient: state.patientId } : refused('a professional records only a consent naming themselves');
    const names = rules.some((r) => r.kind === 'care-relationship' && r.consentId === resource.id && r.practitionerId === actor.practitionerId);
    return names && action === 'read' ? PERMIT : hidden('a patient\'s choices are theirs');
  }
  if (!state) return PERMIT; // not patient data (e.g. a Binary, until documents own their bytes)
  const author = authors(resource).some((ref) => refersTo(ref, 'Practitioner', actor.practitionerId));
  const gp = (state.patient?.generalPractitioner ?? []).some((g) => refersTo(g.reference, 'Practitioner', actor.practitionerId));
  const permitted = rules.some((r) => r.kind === 'care-relationship' && r.practitionerId === actor.practitionerId);
  const emergencyOn = !rules.some((r) => r.kind === 'emergency-off');
  const emergency = actor.purposeOfUse === 'ETREAT' && emergencyOn;
  if (!gp && !permitted && !author && !emergency) return hidden('no care relationship with this patient');
  const blocked = rules.some((r) => r.kind === 'block' && ((r.target.type === 'Practitioner' && r.target.id === actor.practitionerId) || (r.target.type === 'Organization' && r.target.id === actor.organizationId)));
  if (blocked) return hidden('the patient has blocked this professional or their organisation');
  if (state.patient?.active === false) return hidden('the patient\'s account is closed');
  if (type === 'DocumentReference' && !author) {
    const doc = resource as DocumentReference;
    if (action === 'read' && !input.mayRead(actor.profession, actor.specialty, documentFacts(doc))) return hidden('this document type is not open to the profession');
    if (rules.some((r) => r.kind === 'mask' && r.documentId === resource.id)) return hidden('the patient has masked this document');
    // A document is its author's: only they correct it (entered-in-error) or replace it.
    if (action === 'update' || action === 'delete') return refused('only the author of a document changes it');
  }
  return { permit: true, emergency: emergency && !gp && !permitted && !author };
}

export function decide(input: DecideInput): Decision {
  const { actor, resource, action } = input;
  if (resource.resourceType === 'AuditEvent' && (action === 'update' || action === 'delete')) return refused('AuditEvents are immutable');
  switch (actor.kind) {
    case 'organisation':
      return refused(`a ${actor.role} never reads record content`);
    case 'patient':
    case 'representative':
      if (actor.kind === 'representative' && hasLabel(resource, CONFIDENTIAL_FROM_REPRESENTATIVES)) return hidden('kept confidential from representatives');
      // They read the directory of professionals (who accessed their record); they do not change it.
      if (DIRECTORY.has(resource.resourceType) && action !== 'read') return refused('the directory of professionals is not a patient\'s to change');
      if (action === 'delete' && resource.resourceType === 'DocumentReference' && !depositedByPatient(resource)) {
        return refused('a professional\'s document may be masked by the patient, not deleted');
      }
      // Their compartment (enforced with the scopes) holds their whole record, masked documents,
      // their Consents and their access log included.
      return PERMIT;
    case 'system':
      // Vendor systems push data for patients; they read back (and change) only what they wrote.
      if (action === 'create') return PERMIT;
      if (DIRECTORY.has(resource.resourceType) && action === 'read') return PERMIT;
      return input.creator === creatorKey(actor) ? PERMIT : hidden('a system reads back only what it wrote');
    case 'practitioner':
      return decidePractitioner({ ...input, actor });
  }
}
