// The messaging rules (src/policy/messaging.ts through decideWrite, and decide.ts's read rule) on
// plain values: who opens a conversation, who replies in it, the read receipt, what never changes,
// and what a professional reads (docs/messaging.md).
import t from 'tap';
import type { Communication, Resource } from '@medplum/fhirtypes';
import type { Actor } from '../../src/auth/actor.js';
import { parseScopes } from '../../src/auth/scopes.js';
import { stateOf } from '../../src/policy/consents.js';
import { decide, NOTIFICATION_CREATOR, takesPart } from '../../src/policy/decide.js';
import { messageIssues, threadOf } from '../../src/policy/messaging.js';
import { decideWrite, type WriteInput } from '../../src/policy/write.js';
import { block } from './fixture.js';

const common = { grants: parseScopes('user/*.cruds'), issuer: 'test', subject: 's' };
const pa: Actor = { kind: 'patient', patientId: 'pa', ...common };
const pb: Actor = { kind: 'patient', patientId: 'pb', ...common };
const rep: Actor = { kind: 'representative', relatedPersonId: 'rp', patientIds: ['pa'], ...common };
const doctor = (id: string): Actor => ({ kind: 'practitioner', practitionerId: id, profession: '10', purposeOfUse: 'TREAT', organizationId: 'org-1', ...common });
const gp = doctor('gp');
const other = doctor('other');
const vendor: Actor = { kind: 'system', clientId: 'his', grants: parseScopes('system/*.cruds'), issuer: 'test', subject: 'his' };

const NOW = Date.parse('2026-06-01T12:00:00Z');
const patient = { resourceType: 'Patient' as const, id: 'pa', active: true, generalPractitioner: [{ reference: 'Practitioner/gp' }] };
const state = (consents = [block('b0', 'pa', 'Practitioner/nobody')]) => stateOf('pa', patient as never, consents);

const opening: Communication = {
  resourceType: 'Communication',
  id: 'm1',
  status: 'completed',
  topic: { text: 'Your blood test' },
  subject: { reference: 'Patient/pa' },
  sender: { reference: 'Practitioner/gp' },
  recipient: [{ reference: 'Patient/pa' }],
  sent: '2026-06-01T11:00:00Z',
  payload: [{ contentString: 'Your results are normal.' }],
};
const reply: Communication = {
  resourceType: 'Communication',
  status: 'completed',
  partOf: [{ reference: 'Communication/m1' }],
  subject: { reference: 'Patient/pa' },
  sender: { reference: 'Patient/pa' },
  recipient: [{ reference: 'Practitioner/gp' }],
  payload: [{ contentString: 'Thank you.' }],
};
const thread = { resource: opening as Resource, creator: 'practitioner:gp' };

const write = (input: Partial<WriteInput> & Pick<WriteInput, 'actor' | 'action'>) => decideWrite({ now: NOW, state: state(), ...input });
const verdict = (input: Partial<WriteInput> & Pick<WriteInput, 'actor' | 'action'>) => {
  const d = write(input);
  return d.permit ? 'permit' : d.status;
};
const reason = (input: Partial<WriteInput> & Pick<WriteInput, 'actor' | 'action'>) => {
  const d = write(input);
  return d.permit ? '' : d.reason;
};

t.test('a professional with a care relationship opens a conversation with a topic', async (t) => {
  t.equal(verdict({ actor: gp, action: 'create', after: opening }), 'permit');
  t.equal(verdict({ actor: other, action: 'create', after: { ...opening, sender: { reference: 'Practitioner/other' } } }), 404, 'no care relationship: as if the patient did not exist');
  t.equal(verdict({ actor: gp, action: 'create', after: opening, state: state([block('b', 'pa', 'Practitioner/gp')]) }), 404, 'blocked');
  t.equal(verdict({ actor: gp, action: 'create', after: opening, state: state([block('b', 'pa', 'Organization/org-1')]) }), 404, 'their organisation blocked');
  t.equal(verdict({ actor: gp, action: 'create', after: { ...opening, sender: { reference: 'Practitioner/someone-else' } } }), 403, 'in one\'s own name only');
  const { topic: _topic, ...untitled } = opening;
  t.match(write({ actor: gp, action: 'create', after: untitled }), { permit: false, status: 422, issues: [{ expression: 'Communication.topic' }] });
  t.match(write({ actor: gp, action: 'create', after: { ...opening, received: '2026-06-01T11:00:00Z' } }), { status: 422, issues: [{ expression: 'Communication.received' }] }, 'the sender sets no receipt');
  t.match(write({ actor: gp, action: 'create', after: { ...opening, recipient: [{ reference: 'Patient/pb' }] } }), { status: 422, issues: [{ expression: 'Communication.recipient[0]' }] }, 'addressed to another patient');
  t.match(write({ actor: gp, action: 'create', after: { ...opening, subject: { reference: 'Group/g' } } }), { status: 422, issues: [{ expression: 'Communication.subject' }] });
});

t.test('the patient cannot cold-message a professional: 403 with the reason', async (t) => {
  const cold = { ...reply, topic: { text: 'A question' } } as Communication;
  delete cold.partOf;
  t.equal(verdict({ actor: pa, action: 'create', after: cold }), 403);
  t.match(reason({ actor: pa, action: 'create', after: cold }), /cannot start a conversation/);
  t.equal(verdict({ actor: rep, action: 'create', after: { ...cold, sender: { reference: 'RelatedPerson/rp' } } }), 403, 'nor their representative');
});

t.test('the patient side replies inside the conversation, to its participants', async (t) => {
  t.equal(verdict({ actor: pa, action: 'create', after: reply, thread }), 'permit');
  t.equal(verdict({ actor: rep, action: 'create', after: { ...reply, sender: { reference: 'RelatedPerson/rp' } }, thread }), 'permit', 'a representative acts for the patient');
  t.equal(verdict({ actor: pa, action: 'create', after: { ...reply, sender: { reference: 'Practitioner/gp' } }, thread }), 403, 'not in another\'s name');
  t.equal(verdict({ actor: pa, action: 'create', after: { ...reply, recipient: [{ reference: 'Practitioner/other' }] }, thread }), 403, 'not to someone outside the conversation');
  t.match(write({ actor: pa, action: 'create', after: reply }), { status: 422, issues: [{ expression: 'Communication.partOf' }] }, 'a conversation that does not exist (or is hidden)');
  t.equal(verdict({ actor: pb, action: 'create', after: { ...reply, subject: { reference: 'Patient/pb' }, sender: { reference: 'Patient/pb' } }, thread }), 422, 'another patient\'s conversation answers as a missing one');
  const notOpened = { resource: { ...opening, sender: { reference: 'Patient/pa' }, recipient: [{ reference: 'Practitioner/gp' }] } as Resource, creator: 'client:his' };
  t.equal(verdict({ actor: pa, action: 'create', after: reply, thread: notOpened }), 403, 'a conversation no professional opened');
  t.equal(verdict({ actor: pa, action: 'create', after: reply, thread: { resource: { ...reply, id: 'm2' } as Resource, creator: 'patient:pa' } }), 403, 'partOf names the first message');
  t.equal(verdict({ actor: pa, action: 'create', after: reply, thread, state: stateOf('pa', { ...patient, active: false } as never, []) }), 403, 'a closed account takes nothing');
});

t.test('a professional replies in a conversation they take part in, unless blocked', async (t) => {
  const answer = { ...reply, sender: { reference: 'Practitioner/gp' }, recipient: [{ reference: 'Patient/pa' }] };
  t.equal(verdict({ actor: gp, action: 'create', after: answer, thread }), 'permit');
  t.equal(verdict({ actor: gp, action: 'create', after: answer, thread, state: state([block('b', 'pa', 'Practitioner/gp')]) }), 404, 'blocked: nothing more');
  const outsider = { ...answer, sender: { reference: 'Practitioner/other' } };
  t.equal(verdict({ actor: other, action: 'create', after: outsider, thread, state: stateOf('pa', { ...patient, generalPractitioner: [{ reference: 'Practitioner/other' }] } as never, []) }), 422, 'a conversation they are not in answers as a missing one');
});

t.test('the read receipt: a recipient sets received, once; nothing else changes', async (t) => {
  const sent = { resource: opening as Resource, creator: 'practitioner:gp' };
  const read = { ...opening, received: '2026-06-01T12:00:00Z' };
  t.equal(verdict({ actor: pa, action: 'update', before: sent, after: read }), 'permit');
  t.equal(verdict({ actor: rep, action: 'update', before: sent, after: read }), 'permit', 'a representative for the patient');
  t.equal(verdict({ actor: gp, action: 'update', before: sent, after: read }), 403, 'the sender is no recipient');
  t.equal(verdict({ actor: pa, action: 'update', before: { resource: read, creator: 'practitioner:gp' }, after: { ...read, received: '2026-06-02T12:00:00Z' } }), 403, 'set once');
  t.match(reason({ actor: pa, action: 'update', before: sent, after: { ...read, payload: [{ contentString: 'changed' }] } }), /does not change once sent.*payload/);
  t.equal(verdict({ actor: pa, action: 'update', before: sent, after: { ...opening, payload: [{ contentString: 'changed' }] } }), 403, 'the patient edits no one\'s message');
  t.equal(verdict({ actor: gp, action: 'update', before: sent, after: { ...opening, payload: [{ contentString: 'changed' }] } }), 403, 'nor does its sender');
  t.equal(verdict({ actor: gp, action: 'update', before: sent, after: { ...opening, status: 'entered-in-error' } }), 'permit', 'its sender retracts it');
  t.equal(verdict({ actor: pa, action: 'update', before: sent, after: { ...opening, status: 'entered-in-error' } }), 403, 'nobody else does');
  t.equal(verdict({ actor: gp, action: 'delete', before: sent }), 403, 'nobody deletes a message');
  t.equal(verdict({ actor: gp, action: 'update', before: sent, after: read, state: state([block('b', 'pa', 'Practitioner/gp')]) }), 404, 'blocked');
  const fromPatient = { resource: { ...reply, id: 'm3' } as Resource, creator: 'patient:pa' };
  t.equal(verdict({ actor: gp, action: 'update', before: fromPatient, after: { ...reply, id: 'm3', received: '2026-06-01T13:00:00Z' } }), 'permit', 'the professional acknowledges the patient\'s reply');
});

t.test('the server\'s notifications stay the server\'s', async (t) => {
  const notification = { ...opening, category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'notification' }] }] };
  for (const actor of [gp, pa, vendor]) t.equal(verdict({ actor, action: 'create', after: notification }), 403, `${actor.kind} writes no notification`);
  t.equal(verdict({ actor: pa, action: 'update', before: { resource: notification, creator: NOTIFICATION_CREATOR }, after: { ...notification, received: '2026-06-01T12:00:00Z' } }), 403);
  t.equal(verdict({ actor: vendor, action: 'create', after: { ...opening, sender: { reference: 'Device/d' } } }), 'permit', 'a vendor system pushes messages as other record content');
});

t.test('a professional reads the messages they send or receive, never once blocked', async (t) => {
  const read = (actor: Actor, resource: Resource, consents = state(), creator = 'practitioner:gp') =>
    decide({ actor, action: 'read', resource, state: consents, creator, now: NOW, mayRead: () => true }).permit;
  t.ok(read(gp, opening), 'the sender');
  t.ok(read(gp, { ...reply, id: 'm2' }, state(), 'patient:pa'), 'a recipient');
  t.notOk(read(other, opening), 'a professional outside the conversation, even the patient\'s GP');
  t.notOk(read(doctor('gp'), opening, state([block('b', 'pa', 'Practitioner/gp')])), 'blocked');
  t.ok(read(pa, opening), 'the patient');
  t.notOk(read(gp, opening, state(), NOTIFICATION_CREATOR), 'a notification is never a professional\'s');
  t.ok(takesPart(rep, opening), 'a representative takes part for the patient');
});

t.test('the shape of a thread', async (t) => {
  t.equal(threadOf(reply), 'm1');
  t.equal(threadOf(opening), undefined);
  t.equal(threadOf({ ...reply, partOf: [{ reference: 'Observation/o' }] }), undefined);
  t.same(messageIssues(opening), []);
  t.match(messageIssues({ ...reply, partOf: [{ reference: 'Communication/a' }, { reference: 'Communication/b' }] }), [{ expression: 'Communication.partOf' }]);
});
