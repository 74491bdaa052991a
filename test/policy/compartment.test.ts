// policy/compartment: patientOf walks a plain element path (`DocumentReference.subject`) instead of
// evaluating FHIRPath on every read; it must find the same patient as FHIRPath does.
import t from 'tap';
import type { Resource } from '@medplum/fhirtypes';
import { patientOf, patientParamOf } from '../../src/policy/compartment.js';
import { findParam } from '../../src/search/params.js';
import { parseReference } from '../../src/search/extract.js';
import { SERVED_TYPES } from '../../src/base/registry.js';
import { examplesOf } from '../helpers.js';

/** The patient as FHIRPath finds it: the first Patient reference of the patient parameter. */
function byFhirPath(resource: Resource): string | undefined {
  if (resource.resourceType === 'Patient') return resource.id;
  const code = patientParamOf(resource.resourceType);
  for (const element of (code ? findParam(resource.resourceType, code)?.evaluate?.(resource) : undefined) ?? []) {
    const reference = (element as { reference?: unknown }).reference;
    const parsed = typeof reference === 'string' ? parseReference(reference) : null;
    if (parsed && parsed[0] === 'Patient' && parsed[1] !== null) return parsed[1];
  }
  return undefined;
}

t.test('patientOf finds the patient FHIRPath finds, for every served type\'s examples', async (t) => {
  let withPatient = 0;
  for (const type of SERVED_TYPES) {
    if (type === 'RelatedPerson') continue; // no official example kept (test/fixtures/data/PROVENANCE.md)
    for (const { file, resource } of examplesOf(type)) {
      const expected = byFhirPath(structuredClone(resource));
      if (expected !== undefined) withPatient++;
      t.equal(patientOf(structuredClone(resource)), expected, `${type} ${file}`);
    }
  }
  t.ok(withPatient > 10, `${withPatient} examples belong to a patient`);
});

t.test('patientOf reads references in every shape the walk meets', async (t) => {
  const doc = (subject: unknown) => ({ resourceType: 'DocumentReference', status: 'current', content: [], subject }) as unknown as Resource;
  const cases: [string, Resource][] = [
    ['relative', doc({ reference: 'Patient/p1' })],
    ['absolute', doc({ reference: 'http://elsewhere/fhir/Patient/p1' })],
    ['versioned', doc({ reference: 'Patient/p1/_history/2' })],
    ['a Group', doc({ reference: 'Group/g1' })],
    ['no reference', doc({ display: 'someone' })],
    ['no subject', doc(undefined)],
    ['null subject', doc(null)],
  ];
  const withNull = { resourceType: 'Appointment', status: 'booked', participant: [null, { actor: { reference: 'Patient/p3' }, status: 'accepted' }] } as unknown as Resource;
  t.equal(patientOf(withNull), 'p3', 'a null in an array on the path is skipped');
  for (const [why, resource] of cases) t.equal(patientOf(resource), byFhirPath(structuredClone(resource)), why);
  // Appointment: the patient among several participants (Appointment.participant.actor).
  const appointment = { resourceType: 'Appointment', status: 'booked', participant: [{ actor: { reference: 'Practitioner/x' }, status: 'accepted' }, { actor: { reference: 'Patient/p2' }, status: 'accepted' }] } as Resource;
  t.equal(patientOf(appointment), 'p2');
  t.equal(patientOf(structuredClone(appointment)), byFhirPath(structuredClone(appointment)));
});
