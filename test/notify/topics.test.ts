// notify/topics: the four topics load from profiles/subscription-topics, each change is put to
// their triggers (resource type, interaction, R5 queryCriteria), and subscription filters hold
// on the resource's index entries.
import t from 'tap';
import type { Appointment, Communication, DocumentReference } from '@medplum/fhirtypes';
import { capabilityExtensions, filterMatches, loadTopics, matches, parseCriteria, parseFilterCriteria, TOPIC_BASE, TOPIC_CANONICAL_EXTENSION, topicFrom } from '../../src/notify/topics.js';

const topics = loadTopics();
const topic = (id: string) => topics.get(`${TOPIC_BASE}${id}`)!;

const NOTIFICATION = { system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'notification' };

function communication(extra: Partial<Communication> = {}): Communication {
  return { resourceType: 'Communication', id: 'c1', status: 'completed', subject: { reference: 'Patient/p1' }, recipient: [{ reference: 'Practitioner/d1' }], sender: { reference: 'Patient/p1' }, ...extra };
}
function document(status: DocumentReference['status'], patient = 'p1'): DocumentReference {
  return { resourceType: 'DocumentReference', id: 'd1', status, subject: { reference: `Patient/${patient}` }, content: [{ attachment: { url: 'Binary/b1' } }], type: { coding: [{ system: 'http://loinc.org', code: '11502-2' }] } };
}
const appointment: Appointment = { resourceType: 'Appointment', id: 'a1', status: 'booked', participant: [{ actor: { reference: 'Patient/p1' }, status: 'accepted' }, { actor: { reference: 'Practitioner/d1' }, status: 'accepted' }] };

t.test('the four topics load, with their canonical URLs, triggers and filters', async (t) => {
  t.same(topics.all().map((x) => x.url).sort(), ['appointment', 'communication', 'document', 'record-access'].map((id) => `${TOPIC_BASE}${id}`));
  t.same(topic('document').filters.map((f) => f.parameter), ['patient', 'type', 'category']);
  t.same(topic('appointment').triggers[0].interactions, ['create', 'update', 'delete']);
  t.equal(topics.get(`${TOPIC_BASE}document|1.0.0`)?.id, 'document', 'a |version suffix is ignored');
  t.equal(topics.get('http://example.org/other'), undefined);
  t.same(capabilityExtensions(topics)[0], { url: TOPIC_CANONICAL_EXTENSION, valueCanonical: topics.all()[0].url });
});

t.test('record-access: a patient notification Communication is created; communication: any other Communication', async (t) => {
  const notification = communication({ category: [{ coding: [NOTIFICATION] }], recipient: [{ reference: 'Patient/p1' }] });
  t.ok(matches(topic('record-access'), { after: notification, interaction: 'create' }));
  t.notOk(matches(topic('communication'), { after: notification, interaction: 'create' }), 'a notification is not a message');
  t.ok(matches(topic('communication'), { after: communication(), interaction: 'create' }));
  t.notOk(matches(topic('record-access'), { after: communication(), interaction: 'create' }));
  t.notOk(matches(topic('communication'), { before: communication(), after: communication(), interaction: 'update' }), 'only creates');
  t.notOk(matches(topic('record-access'), { after: document('current'), interaction: 'create' }), 'another resource type');
});

t.test('document: a current DocumentReference created, or an update that supersedes a current one', async (t) => {
  const doc = topic('document');
  t.ok(matches(doc, { after: document('current'), interaction: 'create' }));
  t.notOk(matches(doc, { after: document('entered-in-error'), interaction: 'create' }));
  t.ok(matches(doc, { before: document('current'), after: document('superseded'), interaction: 'update' }));
  t.notOk(matches(doc, { before: document('current'), after: document('current'), interaction: 'update' }), 'an update that does not supersede');
  t.notOk(matches(doc, { before: document('superseded'), after: document('superseded'), interaction: 'update' }), 'already superseded');
  t.notOk(matches(doc, { before: document('current'), interaction: 'delete' }));
});

t.test('appointment: booked, changed, cancelled or deleted', async (t) => {
  const apt = topic('appointment');
  t.ok(matches(apt, { after: appointment, interaction: 'create' }));
  t.ok(matches(apt, { before: appointment, after: { ...appointment, status: 'cancelled' }, interaction: 'update' }));
  t.ok(matches(apt, { before: appointment, interaction: 'delete' }));
  t.notOk(matches(apt, { interaction: 'delete' }), 'no resource, no match');
});

t.test('filters: references (Type/id, id, absolute URL), tokens (system|code, code, :not), AND across filters, other types ignored', async (t) => {
  const doc = document('current');
  const f = (...texts: string[]) => texts.map(parseFilterCriteria);
  t.ok(filterMatches(f('DocumentReference?patient=Patient/p1'), doc));
  t.ok(filterMatches(f('DocumentReference?patient=p1'), doc));
  t.ok(filterMatches(f('DocumentReference?patient=https://carnet.example.org/fhir/Patient/p1'), doc));
  t.notOk(filterMatches(f('DocumentReference?patient=Patient/p2'), doc));
  t.ok(filterMatches(f('DocumentReference?patient=Patient/p2,Patient/p1'), doc), 'a comma list is OR');
  t.ok(filterMatches(f('DocumentReference?type=http://loinc.org|11502-2'), doc));
  t.ok(filterMatches(f('DocumentReference?type=11502-2'), doc));
  t.notOk(filterMatches(f('DocumentReference?type=http://snomed.info/sct|11502-2'), doc));
  t.notOk(filterMatches(f('DocumentReference?patient=Patient/p1', 'DocumentReference?type=34133-9'), doc), 'filters are ANDed');
  t.notOk(filterMatches(f('DocumentReference?patient=Patient/p1&type=34133-9'), doc), 'so are the pairs of one filter');
  t.ok(filterMatches(f('Appointment?patient=Patient/p9'), doc), 'a filter on another type does not apply');
  t.ok(filterMatches(f('Appointment?actor=Practitioner/d1'), appointment));
  t.ok(filterMatches([], doc), 'no filter: everything');
  t.ok(filterMatches(f('Communication?category:not=notification'), communication()));
});

t.test('criteria refuse what they cannot evaluate, saying why', async (t) => {
  t.throws(() => parseFilterCriteria('patient=Patient/1'), /ResourceType\?param=value/);
  t.throws(() => parseCriteria('DocumentReference', 'nonsense=1'), /no search parameter "nonsense"/);
  t.throws(() => parseCriteria('DocumentReference', 'description=x'), /string parameter/);
  t.throws(() => parseCriteria('DocumentReference', 'patient:not=Patient/1'), /modifier/);
  t.throws(() => parseCriteria('DocumentReference', 'patient='), /no value/);
  t.throws(() => topicFrom({ resourceType: 'SubscriptionTopic', id: 'x', url: 'u', resourceTrigger: [{ resource: 'Patient', supportedInteraction: ['read'] }] }), /not create, update or delete/);
  t.throws(() => topicFrom({ resourceType: 'SubscriptionTopic', id: 'x', url: 'u', resourceTrigger: [{ resource: 'Patient' }], canFilterBy: [{ resource: 'Patient', filterParameter: 'nope' }] }), /canFilterBy\[0\]/);
});
