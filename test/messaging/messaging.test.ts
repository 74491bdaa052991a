// Secure messaging through the real server on the production store (docs/messaging.md): a GP opens
// a conversation, the patient reads their inbox and replies in the thread, read receipts, an
// attachment only the participants read, the patient's notification and a subscription on the
// communication topic; and every refusal: the cold message (403 with its reason), a professional
// outside the conversation (hidden), a blocked professional (hidden, writes refused), the patient
// editing someone else's message, any change but `received`.
import t from 'tap';
import type { Binary, Bundle, Communication, OperationOutcome, Parameters, Resource, Subscription } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { seed } from '../seed.js';
import { block, permit } from '../policy/fixture.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
const as = authorizationFor(server);
const drain = () => app.notifier.drain();

const GP: TestActor = { kind: 'practitioner', practitioner: 'dr-gp', profession: '10', organization: 'org-cab' };
const OTHER: TestActor = { kind: 'practitioner', practitioner: 'dr-other', profession: '10' };
const P1: TestActor = { kind: 'patient', patient: 'p1' };
const P2: TestActor = { kind: 'patient', patient: 'p2' };
const MUM: TestActor = { kind: 'representative', relatedPerson: 'mum', patients: ['p1'] };

await seed(server.store, [
  { resourceType: 'Practitioner', id: 'dr-gp', name: [{ prefix: ['Dr'], given: ['Marie'], family: 'Martin' }] },
  { resourceType: 'Practitioner', id: 'dr-other', name: [{ family: 'Autre' }] },
  { resourceType: 'Organization', id: 'org-cab', name: 'Cabinet du Parc' },
  { resourceType: 'Patient', id: 'p1', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }], name: [{ family: 'Durand' }] },
  { resourceType: 'Patient', id: 'p2', name: [{ family: 'Petit' }] },
  // dr-other has a care relationship with p1 too: only taking part in a conversation opens it.
  permit('c-other', 'p1', 'dr-other'),
] as Resource[]);
await drain();

const send = async (actor: TestActor, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown, headers: Record<string, string> = {}) => fhir(app, method, url, body, { ...(await as(actor)), ...headers });
const entries = (res: { body: string }) => (json<Bundle>(res).entry ?? []).map((e) => e.resource as Communication);
const diagnostics = (res: { body: string }) => (json<OperationOutcome>(res).issue ?? []).map((i) => i.diagnostics).join(' ');

const opening = {
  resourceType: 'Communication',
  status: 'completed',
  topic: { text: 'Your blood test of 2 December' },
  subject: { reference: 'Patient/p1' },
  sender: { reference: 'Practitioner/dr-gp' },
  recipient: [{ reference: 'Patient/p1' }],
  sent: '2026-12-07T09:00:00Z',
  payload: [{ contentString: 'Your results are normal; see you in three months.' }],
};
let first = '';
let answer = '';

t.test('a GP opens a conversation; the patient finds it in their inbox', async (t) => {
  const res = await send(GP, 'POST', 'Communication', opening);
  t.equal(res.statusCode, 201, res.body);
  first = json(res).id as string;
  const inbox = await send(P1, 'GET', 'Communication?recipient=Patient/p1&_sort=-sent');
  t.equal(inbox.statusCode, 200);
  t.same(entries(inbox).map((c) => c.id), [first], 'the inbox holds the message');
  t.equal((await send(MUM, 'GET', `Communication/${first}`)).statusCode, 200, 'their representative reads it');
  t.equal((await send(P2, 'GET', `Communication/${first}`)).statusCode, 404, 'another patient does not');
  t.equal((await send(GP, 'GET', `Communication/${first}`)).statusCode, 200, 'nor the GP');
});

t.test('the patient cannot cold-message a professional: 403 with the reason', async (t) => {
  const cold = { ...opening, sender: { reference: 'Patient/p1' }, recipient: [{ reference: 'Practitioner/dr-gp' }], topic: { text: 'A question' } };
  const res = await send(P1, 'POST', 'Communication', cold);
  t.equal(res.statusCode, 403);
  t.match(diagnostics(res), /cannot start a conversation/);
  t.equal(json<OperationOutcome>(res).resourceType, 'OperationOutcome');
  t.equal((await send(MUM, 'POST', 'Communication', { ...cold, sender: { reference: 'RelatedPerson/mum' } }, {})).statusCode, 403, 'nor their representative');
  const inbox = await send(GP, 'GET', 'Communication?recipient=Practitioner/dr-gp');
  t.same(entries(inbox), [], 'nothing was stored');
});

t.test('the patient replies in the thread; the thread lists both messages', async (t) => {
  const reply = {
    resourceType: 'Communication',
    status: 'completed',
    partOf: [{ reference: `Communication/${first}` }],
    inResponseTo: [{ reference: `Communication/${first}` }],
    subject: { reference: 'Patient/p1' },
    sender: { reference: 'Patient/p1' },
    recipient: [{ reference: 'Practitioner/dr-gp' }],
    sent: '2026-12-07T10:00:00Z',
    payload: [{ contentString: 'Thank you, doctor.' }],
  };
  const res = await send(P1, 'POST', 'Communication', reply);
  t.equal(res.statusCode, 201, res.body);
  answer = json(res).id as string;
  const thread = await send(GP, 'GET', `Communication?part-of=Communication/${first}`);
  t.same(entries(thread).map((c) => c.id), [answer], 'the GP reads the replies of the thread');
  const whole = await send(P1, 'GET', `Communication?_id=${first}&_revinclude=Communication:part-of`);
  t.same(new Set((json<Bundle>(whole).entry ?? []).map((e) => e.resource?.id)), new Set([first, answer]), 'the thread at once: its first message and its replies');
  const gpInbox = await send(GP, 'GET', 'Communication?recipient=Practitioner/dr-gp&_sort=-sent');
  t.same(entries(gpInbox).map((c) => c.id), [answer], 'the reply is in the GP\'s inbox');
  // A reply outside the conversation, or into another's, is refused and says nothing of it.
  t.equal((await send(P1, 'POST', 'Communication', { ...reply, recipient: [{ reference: 'Practitioner/dr-other' }] })).statusCode, 403, 'a reply goes to the conversation\'s participants');
  const foreign = await send(P2, 'POST', 'Communication', { ...reply, subject: { reference: 'Patient/p2' }, sender: { reference: 'Patient/p2' } });
  const missing = await send(P2, 'POST', 'Communication', { ...reply, partOf: [{ reference: 'Communication/no-such' }], subject: { reference: 'Patient/p2' }, sender: { reference: 'Patient/p2' } });
  t.equal(foreign.statusCode, 422);
  t.equal(foreign.body.replace(first, 'X'), missing.body.replace('no-such', 'X'), 'another\'s conversation answers exactly as a missing one');
});

t.test('read receipts: the recipient sets received, once; nothing else changes', async (t) => {
  const patch = (actor: TestActor, id: string, ops: unknown[]) => send(actor, 'PATCH', `Communication/${id}`, ops, { 'content-type': 'application/json-patch+json' });
  t.equal((await patch(GP, first, [{ op: 'add', path: '/received', value: '2026-12-07T09:10:00Z' }])).statusCode, 403, 'a sender is no recipient');
  const receipt = await patch(P1, first, [{ op: 'add', path: '/received', value: '2026-12-07T09:30:00Z' }]);
  t.equal(receipt.statusCode, 200, receipt.body);
  t.equal(json<Communication>(await send(GP, 'GET', `Communication/${first}`)).received, '2026-12-07T09:30:00Z', 'the GP sees it was read');
  t.equal((await patch(P1, first, [{ op: 'replace', path: '/received', value: '2026-12-08T09:30:00Z' }])).statusCode, 403, 'set once');
  t.equal((await patch(GP, answer, [{ op: 'add', path: '/received', value: '2026-12-07T11:00:00Z' }])).statusCode, 200, 'the GP acknowledges the reply');

  const edited = await patch(P1, first, [{ op: 'replace', path: '/payload/0/contentString', value: 'Your results are alarming.' }]);
  t.equal(edited.statusCode, 403, 'the patient edits no one\'s message');
  t.match(diagnostics(edited), /does not change once sent.*payload/);
  const current = json<Communication>(await send(P1, 'GET', `Communication/${first}`));
  t.equal((await send(P1, 'PUT', `Communication/${first}`, { ...current, status: 'stopped' })).statusCode, 403, 'nor changes anything but received');
  t.equal((await send(P1, 'PUT', `Communication/${answer}`, { ...json<Communication>(await send(P1, 'GET', `Communication/${answer}`)), payload: [{ contentString: 'edited' }] })).statusCode, 403, 'not even their own, once sent');
  t.equal((await send(P1, 'DELETE', `Communication/${answer}`)).statusCode, 403, 'nobody deletes a message');
  t.equal(json<Communication>(await send(P1, 'GET', `Communication/${first}`)).payload?.[0]?.contentString, opening.payload[0].contentString, 'the message is as sent');
});

t.test('a professional outside the conversation sees none of it', async (t) => {
  t.equal((await send(OTHER, 'GET', `Communication/${first}`)).statusCode, 404, 'read: hidden');
  t.equal((await send(OTHER, 'GET', `Communication/${answer}`)).statusCode, 404);
  const search = await send(OTHER, 'GET', 'Communication?patient=p1&_summary=count');
  t.equal(json<Bundle>(search).total, 0, 'search: not even counted');
  t.same(entries(await send(OTHER, 'GET', `Communication?part-of=Communication/${first}`)), []);
  t.equal((await send(OTHER, 'GET', 'Observation?patient=p1')).statusCode, 200, 'though they may read the record');
  const intrude = await send(OTHER, 'POST', 'Communication', { ...opening, partOf: [{ reference: `Communication/${first}` }], sender: { reference: 'Practitioner/dr-other' } });
  t.equal(intrude.statusCode, 422, 'nor writes into it');
});

t.test('an attachment: bytes only the participants read', async (t) => {
  const transaction = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:6a3c3f3e-0d5c-4a44-9d6e-1b0d4b1c2a01',
        resource: { resourceType: 'Binary', contentType: 'text/plain', securityContext: { reference: 'urn:uuid:6a3c3f3e-0d5c-4a44-9d6e-1b0d4b1c2a02' }, data: Buffer.from('prescription: rest').toString('base64') },
        request: { method: 'POST', url: 'Binary' },
      },
      {
        fullUrl: 'urn:uuid:6a3c3f3e-0d5c-4a44-9d6e-1b0d4b1c2a02',
        resource: { ...opening, topic: { text: 'Your prescription' }, payload: [{ contentAttachment: { contentType: 'text/plain', url: 'urn:uuid:6a3c3f3e-0d5c-4a44-9d6e-1b0d4b1c2a01', title: 'prescription.txt' } }] },
        request: { method: 'POST', url: 'Communication' },
      },
    ],
  };
  const res = await send(GP, 'POST', '', transaction);
  t.equal(res.statusCode, 200, res.body);
  const locations = (json<Bundle>(res).entry ?? []).map((e) => /(Binary|Communication)\/[^/]+/.exec(e.response?.location ?? '')?.[0] ?? '');
  const binary = locations.find((l) => l.startsWith('Binary/'))?.split('/_history')[0] as string;
  const message = locations.find((l) => l.startsWith('Communication/'))?.split('/_history')[0] as string;
  t.ok(binary && message, 'both created');
  const stored = json<Communication>(await send(P1, 'GET', message));
  t.equal(stored.payload?.[0]?.contentAttachment?.url, binary, 'the message refers to its bytes');
  t.equal(json<Binary>(await send(GP, 'GET', binary, undefined, { accept: 'application/fhir+json' })).securityContext?.reference, message, 'bound to the message');
  const bytes = await send(P1, 'GET', binary, undefined, { accept: 'text/plain' });
  t.equal(bytes.statusCode, 200);
  t.equal(bytes.body, 'prescription: rest', 'the patient reads the bytes');
  t.equal((await send(OTHER, 'GET', binary, undefined, { accept: 'text/plain' })).statusCode, 404, 'a professional outside the conversation does not');
  t.equal((await send(P2, 'GET', binary, undefined, { accept: 'text/plain' })).statusCode, 404, 'nor another patient');
});

t.test('the patient is notified of the GP\'s message; a subscription on the communication topic gets each message', async (t) => {
  await drain();
  const notices = entries(await send(P1, 'GET', 'Communication?recipient=Patient/p1&category=notification&_sort=-sent'));
  t.ok(
    notices.some((n) => n.sender?.reference === 'Practitioner/dr-gp' && n.reasonCode?.[0]?.coding?.[0]?.code === 'write'),
    'a notification: the GP wrote into the record',
  );
  const messages = entries(await send(P1, 'GET', 'Communication?recipient=Patient/p1&category:not=http://terminology.hl7.org/CodeSystem/communication-category|notification&_sort=-sent'));
  t.ok(messages.length >= 2 && messages.every((m) => m.category === undefined), 'the messages alone, without the notifications');
  t.same(entries(await send(GP, 'GET', 'Communication?category=notification')), [], 'the GP sees no notification');

  const IG = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
  const subscription = {
    resourceType: 'Subscription',
    meta: { profile: [`${IG}backport-subscription`] },
    status: 'requested',
    reason: 'my messages',
    criteria: 'https://carnet.example.org/fhir/SubscriptionTopic/communication',
    _criteria: { extension: [{ url: `${IG}backport-filter-criteria`, valueString: 'Communication?recipient=Patient/p1' }] },
    channel: { type: 'websocket', payload: 'application/fhir+json', _payload: { extension: [{ url: `${IG}backport-payload-content`, valueCode: 'id-only' }] } } as Subscription['channel'],
  } as Subscription;
  const created = await send(P1, 'POST', 'Subscription', subscription);
  t.equal(created.statusCode, 201, created.body);
  const id = json(created).id as string;
  // The representative's subscription: they take part for the patient.
  const mum = await fhir(app, 'POST', 'Subscription', subscription, await as(MUM, 'patient/*.cruds'));
  t.equal(mum.statusCode, 201, mum.body);
  const res = await send(GP, 'POST', 'Communication', { ...opening, topic: { text: 'Your appointment' } });
  t.equal(res.statusCode, 201);
  await drain();
  for (const [owner, headers, subscriptionId] of [['the patient', await as(P1), id], ['their representative', await as(MUM, 'patient/*.cruds'), json(mum).id as string]] as const) {
    const events = json<Bundle>(await fhir(app, 'GET', `Subscription/${subscriptionId}/$events?eventsSinceNumber=1`, undefined, headers));
    const status = events.entry?.[0]?.resource as Parameters;
    t.equal(status.parameter?.filter((p) => p.name === 'notification-event').length, 1, `${owner}: one event`);
    t.ok(events.entry?.some((e) => e.fullUrl?.endsWith(`Communication/${json(res).id}`)), `${owner}: its focus, the new message`);
  }
});

t.test('after the patient blocks the GP, the GP can no longer read or write', async (t) => {
  const { id: _id, ...blocking } = block('x', 'p1', 'Practitioner/dr-gp');
  t.equal((await send(P1, 'POST', 'Consent', blocking)).statusCode, 201);
  t.equal((await send(GP, 'GET', `Communication/${first}`)).statusCode, 404, 'read: hidden');
  t.equal(json<Bundle>(await send(GP, 'GET', 'Communication?_summary=count')).total, 0, 'search: nothing');
  const reply = { ...opening, partOf: [{ reference: `Communication/${first}` }] };
  t.equal((await send(GP, 'POST', 'Communication', reply)).statusCode, 404, 'a reply: refused as if the patient did not exist');
  t.equal((await send(GP, 'POST', 'Communication', opening)).statusCode, 404, 'a new conversation: the same');
  const patch = await send(GP, 'PATCH', `Communication/${answer}`, [{ op: 'replace', path: '/received', value: '2026-12-09T00:00:00Z' }], { 'content-type': 'application/json-patch+json' });
  t.equal(patch.statusCode, 404, 'a change: the same');
  t.equal((await send(P1, 'GET', `Communication/${first}`)).statusCode, 200, 'the patient still reads the conversation');
});
