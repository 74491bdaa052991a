// The audit trail: every interaction on patient data leaves an AuditEvent (IHE BALP) the patient
// reads; a write and its record commit together.
import t from 'tap';
import type { AuditEvent, Bundle, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { doc, emergencyOff, mask, PRESCRIPTION } from '../policy/fixture.js';
import { seed } from '../seed.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
const as = authorizationFor(server);
const patient: TestActor = { kind: 'patient', patient: 'pa' };
const gp: TestActor = { kind: 'practitioner', practitioner: 'gp', profession: '10' };
const stranger: TestActor = { kind: 'practitioner', practitioner: 'other', profession: '10' };
const er: TestActor = { kind: 'practitioner', practitioner: 'er', profession: '10', purpose: 'ETREAT' };

// Seeded as written by the vendor system "loader", the Consents by their patient.
await seed(server.store, [
  { resourceType: 'Practitioner', id: 'gp', name: [{ family: 'Généraliste' }] },
  { resourceType: 'Patient', id: 'pa', generalPractitioner: [{ reference: 'Practitioner/gp' }] },
  { resourceType: 'Patient', id: 'pb' },
  doc('d1', 'pa', PRESCRIPTION, 'Practitioner/gp'),
  doc('d-masked', 'pa', PRESCRIPTION, 'Practitioner/x'),
  mask('m1', 'pa', 'd-masked'),
  emergencyOff('no-er', 'pb'),
] as Resource[]);

/** The patient's access log, newest first, as the patient reads it. */
async function log(query = ''): Promise<{ events: AuditEvent[]; bundle: Bundle }> {
  const res = await fhir(app, 'GET', `AuditEvent?patient=pa&_sort=-date&_count=100${query}`, undefined, await as(patient));
  if (res.statusCode !== 200) throw new Error(res.body);
  const bundle = json<Bundle>(res);
  return { events: (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource as AuditEvent), bundle };
}
const subtype = (e: AuditEvent) => e.subtype?.[0]?.code;
const who = (e: AuditEvent) => e.agent.find((a) => a.requestor)?.who?.reference;

t.test('a professional\'s read is recorded for the patient, newest first, with who and what', async (t) => {
  t.equal((await fhir(app, 'GET', 'DocumentReference/d1', undefined, await as(gp))).statusCode, 200);
  const [latest] = (await log()).events;
  t.equal(subtype(latest), 'read');
  t.equal(latest.action, 'R');
  t.equal(latest.outcome, '0');
  t.equal(who(latest), 'Practitioner/gp');
  t.ok(latest.entity?.some((e) => e.what?.reference === 'DocumentReference/d1'));
  t.ok(latest.entity?.some((e) => e.what?.reference === 'Patient/pa'));
  t.match(JSON.stringify(latest.agent), /"code":"10"/, 'with the profession');
});

t.test('the log names the professional through _include', async (t) => {
  const { bundle } = await log('&_include=AuditEvent:agent');
  const included = (bundle.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => e.resource);
  t.ok(included.some((r) => r?.resourceType === 'Practitioner' && r.id === 'gp'));
});

t.test('a search is recorded with its query', async (t) => {
  await fhir(app, 'GET', 'DocumentReference?patient=pa&type=http://loinc.org|57833-6', undefined, await as(gp));
  const [latest] = (await log()).events;
  t.equal(subtype(latest), 'search-type');
  t.equal(latest.action, 'E');
  const query = latest.entity?.find((e) => e.query)?.query;
  t.match(Buffer.from(query ?? '', 'base64').toString(), /patient=pa/);
});

t.test('the log is searched by its own parameters; another AuditEvent parameter is a 400 naming them', async (t) => {
  await fhir(app, 'GET', 'DocumentReference/d1', undefined, await as(gp));
  const reads = (await log('&subtype=read&outcome=0&agent=Practitioner/gp')).events;
  t.ok(reads.length > 0 && reads.every((e) => subtype(e) === 'read' && e.outcome === '0' && who(e) === 'Practitioner/gp'), 'subtype, outcome and agent filter the log');
  const [latest] = reads;
  const again = await fhir(app, 'GET', `AuditEvent/${latest.id}`, undefined, await as(patient));
  t.same(json<AuditEvent>(again), latest, 'a record reads as the search lists it');
  t.equal((await log(`&date=${latest.recorded}`)).events.some((e) => e.id === latest.id), true, 'date finds it');
  for (const query of ['entity-type=2', 'action=R', 'type=rest', 'site=carnet.example', 'agent:identifier=urn:carnet:client|x', 'address=192.0.2.1']) {
    const res = await fhir(app, 'GET', `AuditEvent?patient=pa&${query}`, undefined, await as(patient));
    t.equal(res.statusCode, 400, `${query}: 400`);
    const outcome = json<OperationOutcome>(res).issue[0];
    t.equal(outcome.code, 'not-supported', `${query}: not-supported`);
    t.match(outcome.diagnostics, query.startsWith('agent:') ? /search "agent" by reference/ : /AuditEvent is searched by _id, _lastUpdated, _security, _tag, _profile, _source, date, patient, entity, agent, subtype, outcome/, `${query}: the supported parameters are named`);
  }
});

t.test('a refused read is recorded as refused, and the professional still learns nothing', async (t) => {
  t.equal((await fhir(app, 'GET', 'DocumentReference/d-masked', undefined, await as(gp))).statusCode, 404);
  const [latest] = (await log()).events;
  t.equal(latest.outcome, '4');
  t.equal(who(latest), 'Practitioner/gp');
  t.equal((await fhir(app, 'GET', 'DocumentReference/d1', undefined, await as(stranger))).statusCode, 404);
  t.equal(who((await log()).events[0]), 'Practitioner/other', 'the stranger\'s attempt too');
});

t.test('an emergency access is flagged ETREAT in its record', async (t) => {
  t.equal((await fhir(app, 'GET', 'DocumentReference/d1', undefined, await as(er))).statusCode, 200);
  const [latest] = (await log()).events;
  t.match(latest.purposeOfEvent, [{ coding: [{ code: 'ETREAT' }] }]);
});

t.test('a write and its record commit together; a failed transaction records its failure only', async (t) => {
  // Reading the log is itself recorded: count the creates only.
  const creates = (events: AuditEvent[]) => events.filter((e) => subtype(e) === 'create').length;
  const before = creates((await log()).events);
  const created = await fhir(app, 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/pa' } }, await as(gp));
  t.equal(created.statusCode, 201);
  const after = await log();
  t.equal(creates(after.events), before + 1);
  const record = after.events.find((e) => subtype(e) === 'create')!;
  t.ok(record.entity?.some((e) => e.what?.reference === `Observation/${json(created).id}`));
  const failed = await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'transaction', entry: [
    { resource: { resourceType: 'Observation', status: 'final', code: { text: 'y' }, subject: { reference: 'Patient/pa' } }, request: { method: 'POST', url: 'Observation' } },
    { resource: { resourceType: 'Observation', status: 'nope', code: { text: 'z' } } as unknown as Resource, request: { method: 'POST', url: 'Observation' } },
  ] }, await as(gp));
  t.equal(failed.statusCode, 400);
  const total = json<Bundle>(await fhir(app, 'GET', 'Observation?patient=pa&_summary=count', undefined, await as(patient))).total;
  t.equal(total, 1, 'the transaction wrote nothing');
});

t.test('professionals cannot read the access log; nobody can change it', async (t) => {
  const res = json<Bundle>(await fhir(app, 'GET', 'AuditEvent?patient=pa', undefined, await as(gp)));
  t.equal(res.total, 0);
  const [event] = (await log()).events;
  t.equal((await fhir(app, 'DELETE', `AuditEvent/${event.id}`, undefined, await as(patient))).statusCode, 405);
});

t.test('another patient\'s log is out of reach', async (t) => {
  const res = json<Bundle>(await fhir(app, 'GET', 'AuditEvent?patient=pa', undefined, await as({ kind: 'patient', patient: 'pb' })));
  t.equal(res.total, 0);
});

t.test('a delete is recorded in the log of the patient whose resource it was', async (t) => {
  const { id: _given, ...mine } = doc('unused', 'pa', '60591-5', 'Patient/pa');
  const created = await fhir(app, 'POST', 'DocumentReference', mine, await as(patient));
  t.equal(created.statusCode, 201, 'the patient deposits a document');
  const id = json(created).id;
  t.equal((await fhir(app, 'DELETE', `DocumentReference/${id}`, undefined, await as(patient))).statusCode, 200);
  const record = (await log()).events.find((e) => subtype(e) === 'delete');
  t.ok(record, 'the delete is in the patient\'s log');
  t.ok(record?.entity?.some((e) => e.what?.reference === `DocumentReference/${id}`));
});

t.test('each read entry of a batch is recorded as the read it is, a denied one as denied', async (t) => {
  const res = await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'batch', entry: [
    { request: { method: 'GET', url: 'DocumentReference/d1' } },
    { request: { method: 'GET', url: 'DocumentReference/d-masked' } },
  ] }, await as(gp));
  t.equal(res.statusCode, 200);
  t.same(json<Bundle>(res).entry?.map((e) => e.response?.status), ['200 OK', '404 Not Found']);
  // Both entries may be recorded within one millisecond: told apart by outcome, not by order.
  const events = (await log()).events.slice(0, 2);
  const read = events.find((e) => e.outcome === '0')!;
  const masked = events.find((e) => e.outcome === '4')!;
  t.equal(subtype(read), 'read');
  t.equal(read.outcome, '0');
  t.ok(read.entity?.some((e) => e.what?.reference === 'DocumentReference/d1'));
  t.equal(subtype(masked), 'read');
  t.equal(masked.outcome, '4', 'the masked document\'s read is recorded as refused');
  t.equal(who(masked), 'Practitioner/gp');
});

t.test('a transaction\'s read entries are recorded too, and a failed read does not hide committed writes', async (t) => {
  const res = await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'transaction', entry: [
    { fullUrl: 'urn:uuid:5d0a6c34-0000-4000-8000-000000000001', resource: { resourceType: 'Observation', status: 'final', code: { text: 'w' }, subject: { reference: 'Patient/pa' } }, request: { method: 'POST', url: 'Observation' } },
    { request: { method: 'GET', url: 'DocumentReference/d1' } },
    { request: { method: 'GET', url: 'DocumentReference/d-masked' } },
  ] }, await as(gp));
  t.equal(res.statusCode, 200);
  const entries = json<Bundle>(res).entry ?? [];
  t.same(entries.map((e) => e.response?.status), ['201 Created', '200 OK', '404 Not Found']);
  const events = (await log()).events.slice(0, 3);
  const outcomes = (type: string) => events.filter((e) => subtype(e) === type).map((e) => e.outcome).sort();
  t.same(outcomes('transaction'), ['0'], 'the writes\' record');
  t.same(outcomes('read'), ['0', '4'], 'one record per read entry, the masked one refused');
});
