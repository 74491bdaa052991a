// The storage port's contract (src/store/port.ts), written once and run on every engine
// (contract.test.ts, with the engines of engines.ts): what each method promises (the change feed,
// cursors, durable queues and leases of notifications included), and what the two optional
// capabilities promise on every engine that offers them (journal(); deferIndex, which an
// engine may use or ignore), together with the fallback a caller uses on an engine without a
// journal. A new engine passes this suite; what only one engine can show (its SQL, its files, its
// indexes, a crash of its process) stays in that engine's own tests.
import { Readable } from 'node:stream';
import crypto from 'node:crypto';
import type { Test } from 'tap';
import type { Observation, Patient, Practitioner, Resource } from '@medplum/fhirtypes';
import {
  journalOps,
  WriteConflict,
  type Change,
  type JournalEntry,
  type QueuedItem,
  type ReadResult,
  type SearchQuery,
  type Store,
  type Version,
  type WriteOp,
  type WriteResult,
} from '../../src/store/port.js';
import { indexEntries } from '../../src/search/extract.js';
import { parseSearch } from '../../src/search/plan.js';
import { addSearchParameters } from '../../src/search/params.js';
import type { Condition, IndexEntry, SearchPlan } from '../../src/search/types.js';
import { auditRecord } from '../fixtures/audit-record.js';
import type { StoreUnderTest } from './engines.js';

type Stored = Resource & { id: string };
type CreateOp = Extract<WriteOp, { kind: 'create' }>;
type UpdateOp = Extract<WriteOp, { kind: 'update' }>;

// Ops as the fhir layer makes them: index entries computed above the port, by search/extract.
const create = (resource: Stored, extra: Partial<CreateOp> = {}): CreateOp => ({ kind: 'create', resource, index: indexEntries(resource), ...extra });
const update = (resource: Stored, extra: Partial<UpdateOp> = {}): UpdateOp => ({ kind: 'update', resource, index: indexEntries(resource), ...extra });
const remove = (type: string, id: string, expectedVersion?: number): WriteOp => ({ kind: 'delete', type, id, ...(expectedVersion !== undefined ? { expectedVersion } : {}) });

/** A search plan as the HTTP layer parses it, e.g. plan('Patient', 'family=chal&_sort=birthdate'). */
export function plan(types: string | string[], query = ''): SearchPlan {
  return parseSearch(typeof types === 'string' ? [types] : types, [...new URLSearchParams(query)] as [string, string][], false).plan;
}

/** Increasing instants, one millisecond apart (MongoDB orders history by lastUpdated). */
function clock(start = '2026-01-01T00:00:00.000Z'): () => string {
  let ms = Date.parse(start);
  return () => new Date(ms++).toISOString();
}

const found = (result: ReadResult): Version => {
  if (result.kind !== 'found') throw new Error(`expected a found resource, got ${result.kind}`);
  return result.version;
};
const ids = (versions: Version[]) => versions.map((v) => v.id);
/** An identifier entry the resource does not have: found only if the engine writes the entries it is given. */
const given = (code: string): IndexEntry => ({ kind: 'token', param: 'identifier', group: 0, system: 'urn:contract', code, text: null });
const sorted = (values: string[]) => [...values].sort();

async function conflict(promise: Promise<unknown>): Promise<WriteConflict> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof WriteConflict)) throw new Error(`expected a WriteConflict, got ${String(error)}`);
  return error;
}

async function bytesOf(stream: Readable | undefined): Promise<Buffer> {
  if (!stream) throw new Error('no such blob');
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Every match of a search, page after page (each page `count` long), and the totals each page gave. */
async function allPages(store: Store, searched: SearchPlan, count: number): Promise<{ ids: string[]; pages: number; totals: (number | undefined)[] }> {
  const all: string[] = [];
  const totals: (number | undefined)[] = [];
  let query: SearchQuery = { count, total: true };
  for (let pages = 1; ; pages++) {
    const page = await store.search(searched, query);
    all.push(...ids(page.matches));
    totals.push(page.total);
    if (!page.next) return { ids: all, pages, totals };
    if (pages > 50) throw new Error('the cursors never end');
    query = { count, total: true, cursor: page.next };
  }
}

/**
 * A check of what outlives close(), on an engine that keeps anything (StoreUnderTest.reopen); on
 * one that does not, it does not apply, which the output says.
 */
function afterReopen(t: Test, under: StoreUnderTest, title: string, body: (t: Test, reopen: () => Promise<Store>) => Promise<void>): Promise<unknown> {
  const reopen = under.reopen?.bind(under);
  if (!reopen) {
    t.comment(`does not apply (the engine keeps nothing after close): ${title}`);
    return Promise.resolve();
  }
  return t.test(title, (t) => body(t, reopen));
}

/**
 * Runs the contract on the stores `open` gives: each group of behaviours on a fresh store, which is
 * disposed of at its end.
 */
export async function storeContract(t: Test, name: string, open: () => Promise<StoreUnderTest>): Promise<void> {
  await t.test(`${name}: the storage port contract`, async (t) => {
    const groupOf = (title: string, body: (t: Test, under: StoreUnderTest) => Promise<void>) =>
      t.test(title, async (t) => {
        const under = await open();
        t.teardown(() => under.dispose());
        await body(t, under);
      });
    await groupOf('reads and writes', readsAndWrites);
    await groupOf('optimistic locking, conditional and atomic writes', lockingAndAtomicity);
    await groupOf('history', history);
    await groupOf('search', search);
    await groupOf('deferred index entries (deferIndex)', deferredIndex);
    await groupOf('journal(), and the transact() a caller falls back to without it', journal);
    await groupOf('stamps', stamps);
    await groupOf('the change feed (changes)', changeFeed);
    await groupOf('cursors', cursors);
    await groupOf('durable queues', queues);
    await groupOf('leases', leases);
    await groupOf('client registry', clients);
    await groupOf('blobs', blobs);
    await groupOf('erasure (the purge of an account)', erasure);
    await groupOf('close', close);
  });
}

async function readsAndWrites(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  const at = clock();

  await t.test('a create is version 1 at the given instant, read back at once with the server meta', async (t) => {
    const when = at();
    const patient: Patient & { id: string } = { resourceType: 'Patient', id: 'rw-1', gender: 'male', meta: { profile: ['http://example.org/p'] } };
    const [result] = await store.transact([create(patient, { creator: 'client:a' })], when);
    t.equal(result.kind, 'created');
    t.match(result.kind === 'created' && result.version, { type: 'Patient', id: 'rw-1', versionId: 1, lastUpdated: when, deleted: false });
    const read = found(await store.read('Patient', 'rw-1'));
    t.match(read, { type: 'Patient', id: 'rw-1', versionId: 1, lastUpdated: when, deleted: false, creator: 'client:a' });
    t.same(read.resource?.meta, { profile: ['http://example.org/p'], versionId: '1', lastUpdated: when }, 'meta.versionId and meta.lastUpdated are the server\'s, the rest kept');
    t.equal((read.resource as Patient).gender, 'male');
    t.equal(found(await store.readVersion('Patient', 'rw-1', 1)).versionId, 1, 'vread of version 1');
  });

  await t.test('an unknown resource or version reads as missing', async (t) => {
    t.equal((await store.read('Patient', 'never')).kind, 'missing');
    t.equal((await store.readVersion('Patient', 'never', 1)).kind, 'missing');
    t.equal((await store.readVersion('Patient', 'rw-1', 2)).kind, 'missing');
    t.equal((await store.read('Observation', 'rw-1')).kind, 'missing', 'the id of another type');
  });

  await t.test('an update is the next version; the previous one is answered and still read by vread', async (t) => {
    const when = at();
    const [result] = await store.transact([update({ resourceType: 'Patient', id: 'rw-1', gender: 'female' }, { creator: 'client:b' })], when);
    if (result.kind !== 'updated') throw new Error(`updated expected, got ${result.kind}`);
    t.equal(result.version.versionId, 2);
    t.equal(result.version.lastUpdated, when);
    t.equal(result.previous.versionId, 1);
    t.equal((result.previous.resource as Patient).gender, 'male');
    const read = found(await store.read('Patient', 'rw-1'));
    t.equal((read.resource as Patient).gender, 'female');
    t.equal(read.resource?.meta?.versionId, '2');
    t.equal(read.creator, 'client:a', 'the creator is kept across updates');
    t.equal((found(await store.readVersion('Patient', 'rw-1', 1)).resource as Patient).gender, 'male');
    t.equal(found(await store.readVersion('Patient', 'rw-1', 1)).creator, 'client:a', 'vread carries the creator too');
  });

  await t.test('an update with the same content (key order and server meta aside) writes no version', async (t) => {
    const current = found(await store.read('Patient', 'rw-1')).resource as Patient & { id: string };
    const reordered = { gender: current.gender, meta: { ...current.meta, versionId: '99', lastUpdated: '2000-01-01T00:00:00Z' }, id: current.id, resourceType: 'Patient' } as Patient & { id: string };
    const [result] = await store.transact([update(reordered)], at());
    t.equal(result.kind, 'unchanged');
    t.equal(result.kind === 'unchanged' && result.version.versionId, 2);
    t.equal(found(await store.read('Patient', 'rw-1')).versionId, 2);
    t.equal((await store.history({ level: 'instance', type: 'Patient', id: 'rw-1' }, { count: 10 })).total, 2);
  });

  await t.test('a delete writes a tombstone: read answers deleted, older versions stay readable', async (t) => {
    const when = at();
    const [result] = await store.transact([remove('Patient', 'rw-1')], when);
    t.match(result.kind === 'deleted' && result.version, { type: 'Patient', id: 'rw-1', versionId: 3, lastUpdated: when, deleted: true });
    const read = await store.read('Patient', 'rw-1');
    t.equal(read.kind, 'deleted');
    t.match(read.kind === 'deleted' && read.version, { versionId: 3, deleted: true, lastUpdated: when });
    t.equal(read.kind === 'deleted' && read.version.resource, undefined, 'a tombstone has no content');
    t.equal((await store.readVersion('Patient', 'rw-1', 3)).kind, 'deleted', 'vread of the tombstone');
    t.equal((await store.readVersion('Patient', 'rw-1', 2)).kind, 'found', 'vread of the version before');
    t.equal((await store.search(plan('Patient', '_id=rw-1'), { count: 10, total: true })).total, 0, 'no search finds it');
  });

  await t.test('deleting a deleted or unknown resource is absent', async (t) => {
    const [again] = await store.transact([remove('Patient', 'rw-1')], at());
    t.equal(again.kind, 'absent');
    const [never] = await store.transact([remove('Patient', 'never')], at());
    t.equal(never.kind, 'absent');
    t.equal(found(await store.readVersion('Patient', 'rw-1', 2)).versionId, 2);
    t.equal((await store.history({ level: 'instance', type: 'Patient', id: 'rw-1' }, { count: 10 })).total, 3, 'nothing was written');
  });

  await t.test('an update of a deleted resource creates its next version; of an unknown id, version 1', async (t) => {
    const [revived] = await store.transact([update({ resourceType: 'Patient', id: 'rw-1', gender: 'other' }, { creator: 'client:c' })], at());
    t.equal(revived.kind, 'created');
    t.equal(revived.kind === 'created' && revived.version.versionId, 4);
    t.equal(found(await store.read('Patient', 'rw-1')).creator, 'client:a', 'the creator is still the first one');
    const [fresh] = await store.transact([update({ resourceType: 'Patient', id: 'rw-2', gender: 'male' }, { creator: 'client:c' })], at());
    t.equal(fresh.kind, 'created');
    t.equal(fresh.kind === 'created' && fresh.version.versionId, 1);
    t.equal(found(await store.read('Patient', 'rw-2')).creator, 'client:c', 'an update that creates records its creator');
  });

  await t.test('an update replaces the index entries: a search finds the new values, not the old ones', async (t) => {
    const byGender = (gender: string) => store.search(plan('Patient', `gender=${gender}&_id=rw-1`), { count: 10, total: true });
    t.equal((await byGender('other')).total, 1);
    await store.transact([update({ resourceType: 'Patient', id: 'rw-1', gender: 'unknown' })], at());
    t.equal((await byGender('other')).total, 0, 'the old value is gone');
    t.equal((await byGender('unknown')).total, 1, 'the new one is found');
  });

  await t.test('a transaction of several ops answers one result per op, in order, at one instant', async (t) => {
    const when = at();
    const results = await store.transact(
      [create({ resourceType: 'Patient', id: 'rw-3' }), update({ resourceType: 'Patient', id: 'rw-2', gender: 'female' }), remove('Patient', 'rw-3-never')],
      when,
    );
    t.same(
      results.map((r) => r.kind),
      ['created', 'updated', 'absent'],
    );
    t.same(
      results.flatMap((r: WriteResult) => ('version' in r ? [r.version.lastUpdated] : [])),
      [when, when],
    );
  });

  await t.test('writes are read back at once, one after the other', async (t) => {
    for (let i = 0; i < 20; i++) {
      await store.transact([create({ resourceType: 'Patient', id: `seq-${i}`, name: [{ family: `Family${i}` }] })], at());
      t.equal((await store.read('Patient', `seq-${i}`)).kind, 'found', `seq-${i}`);
    }
    t.equal((await store.search(plan('Patient', 'family:exact=Family7'), { count: 10, total: true })).total, 1, 'with their index entries');
  });

  await t.test('the index entries written are the ones given, not entries of the engine\'s own', async (t) => {
    await store.transact([{ kind: 'create', resource: { resourceType: 'Patient', id: 'given' }, index: [given('given-only')] }], at());
    t.same(ids((await store.search(plan('Patient', 'identifier=urn:contract|given-only'), { count: 10 })).matches), ['given']);
  });
}

async function lockingAndAtomicity(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  const at = clock('2026-02-01T00:00:00.000Z');
  await store.transact([create({ resourceType: 'Patient', id: 'lock', active: true }), create({ resourceType: 'Patient', id: 'taken' })], at());

  await t.test('expectedVersion: an update or delete of another version is refused with version-mismatch', async (t) => {
    const stale = await conflict(store.transact([update({ resourceType: 'Patient', id: 'lock', active: false }, { expectedVersion: 7 })], at()));
    t.equal(stale.reason, 'version-mismatch');
    t.equal(stale.target, 'Patient/lock');
    t.equal((await conflict(store.transact([remove('Patient', 'lock', 2)], at()))).reason, 'version-mismatch');
    t.equal((await conflict(store.transact([update({ resourceType: 'Patient', id: 'none' }, { expectedVersion: 1 })], at()))).reason, 'version-mismatch', 'of a resource that does not exist');
    t.equal(found(await store.read('Patient', 'lock')).versionId, 1, 'nothing was written');
    const [ok] = await store.transact([update({ resourceType: 'Patient', id: 'lock', active: false }, { expectedVersion: 1 })], at());
    t.equal(ok.kind, 'updated', 'the version read is accepted');
  });

  await t.test('of two concurrent updates of the same version, exactly one wins', async (t) => {
    const results = await Promise.allSettled([
      store.transact([update({ resourceType: 'Patient', id: 'lock', gender: 'female' }, { expectedVersion: 2 })], at()),
      store.transact([update({ resourceType: 'Patient', id: 'lock', gender: 'male' }, { expectedVersion: 2 })], at()),
    ]);
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    t.ok(refused.reason instanceof WriteConflict && refused.reason.reason === 'version-mismatch', String(refused.reason));
    t.equal(found(await store.read('Patient', 'lock')).versionId, 3);
  });

  await t.test('mustBeNew: an update resolved as a create fails when the id exists meanwhile', async (t) => {
    const refused = await conflict(store.transact([update({ resourceType: 'Patient', id: 'taken', active: true }, { mustBeNew: true })], at()));
    t.equal(refused.reason, 'already-exists');
    t.equal(refused.target, 'Patient/taken');
    const [created] = await store.transact([update({ resourceType: 'Patient', id: 'brand-new' }, { mustBeNew: true })], at());
    t.equal(created.kind, 'created');
  });

  await t.test('a create of a taken id is refused with already-exists', async (t) => {
    const refused = await conflict(store.transact([create({ resourceType: 'Patient', id: 'taken' })], at()));
    t.equal(refused.reason, 'already-exists');
    t.equal(refused.target, 'Patient/taken');
  });

  await t.test('conditional create: no match creates, one match answers it, several are refused', async (t) => {
    const candidate = (id: string, value: string) => create({ resourceType: 'Patient', id, identifier: [{ system: 'urn:cond', value }] }, { ifNoneExist: plan('Patient', `identifier=urn:cond|${value}`) });
    const [first] = await store.transact([candidate('cond-1', 'one')], at());
    t.equal(first.kind, 'created');
    const [second] = await store.transact([candidate('cond-2', 'one')], at());
    t.equal(second.kind, 'existing');
    t.equal(second.kind === 'existing' && second.version.id, 'cond-1', 'the match is answered');
    t.equal((await store.read('Patient', 'cond-2')).kind, 'missing', 'nothing was written');
    await store.transact([create({ resourceType: 'Patient', id: 'cond-3', identifier: [{ system: 'urn:cond', value: 'one' }] })], at());
    t.equal((await conflict(store.transact([candidate('cond-4', 'one')], at()))).reason, 'multiple-matches');
    t.equal((await store.read('Patient', 'cond-4')).kind, 'missing');
  });

  await t.test('a conditional create with failIfExists refuses the whole transaction on a match', async (t) => {
    const strict = (id: string, value: string) => create({ resourceType: 'Patient', id, identifier: [{ system: 'urn:cond', value }] }, { ifNoneExist: plan('Patient', `identifier=urn:cond|${value}`), failIfExists: true });
    const [first] = await store.transact([strict('strict-1', 'strict')], at());
    t.equal(first.kind, 'created', 'no match: created as usual');
    const refused = await conflict(store.transact([create({ resourceType: 'Patient', id: 'strict-companion' }), strict('strict-2', 'strict')], at()));
    t.equal(refused.reason, 'already-exists');
    t.equal((await store.read('Patient', 'strict-2')).kind, 'missing');
    t.equal((await store.read('Patient', 'strict-companion')).kind, 'missing', 'the ops written with it were rolled back');
  });

  await t.test('concurrent conditional creates with the same criteria create one resource', async (t) => {
    const criteria = plan('Patient', 'identifier=urn:cond|race');
    const candidate = (id: string) => create({ resourceType: 'Patient', id, identifier: [{ system: 'urn:cond', value: 'race' }] }, { ifNoneExist: criteria });
    const results = await Promise.all([store.transact([candidate('race-1')], at()), store.transact([candidate('race-2')], at())]);
    t.same(sorted(results.map((r) => r[0].kind)), ['created', 'existing']);
    t.equal((await store.search(criteria, { count: 10, total: true })).total, 1);
  });

  await t.test('a transaction that fails part-way writes none of its ops', async (t) => {
    await conflict(store.transact([create({ resourceType: 'Patient', id: 'fresh', gender: 'male' }), create({ resourceType: 'Patient', id: 'taken' })], at()));
    t.equal((await store.read('Patient', 'fresh')).kind, 'missing', 'the create before the failure was rolled back');
    t.equal((await store.search(plan('Patient', '_id=fresh'), { count: 10, total: true })).total, 0, 'and left no index entry');
    const before = found(await store.read('Patient', 'lock'));
    await conflict(store.transact([update({ resourceType: 'Patient', id: 'lock', birthDate: '1999-09-09' }), remove('Patient', 'taken', 42)], at()));
    t.equal(found(await store.read('Patient', 'lock')).versionId, before.versionId, 'an update before a refused delete was rolled back');
    t.equal((await store.search(plan('Patient', 'birthdate=1999-09-09'), { count: 10, total: true })).total, 0);
  });
}

async function stamps(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  const at = clock();

  await t.test('a stamp never bumped is 0; each stamp op adds one, in the transaction of the writes beside it', async (t) => {
    t.same(await store.stamps(['s:a', 's:b']), [0, 0]);
    const results = await store.transact([create({ resourceType: 'Patient', id: 'stamped-1' }), { kind: 'stamp', key: 's:a' }], at());
    t.same(results[1], { kind: 'stamped', key: 's:a', stamp: 1 });
    await store.transact([{ kind: 'stamp', key: 's:a' }, { kind: 'stamp', key: 's:a' }, { kind: 'stamp', key: 's:b' }], at());
    t.same(await store.stamps(['s:b', 's:a', 's:none']), [1, 3, 0], 'in the order asked');
    t.same(await store.stamps([]), []);
  });

  await t.test('a transaction that fails bumps no stamp', async (t) => {
    await store.transact([create({ resourceType: 'Patient', id: 'stamp-taken' })], at());
    await conflict(store.transact([{ kind: 'stamp', key: 's:rolled-back' }, create({ resourceType: 'Patient', id: 'stamp-taken' })], at()));
    t.same(await store.stamps(['s:rolled-back']), [0]);
  });

  await t.test('concurrent stamp ops are all counted', async (t) => {
    await Promise.all(Array.from({ length: 20 }, () => store.transact([{ kind: 'stamp', key: 's:concurrent' }], at())));
    t.same(await store.stamps(['s:concurrent']), [20]);
  });

  await afterReopen(t, under, 'stamps outlive close', async (t, reopen) => {
    await store.transact([{ kind: 'stamp', key: 's:kept' }], at());
    const again = await reopen();
    t.same(await again.stamps(['s:kept', 's:a']), [1, 3]);
  });
}

/** Every change after `after`, read page after page of `count`, as a consumer of the feed reads them. */
async function feed(store: Store, after = 0, count = 1000): Promise<Change[]> {
  const all: Change[] = [];
  for (let pages = 1; ; pages++) {
    const page = await store.changes(after, count);
    if (page.length === 0) return all;
    all.push(...page);
    after = page[page.length - 1].seq;
    if (pages > 1000) throw new Error('the feed never ends');
  }
}

const increasing = (changes: Change[]) => changes.every((change, i) => i === 0 || change.seq > changes[i - 1].seq);
const keyOf = (version: Version) => `${version.type}/${version.id}/${version.versionId}`;

async function changeFeed(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  const at = clock('2026-09-01T00:00:00.000Z');

  await t.test('every committed version comes in commit order, seq increasing, with its resource and creator', async (t) => {
    const base = (await feed(store)).at(-1)?.seq ?? 0;
    await store.transact([create({ resourceType: 'Patient', id: 'cf-1', gender: 'male' }, { creator: 'client:f' })], at());
    await store.transact([update({ resourceType: 'Patient', id: 'cf-1', gender: 'female' })], at());
    await store.transact([create({ resourceType: 'Patient', id: 'cf-2' }), remove('Patient', 'cf-1')], at());
    const changes = await store.changes(base, 100);
    t.same(
      changes.map((c) => [keyOf(c.version), c.version.deleted]),
      [
        ['Patient/cf-1/1', false],
        ['Patient/cf-1/2', false],
        ['Patient/cf-2/1', false],
        ['Patient/cf-1/3', true],
      ],
      'creates, updates and a delete tombstone, in the order they were committed',
    );
    t.ok(increasing(changes), 'seq strictly increasing');
    t.ok(changes[0].seq > base);
    t.equal((changes[1].version.resource as Patient).gender, 'female', 'the resource of the version');
    t.equal(changes[1].version.resource?.meta?.versionId, '2', 'with the server meta');
    t.equal(changes[3].version.resource, undefined, 'a tombstone has no content');
    t.same([changes[0].version.creator, changes[1].version.creator], ['client:f', 'client:f'], 'the creator, as read() gives it');
    t.same(await store.changes(changes[1].seq, 2), changes.slice(2), 'after a seq: the changes that follow it');
    t.same(await store.changes(base, 0), [], 'a limit of 0');
  });

  await t.test('an unchanged update and a failed transaction add nothing to the feed', async (t) => {
    const base = (await feed(store)).at(-1)?.seq ?? 0;
    const [unchanged] = await store.transact([update({ resourceType: 'Patient', id: 'cf-2' })], at());
    t.equal(unchanged.kind, 'unchanged');
    await conflict(store.transact([create({ resourceType: 'Patient', id: 'cf-rolled-back' }), create({ resourceType: 'Patient', id: 'cf-2' })], at()));
    t.same(await store.changes(base, 100), []);
  });

  await t.test('a consumer reading pages while others write sees every version once, in order', async (t) => {
    const base = (await feed(store)).at(-1)?.seq ?? 0;
    let writing = true;
    const writes = Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        store.transact(i % 3 === 2 ? [create({ resourceType: 'Patient', id: `cfc-${i}` }), create({ resourceType: 'Observation', id: `cfc-${i}`, status: 'final', code: {} } as Stored)] : [create({ resourceType: 'Patient', id: `cfc-${i}` })], at()),
      ),
    ).finally(() => (writing = false));
    const seen: Change[] = [];
    let after = base;
    for (let idle = 0; idle < 2; ) {
      const page = await store.changes(after, 3);
      if (page.length > 0) after = page[page.length - 1].seq;
      seen.push(...page);
      // Once the writes are acknowledged, one more empty page ends the reading.
      if (page.length === 0 && !writing) idle++;
    }
    await writes;
    t.equal(seen.length, 40, 'every version');
    t.equal(new Set(seen.map((c) => keyOf(c.version))).size, 40, 'none twice');
    t.ok(increasing(seen), 'in seq order');
    t.same(seen, await store.changes(base, 100), 'what a single read of the feed gives afterwards');
  });

  await t.test('journaled records are in the feed once acknowledged', async (t) => {
    const base = (await feed(store)).at(-1)?.seq ?? 0;
    const when = at();
    const entries = [auditEntry('cfj-1', 'cfp', when), auditEntry('cfj-2', 'cfp', when)];
    if (store.journal) await store.journal(entries, when);
    else await store.transact(journalOps(entries), when);
    const changes = await store.changes(base, 100);
    t.same(
      changes.map((c) => keyOf(c.version)),
      ['AuditEvent/cfj-1/1', 'AuditEvent/cfj-2/1'],
    );
    t.equal(changes[0].version.creator, 'carnet:audit');
    t.equal(changes[0].version.lastUpdated, when);
  });

  await afterReopen(t, under, 'after the store opens again, the feed is whole and seq goes on increasing', async (t, reopen) => {
    const before = await feed(store);
    const again = await reopen();
    t.same(await feed(again), before, 'the same feed');
    await again.transact([create({ resourceType: 'Patient', id: 'cf-after' })], at());
    const [next] = await again.changes(before.at(-1)?.seq ?? 0, 10);
    t.equal(next && keyOf(next.version), 'Patient/cf-after/1');
    t.ok(next && next.seq > (before.at(-1)?.seq ?? 0), 'a seq above every earlier one');
  });
}

async function cursors(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  const at = clock('2026-09-15T00:00:00.000Z');
  const move = (name: string, from: number, to: number): WriteOp => ({ kind: 'cursor', name, from, to });

  await t.test('a cursor never moved is 0; a cursor op moves it from its value, in the transaction of the writes beside it', async (t) => {
    t.equal(await store.cursor('c:a'), 0);
    const results = await store.transact([create({ resourceType: 'Patient', id: 'cur-1' }), move('c:a', 0, 5)], at());
    t.same(results[1], { kind: 'cursor', name: 'c:a', value: 5 });
    t.equal(await store.cursor('c:a'), 5);
    t.equal(await store.cursor('c:b'), 0, 'other cursors are not moved');
    await store.transact([move('c:a', 5, 9)], at());
    t.equal(await store.cursor('c:a'), 9);
  });

  await t.test('a cursor op from another value fails the whole transaction, which writes nothing', async (t) => {
    const refused = await conflict(store.transact([create({ resourceType: 'Patient', id: 'cur-2' }), { kind: 'enqueue', queue: 'cur-q', data: 1 }, { kind: 'stamp', key: 'cur-s' }, move('c:a', 5, 12)], at()));
    t.equal(refused.reason, 'version-mismatch');
    t.equal(refused.target, 'cursor:c:a');
    t.equal(await store.cursor('c:a'), 9);
    t.equal((await store.read('Patient', 'cur-2')).kind, 'missing');
    t.same(await store.queue.status('cur-q'), { last: 0, pending: 0, done: 0, failed: 0 });
    t.same(await store.stamps(['cur-s']), [0]);
  });

  await t.test('of concurrent moves from the same value exactly one succeeds, and the others write nothing', async (t) => {
    const racers = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => store.transact([create({ resourceType: 'Patient', id: `cur-race-${i}` }), { kind: 'enqueue', queue: 'cur-race', data: i }, move('c:race', 0, i + 1)], at())),
    );
    const won = racers.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    t.equal(won.length, 1, 'one winner');
    t.ok(
      racers.every((r) => r.status === 'fulfilled' || (r.reason instanceof WriteConflict && r.reason.target === 'cursor:c:race')),
      'the others are refused with a conflict on the cursor',
    );
    t.equal(await store.cursor('c:race'), won[0] + 1, "the winner's value");
    const created = await Promise.all(racers.map((_, i) => store.read('Patient', `cur-race-${i}`)));
    t.same(
      created.map((r) => r.kind),
      racers.map((_, i) => (i === won[0] ? 'found' : 'missing')),
      "only the winner's other ops are written",
    );
    t.same(
      (await store.queue.list('cur-race', 0, 10)).map((item) => [item.number, item.data]),
      [[1, won[0]]],
    );
  });

  await afterReopen(t, under, 'cursors outlive close', async (t, reopen) => {
    const again = await reopen();
    t.equal(await again.cursor('c:a'), 9);
  });
}

/** An instant `ms` milliseconds after the queues' start. */
const T0 = Date.parse('2026-10-01T00:00:00.000Z');
const after = (ms = 0) => new Date(T0 + ms).toISOString();
const enqueue = (queue: string, data: unknown, due?: string): WriteOp => ({ kind: 'enqueue', queue, data, ...(due !== undefined ? { due } : {}) });
const itemKeys = (items: QueuedItem[]) => items.map((item) => `${item.queue}#${item.number}`);

async function queues(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  const queue = store.queue;

  await t.test('items are numbered 1, 2, 3… per queue, in the transaction of the writes beside them', async (t) => {
    const results = await store.transact([enqueue('n:a', { n: 1 }), enqueue('n:b', 'b'), enqueue('n:a', { n: 2 }), create({ resourceType: 'Patient', id: 'qp-1' })], after());
    t.same(results.slice(0, 3), [
      { kind: 'enqueued', queue: 'n:a', number: 1 },
      { kind: 'enqueued', queue: 'n:b', number: 1 },
      { kind: 'enqueued', queue: 'n:a', number: 2 },
    ]);
    await conflict(store.transact([enqueue('n:a', 'rolled back'), create({ resourceType: 'Patient', id: 'qp-1' })], after()));
    const [third] = await store.transact([enqueue('n:a', [3], after(5000))], after(1));
    t.same(third, { kind: 'enqueued', queue: 'n:a', number: 3 }, 'a failed transaction enqueued nothing: no gap');
    t.same(await queue.list('n:a', 0, 10), [
      { queue: 'n:a', number: 1, data: { n: 1 }, enqueued: after(), state: 'pending', attempts: 0, due: after() },
      { queue: 'n:a', number: 2, data: { n: 2 }, enqueued: after(), state: 'pending', attempts: 0, due: after() },
      { queue: 'n:a', number: 3, data: [3], enqueued: after(1), state: 'pending', attempts: 0, due: after(5000) },
    ], 'the data as given, due at the transaction instant unless given');
    t.same(await queue.status('n:a'), { last: 3, pending: 3, done: 0, failed: 0 });
    t.same(await queue.status('n:none'), { last: 0, pending: 0, done: 0, failed: 0 });
  });

  await t.test('concurrent enqueues are numbered without gaps or repeats', async (t) => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.transact([enqueue('n:c', i)], after())));
    t.same(
      results.map(([r]) => (r.kind === 'enqueued' ? r.number : 0)).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    t.equal((await queue.status('n:c')).last, 20);
  });

  await t.test('list pages through a queue by number', async (t) => {
    const numbers = async (from: number) => (await queue.list('n:c', from, 7)).map((item) => item.number);
    t.same(await numbers(0), [1, 2, 3, 4, 5, 6, 7]);
    t.same(await numbers(7), [8, 9, 10, 11, 12, 13, 14]);
    t.same(await numbers(14), [15, 16, 17, 18, 19, 20]);
    t.same(await numbers(20), []);
  });

  await t.test('claim leases only the head of each queue, when it is due, of the queues named by the prefix', async (t) => {
    await store.transact([enqueue('h:1', 'first'), enqueue('h:1', 'second'), enqueue('h:2', 'later', after(20_000))], after());
    t.same(itemKeys(await queue.claim('w1', after(), 30_000, 10, 'h:')), ['h:1#1'], 'not the item behind the head, nor a head not yet due');
    t.same(await queue.claim('w2', after(), 30_000, 10, 'h:'), [], 'a head leased to another owner is not given');
    t.same(await queue.claim('w2', after(), 30_000, 10, 'zz:'), [], 'queues of another prefix are not looked at');
    t.equal(await queue.settle('h:1', 1, 'w1', after(10), { kind: 'done' }), true);
    t.same(itemKeys(await queue.claim('w2', after(10), 30_000, 10, 'h:')), ['h:1#2'], 'once the head is done, the next item is the head');
    t.same(itemKeys(await queue.claim('w3', after(20_000), 30_000, 10, 'h:')), ['h:2#1'], 'due now (h:1#2 is still leased to w2)');
    t.same(
      (await queue.list('h:1', 0, 10)).map((item) => item.state),
      ['done', 'pending'],
    );
  });

  await t.test('a head settled for retry blocks the later items of its queue until it is due again', async (t) => {
    await store.transact([enqueue('r:1', 1), enqueue('r:1', 2)], after());
    t.same(itemKeys(await queue.claim('w1', after(), 30_000, 10, 'r:')), ['r:1#1']);
    t.equal(await queue.settle('r:1', 1, 'w1', after(1), { kind: 'retry', due: after(10_000), error: 'HTTP 503' }), true);
    const [retried] = await queue.list('r:1', 0, 1);
    t.match(retried, { state: 'pending', attempts: 1, due: after(10_000), error: 'HTTP 503' });
    t.same(await queue.claim('w1', after(5_000), 30_000, 10, 'r:'), [], 'nothing before it is due: the item behind waits');
    const [again] = await queue.claim('w2', after(10_000), 30_000, 10, 'r:');
    t.match(again, { queue: 'r:1', number: 1, attempts: 1 }, 'the same head once due, to any owner');
  });

  await t.test('claims by several owners at once never overlap', async (t) => {
    await store.transact(
      Array.from({ length: 40 }, (_, i) => [enqueue(`o:${i}`, 1), enqueue(`o:${i}`, 2)]).flat(),
      after(),
    );
    const claims = await Promise.all(['a', 'b', 'c', 'd'].map((owner) => queue.claim(owner, after(), 30_000, 25, 'o:')));
    const all = claims.flatMap(itemKeys);
    t.equal(all.length, 40, 'every head once');
    t.equal(new Set(all).size, 40, 'no item held by two owners');
    t.ok(all.every((key) => key.endsWith('#1')), 'heads only');
    t.ok(claims.every((claim) => claim.length <= 25), 'at most limit each');
  });

  await t.test("a lease that expired can be claimed by another owner, and the first owner's late settle is refused", async (t) => {
    await store.transact([enqueue('e:1', 'x'), enqueue('e:2', 'y')], after());
    t.same(itemKeys(await queue.claim('w1', after(), 1000, 1, 'e:1')), ['e:1#1']);
    t.same(await queue.claim('w2', after(999), 1000, 1, 'e:1'), [], 'not while the lease runs');
    t.same(itemKeys(await queue.claim('w2', after(1000), 1000, 1, 'e:1')), ['e:1#1'], 'once it expired');
    t.equal(await queue.settle('e:1', 1, 'w1', after(1100), { kind: 'done' }), false, 'the first owner lost it');
    t.equal(await queue.settle('e:1', 1, 'w1', after(1100), { kind: 'failed', error: 'late' }), false);
    t.match((await queue.list('e:1', 0, 1))[0], { state: 'pending', attempts: 0 }, 'nothing changed');
    t.equal(await queue.settle('e:1', 1, 'w2', after(1100), { kind: 'done' }), true, 'the holder settles');
    t.same(itemKeys(await queue.claim('w1', after(), 1000, 1, 'e:2')), ['e:2#1']);
    t.equal(await queue.settle('e:2', 1, 'w1', after(1000), { kind: 'done' }), false, 'an expired lease, even unclaimed since, settles nothing');
    t.equal(await queue.settle('e:2', 1, 'w9', after(10), { kind: 'done' }), false, 'nor does an owner that never held it');
    t.equal((await queue.list('e:2', 0, 1))[0].state, 'pending');
  });

  await t.test('a failed head stalls its queue until resume(); status counts each state', async (t) => {
    await store.transact([enqueue('f:1', 1), enqueue('f:1', 2), enqueue('f:2', 1)], after());
    t.same(itemKeys(await queue.claim('w1', after(), 30_000, 10, 'f:')), ['f:1#1', 'f:2#1']);
    t.equal(await queue.settle('f:1', 1, 'w1', after(1), { kind: 'failed', error: 'HTTP 410' }), true);
    t.equal(await queue.settle('f:2', 1, 'w1', after(1), { kind: 'done' }), true);
    t.match((await queue.list('f:1', 0, 1))[0], { state: 'failed', attempts: 1, error: 'HTTP 410' });
    t.same(await queue.claim('w1', after(60_000), 30_000, 10, 'f:'), [], 'stalled: neither the failed head nor the item behind it');
    t.same(await queue.status('f:1'), { last: 2, pending: 1, done: 0, failed: 1 });
    t.same(await queue.status('f:2'), { last: 1, pending: 0, done: 1, failed: 0 });
    t.equal(await queue.resume('f:1', after(60_000)), 1);
    t.equal(await queue.resume('f:1', after(60_000)), 0, 'nothing left to resume');
    t.equal(await queue.resume('f:2', after(60_000)), 0, 'a done item is not resumed');
    const [resumed] = await queue.claim('w2', after(60_000), 30_000, 10, 'f:');
    t.match(resumed, { queue: 'f:1', number: 1, state: 'pending', attempts: 1, due: after(60_000) });
  });

  await afterReopen(t, under, 'items, their states and leases outlive close', async (t, reopen) => {
    await store.transact([enqueue('d:1', { kept: true }), enqueue('d:1', 2)], after());
    t.same(itemKeys(await queue.claim('w1', after(), 60_000, 10, 'd:')), ['d:1#1']);
    const before = await queue.list('d:1', 0, 10);
    const again = await reopen();
    t.same(await again.queue.list('d:1', 0, 10), before);
    t.same(await again.queue.status('n:a'), { last: 3, pending: 3, done: 0, failed: 0 });
    t.same(await again.queue.claim('w2', after(1), 60_000, 10, 'd:'), [], 'the lease is kept');
    t.equal(await again.queue.settle('d:1', 1, 'w1', after(2), { kind: 'done' }), true, 'and its holder settles');
    const [next] = await again.transact([enqueue('d:1', 3)], after(3));
    t.same(next, { kind: 'enqueued', queue: 'd:1', number: 3 }, 'numbering goes on');
  });
}

async function leases(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;

  await t.test('a lease is taken when free, renewed by its owner, refused to others until it expires', async (t) => {
    t.equal(await store.lease('job', 'p1', after(), 1000), true, 'free');
    t.equal(await store.lease('job', 'p2', after(500), 1000), false, 'held by p1');
    t.equal(await store.lease('job', 'p1', after(500), 1000), true, 'renewed, until 1500');
    t.equal(await store.lease('job', 'p2', after(1000), 1000), false, 'the renewal counts');
    t.equal(await store.lease('job', 'p2', after(1500), 1000), true, 'expired: taken by another');
    t.equal(await store.lease('job', 'p1', after(1600), 1000), false, 'its former owner is refused');
    t.equal(await store.lease('other job', 'p1', after(1600), 1000), true, 'leases are independent');
  });

  await t.test('of owners racing for a free lease, exactly one gets it', async (t) => {
    const taken = await Promise.all(Array.from({ length: 10 }, (_, i) => store.lease('race', `p${i}`, after(), 1000)));
    t.equal(taken.filter(Boolean).length, 1);
  });

  await afterReopen(t, under, 'a lease outlives close', async (t, reopen) => {
    await store.lease('kept', 'p1', after(), 60_000);
    const again = await reopen();
    t.equal(await again.lease('kept', 'p2', after(1000), 1000), false);
    t.equal(await again.lease('kept', 'p1', after(1000), 1000), true);
  });
}

async function history(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  const times = Array.from({ length: 8 }, (_, i) => `2026-03-01T00:00:0${i}.000Z`);
  await store.transact([create({ resourceType: 'Patient', id: 'h1', gender: 'male' }, { creator: 'client:h' })], times[0]);
  await store.transact([create({ resourceType: 'Observation', id: 'h-obs', status: 'final', code: { text: 'x' } } as Observation & { id: string })], times[1]);
  await store.transact([update({ resourceType: 'Patient', id: 'h1', gender: 'female' })], times[2]);
  await store.transact([create({ resourceType: 'Patient', id: 'h2', gender: 'male' })], times[3]);
  await store.transact([remove('Patient', 'h1')], times[4]);
  await store.transact([update({ resourceType: 'Patient', id: 'h2', gender: 'other' })], times[5]);
  const versions = (page: { versions: Version[] }) => page.versions.map((v) => `${v.type}/${v.id}/${v.versionId}`);

  await t.test('instance history: newest first, with tombstones, the total and the creator', async (t) => {
    const page = await store.history({ level: 'instance', type: 'Patient', id: 'h1' }, { count: 10 });
    t.same(versions(page), ['Patient/h1/3', 'Patient/h1/2', 'Patient/h1/1']);
    t.equal(page.total, 3);
    t.equal(page.next, undefined, 'one page');
    t.equal(page.versions[0].deleted, true);
    t.equal(page.versions[0].resource, undefined);
    t.same(
      page.versions.map((v) => v.lastUpdated),
      [times[4], times[2], times[0]],
    );
    t.equal(page.versions[2].creator, 'client:h');
    t.equal((await store.history({ level: 'instance', type: 'Patient', id: 'nobody' }, { count: 10 })).versions.length, 0, 'an unknown resource has no history');
  });

  await t.test('type history: the versions of that type only', async (t) => {
    t.same(versions(await store.history({ level: 'type', type: 'Patient' }, { count: 10 })), ['Patient/h2/2', 'Patient/h1/3', 'Patient/h2/1', 'Patient/h1/2', 'Patient/h1/1']);
  });

  await t.test('system history: every version of every type', async (t) => {
    t.same(versions(await store.history({ level: 'system' }, { count: 10 })), ['Patient/h2/2', 'Patient/h1/3', 'Patient/h2/1', 'Patient/h1/2', 'Observation/h-obs/1', 'Patient/h1/1']);
  });

  await t.test('history pages follow their cursors to the last page, which has none', async (t) => {
    const seen: string[] = [];
    let page = await store.history({ level: 'system' }, { count: 2 });
    seen.push(...versions(page));
    while (page.next) {
      page = await store.history({ level: 'system' }, { count: 2, cursor: page.next });
      seen.push(...versions(page));
    }
    t.same(seen, ['Patient/h2/2', 'Patient/h1/3', 'Patient/h2/1', 'Patient/h1/2', 'Observation/h-obs/1', 'Patient/h1/1']);
    const instance = await store.history({ level: 'instance', type: 'Patient', id: 'h1' }, { count: 2 });
    t.equal(instance.total, 3, 'the instance total counts every page');
    const rest = await store.history({ level: 'instance', type: 'Patient', id: 'h1' }, { count: 2, cursor: instance.next! });
    t.same(versions(rest), ['Patient/h1/1']);
    t.equal(rest.next, undefined);
  });

  await t.test('since keeps the versions updated at or after the instant', async (t) => {
    t.same(versions(await store.history({ level: 'type', type: 'Patient' }, { count: 10, since: times[3] })), ['Patient/h2/2', 'Patient/h1/3', 'Patient/h2/1']);
    t.same(versions(await store.history({ level: 'system' }, { count: 10, since: times[6] })), []);
  });

  await t.test('a restriction keeps every version of the resources whose current version it matches', async (t) => {
    const page = await store.history({ level: 'type', type: 'Patient' }, { count: 10, restriction: plan('Patient', 'gender=other') });
    t.same(versions(page), ['Patient/h2/2', 'Patient/h2/1'], 'h2 is "other" now, so its first version is kept; h1 is deleted');
    t.same(versions(await store.history({ level: 'system' }, { count: 10, restriction: plan('Patient', 'gender=male') })), [], 'nothing current matches');
  });

  await t.test('a cursor the engine did not give is refused with a RangeError', async (t) => {
    await t.rejects(store.history({ level: 'system' }, { count: 2, cursor: '!!not a cursor' }), RangeError);
  });
}

// None of the types Carnet serves has a number parameter in R4: the contract defines one, so that
// number entries and conditions are checked too (in this test process only).
addSearchParameters([
  {
    resourceType: 'SearchParameter',
    url: 'urn:carnet:contract:Observation-value-number',
    name: 'value-number',
    status: 'active',
    description: 'The value of a quantity result, as a number (a test parameter)',
    code: 'value-number',
    base: ['Observation'],
    type: 'number',
    expression: 'Observation.value.ofType(Quantity).value',
  },
]);

/** The search world: three patients (and a deleted one), two practitioners, four observations. */
async function searchWorld(store: Store): Promise<void> {
  const at = clock('2026-04-01T00:00:00.000Z');
  const patients: (Patient & { id: string })[] = [
    {
      resourceType: 'Patient',
      id: 'p1',
      gender: 'male',
      birthDate: '1974-12-25',
      name: [{ family: 'Chalmers', given: ['Peter'] }],
      meta: { profile: ['http://example.org/fhir/StructureDefinition/special'] },
      identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: '12345', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] } }],
      generalPractitioner: [{ reference: 'Practitioner/gp1' }],
    },
    { resourceType: 'Patient', id: 'p2', gender: 'female', birthDate: '1990-01-01', name: [{ family: 'Châtelain' }], generalPractitioner: [{ reference: 'Practitioner/gp2' }] },
    { resourceType: 'Patient', id: 'p3', gender: 'female', birthDate: '2001-06', name: [{ family: 'Windsor' }] },
    { resourceType: 'Patient', id: 'p4', gender: 'male', birthDate: '1950-01-01', name: [{ family: 'Gone' }] },
  ];
  const practitioners: (Practitioner & { id: string })[] = [
    { resourceType: 'Practitioner', id: 'gp1', name: [{ family: 'House' }] },
    { resourceType: 'Practitioner', id: 'gp2', name: [{ family: 'Grey' }] },
  ];
  const loinc = (code: string, display?: string) => ({ coding: [{ system: 'http://loinc.org', code }], ...(display ? { text: display } : {}) });
  const ucum = (value: number, code: string) => ({ value, unit: code, system: 'http://unitsofmeasure.org', code });
  const observations: (Observation & { id: string })[] = [
    {
      resourceType: 'Observation',
      id: 'o1',
      status: 'final',
      code: loinc('8867-4', 'Heart rate'),
      subject: { reference: 'Patient/p1' },
      effectiveDateTime: '2024-01-10',
      valueQuantity: ucum(72, '/min'),
      component: [{ code: loinc('8480-6'), valueQuantity: ucum(120, 'mm[Hg]') }],
    },
    { resourceType: 'Observation', id: 'o2', status: 'preliminary', code: loinc('8867-4', 'Heart rate'), subject: { reference: 'Patient/p2' }, effectiveDateTime: '2024-03-01', valueQuantity: ucum(95, '/min') },
    { resourceType: 'Observation', id: 'o3', status: 'final', code: loinc('29463-7', 'Body weight'), subject: { reference: 'Patient/p1' }, effectiveDateTime: '2023-05-05', valueQuantity: ucum(80, 'kg') },
    { resourceType: 'Observation', id: 'o4', status: 'final', code: { text: 'elsewhere' }, subject: { reference: 'http://other.example/fhir/Patient/ext' } },
  ];
  await store.transact(patients.map((p) => create(p)), at());
  await store.transact(practitioners.map((p) => create(p)), at());
  await store.transact([create(observations[0], { creator: 'client:a' }), create(observations[1], { creator: 'client:b' }), create(observations[2]), create(observations[3])], at());
  await store.transact([remove('Patient', 'p4')], at());
}

async function search(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  await searchWorld(store);
  const matching = async (searched: SearchPlan) => sorted(ids((await store.search(searched, { count: 100 })).matches));
  const kinds: [string, SearchPlan, string[]][] = [
    ['token system|code', plan('Observation', 'code=http://loinc.org|8867-4'), ['o1', 'o2']],
    ['token code in any system', plan('Observation', 'code=29463-7'), ['o3']],
    ['token :not', plan('Observation', 'code:not=http://loinc.org|8867-4'), ['o3', 'o4']],
    ['token :text', plan('Observation', 'code:text=heart'), ['o1', 'o2']],
    ['token :of-type', plan('Patient', 'identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345'), ['p1']],
    ['string starts with, folded', plan('Patient', 'family=chat'), ['p2']],
    ['string :exact', plan('Patient', 'family:exact=Chalmers'), ['p1']],
    ['string :exact is case-sensitive', plan('Patient', 'family:exact=chalmers'), []],
    ['string :contains', plan('Patient', 'family:contains=ndso'), ['p3']],
    ['date eq (a day)', plan('Patient', 'birthdate=1974-12-25'), ['p1']],
    ['date ge (a year)', plan('Patient', 'birthdate=ge1990'), ['p2', 'p3']],
    ['date lt', plan('Patient', 'birthdate=lt1990-01-01'), ['p1']],
    ['date of a dateTime', plan('Observation', 'date=2024'), ['o1', 'o2']],
    ['number eq', plan('Observation', 'value-number=80'), ['o3']],
    ['number gt', plan('Observation', 'value-number=gt90'), ['o2']],
    ['number le', plan('Observation', 'value-number=le80'), ['o1', 'o3']],
    ['quantity with system and code', plan('Observation', 'value-quantity=gt80|http://unitsofmeasure.org|/min'), ['o2']],
    ['quantity with a code only', plan('Observation', 'value-quantity=80||kg'), ['o3']],
    ['quantity value only', plan('Observation', 'value-quantity=lt100'), ['o1', 'o2', 'o3']],
    ['reference Type/id', plan('Observation', 'subject=Patient/p1'), ['o1', 'o3']],
    ['reference :Type', plan('Observation', 'subject:Patient=p2'), ['o2']],
    ['reference by absolute URL', plan('Observation', 'subject=http://other.example/fhir/Patient/ext'), ['o4']],
    ['uri exact', plan('Patient', '_profile=http://example.org/fhir/StructureDefinition/special'), ['p1']],
    ['uri :below', plan('Patient', '_profile:below=http://example.org/fhir'), ['p1']],
    ['uri :above', plan('Patient', '_profile:above=http://example.org/fhir/StructureDefinition/special/v2'), ['p1']],
    ['missing=true', plan('Patient', 'identifier:missing=true'), ['p2', 'p3']],
    ['missing=false', plan('Patient', 'identifier:missing=false'), ['p1']],
    ['composite: both components in one value', plan('Observation', 'code-value-quantity=http://loinc.org|8867-4$gt80'), ['o2']],
    ['composite: components of different values do not combine', plan('Observation', 'code-value-quantity=http://loinc.org|8867-4$120'), []],
    ['composite of a component', plan('Observation', 'component-code-value-quantity=http://loinc.org|8480-6$120'), ['o1']],
    ['chain', plan('Observation', 'subject:Patient.family=chalmers'), ['o1', 'o3']],
    ['chain on a token', plan('Observation', 'subject:Patient.gender=female'), ['o2']],
    ['_has', plan('Patient', '_has:Observation:subject:code=http://loinc.org|29463-7'), ['p1']],
    ['_id', plan('Patient', '_id=p1,p3,p4'), ['p1', 'p3']],
    ['several conditions (and)', plan('Observation', 'subject=Patient/p1&status=final&code=8867-4'), ['o1']],
    ['several values (or)', plan('Patient', 'gender=male,other'), ['p1']],
    ['several types', plan(['Patient', 'Practitioner'], 'name=h'), ['gp1']],
    ['no condition', plan('Patient'), ['p1', 'p2', 'p3']],
  ];
  await t.test('each kind of condition the plan has', async (t) => {
    for (const [title, searched, expected] of kinds) t.same(await matching(searched), expected, title);
  });

  await t.test('the conditions policy/ makes: per-row chain, any, all, not, types, creator, id not', async (t) => {
    const chain = plan('Observation', 'subject:Patient.family=chalmers').where[0] as Extract<Condition, { kind: 'chain' }>;
    t.same(await matching({ types: ['Observation'], where: [{ ...chain, perRow: true }], sort: [] }), ['o1', 'o3'], 'chain checked per row');
    const [male] = plan('Patient', 'gender=male').where;
    const [windsor] = plan('Patient', 'family=windsor').where;
    const [female] = plan('Patient', 'gender=female').where;
    const [young] = plan('Patient', 'birthdate=ge2000').where;
    t.same(await matching({ types: ['Patient'], where: [{ kind: 'any', of: [male, windsor] }], sort: [] }), ['p1', 'p3'], 'any');
    t.same(await matching({ types: ['Patient'], where: [{ kind: 'all', of: [female, young] }], sort: [] }), ['p3'], 'all');
    t.same(await matching({ types: ['Patient'], where: [{ kind: 'not', condition: female }], sort: [] }), ['p1'], 'not');
    t.same(await matching({ types: ['Patient'], where: [{ kind: 'any', of: [] }], sort: [] }), [], 'any of nothing');
    t.same(await matching({ types: ['Patient', 'Practitioner'], where: [{ kind: 'types', types: ['Practitioner'] }], sort: [] }), ['gp1', 'gp2'], 'types');
    t.same(await matching({ types: ['Observation'], where: [{ kind: 'creator', creators: ['client:a'] }], sort: [] }), ['o1'], 'creator');
    t.same(await matching({ types: ['Patient'], where: [{ kind: 'id', ids: ['p1'], not: true }], sort: [] }), ['p2', 'p3'], 'id not');
    t.same(
      await matching({ types: ['Observation'], where: [{ kind: 'any', of: [{ kind: 'creator', creators: ['client:b'] }, { kind: 'not', condition: plan('Observation', 'status=final').where[0] }] }], sort: [] }),
      ['o2'],
      'nested',
    );
  });

  await t.test('matches carry their version, content and creator', async (t) => {
    const [o1] = (await store.search(plan('Observation', '_id=o1'), { count: 10 })).matches;
    t.match(o1, { type: 'Observation', id: 'o1', versionId: 1, deleted: false, creator: 'client:a' });
    t.equal(o1.resource?.meta?.versionId, '1');
  });

  await t.test('sort: by a parameter either way, by _id, by _lastUpdated', async (t) => {
    const order = async (type: string, query: string) => ids((await store.search(plan(type, query), { count: 100 })).matches);
    t.same(await order('Patient', '_sort=birthdate'), ['p1', 'p2', 'p3']);
    t.same(await order('Patient', '_sort=-birthdate'), ['p3', 'p2', 'p1']);
    t.same(await order('Observation', 'code=8867-4,29463-7&_sort=-date'), ['o2', 'o1', 'o3']);
    t.same(await order('Patient', '_sort=-_id'), ['p3', 'p2', 'p1']);
    t.same(await order('Observation', 'status=final&_sort=_id'), ['o1', 'o3', 'o4']);
    t.same(await order('Patient', '_sort=-_lastUpdated,_id'), ['p1', 'p2', 'p3'], 'written in one transaction: by _id within it');
    t.same(await order('Patient', '_sort=gender,-birthdate'), ['p3', 'p2', 'p1'], 'two keys');
  });

  await t.test('paging: the cursors give every match once, each page counts the total', async (t) => {
    for (const query of ['_sort=_id', '_sort=-_lastUpdated,-_id', '']) {
      const paged = await allPages(store, plan(['Patient', 'Practitioner'], query), 2);
      t.same(sorted(paged.ids), ['gp1', 'gp2', 'p1', 'p2', 'p3'], `${query || 'no sort'}: every match`);
      t.equal(paged.ids.length, 5, `${query || 'no sort'}: once`);
      t.equal(paged.pages, 3);
      t.same(paged.totals, [5, 5, 5]);
    }
    const ordered = await allPages(store, plan('Patient', '_sort=-birthdate'), 1);
    t.same(ordered.ids, ['p3', 'p2', 'p1'], 'in the sort order across pages');
    const last = await store.search(plan('Patient'), { count: 3 });
    t.equal(last.next, undefined, 'a page that holds the last match has no next');
    t.equal(last.total, undefined, 'no total unless asked');
    const counted = await store.search(plan('Patient'), { count: 0, total: true });
    t.same(counted.matches, []);
    t.equal(counted.total, 3, 'count 0 answers the total alone');
    t.equal(counted.next, undefined);
  });

  await t.test('a search cursor the engine did not give is refused with a RangeError', async (t) => {
    await t.rejects(store.search(plan('Patient'), { count: 1, cursor: 'not-a-cursor' }), RangeError);
  });
}

/** AuditEvents as audit/ writes them: their entries computed above the port. */
const auditEntry = (id: string, patient: string, at: string, agent = 'gp'): JournalEntry => {
  const resource = auditRecord(id, patient, at, agent);
  return { resource, index: indexEntries(resource), creator: 'carnet:audit' };
};
const deferredOf = (entry: JournalEntry) => journalOps([entry])[0];
const byPatient = (patient: string) => plan('AuditEvent', `patient=Patient/${patient}`);
const hasReadBy = (agent: string) => plan('Patient', `_has:AuditEvent:entity:agent=Practitioner/${agent}`);

async function deferredIndex(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  const at = clock('2026-05-01T00:00:00.000Z');
  const deferred = (entry: JournalEntry) => journalOps([entry])[0];

  await t.test('a deferred create is found by the next search, _has included, also among concurrent ones', async (t) => {
    for (let i = 0; i < 10; i++) {
      await store.transact([deferred(auditEntry(`d-${i}`, 'dp1', at()))], at());
      t.equal((await store.search(byPatient('dp1'), { count: 100, total: true })).total, i + 1, `record ${i} is found at once`);
    }
    await store.transact([create({ resourceType: 'Patient', id: 'dp1' })], at());
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.transact([deferred(auditEntry(`d-x${i}`, 'dp1', at(), 'dgp'))], at())));
    const [records, has] = await Promise.all([store.search(byPatient('dp1'), { count: 100, total: true }), store.search(hasReadBy('dgp'), { count: 10 })]);
    t.equal(records.total, 30, 'every record of concurrent transactions is found');
    t.same(ids(has.matches), ['dp1'], '_has:AuditEvent sees them');
    t.same(
      ids((await store.history({ level: 'type', type: 'AuditEvent' }, { count: 100, restriction: plan('AuditEvent', 'agent=Practitioner/dgp') })).versions).length,
      20,
      'a restricted history sees them',
    );
  });

  await t.test('a conditional create sees deferred records', async (t) => {
    await store.transact([deferred(auditEntry('dc-1', 'dp5', at()))], at());
    const resource = auditRecord('dc-2', 'dp5', at());
    const [result] = await store.transact([create(resource, { ifNoneExist: byPatient('dp5') })], at());
    t.equal(result.kind, 'existing');
  });

  await t.test('a rolled-back deferred create leaves nothing to find', async (t) => {
    await store.transact([create(auditRecord('d-taken', 'dp3', at()))], at());
    await conflict(store.transact([deferred(auditEntry('d-rolled-back', 'dp3', at())), create(auditRecord('d-taken', 'dp3', at()))], at()));
    t.equal((await store.read('AuditEvent', 'd-rolled-back')).kind, 'missing');
    t.equal((await store.search(byPatient('dp3'), { count: 10, total: true })).total, 1, 'only the committed record is found');
  });

  await t.test('an update or a delete before the deferred entries are written wins over them', async (t) => {
    await store.transact([deferred(auditEntry('d-changed', 'dp3', at())), deferred(auditEntry('d-gone', 'dp3', at()))], at());
    const moved = auditRecord('d-changed', 'dp4', at());
    await store.transact([update(moved), remove('AuditEvent', 'd-gone')], at());
    t.same(ids((await store.search(byPatient('dp3'), { count: 10 })).matches), ['d-taken'], 'neither the replaced nor the deleted version is found');
    t.same(ids((await store.search(byPatient('dp4'), { count: 10 })).matches), ['d-changed'], 'the update is');
  });

  await t.test('the entries written are the ones given', async (t) => {
    await store.transact([{ kind: 'create', resource: { resourceType: 'Patient', id: 'deferred-given' }, index: [given('deferred-only')], deferIndex: true }], at());
    t.same(ids((await store.search(plan('Patient', 'identifier=urn:contract|deferred-only'), { count: 10 })).matches), ['deferred-given']);
  });

  await afterReopen(t, under, 'deferred records are found after the store is closed and opened again', async (t, reopen) => {
    await store.transact([deferred(auditEntry('d-durable', 'dp6', at()))], at());
    const again = await reopen();
    t.equal((await again.search(byPatient('dp6'), { count: 10, total: true })).total, 1);
  });
}

async function journal(t: Test, under: StoreUnderTest): Promise<void> {
  const at = clock('2026-06-01T00:00:00.000Z');
  // An engine without journal() is checked through the fallback alone (its callers' only way).
  const ways: [string, (entries: JournalEntry[], when: string) => Promise<unknown>][] = [
    ...(under.store.journal ? [['journal()', (entries: JournalEntry[], when: string) => under.store.journal!(entries, when)] as [string, (entries: JournalEntry[], when: string) => Promise<unknown>]] : []),
    ['the fallback, transact(journalOps())', (entries, when) => under.store.transact(journalOps(entries), when)],
  ];
  if (!under.store.journal) t.comment(`${under.store.name} has no journal(): checked through the fallback alone`);
  for (const [way, write] of ways) {
    await t.test(`through ${way}, every kind of read finds the records once it resolves`, async (t) => {
      const store = under.store;
      const p = way.startsWith('journal') ? 'j' : 'f';
      await store.transact([create({ resourceType: 'Patient', id: `${p}p1` })], at());
      // Each check writes a new record first, so each runs before an engine could take it in at leisure.
      const when = at();
      await write([auditEntry(`${p}a1`, `${p}p1`, when)], when);
      const stored = found(await store.read('AuditEvent', `${p}a1`));
      t.match(stored, { versionId: 1, lastUpdated: when, creator: 'carnet:audit', deleted: false }, 'read: version 1 at the journal instant, creator kept');
      await write([auditEntry(`${p}a2`, `${p}p1`, at())], at());
      t.equal((await store.readVersion('AuditEvent', `${p}a2`, 1)).kind, 'found', 'vread');
      await write([auditEntry(`${p}a3`, `${p}p1`, at())], at());
      t.equal((await store.history({ level: 'instance', type: 'AuditEvent', id: `${p}a3` }, { count: 10 })).versions.length, 1, 'instance history');
      await write([auditEntry(`${p}a4`, `${p}p1`, at())], at());
      t.ok(ids((await store.history({ level: 'type', type: 'AuditEvent' }, { count: 100 })).versions).includes(`${p}a4`), 'type history');
      await write([auditEntry(`${p}a5`, `${p}p1`, at())], at());
      t.ok(ids((await store.history({ level: 'system' }, { count: 100 })).versions).includes(`${p}a5`), 'system history');
      await write([auditEntry(`${p}a6`, `${p}p1`, at(), `${p}agent6`)], at());
      t.same(ids((await store.history({ level: 'type', type: 'AuditEvent' }, { count: 10, restriction: plan('AuditEvent', `agent=Practitioner/${p}agent6`) })).versions), [`${p}a6`], 'restricted history');
      await write([auditEntry(`${p}a7`, `${p}p1`, at()), auditEntry(`${p}b7`, `${p}p2`, at())], at());
      t.equal((await store.search(byPatient(`${p}p1`), { count: 10, total: true })).total, 7, 'a search on their index entries');
      await write([auditEntry(`${p}a8`, `${p}p1`, at(), `${p}other`)], at());
      t.same(ids((await store.search(hasReadBy(`${p}other`), { count: 10 })).matches), [`${p}p1`], '_has through the records');
      await write([auditEntry(`${p}a9`, `${p}p1`, at(), `${p}chained`)], at());
      t.equal((await store.search(plan('AuditEvent', `agent=Practitioner/${p}chained&patient:Patient._id=${p}p1`), { count: 10, total: true })).total, 1, 'a chain from the records');
      await write([auditEntry(`${p}a10`, `${p}p9`, at())], at());
      const [existing] = await store.transact([create(auditRecord(`${p}dup`, `${p}p9`, at()), { ifNoneExist: byPatient(`${p}p9`) })], at());
      t.equal(existing.kind, 'existing', 'a conditional create matches a record');
      await write([auditEntry(`${p}a11`, `${p}p1`, at())], at());
      const [updated] = await store.transact([update(auditRecord(`${p}a11`, `${p}p8`, at()), { expectedVersion: 1 })], at());
      t.equal(updated.kind, 'updated', 'an update finds the record');
      await write([auditEntry(`${p}a12`, `${p}p1`, at())], at());
      const [deleted] = await store.transact([remove('AuditEvent', `${p}a12`, 1)], at());
      t.equal(deleted.kind, 'deleted', 'a delete finds the record');
    });

    await t.test(`through ${way}, the index entries written are the ones given`, async (t) => {
      const p = way.startsWith('journal') ? 'j' : 'f';
      await write([{ resource: { resourceType: 'Patient', id: `${p}given` }, index: [given(`${p}only`)] }], at());
      t.same(ids((await under.store.search(plan('Patient', `identifier=urn:contract|${p}only`), { count: 10 })).matches), [`${p}given`]);
    });

    await t.test(`through ${way}, many records in concurrent writes are all found`, async (t) => {
      const p = way.startsWith('journal') ? 'j' : 'f';
      await Promise.all(Array.from({ length: 20 }, (_, i) => write([auditEntry(`${p}m${i}`, `${p}many`, at()), auditEntry(`${p}n${i}`, `${p}many`, at())], at())));
      t.equal((await under.store.search(byPatient(`${p}many`), { count: 0, total: true })).total, 40);
    });

    await afterReopen(t, under, `through ${way}, records written just before close are there after the store opens again`, async (t, reopen) => {
      const p = way.startsWith('journal') ? 'j' : 'f';
      for (let i = 0; i < 5; i++) await write([auditEntry(`${p}c${i}`, `${p}closing`, at())], at());
      const again = await reopen();
      t.equal((await again.search(byPatient(`${p}closing`), { count: 0, total: true })).total, 5);
      t.equal((await again.read('AuditEvent', `${p}c4`)).kind, 'found');
    });
  }
}

async function clients(t: Test, under: StoreUnderTest): Promise<void> {
  const registry = under.store.clients;
  const AT = '2026-07-01T00:00:00.000Z';
  await t.test('registered clients are read back whole and listed by name', async (t) => {
    await registry.register({ id: 'lab', name: 'Lab', kind: 'system', jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] }, scopes: 'system/*.rs', certified: true, organizationId: 'org-1', created: AT });
    await registry.register({ id: 'app', name: 'App', kind: 'patient-app', jwks: { keys: [] }, scopes: 'patient/*.rs', certified: false, created: AT });
    t.same(await registry.get('lab'), { id: 'lab', name: 'Lab', kind: 'system', jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] }, scopes: 'system/*.rs', certified: true, organizationId: 'org-1', created: AT });
    t.same(await registry.get('app'), { id: 'app', name: 'App', kind: 'patient-app', jwks: { keys: [] }, scopes: 'patient/*.rs', certified: false, created: AT });
    t.equal(await registry.get('nobody'), undefined);
    t.same(
      (await registry.list()).map((c) => c.id),
      ['app', 'lab'],
    );
  });

  await t.test('registering a taken id is refused', async (t) => {
    await t.rejects(registry.register({ id: 'lab', name: 'Other', kind: 'system', jwks: { keys: [] }, scopes: '', certified: false, created: AT }));
    t.equal((await registry.get('lab'))?.name, 'Lab');
  });

  await t.test('an assertion is consumed once: its replay is refused, other ones and other clients are not', async (t) => {
    const later = Date.now() + 60_000;
    t.equal(await registry.consumeAssertion('lab', 'jti-1', later), true);
    t.equal(await registry.consumeAssertion('lab', 'jti-1', later), false, 'a replay');
    t.equal(await registry.consumeAssertion('lab', 'jti-2', later), true);
    t.equal(await registry.consumeAssertion('app', 'jti-1', later), true, 'the same jti of another client');
  });

  await t.test('an expired assertion is forgotten', async (t) => {
    const past = Date.now() - 1000;
    t.equal(await registry.consumeAssertion('lab', 'jti-old', past), true);
    t.equal(await registry.consumeAssertion('lab', 'jti-old', past), true);
  });

  await afterReopen(t, under, 'a replay is refused after the store opens again', async (t, reopen) => {
    const again = await reopen();
    t.equal(await again.clients.consumeAssertion('lab', 'jti-1', Date.now() + 60_000), false);
    t.equal((await again.clients.get('lab'))?.name, 'Lab');
  });
}

async function blobs(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), crypto.randomBytes(300_000), Buffer.from('\n%%EOF\n')]);
  async function* chunked(data: Buffer, size: number): AsyncIterable<Uint8Array> {
    for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
  }

  await t.test('put answers the SHA-256 key, the size and the base64 SHA-1; get gives the bytes back', async (t) => {
    const info = await store.blobs.put(pdf);
    t.same(info, { key: crypto.createHash('sha256').update(pdf).digest('hex'), size: pdf.length, sha1: crypto.createHash('sha1').update(pdf).digest('base64') });
    t.same(await store.blobs.stat(info.key), info, 'stat');
    t.ok((await bytesOf(await store.blobs.get(info.key))).equals(pdf), 'the bytes come back whole');
  });

  await t.test('content addressing: a stream of chunks and the same bytes again are the same blob', async (t) => {
    const whole = await store.blobs.put(pdf);
    t.same(await store.blobs.put(chunked(pdf, 65_536)), whole);
    t.same(await store.blobs.put(Readable.from([pdf.subarray(0, 1000), pdf.subarray(1000)])), whole);
  });

  await t.test('get with a range streams exactly those bytes (inclusive end)', async (t) => {
    const { key } = await store.blobs.put(pdf);
    t.ok((await bytesOf(await store.blobs.get(key, { start: 0, end: 8 }))).equals(pdf.subarray(0, 9)));
    t.ok((await bytesOf(await store.blobs.get(key, { start: 1000, end: 1999 }))).equals(pdf.subarray(1000, 2000)));
    t.equal((await bytesOf(await store.blobs.get(key, { start: pdf.length - 7, end: pdf.length - 1 }))).toString(), '\n%%EOF\n');
  });

  await t.test('unknown and malformed keys answer undefined', async (t) => {
    const absent = crypto.createHash('sha256').update('never stored').digest('hex');
    t.equal(await store.blobs.stat(absent), undefined);
    t.equal(await store.blobs.get(absent), undefined);
    t.equal(await store.blobs.get('../../carnet.sqlite'), undefined);
    t.equal(await store.blobs.stat('ABC'), undefined);
  });

  await t.test('an empty blob is a blob', async (t) => {
    const info = await store.blobs.put(Buffer.alloc(0));
    t.equal(info.size, 0);
    t.equal((await bytesOf(await store.blobs.get(info.key))).length, 0);
  });

  await t.test('a source that fails midway stores nothing', async (t) => {
    const secret = crypto.randomBytes(1000);
    async function* failing(): AsyncIterable<Uint8Array> {
      yield secret;
      throw new Error('client went away');
    }
    await t.rejects(store.blobs.put(failing()), /client went away/);
    t.equal(await store.blobs.stat(crypto.createHash('sha256').update(secret).digest('hex')), undefined);
  });

  await afterReopen(t, under, 'blobs are there after the store opens again', async (t, reopen) => {
    const info = await under.store.blobs.put(Buffer.from('durable'));
    const again = await reopen();
    t.same(await again.blobs.stat(info.key), info);
    t.equal((await bytesOf(await again.blobs.get(info.key))).toString(), 'durable');
  });
}

async function erasure(t: Test, under: StoreUnderTest): Promise<void> {
  const store = under.store;
  const at = clock('2026-11-01T00:00:00.000Z');

  await t.test('expunge erases every version, the index entries and the feed entries of a resource, and nothing else', async (t) => {
    await store.transact([create({ resourceType: 'Patient', id: 'ex-1', gender: 'female' }), create({ resourceType: 'Patient', id: 'ex-2', gender: 'female' })], at());
    await store.transact([{ kind: 'update', resource: { resourceType: 'Patient', id: 'ex-1', gender: 'male' }, index: indexEntries({ resourceType: 'Patient', id: 'ex-1', gender: 'male' }) }], at());
    await store.transact([deferredOf(auditEntry('ex-r1', 'ex-1', at()))], at());
    const results = await store.transact([{ kind: 'expunge', type: 'Patient', id: 'ex-1' }, { kind: 'expunge', type: 'AuditEvent', id: 'ex-r1' }, { kind: 'expunge', type: 'Patient', id: 'ex-none' }], at());
    t.same(results, [{ kind: 'erased', found: true }, { kind: 'erased', found: true }, { kind: 'erased', found: false }]);
    t.same(await store.read('Patient', 'ex-1'), { kind: 'missing' }, 'no current version, no tombstone');
    t.same(await store.readVersion('Patient', 'ex-1', 1), { kind: 'missing' }, 'no older version');
    t.same((await store.history({ level: 'instance', type: 'Patient', id: 'ex-1' }, { count: 10 })).versions, [], 'no history');
    t.same(ids((await store.search(plan('Patient', 'gender=male,female'), { count: 10 })).matches), ['ex-2'], 'no index entry left');
    t.same((await store.search(byPatient('ex-1'), { count: 10 })).matches, [], 'the deferred record and its entries are gone');
    const left = (await feed(store)).filter((c) => c.version.id === 'ex-1' || c.version.id === 'ex-r1');
    t.same(left, [], 'nothing of it in the change feed');
    t.equal((await store.read('Patient', 'ex-2')).kind, 'found', 'the other resource stays');
  });

  await t.test('redact rewrites the current version in place: same version and feed position, new content and entries, older versions gone', async (t) => {
    const before = { resourceType: 'Patient', id: 'rd-1', gender: 'female', name: [{ family: 'Erased' }] } as Stored;
    await store.transact([create(before)], at());
    const dated = { ...(before as Patient), birthDate: '1990-01-01' } as Stored;
    await store.transact([{ kind: 'update', resource: dated, index: indexEntries(dated) }], at());
    const current = await store.read('Patient', 'rd-1');
    const seq = (await feed(store)).filter((c) => c.version.id === 'rd-1').at(-1)?.seq;
    const after = { resourceType: 'Patient', id: 'rd-1', gender: 'female', birthDate: '1990-01-01' } as Stored;
    t.same(await store.transact([{ kind: 'redact', resource: after, index: indexEntries(after) }], at()), [{ kind: 'erased', found: true }]);
    const read = await store.read('Patient', 'rd-1');
    t.equal(read.kind, 'found');
    if (read.kind !== 'found' || current.kind !== 'found') return;
    t.equal(read.version.versionId, current.version.versionId, 'same version');
    t.equal(read.version.lastUpdated, current.version.lastUpdated, 'same lastUpdated');
    t.same((read.version.resource as Patient).name, undefined, 'the content is the new one');
    t.same(await store.readVersion('Patient', 'rd-1', 1), { kind: 'missing' }, 'older versions are gone');
    t.same((await store.search(plan('Patient', 'family=Erased'), { count: 10 })).matches, [], 'old index entries are gone');
    t.same(ids((await store.search(plan('Patient', 'birthdate=1990-01-01'), { count: 10 })).matches), ['rd-1'], 'new entries are there');
    const changes = (await feed(store)).filter((c) => c.version.id === 'rd-1');
    t.same(changes.map((c) => c.seq), [seq], 'one place in the feed, the one it had');
    t.same((changes[0].version.resource as Patient).name, undefined, 'the feed gives the new content');
    t.same(await store.transact([{ kind: 'redact', resource: { resourceType: 'Patient', id: 'rd-none' }, index: [] }], at()), [{ kind: 'erased', found: false }]);
  });

  await t.test('unstamp forgets a stamp; drop-queue forgets a queue and its numbering', async (t) => {
    await store.transact([{ kind: 'stamp', key: 'er:s' }, { kind: 'stamp', key: 'er:s' }, { kind: 'enqueue', queue: 'er/q', data: { a: 1 } }, { kind: 'enqueue', queue: 'er/q2', data: { b: 1 } }], at());
    t.same(await store.transact([{ kind: 'unstamp', key: 'er:s' }, { kind: 'drop-queue', queue: 'er/q' }], at()), [{ kind: 'erased', found: true }, { kind: 'erased', found: true }]);
    t.same(await store.stamps(['er:s']), [0]);
    t.same(await store.queue.list('er/q', 0, 10), []);
    t.equal((await store.queue.status('er/q')).last, 0, 'numbering starts again');
    t.equal((await store.queue.list('er/q2', 0, 10)).length, 1, 'other queues stay');
  });

  await t.test('blobs.remove erases a blob; a second remove, or an unknown key, is false', async (t) => {
    const info = await store.blobs.put(Buffer.from(`erased ${crypto.randomUUID()}`));
    t.equal(await store.blobs.remove(info.key), true);
    t.equal(await store.blobs.stat(info.key), undefined);
    t.equal(await store.blobs.get(info.key), undefined);
    t.equal(await store.blobs.remove(info.key), false);
    t.equal(await store.blobs.remove('not-a-key'), false);
  });
}

async function close(t: Test, under: StoreUnderTest): Promise<void> {
  await afterReopen(t, under, 'everything acknowledged before close is there after the store opens again', async (t, reopen) => {
    const at = clock('2026-08-01T00:00:00.000Z');
    const store = under.store;
    await store.transact([create({ resourceType: 'Patient', id: 'kept', name: [{ family: 'Kept' }] })], at());
    await store.transact([update({ resourceType: 'Patient', id: 'kept', name: [{ family: 'Kept' }], gender: 'female' })], at());
    const again = await reopen();
    t.equal(found(await again.read('Patient', 'kept')).versionId, 2);
    t.equal((await again.search(plan('Patient', 'family=kept&gender=female'), { count: 10, total: true })).total, 1);
    t.equal((await again.history({ level: 'instance', type: 'Patient', id: 'kept' }, { count: 10 })).total, 2);
    const [next] = await again.transact([update({ resourceType: 'Patient', id: 'kept', name: [{ family: 'Kept' }], gender: 'male' }, { expectedVersion: 2 })], at());
    t.equal(next.kind === 'updated' && next.version.versionId, 3, 'and the reopened store writes on');
  });

  await t.test('close resolves after writes, deferred entries and journaled records', async (t) => {
    const at = clock('2026-08-02T00:00:00.000Z');
    const store = under.store;
    await store.transact([create({ resourceType: 'Patient', id: 'last' }), journalOps([auditEntry('last-deferred', 'last', at())])[0]], at());
    if (store.journal) await store.journal([auditEntry('last-record', 'last', at())], at());
    await t.resolves(under.dispose());
  });
}
