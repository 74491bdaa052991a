// Patient/$everything through the real server (R4 Patient-everything; docs/accounts.md): the
// person takes their whole record with them, a closed account's included; a professional gets
// what a search of theirs would give, nothing once the account is closed; a stranger, 404 as for
// a patient that does not exist; `_type` and `_since` narrow it; bad values are 400.
import t from 'tap';
import type { Bundle, OperationOutcome, Parameters, Resource } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { seed } from '../seed.js';
import { documentPush } from './push.js';

const DAY = 86_400_000;
t.test('Patient/$everything', async (t) => {
  let clock = Date.parse('2027-05-03T08:00:00.000Z');
  const now = () => new Date(clock).toISOString();
  const server = await testServer({ now });
  t.teardown(() => server.close());
  const { app, store } = server;
  const as = authorizationFor(server);
  const FEED: TestActor = { kind: 'system', client: 'cnam-feed' };
  const GP: TestActor = { kind: 'practitioner', practitioner: 'dr-all', profession: '10' };
  const STRANGER: TestActor = { kind: 'practitioner', practitioner: 'dr-none', profession: '10' };
  await seed(store, [
    { resourceType: 'Practitioner', id: 'dr-all', name: [{ family: 'Tout' }] },
    { resourceType: 'Practitioner', id: 'dr-none', name: [{ family: 'Personne' }] },
  ]);
  const call = async (actor: TestActor, url: string, method: 'GET' | 'POST' = 'GET', body?: unknown) => fhir(app, method, url, body, await as(actor));
  const kinds = (res: { body: string }) => (json<Bundle>(res).entry ?? []).map((e) => (e.resource as Resource).resourceType).sort();

  const enrolled = await call(FEED, 'Patient/$enrol', 'POST', {
    resourceType: 'Parameters',
    parameter: [{ name: 'patient', resource: { resourceType: 'Patient', identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '279057512345601' }], birthDate: '1979-05-02', generalPractitioner: [{ reference: 'Practitioner/dr-all' }] } }],
  });
  const id = ((json<Parameters>(enrolled).parameter ?? [])[0].part?.find((p) => p.name === 'patient')?.valueReference?.reference as string).replace('Patient/', '');
  clock += 43 * DAY;
  await app.accounts.run();
  const person: TestActor = { kind: 'patient', patient: id };
  t.equal((await call({ kind: 'system', client: 'lab' }, '', 'POST', documentPush(id, 'first report'))).statusCode, 200);
  const observation = await call(GP, 'Observation', 'POST', { resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }] }, subject: { reference: `Patient/${id}` }, valueQuantity: { value: 71, unit: 'kg' } });
  t.equal(observation.statusCode, 201, observation.body);
  const since = new Date(clock + 1000).toISOString();
  clock += 2 * DAY;
  t.equal((await call({ kind: 'system', client: 'lab' }, '', 'POST', documentPush(id, 'second report'))).statusCode, 200);

  t.test('the person gets their whole record in one searchset Bundle', async (t) => {
    const res = await call(person, `Patient/${id}/$everything`);
    t.equal(res.statusCode, 200, res.body);
    const answer = json<Bundle>(res);
    t.equal(answer.type, 'searchset');
    t.same(kinds(res), ['DocumentReference', 'DocumentReference', 'Observation', 'Patient']);
    t.equal(answer.total, 4);
    t.notOk(kinds(res).includes('AuditEvent'), 'the access log is not in it');
  });

  t.test('_type and _since narrow it; bad values are 400', async (t) => {
    t.same(kinds(await call(person, `Patient/${id}/$everything?_type=Observation`)), ['Observation', 'Patient']);
    t.same(kinds(await call(person, `Patient/${id}/$everything?_since=${encodeURIComponent(since)}`)), ['DocumentReference'], 'only what changed since');
    const badType = await call(person, `Patient/${id}/$everything?_type=Practitioner`);
    t.equal(badType.statusCode, 400);
    t.match(json<OperationOutcome>(badType).issue?.[0]?.diagnostics, /not part of a patient's record/);
    t.equal((await call(person, `Patient/${id}/$everything?_since=yesterday`)).statusCode, 400);
    t.equal((await call(person, `Patient/${id}/$everything?start=2020-01-01`)).statusCode, 400, 'an undeclared parameter');
  });

  t.test('a professional gets what they may see; a stranger, 404 as for nobody', async (t) => {
    t.same(kinds(await call(GP, `Patient/${id}/$everything`)), ['DocumentReference', 'DocumentReference', 'Observation', 'Patient']);
    t.equal((await call(STRANGER, `Patient/${id}/$everything`)).statusCode, 404);
    t.equal((await call(STRANGER, 'Patient/no-such-patient/$everything')).statusCode, 404);
  });

  t.test('after closing: the person still takes their record, professionals get nothing', async (t) => {
    t.equal((await call(person, `Patient/${id}/$close`, 'POST', { resourceType: 'Parameters' })).statusCode, 200);
    t.equal((await call(GP, `Patient/${id}/$everything`)).statusCode, 404, 'the GP no longer sees the record');
    const res = await call(person, `Patient/${id}/$everything`);
    t.equal(res.statusCode, 200);
    t.same(kinds(res), ['DocumentReference', 'DocumentReference', 'Observation', 'Patient'], 'the closed account\'s record, whole');
    clock += 31 * DAY;
    t.equal(await app.accounts.run(), 1, 'archived');
    t.equal(kinds(await call(person, `Patient/${id}/$everything`)).length, 4, 'and once archived (the legal access path)');
  });
});
