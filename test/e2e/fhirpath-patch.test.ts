// PATCH with a FHIRPath Patch (R4 fhirpatch.html): a Parameters resource, as IHE MHD sends to mark
// a replaced DocumentReference superseded.
import t from 'tap';
import type { Parameters, Patient } from '@medplum/fhirtypes';
import { fhir, json, testServer } from '../helpers.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

type Part = { name: string } & Record<string, unknown>;
const operation = (...parts: Part[]) => ({ name: 'operation', part: parts });
const patchOf = (...operations: ReturnType<typeof operation>[]): Parameters => ({ resourceType: 'Parameters', parameter: operations });
const patch = (url: string, body: Parameters) => fhir(app, 'PATCH', url, body);

t.test('replace sets a primitive, as the MHD supersede patch does', async (t) => {
  await fhir(app, 'PUT', 'Patient/f1', { resourceType: 'Patient', id: 'f1', active: true, gender: 'male' });
  const res = await patch('Patient/f1', patchOf(operation({ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'Patient.gender' }, { name: 'value', valueCode: 'female' })));
  t.equal(res.statusCode, 200);
  t.equal(res.headers.etag, 'W/"2"');
  t.equal(json<Patient>(res).gender, 'female');
});

t.test('add appends to a list and creates a missing list or element', async (t) => {
  await fhir(app, 'PUT', 'Patient/f2', { resourceType: 'Patient', id: 'f2', name: [{ family: 'Martin' }] });
  const res = await patch(
    'Patient/f2',
    patchOf(
      operation({ name: 'type', valueCode: 'add' }, { name: 'path', valueString: 'Patient' }, { name: 'name', valueString: 'identifier' }, { name: 'value', valueIdentifier: { system: 'urn:x', value: '1' } }),
      operation({ name: 'type', valueCode: 'add' }, { name: 'path', valueString: 'Patient.name[0]' }, { name: 'name', valueString: 'given' }, { name: 'value', valueString: 'Jeanne' }),
      operation({ name: 'type', valueCode: 'add' }, { name: 'path', valueString: 'Patient' }, { name: 'name', valueString: 'birthDate' }, { name: 'value', valueDate: '1970-01-01' }),
    ),
  );
  t.equal(res.statusCode, 200);
  const body = json<Patient>(res);
  t.same(body.identifier, [{ system: 'urn:x', value: '1' }]);
  t.same(body.name?.[0].given, ['Jeanne']);
  t.equal(body.birthDate, '1970-01-01');
});

t.test('insert, move and delete work on list items selected by FHIRPath', async (t) => {
  await fhir(app, 'PUT', 'Patient/f3', { resourceType: 'Patient', id: 'f3', identifier: [{ system: 'urn:a', value: '1' }, { system: 'urn:b', value: '2' }] });
  const res = await patch(
    'Patient/f3',
    patchOf(
      operation({ name: 'type', valueCode: 'insert' }, { name: 'path', valueString: 'Patient.identifier' }, { name: 'index', valueInteger: 0 }, { name: 'value', valueIdentifier: { system: 'urn:c', value: '3' } }),
      operation({ name: 'type', valueCode: 'move' }, { name: 'path', valueString: 'Patient.identifier' }, { name: 'source', valueInteger: 0 }, { name: 'destination', valueInteger: 2 }),
      operation({ name: 'type', valueCode: 'delete' }, { name: 'path', valueString: "Patient.identifier.where(system = 'urn:a')" }),
    ),
  );
  t.equal(res.statusCode, 200);
  t.same(json<Patient>(res).identifier?.map((i) => i.system), ['urn:b', 'urn:c']);
});

t.test('a replace whose path matches nothing answers 422 and writes nothing', async (t) => {
  await fhir(app, 'PUT', 'Patient/f4', { resourceType: 'Patient', id: 'f4' });
  const res = await patch('Patient/f4', patchOf(operation({ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'Patient.gender' }, { name: 'value', valueCode: 'male' })));
  t.equal(res.statusCode, 422);
  t.match(json(res), { resourceType: 'OperationOutcome', issue: [{ diagnostics: /matches nothing/ }] });
  t.equal((await fhir(app, 'GET', 'Patient/f4')).headers.etag, 'W/"1"');
});

t.test('a FHIRPath Patch that makes the resource invalid answers 422', async (t) => {
  await fhir(app, 'PUT', 'Patient/f5', { resourceType: 'Patient', id: 'f5', gender: 'male' });
  const res = await patch('Patient/f5', patchOf(operation({ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'Patient.gender' }, { name: 'value', valueCode: 'not-a-gender' })));
  t.equal(res.statusCode, 422);
  t.match(json(res), { issue: [{ expression: ['Patient.gender'] }] });
});

t.test('a malformed FHIRPath Patch answers 400', async (t) => {
  await fhir(app, 'PUT', 'Patient/f6', { resourceType: 'Patient', id: 'f6' });
  const noType = await patch('Patient/f6', patchOf(operation({ name: 'path', valueString: 'Patient.gender' })));
  t.equal(noType.statusCode, 400);
  const badPath = await patch('Patient/f6', patchOf(operation({ name: 'type', valueCode: 'delete' }, { name: 'path', valueString: 'Patient.((' })));
  t.equal(badPath.statusCode, 400);
  const noValue = await patch('Patient/f6', patchOf(operation({ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'Patient.gender' })));
  t.equal(noValue.statusCode, 400);
});

t.test('a transaction PATCH entry may carry a FHIRPath Patch', async (t) => {
  // (Patient.active is the account's, derived by the server: docs/accounts.md; gender is the patient's data.)
  await fhir(app, 'PUT', 'Patient/f7', { resourceType: 'Patient', id: 'f7', gender: 'male' });
  const res = await fhir(app, 'POST', '', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [{ request: { method: 'PATCH', url: 'Patient/f7' }, resource: patchOf(operation({ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'Patient.gender' }, { name: 'value', valueCode: 'female' })) }],
  });
  t.equal(res.statusCode, 200, res.body);
  t.equal(json<Patient>(await fhir(app, 'GET', 'Patient/f7')).gender, 'female');
});
