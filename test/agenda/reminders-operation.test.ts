// GET /fhir/Patient/[id]/$reminders through the real server (a scenario suite: file store): the
// reminders are proposed Appointments, not stored, computed from what the caller may see.
import t from 'tap';
import type { Appointment, Bundle, Resource } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { seed } from '../seed.js';
import { schemaIssues } from '../../src/fhir/validate.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
const as = authorizationFor(server);

const CONFIDENTIAL = { system: 'urn:carnet:security', code: 'confidential-from-representatives' };
// p1: a woman born 1960-05-20, GP dr-gp; a DTP recall at 65, a mammogram kept from her
// representatives, and a draft (not yet final) colorectal test. p2: another patient.
await seed(server.store, [
  { resourceType: 'Patient', id: 'p1', gender: 'female', birthDate: '1960-05-20', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] },
  { resourceType: 'Patient', id: 'p2', gender: 'male', birthDate: '1990-06-15' },
  { resourceType: 'Immunization', id: 'dtp', status: 'completed', vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '115' }] }, patient: { reference: 'Patient/p1' }, occurrenceDateTime: '2025-06-01' },
  { resourceType: 'Observation', id: 'mammo', meta: { security: [CONFIDENTIAL] }, status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '24606-6' }] }, subject: { reference: 'Patient/p1' }, effectiveDateTime: '2025-09-01' },
  { resourceType: 'Observation', id: 'fit', status: 'preliminary', code: { coding: [{ system: 'http://loinc.org', code: '29771-3' }] }, subject: { reference: 'Patient/p1' }, effectiveDateTime: '2026-01-10' },
] as Resource[]);

const patient: TestActor = { kind: 'patient', patient: 'p1' };
const mother: TestActor = { kind: 'representative', relatedPerson: 'rp1', patients: ['p1'] };
const gp: TestActor = { kind: 'practitioner', practitioner: 'dr-gp', profession: '10' };
const stranger: TestActor = { kind: 'practitioner', practitioner: 'dr-x', profession: '10' };

async function reminders(actor: TestActor, url = 'Patient/p1/$reminders?date=2026-12-07') {
  const res = await fhir(app, 'GET', url, undefined, await as(actor));
  return { status: res.statusCode, bundle: res.statusCode === 200 ? json<Bundle<Appointment>>(res) : undefined, body: res.body };
}
const due = (bundle: Bundle<Appointment> | undefined) => Object.fromEntries((bundle?.entry ?? []).map((e) => [e.resource!.identifier![0].value, e.resource!.requestedPeriod![0].start]));

t.test('the patient gets her reminders as proposed Appointments, computed from her record', async (t) => {
  const { status, bundle } = await reminders(patient);
  t.equal(status, 200);
  t.equal(bundle?.type, 'collection');
  t.same(schemaIssues(bundle), [], 'an R4-valid Bundle');
  // Hand-computed for 2026-12-07: influenza this season; mammogram 2025-09-01 + 2 years; no final
  // colorectal test (the draft does not count): due since 50; DTP at 65 done: next at 75.
  t.same(due(bundle), { influenza: '2026-10-15', 'breast-screening': '2027-09-01', 'colorectal-screening': '2010-05-20', 'dtp-recall': '2035-05-20' });
  for (const entry of bundle?.entry ?? []) {
    t.match(entry.resource, { resourceType: 'Appointment', status: 'proposed', participant: [{ actor: { reference: 'Patient/p1' } }] });
    t.notOk(entry.resource?.id, 'not stored: no id');
  }
  t.equal(json<Bundle>(await fhir(app, 'GET', 'Appointment?patient=Patient/p1', undefined, await as(patient))).total, 0, 'nothing stored');
  const later = await reminders(patient, 'Patient/p1/$reminders?date=2027-05-01');
  t.equal(due(later.bundle).influenza, '2027-10-15', 'the date parameter moves the day');
});

t.test('a representative does not see the mammogram kept from them, and gets the reminder it would have deferred', async (t) => {
  const { status, bundle } = await reminders(mother);
  t.equal(status, 200);
  t.equal(due(bundle)['breast-screening'], '2010-05-20');
});

t.test('a recorded dose changes the next reminder', async (t) => {
  const flu = { resourceType: 'Immunization', status: 'completed', vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '158' }] }, patient: { reference: 'Patient/p1' }, occurrenceDateTime: '2026-10-20' };
  t.equal((await fhir(app, 'POST', 'Immunization', flu, await as(patient))).statusCode, 201);
  t.equal(due((await reminders(patient)).bundle).influenza, '2027-10-15');
});

t.test('the GP reads them; whoever may not read the Patient is answered as for a read of it', async (t) => {
  t.equal((await reminders(gp)).status, 200);
  for (const actor of [stranger, { kind: 'patient', patient: 'p2' } as TestActor, { kind: 'organisation', role: 'mandatory-insurer', organization: 'cpam' } as TestActor]) {
    const read = await fhir(app, 'GET', 'Patient/p1', undefined, await as(actor));
    const { status } = await reminders(actor);
    t.equal(status, read.statusCode, `${actor.kind}: ${status}`);
    t.ok(status === 403 || status === 404);
  }
  t.equal((await reminders(patient, 'Patient/nobody/$reminders')).status, 404);
});

t.test('bad input is a 400', async (t) => {
  t.equal((await reminders(patient, 'Patient/p1/$reminders?date=2026-13-45')).status, 400);
  t.equal((await reminders(patient, 'Patient/p1/$reminders?when=2026-01-01')).status, 400);
});
