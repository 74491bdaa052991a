// policy/consents: a patient's choices, read from ordinary FHIR Consent resources. Four shapes
// are understood (docs/consent.md); any other active Consent is kept but grants nothing.

import type { Consent, Patient, Reference } from '@medplum/fhirtypes';

export const PURPOSE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';

/** One understood choice of the patient. */
export type ConsentRule =
  | { kind: 'care-relationship'; consentId: string; practitionerId: string }
  | { kind: 'block'; consentId: string; target: { type: 'Practitioner' | 'Organization'; id: string } }
  | { kind: 'mask'; consentId: string; documentId: string }
  | { kind: 'emergency-off'; consentId: string };

function idOf(reference: Reference | undefined, type: string): string | undefined {
  const match = reference?.reference ? new RegExp(`(?:^|/)${type}/([A-Za-z0-9\\-.]{1,64})$`).exec(reference.reference) : null;
  return match?.[1];
}

/** The rule an active Consent states, or undefined when it is not one of the four shapes. */
export function ruleOf(consent: Consent): ConsentRule | undefined {
  if (consent.status !== 'active' || !consent.id) return undefined;
  const provision = consent.provision;
  if (!provision) return undefined;
  const consentId = consent.id;
  const actors = provision.actor ?? [];
  if (provision.type === 'permit') {
    const practitionerId = actors.map((a) => idOf(a.reference, 'Practitioner')).find(Boolean);
    return practitionerId ? { kind: 'care-relationship', consentId, practitionerId } : undefined;
  }
  if (provision.type !== 'deny') return undefined;
  const documentId = (provision.data ?? []).map((d) => idOf(d.reference, 'DocumentReference')).find(Boolean);
  if (documentId) return { kind: 'mask', consentId, documentId };
  if ((provision.purpose ?? []).some((p) => p.system === PURPOSE_SYSTEM && p.code === 'ETREAT')) return { kind: 'emergency-off', consentId };
  for (const actor of actors) {
    const practitioner = idOf(actor.reference, 'Practitioner');
    if (practitioner) return { kind: 'block', consentId, target: { type: 'Practitioner', id: practitioner } };
    const organization = idOf(actor.reference, 'Organization');
    if (organization) return { kind: 'block', consentId, target: { type: 'Organization', id: organization } };
  }
  return undefined;
}

/** What the policy knows of one patient: the Patient resource and their active choices. */
export interface ConsentState {
  patientId: string;
  patient?: Patient;
  rules: ConsentRule[];
  /** The active Consents the rules were read from (restrict.ts evaluates its conditions on them). */
  consents: Consent[];
  /** False when the patient has more active Consents than were loaded. */
  complete: boolean;
}

export function stateOf(patientId: string, patient: Patient | undefined, consents: Consent[], complete = true): ConsentState {
  return { patientId, ...(patient ? { patient } : {}), rules: consents.map(ruleOf).filter((r): r is ConsentRule => r !== undefined), consents, complete };
}
