// Searches reuse prepared statements by SQL text (store/sqlite/index.ts): the same statement with
// other parameters finds other resources, and statements dropped from the cache are prepared again.
import t from 'tap';
import type { Patient } from '@medplum/fhirtypes';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { indexEntries } from '../../src/search/extract.js';
import type { SearchPlan } from '../../src/search/types.js';

const byFamily = (...families: string[]): SearchPlan => ({ types: ['Patient'], where: [{ kind: 'string', param: 'family', match: 'exact', values: families }], sort: [] });

t.test('one search shape with different values finds each its own patients, before and after the cache turns over', async (t) => {
  const store = new SqliteStore({ dataDir: ':memory:' });
  t.teardown(() => store.close());
  const families = Array.from({ length: 30 }, (_, i) => `Family${i}`);
  await store.transact(
    families.flatMap((family, i) => [0, 1].map((n) => {
      const resource = { resourceType: 'Patient', id: `p${i}-${n}`, name: [{ family }] } as Patient & { id: string };
      return { kind: 'create' as const, resource, index: indexEntries(resource) };
    })),
    '2026-11-27T14:00:00.000Z',
  );
  const ids = async (plan: SearchPlan) => (await store.search(plan, { count: 100, total: true })).matches.map((m) => m.id).sort();
  for (let i = 0; i < families.length; i++) t.same(await ids(byFamily(families[i])), [`p${i}-0`, `p${i}-1`], `${families[i]}`);
  // 600 different statements (one to 600 ids): more than the cache keeps.
  for (let n = 1; n <= 600; n++) {
    const found = await ids({ types: ['Patient'], where: [{ kind: 'id', ids: Array.from({ length: n }, (_, i) => `p${i % 30}-${Math.floor(i / 30) % 2}`) }], sort: [] });
    if (n === 600) t.equal(found.length, 60, 'the largest statement finds every patient');
  }
  t.same(await ids(byFamily('Family7', 'Family3')), ['p3-0', 'p3-1', 'p7-0', 'p7-1'], 'an evicted statement works again');
  t.same(await ids(byFamily('Family0')), ['p0-0', 'p0-1']);
});
