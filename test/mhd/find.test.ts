// ITI-67 Find Document References and ITI-66 Find Lists (SubmissionSets): every search parameter
// IHE MHD lists, over documents pushed with ITI-65, and the consent engine on the results.
import t from 'tap';
import type { Bundle, DocumentReference, List, Patient } from '@medplum/fhirtypes';
import { fhir, json, testServer } from '../helpers.js';
import { ANS_INS, iheBundle, INS_SYSTEM, load, PDSM4DMP, seedExamples, withCustodian } from './fixture.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
await seedExamples(app);
// The IHE example practitioner has no name; give it one so author.given/family have something to find.
await fhir(app, 'PUT', 'Practitioner/ex-practitioner', { resourceType: 'Practitioner', id: 'ex-practitioner', name: [{ family: 'Moehrke', given: ['John'] }] });
const pushed = json<Bundle>(await fhir(app, 'POST', '', iheBundle('ex-unContainedComprehensiveProvideDocumentBundleComplete')));
const idOf = (location = '') => /\/([^/]+)\/_history\//.exec(location)?.[1] ?? '';
const documentId = idOf(pushed.entry?.[1]?.response?.location);
const setId = idOf(pushed.entry?.[0]?.response?.location);
const ans = json<Bundle>(await fhir(app, 'POST', '', withCustodian(load<Bundle>(PDSM4DMP, 'Bundle-example-td2-iti65-lot-soumission.json'))));
const ansDocumentId = idOf(ans.entry?.[1]?.response?.location);
t.ok(documentId && setId && ansDocumentId, 'the documents were provided');

async function ids(query: string, as?: string): Promise<string[]> {
  const res = await fhir(app, 'GET', query, undefined, as ? { authorization: `Bearer ${as}` } : {});
  if (res.statusCode !== 200) throw new Error(`${query}: ${res.statusCode} ${res.body}`);
  return (json<Bundle>(res).entry ?? []).filter((e) => e.search?.mode !== 'include').map((e) => e.resource?.id ?? '');
}

// [parameter=value that matches, value that does not]
const ITI67: [string, string, string][] = [
  ['patient', 'Patient/ex-patient', 'Patient/fr-patient-123'],
  ['status', 'current', 'superseded'],
  ['identifier', 'urn:ietf:rfc:3986|urn:oid:1.2.840.113556.1.8000.2554.53432.348.12973.17740.34205.4355.50220.62012', 'urn:ietf:rfc:3986|urn:oid:1.2.3'],
  ['date', 'ge2020-02-01', 'gt2021-01-01'],
  ['author.given', 'John', 'Jane'],
  ['author.family', 'Moehrke', 'Martin'],
  ['category', 'http://loinc.org|11369-6', 'http://loinc.org|11488-4'],
  ['type', 'http://loinc.org|60591-5', 'http://loinc.org|11490-0'],
  ['setting', 'http://snomed.info/sct|408467006', 'http://snomed.info/sct|394802001'],
  ['period', 'ge1995-01-01', 'lt1980-01-01'],
  ['facility', 'http://snomed.info/sct|82242000', 'http://snomed.info/sct|22232009'],
  ['event', 'http://terminology.hl7.org/CodeSystem/v3-ActCode|PATDOC', 'http://terminology.hl7.org/CodeSystem/v3-ActCode|OTHER'],
  ['security-label', 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R', 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality|V'],
  ['format', 'http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode|urn:ihe:iti:xds-sd:text:2008', 'urn:ihe:iti:xds-sd:pdf:2008'],
  ['related:identifier', 'urn:ietf:rfc:3986|urn:uuid:7d5bb8ac-68ee-4926-85e7-baaaaaaaaaad', 'urn:ietf:rfc:3986|urn:uuid:other'],
  ['creation', 'ge2020-02-01', 'lt2000-01-01'],
  ['period-start', 'ge1990-02-01', 'gt1991-01-01'],
  ['period-end', 'le2020-12-31', 'lt2020-01-01'],
];

t.test('ITI-67: every MHD parameter finds the document, and a wrong value does not', async (t) => {
  for (const [param, hit, miss] of ITI67) {
    t.ok((await ids(`DocumentReference?${param}=${encodeURIComponent(hit)}`)).includes(documentId), `${param}=${hit}`);
    t.notOk((await ids(`DocumentReference?${param}=${encodeURIComponent(miss)}`)).includes(documentId), `${param}=${miss}`);
  }
  const all = ITI67.map(([param, hit]) => `${param}=${encodeURIComponent(hit)}`).join('&');
  t.same(await ids(`DocumentReference?${all}`), [documentId], 'all of them together');
});

t.test('ITI-67: patient.identifier finds documents by the INS', async (t) => {
  const found = await ids(`DocumentReference?patient.identifier=${encodeURIComponent(`${INS_SYSTEM}|${ANS_INS}`)}`);
  t.same(found.sort(), [ansDocumentId, 'doc-x-id'].sort(), 'the pushed document and the one seeded for that patient');
  t.same(await ids(`DocumentReference?patient.identifier=${encodeURIComponent(`${INS_SYSTEM}|000000000000000`)}`), []);
});

t.test('ITI-67: the status parameter finds current, superseded and entered-in-error documents', async (t) => {
  const one = (id: string, status: DocumentReference['status']) => fhir(app, 'PUT', `DocumentReference/${id}`, { resourceType: 'DocumentReference', id, status, subject: { reference: 'Patient/fr-patient-123' }, content: [{ attachment: { url: 'Binary/x' } }] });
  await one('s-current', 'current');
  await one('s-superseded', 'superseded');
  await one('s-error', 'entered-in-error');
  const q = (status: string) => ids(`DocumentReference?patient=Patient/fr-patient-123&status=${status}&_sort=_id`);
  t.same(await q('current'), ['doc-old', 's-current']);
  t.same(await q('superseded'), ['s-superseded']);
  t.same(await q('entered-in-error'), ['s-error']);
  t.same(await q('current,superseded'), ['doc-old', 's-current', 's-superseded']);
});

t.test('ITI-66: SubmissionSets are found by every MHD List parameter', async (t) => {
  const params: [string, string][] = [
    ['code', 'https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes|submissionset'],
    ['patient', 'Patient/ex-patient'],
    ['status', 'current'],
    ['identifier', 'urn:ietf:rfc:3986|urn:oid:1.2.840.113556.1.8000.2554.58783.21864.3474.19410.44358.58254.41281.46351'],
    ['date', 'ge2004-10-25'],
    ['designationType', 'http://snomed.info/sct|225728007'],
    ['sourceId', 'urn:oid:1.2.3.4'],
    ['source.family', 'Moehrke'],
    ['source.given', 'John'],
  ];
  for (const [param, value] of params) t.ok((await ids(`List?${param}=${encodeURIComponent(value)}`)).includes(setId), `${param}=${value}`);
  t.same(await ids(`List?${params.map(([p, v]) => `${p}=${encodeURIComponent(v)}`).join('&')}`), [setId], 'all of them together');
  t.notOk((await ids('List?designationType=http://snomed.info/sct|000')).includes(setId));
  t.notOk((await ids('List?sourceId=urn:oid:9.9')).includes(setId));
  const folder = await ids('List?code=https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes|folder&patient=Patient/ex-patient');
  t.notOk(folder.includes(setId), 'a folder search does not return SubmissionSets');
  const set = json<List>(await fhir(app, 'GET', `List/${setId}`));
  t.equal(set.entry?.[0]?.item?.reference, `DocumentReference/${documentId}`, 'the SubmissionSet lists the stored document');
});

t.test('ITI-67 results obey the consent engine', async (t) => {
  const stranger = await server.token({ kind: 'practitioner', practitioner: 'stranger', profession: '10' });
  t.same(await ids('DocumentReference?patient=Patient/ex-patient', stranger), [], 'no care relationship: nothing');
  // The patient chooses their general practitioner, and masks a document (docs/consent.md).
  const patient = { authorization: `Bearer ${await server.token({ kind: 'patient', patient: 'ex-patient' })}` };
  const current = json<Patient>(await fhir(app, 'GET', 'Patient/ex-patient', undefined, patient));
  t.equal((await fhir(app, 'PUT', 'Patient/ex-patient', { ...current, generalPractitioner: [{ reference: 'Practitioner/gp' }] }, patient)).statusCode, 200);
  const gp = await server.token({ kind: 'practitioner', practitioner: 'gp', profession: '10' });
  t.ok((await ids('DocumentReference?patient=Patient/ex-patient', gp)).includes(documentId), 'the general practitioner finds it');
  const masked = await fhir(app, 'POST', 'Consent', {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: 'Patient/ex-patient' },
    dateTime: '2026-11-27T10:00:00Z',
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTOUT' }] },
    provision: { type: 'deny', data: [{ meaning: 'instance', reference: { reference: `DocumentReference/${documentId}` } }] },
  }, patient);
  t.equal(masked.statusCode, 201, 'the patient masks it');
  t.notOk((await ids('DocumentReference?patient=Patient/ex-patient', gp)).includes(documentId), 'a masked document is not found');
  const binary = (json<DocumentReference>(await fhir(app, 'GET', `DocumentReference/${documentId}`)).content[0].attachment.url ?? '');
  const res = await fhir(app, 'GET', binary, undefined, { authorization: `Bearer ${gp}`, accept: '*/*' });
  t.equal(res.statusCode, 404, 'nor can its bytes be retrieved (ITI-68)');
});
