// SMART scopes on every interaction, batch and transaction entries and _include targets; patient
// tokens reach only their own compartment.
import t from 'tap';
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import { parseScopes } from '../../src/auth/scopes.js';
import { fhir, json, testServer, type TestActor } from '../helpers.js';

t.test('the scope grammar: v2 permissions, v1 actions, wildcards, and what is ignored', async (t) => {
  const [v2] = parseScopes('patient/DocumentReference.rs');
  t.match(v2, { context: 'patient', type: 'DocumentReference' });
  t.same([...v2.permissions].sort(), ['r', 's']);
  t.same([...parseScopes('user/*.write')[0].permissions].sort(), ['c', 'd', 'u']);
  t.same([...parseScopes('user/*.read')[0].permissions].sort(), ['r', 's']);
  t.same([...parseScopes('system/*.*')[0].permissions].sort(), ['c', 'd', 'r', 's', 'u']);
  t.same(parseScopes('openid fhirUser launch/patient offline_access'), [], 'no data access');
  t.same(parseScopes('patient/Observation.rs?category=laboratory'), [], 'query-restricted scopes are not implemented: ignored, never widened');
  t.same(parseScopes('patient/Observation.sr user/Patient.'), [], 'permissions out of order or missing are not scopes');
});

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
for (const [id, subject] of [['p1', undefined], ['p2', undefined]] as const) {
  await fhir(app, 'PUT', `Patient/${id}`, { resourceType: 'Patient', id, generalPractitioner: [{ reference: 'Practitioner/dr' }] });
  void subject;
}
await fhir(app, 'PUT', 'Practitioner/dr', { resourceType: 'Practitioner', id: 'dr' });
for (const [id, patient] of [['o1', 'p1'], ['o2', 'p2']]) {
  await fhir(app, 'PUT', `Observation/${id}`, { resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${patient}` } });
}

const as = async (actor: TestActor, scope?: string) => ({ authorization: `Bearer ${await server.token(actor, scope)}` });
const doctor: TestActor = { kind: 'practitioner', practitioner: 'dr', profession: '10' };
const forbidden = (res: { statusCode: number; body: string }) => res.statusCode === 403 && json<OperationOutcome>(res).issue[0].code === 'forbidden';

t.test('each interaction needs its permission', async (t) => {
  const readOnly = await as(doctor, 'user/Patient.r');
  t.equal((await fhir(app, 'GET', 'Patient/p1', undefined, readOnly)).statusCode, 200, 'read with r');
  t.equal((await fhir(app, 'GET', 'Patient/p1/_history/1', undefined, readOnly)).statusCode, 200, 'vread with r');
  t.equal((await fhir(app, 'GET', 'Patient/p1/_history', undefined, readOnly)).statusCode, 200, 'instance history with r');
  t.ok(forbidden(await fhir(app, 'GET', 'Patient', undefined, readOnly)), 'search needs s');
  t.ok(forbidden(await fhir(app, 'GET', 'Patient/_history', undefined, readOnly)), 'type history needs s');
  t.ok(forbidden(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }, readOnly)), 'create needs c');
  t.ok(forbidden(await fhir(app, 'PUT', 'Patient/p1', { resourceType: 'Patient', id: 'p1' }, readOnly)), 'update needs u');
  t.ok(forbidden(await fhir(app, 'PATCH', 'Patient/p1', [], { ...readOnly, 'content-type': 'application/json-patch+json' })), 'patch needs u');
  t.ok(forbidden(await fhir(app, 'DELETE', 'Patient/p1', undefined, readOnly)), 'delete needs d');
  t.ok(forbidden(await fhir(app, 'GET', 'Observation/o1', undefined, readOnly)), 'another type is not covered');
  t.ok(forbidden(await fhir(app, 'POST', 'Patient/$validate', { resourceType: 'Patient' }, readOnly)), '$validate needs c');
  const writer = await as({ kind: 'system', client: 'lab' }, 'system/Observation.c');
  t.equal((await fhir(app, 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'y' } }, writer)).statusCode, 201, 'create with c');
  t.ok(forbidden(await fhir(app, 'GET', 'Observation/o1', undefined, writer)), 'a write-only system cannot read');
  t.ok(forbidden(await fhir(app, 'GET', '_history', undefined, await as(doctor, 'user/Patient.rs'))), 'system history needs a wildcard');
  const message = json<OperationOutcome>(await fhir(app, 'GET', 'Patient', undefined, readOnly)).issue[0].diagnostics;
  t.match(message, /user\/Patient\.r\b.*search on Patient/, 'the outcome says which scopes were held and what was refused');
});

t.test('v1 scopes work like their v2 equivalents', async (t) => {
  const v1 = await as(doctor, 'user/*.read');
  t.equal((await fhir(app, 'GET', 'Observation?subject=Patient/p1', undefined, v1)).statusCode, 200);
  t.ok(forbidden(await fhir(app, 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'z' } }, v1)));
});

t.test('batch entries are checked one by one; a transaction fails as a whole', async (t) => {
  const headers = await as(doctor, 'user/Patient.rs');
  const batch = json<Bundle>(await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient/p1' } }, { request: { method: 'GET', url: 'Observation/o1' } }] }, headers));
  t.same(batch.entry?.map((e) => e.response?.status), ['200 OK', '403 Forbidden']);
  const tx = await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } }] }, headers);
  t.equal(tx.statusCode, 403);
});

t.test('_include targets the scopes do not cover are left out', async (t) => {
  const headers = await as(doctor, 'user/Observation.rs');
  const page = json<Bundle>(await fhir(app, 'GET', 'Observation?_id=o1&_include=Observation:subject', undefined, headers));
  t.same(page.entry?.map((e) => e.resource?.id), ['o1']);
  const both = json<Bundle>(await fhir(app, 'GET', 'Observation?_id=o1&_include=Observation:subject', undefined, await as(doctor, 'user/Observation.rs user/Patient.r')));
  t.same(both.entry?.map((e) => e.resource?.id), ['o1', 'p1']);
});

t.test('a patient token reaches only its own compartment', async (t) => {
  const p1 = await as({ kind: 'patient', patient: 'p1' });
  t.equal((await fhir(app, 'GET', 'Patient/p1', undefined, p1)).statusCode, 200);
  t.equal((await fhir(app, 'GET', 'Patient/p2', undefined, p1)).statusCode, 404, 'another patient reads as unknown');
  t.equal((await fhir(app, 'GET', 'Observation/o2', undefined, p1)).statusCode, 404);
  t.equal((await fhir(app, 'GET', 'Observation/o2/_history/1', undefined, p1)).statusCode, 404);
  t.equal((await fhir(app, 'GET', 'Observation/o2/_history', undefined, p1)).statusCode, 404);
  const search = json<Bundle>(await fhir(app, 'GET', 'Observation', undefined, p1));
  t.same(search.entry?.map((e) => e.resource?.id), ['o1']);
  t.equal(search.total, 1, 'totals count only the compartment');
  t.same(json<Bundle>(await fhir(app, 'GET', 'Patient', undefined, p1)).entry?.map((e) => e.resource?.id), ['p1']);
  t.equal((await fhir(app, 'GET', 'Practitioner', undefined, p1)).statusCode, 200, 'the directory of professionals is no one\'s compartment: readable');
  t.ok(forbidden(await fhir(app, 'GET', 'Binary', undefined, p1)), 'other types outside the patient compartment are refused');
  const history = json<Bundle>(await fhir(app, 'GET', 'Observation/_history', undefined, p1));
  t.same([...new Set(history.entry?.map((e) => e.resource?.id))], ['o1'], 'type history holds only the compartment');
  t.ok(forbidden(await fhir(app, 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'w' }, subject: { reference: 'Patient/p2' } }, p1)), 'writing into another compartment is refused');
  t.equal((await fhir(app, 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'w' }, subject: { reference: 'Patient/p1' } }, p1)).statusCode, 201, 'writing into its own is allowed');
  t.equal((await fhir(app, 'PUT', 'Observation/o2', { resourceType: 'Observation', id: 'o2', status: 'final', code: { text: 'v' }, subject: { reference: 'Patient/p1' } }, p1)).statusCode, 404, 'overwriting another patient\'s resource is refused without revealing it');
  // R4: deleting what does not exist answers 200; another patient's resource reads exactly like that.
  const hiddenDelete = await fhir(app, 'DELETE', 'Observation/o2', undefined, p1);
  const missingDelete = await fhir(app, 'DELETE', 'Observation/o-none', undefined, p1);
  t.equal(hiddenDelete.statusCode, 200);
  t.equal(hiddenDelete.body.replace('o2', 'X'), missingDelete.body.replace('o-none', 'X'), 'deleting another patient\'s resource answers as deleting one that does not exist');
  t.equal((await fhir(app, 'GET', 'Observation/o2', undefined, await as(doctor))).statusCode, 200, 'o2 is untouched');
});

t.test('a patient token with user/ scopes is still limited to its compartment', async (t) => {
  const p1 = await as({ kind: 'patient', patient: 'p1' }, 'user/*.cruds');
  t.equal((await fhir(app, 'GET', 'Patient/p2', undefined, p1)).statusCode, 404);
});

t.test('a deleted resource of another patient is not revealed as deleted', async (t) => {
  await fhir(app, 'PUT', 'Observation/o3', { resourceType: 'Observation', id: 'o3', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/p2' } });
  await fhir(app, 'DELETE', 'Observation/o3');
  t.equal((await fhir(app, 'GET', 'Observation/o3', undefined, await as({ kind: 'patient', patient: 'p1' }))).statusCode, 404);
  t.equal((await fhir(app, 'GET', 'Observation/o3', undefined, await as({ kind: 'patient', patient: 'p2' }))).statusCode, 410, 'its own patient sees it is gone');
});

t.test('a representative reaches each represented patient', async (t) => {
  const parent = await as({ kind: 'representative', relatedPerson: 'mum', patients: ['p1', 'p2'] });
  t.same(json<Bundle>(await fhir(app, 'GET', 'Observation?_sort=_id', undefined, parent)).entry?.map((e) => e.resource?.id).filter((id) => id === 'o1' || id === 'o2'), ['o1', 'o2']);
});

t.test('patient/ scopes of a practitioner app follow its launch patient', async (t) => {
  const launched = await as({ ...doctor, patient: 'p2' } as TestActor, 'patient/Observation.rs');
  t.same(json<Bundle>(await fhir(app, 'GET', 'Observation', undefined, launched)).entry?.map((e) => e.resource?.id), ['o2']);
  t.ok(forbidden(await fhir(app, 'GET', 'Observation', undefined, await as(doctor, 'patient/Observation.rs'))), 'without a launch patient, patient/ scopes reach nothing');
});

t.test('a patient token reads the directory of professionals but cannot change it', async (t) => {
  const p1 = await as({ kind: 'patient', patient: 'p1' });
  t.equal((await fhir(app, 'GET', 'Practitioner/dr', undefined, p1)).statusCode, 200);
  t.equal((await fhir(app, 'PUT', 'Practitioner/dr', { resourceType: 'Practitioner', id: 'dr', active: false }, p1)).statusCode, 403);
  t.equal((await fhir(app, 'POST', 'Practitioner', { resourceType: 'Practitioner' }, p1)).statusCode, 403);
  t.equal((await fhir(app, 'DELETE', 'Practitioner/dr', undefined, p1)).statusCode, 403);
  const probe = json<Bundle>(await fhir(app, 'GET', 'Practitioner?_has:Patient:general-practitioner:_id=p2', undefined, p1));
  t.equal(probe.total, 0, '_has cannot probe another patient through the directory');
});
