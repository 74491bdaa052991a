// Every parameter type, modifier and prefix of R4 search through HTTP, each with the exact set
// of ids it must select from test/fixtures/search-fixture.ts.
import t from 'tap';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { bearer, fhir, json, testServer } from '../helpers.js';
import { FIXTURE, FR_PATIENT, INS, LOINC, UCUM } from '../fixtures/search-fixture.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
for (const resource of FIXTURE) {
  const res = await fhir(app, 'PUT', `${resource.resourceType}/${resource.id}`, resource);
  if (res.statusCode !== 201) throw new Error(`fixture ${resource.id}: ${res.body}`);
}

/** The ids a search selects (matches only), sorted unless the search sorts. */
async function ids(query: string, sorted = true): Promise<string[]> {
  const res = await fhir(app, 'GET', query.includes('_count') ? query : `${query}${query.includes('?') ? '&' : '?'}_count=100`);
  if (res.statusCode !== 200) throw new Error(`${query}: ${res.statusCode} ${res.body}`);
  const found = (json<Bundle>(res).entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource!.id!);
  return sorted ? found.sort() : found;
}

const cases: [string, string, string[]][] = [
  // string: starts-with, case- and accent-insensitive; :exact; :contains; every name part
  ['string default is starts-with, accent-insensitive', 'Patient?name=helene', ['p-helene']],
  ['string ignores case and accents both ways', 'Patient?name=HÉLÈNE', ['p-helene']],
  ['string matches any part of any name', 'Patient?name=marchand', []],
  ['string matches the start of a family name', 'Patient?family=dupont-m', ['p-helene']],
  ['string matches given names', 'Patient?given=marie', ['p-helene']],
  ['string :exact needs the exact text', 'Patient?given:exact=Hélène', ['p-helene']],
  ['string :exact is case-sensitive', 'Patient?given:exact=hélène', []],
  ['string :contains finds inner text', 'Patient?family:contains=ura', ['p-henri']],
  ['a resource with two matching names counts once', 'Patient?family=dupont', ['p-helene']],
  ['string on addresses', 'Patient?address-city=NANTES', ['p-anna']],
  ['string OR with a comma', 'Patient?family=durand,martin', ['p-anna', 'p-henri']],
  ['string AND with a repeated parameter', 'Patient?family=martin&given=anna', ['p-anna']],
  // token
  ['token code alone', 'Patient?gender=female', ['p-anna', 'p-helene']],
  ['token :not includes resources without a matching value', 'Patient?gender:not=female', ['p-henri', 'p-nobirth']],
  ['token system|code', `Patient?identifier=${INS}|280022912345678`, ['p-helene']],
  ['token system| matches any code of that system', `Patient?identifier=${INS}|`, ['p-helene']],
  ['token |code needs no system', 'Patient?identifier=|280022912345678', []],
  ['token :of-type', 'Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MR-12345', ['p-henri']],
  ['token on a CodeableConcept', `Observation?code=${LOINC}|29463-7`, ['obs-weight-1', 'obs-weight-2']],
  ['token :text on display and text', 'Observation?code:text=body', ['obs-weight-1', 'obs-weight-2']],
  ['token :text on CodeableConcept.text', 'Observation?code:text=poids', ['obs-weight-1']],
  ['token OR', 'Observation?status=amended,preliminary', ['obs-glucose', 'obs-weight-2']],
  ['token :missing=true', 'Patient?identifier:missing=true', ['p-anna', 'p-nobirth']],
  ['token :missing=false', 'Patient?identifier:missing=false', ['p-helene', 'p-henri']],
  ['_id with several values', 'Patient?_id=p-anna,p-henri', ['p-anna', 'p-henri']],
  // date: implicit ranges and every prefix
  ['date eq a year', 'Patient?birthdate=1980', ['p-helene']],
  ['date eq a leap day', 'Patient?birthdate=1980-02-29', ['p-helene']],
  ['date eq a month holds a month-precision value', 'Patient?birthdate=1975-06', ['p-henri']],
  ['date eq a day does not hold a month-precision value', 'Patient?birthdate=1975-06-15', []],
  ['date ge', 'Patient?birthdate=ge2000', ['p-anna']],
  ['date lt', 'Patient?birthdate=lt1976', ['p-henri']],
  ['date le includes the whole day', 'Patient?birthdate=le1980-02-29', ['p-helene', 'p-henri']],
  ['date gt excludes the day itself', 'Patient?birthdate=gt1980-02-29', ['p-anna']],
  ['date sa', 'Patient?birthdate=sa1979', ['p-anna', 'p-helene']],
  ['date eb', 'Patient?birthdate=eb1980-01-01', ['p-henri']],
  ['date ne', 'Patient?birthdate=ne1980', ['p-anna', 'p-henri']],
  ['date :missing', 'Patient?birthdate:missing=true', ['p-nobirth']],
  ['date with time zone: 23:30+01:00 is the 31st in UTC', 'Observation?date=2023-12-31', ['obs-glucose']],
  ['date range of a month on dateTimes', 'Observation?date=2024-03', ['obs-weight-1', 'obs-weight-2']],
  ['a Period is not within a day it overlaps', 'Observation?date=2024-01-15', []],
  ['a Period overlaps ge', 'Observation?date=ge2024-01-15&date=lt2024-02', ['obs-bp']],
  ['an open Period runs on', 'DocumentReference?period=ge2030-01-01', ['doc-new']],
  ['date with seconds precision', 'Observation?date=2024-03-10T08:30:00Z', ['obs-weight-1']],
  ['_lastUpdated', 'Patient?_lastUpdated=gt2000-01-01&gender=male', ['p-henri']],
  // quantity and number
  ['quantity number alone', 'Observation?value-quantity=72.5', ['obs-weight-1']],
  ['quantity implicit precision: 72 does not hold 72.5', 'Observation?value-quantity=72', []],
  ['quantity implicit precision: 7.25e1 holds 72.5', 'Observation?value-quantity=7.25e1', ['obs-weight-1']],
  ['quantity implicit precision: 1e2 is [95, 105)', 'Observation?value-quantity=1e2', ['obs-weight-2']],
  ['quantity gt', 'Observation?value-quantity=gt80', ['obs-weight-2']],
  ['quantity with system and code', `Observation?value-quantity=5.4|${UCUM}|mmol/L`, ['obs-glucose']],
  ['quantity with code only', 'Observation?value-quantity=ge50||kg', ['obs-weight-1', 'obs-weight-2']],
  ['quantity ap is within 10%', 'Observation?value-quantity=ap95', ['obs-weight-2']],
  ['quantity lt', 'Observation?value-quantity=lt10', ['obs-glucose']],
  // reference
  ['reference Type/id', 'Observation?subject=Patient/p-helene', ['obs-bp', 'obs-weight-1']],
  ['reference bare id', 'Observation?patient=p-helene', ['obs-bp', 'obs-weight-1']],
  ['reference :Type', 'Observation?subject:Patient=p-anna', ['obs-glucose']],
  ['reference absolute URL of this server', 'Observation?subject=http://carnet.test/fhir/Patient/p-anna', ['obs-glucose']],
  ['reference :missing', 'Observation?performer:missing=false', ['obs-weight-2']],
  ['reference to a practitioner', 'Patient?general-practitioner=Practitioner/dr-martin', ['p-helene']],
  // uri
  ['uri _profile exact', `Patient?_profile=${FR_PATIENT}`, ['p-helene']],
  ['uri :below', 'Patient?_profile:below=https://hl7.fr/ig/fhir/core', ['p-helene']],
  ['uri :above', `Patient?_profile:above=${FR_PATIENT}/extra`, ['p-helene']],
  ['uri _source', 'Patient?_source=urn:carnet:source:hospital-a', ['p-helene']],
  ['token _tag', 'Patient?_tag=urn:carnet:test|pilot', ['p-helene']],
  // chains and reverse chains
  ['chain on identifier', `Observation?patient.identifier=${INS}|280022912345678`, ['obs-bp', 'obs-weight-1']],
  ['chain with :Type', 'Observation?subject:Patient.name=henri', ['obs-weight-2']],
  ['chain two levels deep', 'Observation?patient.general-practitioner.name=martin', ['obs-bp', 'obs-weight-1']],
  ['chain two levels to an organisation', 'Observation?patient.organization.name=chu', ['obs-weight-2']],
  ['_has', `Patient?_has:Observation:patient:code=${LOINC}|29463-7`, ['p-helene', 'p-henri']],
  ['_has with a status', 'Patient?_has:Observation:subject:status=preliminary', ['p-anna']],
  ['_has nested', `Practitioner?_has:Patient:general-practitioner:_has:Observation:patient:code=${LOINC}|85354-9`, ['dr-martin']],
  // composite: components must match within the same component
  ['composite on components', `Observation?component-code-value-quantity=${LOINC}|8480-6$gt100`, ['obs-bp']],
  ['composite does not mix components', `Observation?component-code-value-quantity=${LOINC}|8462-4$gt100`, []],
  ['composite code and value', `Observation?code-value-quantity=${LOINC}|29463-7$gt80`, ['obs-weight-2']],
  ['composite on relatesTo (R4 errata corrected: target$code)', 'DocumentReference?relationship=DocumentReference/doc-old$replaces', ['doc-new']],
  ['composite on relatesTo with another code', 'DocumentReference?relationship=DocumentReference/doc-old$appends', []],
  ['DocumentReference relatesto reference', 'DocumentReference?relatesto=DocumentReference/doc-old', ['doc-new']],
  ['DocumentReference status', 'DocumentReference?status=superseded', ['doc-old']],
];

for (const [name, query, expected] of cases) {
  t.test(`${name}: ${query}`, async (t) => {
    t.same(await ids(query), expected);
  });
}

t.test('_sort ascending, descending and on several keys', async (t) => {
  t.same(await ids('Patient?_sort=birthdate&birthdate:missing=false', false), ['p-henri', 'p-helene', 'p-anna']);
  t.same(await ids('Patient?_sort=-birthdate&birthdate:missing=false', false), ['p-anna', 'p-helene', 'p-henri']);
  t.same(await ids('Patient?_sort=family,-given&gender=female', false), ['p-helene', 'p-anna']);
  t.same(await ids('Patient?_sort=birthdate', false), ['p-henri', 'p-helene', 'p-anna', 'p-nobirth'], 'missing values sort last');
});

t.test('sorted pages follow next links without skipping or repeating', async (t) => {
  const seen: string[] = [];
  let url: string | undefined = '/fhir/Patient?_sort=-birthdate&_count=1';
  for (let i = 0; url && i < 10; i++) {
    const page: Bundle = json(await fhir(app, 'GET', url));
    seen.push(...(page.entry ?? []).map((e) => e.resource!.id!));
    url = page.link?.find((l) => l.relation === 'next')?.url.replace('http://carnet.test', '');
  }
  t.same(seen, ['p-anna', 'p-helene', 'p-henri', 'p-nobirth']);
});

t.test('_include adds the referenced resources, marked include', async (t) => {
  const page = json<Bundle>(await fhir(app, 'GET', 'Observation?_id=obs-weight-1&_include=Observation:patient'));
  t.same(page.entry?.map((e) => [e.resource?.id, e.search?.mode]), [['obs-weight-1', 'match'], ['p-helene', 'include']]);
  t.equal(page.total, 1, 'includes are not counted in total');
});

t.test('_include:iterate follows references of included resources', async (t) => {
  const page = json<Bundle>(await fhir(app, 'GET', 'Observation?_id=obs-weight-1&_include=Observation:patient&_include:iterate=Patient:general-practitioner'));
  t.same(page.entry?.map((e) => e.resource?.id), ['obs-weight-1', 'p-helene', 'dr-martin']);
});

t.test('_revinclude adds the resources pointing at the matches', async (t) => {
  const page = json<Bundle>(await fhir(app, 'GET', 'Patient?_id=p-helene&_revinclude=Observation:subject'));
  t.same(page.entry?.filter((e) => e.search?.mode === 'include').map((e) => e.resource?.id).sort(), ['obs-bp', 'obs-weight-1']);
});

t.test('_include=* follows every reference parameter', async (t) => {
  const page = json<Bundle>(await fhir(app, 'GET', 'Observation?_id=obs-weight-2&_include=*'));
  t.same(page.entry?.map((e) => e.resource?.id).sort(), ['obs-weight-2', 'org-lab', 'p-henri']);
});

t.test('_total=none leaves the total out; _summary=count gives only the total', async (t) => {
  t.equal(json<Bundle>(await fhir(app, 'GET', 'Patient?_total=none')).total, undefined);
  const count = json<Bundle>(await fhir(app, 'GET', 'Patient?gender=female&_summary=count'));
  t.equal(count.total, 2);
  t.equal(count.entry, undefined);
});

t.test('_summary=true keeps summary elements and marks the resource SUBSETTED', async (t) => {
  const page = json<Bundle<Resource & Record<string, unknown>>>(await fhir(app, 'GET', 'Observation?_id=obs-bp&_summary=true'));
  const obs = page.entry![0].resource!;
  t.ok(obs.code && obs.subject && obs.component);
  t.match(obs.meta, { tag: [{ code: 'SUBSETTED' }] });
});

t.test('_elements keeps the listed elements and the mandatory ones', async (t) => {
  const page = json<Bundle<Resource & Record<string, unknown>>>(await fhir(app, 'GET', 'Observation?_id=obs-bp&_elements=subject'));
  const obs = page.entry![0].resource!;
  t.same(Object.keys(obs).sort(), ['code', 'id', 'meta', 'resourceType', 'status', 'subject']);
});

t.test('system search with _type', async (t) => {
  t.same(await ids('/fhir?_type=Patient,Practitioner&_id=p-helene,dr-martin'), ['dr-martin', 'p-helene']);
});

t.test('GET and POST _search with a form body give the same answer', async (t) => {
  const get = await ids('Observation?code=http://loinc.org|29463-7&_sort=-date', false);
  const post = await app.inject({ method: 'POST', url: '/fhir/Observation/_search', headers: { ...bearer(app), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/fhir+json' }, payload: 'code=http%3A%2F%2Floinc.org%7C29463-7&_sort=-date' });
  t.same(json<Bundle>(post).entry?.map((e) => e.resource?.id), get);
});

t.test('malformed values and unknown modifiers answer 400 naming the parameter', async (t) => {
  for (const [query, name] of [['Patient?birthdate=1980-13', 'birthdate'], ['Patient?birthdate=xx1980', 'birthdate'], ['Patient?gender:foo=x', 'gender:foo'], ['Observation?value-quantity=abc', 'value-quantity'], ['Patient?_sort=shoe', '_sort'], ['Patient?_include=Patient:nope', '_include'], ['Patient?_count=-1', '_count']]) {
    const res = await fhir(app, 'GET', query);
    t.equal(res.statusCode, 400, query);
    t.match(json(res), { issue: [{ expression: [name] }] }, query);
  }
});
