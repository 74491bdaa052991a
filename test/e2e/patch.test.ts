// PATCH with a JSON Patch document (RFC 6902).
import t from 'tap';
import type { Patient } from '@medplum/fhirtypes';
import { fhir, json, testServer } from '../helpers.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
const PATCH = { 'content-type': 'application/json-patch+json' };

const patch = (url: string, ops: unknown, headers: Record<string, string> = {}) => fhir(app, 'PATCH', url, ops, { ...PATCH, ...headers });

t.test('a JSON Patch makes a new version with the change', async (t) => {
  await fhir(app, 'PUT', 'Patient/p1', { resourceType: 'Patient', id: 'p1', name: [{ family: 'Martin' }] });
  const res = await patch('Patient/p1', [{ op: 'replace', path: '/name/0/family', value: 'Dupont' }, { op: 'add', path: '/active', value: true }]);
  t.equal(res.statusCode, 200);
  t.equal(res.headers.etag, 'W/"2"');
  const body = json<Patient>(res);
  t.equal(body.name?.[0].family, 'Dupont');
  t.equal(body.active, true);
});

t.test('If-Match on a patch: a stale version answers 412', async (t) => {
  await fhir(app, 'PUT', 'Patient/p2', { resourceType: 'Patient', id: 'p2' });
  await fhir(app, 'PUT', 'Patient/p2', { resourceType: 'Patient', id: 'p2', active: true });
  t.equal((await patch('Patient/p2', [{ op: 'add', path: '/gender', value: 'male' }], { 'if-match': 'W/"1"' })).statusCode, 412);
  t.equal((await patch('Patient/p2', [{ op: 'add', path: '/gender', value: 'male' }], { 'if-match': 'W/"2"' })).statusCode, 200);
});

t.test('a failing test operation answers 422 and writes nothing', async (t) => {
  await fhir(app, 'PUT', 'Patient/p3', { resourceType: 'Patient', id: 'p3', active: true });
  const res = await patch('Patient/p3', [{ op: 'test', path: '/active', value: false }, { op: 'remove', path: '/active' }]);
  t.equal(res.statusCode, 422);
  t.equal(json(res).resourceType, 'OperationOutcome');
  t.equal(json<Patient>(await fhir(app, 'GET', 'Patient/p3')).active, true);
});

t.test('a patch that makes the resource invalid answers 422 with the faulty element', async (t) => {
  await fhir(app, 'PUT', 'Patient/p4', { resourceType: 'Patient', id: 'p4' });
  const res = await patch('Patient/p4', [{ op: 'add', path: '/birthDate', value: '31/12/1999' }]);
  t.equal(res.statusCode, 422);
  t.match(json(res), { issue: [{ expression: ['Patient.birthDate'] }] });
});

t.test('a patch may not change the id or the resourceType', async (t) => {
  await fhir(app, 'PUT', 'Patient/p5', { resourceType: 'Patient', id: 'p5' });
  t.equal((await patch('Patient/p5', [{ op: 'replace', path: '/id', value: 'other' }])).statusCode, 422);
});

t.test('a malformed patch document answers 400', async (t) => {
  await fhir(app, 'PUT', 'Patient/p6', { resourceType: 'Patient', id: 'p6' });
  t.equal((await patch('Patient/p6', { op: 'add' })).statusCode, 400, 'not an array');
  t.equal((await patch('Patient/p6', [{ op: 'frobnicate', path: '/a' }])).statusCode, 400, 'unknown op');
  t.equal((await patch('Patient/p6', '[{"op":')).statusCode, 400, 'not JSON');
});

t.test('PATCH of a missing resource is 404, of a deleted one 410', async (t) => {
  t.equal((await patch('Patient/nobody', [{ op: 'add', path: '/active', value: true }])).statusCode, 404);
  await fhir(app, 'PUT', 'Patient/p7', { resourceType: 'Patient', id: 'p7' });
  await fhir(app, 'DELETE', 'Patient/p7');
  t.equal((await patch('Patient/p7', [{ op: 'add', path: '/active', value: true }])).statusCode, 410);
});

t.test('PATCH with a FHIR JSON body that is not a FHIRPath Patch Parameters is 415', async (t) => {
  await fhir(app, 'PUT', 'Patient/p8', { resourceType: 'Patient', id: 'p8' });
  const res = await fhir(app, 'PATCH', 'Patient/p8', { resourceType: 'Patient', id: 'p8', active: true });
  t.equal(res.statusCode, 415);
});
