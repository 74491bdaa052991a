// _total (R4 search 3.1.1.5.6) through the real server: accurate counts every match, estimate (the
// default) counts up to TOTAL_ESTIMATE_CAP and leaves the total out beyond, none counts nothing;
// `_count=0` counts exactly. Totals never count what the caller may not see.
import t from 'tap';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { fhir, json, testServer } from '../helpers.js';
import { indexEntries } from '../../src/search/extract.js';
import { TOTAL_ESTIMATE_CAP } from '../../src/fhir/search.js';

const PATIENTS = TOTAL_ESTIMATE_CAP + 5;

t.test('_total=accurate, estimate, none and the default', async (t) => {
  const server = await testServer();
  t.teardown(() => server.close());
  const patients: (Resource & { id: string })[] = Array.from({ length: PATIENTS }, (_, i) => ({ resourceType: 'Patient', id: `tot-${i}`, gender: i < 3 ? 'female' : 'male' }));
  await server.store.transact(patients.map((resource) => ({ kind: 'create', resource, index: indexEntries(resource), creator: 'client:loader' })), new Date().toISOString());
  const headers = { authorization: `Bearer ${await server.token({ kind: 'system', client: 'loader' })}` };
  const total = async (query: string) => {
    const res = await fhir(server.app, 'GET', `Patient?${query}`, undefined, headers);
    t.equal(res.statusCode, 200, query);
    return json<Bundle>(res).total;
  };

  t.equal(await total('_count=10&_total=accurate'), PATIENTS, 'accurate counts every match');
  t.equal(await total('_count=10&_total=estimate'), undefined, `estimate: more than ${TOTAL_ESTIMATE_CAP} matches, no total`);
  t.equal(await total('_count=10'), undefined, 'the default is the estimate');
  t.equal(await total('_count=10&gender=male&_total=estimate'), undefined, 'still more than the cap');
  t.equal(await total('_count=2&gender=female'), 3, 'under the cap the estimate is exact, over several pages');
  t.equal(await total('_count=2&gender=female&_total=estimate'), 3);
  t.equal(await total('_count=10&gender=female'), 3, 'a first page with every match');
  t.equal(await total('_count=10&_total=none'), undefined, 'none counts nothing');
  t.equal(await total('_count=10&gender=female&_total=none'), undefined, 'not even a small result');
  t.equal(await total('_count=0'), PATIENTS, '_count=0 counts exactly');
  t.equal(await total('_summary=count'), PATIENTS, '_summary=count counts exactly');
  const bad = await fhir(server.app, 'GET', 'Patient?_total=maybe', undefined, headers);
  t.equal(bad.statusCode, 400, 'an unknown mode is refused');
  t.equal(json(bad).resourceType, 'OperationOutcome');

  // The next page of an estimated search: counted again, from the store, with the same cap.
  const first = json<Bundle>(await fhir(server.app, 'GET', 'Patient?_count=2&gender=female', undefined, headers));
  const next = first.link?.find((l) => l.relation === 'next')?.url;
  t.ok(next, 'a next page');
  const second = json<Bundle>(await fhir(server.app, 'GET', new URL(next as string).pathname.replace(/^\/fhir\//, '') + new URL(next as string).search, undefined, headers));
  t.equal(second.total, 3, 'the next page carries the total too');
});

t.test('totals count only what the caller may see, in every mode', async (t) => {
  const server = await testServer();
  t.teardown(() => server.close());
  const write = async (resource: Resource & { id: string }) => {
    const res = await fhir(server.app, 'PUT', `${resource.resourceType}/${resource.id}`, resource, { authorization: `Bearer ${await server.token({ kind: 'system', client: 'lab' })}` });
    t.ok(res.statusCode < 300, `${resource.resourceType}/${resource.id}: ${res.statusCode}`);
  };
  await write({ resourceType: 'Patient', id: 'pt', generalPractitioner: [{ reference: 'Practitioner/gp' }] });
  await write({ resourceType: 'Patient', id: 'other' });
  for (let i = 0; i < 4; i++) {
    for (const patient of ['pt', 'other']) {
      await write({ resourceType: 'DocumentReference', id: `d-${patient}-${i}`, status: 'current', type: { coding: [{ system: 'http://loinc.org', code: '11502-2' }] }, subject: { reference: `Patient/${patient}` }, content: [{ attachment: { contentType: 'application/pdf' } }] });
    }
  }
  const gp = { authorization: `Bearer ${await server.token({ kind: 'practitioner', practitioner: 'gp', profession: '10' })}` };
  for (const mode of ['accurate', 'estimate']) {
    const bundle = json<Bundle>(await fhir(server.app, 'GET', `DocumentReference?_count=1&_total=${mode}`, undefined, gp));
    t.equal(bundle.total, 4, `${mode}: the GP's patient's documents only`);
  }
});
