// The writer thread of a file database (store/sqlite/writer-thread): concurrent transactions run
// on the worker's connection in the order they were sent; close() waits for what was sent. That
// writes are read back at once, conflicts, atomicity and conditional creates behave as the port
// says is the contract (contract.ts), which runs on the file database with its writer thread.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Patient } from '@medplum/fhirtypes';
import type { WriteOp } from '../../src/store/port.js';
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
