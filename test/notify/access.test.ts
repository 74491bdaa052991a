// Which accesses the patient is told of (notify/access.ts) and their choices (policy/preferences.ts),
// as pure functions of access records built by audit/event.ts, the builder the server uses.
import t from 'tap';
import type { AuditEvent, Patient } from '@medplum/fhirtypes';
import type { Actor } from '../../src/auth/actor.js';
import { auditEvent, type AuditInteraction, type AuditOutcome } from '../../src/audit/event.js';
import { deliveryOf, noticesOf, notificationOf, opensNotification, windowKey, type Notice } from '../../src/notify/access.js';
import { DEFAULT_PREFERENCES, PREFERENCES_URL, preferenceIssues, preferencesOf } from '../../src/policy/preferences.js';
import { schemaIssues } from '../../src/fhir/validate.js';

const common = { grants: [], issuer: 'https://auth.carnet.test', subject: 'sub' };
const GP: Actor = { ...common, kind: 'practitioner', practitionerId: 'dr-gp', profession: '10', organizationId: 'org-cab', purposeOfUse: 'TREAT', clientId: 'lgc' };
const ER: Actor = { ...GP, practitionerId: 'dr-er', purposeOfUse: 'ETREAT' };
const PATIENT: Actor = { ...common, kind: 'patient', patientId: 'p1' };
const REP: Actor = { ...common, kind: 'representative', relatedPersonId: 'rp1', patientIds: ['p1'] };
const LAB: Actor = { ...common, kind: 'system', clientId: 'lab-sys', organizationId: 'org-lab' };
const INSURER: Actor = { ...common, kind: 'organisation', role: 'mandatory-insurer', organizationId: 'org-cpam' };

function record(actor: Actor, interaction: AuditInteraction, resources: string[], patients: string[], outcome: AuditOutcome = 'success', recorded = '2026-12-07T10:00:00.000Z'): AuditEvent & { id: string } {
  return { ...auditEvent({ actor, interaction, outcome, patients, resources, recorded, server: 'https://carnet.test/fhir' }), id: `ae-${interaction}` };
}

t.test('a professional\'s read, search or retrieval is a read notice; with ETREAT an emergency one', async (t) => {
  const [read] = noticesOf(record(GP, 'read', ['DocumentReference/d1'], ['p1']));
  t.match(read, { patientId: 'p1', kind: 'read', emergency: false, agent: 'Practitioner/dr-gp', profession: '10', organizationId: 'org-cab', at: '2026-12-07T10:00:00.000Z', record: 'AuditEvent/ae-read' });
  t.equal(noticesOf(record(GP, 'search-type', [], ['p1', 'p2'])).length, 2, 'a search that returned two patients\' data: one notice each');
  t.equal(noticesOf(record(GP, 'search-type', [], [])).length, 0, 'a search that returned nothing of anyone: none');
  t.match(noticesOf(record(ER, 'read', ['Observation/o1'], ['p1']))[0], { kind: 'read', emergency: true });
});

t.test('writes by professionals and documents pushed by systems', async (t) => {
  t.match(noticesOf(record(GP, 'create', ['Observation/o1'], ['p1']))[0], { kind: 'write' });
  t.match(noticesOf(record(GP, 'create', ['Consent/c1'], ['p1']))[0], { kind: 'own-permit' });
  t.match(noticesOf(record(GP, 'create', ['DocumentReference/d1'], ['p1']))[0], { kind: 'document' });
  t.match(noticesOf(record(LAB, 'transaction', ['DocumentReference/d1', 'Binary/b1', 'List/s1'], ['p1']))[0], { kind: 'document', agent: 'client:lab-sys', organizationId: 'org-lab', emergency: false });
  t.equal(noticesOf(record(LAB, 'create', ['Observation/o1'], ['p1'])).length, 0, 'a system writing other data: not a document');
  t.equal(noticesOf(record(LAB, 'read', ['DocumentReference/d1'], ['p1'])).length, 0, 'a system reading back what it wrote');
});

t.test('never: the patient side, organisations, refused or failed attempts', async (t) => {
  for (const actor of [PATIENT, REP, INSURER]) t.equal(noticesOf(record(actor, 'read', ['DocumentReference/d1'], ['p1'])).length, 0, actor.kind);
  t.equal(noticesOf(record(GP, 'read', ['DocumentReference/d1'], ['p1'], 'denied')).length, 0, 'denied');
  t.equal(noticesOf(record(GP, 'read', ['DocumentReference/d1'], ['p1'], 'failure')).length, 0, 'failed');
});

t.test('the window: one notification per agent, record and kind; emergencies and own permits always', async (t) => {
  const notice = (at: string, extra: Partial<Notice> = {}): Notice => ({ patientId: 'p1', kind: 'read', emergency: false, agent: 'Practitioner/dr-gp', at, record: 'AuditEvent/a', ...extra });
  const hour = 3_600_000;
  t.equal(opensNotification(notice('2026-12-07T10:00:00.000Z'), undefined, hour), true, 'the first access opens one');
  t.equal(opensNotification(notice('2026-12-07T10:59:59.999Z'), '2026-12-07T10:00:00.000Z', hour), false, 'within the hour: the same one');
  t.equal(opensNotification(notice('2026-12-07T11:00:00.000Z'), '2026-12-07T10:00:00.000Z', hour), true, 'an hour later: a new one');
  t.equal(opensNotification(notice('2026-12-07T10:01:00.000Z', { emergency: true }), '2026-12-07T10:00:00.000Z', hour), true, 'an emergency access: at once');
  t.equal(opensNotification(notice('2026-12-07T10:01:00.000Z', { kind: 'own-permit' }), '2026-12-07T10:00:00.000Z', hour), true, 'an own permit: at once');
  t.not(windowKey(notice('x')), windowKey(notice('x', { kind: 'write' })), 'kinds have their own windows');
  t.not(windowKey(notice('x')), windowKey(notice('x', { agent: 'Practitioner/other' })), 'agents have their own windows');
});

t.test('the notification names who, when and what kind, never the content', async (t) => {
  const [notice] = noticesOf(record(ER, 'read', ['DocumentReference/d-secret'], ['p1']));
  const communication = notificationOf(notice as Notice, { name: 'Dr Marie Martin', profession: 'Médecin', organization: 'CHU de Nantes' }, 'n1');
  t.same(schemaIssues(communication), [], 'a valid R4 Communication');
  const text = communication.payload?.[0]?.contentString ?? '';
  t.match(text, /^Emergency access \("bris de glace"\): Dr Marie Martin \(Médecin, CHU de Nantes\) consulted your record on 2026-12-07 at 10:00 UTC\.$/);
  t.notMatch(JSON.stringify(communication), /d-secret/, 'not what was read (the access record, which the patient reads, names it)');
  t.match(communication, { priority: 'urgent', sender: { reference: 'Practitioner/dr-er' }, recipient: [{ reference: 'Patient/p1' }], about: [{ reference: 'AuditEvent/ae-read' }] });
  const [document] = noticesOf(record(LAB, 'transaction', ['DocumentReference/d1'], ['p1']));
  t.match(notificationOf(document as Notice, { organization: 'Laboratoire Bio+' }, 'n2').payload?.[0]?.contentString, /^A health software \(Laboratoire Bio\+\) added a document to your record/);
});

t.test('the patient\'s choices: defaults, per kind, emergencies cannot be turned off', async (t) => {
  const patient = (choices: [string, string][]): Patient => ({ resourceType: 'Patient', id: 'p1', extension: [{ url: PREFERENCES_URL, extension: choices.map(([url, valueCode]) => ({ url, valueCode })) }] });
  t.same(preferencesOf(undefined), DEFAULT_PREFERENCES);
  t.same(preferencesOf(patient([['read', 'inbox'], ['document', 'none']])), { ...DEFAULT_PREFERENCES, read: 'inbox', document: 'none' });
  t.same(preferenceIssues(patient([['read', 'none'], ['emergency', 'push']])), [], 'a valid choice');
  t.match(preferenceIssues(patient([['emergency', 'none']])), [{ expression: 'Patient.extension[0].extension[0]', diagnostics: /cannot be turned off/ }]);
  t.match(preferenceIssues(patient([['reads', 'none']])), [{ diagnostics: /unknown notification kind/ }]);
  t.match(preferenceIssues(patient([['read', 'sms']])), [{ diagnostics: /one of none, inbox, push/ }]);
  const notice: Notice = { patientId: 'p1', kind: 'read', emergency: false, agent: 'Practitioner/x', at: '2026-12-07T10:00:00.000Z', record: 'AuditEvent/a' };
  const quiet = preferencesOf(patient([['read', 'none']]));
  t.equal(deliveryOf(notice, quiet), 'none');
  t.equal(deliveryOf({ ...notice, emergency: true }, quiet), 'push', 'an emergency access is pushed whatever the choice');
});
