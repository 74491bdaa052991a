// batch and transaction Bundles POSTed to the base.
import t from 'tap';
import type { Bundle, BundleEntry, Observation, Patient } from '@medplum/fhirtypes';
import { BASE, example, fhir, json, testServer } from '../helpers.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

const tx = (entry: BundleEntry[], type: 'transaction' | 'batch' = 'transaction'): Bundle => ({ resourceType: 'Bundle', type, entry });

t.test('a transaction rewrites urn:uuid references to the assigned ids', async (t) => {
  const res = await fhir(app, 'POST', '/fhir/', tx([
    { fullUrl: 'urn:uuid:obs-1', resource: { resourceType: 'Observation', status: 'final', code: { text: 'weight' }, subject: { reference: 'urn:uuid:pat-1' } }, request: { method: 'POST', url: 'Observation' } },
    { fullUrl: 'urn:uuid:pat-1', resource: { resourceType: 'Patient', active: true }, request: { method: 'POST', url: 'Patient' } },
  ]));
  t.equal(res.statusCode, 200);
  const body = json<Bundle>(res);
  t.equal(body.type, 'transaction-response');
  t.equal(body.entry?.length, 2);
  const [obsEntry, patEntry] = body.entry!;
  t.match(obsEntry.response, { status: '201 Created', etag: 'W/"1"' });
  t.match(patEntry.response?.location, new RegExp(`^${BASE}/Patient/[0-9a-f-]{36}/_history/1$`));
  const patientId = (patEntry.resource as Patient).id;
  t.equal((obsEntry.resource as Observation).subject?.reference, `Patient/${patientId}`);
  const stored = json<Observation>(await fhir(app, 'GET', `Observation/${(obsEntry.resource as Observation).id}`));
  t.equal(stored.subject?.reference, `Patient/${patientId}`);
});

t.test('a transaction is all or nothing: one invalid entry rolls every entry back', async (t) => {
  const res = await fhir(app, 'POST', '/fhir', tx([
    { resource: { resourceType: 'Patient', identifier: [{ value: 'rollback-me' }] }, request: { method: 'POST', url: 'Patient' } },
    { resource: { resourceType: 'Patient', birthDate: 'not-a-date' } as unknown as Patient, request: { method: 'POST', url: 'Patient' } },
  ]));
  t.equal(res.statusCode, 400);
  const outcome = json(res);
  t.equal(outcome.resourceType, 'OperationOutcome');
  t.match(outcome, { issue: [{ diagnostics: /^Bundle\.entry\[1\]/, expression: ['Bundle.entry[1].resource.birthDate'] }] });
  t.equal(json<Bundle>(await fhir(app, 'GET', 'Patient?identifier=rollback-me')).total, 0, 'the first entry was not kept');
});

t.test('a transaction failing on a stale If-Match answers 412 and keeps nothing', async (t) => {
  await fhir(app, 'PUT', 'Patient/tx-lock', { resourceType: 'Patient', id: 'tx-lock' });
  await fhir(app, 'PUT', 'Patient/tx-lock', { resourceType: 'Patient', id: 'tx-lock', gender: 'female' });
  const res = await fhir(app, 'POST', '/fhir', tx([
    { resource: { resourceType: 'Patient', identifier: [{ value: 'tx-lock-side' }] }, request: { method: 'POST', url: 'Patient' } },
    { resource: { resourceType: 'Patient', id: 'tx-lock', gender: 'male' }, request: { method: 'PUT', url: 'Patient/tx-lock', ifMatch: 'W/"1"' } },
  ]));
  t.equal(res.statusCode, 412);
  t.match(json(res), { issue: [{ diagnostics: /Bundle\.entry\[1\]/ }] });
  t.equal(json<Bundle>(await fhir(app, 'GET', 'Patient?identifier=tx-lock-side')).total, 0);
  t.equal(json<Patient>(await fhir(app, 'GET', 'Patient/tx-lock')).gender, 'female');
});

t.test('a transaction touching one resource twice is refused', async (t) => {
  const res = await fhir(app, 'POST', '/fhir', tx([
    { resource: { resourceType: 'Patient', id: 'twice' }, request: { method: 'PUT', url: 'Patient/twice' } },
    { request: { method: 'DELETE', url: 'Patient/twice' } },
  ]));
  t.equal(res.statusCode, 400);
  t.equal((await fhir(app, 'GET', 'Patient/twice')).statusCode, 404);
});

t.test('a transaction resolves conditional creates and conditional references', async (t) => {
  await fhir(app, 'PUT', 'Patient/ins-known', { resourceType: 'Patient', id: 'ins-known', identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '277076322082910' }] });
  const res = await fhir(app, 'POST', '/fhir', tx([
    { fullUrl: 'urn:uuid:p', resource: { resourceType: 'Patient', identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '277076322082910' }] }, request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:oid:1.2.250.1.213.1.4.8|277076322082910' } },
    { resource: { resourceType: 'Observation', status: 'final', code: { text: 'a' }, subject: { reference: 'urn:uuid:p' } }, request: { method: 'POST', url: 'Observation' } },
    { resource: { resourceType: 'Observation', status: 'final', code: { text: 'b' }, subject: { reference: 'Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|277076322082910' } }, request: { method: 'POST', url: 'Observation' } },
  ]));
  t.equal(res.statusCode, 200);
  const body = json<Bundle>(res);
  t.match(body.entry?.[0].response?.status, /^200/);
  t.equal((body.entry?.[1].resource as Observation).subject?.reference, 'Patient/ins-known');
  t.equal((body.entry?.[2].resource as Observation).subject?.reference, 'Patient/ins-known');
});

t.test('a conditional reference matching nothing fails the transaction with 412', async (t) => {
  const res = await fhir(app, 'POST', '/fhir', tx([
    { resource: { resourceType: 'Observation', status: 'final', code: { text: 'c' }, subject: { reference: 'Patient?identifier=nobody' } }, request: { method: 'POST', url: 'Observation' } },
  ]));
  t.equal(res.statusCode, 412);
});

t.test('a transaction with update, patch, delete and read entries answers each in place', async (t) => {
  await fhir(app, 'PUT', 'Patient/mix-a', { resourceType: 'Patient', id: 'mix-a' });
  await fhir(app, 'PUT', 'Patient/mix-b', { resourceType: 'Patient', id: 'mix-b' });
  const patch = Buffer.from(JSON.stringify([{ op: 'add', path: '/active', value: true }])).toString('base64');
  const res = await fhir(app, 'POST', '/fhir', tx([
    { request: { method: 'GET', url: 'Patient/mix-a' } },
    { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: patch }, request: { method: 'PATCH', url: 'Patient/mix-a' } },
    { request: { method: 'DELETE', url: 'Patient/mix-b' } },
    { resource: { resourceType: 'Patient', id: 'mix-c' }, request: { method: 'PUT', url: 'Patient/mix-c' } },
  ]));
  t.equal(res.statusCode, 200);
  const statuses = json<Bundle>(res).entry?.map((e) => e.response?.status);
  t.same(statuses, ['200 OK', '200 OK', '200 OK', '201 Created']);
  t.equal((json<Bundle>(res).entry?.[0].resource as Patient).active, true, 'reads run after the writes');
  t.equal((await fhir(app, 'GET', 'Patient/mix-b')).statusCode, 410);
});

t.test('a batch runs each entry on its own and reports each status', async (t) => {
  const res = await fhir(app, 'POST', '/fhir', tx([
    { resource: { resourceType: 'Patient', identifier: [{ value: 'batch-ok' }] }, request: { method: 'POST', url: 'Patient' } },
    { request: { method: 'GET', url: 'Patient/does-not-exist' } },
    { resource: { resourceType: 'Patient', foo: 1 } as unknown as Patient, request: { method: 'POST', url: 'Patient' } },
  ], 'batch'));
  t.equal(res.statusCode, 200);
  const body = json<Bundle>(res);
  t.equal(body.type, 'batch-response');
  t.match(body.entry?.[0].response?.status, /^201/);
  t.match(body.entry?.[1].response, { status: '404 Not Found', outcome: { resourceType: 'OperationOutcome' } });
  t.match(body.entry?.[2].response?.status, /^400/);
  t.equal(json<Bundle>(await fhir(app, 'GET', 'Patient?identifier=batch-ok')).total, 1, 'the good entry was kept');
});

t.test('the official HL7 XDS transaction example is stored with its references rewritten', async (t) => {
  const bundle = example<Bundle>('Bundle', 'Bundle-xds.json');
  const res = await fhir(app, 'POST', '/fhir', bundle);
  t.equal(res.statusCode, 200, res.body.slice(0, 400));
  const entries = json<Bundle>(res).entry!;
  t.same(entries.map((e) => e.response?.status), ['201 Created', '201 Created', '201 Created', '201 Created', '201 Created']);
  const doc = entries[0].resource as { subject?: { reference?: string }; author?: { reference?: string }[] };
  const patientId = entries[1].resource?.id;
  t.equal(doc.subject?.reference, `Patient/${patientId}`, 'an absolute fullUrl reference is rewritten');
  t.same(doc.author?.map((a) => a.reference), [`Practitioner/${entries[2].resource?.id}`, `Practitioner/${entries[3].resource?.id}`]);
  const binary = await fhir(app, 'GET', `Binary/${entries[4].resource?.id}`);
  t.equal(binary.statusCode, 200, 'the Binary entry is stored');
});

t.test('the official HL7 transaction example fails as a whole on the entry it cannot process', async (t) => {
  const bundle = example<Bundle>('Bundle', 'Bundle-bundle-transaction.json');
  const res = await fhir(app, 'POST', '/fhir', bundle);
  t.ok(res.statusCode >= 400 && res.statusCode < 500, `answered ${res.statusCode}`);
  t.match(json(res), { resourceType: 'OperationOutcome', issue: [{ diagnostics: /^Bundle\.entry\[\d+\]/ }] });
  t.equal((await fhir(app, 'GET', 'Patient/123')).statusCode, 404, 'its update-as-create of Patient/123 was rolled back');
});

t.test('a Bundle that is not batch or transaction is 400; so is a non-Bundle', async (t) => {
  t.equal((await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'collection', entry: [] })).statusCode, 400);
  t.equal((await fhir(app, 'POST', '/fhir', { resourceType: 'Patient' })).statusCode, 400);
  t.equal((await fhir(app, 'POST', '/fhir', tx([{ request: { method: 'POST' } } as BundleEntry]))).statusCode, 400);
});
