// The mingo proof itself can fail: a shadow whose MongoDB documents disagree with the embedded
// engine, or a filter using an operator outside the allowed MongoDB set, fails the search.
import t from 'tap';
import type { Resource } from '@medplum/fhirtypes';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { indexEntries } from '../../src/search/extract.js';
import type { SearchPlan } from '../../src/search/types.js';
import { FIXTURE, LOINC } from '../fixtures/search-fixture.js';
import { assertSupported, MingoShadow, mingoFind, tally } from './mingo-shadow.js';

const AT = '2024-06-01T00:00:00.000Z';

async function shadowWithFixture(): Promise<MingoShadow> {
  const shadow = new MingoShadow(new SqliteStore({ dataDir: ':memory:' }));
  await shadow.transact(
    FIXTURE.map((resource) => ({ kind: 'create' as const, resource: resource as Resource & { id: string }, index: indexEntries(resource) })),
    AT,
  );
  return shadow;
}

const weights: SearchPlan = { types: ['Observation'], where: [{ kind: 'token', param: 'code', values: [{ system: LOINC, code: '29463-7' }] }], sort: [{ param: 'date', descending: true }] };

t.test('a search the MongoDB documents answer like SQLite passes and is counted', async (t) => {
  const shadow = await shadowWithFixture();
  t.teardown(() => shadow.close());
  const before = tally.checked;
  const page = await shadow.search(weights, { count: 1, total: true });
  t.same(page.matches.map((m) => m.id), ['obs-weight-2']);
  t.equal(page.total, 2);
  t.equal(tally.checked, before + 1);
});

t.test('a document that disagrees with the embedded engine makes the search throw', async (t) => {
  const shadow = await shadowWithFixture();
  t.teardown(() => shadow.close());
  // Deliberate mismatch: the MongoDB document of obs-weight-1 loses its code entries.
  const doc = shadow.docs.get('Observation/obs-weight-1')!;
  doc.tok = doc.tok?.filter((entry) => entry.p !== 'code');
  const mismatches = tally.mismatches;
  await t.rejects(shadow.search(weights, { count: 10 }), /MongoDB compiler mismatch/);
  t.equal(tally.mismatches, mismatches + 1);
  tally.mismatches = mismatches; // deliberate: not a compiler fault in the exit summary
});

t.test('a different order is a mismatch too', async (t) => {
  const shadow = await shadowWithFixture();
  t.teardown(() => shadow.close());
  const doc = shadow.docs.get('Observation/obs-weight-1')!;
  for (const entry of doc.dt ?? []) if (entry.p === 'date') entry.hi = Date.parse('2030-01-01');
  const mismatches = tally.mismatches;
  await t.rejects(shadow.search(weights, { count: 10 }), /MongoDB compiler mismatch/);
  tally.mismatches = mismatches;
});

t.test('an operator outside the MongoDB set the engine may use fails the check', async (t) => {
  t.throws(() => assertSupported({ $where: 'this.id == 1' }), /\$where/);
  t.throws(() => assertSupported([{ $match: { tok: { $elemMatch: { p: 'code', c: { $text: 'x' } } } } }], 'pipeline'), /\$text/);
  t.throws(() => mingoFind([], { id: { $jsonSchema: {} } }), /\$jsonSchema/);
  t.doesNotThrow(() => assertSupported({ $or: [{ id: { $in: ['a'] } }, { $nor: [{ 'ref.p': 'subject' }] }] }));
});
