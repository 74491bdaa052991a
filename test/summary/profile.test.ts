// The medical profile through the real server (docs/profile.md): written by the patient and by their
// general practitioner, read by professionals as the access matrix opens each type to their
// profession, masked entries hidden from professionals (reads, searches, totals) and not from the patient.
import t from 'tap';
import type { Bundle } from '@medplum/fhirtypes';
import { fhir, json, type TestActor } from '../helpers.js';
import { mask } from '../policy/fixture.js';
import { BY_GP, BY_PATIENT, GP, PATIENT, PODIATRIST, profileWorld } from './fixture.js';

const world = await profileWorld();
t.teardown(() => world.server.close());
const { app } = world.server;

const get = async (actor: TestActor, url: string) => fhir(app, 'GET', url, undefined, await world.as(actor));
const total = async (actor: TestActor, url: string) => json<Bundle>(await get(actor, `${url}&_total=accurate`)).total;
const ofType = (type: string) => world.written.filter((k) => k.startsWith(`${type}/`));

t.test('the patient and the general practitioner wrote the profile', async (t) => {
  t.equal(world.written.length, BY_PATIENT.length + BY_GP.length, 'every entry was created (201)');
  t.equal((await get(PATIENT, ofType('MedicationStatement')[0])).statusCode, 200, 'the patient reads what the GP wrote');
});

t.test('a podiatrist reads the types the matrix opens to profession 80, and nothing of the others', async (t) => {
  t.equal((await get(PODIATRIST, ofType('AllergyIntolerance')[0])).statusCode, 200, 'allergies: profile-allergies');
  t.equal(await total(PODIATRIST, 'AllergyIntolerance?patient=p1'), 1, 'the unmasked allergy only');
  for (const type of ['MedicationStatement', 'Condition', 'Immunization', 'Observation', 'FamilyMemberHistory']) {
    t.equal((await get(PODIATRIST, ofType(type)[0])).statusCode, 404, `${type}: read as missing`);
    t.equal(await total(PODIATRIST, `${type}?patient=p1`), 0, `${type}: counted nowhere`);
  }
  t.equal(await total(GP, 'Condition?patient=p1'), 2, 'a physician reads every type');
});

t.test('a masked entry is hidden from professionals, not from the patient', async (t) => {
  t.equal((await get(GP, world.masked)).statusCode, 404);
  t.equal((await get(PATIENT, world.masked)).statusCode, 200);
  t.equal(await total(GP, 'AllergyIntolerance?patient=p1'), 1);
  t.equal(await total(PATIENT, 'AllergyIntolerance?patient=p1'), 2);
  // A measure masked later disappears from the GP's searches at once.
  const weight = ofType('Observation')[0];
  t.equal(await total(GP, 'Observation?patient=p1'), 4);
  const res = await fhir(app, 'POST', 'Consent', mask('ignored', 'p1', weight), await world.as(PATIENT));
  t.equal(res.statusCode, 201, res.body.slice(0, 200));
  t.equal(await total(GP, 'Observation?patient=p1'), 3);
  t.equal((await get(GP, weight)).statusCode, 404);
});

t.test('a mask names entries of the patient\'s own record only', async (t) => {
  const res = await fhir(app, 'POST', 'Consent', mask('ignored', 'p2', ofType('Condition')[0]), await world.as({ kind: 'patient', patient: 'p2' }));
  t.equal(res.statusCode, 422);
});

t.test('a professional without a care relationship writes nothing into the profile', async (t) => {
  const stranger: TestActor = { kind: 'practitioner', practitioner: 'dr-stranger', profession: '10' };
  const res = await fhir(app, 'POST', 'Condition', { resourceType: 'Condition', subject: { reference: 'Patient/p1' }, code: { text: 'x' } }, await world.as(stranger));
  t.equal(res.statusCode, 404);
});
