// The SQL of a search (src/store/sqlite/compile.ts): anonymous parameters bound in text order (a
// named parameter costs SQLite a linear lookup, so that many of them cost time in their square),
// reference and token values as IN lists (an OR chain of more than 1,000 is refused by SQLite,
// and long ones of AND terms take long to plan), chains
// planned with one subquery per level (not 2^(n-1)), a turn of the event loop before the
// statements run, and a cursor of another search refused.
import t from 'tap';
import Database from 'better-sqlite3';
import type { Observation, Patient } from '@medplum/fhirtypes';
import { compileRestriction, compileSearch } from '../../src/store/sqlite/compile.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { DDL } from '../../src/store/sqlite/schema.js';
import { parseSearch } from '../../src/search/plan.js';
import { indexEntries } from '../../src/search/extract.js';
import type { ReferenceValue, SearchPlan, TokenValue } from '../../src/search/types.js';

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
  t.same(select.params, ['birthdate', 'Patient', 'Patient', 'family', 'du%', 'ma%', 'Patient', 'Patient', 'gender', 'female', 'Patient', 'a', 'b', 'c', 1, 1, 'a', 10]);
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

t.test('thousands of reference values, of several types, bare ids and URLs, find what each of them finds', async (t) => {
  const store = new SqliteStore({ dataDir: ':memory:' });
  t.teardown(() => store.close());
  const observation = (id: string, reference: string) => ({ resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, subject: { reference } }) as Observation & { id: string };
  const resources = [observation('o1', 'Patient/p1'), observation('o2', 'Group/p1'), observation('o3', 'http://elsewhere.example/fhir/Patient/p9'), observation('o4', 'Patient/p2')];
  await store.transact(resources.map((resource) => ({ kind: 'create' as const, resource, index: indexEntries(resource) })), '2026-11-27T14:00:00.000Z');
  const many = Array.from({ length: 3000 }, (_, i) => ({ targetType: 'Patient', targetId: `x${i}` }));
  const found = async (values: ReferenceValue[]) => (await store.search({ types: ['Observation'], where: [{ kind: 'reference', param: 'subject', values }], sort: [] }, { count: 10 })).matches.map((m) => m.id).sort();
  t.same(await found([...many, { targetType: 'Patient', targetId: 'p1' }]), ['o1']);
  t.same(await found([...many, { targetId: 'p1' }]), ['o1', 'o2'], 'a bare id, any type');
  t.same(await found([...many, { targetType: 'Group', targetId: 'p1' }, { targetType: 'Patient', targetId: 'p2' }]), ['o2', 'o4']);
  t.same(await found([...many, { url: 'http://elsewhere.example/fhir/Patient/p9', targetType: 'Patient', targetId: 'p9' }]), ['o3'], 'a URL');
  t.same(await found(many), []);
});

t.test('token values of several systems, of none, of any, and systems alone, find what each of them finds', async (t) => {
  const store = new SqliteStore({ dataDir: ':memory:' });
  t.teardown(() => store.close());
  const observation = (id: string, coding: { system?: string; code: string }) => ({ resourceType: 'Observation', id, status: 'final', code: { coding: [coding] } }) as Observation & { id: string };
  const resources = [observation('o1', { system: 'urn:a', code: '1' }), observation('o2', { system: 'urn:b', code: '1' }), observation('o3', { code: '1' }), observation('o4', { system: 'urn:c', code: '2' })];
  await store.transact(resources.map((resource) => ({ kind: 'create' as const, resource, index: indexEntries(resource) })), '2026-11-27T14:00:00.000Z');
  const many: TokenValue[] = Array.from({ length: 3000 }, (_, i) => ({ system: 'urn:a', code: `x${i}` }));
  const found = async (values: TokenValue[], not = false) => (await store.search({ types: ['Observation'], where: [{ kind: 'token', param: 'code', values, ...(not ? { not } : {}) }], sort: [] }, { count: 10 })).matches.map((m) => m.id).sort();
  t.same(await found([...many, { system: 'urn:a', code: '1' }]), ['o1']);
  t.same(await found([...many, { system: 'urn:b', code: '1' }, { system: 'urn:c', code: '2' }]), ['o2', 'o4']);
  t.same(await found([...many, { system: null, code: '1' }]), ['o3'], '|code: no system');
  t.same(await found([...many, { code: '1' }]), ['o1', 'o2', 'o3'], 'code: any system');
  t.same(await found([...many, { system: 'urn:c' }]), ['o4'], 'system|: any code');
  t.same(await found([{ system: 'urn:a', code: '1' }, { code: '2' }], true), ['o2', 'o3'], ':not');
  t.same(await found(many), []);
});

t.test('chains and _has are planned with one subquery per level', async (t) => {
  const db = new Database(':memory:');
  t.teardown(() => db.close());
  db.exec(DDL);
  const subqueries = (type: string, name: string) => {
    const { count } = compileSearch(parseSearch([type], [[name, 'x']], false).plan);
    return db.prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${count.sql}`).all(count.params).filter((row) => /^LIST SUBQUERY/.test(row.detail)).length;
  };
  t.equal(subqueries('DocumentReference', 'patient.general-practitioner:Organization.partof.name'), 4, 'a chain 4 levels deep (was 13)');
  t.equal(subqueries('Patient', '_has:DocumentReference:subject:_has:AuditEvent:entity:_has:AuditEvent:entity:subtype'), 4, '_has 4 levels deep');
});

t.test('a search gives the event loop a turn before its statements (they run on it)', async (t) => {
  const store = new SqliteStore({ dataDir: ':memory:' });
  t.teardown(() => store.close());
  let turned = false;
  setImmediate(() => (turned = true));
  await store.search({ types: ['Patient'], where: [], sort: [] }, { count: 1 });
  t.ok(turned, 'what was waiting for the event loop ran first');
});

t.test('a cursor with other sort keys than the search is refused', async (t) => {
  t.throws(() => compileSearch(plan, ['a'], 10), RangeError);
  t.throws(() => compileSearch(plan, [1, 'a', 'b'], 10), RangeError);
  t.doesNotThrow(() => compileSearch(plan, [1, 'a'], 10));
});
