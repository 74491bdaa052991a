// The writer thread of a file database (store/sqlite/writer-thread): transactions run on the
// worker's connection and are visible to the main connection once they resolve; conflicts come back
// as the same WriteConflict; a failing transaction writes nothing; close() waits for what was sent.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Patient } from '@medplum/fhirtypes';
import { WriteConflict, type WriteOp } from '../../src/store/port.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { indexEntries } from '../../src/search/extract.js';

const AT = '2026-11-27T14:00:00.000Z';

function patient(id: string, family: string): WriteOp {
  const resource = { resourceType: 'Patient', id, name: [{ family }] } as Patient & { id: string };
  return { kind: 'create', resource, index: indexEntries(resource) };
}

function fresh(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-writer-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('a write is readable on the main connection as soon as it resolves', async (t) => {
  const store = new SqliteStore({ dataDir: fresh(t) });
  t.teardown(() => store.close());
  for (let i = 0; i < 50; i++) {
    const [result] = await store.transact([patient(`p${i}`, `Family${i}`)], AT);
    t.equal(result.kind, 'created');
    const read = await store.read('Patient', `p${i}`);
    t.equal(read.kind, 'found', `p${i} is read back at once`);
  }
  const found = await store.search({ types: ['Patient'], where: [{ kind: 'string', param: 'family', match: 'exact', values: ['Family7'] }], sort: [] }, { count: 10, total: true });
  t.equal(found.total, 1, 'the index rows are committed with the resource');
});

t.test('conflicts come back as WriteConflict with their reason and target', async (t) => {
  const store = new SqliteStore({ dataDir: fresh(t) });
  t.teardown(() => store.close());
  await store.transact([patient('dup', 'One')], AT);
  const taken = await store.transact([patient('dup', 'Two')], AT).catch((e: unknown) => e);
  t.ok(taken instanceof WriteConflict, 'a WriteConflict');
  t.equal((taken as WriteConflict).reason, 'already-exists');
  t.equal((taken as WriteConflict).target, 'Patient/dup');
  const resource = { resourceType: 'Patient', id: 'dup', name: [{ family: 'Three' }] } as Patient & { id: string };
  const stale = await store.transact([{ kind: 'update', resource, index: indexEntries(resource), expectedVersion: 7 }], AT).catch((e: unknown) => e);
  t.equal((stale as WriteConflict).reason, 'version-mismatch');
});

t.test('a transaction that fails part-way writes none of its operations', async (t) => {
  const store = new SqliteStore({ dataDir: fresh(t) });
  t.teardown(() => store.close());
  await store.transact([patient('taken', 'One')], AT);
  await t.rejects(store.transact([patient('new-1', 'A'), patient('taken', 'B')], AT));
  t.equal((await store.read('Patient', 'new-1')).kind, 'missing', 'the first operation was rolled back');
});

t.test('conditional create checks its criteria in the writer transaction', async (t) => {
  const store = new SqliteStore({ dataDir: fresh(t) });
  t.teardown(() => store.close());
  await store.transact([patient('c1', 'Conditional')], AT);
  const again = { ...patient('c2', 'Conditional'), ifNoneExist: { types: ['Patient'], where: [{ kind: 'string' as const, param: 'family', match: 'exact' as const, values: ['Conditional'] }], sort: [] } } as WriteOp;
  const [result] = await store.transact([again], AT);
  t.equal(result.kind, 'existing');
  t.equal(result.kind === 'existing' ? result.version.id : undefined, 'c1');
});

t.test('concurrent transactions all commit, in the order they were sent', async (t) => {
  const store = new SqliteStore({ dataDir: fresh(t) });
  t.teardown(() => store.close());
  await store.transact([patient('v', 'V0')], AT);
  const updates = Array.from({ length: 40 }, (_, i) => {
    const resource = { resourceType: 'Patient', id: 'v', name: [{ family: `V${i + 1}` }] } as Patient & { id: string };
    return store.transact([{ kind: 'update', resource, index: indexEntries(resource), expectedVersion: i + 1 }], AT);
  });
  const results = await Promise.all(updates);
  t.same(results.map(([r]) => (r.kind === 'updated' ? r.version.versionId : r.kind)), Array.from({ length: 40 }, (_, i) => i + 2));
});

t.test('close waits for the transactions already sent; a reopened store finds them', async (t) => {
  const dir = fresh(t);
  const store = new SqliteStore({ dataDir: dir });
  const sent = Array.from({ length: 20 }, (_, i) => store.transact([patient(`late-${i}`, 'Late')], AT));
  await store.close();
  t.equal((await Promise.all(sent)).length, 20, 'every transaction resolved');
  await t.rejects(store.transact([patient('after', 'Closed')], AT), 'a closed store refuses writes');
  const reopened = new SqliteStore({ dataDir: dir });
  t.teardown(() => reopened.close());
  const found = await reopened.search({ types: ['Patient'], where: [{ kind: 'string', param: 'family', match: 'exact', values: ['Late'] }], sort: [] }, { count: 50, total: true });
  t.equal(found.total, 20);
});
