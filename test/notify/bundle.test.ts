// notify/bundle: notification Bundles as the R4 backport profiles shape them: the SubscriptionStatus
// Parameters first, then entries per payload content; the $status and $events answers.
import t from 'tap';
import type { Bundle, DocumentReference, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { eventsBundle, handshakeBundle, heartbeatBundle, notificationBundle, statusOf, statusSearchset, SUBSCRIPTION_STATUS_PROFILE, type StatusInput } from '../../src/notify/bundle.js';

const BASE = 'https://carnet.test/fhir';
const TOPIC = 'https://carnet.example.org/fhir/SubscriptionTopic/document';
const doc: DocumentReference = { resourceType: 'DocumentReference', id: 'd1', status: 'current', content: [{ attachment: { url: 'Binary/b1' } }] };

const event: StatusInput = {
  subscriptionId: 's1',
  topic: TOPIC,
  status: 'active',
  type: 'event-notification',
  eventsSinceSubscriptionStart: 7,
  events: [
    { eventNumber: 6, timestamp: '2026-01-02T10:00:00Z', focus: 'DocumentReference/d1', interaction: 'create', additionalContext: ['Patient/p1'] },
    { eventNumber: 7, timestamp: '2026-01-02T10:00:01Z', focus: 'DocumentReference/d2', interaction: 'update', additionalContext: ['Patient/p1'] },
  ],
};

function param(p: Parameters, name: string): ParametersParameter[] {
  return (p.parameter ?? []).filter((x) => x.name === name);
}

t.test('an event notification, id-only: a history Bundle, the status first, then fullUrl and request per resource', async (t) => {
  const bundle = notificationBundle(event, { baseUrl: BASE, content: 'id-only', timestamp: '2026-01-02T10:00:02Z' });
  t.equal(bundle.type, 'history');
  t.equal(bundle.timestamp, '2026-01-02T10:00:02Z');
  const status = statusOf(bundle)!;
  t.same(status.meta?.profile, [SUBSCRIPTION_STATUS_PROFILE]);
  t.same(bundle.entry![0].request, { method: 'GET', url: `${BASE}/Subscription/s1/$status` });
  t.equal(bundle.entry![0].fullUrl, `urn:uuid:${status.id}`);
  t.same(param(status, 'subscription')[0].valueReference, { reference: `${BASE}/Subscription/s1` });
  t.equal(param(status, 'topic')[0].valueCanonical, TOPIC);
  t.equal(param(status, 'status')[0].valueCode, 'active');
  t.equal(param(status, 'type')[0].valueCode, 'event-notification');
  t.equal(param(status, 'events-since-subscription-start')[0].valueString, '7');
  const [first] = param(status, 'notification-event');
  t.same(first.part, [
    { name: 'event-number', valueString: '6' },
    { name: 'timestamp', valueInstant: '2026-01-02T10:00:00Z' },
    { name: 'focus', valueReference: { reference: `${BASE}/DocumentReference/d1` } },
    { name: 'additional-context', valueReference: { reference: `${BASE}/Patient/p1` } },
  ]);
  t.same(
    bundle.entry!.slice(1),
    [
      { fullUrl: `${BASE}/DocumentReference/d1`, request: { method: 'POST', url: 'DocumentReference' } },
      { fullUrl: `${BASE}/Patient/p1`, request: { method: 'GET', url: 'Patient/p1' } },
      { fullUrl: `${BASE}/DocumentReference/d2`, request: { method: 'PUT', url: 'DocumentReference/d2' } },
    ],
    'one entry per distinct resource, no resource element',
  );
});

t.test('empty content: events without focus or context, no topic, no other entry', async (t) => {
  const bundle = notificationBundle(event, { baseUrl: BASE, content: 'empty' });
  t.equal(bundle.entry!.length, 1);
  const status = statusOf(bundle)!;
  t.same(param(status, 'topic'), []);
  for (const e of param(status, 'notification-event')) t.same(e.part!.map((p) => p.name), ['event-number', 'timestamp']);
});

t.test('full-resource content: the resources given; one not given keeps fullUrl and request', async (t) => {
  const bundle = notificationBundle(event, { baseUrl: BASE, content: 'full-resource', resources: new Map([['DocumentReference/d1', doc]]) });
  t.same(bundle.entry![1].resource, doc);
  t.equal(bundle.entry![2].resource, undefined);
  t.same(bundle.entry![2].request, { method: 'GET', url: 'Patient/p1' });
  const deleted = notificationBundle({ ...event, events: [{ eventNumber: 8, timestamp: '2026-01-02T10:00:03Z', focus: 'DocumentReference/d3', interaction: 'delete' }] }, { baseUrl: BASE, content: 'full-resource' });
  t.same(deleted.entry![1], { fullUrl: `${BASE}/DocumentReference/d3`, request: { method: 'DELETE', url: 'DocumentReference/d3' } });
});

t.test('handshake and heartbeat carry no event; errors are listed', async (t) => {
  const base = { subscriptionId: 's1', topic: TOPIC, status: 'requested' as const, eventsSinceSubscriptionStart: 0 };
  const handshake = handshakeBundle(base, { baseUrl: BASE, content: 'id-only' });
  t.equal(param(statusOf(handshake)!, 'type')[0].valueCode, 'handshake');
  t.same(param(statusOf(handshake)!, 'notification-event'), []);
  t.equal(handshake.entry!.length, 1);
  const error = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/subscription-error', code: 'no-response' }] };
  const heartbeat = heartbeatBundle({ ...base, status: 'error', errors: [error] }, { baseUrl: BASE, content: 'id-only' });
  t.equal(param(statusOf(heartbeat)!, 'type')[0].valueCode, 'heartbeat');
  t.same(param(statusOf(heartbeat)!, 'error')[0].valueCodeableConcept, error);
});

t.test('$status: a searchset of query-status statuses; $events: a query-event notification', async (t) => {
  const answer: Bundle = statusSearchset(BASE, [
    { subscriptionId: 's1', topic: TOPIC, status: 'active', eventsSinceSubscriptionStart: 7 },
    { subscriptionId: 's2', topic: TOPIC, status: 'error', eventsSinceSubscriptionStart: 2 },
  ]);
  t.equal(answer.type, 'searchset');
  t.equal(answer.total, 2);
  t.same(answer.entry!.map((e) => e.search), [{ mode: 'match' }, { mode: 'match' }]);
  t.same(answer.entry!.map((e) => param(e.resource as Parameters, 'type')[0].valueCode), ['query-status', 'query-status']);
  t.same(answer.entry!.map((e) => param(e.resource as Parameters, 'status')[0].valueCode), ['active', 'error']);
  const events = eventsBundle({ ...event }, { baseUrl: BASE, content: 'id-only' });
  t.equal(events.type, 'history');
  t.equal(param(statusOf(events)!, 'type')[0].valueCode, 'query-event');
  t.equal(param(statusOf(events)!, 'notification-event').length, 2);
});
