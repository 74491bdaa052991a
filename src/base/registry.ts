// base/registry: the resource types Carnet serves. Adding a type is one line here;
// routes, validation, the CapabilityStatement and the store all read this list.

import type { ResourceType } from '@medplum/fhirtypes';

export const SERVED_TYPES = [
  'Patient',
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'RelatedPerson',
  'DocumentReference',
  'Binary',
  'List',
  'Consent',
  'AuditEvent',
  'Communication',
  'Appointment',
  'Observation',
  'AllergyIntolerance',
  'MedicationStatement',
  'Immunization',
  'Condition',
  'FamilyMemberHistory',
  'Subscription',
] as const satisfies readonly ResourceType[];

export type ServedType = (typeof SERVED_TYPES)[number];

const served: ReadonlySet<string> = new Set(SERVED_TYPES);

export function isServedType(name: string): name is ServedType {
  return served.has(name);
}
