// The auth hook decides on the route the router matched, not on the URL's text: every encoding of
// a FHIR path the router decodes (/%66hir/Patient, /fhir/%50atient, double slashes...) answers 401
// without a token and reaches no FHIR handler, and with a token answers what the plain path does;
// paths the router does not match answer its 404; only reading the CapabilityStatement and SMART
// discovery are public, however they are encoded.
import t from 'tap';
import type { Bundle } from '@medplum/fhirtypes';
import { bearer, json, testServer } from '../helpers.js';

/** Handlers that ran without a verified actor (their route patterns): none may, but public routes and the not-found handler. */
const unauthenticated: string[] = [];
const server = await testServer({}, (app) =>
  app.addHook('preHandler', async (request) => {
    if (!request.actor && !request.routeOptions.config.public && !request.is404) unauthenticated.push(`${request.method} ${request.routeOptions.url}`);
  }),
);
t.teardown(() => server.close());
const { app } = server;

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
const FHIR_JSON = 'application/fhir+json';
const send = (method: Method, url: string, token: boolean, body?: unknown) =>
  app.inject({ method, url, headers: { accept: FHIR_JSON, ...(token ? bearer(app) : {}), ...(body ? { 'content-type': FHIR_JSON } : {}) }, ...(body ? { payload: JSON.stringify(body) } : {}) });

await send('PUT', '/fhir/Patient/p1', true, { resourceType: 'Patient', id: 'p1', name: [{ family: 'Dupont' }] });
await send('PUT', '/fhir/Patient/p1', true, { resourceType: 'Patient', id: 'p1', name: [{ family: 'Dupond' }] });

t.test('encoded FHIR paths: 401 without a token, the plain path\'s answer with one', async (t) => {
  const pairs: [Method, string, string][] = [
    ['GET', '/%66hir/Patient', '/fhir/Patient'],
    ['GET', '/f%68ir/Patient?_id=p1', '/fhir/Patient?_id=p1'],
    ['GET', '/fhi%72/Patient/p1', '/fhir/Patient/p1'],
    ['GET', '/%66hir/%50atient/%70%31', '/fhir/Patient/p1'],
    ['GET', '/%66hir?_type=Patient', '/fhir?_type=Patient'],
    ['GET', '/%66hir/?_type=Patient', '/fhir?_type=Patient'],
    ['GET', '/fhir//Patient/p1', '/fhir/Patient/p1'],
    ['GET', '/fhir/Patient//p1', '/fhir/Patient/p1'],
    ['GET', '/fhir/Patient/p1/', '/fhir/Patient/p1'],
    ['GET', '/%66hir/Patient/p1/_history', '/fhir/Patient/p1/_history'],
    ['GET', '/%66hir/Patient/p1/%5Fhistory/1', '/fhir/Patient/p1/_history/1'],
    ['GET', '/%66hir/Patient/_history', '/fhir/Patient/_history'],
    ['GET', '/fhir/Patient;x=1', '/fhir/Patient;x=1'],
    ['GET', '/fhir/Patient.', '/fhir/Patient.'],
    ['GET', '/fhir/Patient%00', '/fhir/Patient%00'],
    ['POST', '/%66hir/metadata', '/fhir/metadata'],
    ['DELETE', '/fhir/%6detadata', '/fhir/metadata'],
    ['GET', '/fhir/metadata;x', '/fhir/metadata;x'],
  ];
  for (const [method, variant, plain] of pairs) {
    const refused = await send(method, variant, false);
    t.equal(refused.statusCode, 401, `${method} ${variant} without a token`);
    t.equal(json(refused).resourceType, 'OperationOutcome');
    const [answer, expected] = [await send(method, variant, true), await send(method, plain, true)];
    t.equal(answer.statusCode, expected.statusCode, `${method} ${variant} with a token: as ${plain} (${expected.statusCode})`);
    t.same(json(answer), json(expected), `${method} ${variant}: the same body as ${plain}`);
  }
  t.ok(pairs.some(([, variant]) => variant.startsWith('/%66hir/Patient')), 'the case of issue 12 is among them');
});

t.test('encoded writes: refused without a token (nothing written), done with one', async (t) => {
  const batch = { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'DELETE', url: 'Patient/p1' } }] };
  t.equal((await send('POST', '/%66hir', false, batch)).statusCode, 401, 'a batch to /%66hir');
  t.equal((await send('PUT', '/%66hir/Patient/p9', false, { resourceType: 'Patient', id: 'p9' })).statusCode, 401, 'a PUT to /%66hir/Patient/p9');
  t.equal((await send('DELETE', '/f%68ir/Patient/p1', false)).statusCode, 401, 'a DELETE to /f%68ir/Patient/p1');
  t.equal((await send('GET', '/fhir/Patient/p1', true)).statusCode, 200, 'p1 is still there');
  t.equal((await send('GET', '/fhir/Patient/p9', true)).statusCode, 404, 'p9 was not created');
  t.equal((await send('PUT', '/%66hir/Patient/p9', true, { resourceType: 'Patient', id: 'p9' })).statusCode, 201, 'with a token, /%66hir/Patient/p9 creates p9');
  t.equal(json<Bundle>(await send('POST', '/%66hir/', true, { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient/p9' } }] })).type, 'batch-response');
});

t.test('paths the router does not match answer 404 with or without a token', async (t) => {
  for (const url of ['//fhir/Patient', '/FHIR/Patient', '/Fhir/Patient', '/fhir./Patient', '/fhir;x=1/Patient', '/fhir%2FPatient', '/fhir%5CPatient', '/%2566hir/Patient', '/fhir/%2e%2e/Patient', '/fhir/%2e%2e']) {
    for (const token of [false, true]) {
      const res = await send('GET', url, token);
      t.equal(res.statusCode, 404, `${url} ${token ? 'with' : 'without'} a token`);
      t.equal(json(res).resourceType, 'OperationOutcome');
    }
  }
});

t.test('public: reading the CapabilityStatement and SMART discovery, however encoded; nothing else', async (t) => {
  for (const url of ['/fhir/metadata', '/%66hir/metadata', '/fhir/%6detadata', '/fhir/metadata/', '/fhir/metadata?_format=json']) {
    const res = await send('GET', url, false);
    t.equal(res.statusCode, 200, `GET ${url}`);
    t.equal(json(res).resourceType, 'CapabilityStatement');
  }
  t.equal((await app.inject({ method: 'HEAD', url: '/%66hir/metadata' })).statusCode, 200, 'HEAD /%66hir/metadata');
  for (const url of ['/fhir/.well-known/smart-configuration', '/fhir/%2Ewell-known/smart-configuration', '/%66hir/.well-known/smart-configuration']) {
    const res = await send('GET', url, false);
    t.equal(res.statusCode, 200, `GET ${url}`);
    t.ok(json<{ token_endpoint?: string }>(res).token_endpoint, url);
  }
  for (const url of ['/auth/jwks', '/apps', '/%61uth/jwks']) t.equal((await send('GET', url, false)).statusCode, 200, `GET ${url}`);
});

t.test('no FHIR handler ran without a verified token', async (t) => {
  t.same(unauthenticated, []);
});
