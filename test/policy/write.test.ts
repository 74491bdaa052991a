// The write model (src/policy/write.ts) and the Consent shapes (src/policy/consents.ts) on plain
// values: each row of docs/consent.md "Who writes what", allowed and refused.
import t from 'tap';
import type { Consent, Resource } from '@medplum/fhirtypes';
import type { Actor } from '../../src/auth/actor.js';
import { parseScopes } from '../../src/auth/scopes.js';
import { consentIssues, inForce, rulesOf, stateOf } from '../../src/policy/consents.js';
import { decideWrite, sameJson, type WriteInput } from '../../src/policy/write.js';
import { block, doc, emergencyOff, mask, permit, PRESCRIPTION } from './fixture.js';
import { withAccount, type AccountState } from '../../src/policy/account.js';

const grants = parseScopes('system/*.cruds');
const common = { grants: parseScopes('user/*.cruds'), issuer: 'test', subject: 's' };
const vendor: Actor = { kind: 'system', clientId: 'lab', grants, issuer: 'test', subject: 'lab' };
const feed: Actor = { kind: 'system', clientId: 'rpps', grants: parseScopes('system/Practitioner.cud system/Organization.cud'), issuer: 'test', subject: 'rpps' };
const pa: Actor = { kind: 'patient', patientId: 'pa', ...common };
const rep: Actor = { kind: 'representative', relatedPersonId: 'rp', patientIds: ['pa'], ...common };
const doctor = (id: string, extra: Partial<Extract<Actor, { kind: 'practitioner' }>> = {}): Actor => ({ kind: 'practitioner', practitionerId: id, profession: '10', purposeOfUse: 'TREAT', ...common, ...extra });
const gp = doctor('gp');
const insurer: Actor = { kind: 'organisation', role: 'mandatory-insurer', organizationId: 'cnam', ...common };

const PRCP = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }] };
const NOW = Date.parse('2026-06-01T12:00:00Z');
const patient = { resourceType: 'Patient' as const, id: 'pa', active: true, generalPractitioner: [{ reference: 'Practitioner/gp' }], identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '1' }] };
const state = (consents: Consent[] = [], p: Resource | undefined = patient) => stateOf('pa', p as never, consents);
const observation = { resourceType: 'Observation', id: 'o1', status: 'final', code: { text: 'weight' }, subject: { reference: 'Patient/pa' } } as Resource;

const write = (input: Partial<WriteInput> & Pick<WriteInput, 'actor' | 'action'>) => decideWrite({ now: NOW, state: state(), ...input });
const verdict = (input: Partial<WriteInput> & Pick<WriteInput, 'actor' | 'action'>) => {
  const d = write(input);
  return d.permit ? 'permit' : d.status;
};

t.test('AuditEvents: the server alone writes them', async (t) => {
  const event = { resourceType: 'AuditEvent', id: 'e' } as Resource;
  for (const actor of [vendor, feed, pa, rep, gp]) t.equal(verdict({ actor, action: 'create', after: event }), 403, actor.kind);
});

t.test('the directory: the directory feed alone, with a scope naming the type', async (t) => {
  const practitioner = { resourceType: 'Practitioner', id: 'x' } as Resource;
  t.equal(verdict({ actor: feed, action: 'create', after: practitioner }), 'permit');
  t.equal(verdict({ actor: feed, action: 'update', before: { resource: practitioner }, after: practitioner }), 'permit');
  t.equal(verdict({ actor: feed, action: 'create', after: { resourceType: 'PractitionerRole', id: 'r' } as Resource }), 403, 'its scope names Practitioner and Organization only');
  t.equal(verdict({ actor: vendor, action: 'create', after: practitioner }), 403, 'system/*.cruds is no directory scope');
  for (const actor of [gp, pa, insurer]) t.equal(verdict({ actor, action: 'update', before: { resource: practitioner }, after: practitioner }), 403, actor.kind);
});

t.test('Consents: the patient side; a professional only their own permit, notified', async (t) => {
  t.equal(verdict({ actor: pa, action: 'create', after: block('b', 'pa', 'Practitioner/gp') }), 'permit');
  t.equal(verdict({ actor: rep, action: 'delete', before: { resource: mask('m', 'pa', 'd') } }), 'permit');
  t.equal(verdict({ actor: vendor, action: 'create', after: permit('c', 'pa', 'dr-x') }), 403, 'a vendor system writes no choice');
  const own = write({ actor: doctor('dr-new'), action: 'create', after: permit('c', 'pa', 'dr-new') });
  t.match(own, { permit: true }, 'the patient hears of it from its access record (notify/access)');
  t.equal(verdict({ actor: doctor('dr-new'), action: 'create', after: permit('c', 'pa', 'dr-other') }), 403, 'a permit for another');
  t.equal(verdict({ actor: doctor('dr-new'), action: 'create', after: emergencyOff('c', 'pa') }), 403, 'another choice');
  const two = permit('c', 'pa', 'dr-new');
  two.provision?.actor?.push({ role: PRCP, reference: { reference: 'Practitioner/dr-friend' } });
  t.equal(verdict({ actor: doctor('dr-new'), action: 'create', after: two }), 403, 'a permit naming them and someone else');
  t.equal(verdict({ actor: doctor('dr-new'), action: 'update', before: { resource: permit('c', 'pa', 'dr-new') }, after: { ...permit('c', 'pa', 'dr-new'), status: 'inactive' } }), 403, 'nor changes one');
  t.equal(verdict({ actor: doctor('dr-new'), action: 'create', after: permit('c', 'pa', 'dr-new'), state: state([block('b', 'pa', 'Practitioner/dr-new')]) }), 404, 'a blocked professional records nothing');
  const nested = { ...block('b', 'pa', 'Practitioner/gp'), provision: { type: 'deny', actor: [{ reference: { reference: 'Practitioner/gp' } }], provision: [{ type: 'permit' }] } } as Consent;
  const refused = write({ actor: pa, action: 'create', after: nested });
  t.match(refused, { permit: false, status: 422, issues: [{ expression: 'Consent.provision.provision' }] }, 'an unenforceable shape is 422, naming the element');
});

t.test('the account: changed only by its operations, each by its own actor', async (t) => {
  const mine = { resource: withAccount(patient, { state: 'notified', objectionEnds: '2026-07-13T12:00:00.000Z' }) as Resource, creator: 'client:lab' };
  const opened = withAccount(patient, { state: 'open' }) as Resource;
  for (const actor of [pa, rep, vendor]) t.equal(verdict({ actor, action: 'update', before: mine, after: opened }), 403, `a plain update by the ${actor.kind} does not change the account`);
  t.match(write({ actor: pa, action: 'update', before: mine, after: opened }), { reason: /account operations/ });
  t.equal(verdict({ actor: vendor, action: 'create', after: mine.resource }), 403, 'a plain create does not make an account');
  t.equal(verdict({ actor: vendor, action: 'create', after: mine.resource, account: 'enrol' }), 'permit', 'the enrolment feed enrols');
  t.equal(verdict({ actor: pa, action: 'create', after: mine.resource, account: 'enrol' }), 403, 'a person does not enrol');
  t.equal(verdict({ actor: pa, action: 'update', before: mine, after: opened, account: 'activate' }), 'permit', 'the person activates');
  t.equal(verdict({ actor: rep, action: 'update', before: mine, after: opened, account: 'object' }), 'permit', 'their representative objects');
  t.equal(verdict({ actor: vendor, action: 'update', before: mine, after: opened, account: 'activate' }), 403, 'a system does not activate');
  t.equal(verdict({ actor: gp, action: 'update', before: mine, after: opened, account: 'close' }), 403, 'a professional does not close');
  t.equal(verdict({ actor: vendor, action: 'update', before: mine, after: opened, account: 'close' }), 'permit', 'the enrolling feed closes at death');
  t.equal(verdict({ actor: { ...vendor, clientId: 'other' }, action: 'update', before: mine, after: opened, account: 'close' }), 403, 'another feed does not');
  t.equal(verdict({ actor: vendor, action: 'update', before: mine, after: opened, account: 'window-ended' }), 403, 'the scheduler\'s transitions are nobody else\'s');
  t.equal(verdict({ actor: pa, action: 'update', before: mine, after: { ...opened, gender: 'other' } as Resource, account: 'activate' }), 403, 'a transition changes the account alone');
});

t.test('the record takes content until the account closes; the refusal names the state', async (t) => {
  const at = (s: AccountState) => state([], withAccount(patient, { state: s }) as Resource);
  for (const s of ['notified', 'open'] as const) {
    t.equal(verdict({ actor: vendor, action: 'create', after: observation, state: at(s) }), 'permit', `a push into a ${s} account`);
  }
  for (const s of ['objected', 'closed', 'archived', 'purged'] as const) {
    const refusedPush = write({ actor: vendor, action: 'create', after: observation, state: at(s) });
    t.match(refusedPush, { permit: false, status: 403, reason: new RegExp(`account of Patient/pa is ${s}`) }, `no push into a ${s} account`);
    t.equal(verdict({ actor: pa, action: 'create', after: observation, state: at(s) }), 403, `nor by the patient (${s})`);
  }
  t.match(write({ actor: gp, action: 'create', after: observation, state: at('notified') }), { permit: false, status: 404, reason: /notified/ }, 'a professional writes into an open account only, and learns nothing');
  t.match(write({ actor: gp, action: 'create', after: observation, state: at('closed') }), { permit: false, status: 404, reason: /closed/ });
});

t.test('Patient: created by a system; elements each side may change', async (t) => {
  t.equal(verdict({ actor: vendor, action: 'create', after: patient as Resource }), 'permit');
  t.equal(verdict({ actor: pa, action: 'create', after: patient as Resource }), 403);
  t.equal(verdict({ actor: gp, action: 'create', after: patient as Resource }), 403);
  const mine = { resource: patient as Resource, creator: 'client:lab' };
  const changed = (change: Record<string, unknown>) => ({ ...patient, ...change }) as Resource;
  t.equal(verdict({ actor: pa, action: 'update', before: mine, after: changed({ generalPractitioner: [{ reference: 'Practitioner/dr-new' }] }) }), 'permit', 'the patient chooses their GP');
  t.equal(verdict({ actor: rep, action: 'update', before: mine, after: changed({ telecom: [{ system: 'phone', value: '1' }] }) }), 'permit');
  t.equal(verdict({ actor: pa, action: 'update', before: mine, after: changed({ active: false }) }), 403, 'the patient does not flip active');
  t.equal(verdict({ actor: pa, action: 'update', before: mine, after: changed({ identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '2' }] }) }), 403, 'nor the INS');
  t.equal(verdict({ actor: vendor, action: 'update', before: mine, after: changed({ generalPractitioner: [{ reference: 'Practitioner/dr-x' }] }) }), 403, 'the feed does not choose the GP');
  t.equal(verdict({ actor: vendor, action: 'update', before: mine, after: changed({ active: false }) }), 403, 'nor the feed: the account changes through its operations');
  t.equal(verdict({ actor: { ...vendor, clientId: 'other' }, action: 'update', before: mine, after: changed({ name: [{ family: 'X' }] }) }), 403, 'another system');
  t.equal(verdict({ actor: doctor('gp'), action: 'update', before: mine, after: changed({ generalPractitioner: [{ reference: 'Practitioner/gp' }, { reference: 'Practitioner/friend' }] }) }), 403, 'a professional changes no Patient');
  t.equal(verdict({ actor: pa, action: 'delete', before: mine }), 403);
  t.equal(verdict({ actor: vendor, action: 'delete', before: mine }), 'permit');
  t.ok(sameJson({ a: [1, { b: 2, c: 3 }] }, { a: [1, { c: 3, b: 2 }] }), 'the comparison ignores key order');
});

t.test('the record\'s content: created with a care relationship, changed by its author only', async (t) => {
  t.equal(verdict({ actor: vendor, action: 'create', after: observation }), 'permit');
  t.match(write({ actor: gp, action: 'create', after: observation }), { permit: true, emergency: false }, 'the GP writes (the patient hears of it from its access record: notify/access)');
  t.equal(verdict({ actor: doctor('stranger'), action: 'create', after: observation }), 404, 'no relationship');
  t.equal(verdict({ actor: doctor('stranger'), action: 'create', after: doc('d', 'pa', PRESCRIPTION, 'Practitioner/stranger') }), 404, 'naming oneself author is no relationship');
  t.match(write({ actor: doctor('er', { purposeOfUse: 'ETREAT' }), action: 'create', after: observation }), { permit: true, emergency: true });
  t.equal(verdict({ actor: doctor('er', { purposeOfUse: 'ETREAT' }), action: 'create', after: observation, state: state([emergencyOff('e', 'pa')]) }), 404);
  t.equal(verdict({ actor: gp, action: 'create', after: observation, state: state([block('b', 'pa', 'Practitioner/gp')]) }), 404, 'blocked');
  t.equal(verdict({ actor: gp, action: 'create', after: observation, state: state([], { ...patient, active: false } as Resource) }), 404, 'closed account');
  t.equal(verdict({ actor: pa, action: 'create', after: observation }), 'permit', 'the patient writes in their record');
  t.equal(verdict({ actor: pa, action: 'create', after: doc('d', 'pa', PRESCRIPTION, 'Practitioner/gp') }), 403, 'a patient deposits as the author');
  t.equal(verdict({ actor: pa, action: 'create', after: doc('d', 'pa', PRESCRIPTION, 'Patient/pa') }), 'permit');

  const byLab = { resource: observation, creator: 'client:lab' };
  t.equal(verdict({ actor: vendor, action: 'update', before: byLab, after: { ...observation, status: 'amended' } as Resource }), 'permit', 'the author corrects it');
  t.equal(verdict({ actor: doctor('podo', { profession: '80' }), action: 'update', before: byLab, after: { ...observation, status: 'amended' } as Resource, state: state([permit('c', 'pa', 'podo')]) }), 403, 'nobody rewrites another author\'s resource');
  t.equal(verdict({ actor: pa, action: 'update', before: byLab, after: observation }), 403);
  t.equal(verdict({ actor: vendor, action: 'update', before: byLab, after: { ...observation, subject: { reference: 'Patient/pb' } } as Resource }), 403, 'nor moves it to another record');

  const document = doc('d', 'pa', PRESCRIPTION, 'Practitioner/gp');
  const pushed = { resource: document, creator: 'client:his' };
  t.equal(verdict({ actor: gp, action: 'update', before: pushed, after: { ...document, status: 'entered-in-error' } as Resource }), 'permit', 'the named author retracts it');
  t.equal(verdict({ actor: { ...vendor, clientId: 'his' }, action: 'delete', before: pushed }), 'permit', 'the system that pushed it');
  t.equal(verdict({ actor: pa, action: 'update', before: pushed, after: { ...document, author: [{ reference: 'Patient/pa' }] } as Resource }), 403, 'the patient does not take authorship');
  t.equal(verdict({ actor: pa, action: 'delete', before: pushed }), 403, 'nor deletes it (they mask it)');
  t.equal(verdict({ actor: gp, action: 'update', before: pushed, after: { ...document, author: [{ reference: 'Practitioner/gp' }, { reference: 'Practitioner/friend' }] } as Resource }), 403, 'the author list does not change');
  const deposited = doc('d2', 'pa', '60591-5', 'Patient/pa');
  t.equal(verdict({ actor: rep, action: 'delete', before: { resource: deposited, creator: 'patient:pa' } }), 'permit', 'the patient side deletes what it deposited');
  t.equal(verdict({ actor: insurer, action: 'create', after: observation }), 403);
});

t.test('Consent shapes: every entry counts, periods bound them, the rest is refused', async (t) => {
  const two = mask('m', 'pa', 'd1');
  two.provision?.data?.push({ meaning: 'instance', reference: { reference: 'DocumentReference/d2' } });
  t.same(rulesOf(two).map((r) => r.kind === 'mask' && r.documentId), ['d1', 'd2'], 'a mask of two documents masks both');
  const blocks = block('b', 'pa', 'Practitioner/x');
  blocks.provision?.actor?.push({ role: PRCP, reference: { reference: 'Organization/y' } });
  t.same(rulesOf(blocks).map((r) => r.kind === 'block' && r.target), [{ type: 'Practitioner', id: 'x' }, { type: 'Organization', id: 'y' }]);
  const ended = { ...permit('p', 'pa', 'x'), provision: { ...permit('p', 'pa', 'x').provision, period: { end: '2026-05-31' } } } as Consent;
  t.notOk(inForce(rulesOf(ended)[0], NOW), 'a permit that ended grants nothing');
  t.ok(inForce(rulesOf(ended)[0], Date.parse('2026-05-31T23:59:59Z')), 'until the last instant of its end date');
  const future = { ...mask('m', 'pa', 'd'), provision: { ...mask('m', 'pa', 'd').provision, period: { start: '2026-07-01' } } } as Consent;
  t.notOk(inForce(rulesOf(future)[0], NOW), 'a mask starting later does not apply yet');
  const issues = (c: Consent) => consentIssues(c).map((i) => i.expression);
  t.same(issues(permit('p', 'pa', 'x')), []);
  t.same(issues({ ...permit('p', 'pa', 'x'), status: 'inactive', provision: { type: 'permit', provision: [{ type: 'deny' }] } } as Consent), [], 'an inactive Consent enforces nothing: kept');
  t.ok(issues({ ...permit('p', 'pa', 'x'), provision: { type: 'permit', actor: [{ reference: { reference: 'Practitioner/x' } }], provision: [{ type: 'deny' }] } } as Consent).includes('Consent.provision.provision'), 'nested provisions');
  t.ok(issues({ ...permit('p', 'pa', 'x'), provision: { type: 'permit', actor: [{ reference: { reference: 'Organization/o' } }] } } as Consent).includes('Consent.provision.actor[0].reference'), 'a permit to an organisation');
  t.ok(issues({ ...block('b', 'pa', 'Practitioner/x'), provision: { type: 'deny', actor: [{ reference: { reference: 'Practitioner/x' } }], data: [{ meaning: 'instance', reference: { reference: 'DocumentReference/d' } }] } } as Consent).includes('Consent.provision'), 'a mask for one professional');
  t.ok(issues({ ...mask('m', 'pa', 'd'), provision: { type: 'deny', data: [{ meaning: 'related', reference: { reference: 'DocumentReference/d' } }] } } as Consent).includes('Consent.provision.data[0].meaning'));
  t.ok(issues({ ...permit('p', 'pa', 'x'), provision: { type: 'permit', actor: [{ reference: { reference: 'Practitioner/x' } }], action: [{ text: 'read' }] } } as Consent).includes('Consent.provision.action'));
  t.ok(issues({ ...permit('p', 'pa', 'x'), provision: { type: 'permit', actor: [{ reference: { reference: 'Practitioner/x' } }], period: { start: '2026-07-01', end: '2026-06-01' } } } as Consent).includes('Consent.provision.period'), 'a period ending before it starts');
  t.ok(issues({ ...permit('p', 'pa', 'x'), scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'research' }] } } as Consent).includes('Consent.scope'), 'a research consent');
  t.ok(issues({ ...permit('p', 'pa', 'x'), provision: undefined } as unknown as Consent).includes('Consent.provision'));
  t.same(rulesOf({ ...permit('p', 'pa', 'x'), provision: { type: 'permit', actor: [{ reference: { reference: 'Practitioner/x' } }], provision: [{ type: 'deny' }] } } as Consent), [], 'an unenforceable stored Consent grants nothing');
});
