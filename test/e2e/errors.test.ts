// Bad input gets a clear answer and loses nothing: every error is an OperationOutcome with the
// right status, and the process keeps serving.
import t from 'tap';
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import { bearer, fhir, json, testServer } from '../helpers.js';

const server = await testServer({ bodyLimit: 64 * 1024 });
t.teardown(() => server.close());
const { app } = server;

const outcome = (res: { body: string }) => json<OperationOutcome>(res);
const countPatients = async () => json<Bundle>(await fhir(app, 'GET', 'Patient')).total;

t.test('malformed JSON is 400 and stores nothing', async (t) => {
  const before = await countPatients();
  for (const body of ['{"resourceType":"Patient",', 'not json', '{"resourceType":"Patient"}}', '']) {
    const res = await fhir(app, 'POST', 'Patient', body);
    t.equal(res.statusCode, 400, JSON.stringify(body));
    t.equal(outcome(res).resourceType, 'OperationOutcome');
  }
  t.equal(await countPatients(), before);
});

t.test('a JSON body that is not an object is 400', async (t) => {
  for (const body of ['[]', '"Patient"', '42', 'null']) {
    const res = await fhir(app, 'POST', 'Patient', body);
    t.equal(res.statusCode, 400, body);
  }
});

t.test('unknown elements and wrong types are 400 with an expression at the faulty element', async (t) => {
  const unknown = await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'X', nickname: 'Y' }] });
  t.equal(unknown.statusCode, 400);
  t.match(outcome(unknown), { issue: [{ severity: 'error', expression: ['Patient.name[0].nickname'] }] });
  const wrongType = await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', active: 'yes' });
  t.equal(wrongType.statusCode, 400);
  t.match(outcome(wrongType), { issue: [{ expression: ['Patient.active'] }] });
  const notArray = await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', name: { family: 'X' } });
  t.match(outcome(notArray), { issue: [{ expression: ['Patient.name'] }] });
});

t.test('a Medplum-only resource type is not FHIR: 404 on its URL', async (t) => {
  const res = await fhir(app, 'POST', 'Project', { resourceType: 'Project', name: 'x' });
  t.equal(res.statusCode, 404);
});

t.test('deeply nested JSON is refused with 400 before it is parsed', async (t) => {
  const deep = '{"resourceType":"Patient","extension":' + '['.repeat(20_000) + ']'.repeat(20_000) + '}';
  const res = await fhir(app, 'POST', 'Patient', deep);
  t.equal(res.statusCode, 400);
  t.match(outcome(res).issue[0].diagnostics, /nested/);
});

t.test('a body over the configured limit is 413', async (t) => {
  const big = { resourceType: 'Patient', text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(70 * 1024)}</div>` } };
  const res = await fhir(app, 'POST', 'Patient', big);
  t.equal(res.statusCode, 413);
  t.equal(outcome(res).resourceType, 'OperationOutcome');
  t.match(outcome(res).issue[0], { code: 'too-long' });
});

t.test('an unknown route is 404 with an OperationOutcome', async (t) => {
  for (const url of ['/nothing-here', '/fhir/Patient/1/_history/2/extra', '/fhir/Patient/1/whatever']) {
    const res = await app.inject({ method: 'GET', url, headers: bearer(app) });
    t.equal(res.statusCode, 404, url);
    t.equal(outcome(res).resourceType, 'OperationOutcome', url);
  }
});

t.test('a method a target does not allow is 405 with an Allow header', async (t) => {
  const res = await fhir(app, 'DELETE', 'metadata');
  t.equal(res.statusCode, 405);
  t.equal(res.headers.allow, 'GET');
  t.equal((await fhir(app, 'POST', 'Patient/1/_history', {})).statusCode, 405);
  t.equal((await fhir(app, 'PATCH', 'Patient?identifier=x', [])).statusCode, 405);
});

t.test('an unexpected failure is a 500 OperationOutcome with a request id and no internals', async (t) => {
  const broken = await (await import('../helpers.js')).testServer();
  t.teardown(() => broken.close());
  broken.store.read = async () => {
    throw new Error('disk on fire: SELECT secret FROM somewhere');
  };
  const res = await fhir(broken.app, 'GET', 'Patient/x');
  t.equal(res.statusCode, 500);
  const body = outcome(res);
  t.match(body.issue[0], { code: 'exception' });
  t.notMatch(body.issue[0].diagnostics, /disk on fire|SELECT/);
  t.match(body.issue[0].diagnostics, String(res.headers['x-request-id']));
  t.equal((await fhir(broken.app, 'GET', 'metadata')).statusCode, 200, 'the server keeps serving');
});

t.test('search with an unknown parameter is 400 naming it, unless Prefer: handling=lenient', async (t) => {
  const res = await fhir(app, 'GET', 'Patient?shoe-size=42');
  t.equal(res.statusCode, 400);
  t.match(outcome(res), { issue: [{ expression: ['shoe-size'] }] });
  const lenient = await fhir(app, 'GET', 'Patient?shoe-size=42', undefined, { prefer: 'handling=lenient' });
  t.equal(lenient.statusCode, 200);
  t.notMatch(json<Bundle>(lenient).link?.[0].url, /shoe-size/, 'the self link lists only what was applied');
});
