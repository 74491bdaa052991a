// audit/notify: patient notifications, as FHIR Communications addressed to the patient (their
// secure messaging inbox). Written in the same transaction as what they report.

import type { Communication, Resource } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import type { Actor } from '../auth/actor.js';
import { indexEntries } from '../search/extract.js';
import type { WriteOp } from '../store/port.js';

function senderOf(actor: Actor): string | undefined {
  switch (actor.kind) {
    case 'practitioner':
      return `Practitioner/${actor.practitionerId}`;
    case 'patient':
      return `Patient/${actor.patientId}`;
    case 'representative':
      return `RelatedPerson/${actor.relatedPersonId}`;
    default:
      return undefined;
  }
}

const MESSAGES = {
  'own-permit': (ref: string) => `A professional recorded that you agreed to their access to your record (${ref}). You can withdraw it at any time.`,
  write: (ref: string) => `A professional wrote into your record (${ref}).`,
};

/** A notification to `patientId` that `actor` wrote `about` (ids only, no clinical content). */
export function notification(patientId: string, about: Resource, actor: Actor, at: string, what: keyof typeof MESSAGES = 'own-permit'): WriteOp {
  const sender = senderOf(actor);
  const resource: Communication & { id: string } = {
    resourceType: 'Communication',
    id: randomUUID(),
    status: 'completed',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'notification' }] }],
    subject: { reference: `Patient/${patientId}` },
    recipient: [{ reference: `Patient/${patientId}` }],
    ...(sender ? { sender: { reference: sender } } : {}),
    about: [{ reference: `${about.resourceType}/${about.id}` }],
    sent: at,
    payload: [{ contentString: MESSAGES[what](`${about.resourceType}/${about.id}`) }],
  };
  return { kind: 'create', resource, index: indexEntries(resource), creator: 'carnet:notification' };
}
