// Writes and side channels through the real HTTP API: one regression test for each way around the
// consent engine found by issue 12, then the rules of docs/consent.md "Who writes what". One world:
// patients pa (GP dr-gp; permits for the pharmacist ph and the podiatrist podo), pb, and the minor
// pc with representative rp-1; professionals with and without relationships; an insurer; vendor
// systems lab and his.
import t from 'tap';
import type { AuditEvent, Bundle, Communication, Consent, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { authorizationFor, DIRECTORY_FEED, fhir, json, testServer, type TestActor } from '../helpers.js';
import { seed } from '../seed.js';
import { block, doc, LAB, mask, permit, PRESCRIPTION } from './fixture.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
const as = authorizationFor(server);

const pa: TestActor = { kind: 'patient', patient: 'pa' };
const pb: TestActor = { kind: 'patient', patient: 'pb' };
const rep: TestActor = { kind: 'representative', relatedPerson: 'rp-1', patients: ['pc'] };
const doctor = (practitioner: string, profession = '10', extra: Partial<Extract<TestActor, { kind: 'practitioner' }>> = {}): TestActor => ({ kind: 'practitioner', practitioner, profession, ...extra });
const gp = doctor('dr-gp');
const stranger = doctor('dr-none');
const pharmacist = doctor('ph', '21');
const podiatrist = doctor('podo', '80');
const lab: TestActor = { kind: 'system', client: 'lab' };
const his: TestActor = { kind: 'system', client: 'his' };
const vendor: TestActor = { kind: 'system', client: 'vendor' };
const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const CONFIDENTIAL = { system: 'urn:carnet:security', code: 'confidential-from-representatives' };
const PRCP = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }] };
const pdf = Buffer.from('%PDF-1.4 SECRET').toString('base64');

await seed(server.store, [
  { resourceType: 'Practitioner', id: 'dr-gp', name: [{ family: 'Généraliste' }] },
  { resourceType: 'Organization', id: 'org-1', name: 'Clinique' },
  { resourceType: 'Patient', id: 'pa', active: true, identifier: [{ system: INS, value: '100000000000001' }], generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] },
  { resourceType: 'Patient', id: 'pb', identifier: [{ system: INS, value: '100000000000002' }] },
  { resourceType: 'Patient', id: 'pc', birthDate: '2015-01-01', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] },
  doc('d-gp', 'pa', PRESCRIPTION, 'Practitioner/dr-gp'),
  doc('d-masked', 'pa', PRESCRIPTION, 'Organization/org-1'),
  doc('d-first', 'pa', PRESCRIPTION, 'Organization/org-1'),
  doc('d-second', 'pa', PRESCRIPTION, 'Organization/org-1'),
  doc('d-pb', 'pb', LAB, 'Organization/org-1'),
  doc('d-secret', 'pc', LAB, 'Practitioner/dr-gp', { meta: { security: [CONFIDENTIAL] } }),
  { resourceType: 'Binary', id: 'bin-pb', contentType: 'application/pdf', securityContext: { reference: 'DocumentReference/d-pb' }, data: pdf },
  { resourceType: 'Observation', id: 'o-pb', status: 'final', code: { text: 'weight' }, subject: { reference: 'Patient/pb' } },
  { resourceType: 'Observation', id: 'o-pb-2', status: 'final', code: { text: 'weight' }, subject: { reference: 'Patient/pb' } },
  permit('c-ph', 'pa', 'ph'),
  permit('c-podo', 'pa', 'podo'),
  mask('c-mask', 'pa', 'd-masked'),
] as Resource[]);
// The lab's result, written by the lab itself.
const labResult = json(await fhir(app, 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'glucose' }, subject: { reference: 'Patient/pa' }, valueQuantity: { value: 5.4, unit: 'mmol/L' } }, await as(lab)));

// The vendor systems hold system/*.cruds only: no directory scope.
const systems = new Set<TestActor>([lab, his, vendor]);
const send = async (actor: TestActor, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown, headers: Record<string, string> = {}) => fhir(app, method, url, body, { ...(await as(actor, systems.has(actor) ? 'system/*.cruds' : undefined)), ...headers });
const observationOf = (patient: string) => ({ resourceType: 'Observation', status: 'final', code: { text: 'probe' }, subject: { reference: `Patient/${patient}` } });
const jsonPatch = { 'content-type': 'application/json-patch+json' };
const consentOf = (c: Consent) => {
  const { id: _id, ...rest } = c;
  return rest;
};

t.test('conditional create never answers with a hidden resource, nor depends on one', async (t) => {
  for (const [actor, type, criteria, body] of [
    [pa, 'Observation', '_id=o-pb', observationOf('pa')],
    [stranger, 'Binary', '_id=bin-pb', { resourceType: 'Binary', contentType: 'text/plain', data: 'eA==' }],
    [gp, 'DocumentReference', '_id=d-masked', { ...doc('x', 'pa', PRESCRIPTION, 'Practitioner/dr-gp'), id: undefined }],
    [gp, 'DocumentReference', 'patient=pa&type=57833-6&author:Organization=org-1&_id=d-masked', { ...doc('x', 'pa', PRESCRIPTION, 'Practitioner/dr-gp'), id: undefined }],
    [pa, 'Observation', 'subject=Patient/pb', observationOf('pa')],
  ] as [TestActor, string, string, Resource][]) {
    const res = await send(actor, 'POST', type, body, { 'if-none-exist': criteria });
    t.equal(res.statusCode, 201, `${type} If-None-Exist ${criteria}: no visible match, so a new resource`);
    t.notOk(res.body.includes('SECRET') || res.body.includes('"o-pb"') || res.body.includes('"d-masked"') || res.body.includes('bin-pb'), 'nothing of the hidden match');
  }
  const probe = { ...observationOf('pa'), identifier: [{ system: 'urn:probe', value: '1' }] };
  t.equal((await send(pa, 'POST', 'Observation', probe, { 'if-none-exist': 'identifier=urn:probe|1' })).statusCode, 201);
  t.equal((await send(pa, 'POST', 'Observation', probe, { 'if-none-exist': 'identifier=urn:probe|1' })).statusCode, 200, 'a visible match is found as usual');
});

t.test('identity by INS: a system learns the Patient exists, never its content', async (t) => {
  const res = await send(vendor, 'POST', 'Patient', { resourceType: 'Patient', identifier: [{ system: INS, value: '100000000000002' }], name: [{ family: 'Probe' }] }, { 'if-none-exist': `identifier=${INS}|100000000000002` });
  t.equal(res.statusCode, 200);
  t.match(res.headers.location, /\/Patient\/pb\//);
  t.equal(json(res).resourceType, 'OperationOutcome', 'an OperationOutcome, not the Patient');
  t.notOk(res.body.includes('Probe') || res.body.includes('birthDate'));
  const update = await send(vendor, 'PUT', `Patient?identifier=${INS}|100000000000002`, { resourceType: 'Patient', identifier: [{ system: INS, value: '100000000000002' }], name: [{ family: 'Hijack' }] });
  t.equal(update.statusCode, 403, 'nor changes it');
});

t.test('conditional operations in batch and transaction entries obey the same rule', async (t) => {
  const batch = json<Bundle>(
    await send(pa, 'POST', '', { resourceType: 'Bundle', type: 'batch', entry: [{ resource: observationOf('pa'), request: { method: 'POST', url: 'Observation', ifNoneExist: '_id=o-pb' } }] }),
  );
  t.match(batch.entry?.[0].response?.status, /^201/);
  t.notOk(JSON.stringify(batch).includes('"o-pb"'));
  const tx = await send(pa, 'POST', '', { resourceType: 'Bundle', type: 'transaction', entry: [{ fullUrl: 'urn:uuid:1', resource: observationOf('pa'), request: { method: 'POST', url: 'Observation', ifNoneExist: '_id=o-pb' } }] });
  t.equal(tx.statusCode, 200);
  t.match(json<Bundle>(tx).entry?.[0].response?.status, /^201/);
  t.notOk(tx.body.includes('"o-pb"'));
});

t.test('conditional update and delete: a hidden match is no match', async (t) => {
  const put = await send(pa, 'PUT', 'Observation?_id=o-pb', observationOf('pa'));
  t.equal(put.statusCode, 201, 'a conditional PUT on a hidden id creates, as when nothing matches');
  const free = await send(pa, 'PUT', 'Observation?_id=o-none', observationOf('pa'));
  t.equal(free.statusCode, 201);
  const hidden = await send(pa, 'DELETE', 'Observation?_id=o-pb');
  const none = await send(pa, 'DELETE', 'Observation?_id=o-none');
  t.equal(hidden.statusCode, none.statusCode);
  t.equal(hidden.body.replace('o-pb', 'X'), none.body.replace('o-none', 'X'), 'a conditional delete of a hidden resource reads as one of nothing');
  t.equal((await send(lab, 'GET', 'Observation/o-pb')).statusCode, 404, 'the lab does not see o-pb either (it did not write it)');
  t.equal((await send(pb, 'GET', 'Observation/o-pb')).statusCode, 200, 'and it is still there');
});

t.test('PUT, PATCH and DELETE of a hidden resource answer as for a missing one', async (t) => {
  for (const [method, body, headers] of [
    ['PUT', { ...observationOf('pa'), id: 'ID' }, {}],
    ['PATCH', [{ op: 'replace', path: '/status', value: 'amended' }], jsonPatch],
    ['DELETE', undefined, {}],
  ] as ['PUT' | 'PATCH' | 'DELETE', unknown, Record<string, string>][]) {
    const withId = (id: string) => (body && !Array.isArray(body) ? { ...(body as object), id } : body);
    const hidden = await send(pa, method, 'Observation/o-pb-2', withId('o-pb-2'), headers);
    const missing = await send(pa, method, 'Observation/o-missing', withId('o-missing'), headers);
    t.equal(hidden.statusCode, missing.statusCode, `${method}: the same status`);
    t.equal(hidden.body.replaceAll('o-pb-2', 'X'), missing.body.replaceAll('o-missing', 'X'), `${method}: the same body`);
  }
  t.equal((await send(pb, 'GET', 'Observation/o-pb-2')).statusCode, 200, 'untouched');
});

t.test('a vendor system creates no Consent', async (t) => {
  for (const c of [permit('x', 'pa', 'dr-spy'), block('x', 'pa', 'Practitioner/dr-gp'), mask('x', 'pa', 'd-gp')]) {
    t.equal((await send(vendor, 'POST', 'Consent', consentOf(c))).statusCode, 403);
  }
  const tx = await send(vendor, 'POST', '', { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: consentOf(permit('x', 'pa', 'dr-spy')), request: { method: 'POST', url: 'Consent' } }] });
  t.equal(tx.statusCode, 403, 'nor through a transaction');
  t.equal((await send(doctor('dr-spy'), 'GET', 'DocumentReference/d-gp')).statusCode, 404);
});

t.test('professionals do not change the Patient resource', async (t) => {
  const addGp = [{ op: 'add', path: '/generalPractitioner/-', value: { reference: 'Practitioner/dr-spy' } }];
  t.equal((await send(pharmacist, 'PATCH', 'Patient/pa', addGp, jsonPatch)).statusCode, 403, 'the pharmacist adds no doctor');
  t.equal((await send(pharmacist, 'PATCH', 'Patient/pa', [{ op: 'replace', path: '/active', value: false }], jsonPatch)).statusCode, 403, 'nor closes the record');
  t.equal((await send(gp, 'PATCH', 'Patient/pa', addGp, jsonPatch)).statusCode, 403, 'nor does the GP');
  t.equal((await send(doctor('dr-spy'), 'GET', 'DocumentReference/d-gp')).statusCode, 404, 'dr-spy still reads nothing');
  t.equal((await send(gp, 'GET', 'DocumentReference/d-gp')).statusCode, 200, 'the record is still open');
  t.equal((await send(pa, 'PATCH', 'Patient/pa', [{ op: 'replace', path: '/active', value: false }], jsonPatch)).statusCode, 403, 'the patient does not flip active either (the account lifecycle does)');
  t.equal((await send(pa, 'PATCH', 'Patient/pa', addGp, jsonPatch)).statusCode, 200, 'the patient chooses their doctors');
  t.equal((await send(doctor('dr-spy'), 'GET', 'DocumentReference/d-gp')).statusCode, 200, 'who then reads the record');
  t.equal((await send(pa, 'PATCH', 'Patient/pa', [{ op: 'remove', path: '/generalPractitioner/1' }], jsonPatch)).statusCode, 200);
});

t.test('nobody rewrites another author\'s resource', async (t) => {
  const rewrite = [{ op: 'replace', path: '/valueQuantity/value', value: 1.1 }];
  // The access matrix does not open measures and results to podiatrists (docs/profile.md): for them the result does not exist.
  t.equal((await send(podiatrist, 'PATCH', `Observation/${labResult.id}`, rewrite, jsonPatch)).statusCode, 404, 'the podiatrist does not rewrite the lab result (it is hidden from them)');
  t.equal((await send(gp, 'PUT', `Observation/${labResult.id}`, { ...labResult, status: 'amended' })).statusCode, 403, 'nor the GP');
  t.equal((await send(gp, 'DELETE', `Observation/${labResult.id}`)).statusCode, 403);
  t.equal((await send(lab, 'PATCH', `Observation/${labResult.id}`, [{ op: 'replace', path: '/status', value: 'amended' }], jsonPatch)).statusCode, 200, 'the lab corrects its own');
});

t.test('a patient neither re-authors nor deletes a professional\'s document', async (t) => {
  t.equal((await send(pa, 'PATCH', 'DocumentReference/d-gp', [{ op: 'replace', path: '/author', value: [{ reference: 'Patient/pa' }] }], jsonPatch)).statusCode, 403);
  t.equal((await send(pa, 'PATCH', 'DocumentReference/d-gp', [{ op: 'replace', path: '/status', value: 'entered-in-error' }], jsonPatch)).statusCode, 403, 'nor changes its status');
  t.equal((await send(pa, 'DELETE', 'DocumentReference/d-gp')).statusCode, 403, 'nor deletes it: they mask it');
  t.equal((await send(gp, 'GET', 'DocumentReference/d-gp')).statusCode, 200);
  t.equal((await send(gp, 'PATCH', 'DocumentReference/d-gp', [{ op: 'replace', path: '/author', value: [{ reference: 'Practitioner/dr-gp' }, { reference: 'Practitioner/dr-friend' }] }], jsonPatch)).statusCode, 403, 'the author gives no authorship away');
});

t.test('every entry of a mask or block counts, on reads as on searches', async (t) => {
  const two = mask('x', 'pa', 'd-first');
  two.provision?.data?.push({ meaning: 'instance', reference: { reference: 'DocumentReference/d-second' } });
  const created = await send(pa, 'POST', 'Consent', consentOf(two));
  t.equal(created.statusCode, 201);
  for (const id of ['d-first', 'd-second']) t.equal((await send(gp, 'GET', `DocumentReference/${id}`)).statusCode, 404, `${id} masked`);
  const found = json<Bundle>(await send(gp, 'GET', 'DocumentReference?patient=pa'));
  t.notOk((found.entry ?? []).some((e) => ['d-first', 'd-second'].includes(e.resource?.id ?? '')), 'search agrees');
  t.equal((await send(pa, 'DELETE', `Consent/${json(created).id}`)).statusCode, 200);
  t.equal((await send(gp, 'GET', 'DocumentReference/d-second')).statusCode, 200, 'unmasked');
  const blocks = block('x', 'pa', 'Practitioner/dr-other');
  blocks.provision?.actor?.push({ role: blocks.provision.actor[0].role, reference: { reference: 'Practitioner/ph' } });
  const blocked = await send(pa, 'POST', 'Consent', consentOf(blocks));
  t.equal((await send(pharmacist, 'GET', 'Patient/pa')).statusCode, 404, 'the second actor of a block is blocked');
  t.equal((await send(pa, 'DELETE', `Consent/${json(blocked).id}`)).statusCode, 200);
  t.equal((await send(pharmacist, 'GET', 'Patient/pa')).statusCode, 200);
});

t.test('periods are honoured; what cannot be enforced is refused with 422', async (t) => {
  const ended = { ...consentOf(permit('x', 'pa', 'dr-temp')), provision: { ...permit('x', 'pa', 'dr-temp').provision, period: { start: '2020-01-01', end: '2020-12-31' } } };
  t.equal((await send(pa, 'POST', 'Consent', ended)).statusCode, 201);
  t.equal((await send(doctor('dr-temp'), 'GET', 'Patient/pa')).statusCode, 404, 'a permit that ended grants nothing');
  t.equal(json<Bundle>(await send(doctor('dr-temp'), 'GET', 'Observation?patient=pa&_summary=count')).total, 0, 'on searches either');
  const later = { ...consentOf(block('x', 'pa', 'Practitioner/dr-gp')), provision: { ...block('x', 'pa', 'Practitioner/dr-gp').provision, period: { start: '2099-01-01' } } };
  t.equal((await send(pa, 'POST', 'Consent', later)).statusCode, 201);
  t.equal((await send(gp, 'GET', 'DocumentReference/d-gp')).statusCode, 200, 'a block that starts later does not apply yet');
  const nested = { ...consentOf(block('x', 'pa', 'Practitioner/dr-gp')), provision: { type: 'deny', actor: [{ role: PRCP, reference: { reference: 'Practitioner/dr-gp' } }], provision: [{ type: 'permit', purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'ETREAT' }] }] } };
  const refused = await send(pa, 'POST', 'Consent', nested);
  t.equal(refused.statusCode, 422);
  t.ok(json<OperationOutcome>(refused).issue.some((i) => i.expression?.includes('Consent.provision.provision')), 'the OperationOutcome names the element');
  t.equal(json<Bundle>(await send(pa, 'GET', 'Consent?patient=pa&_summary=count')).total, 5, 'and nothing was stored');
});

t.test('AuditEvents are written by the server alone, through every path', async (t) => {
  const forged: AuditEvent = {
    resourceType: 'AuditEvent',
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
    recorded: '2026-01-01T00:00:00Z',
    agent: [{ who: { reference: 'Practitioner/dr-gp' }, requestor: true }],
    source: { observer: { display: 'forged' } },
    entity: [{ what: { reference: 'Patient/pb' } }],
  };
  for (const actor of [vendor, pa, pb, gp]) {
    t.equal((await send(actor, 'POST', 'AuditEvent', forged)).statusCode, 403, 'POST');
    t.equal((await send(actor, 'PUT', 'AuditEvent/forged', { ...forged, id: 'forged' })).statusCode, 405, 'PUT');
    const tx = json<Bundle>(await send(actor, 'POST', '', { resourceType: 'Bundle', type: 'batch', entry: [{ resource: forged, request: { method: 'POST', url: 'AuditEvent' } }] }));
    t.match(tx.entry?.[0].response?.status, /^403/, 'batch');
  }
  const log = json<Bundle>(await send(pb, 'GET', 'AuditEvent?patient=pb&_count=200'));
  t.notOk(JSON.stringify(log).includes('forged'), 'the patient\'s log holds no forged record');
});

t.test('the directory: written by the directory feed only', async (t) => {
  const practitioner = { resourceType: 'Practitioner', id: 'dr-gp', name: [{ family: 'Usurpé' }] };
  for (const actor of [gp, pharmacist, pa, vendor]) {
    t.equal((await send(actor, 'PUT', 'Practitioner/dr-gp', practitioner)).statusCode, 403, `${actor.kind} PUT`);
    t.equal((await send(actor, 'DELETE', 'Organization/org-1')).statusCode, 403, `${actor.kind} DELETE`);
  }
  const feed = await fhir(app, 'PUT', 'Practitioner/dr-new-feed', { resourceType: 'Practitioner', id: 'dr-new-feed' }, { authorization: `Bearer ${await server.token({ kind: 'system', client: 'rpps' }, DIRECTORY_FEED)}` });
  t.equal(feed.statusCode, 201, 'the feed, whose scope names the type');
});

t.test('writing into a record needs a care relationship; the patient is told', async (t) => {
  const { id: _id, ...mine } = doc('x', 'pb', PRESCRIPTION, 'Practitioner/dr-none');
  t.equal((await send(stranger, 'POST', 'DocumentReference', mine)).statusCode, 404, 'naming oneself author is not enough');
  t.equal((await send(stranger, 'POST', 'Observation', observationOf('pb'))).statusCode, 404);
  const written = await send(gp, 'POST', 'Observation', observationOf('pa'));
  t.equal(written.statusCode, 201, 'the GP writes');
  await app.notifier.drain();
  const inbox = json<Bundle>(await send(pa, 'GET', 'Communication?recipient=Patient/pa&category=notification&_count=100'));
  const notices = (inbox.entry ?? []).map((e) => e.resource as Communication);
  const notice = notices.find((c) => c.reasonCode?.[0]?.coding?.[0]?.code === 'write' && c.sender?.reference === 'Practitioner/dr-gp');
  t.ok(notice, 'and the patient is notified');
  // The notification names the access record of the write, which names the Observation.
  const record = json<AuditEvent>(await send(pa, 'GET', notice?.about?.[0]?.reference ?? 'AuditEvent/none'));
  t.ok(record.entity?.some((e) => e.what?.reference === `Observation/${json(written).id}`), 'whose access record names what was written');
  const er = doctor('dr-er', '10', { purpose: 'ETREAT' });
  t.equal((await send(er, 'POST', 'Observation', observationOf('pb'))).statusCode, 201, 'emergency access writes too');
});

t.test('a representative\'s view of the access log never names what is kept from them', async (t) => {
  t.equal((await send(gp, 'GET', 'DocumentReference/d-secret')).statusCode, 200, 'the GP reads the confidential document');
  t.equal((await send(rep, 'GET', 'DocumentReference/d-secret')).statusCode, 404, 'the representative does not');
  t.equal((await send(gp, 'GET', 'Patient/pc')).statusCode, 200, 'the GP reads the minor\'s Patient too');
  const log = json<Bundle>(await send(rep, 'GET', 'AuditEvent?patient=pc&_count=200'));
  t.ok((log.entry ?? []).length > 0, 'the representative reads the minor\'s log');
  t.notOk(JSON.stringify(log).includes('d-secret'), 'no record names the confidential document');
  const minor = json<Bundle>(await send({ kind: 'patient', patient: 'pc' }, 'GET', 'AuditEvent?patient=pc&_count=200'));
  t.ok(JSON.stringify(minor).includes('d-secret'), 'the minor reads them all');
});

t.test('a patient\'s own refused attempts are not in their log to reveal what they cannot see', async (t) => {
  t.equal((await send(pa, 'GET', 'Observation/o-pb')).statusCode, 404);
  t.equal((await send(pa, 'GET', 'Observation/o-nothing')).statusCode, 404);
  const log = json<Bundle>(await send(pa, 'GET', 'AuditEvent?_count=500'));
  const naming = (log.entry ?? []).filter((e) => JSON.stringify(e.resource).includes('Patient/pb'));
  t.same(naming.map((e) => { const r = e.resource as AuditEvent; return [r.agent.map((a) => a.who?.reference), r.entity?.map((x) => x.what?.reference ?? Buffer.from(x.query ?? '', 'base64').toString())]; }), [], 'no record of theirs names the other patient');
  t.notOk(JSON.stringify(log).includes('o-pb'));
  const victim = json<Bundle>(await send(pb, 'GET', 'AuditEvent?patient=pb&outcome=4&_count=500'));
  t.ok(JSON.stringify(victim).includes('Patient/pa'), 'the other patient sees the attempt in theirs');
});
