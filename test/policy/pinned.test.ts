// Searches pinned to patients (`DocumentReference?patient=p1`): the restriction decides the
// patient's conditions once, on their cached consent state (policy/known.ts), instead of for every
// candidate row. Every change of that state must be seen by the very next search, entries and
// totals alike, and a search naming several patients sees only those the professional may see.
import t, { type Test } from 'tap';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { block, CONSULT, doc, emergencyOff, LAB, mask, permit, PRESCRIPTION } from './fixture.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

const as = authorizationFor(server);
const loader: TestActor = { kind: 'system', client: 'loader' };
const patient: TestActor = { kind: 'patient', patient: 'p1' };
const doctor = (practitioner: string, extra: Partial<Extract<TestActor, { kind: 'practitioner' }>> = {}): TestActor => ({ kind: 'practitioner', practitioner, profession: '10', ...extra });
const gp = doctor('dr-gp');

// Only systems pick their own ids (update-as-create); a patient creates with POST, and the test
// keeps the id the server gave each of their Consents under the name it uses.
const given = new Map<string, string>();
const put = async (resource: Resource, actor: TestActor = loader) => {
  const key = `${resource.resourceType}/${resource.id}`;
  const id = given.get(key);
  const res =
    actor.kind === 'system' || id !== undefined || resource.resourceType !== 'Consent'
      ? await fhir(app, 'PUT', `${resource.resourceType}/${id ?? resource.id}`, { ...resource, id: id ?? resource.id }, await as(actor))
      : await fhir(app, 'POST', resource.resourceType, resource, await as(actor));
  if (res.statusCode >= 300) throw new Error(`${key}: ${res.body}`);
  if (res.statusCode === 201 && actor.kind !== 'system') given.set(key, json(res).id as string);
};
const remove = async (url: string, actor: TestActor = patient) => {
  const res = await fhir(app, 'DELETE', given.get(url) !== undefined ? `${url.split('/')[0]}/${given.get(url)}` : url, undefined, await as(actor));
  if (res.statusCode >= 300) throw new Error(`${url}: ${res.body}`);
  given.delete(url);
};
const found = async (actor: TestActor, url: string) => {
  const res = await fhir(app, 'GET', url, undefined, await as(actor));
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
  const bundle = json<Bundle>(res);
  return { ids: (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource?.id).sort(), total: bundle.total };
};

const p1 = { resourceType: 'Patient', id: 'p1', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] } as Resource;
const P1_DOCS = ['d1-consult', 'd1-lab', 'd1-presc'];
for (const r of [
  p1,
  { resourceType: 'Patient', id: 'p2' },
  doc('d1-presc', 'p1', PRESCRIPTION, 'Organization/lab'),
  doc('d1-lab', 'p1', LAB, 'Organization/lab'),
  doc('d1-consult', 'p1', CONSULT, 'Organization/lab'),
  doc('d2-lab', 'p2', LAB, 'Organization/lab'),
  doc('d2-mine', 'p2', LAB, 'Practitioner/dr-gp'),
  { resourceType: 'Observation', id: 'o1', status: 'final', code: { text: 'weight' }, subject: { reference: 'Patient/p1' } },
  { resourceType: 'Observation', id: 'o2', status: 'final', code: { text: 'weight' }, subject: { reference: 'Patient/p2' } },
] as Resource[]) {
  await put(r);
}

// Each pinned search, and the same search unpinned (checked per row by the query), must agree.
async function sees(t: Test, actor: TestActor, expected: { docs: string[]; observations: string[] }, why: string) {
  for (const url of ['DocumentReference?patient=p1', 'DocumentReference?subject=Patient/p1', 'DocumentReference?subject:Patient=p1', 'DocumentReference?patient=Patient/p1&_count=1']) {
    const page = await found(actor, url);
    t.equal(page.total, expected.docs.length, `${why}: total of ${url}`);
    if (!url.includes('_count=1')) t.same(page.ids, expected.docs, `${why}: ${url}`);
  }
  const unpinned = await found(actor, 'DocumentReference?_count=100');
  t.same(unpinned.ids.filter((id) => id?.startsWith('d1-')), expected.docs, `${why}: unpinned search`);
  for (const url of ['Observation?patient=p1', 'Observation?subject=Patient/p1']) {
    const page = await found(actor, url);
    t.same(page.ids, expected.observations, `${why}: ${url}`);
    t.equal(page.total, expected.observations.length, `${why}: total of ${url}`);
  }
}
const everything = { docs: P1_DOCS, observations: ['o1'] };
const nothing = { docs: [], observations: [] };

t.test('the GP sees the patient\'s record through a pinned search', async (t) => {
  await sees(t, gp, everything, 'GP');
  await sees(t, doctor('dr-other'), nothing, 'no relationship');
});

t.test('a consent change is seen by the next pinned search', async (t) => {
  const other = doctor('dr-other');
  await put(permit('c-permit', 'p1', 'dr-other'), patient);
  await sees(t, other, everything, 'permit given');
  await put({ ...permit('c-permit', 'p1', 'dr-other'), status: 'inactive' } as Resource, patient);
  await sees(t, other, nothing, 'permit set inactive');
  await put(permit('c-permit', 'p1', 'dr-other'), patient);
  await sees(t, other, everything, 'permit active again');
  await remove('Consent/c-permit');
  await sees(t, other, nothing, 'permit deleted');

  await put(block('c-block', 'p1', 'Practitioner/dr-gp'), patient);
  await sees(t, gp, nothing, 'GP blocked');
  await remove('Consent/c-block');
  await sees(t, gp, everything, 'block deleted');
  await put(block('c-block-org', 'p1', 'Organization/org-a'), patient);
  await sees(t, doctor('dr-gp', { organization: 'org-a' }), nothing, 'GP\'s organisation blocked');
  await sees(t, gp, everything, 'the same GP from no organisation');
  await remove('Consent/c-block-org');

  await put(mask('c-mask', 'p1', 'd1-lab'), patient);
  await sees(t, gp, { docs: ['d1-consult', 'd1-presc'], observations: ['o1'] }, 'a document masked');
  await remove('Consent/c-mask');
  await sees(t, gp, everything, 'mask deleted');
});

t.test('a change of the Patient resource is seen by the next pinned search', async (t) => {
  // (Closing the account is the last test: a closed account does not reopen, docs/accounts.md.)
  // The patient chooses their general practitioner (docs/consent.md).
  await put({ resourceType: 'Patient', id: 'p1', active: true, generalPractitioner: [{ reference: 'Practitioner/dr-new' }] } as Resource, patient);
  await sees(t, gp, nothing, 'no longer the GP');
  await sees(t, doctor('dr-new'), everything, 'the new GP');
  await put({ ...p1, active: true } as Resource, patient);
  await sees(t, gp, everything, 'GP again');
  await remove('Patient/p1', loader);
  await sees(t, gp, nothing, 'patient deleted');
  await put(p1);
  await sees(t, gp, everything, 'patient back');
});

t.test('emergency access through a pinned search, unless the patient turned it off', async (t) => {
  const er = doctor('dr-er', { purpose: 'ETREAT' });
  await sees(t, er, everything, 'ETREAT');
  await put(emergencyOff('c-no-emergency', 'p1'), patient);
  await sees(t, er, nothing, 'emergency access turned off');
  await remove('Consent/c-no-emergency');
  await sees(t, er, everything, 'emergency access back');
});

t.test('a search naming several patients sees only those the professional may see', async (t) => {
  for (const url of ['DocumentReference?patient=p1,p2', 'DocumentReference?patient=p2,p1&_count=2', 'DocumentReference?subject=Patient/p1,Patient/p2']) {
    const page = await found(gp, url);
    t.equal(page.total, 4, `${url}: p1's three and the one of p2's that the GP wrote`);
    if (!url.includes('_count=2')) t.same(page.ids, [...P1_DOCS, 'd2-mine'], url);
  }
  t.same((await found(gp, 'DocumentReference?patient=p2')).ids, ['d2-mine'], 'the author reads their own document without a relationship');
  await put(block('c-block-p2', 'p2', 'Practitioner/dr-gp'), { kind: 'patient', patient: 'p2' });
  t.same((await found(gp, 'DocumentReference?patient=p1,p2')).ids, P1_DOCS, 'blocked by p2: not even their own document');
  await remove('Consent/c-block-p2', { kind: 'patient', patient: 'p2' });
  t.same((await found(gp, 'DocumentReference?patient=missing')).ids, [], 'a patient that does not exist');
});

t.test('a closed account is seen by the next pinned search', async (t) => {
  await sees(t, gp, everything, 'the account is open');
  const closed = await fhir(app, 'POST', 'Patient/p1/$close', { resourceType: 'Parameters' }, await as(patient));
  t.equal(closed.statusCode, 200, 'the person closes it ($close)');
  await sees(t, gp, nothing, 'account closed');
});
