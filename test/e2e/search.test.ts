// Search on _id and identifier (the full search engine comes later): searchset Bundles, paging.
import t from 'tap';
import type { Bundle } from '@medplum/fhirtypes';
import { bearer, BASE, fhir, json, testServer } from '../helpers.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

for (let i = 0; i < 5; i++) {
  await fhir(app, 'PUT', `Patient/s${i}`, { resourceType: 'Patient', id: `s${i}`, identifier: [{ system: 'urn:test', value: 'shared' }] });
}

t.test('a search answers a searchset with total, matches and a self link', async (t) => {
  const res = json<Bundle>(await fhir(app, 'GET', 'Patient?identifier=urn:test|shared&_count=10'));
  t.equal(res.type, 'searchset');
  t.equal(res.total, 5);
  t.equal(res.entry?.length, 5);
  t.ok(res.entry?.every((e) => e.search?.mode === 'match' && e.fullUrl === `${BASE}/Patient/${e.resource?.id}`));
  t.equal(res.link?.[0].relation, 'self');
});

t.test('next links page through every match exactly once, even when a match is added between pages', async (t) => {
  const seen: string[] = [];
  let url: string | undefined = '/fhir/Patient?identifier=urn:test|shared&_count=2';
  let pages = 0;
  while (url && pages < 10) {
    const page: Bundle = json(await fhir(app, 'GET', url));
    seen.push(...(page.entry?.map((e) => e.resource!.id!) ?? []));
    if (pages === 0) await fhir(app, 'PUT', 'Patient/s9', { resourceType: 'Patient', id: 's9', identifier: [{ system: 'urn:test', value: 'shared' }] });
    const next = page.link?.find((l) => l.relation === 'next')?.url;
    url = next?.slice(BASE.length - '/fhir'.length);
    pages++;
  }
  t.same(seen, ['s0', 's1', 's2', 's3', 's4', 's9']);
});

t.test('POST [type]/_search with a form body gives the same answer as GET', async (t) => {
  const get = json<Bundle>(await fhir(app, 'GET', 'Patient?identifier=urn:test|shared&_count=3'));
  const post = await app.inject({ method: 'POST', url: '/fhir/Patient/_search', headers: { ...bearer(app), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/fhir+json' }, payload: 'identifier=urn%3Atest%7Cshared&_count=3' });
  t.equal(post.statusCode, 200);
  t.same(json<Bundle>(post).entry?.map((e) => e.resource?.id), get.entry?.map((e) => e.resource?.id));
});

t.test('_count=0 answers only the total', async (t) => {
  const res = json<Bundle>(await fhir(app, 'GET', 'Patient?identifier=urn:test|shared&_count=0'));
  t.equal(res.total, 6);
  t.equal(res.entry, undefined, 'no empty entry array (not valid FHIR JSON)');
});

t.test('search modifiers not supported are refused naming the parameter', async (t) => {
  const res = await fhir(app, 'GET', 'Patient?identifier:in=http://example.org/vs');
  t.equal(res.statusCode, 400);
  t.match(json(res), { issue: [{ expression: ['identifier:in'] }] });
});
