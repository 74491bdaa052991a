// Access notifications and FHIR Subscriptions through the real server (docs/notifications.md): the
// patient's inbox after professionals' accesses (coalesced per window on an injectable clock,
// emergencies at once, the patient's choices), rest-hook deliveries to a real local HTTP receiver
// (handshake, numbered events, retries with backoff, error and resume, consent decided at
// delivery, the endpoint guard), a real websocket client, $status and $events, and two notifiers
// on one store delivering each event once.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import WebSocket from 'ws';
import type { AuditEvent, Bundle, Communication, Parameters, Resource, Subscription } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { seed } from '../seed.js';
import { block, doc, LAB } from '../policy/fixture.js';
import { Notifier, DEFAULT_NOTIFIER } from '../../src/notify/notifier.js';
import { parseAllowList } from '../../src/notify/rest-hook.js';
import { loadTopics } from '../../src/notify/topics.js';
import { Policy } from '../../src/policy/index.js';

const IG = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
const TOPIC = 'https://carnet.example.org/fhir/SubscriptionTopic/';
const HOUR = 3_600_000;

// The clock of the server: access records, windows, retries and leases all read it.
let clock = Date.parse('2026-12-07T09:00:00.000Z');
const now = () => new Date(clock).toISOString();
const advance = (ms: number) => {
  clock += ms;
};

let base = 'http://127.0.0.1:0/fhir';
const server = await testServer({ now, baseUrl: () => base, notifications: { allow: ['127.0.0.1'], retryBaseMs: 1_000, maxAttempts: 3, windowMs: HOUR, timeoutMs: 2_000 } });
await server.app.listen({ port: 0, host: '127.0.0.1' });
base = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}/fhir`;
t.teardown(() => server.close());
const { app } = server;
const as = authorizationFor(server);
const drain = () => app.notifier.drain();

// A receiver that records what it gets; `failing` answers 500 that many times.
const received: { headers: http.IncomingHttpHeaders; bundle: Bundle }[] = [];
let failing = 0;
const receiver = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (failing > 0) {
      failing--;
      res.statusCode = 500;
      res.end();
      return;
    }
    received.push({ headers: req.headers, bundle: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Bundle });
    res.statusCode = 200;
    res.end();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
t.teardown(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

const GP: TestActor = { kind: 'practitioner', practitioner: 'dr-gp', profession: '10', organization: 'org-cab' };
const ER: TestActor = { kind: 'practitioner', practitioner: 'dr-er', profession: '10', purpose: 'ETREAT' };
const STRANGER: TestActor = { kind: 'practitioner', practitioner: 'dr-none', profession: '10' };
const P1: TestActor = { kind: 'patient', patient: 'p1' };
const LAB_SYSTEM: TestActor = { kind: 'system', client: 'lab-sys', organization: 'org-lab' };

await seed(server.store, [
  { resourceType: 'Practitioner', id: 'dr-gp', name: [{ prefix: ['Dr'], given: ['Marie'], family: 'Martin' }] },
  { resourceType: 'Practitioner', id: 'dr-er', name: [{ prefix: ['Dr'], given: ['Paul'], family: 'Urgence' }] },
  { resourceType: 'Organization', id: 'org-cab', name: 'Cabinet du Parc' },
  { resourceType: 'Organization', id: 'org-lab', name: 'Laboratoire Bio+' },
  { resourceType: 'Patient', id: 'p1', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }], name: [{ family: 'Durand' }] },
  { resourceType: 'Patient', id: 'p2', name: [{ family: 'Petit' }] },
  doc('doc-seen', 'p1', LAB, 'Organization/org-lab'),
  doc('doc-secret', 'p1', LAB, 'Organization/org-lab', { meta: { security: [{ system: 'urn:carnet:security', code: 'confidential-from-representatives' }] } }),
] as Resource[]);
// What seeding wrote is no access: start the feed after it.
await drain();

const get = async (actor: TestActor, url: string) => fhir(app, 'GET', url, undefined, await as(actor));
const inbox = async (patient: TestActor = P1) => {
  const res = await get(patient, 'Communication?category=notification&_sort=-sent&_count=100');
  return (json<Bundle>(res).entry ?? []).map((e) => e.resource as Communication);
};
const kinds = (list: Communication[]) => list.map((c) => c.reasonCode?.[0]?.coding?.[0]?.code);

t.test('the patient hears of a professional\'s accesses, once per hour, emergencies at once', async (t) => {
  const before = (await inbox()).length;
  t.equal((await get(GP, 'DocumentReference/doc-seen')).statusCode, 200);
  t.equal((await get(GP, 'DocumentReference?patient=p1&_id=doc-seen')).statusCode, 200);
  advance(10 * 60_000);
  t.equal((await get(GP, 'Patient/p1')).statusCode, 200);
  await drain();
  let list = await inbox();
  t.equal(list.length, before + 1, 'three accesses within the hour: one notification');
  t.match(list[0], { sender: { reference: 'Practitioner/dr-gp' }, about: [{ reference: /^AuditEvent\// }], payload: [{ contentString: /^Dr Marie Martin \(Médecin, Cabinet du Parc\) consulted your record on 2026-12-07 at 09:00 UTC\.$/ }] });
  t.notMatch(JSON.stringify(list[0]), /doc-seen|DocumentReference/, 'no word of what was read');

  t.equal((await get(ER, 'DocumentReference/doc-seen')).statusCode, 200, 'an emergency access');
  t.equal((await get(ER, 'DocumentReference/doc-seen')).statusCode, 200, 'and another, a second later');
  await drain();
  list = await inbox();
  t.same(kinds(list).slice(0, 2), ['emergency', 'emergency'], 'each emergency access is notified at once');
  t.equal(list[0].priority, 'urgent');

  advance(HOUR);
  t.equal((await get(GP, 'DocumentReference/doc-seen')).statusCode, 200);
  await drain();
  t.equal((await inbox()).filter((c) => c.sender?.reference === 'Practitioner/dr-gp').length, 2, 'an hour later: a new notification');

  t.equal((await get(P1, 'DocumentReference/doc-seen')).statusCode, 200, 'the patient reads their own record');
  t.equal((await get(STRANGER, 'DocumentReference/doc-seen')).statusCode, 404, 'a stranger is refused');
  const count = (await inbox()).length;
  await drain();
  t.equal((await inbox()).length, count, 'neither is notified');
});

t.test('a document pushed by a lab is notified; professionals never see the notifications', async (t) => {
  const { id: _omit, ...document } = doc('x', 'p1', LAB, 'Organization/org-lab') as Resource & { id: string };
  t.equal((await fhir(app, 'POST', 'DocumentReference', document, await as(LAB_SYSTEM))).statusCode, 201);
  await drain();
  const latest = (await inbox()).find((c) => kinds([c])[0] === 'document') as Communication;
  t.match(latest, { reasonCode: [{ coding: [{ code: 'document' }] }], payload: [{ contentString: /^A health software \(Laboratoire Bio\+\) added a document to your record/ }] });
  const seen = json<Bundle>(await get(GP, 'Communication?patient=p1'));
  t.equal(seen.total ?? seen.entry?.length ?? 0, 0, 'the GP\'s search finds none of them');
  t.equal((await get(GP, `Communication/${latest.id}`)).statusCode, 404, 'nor reads one');
  t.equal((await fhir(app, 'DELETE', `Communication/${latest.id}`, undefined, await as(P1))).statusCode, 403, 'the patient cannot rewrite the server\'s notification');
});

t.test('an access to what is kept from the representatives is notified to the patient alone', async (t) => {
  const MUM: TestActor = { kind: 'representative', relatedPerson: 'mum', patients: ['p1'] };
  const before = await inbox(MUM);
  t.equal((await get(GP, 'DocumentReference/doc-secret')).statusCode, 200);
  await drain();
  const mine = await inbox();
  const secret = mine.find((c) => c.meta?.security?.some((s) => s.code === 'confidential-from-representatives'));
  t.ok(secret, 'the patient is told, in a notification of its own (not coalesced with the other reads of the hour)');
  const theirs = await inbox(MUM);
  t.same(theirs.map((c) => c.id), before.map((c) => c.id), 'the representative\'s inbox shows nothing of it');
  t.equal((await get(MUM, `Communication/${secret?.id}`)).statusCode, 404);
});

t.test('the patient chooses what reaches them, but not for emergencies', async (t) => {
  const preferences = (choices: [string, string][]) => [{ op: 'add', path: '/extension', value: [{ url: 'https://carnet.example.org/fhir/StructureDefinition/notification-preferences', extension: choices.map(([url, valueCode]) => ({ url, valueCode })) }] }];
  const patch = async (body: unknown) => fhir(app, 'PATCH', 'Patient/p1', body, { ...(await as(P1)), 'content-type': 'application/json-patch+json' });
  const refused = await patch(preferences([['emergency', 'none']]));
  t.equal(refused.statusCode, 422, 'emergency notifications cannot be turned off');
  t.match(refused.body, /cannot be turned off/);
  t.equal((await patch(preferences([['read', 'none']]))).statusCode, 200);
  advance(2 * HOUR);
  const count = (await inbox()).length;
  await get(GP, 'DocumentReference/doc-seen');
  await drain();
  t.equal((await inbox()).length, count, 'reads are no longer notified');
  await get(ER, 'DocumentReference/doc-seen');
  await drain();
  t.equal(kinds(await inbox())[0], 'emergency', 'emergencies still are');
  t.equal((await patch([{ op: 'remove', path: '/extension' }])).statusCode, 200);
});

const subscription = (topic: string, filter: string | undefined, channel: Subscription['channel'], content = 'id-only'): Subscription => ({
  resourceType: 'Subscription',
  meta: { profile: [`${IG}backport-subscription`] },
  status: 'requested',
  reason: 'test',
  criteria: `${TOPIC}${topic}`,
  ...(filter ? { _criteria: { extension: [{ url: `${IG}backport-filter-criteria`, valueString: filter }] } } : {}),
  channel: { ...channel, payload: 'application/fhir+json', _payload: { extension: [{ url: `${IG}backport-payload-content`, valueCode: content }] } } as Subscription['channel'],
});

const statusOf = (bundle: Bundle) => bundle.entry?.[0]?.resource as Parameters;
const param = (p: Parameters, name: string) => p.parameter?.find((x) => x.name === name);
const eventNumbers = (bundle: Bundle) => (statusOf(bundle).parameter ?? []).filter((x) => x.name === 'notification-event').map((x) => Number(x.part?.find((y) => y.name === 'event-number')?.valueString));
const pushDocument = async (patient = 'p1') => {
  const { id: _omit, ...document } = doc('x', patient, LAB, 'Organization/org-lab') as Resource & { id: string };
  const res = await fhir(app, 'POST', 'DocumentReference', document, await as(LAB_SYSTEM));
  if (res.statusCode !== 201) throw new Error(res.body);
  return json(res).id as string;
};

t.test('a rest-hook subscription: handshake, numbered events, consent decided at delivery', async (t) => {
  received.length = 0;
  const created = await fhir(app, 'POST', 'Subscription', subscription('document', 'DocumentReference?patient=Patient/p1', { type: 'rest-hook', endpoint: hook, header: ['Authorization: Bearer receiver-secret'] }), await as(GP));
  t.equal(created.statusCode, 201, created.body);
  const id = json<Subscription>(created).id as string;
  t.equal(json<Subscription>(created).status, 'requested', 'requested until the handshake');
  t.equal((await get(STRANGER, `Subscription/${id}`)).statusCode, 404, 'a subscription is its owner\'s');
  await drain();
  t.equal(received.length, 1);
  t.equal(param(statusOf(received[0].bundle), 'type')?.valueCode, 'handshake');
  t.equal(received[0].headers.authorization, 'Bearer receiver-secret', 'with the channel\'s headers');
  t.equal(json<Subscription>(await get(GP, `Subscription/${id}`)).status, 'active');

  const first = await pushDocument();
  await pushDocument('p2'); // another patient's: filtered out
  await drain();
  t.equal(received.length, 2, 'one event');
  const event = received[1].bundle;
  t.equal(param(statusOf(event), 'type')?.valueCode, 'event-notification');
  t.same(eventNumbers(event), [1]);
  t.equal(event.entry?.[1]?.fullUrl, `${base}/DocumentReference/${first}`, 'id-only: the focus\'s URL');
  t.notOk(event.entry?.[1]?.resource, 'and no content');
  const log = json<Bundle>(await get(P1, 'AuditEvent?patient=p1&_count=100'));
  const delivery = log.entry?.map((e) => e.resource as AuditEvent).find((e) => e.subtype?.some((c) => c.code === 'subscription-notification'));
  t.match(delivery, { entity: [{ what: { reference: `DocumentReference/${first}` } }] }, 'the delivery is in the patient\'s access log, as the GP\'s access');

  // Derived while the GP could read it; the patient blocks them before it is delivered.
  await pushDocument();
  await app.notifier.fanOut();
  const blocked = await fhir(app, 'POST', 'Consent', (({ id: _i, ...c }) => c)(block('x', 'p1', 'Practitioner/dr-gp')), await as(P1));
  t.equal(blocked.statusCode, 201);
  await drain();
  t.equal(received.length, 2, 'withheld at delivery: the block governs at once');
  const events = json<Bundle>(await get(GP, `Subscription/${id}/$events?eventsSinceNumber=1`));
  t.same(eventNumbers(events), [], '$events lists nothing the GP may no longer read');
  const status = json<Bundle>(await get(GP, `Subscription/${id}/$status`));
  t.equal(param(statusOf(status), 'events-since-subscription-start')?.valueString, '2', 'two events since it started');
  await fhir(app, 'DELETE', `Consent/${json(blocked).id}`, undefined, await as(P1));
});

t.test('failures are retried with backoff, then the subscription is in error until resumed; nothing is lost', async (t) => {
  received.length = 0;
  const created = await fhir(app, 'POST', 'Subscription', subscription('record-access', 'Communication?patient=Patient/p1', { type: 'rest-hook', endpoint: hook }), await as(P1));
  t.equal(created.statusCode, 201, created.body);
  const id = json<Subscription>(created).id as string;
  await drain();
  t.equal(param(statusOf(received[0].bundle), 'type')?.valueCode, 'handshake');

  failing = 1;
  advance(2 * HOUR);
  await get(GP, 'DocumentReference/doc-seen');
  await drain();
  t.equal(received.length, 1, 'the first attempt failed');
  advance(1_000);
  await drain();
  t.equal(received.length, 2, 'retried a second later, and delivered');
  const delivered = received[1].bundle;
  const focus = delivered.entry?.[1]?.fullUrl ?? '';
  t.match(focus, /\/Communication\//, 'the focus: the notification');
  t.match(json<Communication>(await get(P1, focus.slice(focus.indexOf('Communication/')))), { reasonCode: [{ coding: [{ code: 'read' }] }] }, 'which the patient reads');

  failing = 100;
  advance(2 * HOUR);
  await get(GP, 'DocumentReference/doc-seen');
  await drain();
  advance(1_000);
  await drain();
  advance(2_000);
  await drain();
  t.equal(json<Subscription>(await get(P1, `Subscription/${id}`)).status, 'error', 'three attempts: error');
  const status = json<Bundle>(await get(P1, `Subscription/${id}/$status`));
  t.equal(param(statusOf(status), 'status')?.valueCode, 'error');

  failing = 0;
  const current = json<Subscription>(await get(P1, `Subscription/${id}`));
  t.equal((await fhir(app, 'PUT', `Subscription/${id}`, { ...current, status: 'requested' }, await as(P1))).statusCode, 200, 'the owner asks for it again');
  const count = received.length;
  await drain();
  const types = received.slice(count).map((r) => param(statusOf(r.bundle), 'type')?.valueCode);
  t.same(types, ['handshake', 'event-notification'], 'a handshake, then the event that waited');
  t.same(eventNumbers(received[received.length - 1].bundle), [2], 'with its number');
  t.equal(json<Subscription>(await get(P1, `Subscription/${id}`)).status, 'active');
  await fhir(app, 'DELETE', `Subscription/${id}`, undefined, await as(P1));
});

t.test('a patient subscribes to their own record only; endpoints inside the network are refused', async (t) => {
  const other = await fhir(app, 'POST', 'Subscription', subscription('document', 'DocumentReference?patient=Patient/p2', { type: 'rest-hook', endpoint: hook }), await as(P1));
  t.equal(other.statusCode, 403);
  const internal = await fhir(app, 'POST', 'Subscription', subscription('document', 'DocumentReference?patient=Patient/p1', { type: 'rest-hook', endpoint: 'http://169.254.169.254/latest/meta-data' }), await as(GP));
  t.equal(internal.statusCode, 201);
  const id = json<Subscription>(internal).id as string;
  await drain();
  t.equal(json<Subscription>(await get(GP, `Subscription/${id}`)).status, 'error', 'never contacted: the metadata address is not allowed');
  const unknown = await fhir(app, 'POST', 'Subscription', { ...subscription('document', undefined, { type: 'rest-hook', endpoint: hook }), criteria: `${TOPIC}nothing` }, await as(GP));
  t.equal(unknown.statusCode, 422);
  t.match(unknown.body, /Subscription.criteria/);
  await fhir(app, 'DELETE', `Subscription/${id}`, undefined, await as(GP));
});

t.test('a websocket subscription: binding token, handshake, events', async (t) => {
  const created = await fhir(app, 'POST', 'Subscription', subscription('document', 'DocumentReference?patient=Patient/p1', { type: 'websocket' }), await as(P1));
  t.equal(created.statusCode, 201, created.body);
  const id = json<Subscription>(created).id as string;
  t.equal(json<Subscription>(created).status, 'active');
  const token = json<Parameters>(await get(P1, `Subscription/${id}/$get-ws-binding-token`));
  const url = param(token, 'websocket-url')?.valueUrl as string;
  t.match(url, /^ws:\/\/127\.0\.0\.1:\d+\/fhir\//);
  const socket = new WebSocket(url);
  const messages: Bundle[] = [];
  socket.on('message', (data) => messages.push(JSON.parse(String(data)) as Bundle));
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send(`bind-with-token ${param(token, 'token')?.valueString}`);
  const until = async (n: number) => {
    for (let i = 0; i < 100 && messages.length < n; i++) {
      await drain();
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until(1);
  t.equal(param(statusOf(messages[0]), 'type')?.valueCode, 'handshake');
  const pushed = await pushDocument();
  await until(2);
  t.equal(param(statusOf(messages[1]), 'type')?.valueCode, 'event-notification');
  t.equal(messages[1].entry?.[1]?.fullUrl, `${base}/DocumentReference/${pushed}`);
  socket.close();
});

t.test('two notifiers on one store deliver each event once', async (t) => {
  const created = await fhir(app, 'POST', 'Subscription', subscription('document', 'DocumentReference?patient=Patient/p1', { type: 'rest-hook', endpoint: hook }), await as(GP));
  const id = json<Subscription>(created).id as string;
  await drain();
  received.length = 0;
  // A second process's notifier: its own policy cache, the same store.
  const second = new Notifier({ store: server.store, policy: new Policy(server.store, now), topics: loadTopics(), settings: { ...DEFAULT_NOTIFIER, allow: parseAllowList(['127.0.0.1']) }, baseUrl: () => base, now });
  for (let i = 0; i < 5; i++) await pushDocument();
  await Promise.all([drain(), second.drain(), drain(), second.drain()]);
  const numbers = received.filter((r) => param(statusOf(r.bundle), 'subscription')?.valueReference?.reference?.endsWith(id)).flatMap((r) => eventNumbers(r.bundle));
  t.same([...numbers].sort((a, b) => a - b), [1, 2, 3, 4, 5], 'each event once');
  await fhir(app, 'DELETE', `Subscription/${id}`, undefined, await as(GP));
});

t.test('the CapabilityStatement declares the topics and the operations', async (t) => {
  const metadata = json(await fhir(app, 'GET', 'metadata'));
  const resource = (metadata as { rest: { resource: { type: string; extension?: { valueCanonical?: string }[]; operation?: { name: string }[] }[] }[] }).rest[0].resource.find((r) => r.type === 'Subscription');
  t.same((resource?.extension ?? []).map((e) => e.valueCanonical).filter(Boolean).sort(), ['appointment', 'communication', 'document', 'record-access'].map((n) => `${TOPIC}${n}`));
  t.same(resource?.operation?.map((o) => o.name).sort(), ['events', 'get-ws-binding-token', 'status', 'validate']);
});
