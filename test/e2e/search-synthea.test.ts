// Search over a real population (Synthea bulk export in test/fixtures/data/synthea): counts and
// pages the server answers must equal what a plain scan of the NDJSON files computes.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Bundle, Condition, DocumentReference, Immunization, Patient, Resource } from '@medplum/fhirtypes';
import { fhir, json, FIXTURE_DATA, testServer } from '../helpers.js';
import { normalizeString } from '../../src/search/normalize.js';

const DIR = path.join(FIXTURE_DATA, 'synthea');
const read = <T extends Resource>(type: string): T[] =>
  fs.readFileSync(path.join(DIR, `${type}.000.ndjson`), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as T);

const patients = read<Patient>('Patient');
const conditions = read<Condition>('Condition');
const immunizations = read<Immunization>('Immunization');
const documents = read<DocumentReference>('DocumentReference');

const server = await testServer({ maxPageSize: 2000 });
t.teardown(() => server.close());
const { app } = server;

// Loaded as batches of PUTs (ids kept), 200 entries at a time.
for (const resources of [patients, conditions, immunizations, documents] as Resource[][]) {
  for (let i = 0; i < resources.length; i += 200) {
    const entry = resources.slice(i, i + 200).map((resource) => ({ resource, request: { method: 'PUT' as const, url: `${resource.resourceType}/${resource.id}` } }));
    const res = await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'batch', entry });
    const failed = json<Bundle>(res).entry?.filter((e) => !e.response?.status.startsWith('201'));
    if (failed?.length) throw new Error(`load failed: ${JSON.stringify(failed[0])}`);
  }
}

const total = async (query: string) => json<Bundle>(await fhir(app, 'GET', `${query}&_summary=count`)).total;
const subjectOf = (r: { subject?: { reference?: string }; patient?: { reference?: string } }) => (r.subject ?? r.patient)?.reference;

t.test('Condition?patient= counts each patient\'s conditions', async (t) => {
  for (const patient of patients) {
    const expected = conditions.filter((c) => subjectOf(c) === `Patient/${patient.id}`).length;
    t.equal(await total(`Condition?patient=${patient.id}`), expected, `Patient/${patient.id}`);
  }
});

t.test('Condition?code= counts each SNOMED code', async (t) => {
  const codes = [...new Set(conditions.map((c) => c.code?.coding?.[0]?.code))].slice(0, 15);
  for (const code of codes) {
    const expected = conditions.filter((c) => c.code?.coding?.some((x) => x.system === 'http://snomed.info/sct' && x.code === code)).length;
    t.equal(await total(`Condition?code=http://snomed.info/sct|${code}`), expected, `code ${code}`);
  }
});

t.test('Immunization?date=ge... counts by instant, across time zones', async (t) => {
  for (const year of ['2010', '2015', '2019-06-01']) {
    const from = Date.parse(year.length === 4 ? `${year}-01-01T00:00:00Z` : `${year}T00:00:00Z`);
    const expected = immunizations.filter((i) => Date.parse(i.occurrenceDateTime!) + 999 >= from).length;
    t.equal(await total(`Immunization?date=ge${year}`), expected, year);
  }
});

t.test('Patient?family= matches normalised prefixes', async (t) => {
  for (const patient of patients) {
    const prefix = patient.name![0].family!.slice(0, 3);
    const expected = patients.filter((p) => p.name?.some((n) => normalizeString(n.family ?? '').startsWith(normalizeString(prefix)))).length;
    t.equal(await total(`Patient?family=${encodeURIComponent(prefix)}`), expected, prefix);
  }
});

t.test('a chained search equals the join computed by hand', async (t) => {
  const patient = patients[0];
  const family = patient.name![0].family!;
  const ids = new Set(patients.filter((p) => p.name?.some((n) => normalizeString(n.family ?? '').startsWith(normalizeString(family)))).map((p) => `Patient/${p.id}`));
  const expected = conditions.filter((c) => ids.has(subjectOf(c) ?? '')).length;
  t.equal(await total(`Condition?patient.family=${encodeURIComponent(family)}`), expected);
});

t.test('paging a patient\'s documents returns each exactly once', async (t) => {
  const patient = patients.reduce((a, b) => (documents.filter((d) => subjectOf(d) === `Patient/${a.id}`).length >= documents.filter((d) => subjectOf(d) === `Patient/${b.id}`).length ? a : b));
  const expected = documents.filter((d) => subjectOf(d) === `Patient/${patient.id}`).map((d) => d.id!).sort();
  const seen: string[] = [];
  let url: string | undefined = `/fhir/DocumentReference?patient=${patient.id}&_sort=-date&_count=7`;
  let previousDate = '9999';
  let ordered = true;
  for (let i = 0; url && i < 1000; i++) {
    const page: Bundle<DocumentReference> = json(await fhir(app, 'GET', url));
    for (const e of page.entry ?? []) {
      seen.push(e.resource!.id!);
      if ((e.resource!.date ?? '') > previousDate) ordered = false;
      previousDate = e.resource!.date ?? '';
    }
    url = page.link?.find((l) => l.relation === 'next')?.url.replace('http://carnet.test', '');
  }
  t.ok(expected.length > 7, `${expected.length} documents, several pages`);
  t.same(seen.slice().sort(), expected);
  t.ok(ordered, 'pages come in date order, newest first');
});
