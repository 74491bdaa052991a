// Searches beyond the limits of src/search/limits.ts answer 400 with an OperationOutcome
// (too-costly, naming the limit and the parameter) on every path that takes search criteria, never
// a 500 from SQLite; a repeated _include answers as one; the other inputs that reached SQLite
// (a cursor of another search, _sort on a reference, a _revinclude of a full page) answer as they
// should.
import t, { type Test } from 'tap';
import type { Bundle, BundleEntry, OperationOutcome } from '@medplum/fhirtypes';
import { bearer, fhir, json, testServer } from '../helpers.js';
import { MAX_FORM_BYTES, MAX_INCLUDES, MAX_LINKS, MAX_SORT_KEYS, MAX_VALUE_LENGTH } from '../../src/search/limits.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

await fhir(app, 'PUT', 'Practitioner/dr1', { resourceType: 'Practitioner', id: 'dr1', name: [{ family: 'Martin' }] });
await fhir(app, 'PUT', 'Patient/p1', { resourceType: 'Patient', id: 'p1', name: [{ family: 'Dupont' }], generalPractitioner: [{ reference: 'Practitioner/dr1' }] });
for (const id of ['o1', 'o2', 'o3']) {
  await fhir(app, 'PUT', `Observation/${id}`, { resourceType: 'Observation', id, status: 'final', code: { text: 'weight' }, subject: { reference: 'Patient/p1' }, performer: [{ reference: 'Practitioner/dr1' }] });
}

const repeat = (n: number, pair: string) => Array.from({ length: n }, () => pair).join('&');
const list = (n: number, value = 'a') => Array.from({ length: n }, () => value).join(',');
const FORM = { ...bearer(app), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/fhir+json' };

/** Asserts a 400 OperationOutcome `too-costly` whose diagnostics name `limit` and the parameter `name`. */
function tooCostly(t: Test, res: { statusCode: number; body: string }, name: string, limit: string, what: string): void {
  t.equal(res.statusCode, 400, `${what}: 400`);
  const outcome = json<OperationOutcome>(res);
  t.equal(outcome.resourceType, 'OperationOutcome', `${what}: an OperationOutcome`);
  t.equal(outcome.issue[0].code, 'too-costly', `${what}: too-costly`);
  t.match(outcome.issue[0].diagnostics, limit, `${what}: names ${limit}`);
  t.ok(outcome.issue[0].diagnostics?.includes(`"${name}"`), `${what}: names ${name}`);
}

t.test('the attacks of issue 12 answer 400, not 500 nor seconds of CPU', async (t) => {
  tooCostly(t, await fhir(app, 'GET', `Patient?${repeat(3000, '_include=Patient:general-practitioner')}`), '_include', 'MAX_PARAMETERS', '3,000 _include');
  tooCostly(t, await fhir(app, 'GET', `Patient?${repeat(3000, '_revinclude=Observation:subject')}`), '_revinclude', 'MAX_PARAMETERS', '3,000 _revinclude');
  tooCostly(t, await fhir(app, 'GET', `Patient?name=${'a'.repeat(50_000)}`), 'name', 'MAX_VALUE_LENGTH', 'a 50,000-character value');
  tooCostly(t, await fhir(app, 'GET', `Patient?name:contains=${'a'.repeat(50_000)}`), 'name:contains', 'MAX_VALUE_LENGTH', 'a 50,000-character :contains');
  tooCostly(t, await fhir(app, 'GET', `Observation?${Array.from({ length: 1000 }, (_, i) => `code=c${i}`).join('&')}`), 'code', 'MAX_PARAMETERS', '1,000 parameters');
  tooCostly(t, await fhir(app, 'GET', `Patient?name=${list(50_000)}`), 'name', 'MAX_VALUES', '50,000 string values');
  tooCostly(t, await fhir(app, 'GET', `Patient?_id=${list(50_000)}`), '_id', 'MAX_VALUES', '50,000 ids');
  tooCostly(t, await fhir(app, 'GET', `Observation?code=${list(50_000)}`), 'code', 'MAX_VALUES', '50,000 tokens');
  tooCostly(t, await fhir(app, 'GET', `Observation?component-code-value-quantity=${list(5000, 'http://loinc.org|8480-6$gt100')}`), 'component-code-value-quantity', 'MAX_VALUES', '5,000 composite values');
  tooCostly(t, await fhir(app, 'GET', `Patient?${repeat(20, `_id=${list(100)}`)}`), '_id', 'MAX_TOTAL_VALUES', '2,000 values in all');
});

t.test('every limit, lenient or not', async (t) => {
  const includes = ['subject', 'patient', 'performer', 'encounter', 'based-on', 'part-of', 'has-member', 'derived-from', 'specimen', 'device', 'focus']
    .flatMap((param) => [`_include=Observation:${param}`, `_include:iterate=Observation:${param}`])
    .slice(0, MAX_INCLUDES + 1);
  // Chains 3 links deep (then one of 2) up to MAX_LINKS, then a _has: one link too many.
  const chains = ['subject:Patient.organization.partof.name=x', 'subject:Patient.organization.partof.name=y', 'subject:Patient.organization.name=z', '_has:Observation:has-member:code=x'];
  const keys = ['name', '-birthdate', 'family', '-given', '_id', '-_lastUpdated', 'gender', '-address', 'phone'].slice(0, MAX_SORT_KEYS + 1).join(',');
  const cases: [string, string, string, string][] = [
    [`${MAX_INCLUDES + 1} distinct includes`, `Observation?${includes.join('&')}`, '_include', 'MAX_INCLUDES'],
    [`${MAX_LINKS + 1} chain and _has links`, `Observation?${chains.join('&')}`, '_has:Observation:has-member:code', 'MAX_LINKS'],
    ['9 sort keys', `Patient?_sort=${keys}`, '_sort', 'MAX_SORT_KEYS'],
    ['101 _elements', `Patient?_elements=${list(101, 'name')}`, '_elements', 'MAX_VALUES'],
    ['a chain 5 levels deep', 'Observation?subject:Patient.organization.partof.partof.partof.name=x', 'subject:Patient.organization.partof.partof.partof.name', 'MAX_DEPTH'],
    ['_has 5 levels deep', `Patient?${'_has:Observation:patient:'.repeat(1)}${'_has:Observation:has-member:'.repeat(4)}code=x`, `_has:Observation:patient:${'_has:Observation:has-member:'.repeat(4)}code`, 'MAX_DEPTH'],
    ['a 300-character name', `Patient?${'x'.repeat(300)}=1`, `${'x'.repeat(256)}...`, 'MAX_NAME_LENGTH'],
    ['101 _type on system search', `?_type=${list(101, 'Patient')}`, '_type', 'MAX_VALUES'],
  ];
  for (const [what, url, name, limit] of cases) {
    tooCostly(t, await fhir(app, 'GET', url), name, limit, what);
    tooCostly(t, await fhir(app, 'GET', url, undefined, { prefer: 'handling=lenient' }), name, limit, `${what} (lenient)`);
  }
  const atLimit = await fhir(app, 'GET', `Patient?name=${'x'.repeat(MAX_VALUE_LENGTH)}&_sort=${keys.split(',').slice(0, MAX_SORT_KEYS).join(',')}`);
  t.equal(atLimit.statusCode, 200, 'a value and _sort at their limits are searched');
  t.equal(MAX_LINKS, 8, 'the chains above are written for 8 links');
  t.equal((await fhir(app, 'GET', `Observation?${chains.slice(0, 3).join('&')}`)).statusCode, 200, `${MAX_LINKS} chain links are searched`);
});

t.test('POST _search: limits on its parameters, and a form body no larger than the longest search', async (t) => {
  const post = (payload: string) => app.inject({ method: 'POST', url: '/fhir/Patient/_search', headers: FORM, payload });
  tooCostly(t, await post(repeat(1000, 'name=a')), 'name', 'MAX_PARAMETERS', '1,000 parameters in a form');
  tooCostly(t, await post(`_id=${list(5000)}`), '_id', 'MAX_VALUES', '5,000 values in a form');
  const big = await post(`name=${'a'.repeat(MAX_FORM_BYTES)}`);
  t.equal(big.statusCode, 413, 'a form over MAX_FORM_BYTES');
  t.match(json<OperationOutcome>(big).issue[0], { code: 'too-long', diagnostics: new RegExp(`${MAX_FORM_BYTES} bytes`) });
  t.equal((await post(repeat(10, `name=${'a'.repeat(MAX_VALUE_LENGTH)}`))).statusCode, 200, 'a form within the limits is searched');
});

t.test('conditional create, update and delete criteria, batch entries and conditional references', async (t) => {
  const patient = { resourceType: 'Patient', name: [{ family: 'Limits' }] };
  tooCostly(t, await fhir(app, 'POST', 'Patient', patient, { 'if-none-exist': repeat(1000, 'name=a') }), 'name', 'MAX_PARAMETERS', 'If-None-Exist');
  tooCostly(t, await fhir(app, 'PUT', `Patient?_id=${list(50_000)}`, patient), '_id', 'MAX_VALUES', 'conditional update');
  tooCostly(t, await fhir(app, 'DELETE', `Patient?name=${'a'.repeat(50_000)}`), 'name', 'MAX_VALUE_LENGTH', 'conditional delete');
  t.equal(json<Bundle>(await fhir(app, 'GET', 'Patient?name=limits')).total, 0, 'nothing was created');

  const batch = await fhir(app, 'POST', '/fhir', {
    resourceType: 'Bundle',
    type: 'batch',
    entry: [
      { request: { method: 'GET', url: `Patient?name=${'a'.repeat(50_000)}` } },
      { request: { method: 'GET', url: `Observation?${repeat(100, '_include=Observation:subject')}` } },
      { request: { method: 'GET', url: 'Patient?_id=p1' } },
    ],
  });
  t.equal(batch.statusCode, 200);
  const [long, many, fine] = json<Bundle>(batch).entry as BundleEntry[];
  for (const [entry, name, limit] of [[long, 'name', 'MAX_VALUE_LENGTH'], [many, '_include', 'MAX_PARAMETERS']] as const) {
    t.match(entry.response?.status, /^400/, `batch entry: ${limit}`);
    t.match((entry.response?.outcome as OperationOutcome).issue[0], { code: 'too-costly', diagnostics: new RegExp(`"${name}".*${limit}`) });
  }
  t.match(fine.response?.status, /^200/, 'the other entries run');

  const transaction = await fhir(app, 'POST', '/fhir', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [{ resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient?_id=${list(101, 'p1')}` } }, request: { method: 'POST', url: 'Observation' } }],
  });
  t.equal(transaction.statusCode, 400, 'a conditional reference beyond the limits');
  t.match(json<OperationOutcome>(transaction).issue[0], { code: 'too-costly', diagnostics: /"_id".*MAX_VALUES/ });
});

t.test('a repeated _include or _revinclude answers as one', async (t) => {
  const once = await fhir(app, 'GET', 'Observation?subject=Patient/p1&_include=Observation:subject&_include:iterate=Patient:general-practitioner&_revinclude=Observation:has-member');
  const repeated = await fhir(app, 'GET', `Observation?subject=Patient/p1&${repeat(10, '_include=Observation:subject')}&${repeat(10, '_include:iterate=Patient:general-practitioner')}&_include:recurse=Patient:general-practitioner&${repeat(10, '_revinclude=Observation:has-member')}`);
  t.equal(repeated.statusCode, 200);
  const entries = (res: { body: string }) => json<Bundle>(res).entry?.map((e) => `${e.search?.mode} ${e.resource?.resourceType}/${e.resource?.id}`);
  t.same(entries(repeated), entries(once));
  t.same(entries(once), ['match Observation/o1', 'match Observation/o2', 'match Observation/o3', 'include Patient/p1', 'include Practitioner/dr1']);
  t.equal(json<Bundle>(repeated).link?.[0].url, json<Bundle>(once).link?.[0].url, 'the self link lists each include once');
});

t.test('other inputs that reached SQLite: a cursor of another search, _sort on a reference, _revinclude of a full page, a huge _count', async (t) => {
  const cursor = (keys: unknown[]) => Buffer.from(JSON.stringify(keys)).toString('base64url');
  for (const url of [`Patient?_cursor=${cursor([])}`, `Patient?_sort=name&_cursor=${cursor(['p1'])}`, `Patient?_cursor=${cursor(['a', 'b', 'c'])}`]) {
    const res = await fhir(app, 'GET', url);
    t.equal(res.statusCode, 400, url);
    t.match(json<OperationOutcome>(res).issue[0], { expression: ['_cursor'] });
  }
  await fhir(app, 'PUT', 'Observation/o4', { resourceType: 'Observation', id: 'o4', status: 'final', code: { text: 'weight' }, subject: { reference: 'Patient/a0' } });
  for (const [sort, order] of [['subject,_id', ['o4', 'o1', 'o2', 'o3']], ['-subject,-_id', ['o3', 'o2', 'o1', 'o4']]] as const) {
    const sorted = await fhir(app, 'GET', `Observation?_id=o1,o2,o3,o4&_sort=${sort}`);
    t.equal(sorted.statusCode, 200, `_sort=${sort}: a reference parameter (was a SQL syntax error)`);
    t.same(json<Bundle>(sorted).entry?.map((e) => e.resource?.id), order);
  }
  const huge = await fhir(app, 'GET', 'Patient?_count=999999999');
  t.equal(huge.statusCode, 200, '_count beyond the maximum page size is cut to it');

  // 1,001 Patients (in a transaction: a batch of them takes seconds): a page of 1,000 targets for
  // the _revinclude (an OR chain SQLite refused).
  const entry = Array.from({ length: 1001 }, (_, i) => ({ resource: { resourceType: 'Patient', id: `many-${i}`, gender: 'other' }, request: { method: 'PUT', url: `Patient/many-${i}` } }));
  t.equal((await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'transaction', entry })).statusCode, 200);
  await fhir(app, 'PUT', 'Observation/many-obs', { resourceType: 'Observation', id: 'many-obs', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/many-0' } });
  for (const include of ['Observation:subject', 'Observation:*']) {
    const page = await fhir(app, 'GET', `Patient?gender=other&_count=1000&_sort=_id&_revinclude=${include}`);
    t.equal(page.statusCode, 200, `_revinclude=${include} of 1,000 matches`);
    t.same(json<Bundle>(page).entry?.filter((e) => e.search?.mode === 'include').map((e) => e.resource?.id), ['many-obs']);
  }
});

t.test('long ids and paths the router cannot read answer OperationOutcomes', async (t) => {
  for (const [url, status] of [[`Patient/${'a'.repeat(65)}`, 400], [`Patient/${'a'.repeat(501)}`, 414], ['Patient/%zz', 400], [`Patient?_id=${'a'.repeat(65)}`, 400]] as const) {
    const res = await fhir(app, 'GET', url);
    t.equal(res.statusCode, status, url.slice(0, 40));
    t.equal(json<OperationOutcome>(res).resourceType, 'OperationOutcome', url.slice(0, 40));
  }
});
