// auth: who is calling. Token verification (jose), the Actor every later layer reads, SMART
// scopes, the backend-services token endpoint and the client registry. Knows nothing of
// consent rules (policy/) or storage engines.
//
// auth/actor: the Actor, one typed value made from a verified token's claims.

import type { Grant } from './scopes.js';

/** http://terminology.hl7.org/CodeSystem/v3-ActReason: ordinary care, or emergency ("bris de glace"). */
export type PurposeOfUse = 'TREAT' | 'ETREAT';

/** Organisations that authenticate but must never read content, whatever a consent says. */
export type OrganisationRole = 'mandatory-insurer' | 'complementary-insurer' | 'employer' | 'state' | 'archive';
/** `archive`: the service keeping closed accounts' records for ten years (docs/accounts.md): reads archived records, nothing else. */
export const ORGANISATION_ROLES: readonly OrganisationRole[] = ['mandatory-insurer', 'complementary-insurer', 'employer', 'state', 'archive'];

interface Common {
  /** Granted SMART scopes, parsed. */
  grants: Grant[];
  /** The OAuth client the token was issued to, when known. */
  clientId?: string;
  /** Token issuer and subject, for audit. */
  issuer: string;
  subject: string;
}

export type Actor =
  | (Common & { kind: 'patient'; patientId: string })
  | (Common & { kind: 'representative'; relatedPersonId: string; patientIds: string[] })
  | (Common & {
      kind: 'practitioner';
      practitionerId: string;
      /** RPPS number (system urn:oid:1.2.250.1.71.4.2.1). */
      rpps?: string;
      /** TRE_G15 ProfessionSante code: 10 physician, 21 pharmacist, 28 optician, 80 podiatrist... */
      profession: string;
      specialty?: string;
      organizationId?: string;
      purposeOfUse: PurposeOfUse;
      /** SMART launch context: the patient the practitioner's app was opened on. */
      patientId?: string;
    })
  | (Common & { kind: 'system'; clientId: string; organizationId?: string })
  | (Common & { kind: 'organisation'; role: OrganisationRole; organizationId: string });

export type ActorKind = Actor['kind'];
export const ACTOR_KINDS: readonly ActorKind[] = ['patient', 'representative', 'practitioner', 'system', 'organisation'];

/** The patients whose compartment `patient/` scopes reach for this actor. */
export function compartmentPatients(actor: Actor): string[] {
  switch (actor.kind) {
    case 'patient':
      return [actor.patientId];
    case 'representative':
      return actor.patientIds;
    case 'practitioner':
      return actor.patientId ? [actor.patientId] : [];
    case 'system':
    case 'organisation':
      return [];
  }
}

/** Ids and codes that may be logged (never names or contents). */
export function actorForLog(actor: Actor): Record<string, string> {
  const base = { actor: actor.kind, sub: actor.subject, ...(actor.clientId ? { client: actor.clientId } : {}) };
  switch (actor.kind) {
    case 'practitioner':
      return { ...base, profession: actor.profession, purpose: actor.purposeOfUse };
    case 'organisation':
      return { ...base, role: actor.role };
    default:
      return base;
  }
}
