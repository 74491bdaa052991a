// Appointments through the real server (file store), under the rules docs/consent.md gives them
// today (docs/agenda.md): a catalogue app books, the patient side and the GP see it, the app
// cancels and reschedules, and nobody else sees or changes it.
import t from 'tap';
import type { Appointment, Bundle, Resource } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { seed } from '../seed.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
const as = authorizationFor(server);

await seed(server.store, [{ resourceType: 'Patient', id: 'p1', birthDate: '1980-01-01', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] }] as Resource[]);

const booking: TestActor = { kind: 'system', client: 'booking-app' };
const patient: TestActor = { kind: 'patient', patient: 'p1' };
const mother: TestActor = { kind: 'representative', relatedPerson: 'rp1', patients: ['p1'] };
const gp: TestActor = { kind: 'practitioner', practitioner: 'dr-gp', profession: '10' };
const stranger: TestActor = { kind: 'practitioner', practitioner: 'dr-x', profession: '10' };
const otherApp: TestActor = { kind: 'system', client: 'other-app' };

const appointment: Appointment = {
  resourceType: 'Appointment',
  status: 'booked',
  start: '2027-01-12T09:00:00Z',
  end: '2027-01-12T09:20:00Z',
  participant: [
    { actor: { reference: 'Patient/p1' }, status: 'accepted' },
    { actor: { reference: 'Practitioner/dr-gp' }, status: 'accepted' },
  ],
};

let id = '';

t.test('a catalogue app books an appointment in the record', async (t) => {
  const res = await fhir(app, 'POST', 'Appointment', appointment, await as(booking));
  t.equal(res.statusCode, 201, res.body);
  id = json<Appointment>(res).id!;
});

t.test('the patient side, the GP and the app that booked it see it; nobody else does', async (t) => {
  for (const actor of [patient, mother, gp, booking]) {
    const bundle = json<Bundle<Appointment>>(await fhir(app, 'GET', 'Appointment?patient=Patient/p1', undefined, await as(actor)));
    t.same(bundle.entry?.map((e) => e.resource?.id), [id], `${actor.kind} lists it`);
  }
  for (const actor of [stranger, otherApp]) {
    t.equal((await fhir(app, 'GET', `Appointment/${id}`, undefined, await as(actor))).statusCode, 404, `${actor.kind}: as if it did not exist`);
    t.equal(json<Bundle>(await fhir(app, 'GET', 'Appointment?patient=Patient/p1', undefined, await as(actor))).total ?? 0, 0);
  }
});

t.test('the app reschedules it (PATCH start/end) and cancels it with a reason', async (t) => {
  const moved = await fhir(app, 'PATCH', `Appointment/${id}`, [
    { op: 'replace', path: '/start', value: '2027-01-19T09:00:00Z' },
    { op: 'replace', path: '/end', value: '2027-01-19T09:20:00Z' },
  ], { ...(await as(booking)), 'content-type': 'application/json-patch+json' });
  t.equal(moved.statusCode, 200, moved.body);
  t.equal(json<Appointment>(moved).start, '2027-01-19T09:00:00Z');
  const cancelled = await fhir(app, 'PUT', `Appointment/${id}`, { ...json<Appointment>(moved), status: 'cancelled', cancelationReason: { text: 'patient unavailable' } }, await as(booking));
  t.equal(cancelled.statusCode, 200, cancelled.body);
  const seen = json<Appointment>(await fhir(app, 'GET', `Appointment/${id}`, undefined, await as(patient)));
  t.match(seen, { status: 'cancelled', cancelationReason: { text: 'patient unavailable' }, start: '2027-01-19T09:00:00Z' }, 'the patient sees the change');
});

t.test('someone who did not book it cannot change it', async (t) => {
  const current = json<Appointment>(await fhir(app, 'GET', `Appointment/${id}`, undefined, await as(booking)));
  t.equal((await fhir(app, 'PUT', `Appointment/${id}`, { ...current, status: 'booked' }, await as(otherApp))).statusCode, 404, 'another app: as if it did not exist');
  t.equal((await fhir(app, 'PUT', `Appointment/${id}`, { ...current, status: 'booked' }, await as(gp))).statusCode, 403, 'the GP sees it but did not book it');
  t.equal(json<Appointment>(await fhir(app, 'GET', `Appointment/${id}`, undefined, await as(patient))).status, 'cancelled');
});
