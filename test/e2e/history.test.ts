// History at instance, type and system level: newest first, paged with a cursor that stays
// correct while new versions arrive.
import t from 'tap';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { BASE, fhir, json, testServer } from '../helpers.js';

const server = await testServer({ defaultPageSize: 3 });
t.teardown(() => server.close());
const { app } = server;

const put = (id: string, extra: Partial<Patient> = {}) => fhir(app, 'PUT', `Patient/${id}`, { resourceType: 'Patient', id, ...extra });

t.test('instance history lists every version, newest first, with request and response', async (t) => {
  await put('h1', { gender: 'male' });
  await put('h1', { gender: 'female' });
  await fhir(app, 'DELETE', 'Patient/h1');
  const res = await fhir(app, 'GET', 'Patient/h1/_history');
  t.equal(res.statusCode, 200);
  const body = json<Bundle<Patient>>(res);
  t.equal(body.type, 'history');
  t.equal(body.total, 3);
  t.same(body.entry?.map((e) => e.response?.etag), ['W/"3"', 'W/"2"', 'W/"1"']);
  t.same(body.entry?.map((e) => e.request?.method), ['DELETE', 'PUT', 'POST']);
  t.equal(body.entry?.[0].resource, undefined, 'a delete has no resource');
  t.equal(body.entry?.[1].resource?.gender, 'female');
  t.equal(body.entry?.[1].fullUrl, `${BASE}/Patient/h1`);
});

t.test('type history pages with next links that stay correct when new versions arrive', async (t) => {
  for (const id of ['o1', 'o2', 'o3', 'o4', 'o5']) {
    await fhir(app, 'PUT', `Organization/${id}`, { resourceType: 'Organization', id, name: id });
  }
  const first = json<Bundle>(await fhir(app, 'GET', 'Organization/_history'));
  t.same(first.entry?.map((e) => e.resource?.id), ['o5', 'o4', 'o3']);
  const next = first.link?.find((l) => l.relation === 'next')?.url;
  t.ok(next?.startsWith(`${BASE}/Organization/_history?`));
  // A write between two pages must not shift the second page.
  await fhir(app, 'PUT', 'Organization/o6', { resourceType: 'Organization', id: 'o6', name: 'o6' });
  const second = json<Bundle>(await fhir(app, 'GET', next!.slice(BASE.length - '/fhir'.length)));
  t.same(second.entry?.map((e) => e.resource?.id), ['o2', 'o1']);
  t.notOk(second.link?.some((l) => l.relation === 'next'), 'the last page has no next link');
});

t.test('system history covers every type', async (t) => {
  await put('h-live', { gender: 'other' });
  const res = json<Bundle>(await fhir(app, 'GET', '_history?_count=50'));
  const types = new Set(res.entry?.map((e) => e.resource?.resourceType ?? e.request?.url.split('/')[0]));
  t.ok(types.has('Patient') && types.has('Organization'));
});

t.test('_since keeps versions updated at or after the instant', async (t) => {
  const future = new Date(Date.now() + 3_600_000).toISOString();
  const res = json<Bundle>(await fhir(app, 'GET', `Organization/_history?_since=${encodeURIComponent(future)}`));
  t.equal(res.entry, undefined);
  const past = json<Bundle>(await fhir(app, 'GET', '_history?_since=2000-01-01&_count=2'));
  t.equal(past.entry?.length, 2);
});

t.test('bad history parameters answer 400 naming the parameter', async (t) => {
  for (const [query, name] of [['_count=-1', '_count'], ['_count=x', '_count'], ['_since=yesterday', '_since'], ['_cursor=%21%21', '_cursor'], ['_at=2020', '_at']]) {
    const res = await fhir(app, 'GET', `Patient/_history?${query}`);
    t.equal(res.statusCode, 400, query);
    t.match(json(res), { issue: [{ expression: [name] }] }, query);
  }
  t.equal((await fhir(app, 'GET', 'Patient/_history?_at=2020', undefined, { prefer: 'handling=lenient' })).statusCode, 200, 'lenient ignores unknown parameters');
});

t.test('history of an unknown instance is an empty Bundle', async (t) => {
  const res = json<Bundle>(await fhir(app, 'GET', 'Patient/unknown/_history'));
  t.equal(res.total, 0);
});
