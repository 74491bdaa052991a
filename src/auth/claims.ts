// auth/claims: how an Actor is written into and read from a token. Carnet's own tokens (the
// development issuer, backend-services access tokens) use these claim names; a trusted external
// issuer may name them differently (its `claims` mapping, see docs/auth.md).

import { SignJWT, type JWTPayload } from 'jose';
import { randomUUID } from 'node:crypto';
import type { SigningKey } from './keys.js';

/** Carnet's claim names for each Actor field. */
export interface ClaimNames {
  /** The actor kind: patient, representative, practitioner, system, organisation. */
  kind: string;
  /** SMART fhirUser: Patient/..., Practitioner/..., RelatedPerson/... */
  fhirUser: string;
  /** SMART launch context patient id (a practitioner's app), or the patient a patient token is. */
  patient: string;
  /** The patient ids a representative acts for (array). */
  patients: string;
  rpps: string;
  profession: string;
  specialty: string;
  organization: string;
  purposeOfUse: string;
  role: string;
  clientId: string;
  scope: string;
}

export const CARNET_CLAIMS: ClaimNames = {
  kind: 'carnet_actor',
  fhirUser: 'fhirUser',
  patient: 'patient',
  patients: 'patients',
  rpps: 'rpps',
  profession: 'profession',
  specialty: 'specialty',
  organization: 'organization',
  purposeOfUse: 'purpose_of_use',
  role: 'org_role',
  clientId: 'client_id',
  scope: 'scope',
};

export interface MintOptions {
  issuer: string;
  audience: string;
  subject: string;
  /** Lifetime in seconds. */
  ttl: number;
  claims: JWTPayload;
}

/** Signs a token with one of Carnet's keys. */
export async function mintToken(key: SigningKey, options: MintOptions): Promise<string> {
  return new SignJWT(options.claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setSubject(options.subject)
    .setIssuedAt()
    .setNotBefore('0s')
    .setExpirationTime(`${options.ttl}s`)
    .setJti(randomUUID())
    .sign(key.privateKey);
}
