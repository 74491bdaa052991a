// Create, read, vread, update, delete through HTTP, with the status codes and headers of R4 http.
import t from 'tap';
import type { Patient, Resource } from '@medplum/fhirtypes';
import { BASE, example, fhir, json, testServer } from '../helpers.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

t.test('create answers 201 with a server id, Location, ETag W/"1" and Last-Modified', async (t) => {
  const patient = example<Patient>('Patient', 'Patient-example.json');
  const res = await fhir(app, 'POST', 'Patient', { ...patient, id: 'client-chosen' });
  t.equal(res.statusCode, 201);
  const body = json<Patient>(res);
  t.not(body.id, 'client-chosen', 'the id sent on create is ignored');
  t.match(body.id, /^[0-9a-f-]{36}$/);
  t.equal(res.headers.location, `${BASE}/Patient/${body.id}/_history/1`);
  t.equal(res.headers.etag, 'W/"1"');
  t.equal(body.meta?.versionId, '1');
  t.equal(res.headers['last-modified'], new Date(body.meta!.lastUpdated!).toUTCString());
  t.match(res.headers['content-type'], /^application\/fhir\+json; charset=utf-8/);
  t.same(body.name, patient.name, 'content is kept');
});

t.test('read returns the current version with its ETag', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', gender: 'female' }));
  const res = await fhir(app, 'GET', `Patient/${created.id}`);
  t.equal(res.statusCode, 200);
  t.equal(res.headers.etag, 'W/"1"');
  t.same(json(res), created);
});

t.test('read of an unknown id is 404 with an OperationOutcome', async (t) => {
  const res = await fhir(app, 'GET', 'Patient/nope');
  t.equal(res.statusCode, 404);
  const outcome = json(res);
  t.equal(outcome.resourceType, 'OperationOutcome');
  t.match(outcome, { issue: [{ severity: 'error', code: 'not-found' }] });
});

t.test('an unserved resource type is 404', async (t) => {
  const res = await fhir(app, 'GET', 'Medication/1');
  t.equal(res.statusCode, 404);
  t.match(json(res), { resourceType: 'OperationOutcome', issue: [{ code: 'not-found' }] });
});

t.test('an invalid id in the URL is 400', async (t) => {
  const res = await fhir(app, 'GET', 'Patient/' + 'x'.repeat(65));
  t.equal(res.statusCode, 400);
});

t.test('update makes version 2; vread still returns version 1', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', gender: 'male' }));
  const res = await fhir(app, 'PUT', `Patient/${created.id}`, { resourceType: 'Patient', id: created.id, gender: 'female' });
  t.equal(res.statusCode, 200);
  t.equal(res.headers.etag, 'W/"2"');
  t.equal(json<Patient>(res).gender, 'female');
  const v1 = await fhir(app, 'GET', `Patient/${created.id}/_history/1`);
  t.equal(v1.statusCode, 200);
  t.equal(json<Patient>(v1).gender, 'male');
  t.equal(v1.headers.etag, 'W/"1"');
  t.equal((await fhir(app, 'GET', `Patient/${created.id}/_history/3`)).statusCode, 404);
  t.equal((await fhir(app, 'GET', `Patient/${created.id}/_history/abc`)).statusCode, 404);
});

t.test('the client cannot rewrite meta.versionId or meta.lastUpdated', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', meta: { versionId: '42', lastUpdated: '2001-01-01T00:00:00Z', tag: [{ code: 'kept' }] } }));
  t.equal(created.meta?.versionId, '1');
  t.not(created.meta?.lastUpdated, '2001-01-01T00:00:00Z');
  t.same(created.meta?.tag, [{ code: 'kept' }]);
  const updated = json<Patient>(await fhir(app, 'PUT', `Patient/${created.id}`, { ...created, meta: { versionId: '99' }, active: true }));
  t.equal(updated.meta?.versionId, '2');
});

t.test('update-as-create with a client id answers 201 and Location', async (t) => {
  const res = await fhir(app, 'PUT', 'Patient/chosen-by-client', { resourceType: 'Patient', id: 'chosen-by-client' });
  t.equal(res.statusCode, 201);
  t.equal(res.headers.location, `${BASE}/Patient/chosen-by-client/_history/1`);
  t.equal((await fhir(app, 'GET', 'Patient/chosen-by-client')).statusCode, 200);
});

t.test('update with a body id that differs from the URL is 400; without an id is 400', async (t) => {
  t.equal((await fhir(app, 'PUT', 'Patient/a1', { resourceType: 'Patient', id: 'b2' })).statusCode, 400);
  t.equal((await fhir(app, 'PUT', 'Patient/a1', { resourceType: 'Patient' })).statusCode, 400);
  t.equal((await fhir(app, 'GET', 'Patient/a1')).statusCode, 404, 'nothing written');
});

t.test('resourceType must match the URL type', async (t) => {
  const res = await fhir(app, 'POST', 'Patient', { resourceType: 'Observation', status: 'final', code: { text: 'x' } });
  t.equal(res.statusCode, 400);
  t.match(json(res), { issue: [{ expression: ['resourceType'] }] });
});

t.test('an update with unchanged content writes no new version', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', active: true }));
  const res = await fhir(app, 'PUT', `Patient/${created.id}`, { resourceType: 'Patient', id: created.id, active: true });
  t.equal(res.statusCode, 200);
  t.equal(res.headers.etag, 'W/"1"');
});

t.test('If-Match with the current version updates; with a stale one answers 412 and writes nothing', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', active: true }));
  const ok = await fhir(app, 'PUT', `Patient/${created.id}`, { ...created, birthDate: '1970-01-01' }, { 'if-match': 'W/"1"' });
  t.equal(ok.statusCode, 200);
  const stale = await fhir(app, 'PUT', `Patient/${created.id}`, { ...created, gender: 'other' }, { 'if-match': 'W/"1"' });
  t.equal(stale.statusCode, 412);
  t.equal(json(stale).resourceType, 'OperationOutcome');
  const now = json<Patient>(await fhir(app, 'GET', `Patient/${created.id}`));
  t.equal(now.meta?.versionId, '2');
  t.equal(now.gender, undefined);
  t.equal((await fhir(app, 'PUT', `Patient/${created.id}`, { ...created }, { 'if-match': 'banana' })).statusCode, 400, 'malformed If-Match');
});

t.test('delete writes a tombstone: read answers 410, history keeps every version', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', active: true }));
  await fhir(app, 'PUT', `Patient/${created.id}`, { ...created, birthDate: '1970-01-01' });
  const del = await fhir(app, 'DELETE', `Patient/${created.id}`);
  t.equal(del.statusCode, 200);
  t.equal(del.headers.etag, 'W/"3"');
  t.equal(json(del).resourceType, 'OperationOutcome');
  const gone = await fhir(app, 'GET', `Patient/${created.id}`);
  t.equal(gone.statusCode, 410);
  t.match(json(gone), { issue: [{ code: 'deleted' }] });
  t.equal((await fhir(app, 'GET', `Patient/${created.id}/_history/3`)).statusCode, 410, 'the tombstone version reads as gone');
  t.equal((await fhir(app, 'GET', `Patient/${created.id}/_history/1`)).statusCode, 200, 'older versions stay readable');
  const history = json<{ total: number; entry: { request: { method: string } }[] }>(await fhir(app, 'GET', `Patient/${created.id}/_history`));
  t.equal(history.total, 3);
  t.same(history.entry.map((e) => e.request.method), ['DELETE', 'PUT', 'POST']);
  const again = await fhir(app, 'DELETE', `Patient/${created.id}`);
  t.equal(again.statusCode, 200, 'deleting again is not an error');
  t.equal(json<{ total: number }>(await fhir(app, 'GET', `Patient/${created.id}/_history`)).total, 3, 'and writes no version');
});

t.test('a deleted resource can be brought back by an update (201)', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }));
  await fhir(app, 'DELETE', `Patient/${created.id}`);
  const res = await fhir(app, 'PUT', `Patient/${created.id}`, { resourceType: 'Patient', id: created.id, active: true });
  t.equal(res.statusCode, 201);
  t.equal(res.headers.etag, 'W/"3"');
});

t.test('delete of an unknown resource answers 200 and writes nothing', async (t) => {
  const res = await fhir(app, 'DELETE', 'Patient/never-was');
  t.equal(res.statusCode, 200);
  t.equal((await fhir(app, 'GET', 'Patient/never-was')).statusCode, 404);
});

t.test('If-None-Match with the current ETag answers 304; If-Modified-Since too', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }));
  const res = await fhir(app, 'GET', `Patient/${created.id}`, undefined, { 'if-none-match': 'W/"1"' });
  t.equal(res.statusCode, 304);
  t.equal(res.body, '');
  t.equal((await fhir(app, 'GET', `Patient/${created.id}`, undefined, { 'if-none-match': 'W/"0"' })).statusCode, 200);
  const later = new Date(Date.now() + 60_000).toUTCString();
  t.equal((await fhir(app, 'GET', `Patient/${created.id}`, undefined, { 'if-modified-since': later })).statusCode, 304);
  t.equal((await fhir(app, 'GET', `Patient/${created.id}`, undefined, { 'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' })).statusCode, 200);
});

t.test('Prefer: return=minimal answers with no body; return=OperationOutcome with an outcome', async (t) => {
  const minimal = await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }, { prefer: 'return=minimal' });
  t.equal(minimal.statusCode, 201);
  t.equal(minimal.body, '');
  t.ok(minimal.headers.location);
  const outcome = await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }, { prefer: 'return=OperationOutcome' });
  t.equal(outcome.statusCode, 201);
  t.match(json(outcome), { resourceType: 'OperationOutcome', issue: [{ severity: 'information' }] });
  const representation = await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }, { prefer: 'return=representation' });
  t.equal(json(representation).resourceType, 'Patient');
});

t.test('HEAD answers the headers of GET without a body', async (t) => {
  const created = json<Patient>(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }));
  const res = await fhir(app, 'HEAD', `Patient/${created.id}`);
  t.equal(res.statusCode, 200);
  t.equal(res.headers.etag, 'W/"1"');
  t.equal(res.body, '');
});

t.test('every served type accepts an official example and reads it back', async (t) => {
  const { examplesOf } = await import('../helpers.js');
  const { SERVED_TYPES } = await import('../../src/base/registry.js');
  // HL7 ships no RelatedPerson example in the R4 package data we keep; one is written here.
  const own = { file: 'written here', resource: { resourceType: 'RelatedPerson', id: 'mother-1', patient: { reference: 'Patient/example' }, relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'MTH' }] }] } as Resource };
  for (const type of SERVED_TYPES) {
    const first = type === 'RelatedPerson' ? own : examplesOf(type)[0];
    if (type === 'Subscription') {
      // HL7's R4 example is a criteria-based (R4 query) subscription; Carnet serves topic-based
      // ones (the R5 Backport IG, docs/notifications.md) and refuses what it would not honour.
      const refused = await fhir(app, 'PUT', `${type}/${first.resource.id}`, first.resource);
      t.equal(refused.statusCode, 422, `${type} ${first.file}: refused, not stored and ignored`);
      t.match(refused.body, /Subscription\.criteria/);
      const topicBased = {
        resourceType: 'Subscription',
        status: 'requested',
        reason: 'New documents',
        criteria: 'https://carnet.example.org/fhir/SubscriptionTopic/document',
        channel: { type: 'websocket', payload: 'application/fhir+json', _payload: { extension: [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content', valueCode: 'id-only' }] } },
      };
      const created = await fhir(app, 'POST', type, topicBased);
      t.equal(created.statusCode, 201, `${type} topic-based: ${created.statusCode === 201 ? '' : created.body.slice(0, 300)}`);
      t.equal((await fhir(app, 'GET', `${type}/${json(created).id}`)).statusCode, 200);
      continue;
    }
    if (type === 'AuditEvent' || type === 'Consent') {
      // AuditEvents are the server's alone; a Consent is its patient's (docs/consent.md).
      const refused = await fhir(app, 'POST', type, first.resource);
      t.equal(refused.statusCode, 403, `${type}: a vendor system does not write it`);
      continue;
    }
    const res = await fhir(app, 'PUT', `${type}/${first.resource.id}`, first.resource);
    t.equal(res.statusCode, 201, `${type} ${first.file}: ${res.statusCode === 201 ? '' : res.body.slice(0, 300)}`);
    const back = await fhir(app, 'GET', `${type}/${json(res).id}`);
    t.equal(back.statusCode, 200);
  }
});
