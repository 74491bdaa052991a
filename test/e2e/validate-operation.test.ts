// POST [type]/$validate gives a create's verdict without storing anything.
import t from 'tap';
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import { example, fhir, json, testServer } from '../helpers.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

t.test('a valid resource gets an informational outcome and is not stored', async (t) => {
  const res = await fhir(app, 'POST', 'Patient/$validate', example('Patient', 'Patient-example.json'));
  t.equal(res.statusCode, 200);
  t.match(json<OperationOutcome>(res), { issue: [{ severity: 'information' }] });
  t.equal(json<Bundle>(await fhir(app, 'GET', 'Patient')).total, 0);
});

t.test('an invalid resource gets its errors with expressions, still 200', async (t) => {
  const res = await fhir(app, 'POST', 'Patient/$validate', { resourceType: 'Patient', gender: 42, foo: true });
  t.equal(res.statusCode, 200);
  const outcome = json<OperationOutcome>(res);
  t.ok(outcome.issue.every((i) => i.severity === 'error'));
  const expressions = outcome.issue.flatMap((i) => i.expression ?? []);
  t.ok(expressions.includes('Patient.foo'), expressions.join(', '));
});

t.test('a Parameters body with a resource parameter is validated the same way', async (t) => {
  const res = await fhir(app, 'POST', 'Observation/$validate', { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: { resourceType: 'Observation', status: 'nope', code: { text: 'x' } } }] });
  t.equal(res.statusCode, 200);
  t.match(json<OperationOutcome>(res), { issue: [{ severity: 'error', expression: ['Observation.status'] }] });
});

t.test('the resource type must match the URL', async (t) => {
  const res = await fhir(app, 'POST', 'Patient/$validate', { resourceType: 'Observation' });
  t.equal(res.statusCode, 200);
  t.match(json<OperationOutcome>(res), { issue: [{ severity: 'error', expression: ['resourceType'] }] });
});

t.test('an unknown operation is 404', async (t) => {
  t.equal((await fhir(app, 'POST', 'Patient/$everything', {})).statusCode, 404);
});
