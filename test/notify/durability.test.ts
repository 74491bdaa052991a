// A kill -9 during delivery loses no event: the real server (src/main.ts) as a child process, a
// rest-hook subscription to a real local receiver that holds the first event's request open; the
// server is killed while it waits, restarted on the same data, and the receiver then gets every
// event, numbered 1..N (the held one again: delivery is at least once), in order.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import { developmentTokenFor, type TestActor } from '../helpers.js';
import { startServer, type Child } from '../child-server.js';

t.setTimeout(240_000);
const IG = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-notify-kill-'));
t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
const ENV = { CARNET_SUBSCRIPTION_ALLOW: '127.0.0.1', CARNET_NOTIFICATION_POLL_MS: '50', CARNET_NOTIFICATION_LEASE_MS: '1000' };

// The receiver: answers handshakes; holds event requests open while `hold` is set.
let hold = true;
const events: number[] = [];
const held: http.ServerResponse[] = [];
const receiver = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const bundle = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Bundle;
    const status = bundle.entry?.[0]?.resource as Parameters;
    if (status.parameter?.find((p) => p.name === 'type')?.valueCode !== 'event-notification') {
      res.end();
      return;
    }
    const number = Number(status.parameter?.find((p) => p.name === 'notification-event')?.part?.find((p) => p.name === 'event-number')?.valueString);
    if (hold) {
      held.push(res);
      events.push(-number); // seen, not acknowledged
      return;
    }
    events.push(number);
    res.end();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
t.teardown(() => {
  for (const res of held) res.destroy();
  receiver.closeAllConnections();
  receiver.close();
});
const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

const call = async (child: Child, actor: TestActor, method: string, url: string, body?: unknown) => {
  const token = await developmentTokenFor(dataDir, child.base, actor);
  let res: Response;
  try {
    res = await fetch(`${child.base}/${url}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  } catch (error) {
    const exit = await Promise.race([child.exited, new Promise((r) => setTimeout(() => r('still running'), 500))]);
    throw new Error(`${method} ${url}: ${String(error)} ${String((error as Error).cause)}; server: ${JSON.stringify(exit)}, stderr: ${child.stderr()}`);
  }
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const until = async (what: string, done: () => boolean | Promise<boolean>, ms = 60_000) => {
  const end = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

const GP: TestActor = { kind: 'practitioner', practitioner: 'dr-gp', profession: '10' };
const LAB: TestActor = { kind: 'system', client: 'lab' };

t.test('a kill -9 during delivery loses no event', async (t) => {
  let child = await startServer(dataDir, ENV);
  t.equal((await call(child, LAB, 'PUT', 'Patient/p1', { resourceType: 'Patient', id: 'p1', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] })).status, 201);
  const created = await call(child, GP, 'POST', 'Subscription', {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'kill -9',
    criteria: 'https://carnet.example.org/fhir/SubscriptionTopic/document',
    _criteria: { extension: [{ url: `${IG}backport-filter-criteria`, valueString: 'DocumentReference?patient=Patient/p1' }] },
    channel: { type: 'rest-hook', endpoint: hook, payload: 'application/fhir+json', _payload: { extension: [{ url: `${IG}backport-payload-content`, valueCode: 'id-only' }] } },
  });
  t.equal(created.status, 201);
  const id = created.body.id as string;
  await until('the handshake', async () => (await call(child, GP, 'GET', `Subscription/${id}`)).body.status === 'active');

  const N = 5;
  for (let i = 0; i < N; i++) {
    const pushed = await call(child, LAB, 'POST', 'DocumentReference', { resourceType: 'DocumentReference', status: 'current', subject: { reference: 'Patient/p1' }, author: [{ reference: 'Organization/lab' }], content: [{ attachment: { contentType: 'application/pdf', url: `Binary/x${i}` } }] });
    t.equal(pushed.status, 201);
  }
  await until('the first event to reach the receiver', () => events.length > 0);
  child.proc.kill('SIGKILL');
  await child.exited;
  t.same(events, [-1], 'killed while the first event was being delivered, nothing acknowledged');

  hold = false;
  for (const res of held.splice(0)) res.destroy();
  child = await startServer(dataDir, ENV);
  await until('every event', () => new Set(events.filter((n) => n > 0)).size === N);
  const delivered = events.filter((n) => n > 0);
  t.same([...new Set(delivered)], [1, 2, 3, 4, 5], 'every event, in order, after the restart');
  const status = await call(child, GP, 'GET', `Subscription/${id}/$status`);
  const parameters = ((status.body as unknown as Bundle).entry?.[0]?.resource as Parameters).parameter ?? [];
  t.equal(parameters.find((p) => p.name === 'events-since-subscription-start')?.valueString, String(N), 'no event lost, none derived twice');
  child.proc.kill('SIGKILL');
  await child.exited;
});
