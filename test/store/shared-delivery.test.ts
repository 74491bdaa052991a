// Delivery state shared by the processes of one data directory (store/sqlite/queue.ts): two
// SqliteStores opened on the same folder, each with its own connections and writer thread, as two
// processes of CARNET_WORKERS have them. Claims never overlap, a lease has one holder, a cursor is
// moved once, and the change feed of one holds what the other acknowledged, journaled records
// included. The contract (contract.ts) checks the same on one store.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Patient } from '@medplum/fhirtypes';
import { WriteConflict, type QueuedItem, type Store, type WriteOp } from '../../src/store/port.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { indexEntries } from '../../src/search/extract.js';
import { auditRecord } from '../fixtures/audit-record.js';

const T0 = Date.parse('2026-10-01T00:00:00.000Z');
const after = (ms = 0) => new Date(T0 + ms).toISOString();

function patient(id: string): WriteOp {
  const resource = { resourceType: 'Patient', id } as Patient & { id: string };
  return { kind: 'create', resource, index: indexEntries(resource) };
}

/** Two stores on one fresh folder, closed and removed at the end of the test. */
function twoStores(t: Test): [Store, Store] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-shared-'));
  const first = new SqliteStore({ dataDir: dir });
  const second = new SqliteStore({ dataDir: dir });
  t.teardown(async () => {
    await Promise.all([first.close(), second.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return [first, second];
}

t.test('two stores claiming the same queues at once never hold one item together, and deliver each once, in order', async (t) => {
  const [a, b] = twoStores(t);
  await a.transact(
    Array.from({ length: 30 }, (_, q) => Array.from({ length: 3 }, (_, n): WriteOp => ({ kind: 'enqueue', queue: `s:${q}`, data: n + 1 }))).flat(),
    after(),
  );
  // Deterministically first: what one store leased, the other cannot take.
  const heldByA = await a.queue.claim('a0', after(), 60_000, 5, 's:');
  t.equal(heldByA.length, 5, 'the first store leases five heads');
  const seenByB = await b.queue.claim('b0', after(), 60_000, 100, 's:');
  t.equal(seenByB.length, 25, 'the second store gets the other 25 heads');
  t.same(
    heldByA.filter((x) => seenByB.some((y) => y.queue === x.queue)),
    [],
    'and none that the first one holds',
  );
  const givenBack: boolean[] = [];
  for (const [store, owner, items] of [[a, 'a0', heldByA], [b, 'b0', seenByB]] as const) {
    for (const item of items) givenBack.push(await store.queue.settle(item.queue, item.number, owner, after(), { kind: 'retry', due: after(), error: 'given back' }));
  }
  t.ok(givenBack.length === 30 && givenBack.every(Boolean), 'each gives back what it holds');
  const delivered: { owner: string; item: QueuedItem }[] = [];
  const work = async (store: Store, owner: string) => {
    // Until every item is delivered (a bound on the rounds, should one never be).
    for (let round = 0; round < 500 && delivered.length < 90; round++) {
      const claimed = await store.queue.claim(owner, after(round), 60_000, 4, 's:');
      for (const item of claimed) {
        delivered.push({ owner, item });
        if (!(await store.queue.settle(item.queue, item.number, owner, after(round), { kind: 'done' }))) throw new Error(`${owner} lost ${item.queue}#${item.number}`);
      }
    }
  };
  await Promise.all([work(a, 'a'), work(b, 'b'), work(a, 'a2'), work(b, 'b2')]);
  const keys = delivered.map(({ item }) => `${item.queue}#${item.number}`);
  t.equal(keys.length, 90, 'every item delivered');
  t.equal(new Set(keys).size, 90, 'none twice');
  for (let q = 0; q < 30; q++) {
    const numbers = delivered.filter(({ item }) => item.queue === `s:${q}`).map(({ item }) => item.number);
    if (numbers.join() !== '1,2,3') t.fail(`queue s:${q} delivered in the order ${numbers.join()}`);
  }
  t.same(await b.queue.status('s:7'), { last: 3, pending: 0, done: 3, failed: 0 });
});

t.test('two stores enqueuing at once number each queue without gaps', async (t) => {
  const [a, b] = twoStores(t);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).transact([{ kind: 'enqueue', queue: 'g', data: i }], after())));
  t.same(
    results.map(([r]) => (r.kind === 'enqueued' ? r.number : 0)).sort((x, y) => x - y),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
});

t.test('of two stores moving a cursor from the same value, one succeeds', async (t) => {
  const [a, b] = twoStores(t);
  const move = (store: Store, id: string) => store.transact([patient(id), { kind: 'cursor', name: 'feed', from: 0, to: 1 }], after());
  const [first, second] = await Promise.allSettled([move(a, 'from-a'), move(b, 'from-b')]);
  t.equal([first, second].filter((r) => r.status === 'fulfilled').length, 1);
  const lost = first.status === 'rejected' ? first : second;
  t.ok(lost.status === 'rejected' && lost.reason instanceof WriteConflict, 'the other is a conflict');
  t.equal(await b.cursor('feed'), 1);
  t.equal([(await a.read('Patient', 'from-a')).kind, (await a.read('Patient', 'from-b')).kind].filter((k) => k === 'found').length, 1);
});

t.test('a lease has one holder across stores', async (t) => {
  const [a, b] = twoStores(t);
  const taken = await Promise.all([a.lease('job', 'a', after(), 1000), b.lease('job', 'b', after(), 1000)]);
  t.equal(taken.filter(Boolean).length, 1);
  t.equal(await b.lease('job', taken[0] ? 'b' : 'a', after(1000), 1000), true, 'the other takes it once expired');
});

t.test("one store's change feed holds what the other acknowledged, its journaled records included", async (t) => {
  const [a, b] = twoStores(t);
  await a.transact([patient('fed')], after());
  const record = auditRecord('fed-read', 'fed', after(1));
  await a.journal!([{ resource: record, index: indexEntries(record), creator: 'carnet:audit' }], after(1));
  const changes = await b.changes(0, 10);
  t.same(
    changes.map((c) => `${c.version.type}/${c.version.id}`),
    ['Patient/fed', 'AuditEvent/fed-read'],
  );
});
