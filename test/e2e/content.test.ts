// Content negotiation: FHIR JSON in both media types, _format, charset, Binary as its own bytes.
import t from 'tap';
import type { Binary, Patient } from '@medplum/fhirtypes';
import { bearer, fhir, json, testServer } from '../helpers.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

t.test('application/json is accepted in and echoed out', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { ...bearer(app), 'content-type': 'application/json', accept: 'application/json' }, payload: JSON.stringify({ resourceType: 'Patient' }) });
  t.equal(res.statusCode, 201);
  t.match(res.headers['content-type'], /^application\/json; charset=utf-8/);
});

t.test('a charset parameter is accepted for UTF-8 and refused otherwise (415)', async (t) => {
  const ok = await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', name: [{ given: ['Hélène'] }] }, { 'content-type': 'application/fhir+json; charset=UTF-8' });
  t.equal(ok.statusCode, 201);
  t.equal(json<Patient>(ok).name?.[0].given?.[0], 'Hélène');
  const latin = await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }, { 'content-type': 'application/fhir+json; charset=iso-8859-1' });
  t.equal(latin.statusCode, 415);
});

t.test('Medplum\'s Accept header and a browser\'s Accept header get FHIR JSON', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }));
  for (const accept of ['application/fhir+json, */*;q=0.1', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', '*/*']) {
    const res = await fhir(app, 'GET', `Patient/${created.id}`, undefined, { accept });
    t.equal(res.statusCode, 200, accept);
    t.match(res.headers['content-type'], /^application\/fhir\+json/, accept);
  }
  const none = await app.inject({ method: 'GET', headers: bearer(app), url: `/fhir/Patient/${created.id}` });
  t.match(none.headers['content-type'], /^application\/fhir\+json/, 'no Accept header');
});

t.test('XML is not served: Accept or _format asking only for it answers 406', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }));
  const byAccept = await fhir(app, 'GET', `Patient/${created.id}`, undefined, { accept: 'application/fhir+xml' });
  t.equal(byAccept.statusCode, 406);
  t.equal(json(byAccept).resourceType, 'OperationOutcome');
  t.equal((await fhir(app, 'GET', `Patient/${created.id}?_format=xml`)).statusCode, 406);
  const byFormat = await fhir(app, 'GET', `Patient/${created.id}?_format=json`, undefined, { accept: 'application/fhir+xml' });
  t.equal(byFormat.statusCode, 200, '_format wins over Accept');
  t.equal((await fhir(app, 'GET', `Patient/${created.id}?_format=application/fhir%2Bjson`)).statusCode, 200);
});

t.test('a FHIR resource in XML or another media type is refused with 415', async (t) => {
  const xml = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { ...bearer(app), 'content-type': 'application/fhir+xml' }, payload: '<Patient xmlns="http://hl7.org/fhir"/>' });
  t.equal(xml.statusCode, 415);
  t.equal(json(xml).resourceType, 'OperationOutcome');
  const text = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: { ...bearer(app), 'content-type': 'text/plain' }, payload: 'hello' });
  t.equal(text.statusCode, 415);
});

t.test('raw bytes POSTed to Binary become a Binary; read back as bytes unless FHIR JSON is asked', async (t) => {
  const pdf = Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n', 'latin1');
  const created = await app.inject({ method: 'POST', url: '/fhir/Binary', headers: { ...bearer(app), 'content-type': 'application/pdf' }, payload: pdf });
  t.equal(created.statusCode, 201);
  const location = created.headers.location as string;
  const id = location.split('/').at(-3);
  const raw = await app.inject({ method: 'GET', headers: bearer(app), url: `/fhir/Binary/${id}` });
  t.equal(raw.statusCode, 200);
  t.equal(raw.headers['content-type'], 'application/pdf');
  t.same(raw.rawPayload, pdf, 'the same bytes come back');
  t.equal(raw.headers.etag, 'W/"1"');
  const asPdf = await app.inject({ method: 'GET', url: `/fhir/Binary/${id}`, headers: { ...bearer(app), accept: 'application/pdf' } });
  t.same(asPdf.rawPayload, pdf);
  const asJson = await fhir(app, 'GET', `Binary/${id}`);
  t.match(asJson.headers['content-type'], /^application\/fhir\+json/);
  const binary = json<Binary>(asJson);
  t.equal(binary.contentType, 'application/pdf');
  t.same(Buffer.from(binary.data!, 'base64'), pdf);
});

t.test('a Binary sent as FHIR JSON is stored as a resource and can be replaced by raw bytes', async (t) => {
  const res = await fhir(app, 'PUT', 'Binary/b1', { resourceType: 'Binary', id: 'b1', contentType: 'text/plain', data: Buffer.from('v1').toString('base64') });
  t.equal(res.statusCode, 201);
  const raw = await app.inject({ method: 'PUT', url: '/fhir/Binary/b1', headers: { ...bearer(app), 'content-type': 'text/plain' }, payload: 'v2' });
  t.equal(raw.statusCode, 200);
  const back = await app.inject({ method: 'GET', url: '/fhir/Binary/b1', headers: { ...bearer(app), accept: '*/*' } });
  t.equal(back.body, 'v2');
  t.match(back.headers['content-type'], /^text\/plain/);
});

t.test('_pretty=true indents the JSON', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }));
  const res = await fhir(app, 'GET', `Patient/${created.id}?_pretty=true`);
  t.match(res.body, /\n {2}"resourceType"/);
});
