// auth/dev-tokens: development tokens, minted by `npm run token` with the development issuer's key
// (CARNET_DATA_DIR/keys/development-issuer.jwk.json) and Carnet's claim names. The server trusts
// this issuer unless NODE_ENV=production. No registered client is needed.

import type { JWTPayload } from 'jose';
import type { OrganisationRole, PurposeOfUse } from './actor.js';
import { CARNET_CLAIMS, mintToken } from './claims.js';
import { DEVELOPMENT_ISSUER } from './context.js';
import type { SigningKey } from './keys.js';

/** Who a development token speaks for: the fields of an Actor, before verification. */
export type DevelopmentActor =
  | { kind: 'patient'; patientId: string; /** The app of the catalogue the token is issued to. */ clientId?: string }
  | { kind: 'representative'; relatedPersonId: string; patientIds: string[] }
  | {
      kind: 'practitioner';
      practitionerId: string;
      /** TRE_G15 ProfessionSante code (10 physician, 21 pharmacist...). */
      profession: string;
      specialty?: string;
      purposeOfUse?: PurposeOfUse;
      rpps?: string;
      organizationId?: string;
      /** SMART launch context: the patient the practitioner's app is opened on. */
      patientId?: string;
    }
  | { kind: 'system'; clientId: string; organizationId?: string }
  | { kind: 'organisation'; organizationId: string; role?: OrganisationRole };

/**
 * The scopes a development token carries when none is asked: what fits the actor. A patient
 * reads and writes their own record; a representative reads it; a practitioner and a system
 * may do everything their scopes' context allows (the consent policy decides the rest);
 * organisations get read scopes, which the policy refuses anyway.
 */
export const DEFAULT_SCOPES: Record<DevelopmentActor['kind'], string> = {
  patient: 'patient/*.cruds',
  representative: 'patient/*.rs',
  practitioner: 'user/*.cruds',
  system: 'system/*.cruds',
  organisation: 'user/*.rs',
};

/** The claims (Carnet's names) of a development token for `actor`. */
export function developmentClaims(actor: DevelopmentActor, scope: string): { subject: string; claims: JWTPayload } {
  const c = CARNET_CLAIMS;
  const base: JWTPayload = { [c.kind]: actor.kind, [c.scope]: scope };
  switch (actor.kind) {
    case 'patient':
      return {
        subject: `Patient/${actor.patientId}`,
        claims: { ...base, [c.fhirUser]: `Patient/${actor.patientId}`, [c.patient]: actor.patientId, ...(actor.clientId ? { [c.clientId]: actor.clientId } : {}) },
      };
    case 'representative':
      return {
        subject: `RelatedPerson/${actor.relatedPersonId}`,
        claims: { ...base, [c.fhirUser]: `RelatedPerson/${actor.relatedPersonId}`, [c.patients]: [...actor.patientIds] },
      };
    case 'practitioner':
      return {
        subject: `Practitioner/${actor.practitionerId}`,
        claims: {
          ...base,
          [c.fhirUser]: `Practitioner/${actor.practitionerId}`,
          [c.profession]: actor.profession,
          [c.purposeOfUse]: actor.purposeOfUse ?? 'TREAT',
          ...(actor.specialty ? { [c.specialty]: actor.specialty } : {}),
          ...(actor.rpps ? { [c.rpps]: actor.rpps } : {}),
          ...(actor.organizationId ? { [c.organization]: actor.organizationId } : {}),
          ...(actor.patientId ? { [c.patient]: actor.patientId } : {}),
        },
      };
    case 'system':
      return {
        subject: actor.clientId,
        claims: { ...base, [c.clientId]: actor.clientId, ...(actor.organizationId ? { [c.organization]: actor.organizationId } : {}) },
      };
    case 'organisation':
      return {
        subject: `Organization/${actor.organizationId}`,
        claims: { ...base, [c.organization]: actor.organizationId, [c.role]: actor.role ?? 'mandatory-insurer' },
      };
  }
}

/** A signed development token for `actor`, with the default scopes of its kind unless `scope` is given. */
export async function developmentToken(key: SigningKey, audience: string, actor: DevelopmentActor, scope?: string, ttlSeconds = 3600): Promise<string> {
  const { subject, claims } = developmentClaims(actor, scope ?? DEFAULT_SCOPES[actor.kind]);
  return mintToken(key, { issuer: DEVELOPMENT_ISSUER, audience, subject, ttl: ttlSeconds, claims });
}
