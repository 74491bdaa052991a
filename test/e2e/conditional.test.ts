// Conditional create (If-None-Exist), conditional update and conditional delete, on identifier and _id.
import t from 'tap';
import type { Patient } from '@medplum/fhirtypes';
import { fhir, json, testServer } from '../helpers.js';

const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

const patient = (ins: string, extra: Partial<Patient> = {}): Patient => ({ resourceType: 'Patient', identifier: [{ system: INS, value: ins }], ...extra });

t.test('If-None-Exist with no match creates (201); with one match answers 200 and the existing resource', async (t) => {
  const first = await fhir(app, 'POST', 'Patient', patient('1800101000001'), { 'if-none-exist': `identifier=${INS}|1800101000001` });
  t.equal(first.statusCode, 201);
  const second = await fhir(app, 'POST', 'Patient', patient('1800101000001', { active: true }), { 'if-none-exist': `identifier=${INS}|1800101000001` });
  t.equal(second.statusCode, 200);
  t.equal(json(second).id, json(first).id);
  t.equal(json<Patient>(second).active, undefined, 'the existing resource is returned unchanged');
});

t.test('If-None-Exist matching several resources answers 412 and creates nothing', async (t) => {
  await fhir(app, 'POST', 'Patient', patient('dup'));
  await fhir(app, 'POST', 'Patient', patient('dup'));
  const res = await fhir(app, 'POST', 'Patient', patient('dup'), { 'if-none-exist': 'identifier=dup' });
  t.equal(res.statusCode, 412);
  t.match(json(res), { issue: [{ code: 'multiple-matches' }] });
});

t.test('If-None-Exist with an unknown parameter is 400 naming it', async (t) => {
  const res = await fhir(app, 'POST', 'Patient', patient('x'), { 'if-none-exist': 'shoe-size=42' });
  t.equal(res.statusCode, 400);
  t.match(json(res), { issue: [{ expression: ['shoe-size'] }] });
});

t.test('token forms: system|code, |code (no system), system| (any code), code (any system)', async (t) => {
  await fhir(app, 'PUT', 'Patient/tok-a', { resourceType: 'Patient', id: 'tok-a', identifier: [{ system: 'urn:sys:a', value: 'T1' }] });
  await fhir(app, 'PUT', 'Patient/tok-b', { resourceType: 'Patient', id: 'tok-b', identifier: [{ value: 'T1' }] });
  const ids = async (q: string) => json<{ entry?: { resource: Patient }[] }>(await fhir(app, 'GET', `Patient?${q}`)).entry?.map((e) => e.resource.id).sort() ?? [];
  t.same(await ids('identifier=urn:sys:a|T1'), ['tok-a']);
  t.same(await ids('identifier=|T1'), ['tok-b']);
  t.same(await ids('identifier=urn:sys:a|'), ['tok-a']);
  t.same(await ids('identifier=T1'), ['tok-a', 'tok-b']);
  t.same(await ids('identifier=urn:sys:a|T1,|T1'), ['tok-a', 'tok-b'], 'comma is OR');
  t.same(await ids('identifier=T1&_id=tok-b'), ['tok-b'], 'repeated parameters are AND');
});

t.test('conditional update: no match creates, one match updates it, several answer 412', async (t) => {
  const created = await fhir(app, 'PUT', `Patient?identifier=${INS}|2900101000002`, patient('2900101000002'));
  t.equal(created.statusCode, 201);
  const id = json(created).id;
  const updated = await fhir(app, 'PUT', `Patient?identifier=${INS}|2900101000002`, patient('2900101000002', { gender: 'female' }));
  t.equal(updated.statusCode, 200);
  t.equal(json(updated).id, id);
  t.equal(updated.headers.etag, 'W/"2"');
  await fhir(app, 'POST', 'Patient', patient('many'));
  await fhir(app, 'POST', 'Patient', patient('many'));
  t.equal((await fhir(app, 'PUT', 'Patient?identifier=many', patient('many'))).statusCode, 412);
});

t.test('conditional update with a body id that is not the match is 400', async (t) => {
  await fhir(app, 'PUT', 'Patient/cu-1', { ...patient('cu-match'), id: 'cu-1' });
  const res = await fhir(app, 'PUT', 'Patient?identifier=cu-match', { ...patient('cu-match'), id: 'other' });
  t.equal(res.statusCode, 400);
});

t.test('conditional update on _id', async (t) => {
  await fhir(app, 'PUT', 'Patient/by-id', { resourceType: 'Patient', id: 'by-id' });
  const res = await fhir(app, 'PUT', 'Patient?_id=by-id', { resourceType: 'Patient', active: true });
  t.equal(res.statusCode, 200);
  t.equal(json(res).id, 'by-id');
});

t.test('conditional delete removes the one match, answers 412 on several, and is a no-op on none', async (t) => {
  await fhir(app, 'PUT', 'Patient/cd-1', { ...patient('cd-one'), id: 'cd-1' });
  const res = await fhir(app, 'DELETE', 'Patient?identifier=cd-one');
  t.equal(res.statusCode, 200);
  t.equal((await fhir(app, 'GET', 'Patient/cd-1')).statusCode, 410);
  await fhir(app, 'POST', 'Patient', patient('cd-many'));
  await fhir(app, 'POST', 'Patient', patient('cd-many'));
  t.equal((await fhir(app, 'DELETE', 'Patient?identifier=cd-many')).statusCode, 412);
  t.equal(json<{ total: number }>(await fhir(app, 'GET', 'Patient?identifier=cd-many')).total, 2, 'nothing deleted');
  t.equal((await fhir(app, 'DELETE', 'Patient?identifier=cd-none')).statusCode, 200);
});

t.test('conditional operations without criteria are refused', async (t) => {
  t.equal((await fhir(app, 'DELETE', 'Patient')).statusCode, 400);
  t.equal((await fhir(app, 'PUT', 'Patient', patient('z'))).statusCode, 400);
});

t.test('DocumentReference identifier covers masterIdentifier too (official expression)', async (t) => {
  const doc = { resourceType: 'DocumentReference', status: 'current', masterIdentifier: { system: 'urn:ietf:rfc:3986', value: 'urn:oid:1.2.3.4' }, content: [{ attachment: { contentType: 'text/plain' } }] };
  const first = await fhir(app, 'POST', 'DocumentReference', doc, { 'if-none-exist': 'identifier=urn:ietf:rfc:3986|urn:oid:1.2.3.4' });
  t.equal(first.statusCode, 201);
  const second = await fhir(app, 'POST', 'DocumentReference', doc, { 'if-none-exist': 'identifier=urn:ietf:rfc:3986|urn:oid:1.2.3.4' });
  t.equal(second.statusCode, 200);
});

t.test('conditional operations take any search criteria, not only identifiers', async (t) => {
  const body = { resourceType: 'Patient', name: [{ family: 'Lefèvre', given: ['Zoé'] }], birthDate: '1990-05-04' };
  const criteria = 'family=lefevre&given=zoe&birthdate=1990-05-04';
  t.equal((await fhir(app, 'POST', 'Patient', body, { 'if-none-exist': criteria })).statusCode, 201);
  t.equal((await fhir(app, 'POST', 'Patient', body, { 'if-none-exist': criteria })).statusCode, 200, 'accent-insensitive match found');
  const updated = await fhir(app, 'PUT', `Patient?${criteria}`, { ...body, gender: 'female' });
  t.equal(updated.statusCode, 200);
  t.equal(json<Patient>(updated).gender, 'female');
  t.equal((await fhir(app, 'DELETE', 'Patient?family=lefevre&birthdate=ge1990&birthdate=lt1991')).statusCode, 200);
  t.equal((await fhir(app, 'POST', 'Patient', body, { 'if-none-exist': criteria })).statusCode, 201, 'deleted, so created again');
});

t.test('result parameters are refused in conditional criteria', async (t) => {
  const res = await fhir(app, 'POST', 'Patient', patient('r'), { 'if-none-exist': 'identifier=r&_sort=birthdate' });
  t.equal(res.statusCode, 400);
  t.match(json(res), { issue: [{ expression: ['_sort'] }] });
});
