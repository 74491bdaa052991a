// The consent rules through the real HTTP API: one scenario per rule, then adversarial routes a
// professional could try to learn that a hidden document exists.
import t from 'tap';
import type { Bundle, Communication, Resource } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { authorOf, seed } from '../seed.js';
import { block, CONSULT, DISCHARGE, doc, emergencyOff, LAB, mask, permit, PRESCRIPTION } from './fixture.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

// A Consent is written by its patient, the rest by the vendor system "loader".
const put = async (resource: Resource) => {
  const actor: TestActor = resource.resourceType === 'Consent' ? { kind: 'patient', patient: authorOf(resource).slice('patient:'.length) } : { kind: 'system', client: 'loader' };
  const res = await fhir(app, 'PUT', `${resource.resourceType}/${resource.id}`, resource, await as(actor));
  if (res.statusCode >= 300) throw new Error(`${resource.resourceType}/${resource.id}: ${res.body}`);
};
const as = authorizationFor(server);
const doctor = (practitioner: string, profession = '10', extra: Partial<Extract<TestActor, { kind: 'practitioner' }>> = {}): TestActor => ({ kind: 'practitioner', practitioner, profession, ...extra });
const status = async (actor: TestActor, url: string) => (await fhir(app, 'GET', url, undefined, await as(actor))).statusCode;
const ids = async (actor: TestActor, url: string) => {
  const res = await fhir(app, 'GET', url, undefined, await as(actor));
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
  const bundle = json<Bundle>(res);
  return { ids: (bundle.entry ?? []).map((e) => e.resource?.id).sort(), total: bundle.total };
};

// The record. p1: GP dr-gp; permits dr-perm, podo, opti, dr-blocked, dr-orgx; blocks dr-blocked and
// organisation org-x; masks doc-masked and doc-by-perm. p2: emergency access off. p3: closed.
// Seeded as written by the vendor system "loader", the Consents by their patient; dr-perm
// authored doc-by-perm.
await seed(server.store, [
  { resourceType: 'Patient', id: 'p1', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }], name: [{ family: 'Durand' }] },
  { resourceType: 'Patient', id: 'p2', name: [{ family: 'Petit' }] },
  { resourceType: 'Patient', id: 'p3', active: false, generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] },
  doc('doc-discharge', 'p1', DISCHARGE, 'Practitioner/dr-gp'),
  doc('doc-presc', 'p1', PRESCRIPTION, 'Practitioner/dr-gp'),
  doc('doc-lab', 'p1', LAB, 'Organization/lab'),
  doc('doc-masked', 'p1', CONSULT, 'Practitioner/dr-gp'),
  doc('doc-by-perm', 'p1', DISCHARGE, 'Practitioner/dr-perm'),
  doc('doc-patient', 'p1', '60591-5', 'Patient/p1'),
  doc('doc-secret', 'p1', LAB, 'Practitioner/dr-gp', { meta: { security: [{ system: 'urn:carnet:security', code: 'confidential-from-representatives' }] } }),
  doc('doc-p2', 'p2', LAB, 'Practitioner/dr-gp'),
  doc('doc-p3', 'p3', LAB, 'Practitioner/dr-gp'),
  { resourceType: 'Observation', id: 'obs-p1', status: 'final', code: { text: 'weight' }, subject: { reference: 'Patient/p1' } },
  { resourceType: 'Observation', id: 'obs-p2', status: 'final', code: { text: 'weight' }, subject: { reference: 'Patient/p2' } },
  permit('c-perm', 'p1', 'dr-perm'),
  permit('c-podo', 'p1', 'podo'),
  permit('c-opti', 'p1', 'opti'),
  permit('c-blocked-permit', 'p1', 'dr-blocked'),
  permit('c-orgx', 'p1', 'dr-orgx'),
  block('c-block', 'p1', 'Practitioner/dr-blocked'),
  block('c-block-org', 'p1', 'Organization/org-x'),
  mask('c-mask', 'p1', 'doc-masked'),
  mask('c-mask-perm', 'p1', 'doc-by-perm'),
  emergencyOff('c-no-emergency', 'p2'),
] as Resource[]);

t.test('organisation roles never read content, whatever they hold', async (t) => {
  for (const role of ['mandatory-insurer', 'complementary-insurer', 'employer', 'state']) {
    const insurer: TestActor = { kind: 'organisation', role, organization: 'ins' };
    t.equal(await status(insurer, 'Patient/p1'), 403, role);
    t.equal(await status(insurer, 'DocumentReference?patient=p1'), 403, role);
  }
  t.equal(await status({ kind: 'organisation', role: 'mandatory-insurer', organization: 'ins' }, 'Patient/p1'), 403, 'even with every scope');
});

t.test('the patient reads their whole record, masked documents included', async (t) => {
  const p1: TestActor = { kind: 'patient', patient: 'p1' };
  const { ids: docs } = await ids(p1, 'DocumentReference?_count=100');
  t.same(docs, ['doc-by-perm', 'doc-discharge', 'doc-lab', 'doc-masked', 'doc-patient', 'doc-presc', 'doc-secret']);
  t.equal(await status(p1, 'Consent/c-mask'), 200, 'and their own Consents');
});

t.test('a representative reads the minor\'s record except what is kept confidential from them', async (t) => {
  const mum: TestActor = { kind: 'representative', relatedPerson: 'mum', patients: ['p1'] };
  t.equal(await status(mum, 'DocumentReference/doc-secret'), 404);
  t.equal(await status(mum, 'DocumentReference/doc-masked'), 200);
  const { ids: docs, total } = await ids(mum, 'DocumentReference?_count=100');
  t.notOk(docs.includes('doc-secret'));
  t.equal(total, 6);
});

t.test('no care relationship: nothing of the patient is visible, as if it did not exist', async (t) => {
  const stranger = doctor('dr-none');
  t.equal(await status(stranger, 'DocumentReference/doc-presc'), 404);
  t.equal(await status(stranger, 'Observation/obs-p1'), 404);
  t.equal(await status(stranger, 'Patient/p1'), 404);
  t.same(await ids(stranger, 'DocumentReference?patient=p1'), { ids: [], total: 0 });
  t.equal(await status(stranger, 'DocumentReference/nonexistent'), 404, 'the same answer as for a document that does not exist');
});

t.test('the general practitioner reads everything but documents the patient masked (unless they wrote them)', async (t) => {
  const gp = doctor('dr-gp');
  t.same(await ids(gp, 'DocumentReference?patient=p1'), { ids: ['doc-discharge', 'doc-lab', 'doc-masked', 'doc-patient', 'doc-presc', 'doc-secret'], total: 6 });
  t.equal(await status(gp, 'DocumentReference/doc-by-perm'), 404, 'masked, written by someone else');
  t.equal(await status(gp, 'DocumentReference/doc-masked'), 200, 'masked, but theirs');
  t.equal(await status(gp, 'Observation/obs-p1'), 200);
  t.equal(await status(gp, 'Patient/p1'), 200);
});

t.test('a professional named in a permit Consent has a care relationship', async (t) => {
  const perm = doctor('dr-perm');
  t.same((await ids(perm, 'DocumentReference?patient=p1')).ids, ['doc-by-perm', 'doc-discharge', 'doc-lab', 'doc-patient', 'doc-presc', 'doc-secret']);
  t.equal(await status(perm, 'DocumentReference/doc-masked'), 404);
});

t.test('the access matrix: a podiatrist never reads a discharge report', async (t) => {
  const podo = doctor('podo', '80');
  t.equal(await status(podo, 'DocumentReference/doc-discharge'), 404);
  t.notOk((await ids(podo, 'DocumentReference?patient=p1')).ids.includes('doc-discharge'));
});

t.test('the access matrix: an optician reads prescriptions and what the patient deposited, not a discharge report', async (t) => {
  const opti = doctor('opti', '28');
  t.equal(await status(opti, 'DocumentReference/doc-presc'), 200);
  t.equal(await status(opti, 'DocumentReference/doc-patient'), 200);
  t.equal(await status(opti, 'DocumentReference/doc-discharge'), 404);
  const { ids: docs } = await ids(opti, 'DocumentReference?patient=p1');
  t.ok(docs.includes('doc-presc') && docs.includes('doc-patient') && !docs.includes('doc-discharge'));
});

t.test('a blocked professional sees nothing, by any route', async (t) => {
  const blocked = doctor('dr-blocked');
  const routes = [
    'DocumentReference/doc-presc',
    'DocumentReference/doc-presc/_history/1',
    'DocumentReference/doc-presc/_history',
    'Patient/p1',
    'Observation/obs-p1',
  ];
  for (const url of routes) t.equal(await status(blocked, url), 404, url);
  for (const url of [
    'DocumentReference?patient=p1',
    'DocumentReference?_summary=count',
    'Observation?subject=Patient/p1',
    'Observation?patient.name=durand',
    'Patient?_has:DocumentReference:subject:type=http://loinc.org|' + PRESCRIPTION,
    'Patient?_id=p1&_revinclude=DocumentReference:subject',
    'Practitioner?_has:Patient:general-practitioner:_id=p1',
  ]) {
    const found = await ids(blocked, url);
    t.same(found.ids.filter((id) => id !== 'dr-gp'), [], url);
    t.equal(found.total, url.startsWith('Practitioner') ? found.total : 0, url);
  }
  const batch = json<Bundle>(await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'DocumentReference/doc-presc' } }] }, await as(blocked)));
  t.equal(batch.entry?.[0].response?.status, '404 Not Found', 'batch read entry');
});

t.test('a blocked organisation blocks its professionals', async (t) => {
  const orgx = doctor('dr-orgx', '10', { organization: 'org-x' });
  t.equal(await status(orgx, 'DocumentReference/doc-presc'), 404);
  t.equal(await status(doctor('dr-orgx', '10', { organization: 'org-y' }), 'DocumentReference/doc-presc'), 200, 'the same professional from another organisation');
});

t.test('emergency access: ETREAT opens the record without a relationship, unless the patient turned it off', async (t) => {
  const er = doctor('dr-er', '10', { purpose: 'ETREAT' });
  t.equal(await status(er, 'Observation/obs-p1'), 200);
  t.equal(await status(er, 'DocumentReference/doc-presc'), 200);
  t.equal(await status(er, 'DocumentReference/doc-by-perm'), 404, 'masks still apply');
  t.equal(await status(er, 'Observation/obs-p2'), 404, 'p2 turned emergency access off');
  t.same((await ids(er, 'Observation?_count=10')).ids, ['obs-p1']);
  t.equal(await status(doctor('dr-er'), 'Observation/obs-p1'), 404, 'the same professional without ETREAT');
});

t.test('a closed account is not readable by professionals', async (t) => {
  t.equal(await status(doctor('dr-gp'), 'DocumentReference/doc-p3'), 404);
  t.equal(await status({ kind: 'patient', patient: 'p3' }, 'DocumentReference/doc-p3'), 200, 'its patient still reads it');
});

t.test('a Consent set inactive or deleted stops applying at once', async (t) => {
  const blocked = doctor('dr-blocked');
  const inactive = { ...block('c-block', 'p1', 'Practitioner/dr-blocked'), status: 'inactive' };
  await put(inactive as Resource);
  t.equal(await status(blocked, 'DocumentReference/doc-presc'), 200, 'block lifted');
  await put(block('c-block', 'p1', 'Practitioner/dr-blocked'));
  t.equal(await status(blocked, 'DocumentReference/doc-presc'), 404, 'block back');
  const patient = await as({ kind: 'patient', patient: 'p1' });
  t.equal((await fhir(app, 'DELETE', 'Consent/c-block', undefined, patient)).statusCode, 200, 'the patient deletes the block');
  t.equal(await status(blocked, 'DocumentReference/doc-presc'), 200, 'block gone');
  await put(block('c-block', 'p1', 'Practitioner/dr-blocked'));
});

t.test('vendor systems read back only what they wrote', async (t) => {
  const labA: TestActor = { kind: 'system', client: 'lab-a' };
  const labB: TestActor = { kind: 'system', client: 'lab-b' };
  const created = await fhir(app, 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'glucose' }, subject: { reference: 'Patient/p1' } }, await as(labA));
  t.equal(created.statusCode, 201);
  const id = json(created).id;
  t.equal(await status(labA, `Observation/${id}`), 200);
  t.equal(await status(labB, `Observation/${id}`), 404);
  t.same((await ids(labB, 'Observation?patient=p1')).ids, []);
  t.same((await ids(labA, 'Observation?patient=p1')).ids, [id]);
  t.equal((await fhir(app, 'PUT', `Observation/${id}`, { resourceType: 'Observation', id, status: 'amended', code: { text: 'glucose' }, subject: { reference: 'Patient/p1' } }, await as(labB))).statusCode, 404, 'nor change what others wrote');
});

t.test('Consents: a professional reads only the permit that names them', async (t) => {
  const perm = doctor('dr-perm');
  t.equal(await status(perm, 'Consent/c-perm'), 200);
  t.equal(await status(perm, 'Consent/c-mask'), 404);
  t.equal(await status(perm, 'Consent/c-podo'), 404);
  t.same((await ids(perm, 'Consent?patient=p1')).ids, ['c-perm']);
});

t.test('AuditEvents are immutable for everyone', async (t) => {
  const loader = await as({ kind: 'system', client: 'loader' });
  // The server's own record of an earlier request is an AuditEvent like any other.
  const page = json<Bundle>(await fhir(app, 'GET', 'AuditEvent?patient=p1&_count=1', undefined, await as({ kind: 'patient', patient: 'p1' })));
  const event = page.entry![0].resource!;
  for (const actor of [loader, await as({ kind: 'patient', patient: 'p1' }), await as(doctor('dr-gp'))]) {
    t.equal((await fhir(app, 'PUT', `AuditEvent/${event.id}`, event, actor)).statusCode, 405);
    t.equal((await fhir(app, 'PATCH', `AuditEvent/${event.id}`, [{ op: 'remove', path: '/agent' }], { ...actor, 'content-type': 'application/json-patch+json' })).statusCode, 405);
    t.equal((await fhir(app, 'DELETE', `AuditEvent/${event.id}`, undefined, actor)).statusCode, 405);
  }
});

t.test('the patient deletes what they deposited, not a professional\'s document', async (t) => {
  const p1 = await as({ kind: 'patient', patient: 'p1' });
  t.equal((await fhir(app, 'DELETE', 'DocumentReference/doc-presc', undefined, p1)).statusCode, 403);
  t.equal((await fhir(app, 'DELETE', 'DocumentReference/doc-patient', undefined, p1)).statusCode, 200);
});

t.test('a professional may record the patient\'s agreement to their care; the patient is notified', async (t) => {
  const newcomer = doctor('dr-new');
  t.equal(await status(newcomer, 'DocumentReference/doc-presc'), 404, 'no relationship yet');
  const { id: _omit, ...consent } = permit('unused', 'p1', 'dr-new');
  const created = await fhir(app, 'POST', 'Consent', consent, await as(newcomer));
  t.equal(created.statusCode, 201);
  t.equal(await status(newcomer, 'DocumentReference/doc-presc'), 200, 'the relationship exists now');
  await app.notifier.drain();
  const inbox = json<Bundle>(await fhir(app, 'GET', 'Communication?recipient=Patient/p1', undefined, await as({ kind: 'patient', patient: 'p1' })));
  const notice = inbox.entry?.map((e) => e.resource as Communication).find((c) => c.reasonCode?.[0]?.coding?.[0]?.code === 'own-permit');
  t.match(notice, { sender: { reference: 'Practitioner/dr-new' }, recipient: [{ reference: 'Patient/p1' }] }, 'a notification reached the patient');
  const { id: _o, ...blockOther } = block('unused', 'p1', 'Practitioner/dr-gp');
  t.equal((await fhir(app, 'POST', 'Consent', blockOther, await as(newcomer))).statusCode, 403, 'a professional records no other choice');
  const { id: _p, ...forOther } = permit('unused', 'p1', 'dr-someone-else');
  t.equal((await fhir(app, 'POST', 'Consent', forOther, await as(newcomer))).statusCode, 403, 'nor a permit for someone else');
});

t.test('the bytes of a document are guarded like the document (Binary.securityContext)', async (t) => {
  const pdf = Buffer.from('%PDF-1.4 test').toString('base64');
  for (const [id, document] of [['bin-presc', 'doc-presc'], ['bin-masked', 'doc-by-perm']]) {
    await put({ resourceType: 'Binary', id, contentType: 'application/pdf', securityContext: { reference: `DocumentReference/${document}` }, data: pdf } as Resource);
  }
  await put({ resourceType: 'Binary', id: 'bin-loose', contentType: 'application/pdf', data: pdf } as Resource);
  t.equal(await status(doctor('dr-gp'), 'Binary/bin-presc'), 200);
  t.equal(await status(doctor('dr-gp'), 'Binary/bin-masked'), 404, 'the bytes of a masked document');
  t.equal(await status(doctor('dr-perm'), 'Binary/bin-masked'), 200, 'its author reads them');
  t.equal(await status(doctor('dr-blocked'), 'Binary/bin-presc'), 404, 'a blocked professional');
  t.equal(await status(doctor('dr-none'), 'Binary/bin-presc'), 404, 'no care relationship');
  t.equal(await status(doctor('podo', '80'), 'Binary/bin-presc'), 200);
  t.equal(await status(doctor('dr-gp'), 'Binary/bin-loose'), 404, 'a Binary without securityContext is its creator\'s');
  t.equal(await status({ kind: 'system', client: 'loader' }, 'Binary/bin-loose'), 200);
  const batch = json<Bundle>(await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Binary/bin-masked' } }] }, await as(doctor('dr-gp'))));
  t.equal(batch.entry?.[0].response?.status, '404 Not Found', 'nor through a batch');
});
