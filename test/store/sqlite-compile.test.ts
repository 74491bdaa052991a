// The SQL of a search (src/store/sqlite/compile.ts): anonymous parameters bound in text order (a
// named parameter costs SQLite a linear lookup, so that many of them cost time in their square),
// the same answer as before for a plan whose values repeat a bound value, and a cursor of another
// search refused.
import t from 'tap';
import type { Patient } from '@medplum/fhirtypes';
import { compileRestriction, compileSearch } from '../../src/store/sqlite/compile.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { indexEntries } from '../../src/search/extract.js';
import type { SearchPlan } from '../../src/search/types.js';

const plan: SearchPlan = {
  types: ['Patient'],
  where: [
    { kind: 'string', param: 'family', match: 'starts', values: ['du', 'ma'] },
    { kind: 'token', param: 'gender', values: [{ code: 'female' }] },
    { kind: 'id', ids: ['a', 'b', 'c'] },
  ],
  sort: [{ param: 'birthdate', descending: true }],
};

t.test('statements carry anonymous parameters, one value per "?" in text order', async (t) => {
  for (const sql of [compileSearch(plan, [1, 'a'], 10).select, compileSearch(plan).count, compileRestriction(plan)]) {
    t.notMatch(sql.sql, /@p\d/, 'no named parameter');
    t.equal(sql.params.length, sql.sql.split('?').length - 1, 'a value for each "?"');
  }
  const { select } = compileSearch(plan, [1, 'a'], 10);
  // In text order: the sort key's parameter, the types, each condition (a single-type one names
  // its type twice), the cursor's keys and the limit.
  t.same(select.params, ['birthdate', 'Patient', 'Patient', 'Patient', 'family', 'du%', 'ma%', 'Patient', 'Patient', 'gender', 'female', 'a', 'b', 'c', 1, 1, 'a', 10]);
});

t.test('a search with thousands of values (beyond what the parser lets through) runs', async (t) => {
  const store = new SqliteStore({ dataDir: ':memory:' });
  t.teardown(() => store.close());
  const resource = { resourceType: 'Patient', id: 'p1', name: [{ family: 'Dupont' }] } as Patient & { id: string };
  await store.transact([{ kind: 'create', resource, index: indexEntries(resource) }], '2026-11-27T14:00:00.000Z');
  const ids = [...Array.from({ length: 20_000 }, (_, i) => `x${i}`), 'p1'];
  const page = await store.search({ types: ['Patient'], where: [{ kind: 'id', ids }], sort: [] }, { count: 10, total: true });
  t.same(page.matches.map((m) => m.id), ['p1']);
  t.equal(page.total, 1);
});

t.test('a cursor with other sort keys than the search is refused', async (t) => {
  t.throws(() => compileSearch(plan, ['a'], 10), RangeError);
  t.throws(() => compileSearch(plan, [1, 'a', 'b'], 10), RangeError);
  t.doesNotThrow(() => compileSearch(plan, [1, 'a'], 10));
});
