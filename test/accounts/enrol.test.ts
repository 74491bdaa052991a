// Enrolment at national scale through the real server, on the file-backed store with its writer
// thread (docs/accounts.md "$enrol"): a batch of 10,000 people in one call (beyond the server's
// general body limit), idempotent on the INS; concurrent calls with overlapping INS making one
// account each; a minor's legal representatives created with the account; the refusals.
process.env.CARNET_TEST_STORE = 'file';

import t from 'tap';
import type { AuditEvent, OperationOutcome, Parameters, Patient, RelatedPerson } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { enrolParameters, people, type GeneratedPerson } from '../../src/accounts/population.js';
import { accountOf, majorityDate } from '../../src/policy/account.js';
import { consentStamp } from '../../src/policy/index.js';
import type { SearchPlan } from '../../src/search/types.js';

const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const NOW = '2027-01-04T09:00:00.000Z';
const TODAY = NOW.slice(0, 10);
// The server's general body limit is 1 MiB here: $enrol alone takes more (fhir/enrol ENROL_BODY_LIMIT).
// A call of 10,000 people takes seconds on a quiet machine, much more on a busy one.
t.setTimeout(900_000);
const server = await testServer({ now: () => NOW, bodyLimit: 1024 * 1024 });
t.teardown(() => server.close());
const { app, store } = server;
const as = authorizationFor(server);
const FEED: TestActor = { kind: 'system', client: 'cnam-feed' };

const enrol = async (body: unknown, actor: TestActor = FEED, scope?: string) => fhir(app, 'POST', 'Patient/$enrol', body, await as(actor, scope));
const diagnostics = (res: { body: string }) => (json<OperationOutcome>(res).issue ?? []).map((i) => i.diagnostics).join(' ');

interface Result {
  ins: string;
  id: string;
  outcome: string;
  code?: string;
  representatives: string[];
}

function results(res: { body: string }): Result[] {
  return (json<Parameters>(res).parameter ?? []).map((r) => {
    const part = (name: string) => r.part?.find((p) => p.name === name);
    return {
      ins: part('ins')?.valueString as string,
      id: (part('patient')?.valueReference?.reference as string).replace('Patient/', ''),
      outcome: part('outcome')?.valueCode as string,
      ...(part('provisionalCode') ? { code: part('provisionalCode')?.valueString as string } : {}),
      representatives: (r.part ?? []).filter((p) => p.name === 'representative').map((p) => (p.valueReference?.reference as string).replace('RelatedPerson/', '')),
    };
  });
}

const byIns = (values: string[]): SearchPlan => ({ types: ['Patient'], where: [{ kind: 'token', param: 'identifier', values: values.map((code) => ({ system: INS, code })) }], sort: [] });
const patientsWith = async (values: string[]) => (await store.search(byIns(values), { count: values.length + 10, total: true })).total;
const auditOf = async (id: string) =>
  (await store.search({ types: ['AuditEvent'], where: [{ kind: 'reference', param: 'entity', values: [{ targetType: 'Patient', targetId: id }] }], sort: [] }, { count: 10 })).matches.map((m) => m.resource as AuditEvent);

// One population, cut into the groups of each test (distinct INS throughout).
const crowd = people({ seed: 16, today: TODAY }, 10_000 + 450 + 20);
const batch = crowd.slice(0, 10_000);
const racing = crowd.slice(10_000, 10_450);
const others = crowd.slice(10_450);
const minor = crowd.find((p) => p.representatives.length === 2) as GeneratedPerson;
const [fresh, newcomer] = others.filter((p) => p.representatives.length > 0);
const [adult, person] = others.filter((p) => p.representatives.length === 0);

t.test('a batch of 10,000 people is enrolled in one call, each with a code and an AuditEvent', async (t) => {
  const body = JSON.stringify(enrolParameters(batch));
  t.ok(body.length > 1024 * 1024, `the body (${body.length} bytes) is over the general limit`);
  const res = await enrol(body);
  t.equal(res.statusCode, 200, res.body.slice(0, 500));
  const answered = results(res);
  t.equal(answered.length, 10_000, 'one result per person');
  t.same(answered.map((r) => r.ins), batch.map((p) => p.ins), 'in the order of the call');
  t.ok(answered.every((r) => r.outcome === 'created' && /^[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}$/.test(r.code ?? '')), 'created, each with its code');
  t.equal(new Set(answered.map((r) => r.id)).size, 10_000, 'one account each');
  t.equal(await patientsWith(batch.slice(0, 400).map((p) => p.ins)), 400);
  const sample = answered[1234];
  const stored = await store.read('Patient', sample.id);
  t.equal(stored.kind, 'found');
  const patient = (stored.kind === 'found' ? stored.version.resource : undefined) as Patient;
  t.match(accountOf(patient), { state: 'notified', provisionalCode: /^hmac\$/ });
  t.equal(patient.active, false);
  t.notOk(JSON.stringify(patient).includes(sample.code as string), 'the code itself is stored nowhere');
  const audit = await auditOf(sample.id);
  t.equal(audit.length, 1, 'the new account has its own AuditEvent');
  t.match(audit[0].subtype, [{ code: 'operation' }]);
  const [stamp] = await store.stamps([consentStamp(sample.id)]);
  t.ok(stamp > 0, "the patient's consent stamp was bumped with the account");
});

t.test('the same batch again answers every person as existing and writes nothing', async (t) => {
  const first = new Map((await store.search(byIns(batch.slice(0, 300).map((p) => p.ins)), { count: 400 })).matches.map((m) => [m.id, m.versionId]));
  const res = await enrol(enrolParameters(batch));
  t.equal(res.statusCode, 200);
  const answered = results(res);
  t.equal(answered.length, 10_000);
  t.ok(answered.every((r) => r.outcome === 'existing' && r.code === undefined), 'existing, with no new code');
  t.equal(await patientsWith(batch.slice(0, 300).map((p) => p.ins)), 300, 'no second account');
  const again = await store.search(byIns(batch.slice(0, 300).map((p) => p.ins)), { count: 400 });
  t.ok(again.matches.every((m) => first.get(m.id) === m.versionId), 'the accounts are unchanged');
  t.equal((await auditOf(answered[1234].id)).length, 1, 'and get no new AuditEvent');
});

t.test('concurrent calls with overlapping INS make one account for each INS', async (t) => {
  // Three feeds at once: A and B share 150 people, B and C 150 others.
  const calls = [racing.slice(0, 300), racing.slice(150, 450), [...racing.slice(300, 450)].reverse()];
  const answers = await Promise.all(calls.map((group) => enrol(enrolParameters(group))));
  t.same(answers.map((r) => r.statusCode), [200, 200, 200], answers.map((r) => r.body.slice(0, 300)).join('\n'));
  const all = answers.flatMap(results);
  const ids = new Map<string, Set<string>>();
  for (const r of all) ids.set(r.ins, (ids.get(r.ins) ?? new Set()).add(r.id));
  t.equal(ids.size, 450);
  t.ok([...ids.values()].every((s) => s.size === 1), 'every call names the same account for one INS');
  const created = all.filter((r) => r.outcome === 'created');
  t.equal(created.length, 450, 'each INS created exactly once');
  t.equal(new Set(created.map((r) => r.ins)).size, 450);
  t.equal(await patientsWith(racing.map((p) => p.ins)), 450, 'one Patient per INS');
  for (const r of created.slice(0, 40)) t.equal((await auditOf(r.id)).length, 1, `Patient/${r.id} has one AuditEvent`);
});

t.test("a minor's legal representatives are created with the account, until the minor comes of age", async (t) => {
  const res = await enrol(enrolParameters([minor]));
  t.equal(res.statusCode, 200, res.body);
  // The minor is in the first batch: enrolled already, their representatives are not written again.
  t.equal(results(res)[0].outcome, 'existing');
  t.same(results(res)[0].representatives, []);
  // A new minor of the same population: created with them.
  const created = await enrol(enrolParameters([fresh]));
  t.equal(created.statusCode, 200, created.body);
  const [r] = results(created);
  t.equal(r.outcome, 'created');
  t.equal(r.representatives.length, fresh.representatives.length);
  const majority = majorityDate(fresh.patient.birthDate ?? '') as string;
  for (const [i, id] of r.representatives.entries()) {
    const read = await store.read('RelatedPerson', id);
    const related = (read.kind === 'found' ? read.version.resource : undefined) as RelatedPerson;
    t.equal(related.patient.reference, `Patient/${r.id}`, 'the representative refers to the new Patient');
    t.same(related.relationship, fresh.representatives[i].relationship);
    t.same(related.period, { start: NOW, end: majority }, 'from now until the 18th birthday');
  }
  const [audit] = await auditOf(r.id);
  t.ok(r.representatives.every((id) => audit.entity?.some((e) => e.what?.reference === `RelatedPerson/${id}`)), 'the AuditEvent names the representatives');
});

t.test('the same INS twice in one call is one account', async (t) => {
  const twin = others.filter((p) => p.representatives.length === 0)[2];
  const res = await enrol(enrolParameters([twin, twin]));
  t.equal(res.statusCode, 200, res.body);
  const [first, second] = results(res);
  t.match(first, { ins: twin.ins, outcome: 'created' });
  t.same(second, { ins: twin.ins, id: first.id, outcome: 'existing', representatives: [] });
  t.equal(await patientsWith([twin.ins]), 1);
});

t.test('refusals: nothing of the call is written', async (t) => {
  const untouched = async () => t.equal(await patientsWith([person.ins, adult.ins]), 0, 'no account written');
  const guardian: RelatedPerson = { resourceType: 'RelatedPerson', patient: { reference: 'Patient/x' }, relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'GUARD' }] }] };

  const forAdult = await enrol({ resourceType: 'Parameters', parameter: [{ name: 'patient', resource: person.patient }, { name: 'patient', resource: adult.patient }, { name: 'representative', resource: guardian }] });
  t.equal(forAdult.statusCode, 400);
  t.match(diagnostics(forAdult), /^ENROL_REPRESENTATIVE: patient 1 is an adult/);
  await untouched();

  const noRelationship = await enrol({ resourceType: 'Parameters', parameter: [{ name: 'patient', resource: person.patient }, { name: 'patient', resource: newcomer.patient }, { name: 'representative', resource: { resourceType: 'RelatedPerson', name: [{ family: 'Doe' }] } }] });
  t.equal(noRelationship.statusCode, 400);
  t.match(diagnostics(noRelationship), /^ENROL_REPRESENTATIVE: a representative needs a relationship/);
  t.equal(await patientsWith([person.ins, newcomer.ins]), 0);

  const notRepresentative = await enrol({ resourceType: 'Parameters', parameter: [{ name: 'patient', resource: newcomer.patient }, { name: 'representative', resource: { ...guardian, relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'FRND' }] }] } }] });
  t.equal(notRepresentative.statusCode, 400);
  t.match(diagnostics(notRepresentative), /FRND is not a legal representative/);

  const first = await enrol({ resourceType: 'Parameters', parameter: [{ name: 'representative', resource: guardian }, { name: 'patient', resource: newcomer.patient }] });
  t.equal(first.statusCode, 400);
  t.match(diagnostics(first), /follows the "patient" parameter/);

  const tooMany = await enrol(enrolParameters(crowd.slice(0, 10_001)));
  t.equal(tooMany.statusCode, 413);
  t.match(diagnostics(tooMany), /^ENROL_TOO_MANY: at most 10000 people in one \$enrol, this call has 10001/);

  const noRelatedScope = await enrol(enrolParameters([newcomer]), FEED, 'system/Patient.cr');
  t.equal(noRelatedScope.statusCode, 403, 'creating representatives needs the scope to create RelatedPersons');
  t.equal(await patientsWith([newcomer.ins]), 0);

  const person403 = await enrol(enrolParameters([person]), { kind: 'patient', patient: 'someone' });
  t.equal(person403.statusCode, 403, 'a person does not enrol anyone');
  await untouched();
});

t.test('the general body limit still holds for other requests', async (t) => {
  const big = { resourceType: 'Patient', name: [{ family: 'x'.repeat(1024 * 1024) }] };
  const res = await fhir(app, 'POST', 'Patient', big, await as(FEED));
  t.equal(res.statusCode, 413);
});
