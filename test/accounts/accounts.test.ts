// The account lifecycle through the real server (docs/accounts.md), on an injectable clock that
// walks six weeks: enrolment by the insurer's feed (idempotent on the INS), activation with the
// provisional code, objection within the window and not after it, closing, what professionals and
// the person read in each state, pushes refused into objected and closed accounts with nothing
// stored (no blob either), pushes kept during the notified weeks, the account guarded against
// plain updates, and the scheduler opening and archiving accounts under its lease.
import crypto from 'node:crypto';
import t from 'tap';
import type { AuditEvent, Bundle, OperationOutcome, Parameters, Patient } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { seed } from '../seed.js';
import { documentPush } from './push.js';
import { ACCOUNT_EXTENSION, accountOf, OBJECTION_WINDOW_MS } from '../../src/policy/account.js';
import { AccountScheduler } from '../../src/accounts/scheduler.js';

const DAY = 86_400_000;
const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const T0 = Date.parse('2027-01-04T09:00:00.000Z');
let clock = T0;
const now = () => new Date(clock).toISOString();
const walkTo = (days: number) => {
  clock = T0 + days * DAY;
};

const server = await testServer({ now });
t.teardown(() => server.close());
const { app, store } = server;
const as = authorizationFor(server);

const FEED: TestActor = { kind: 'system', client: 'cnam-feed' };
const GP: TestActor = { kind: 'practitioner', practitioner: 'dr-gp', profession: '10' };
const person = (id: string): TestActor => ({ kind: 'patient', patient: id });

await seed(store, [{ resourceType: 'Practitioner', id: 'dr-gp', name: [{ family: 'Martin' }] }]);

const call = async (actor: TestActor, method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown) => fhir(app, method, url, body, await as(actor));
const params = (values: Record<string, string>): Parameters => ({ resourceType: 'Parameters', parameter: Object.entries(values).map(([name, valueString]) => ({ name, valueString })) });
const diagnostics = (res: { body: string }) => (json<OperationOutcome>(res).issue ?? []).map((i) => i.diagnostics).join(' ');
const stored = async (id: string) => {
  const read = await store.read('Patient', id);
  if (read.kind !== 'found') throw new Error(`Patient/${id} missing`);
  return read.version;
};
const accountState = async (id: string) => accountOf((await stored(id)).resource as Patient).state;

function personOf(ins: string, family: string): Patient {
  return { resourceType: 'Patient', identifier: [{ system: INS, value: ins }], name: [{ family }], generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] };
}

/** The results of an $enrol answer: INS -> { id, outcome, code }. */
function results(res: { body: string }): Map<string, { id: string; outcome: string; code?: string }> {
  const out = new Map<string, { id: string; outcome: string; code?: string }>();
  for (const r of json<Parameters>(res).parameter ?? []) {
    const part = (name: string) => r.part?.find((p) => p.name === name);
    out.set(part('ins')?.valueString as string, {
      id: (part('patient')?.valueReference?.reference as string).replace('Patient/', ''),
      outcome: part('outcome')?.valueCode as string,
      ...(part('provisionalCode') ? { code: part('provisionalCode')?.valueString as string } : {}),
    });
  }
  return out;
}

const enrolled = new Map<string, { id: string; code: string }>();

const push = (patientId: string, text: string) => documentPush(patientId, text);

/** The id of the DocumentReference a pushed transaction created. */
function documentOf(res: { body: string }): string {
  const location = (json<Bundle>(res).entry ?? []).map((e) => e.response?.location ?? '').find((l) => l.includes('DocumentReference/')) as string;
  return /DocumentReference\/([^/]+)/.exec(location)?.[1] as string;
}

const blobOf = (text: string) => store.blobs.stat(crypto.createHash('sha256').update(text).digest('hex'));

t.test('the enrolment feed enrols people by INS: notified accounts with a six-week window', async (t) => {
  const res = await call(FEED, 'POST', 'Patient/$enrol', {
    resourceType: 'Parameters',
    parameter: [
      { name: 'patient', resource: personOf('100000000000001', 'Alpha') },
      { name: 'patient', resource: personOf('100000000000002', 'Bravo') },
      { name: 'patient', resource: personOf('100000000000003', 'Charlie') },
    ],
  });
  t.equal(res.statusCode, 200, res.body);
  for (const [ins, r] of results(res)) {
    t.equal(r.outcome, 'created');
    t.match(r.code, /^[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}$/, 'the provisional code, given once');
    enrolled.set(ins, { id: r.id, code: r.code as string });
  }
  t.equal(enrolled.size, 3);
  const { id, code } = enrolled.get('100000000000001') as { id: string; code: string };
  const version = await stored(id);
  const patient = version.resource as Patient;
  t.equal(patient.active, false, 'active is false until the account opens');
  t.match(accountOf(patient), { state: 'notified', objectionEnds: new Date(T0 + OBJECTION_WINDOW_MS).toISOString(), provisionalCode: /^hmac\$/ });
  t.notOk(JSON.stringify(patient).includes(code), 'the code itself is stored nowhere');
  t.equal(version.creator, 'client:cnam-feed');
  const audit = await store.search({ types: ['AuditEvent'], where: [{ kind: 'reference', param: 'entity', values: [{ targetType: 'Patient', targetId: id }] }], sort: [] }, { count: 10 });
  t.equal(audit.matches.length, 1, 'the enrolment has its AuditEvent');
  t.match((audit.matches[0].resource as AuditEvent).subtype, [{ code: 'operation' }]);
});

t.test('enrolling an INS again changes nothing and answers the existing id', async (t) => {
  const { id } = enrolled.get('100000000000001') as { id: string };
  const before = (await stored(id)).versionId;
  const res = await call(FEED, 'POST', 'Patient/$enrol', { resourceType: 'Parameters', parameter: [{ name: 'patient', resource: personOf('100000000000001', 'Other name') }] });
  t.equal(res.statusCode, 200);
  t.same(results(res).get('100000000000001'), { id, outcome: 'existing' }, 'the same id, and no new code');
  t.equal((await stored(id)).versionId, before, 'the Patient is unchanged');
});

t.test('enrolment is refused without an INS, and to anyone but a system', async (t) => {
  const noIns = await call(FEED, 'POST', 'Patient/$enrol', { resourceType: 'Parameters', parameter: [{ name: 'patient', resource: { resourceType: 'Patient', name: [{ family: 'X' }] } }] });
  t.equal(noIns.statusCode, 400);
  t.match(diagnostics(noIns), /enrolled by INS/);
  const mixed = await call(FEED, 'POST', 'Patient/$enrol', { resourceType: 'Parameters', parameter: [{ name: 'patient', resource: personOf('100000000000007', 'Valid') }, { name: 'patient', resource: { resourceType: 'Patient' } }] });
  t.equal(mixed.statusCode, 400);
  t.match(diagnostics(mixed), /patient 1/);
  t.equal((await store.search({ types: ['Patient'], where: [{ kind: 'token', param: 'identifier', values: [{ system: INS, code: '100000000000007' }] }], sort: [] }, { count: 1 })).matches.length, 0, 'a refused call enrols nobody');
  const { id } = enrolled.get('100000000000001') as { id: string };
  const byPerson = await call(person(id), 'POST', 'Patient/$enrol', { resourceType: 'Parameters', parameter: [{ name: 'patient', resource: personOf('100000000000009', 'Self') }] });
  t.equal(byPerson.statusCode, 403);
  const created = await call(FEED, 'POST', 'Patient', { ...personOf('100000000000008', 'Plain'), extension: [{ url: ACCOUNT_EXTENSION, extension: [{ url: 'state', valueCode: 'open' }] }] });
  t.equal(created.statusCode, 403, 'a plain create does not make an account');
  t.match(diagnostics(created), /\$enrol/);
});

t.test('a push during the notified weeks is kept, and professionals do not see it yet', async (t) => {
  const { id } = enrolled.get('100000000000001') as { id: string };
  const res = await call(FEED, 'POST', '', push(id, 'notified-weeks-report'));
  t.equal(res.statusCode, 200, res.body);
  const doc = documentOf(res);
  t.equal((await call(GP, 'GET', `DocumentReference/${doc}`)).statusCode, 404, 'the GP reads nothing of a notified account');
  t.equal((await call(GP, 'GET', `Patient/${id}`)).statusCode, 404);
  t.equal(json<Bundle>(await call(GP, 'GET', `DocumentReference?patient=${id}&_total=accurate`)).total, 0, 'nor finds it');
  t.equal((await call(person(id), 'GET', `DocumentReference/${doc}`)).statusCode, 200, 'the person reads it');
  const observation = { resourceType: 'Observation', status: 'final', code: { text: 'weight' }, subject: { reference: `Patient/${id}` } };
  t.equal((await call(GP, 'POST', 'Observation', observation)).statusCode, 404, 'the GP writes nothing into it either');
  t.context.doc = doc;
});

t.test('nobody sets the account or active with a plain update', async (t) => {
  const { id } = enrolled.get('100000000000001') as { id: string };
  const patient = (await stored(id)).resource as Patient;
  const feed = await call(FEED, 'PUT', `Patient/${id}`, { ...patient, active: true });
  t.equal(feed.statusCode, 403);
  t.match(diagnostics(feed), /Patient\.active/);
  const opened = { ...patient, extension: [{ url: ACCOUNT_EXTENSION, extension: [{ url: 'state', valueCode: 'open' }] }] };
  const self = await call(person(id), 'PUT', `Patient/${id}`, opened);
  t.equal(self.statusCode, 403);
  t.match(diagnostics(self), /account operations/);
  const { active: _active, ...withoutActive } = patient;
  const kept = await call(person(id), 'PUT', `Patient/${id}`, { ...withoutActive, telecom: [{ system: 'email', value: 'alpha@example.org' }] });
  t.equal(kept.statusCode, 200, 'an update leaving active out is accepted');
  t.equal(json<Patient>(kept).active, false, 'and active stays what the account says');
  t.equal(await accountState(id), 'notified');
});

t.test('activation needs the provisional code and the INS', async (t) => {
  walkTo(1);
  const { id, code } = enrolled.get('100000000000001') as { id: string; code: string };
  const wrongCode = await call(person(id), 'POST', `Patient/${id}/$activate`, params({ code: 'AAAA-AAAA-AAAA', ins: '100000000000001' }));
  t.equal(wrongCode.statusCode, 403);
  t.match(diagnostics(wrongCode), /ACCOUNT_PROOF.*notified/);
  const wrongIns = await call(person(id), 'POST', `Patient/${id}/$activate`, params({ code, ins: '100000000000002' }));
  t.equal(wrongIns.statusCode, 403);
  t.equal((await call(person(id), 'POST', `Patient/${id}/$activate`, params({ code }))).statusCode, 400, 'the INS is required');
  const other = enrolled.get('100000000000002') as { id: string };
  t.equal((await call(person(other.id), 'POST', `Patient/${id}/$activate`, params({ code, ins: '100000000000001' }))).statusCode, 404, 'nobody activates another person\'s account');
  t.equal((await call(FEED, 'POST', `Patient/${id}/$activate`, params({ code, ins: '100000000000001' }))).statusCode, 403, 'nor the feed');
  t.equal(await accountState(id), 'notified');
  const ok = await call(person(id), 'POST', `Patient/${id}/$activate`, params({ code: code.toLowerCase(), ins: '100000000000001' }));
  t.equal(ok.statusCode, 200, ok.body);
  const patient = json<Patient>(ok);
  t.equal(patient.active, true);
  t.same(accountOf(patient), { state: 'open' }, 'open, and the code is forgotten');
  const again = await call(person(id), 'POST', `Patient/${id}/$activate`, params({ code, ins: '100000000000001' }));
  t.equal(again.statusCode, 409);
  t.match(diagnostics(again), /ACCOUNT_STATE.*this one is open/);
});

t.test('wrong activation attempts are counted on the account; after five the code no longer works, even the right one', async (t) => {
  const res = await call(FEED, 'POST', 'Patient/$enrol', { resourceType: 'Parameters', parameter: [{ name: 'patient', resource: personOf('100000000000009', 'Guessed') }] });
  const { id, code } = results(res).get('100000000000009') as { id: string; code: string };
  t.equal((await call(GP, 'POST', `Patient/${id}/$activate`, params({ code: 'AAAA-AAAA-AAAA', ins: '100000000000009' }))).statusCode, 404, 'a professional does not even see the notified account');
  t.equal(accountOf((await stored(id)).resource as Patient).failedAttempts, undefined, 'and counts for nothing (nobody else can use up the person\'s attempts)');
  for (let attempt = 1; attempt <= 5; attempt++) {
    const wrong = await call(person(id), 'POST', `Patient/${id}/$activate`, params({ code: 'AAAA-AAAA-AAAA', ins: '100000000000009' }));
    t.equal(wrong.statusCode, 403);
    t.match(diagnostics(wrong), new RegExp(`ACCOUNT_PROOF.*attempt ${attempt} of 5`));
  }
  const account = accountOf((await stored(id)).resource as Patient);
  t.equal(account.failedAttempts, 5, 'every attempt is on the account (every process sees it)');
  t.equal(account.provisionalCode, undefined, 'the code is dropped');
  const right = await call(person(id), 'POST', `Patient/${id}/$activate`, params({ code, ins: '100000000000009' }));
  t.equal(right.statusCode, 403);
  t.match(diagnostics(right), /ACCOUNT_LOCKED/);
  t.equal(await accountState(id), 'notified', 'still notified: it would open at the end of its window');
  t.equal((await call(person(id), 'POST', `Patient/${id}/$object`, params({}))).statusCode, 200, 'and the person may still object');
});

t.test('once open, professionals with a relationship read what was pushed meanwhile', async (t) => {
  const { id } = enrolled.get('100000000000001') as { id: string };
  t.equal((await call(GP, 'GET', `Patient/${id}`)).statusCode, 200);
  t.equal(json<Bundle>(await call(GP, 'GET', `DocumentReference?patient=${id}&_total=accurate`)).total, 1);
});

t.test('an objection within the window: never opened, nothing pushed is kept, no activation', async (t) => {
  walkTo(10);
  const { id, code } = enrolled.get('100000000000003') as { id: string; code: string };
  const res = await call(person(id), 'POST', `Patient/${id}/$object`, params({}));
  t.equal(res.statusCode, 200, res.body);
  t.equal(json<Patient>(res).active, false);
  t.equal(await accountState(id), 'objected');
  const activate = await call(person(id), 'POST', `Patient/${id}/$activate`, params({ code, ins: '100000000000003' }));
  t.equal(activate.statusCode, 409);
  t.match(diagnostics(activate), /objected/);
  const pushed = await call(FEED, 'POST', '', push(id, 'objected-account-report'));
  t.equal(pushed.statusCode, 403);
  t.match(diagnostics(pushed), /account of Patient\/.* is objected/);
  t.equal(await blobOf('objected-account-report'), undefined, 'no blob was written');
  t.equal((await call(GP, 'GET', `Patient/${id}`)).statusCode, 404);
});

t.test('closing: professionals read nothing any more, the person still does, nothing more is pushed', async (t) => {
  walkTo(11);
  const { id } = enrolled.get('100000000000001') as { id: string };
  t.equal((await call(GP, 'POST', `Patient/${id}/$close`, params({}))).statusCode, 403, 'the GP sees the account, and does not close it');
  const res = await call(person(id), 'POST', `Patient/${id}/$close`, params({}));
  t.equal(res.statusCode, 200, res.body);
  t.match(accountOf(json<Patient>(res)), { state: 'closed', closedAt: now(), closedBy: 'person' });
  t.equal((await call(GP, 'GET', `Patient/${id}`)).statusCode, 404, 'the GP reads nothing of a closed account');
  t.equal(json<Bundle>(await call(GP, 'GET', `DocumentReference?patient=${id}&_total=accurate`)).total, 0);
  t.equal(json<Bundle>(await call(person(id), 'GET', `DocumentReference?patient=${id}&_total=accurate`)).total, 1, 'the person still reads their record');
  const pushed = await call(FEED, 'POST', '', push(id, 'closed-account-report'));
  t.equal(pushed.statusCode, 403);
  t.match(diagnostics(pushed), /account of Patient\/.* is closed/);
  t.equal(await blobOf('closed-account-report'), undefined, 'no blob was written');
  const single = await call(FEED, 'POST', 'DocumentReference', { resourceType: 'DocumentReference', status: 'current', subject: { reference: `Patient/${id}` }, content: [{ attachment: { contentType: 'text/plain', url: 'http://example.org/x' } }] });
  t.equal(single.statusCode, 403, 'a single document neither');
  const doc = (await store.search({ types: ['DocumentReference'], where: [{ kind: 'reference', param: 'patient', values: [{ targetType: 'Patient', targetId: id }] }], sort: [] }, { count: 1 })).matches[0].id;
  const bytes = await call(FEED, 'POST', 'Binary', { resourceType: 'Binary', contentType: 'text/plain', data: Buffer.from('closed-account-binary').toString('base64'), securityContext: { reference: `DocumentReference/${doc}` } });
  t.equal(bytes.statusCode, 403, 'nor bytes for one of its documents');
  t.match(diagnostics(bytes), /closed/);
  t.equal(await blobOf('closed-account-binary'), undefined, 'and no blob was written');
  const again = await call(person(id), 'POST', `Patient/${id}/$close`, params({}));
  t.equal(again.statusCode, 409);
  t.match(diagnostics(again), /closed/);
  const audit = await store.search({ types: ['AuditEvent'], where: [{ kind: 'reference', param: 'entity', values: [{ targetType: 'Patient', targetId: id }] }, { kind: 'token', param: 'subtype', values: [{ code: 'operation' }] }], sort: [] }, { count: 50 });
  t.ok(audit.matches.length >= 3, 'enrolment, activation and closing each have their AuditEvent');
});

t.test('the scheduler archives a closed account after 30 days, leaves a notified one before its window ends', async (t) => {
  walkTo(41);
  const bravo = enrolled.get('100000000000002') as { id: string };
  const alpha = enrolled.get('100000000000001') as { id: string };
  t.equal(await app.accounts.run(), 1, 'one account moved');
  t.equal(await accountState(alpha.id), 'archived');
  t.equal(await accountState(bravo.id), 'notified', 'still in its window');
  t.equal((await call(person(bravo.id), 'POST', `Patient/${bravo.id}/$object`, params({}))).statusCode, 200, 'an objection on the last day of the window');
  t.equal(await accountState(bravo.id), 'objected');
});

t.test('after six weeks: no objection any more, and the scheduler opens the account', async (t) => {
  const res = await call(FEED, 'POST', 'Patient/$enrol', { resourceType: 'Parameters', parameter: [{ name: 'patient', resource: personOf('100000000000004', 'Delta') }] });
  const { id } = results(res).get('100000000000004') as { id: string };
  const pushed = await call(FEED, 'POST', '', push(id, 'delta-notified-report'));
  t.equal(pushed.statusCode, 200);
  walkTo(41 + 42);
  const late = await call(person(id), 'POST', `Patient/${id}/$object`, params({}));
  t.equal(late.statusCode, 409, 'the objection window has ended');
  t.match(diagnostics(late), /ACCOUNT_WINDOW_ENDED/);
  // Another process holds the lease: neither this one nor a third runs meanwhile.
  t.equal(await store.lease('accounts:scheduler', 'another-process', now(), 60_000), true);
  const third = new AccountScheduler({ store, now, baseUrl: () => 'http://third' });
  t.equal(await third.run(), 0, 'a process without the lease moves nothing');
  t.equal(await app.accounts.run(), 0);
  t.equal(await accountState(id), 'notified');
  clock += 60_001; // the holder died: its lease expires
  t.equal(await app.accounts.run(), 1);
  t.equal(await accountState(id), 'open');
  t.equal(((await stored(id)).resource as Patient).active, true);
  t.equal(json<Bundle>(await call(GP, 'GET', `DocumentReference?patient=${id}&_total=accurate`)).total, 1, 'what was pushed during the window is now visible to the GP');
  t.equal(await app.accounts.run(), 0, 'nothing more is due');
  const audit = await store.search({ types: ['AuditEvent'], where: [{ kind: 'reference', param: 'entity', values: [{ targetType: 'Patient', targetId: id }] }], sort: [] }, { count: 50 });
  t.ok(audit.matches.some((m) => (m.resource as AuditEvent).subtype?.some((s) => s.code === 'account-window-ended')), 'the scheduled opening has its AuditEvent');
});
