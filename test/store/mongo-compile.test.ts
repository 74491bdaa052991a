// The MongoDB document mapping and the search compiler as plain values (the mingo shadow checks
// their answers against the embedded engine on every search of the search suites).
import t from 'tap';
import type { Observation, Resource } from '@medplum/fhirtypes';
import { indexEntries } from '../../src/search/extract.js';
import type { SearchPlan } from '../../src/search/types.js';
import { compileFilter, type Filter } from '../../src/store/mongo/compile.js';
import { compileSearch } from '../../src/store/mongo/page.js';
import { currentDocument, indexFields, patientKey } from '../../src/store/mongo/documents.js';
import { FIXTURE, LOINC } from '../fixtures/search-fixture.js';
import { mingoFind } from './mingo-shadow.js';

const byId = (id: string) => FIXTURE.find((r) => r.id === id)! as Resource & { id: string };
const AT = '2026-01-01T00:00:00.000Z';
const docOf = (resource: Resource & { id: string }) => {
  const index = indexEntries(resource);
  return currentDocument({ type: resource.resourceType, id: resource.id, versionId: 1, lastUpdated: AT, deleted: false, resource }, index, undefined, patientKey(resource.resourceType, resource.id, index));
};
const noTargets = async () => [];

t.test('the patient key is the compartment patient, the Patient itself, or the resource for the directory', async (t) => {
  const of = (id: string) => {
    const r = byId(id);
    return patientKey(r.resourceType, r.id, indexEntries(r));
  };
  t.equal(of('obs-weight-1'), 'Patient/p-helene');
  t.equal(of('doc-new'), 'Patient/p-helene');
  t.equal(of('p-henri'), 'Patient/p-henri');
  t.equal(of('dr-martin'), 'Practitioner/dr-martin');
  const orphan: Observation & { id: string } = { resourceType: 'Observation', id: 'o', status: 'final', code: { text: 'x' } };
  t.equal(patientKey('Observation', 'o', indexEntries(orphan)), 'Observation/o', 'no patient: its own key');
});

t.test('index entries become one array per kind, without null fields; composite components are grouped per value', async (t) => {
  const fields = indexFields(indexEntries(byId('obs-bp')));
  const code = fields.tok?.find((e) => e.p === 'code');
  t.same(code, { p: 'code', s: LOINC, c: '85354-9', t: 'blood pressure panel' });
  const values = fields.cmp?.filter((c) => c.p === 'component-code-value-quantity') ?? [];
  t.equal(values.length, 2, 'one per component');
  t.ok(values.every((v) => v.c.some((e) => e.p === 'component-code-value-quantity#0') && v.c.some((e) => e.p === 'component-code-value-quantity#1')));
  t.notOk(Object.values(fields).flat().some((e) => 'g' in e), 'the group number is the structure, not a field');
});

t.test('a tombstone keeps its envelope and patient key, no content and no entries', async (t) => {
  const doc = currentDocument({ type: 'Observation', id: 'x', versionId: 3, lastUpdated: AT, deleted: true }, [], 'client:a', 'Patient/p');
  t.same(doc, { _id: 'Observation/x', type: 'Observation', id: 'x', version: 3, lastUpdated: AT, deleted: true, patient: 'Patient/p', creator: 'client:a' });
});

t.test('a leaf condition is one $elemMatch on its array, parameter and value in the same entry', async (t) => {
  const plan: SearchPlan = { types: ['Observation'], where: [{ kind: 'token', param: 'code', values: [{ system: LOINC, code: '29463-7' }] }], sort: [] };
  t.same(await compileFilter(plan, noTargets), { type: { $in: ['Observation'] }, deleted: false, tok: { $elemMatch: { p: 'code', c: '29463-7', s: LOINC } } });
});

t.test('a chain names the targets its lookup found, an empty lookup matches nothing', async (t) => {
  const plan: SearchPlan = { types: ['Observation'], where: [{ kind: 'chain', param: 'subject', targetTypes: ['Patient'], where: [{ kind: 'string', param: 'family', match: 'starts', values: ['dupont'] }] }], sort: [] };
  const asked: Filter[] = [];
  const filter = await compileFilter(plan, async (f) => {
    asked.push(f);
    return [{ type: 'Patient', id: 'p-helene' }];
  });
  t.same(asked, [{ type: { $in: ['Patient'] }, deleted: false, str: { $elemMatch: { p: 'family', v: { $regex: '^dupont' } } } }]);
  t.same(filter.ref, { $elemMatch: { p: 'subject', tt: 'Patient', ti: { $in: ['p-helene'] } } });
  const docs = FIXTURE.map((r) => docOf(r as Resource & { id: string }));
  t.same(mingoFind(docs, filter).map((d) => d.id).sort(), ['obs-bp', 'obs-weight-1']);
  t.same(mingoFind(docs, await compileFilter(plan, noTargets)), []);
});

t.test('a regular expression treats the searched text literally', async (t) => {
  const plan: SearchPlan = { types: ['Patient'], where: [{ kind: 'string', param: 'family', match: 'contains', values: ['a.b(c'] }], sort: [] };
  t.same((await compileFilter(plan, noTargets)).str, { $elemMatch: { p: 'family', v: { $regex: 'a\\.b\\(c' } } });
});

t.test('a sort on a parameter is a computed key; the id breaks ties and names the cursor position', async (t) => {
  const plan: SearchPlan = { types: ['Patient'], where: [], sort: [{ param: 'birthdate', descending: true }] };
  const compiled = await compileSearch(plan, noTargets, [1e12, 'p-anna'], 5);
  t.same(compiled.pipeline.map((stage) => Object.keys(stage)[0]), ['$match', '$addFields', '$match', '$sort', '$limit', '$project']);
  t.same(compiled.pipeline[3], { $sort: { k0: -1, id: 1 } });
  t.same(compiled.pipeline[2], { $match: { $or: [{ k0: { $lt: 1e12 } }, { k0: 1e12, id: { $gt: 'p-anna' } }] } });
  t.same(compiled.cursorOf({ k0: 5, id: 'x' }), [5, 'x']);
  await t.rejects(compileSearch(plan, noTargets, ['only-one'], 5), RangeError, 'a cursor of another search is refused');
});

t.test("a search naming patients through the patient key's element says so, for the shard key", async (t) => {
  const subject = (type: string, param: string): SearchPlan => ({ types: [type], where: [{ kind: 'reference', param, values: [{ targetType: 'Patient', targetId: 'p-helene' }] }], sort: [] });
  const filter = await compileFilter(subject('Observation', 'subject'), noTargets);
  t.same(filter.patient, { $in: ['Patient/p-helene'] });
  const docs = FIXTURE.map((r) => docOf(r as Resource & { id: string }));
  t.same(mingoFind(docs, filter).map((d) => d.id).sort(), ['obs-bp', 'obs-weight-1']);
  t.same((await compileFilter({ types: ['Patient'], where: [{ kind: 'id', ids: ['p-anna'] }], sort: [] }, noTargets)).patient, { $in: ['Patient/p-anna'] });
  t.equal((await compileFilter(subject('Appointment', 'actor'), noTargets)).patient, undefined, 'Appointment.actor holds several references');
  t.equal((await compileFilter(subject('Observation', 'performer'), noTargets)).patient, undefined, 'not the element of the key');
  const untyped: SearchPlan = { types: ['Observation'], where: [{ kind: 'reference', param: 'subject', values: [{ targetId: 'p-helene' }] }], sort: [] };
  t.equal((await compileFilter(untyped, noTargets)).patient, undefined, 'an id that may be a Group');
});
