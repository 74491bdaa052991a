// A patient with a full medical profile (docs/profile.md), for the summary tests: the directory and
// the Patient are loaded by the feed (a vendor system), the profile is written through HTTP by the
// patient and by their general practitioner, and the patient's choices are Consents they post.
import type { Resource } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor, type TestServer } from '../helpers.js';
import { seed } from '../seed.js';
import { block, mask, permit } from '../policy/fixture.js';

export const INS = 'urn:oid:1.2.250.1.213.1.4.8';
export const LOINC = 'http://loinc.org';
export const PATIENT: TestActor = { kind: 'patient', patient: 'p1' };
/** The general practitioner (profession 10, reads everything the matrix has). */
export const GP: TestActor = { kind: 'practitioner', practitioner: 'dr-gp', profession: '10' };
/** A podiatrist with the patient's permit: the matrix gives profession 80 the allergies of the profile, not its treatments or problems. */
export const PODIATRIST: TestActor = { kind: 'practitioner', practitioner: 'dr-podo', profession: '80' };
/** A physician with a permit whom the patient then blocked. */
export const BLOCKED: TestActor = { kind: 'practitioner', practitioner: 'dr-blocked', profession: '10' };
export const INSURER: TestActor = { kind: 'organisation', role: 'mandatory-insurer', organization: 'cpam' };

const subject = { reference: 'Patient/p1' };

/** The profile: what the patient writes, then what the general practitioner writes. */
export const BY_PATIENT: Resource[] = [
  { resourceType: 'AllergyIntolerance', patient: subject, code: { text: 'Pénicilline' }, criticality: 'high', reaction: [{ manifestation: [{ text: 'Éruption cutanée' }] }] } as Resource,
  { resourceType: 'AllergyIntolerance', patient: subject, code: { text: 'Arachide (masquée)' }, criticality: 'low' } as Resource,
  { resourceType: 'FamilyMemberHistory', status: 'completed', patient: subject, relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'MTH' }] }, condition: [{ code: { text: 'Diabète de type 2' } }] } as Resource,
  {
    resourceType: 'DocumentReference',
    status: 'current',
    type: { coding: [{ system: LOINC, code: '42348-3', display: 'Advance directives' }] },
    subject,
    author: [subject],
    date: '2026-03-01T10:00:00Z',
    description: 'Mes directives anticipées : pas d’acharnement thérapeutique',
    content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('Directives anticipées').toString('base64') } }],
  } as Resource,
];

export const BY_GP: Resource[] = [
  { resourceType: 'MedicationStatement', status: 'active', subject, medicationCodeableConcept: { text: 'Lévothyroxine 75 µg' }, dosage: [{ text: '1 comprimé le matin' }], effectiveDateTime: '2025-01-10' } as Resource,
  { resourceType: 'Condition', subject, clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] }, code: { text: 'Hypothyroïdie' }, onsetDateTime: '2024-11-02' } as Resource,
  { resourceType: 'Condition', subject, clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }] }, code: { text: 'Appendicite' }, onsetDateTime: '1998-05-20' } as Resource,
  { resourceType: 'Immunization', status: 'completed', patient: subject, vaccineCode: { text: 'Vaccin contre la grippe saisonnière' }, occurrenceDateTime: '2026-10-15' } as Resource,
  vital('29463-7', 'Poids', '2026-01-05T09:00:00Z', { value: 70, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' }),
  vital('29463-7', 'Poids', '2026-11-20T09:00:00Z', { value: 72.5, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' }),
  vital('8302-2', 'Taille', '2026-11-20T09:00:00Z', { value: 172, unit: 'cm', system: 'http://unitsofmeasure.org', code: 'cm' }),
  {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: LOINC, code: '85354-9' }], text: 'Pression artérielle' },
    subject,
    effectiveDateTime: '2026-11-20T09:05:00Z',
    component: [
      { code: { coding: [{ system: LOINC, code: '8480-6' }] }, valueQuantity: { value: 125, unit: 'mm[Hg]', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
      { code: { coding: [{ system: LOINC, code: '8462-4' }] }, valueQuantity: { value: 80, unit: 'mm[Hg]', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
    ],
  } as Resource,
];

function vital(code: string, text: string, when: string, valueQuantity: Record<string, unknown>): Resource {
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: LOINC, code }], text },
    subject,
    effectiveDateTime: when,
    valueQuantity,
  } as Resource;
}

export interface ProfileWorld {
  server: TestServer;
  as: (actor: TestActor, scope?: string) => Promise<Record<string, string>>;
  /** Type/id of everything written, in the order of BY_PATIENT then BY_GP. */
  written: string[];
  /** Type/id of the allergy the patient masked. */
  masked: string;
}

async function post(server: TestServer, headers: Record<string, string>, resource: Resource): Promise<string> {
  const res = await fhir(server.app, 'POST', resource.resourceType, resource, headers);
  if (res.statusCode !== 201) throw new Error(`POST ${resource.resourceType}: ${res.statusCode} ${res.body}`);
  return `${resource.resourceType}/${json(res).id as string}`;
}

/** The world every summary test reads: p1 with a full profile, p2 with none, and the patient's choices. */
export async function profileWorld(): Promise<ProfileWorld> {
  const server = await testServer();
  const as = authorizationFor(server);
  await seed(server.store, [
    { resourceType: 'Practitioner', id: 'dr-gp', name: [{ prefix: ['Dr'], given: ['Hélène'], family: 'Garçon' }] } as Resource,
    { resourceType: 'Practitioner', id: 'dr-podo', name: [{ given: ['Jérôme'], family: 'Pied' }] } as Resource,
    { resourceType: 'Practitioner', id: 'dr-blocked', name: [{ family: 'Bloqué' }] } as Resource,
    {
      resourceType: 'Patient',
      id: 'p1',
      identifier: [{ system: INS, value: '269054958815780' }],
      name: [{ given: ['Françoise', 'Zoé'], family: 'Lefèvre-Cœur' }],
      gender: 'female',
      birthDate: '1969-05-18',
      generalPractitioner: [{ reference: 'Practitioner/dr-gp' }],
    } as Resource,
    { resourceType: 'Patient', id: 'p2', name: [{ given: ['Paul'], family: 'Vide' }], generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] } as Resource,
  ]);
  const patient = await as(PATIENT);
  const gp = await as(GP);
  const written: string[] = [];
  for (const r of BY_PATIENT) written.push(await post(server, patient, r));
  for (const r of BY_GP) written.push(await post(server, gp, r));
  const masked = written[1];
  await post(server, patient, mask('m', 'p1', masked));
  await post(server, patient, permit('pp', 'p1', 'dr-podo'));
  await post(server, patient, permit('pb', 'p1', 'dr-blocked'));
  await post(server, patient, block('b', 'p1', 'Practitioner/dr-blocked'));
  return { server, as, written, masked };
}
