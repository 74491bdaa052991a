// Minors and their legal representatives through the real server, on a clock that walks to the
// minor's eighteenth birthday (docs/accounts.md, "Minors"): the enrolment of a minor records the
// day they come of age; their representatives read and act for them until that day and not after
// it (every path: read, search, operations; a representative of two children keeps the younger
// one); the scheduler then tells the young adult, once, in their inbox; what was kept
// confidential from the representatives stays so (the young adult reads it). Pure rules: majority
// dates (29 February, partial dates).
import t from 'tap';
import type { Bundle, Communication, OperationOutcome, Parameters, Patient } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { seed } from '../seed.js';
import { documentPush } from './push.js';
import { accountOf, majorityDate, representedAt, transition, withAccount } from '../../src/policy/account.js';
import { decide, type DecideInput } from '../../src/policy/decide.js';
import type { ConsentState } from '../../src/policy/consents.js';

const DAY = 86_400_000;
const INS = 'urn:oid:1.2.250.1.213.1.4.8';

t.test('majority dates: the eighteenth birthday, 29 February, partial dates', async (t) => {
  t.equal(majorityDate('2010-06-15'), '2028-06-15');
  t.equal(majorityDate('2008-02-29'), '2026-03-01', 'born on 29 February: 1 March of a common year');
  t.equal(majorityDate('2012-02-29'), '2030-03-01');
  t.equal(majorityDate('2010-06'), '2028-06-30', 'a month: its last day');
  t.equal(majorityDate('2010'), '2028-12-31', 'a year: its last day');
  t.equal(majorityDate('15/06/2010'), undefined, 'not a FHIR date');
  const enrolled = transition(undefined, { kind: 'enrol', provisionalCode: 'x', birthDate: '2010-06-15' }, Date.parse('2027-01-01T00:00:00Z'));
  t.match(enrolled, { ok: true, account: { state: 'notified', majority: '2028-06-15', majorityNotice: '2028-06-15' } }, 'a minor\'s account records the day, and that it is to be told');
  const adult = transition(undefined, { kind: 'enrol', provisionalCode: 'x', birthDate: '1980-01-01' }, Date.parse('2027-01-01T00:00:00Z'));
  t.ok(adult.ok && adult.account.majority === undefined, 'an adult\'s does not');
  if (!enrolled.ok) return;
  t.match(transition(enrolled.account, { kind: 'majority' }, Date.parse('2028-06-14T00:00:00Z')), { ok: false, code: 'ACCOUNT_TOO_EARLY' });
  const after = transition({ ...enrolled.account, state: 'open' }, { kind: 'majority' }, Date.parse('2028-06-15T00:00:00Z'));
  t.same(after, { ok: true, account: { state: 'open', objectionEnds: enrolled.account.objectionEnds, provisionalCode: 'x', majority: '2028-06-15' } }, 'the event clears the notice, nothing else: the majority stays');
  t.match(transition({ state: 'open', majority: '2028-06-15', majorityNotice: '2028-06-15' }, { kind: 'close', by: 'person' }, Date.parse('2027-06-01T00:00:00Z')), { ok: true, account: { state: 'closed', majority: '2028-06-15', majorityNotice: '2028-06-15' } }, 'other transitions keep both');
  const minor = withAccount({ resourceType: 'Patient', birthDate: '2010-06-15' }, { state: 'open', majority: '2028-06-15' });
  t.equal(representedAt(minor, Date.parse('2028-06-14T23:59:59Z')), true);
  t.equal(representedAt(minor, Date.parse('2028-06-15T00:00:00Z')), false);
  t.equal(representedAt(withAccount({ resourceType: 'Patient', birthDate: '1950-01-01' }, { state: 'open' }), Date.parse('2028-06-15T00:00:00Z')), true, 'an adult\'s account (a guardianship): not ended by age');
});

t.test('decide: a representative reads a minor\'s record until the majority the account records; an account without one: as before', async (t) => {
  const state = (birthDate?: string): ConsentState => ({ patientId: 'p', patient: withAccount({ resourceType: 'Patient', id: 'p', ...(birthDate ? { birthDate } : {}) }, { state: 'open', ...(birthDate ? { majority: majorityDate(birthDate) } : {}) }), rules: [], consents: [], complete: true }) as unknown as ConsentState;
  const input = (birthDate: string | undefined, now: string): DecideInput => ({
    actor: { kind: 'representative', relatedPersonId: 'r', patientIds: ['p'], grants: [], issuer: 'i', subject: 's' },
    action: 'read',
    resource: { resourceType: 'Observation', status: 'final', code: {}, subject: { reference: 'Patient/p' } },
    state: state(birthDate),
    now: Date.parse(now),
    mayRead: () => true,
  });
  t.match(decide(input('2010-06-15', '2028-06-14T12:00:00Z')), { permit: true });
  t.match(decide(input('2010-06-15', '2028-06-15T00:00:00Z')), { permit: false, status: 404, reason: /came of age on 2028-06-15/ });
  t.match(decide(input(undefined, '2028-06-15T00:00:00Z')), { permit: true });
});

t.test('through the server: representatives until the eighteenth birthday, then the young adult is told', async (t) => {
  let clock = Date.parse('2027-01-04T09:00:00.000Z');
  const now = () => new Date(clock).toISOString();
  const server = await testServer({ now });
  t.teardown(() => server.close());
  const { app, store } = server;
  const as = authorizationFor(server);
  await seed(store, [{ resourceType: 'Practitioner', id: 'dr-ped', name: [{ family: 'Petit' }] }]);
  const FEED: TestActor = { kind: 'system', client: 'cnam-feed' };
  const call = async (actor: TestActor, method: 'GET' | 'POST', url: string, body?: unknown) => fhir(app, method, url, body, await as(actor));
  const child = (ins: string, birthDate: string): Patient => ({ resourceType: 'Patient', identifier: [{ system: INS, value: ins }], name: [{ family: 'Enfant' }], birthDate, generalPractitioner: [{ reference: 'Practitioner/dr-ped' }] });
  const res = await call(FEED, 'POST', 'Patient/$enrol', { resourceType: 'Parameters', parameter: [{ name: 'patient', resource: child('210067512345610', '2010-06-15') }, { name: 'patient', resource: child('214037512345699', '2014-03-02') }] });
  t.equal(res.statusCode, 200, res.body);
  const [elder, younger] = (json<Parameters>(res).parameter ?? []).map((r) => (r.part?.find((p) => p.name === 'patient')?.valueReference?.reference as string).replace('Patient/', ''));
  const stored = await store.read('Patient', elder);
  t.equal(stored.kind === 'found' ? accountOf(stored.version.resource as Patient).majority : undefined, '2028-06-15', 'the enrolment recorded the day the elder comes of age');
  clock += 43 * DAY;
  t.equal(await app.accounts.run(), 2, 'both accounts open');
  for (const id of [elder, younger]) t.equal((await call({ kind: 'system', client: 'lab' }, 'POST', '', documentPush(id, `report of ${id}`))).statusCode, 200);
  const parent: TestActor = { kind: 'representative', relatedPerson: 'parent-1', patients: [elder, younger] };
  const elderOnly: TestActor = { kind: 'representative', relatedPerson: 'parent-2', patients: [elder] };

  const docs = async (actor: TestActor, id: string) => call(actor, 'GET', `DocumentReference?patient=${id}`);
  t.equal(json<Bundle>(await docs(parent, elder)).entry?.length, 1, 'before: the parent reads the elder\'s documents');
  t.equal((await call(parent, 'GET', `Patient/${elder}`)).statusCode, 200);

  clock = Date.parse('2028-06-14T23:00:00.000Z');
  t.equal(json<Bundle>(await docs(elderOnly, elder)).entry?.length, 1, 'the day before: still');

  clock = Date.parse('2028-06-15T00:00:00.000Z');
  const refused = await docs(elderOnly, elder);
  t.equal(refused.statusCode, 403, 'the representative of the elder alone: refused from the birthday on');
  t.match((json<OperationOutcome>(refused).issue ?? [])[0]?.diagnostics, /came of age on 2028-06-15/);
  t.equal((await call(elderOnly, 'GET', `Patient/${elder}`)).statusCode, 403, 'a read too');
  t.equal((await call(elderOnly, 'POST', `Patient/${elder}/$close`, { resourceType: 'Parameters' })).statusCode, 403, 'and an operation: they no longer act for the young adult');
  const mixed = json<Bundle>(await call(parent, 'GET', 'DocumentReference'));
  t.same(
    (mixed.entry ?? []).map((e) => (e.resource as { subject?: { reference?: string } }).subject?.reference),
    [`Patient/${younger}`],
    'the parent of both: the younger child\'s record only',
  );
  t.not((await call(parent, 'GET', `Patient/${elder}`)).statusCode, 200, 'not the elder\'s Patient');
  t.equal(json<Bundle>(await docs({ kind: 'patient', patient: elder }, elder)).entry?.length, 1, 'the young adult reads their record');

  t.equal(await app.accounts.run(), 1, 'the scheduler handles the majority once');
  t.equal(await app.accounts.run(), 0, 'and not again');
  await app.notifier.drain();
  const inbox = json<Bundle>(await call({ kind: 'patient', patient: elder }, 'GET', `Communication?recipient=Patient/${elder}`));
  const told = (inbox.entry ?? []).map((e) => e.resource as Communication).filter((c) => c.reasonCode?.some((r) => r.coding?.some((k) => k.code === 'account')));
  t.ok(told.some((c) => /You are of age/.test(c.payload?.[0]?.contentString ?? '')), 'the young adult is told in their inbox');
  t.ok(told.some((c) => /six weeks to object have ended/.test(c.payload?.[0]?.contentString ?? '')), 'as they were when the account opened');
});
