// A patient record with every kind of consent choice, for the policy tests.
import type { Consent, Resource } from '@medplum/fhirtypes';

const LOINC = 'http://loinc.org';
const base = {
  resourceType: 'Consent' as const,
  status: 'active' as const,
  scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
  category: [{ coding: [{ system: LOINC, code: '59284-0' }] }],
  dateTime: '2026-01-01T00:00:00Z',
};
const PRCP = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }] };
const rule = (code: 'OPTIN' | 'OPTOUT') => ({ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code }] });

export function permit(id: string, patient: string, practitioner: string): Consent {
  return { ...base, id, patient: { reference: `Patient/${patient}` }, policyRule: rule('OPTIN'), provision: { type: 'permit', actor: [{ role: PRCP, reference: { reference: `Practitioner/${practitioner}` } }] } };
}
export function block(id: string, patient: string, target: string): Consent {
  return { ...base, id, patient: { reference: `Patient/${patient}` }, policyRule: rule('OPTOUT'), provision: { type: 'deny', actor: [{ role: PRCP, reference: { reference: target } }] } };
}
/** A mask of a document (its id) or of any maskable resource (Type/id: an entry of the medical profile). */
export function mask(id: string, patient: string, document: string): Consent {
  const reference = document.includes('/') ? document : `DocumentReference/${document}`;
  return { ...base, id, patient: { reference: `Patient/${patient}` }, policyRule: rule('OPTOUT'), provision: { type: 'deny', data: [{ meaning: 'instance', reference: { reference } }] } };
}
export function emergencyOff(id: string, patient: string): Consent {
  return { ...base, id, patient: { reference: `Patient/${patient}` }, policyRule: rule('OPTOUT'), provision: { type: 'deny', purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'ETREAT' }] } };
}
const IRCP = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] };
/** The patient's grant of an app of the catalogue (docs/consent.md, "An app's grant"). */
export function appGrant(id: string, patient: string, clientId: string): Consent {
  return {
    ...base,
    id,
    patient: { reference: `Patient/${patient}` },
    policyRule: rule('OPTIN'),
    provision: { type: 'permit', actor: [{ role: IRCP, reference: { type: 'Device', identifier: { system: 'urn:carnet:client', value: clientId }, display: 'An app' } }] },
  };
}

export function doc(id: string, patient: string, loinc: string, author: string, extra: Partial<Record<string, unknown>> = {}): Resource {
  return {
    resourceType: 'DocumentReference',
    id,
    status: 'current',
    type: { coding: [{ system: LOINC, code: loinc }] },
    subject: { reference: `Patient/${patient}` },
    author: [{ reference: author }],
    date: '2026-02-01T10:00:00Z',
    content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${id}` } }],
    ...extra,
  } as Resource;
}

export const DISCHARGE = '11490-0';
export const PRESCRIPTION = '57833-6';
export const CONSULT = '11488-4';
export const LAB = '11502-2';
