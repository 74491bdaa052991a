// The document lifecycle after ITI-65, for documents pushed with every MHD and PDSm option (the
// official IHE MHD comprehensive and UnContained bundles, the ANS PDSm-for-DMP submission): the
// author retracts a document with status entered-in-error (docs/mhd.md). It then disappears from
// other professionals' finds and its bytes are no longer served to them; the patient still reads
// it, as retracted; the history keeps every version, the first with its profile claims.
import t from 'tap';
import type { Binary, Bundle, DocumentReference, OperationOutcome } from '@medplum/fhirtypes';
import { fhir, json, testServer } from '../helpers.js';
import { iheBundle, load, PDSM4DMP, seedExamples, withCustodian } from './fixture.js';
import { chooseGeneralPractitioner } from '../seed.js';

const retract = [{ op: 'replace', path: '/status', value: 'entered-in-error' }];
const PATCH = { 'content-type': 'application/json-patch+json' };

for (const [name, bundleOf, patientId] of [
  ['IHE MHD comprehensive', () => iheBundle('ex-comprehensiveProvideDocumentBundleSimple'), 'ex-patient'],
  ['IHE MHD UnContained comprehensive', () => iheBundle('ex-unContainedComprehensiveProvideDocumentBundleComplete'), 'ex-patient'],
  ['ANS PDSm for DMP', () => withCustodian(load<Bundle>(PDSM4DMP, 'Bundle-example-td2-iti65-lot-soumission.json')), 'ans-ins-patient'],
] as [string, () => Bundle, string][]) {
  t.test(`${name}: the author retracts a document`, async (t) => {
    const server = await testServer();
    t.teardown(() => server.close());
    const { app } = server;
    await seedExamples(app);
    await chooseGeneralPractitioner(server, patientId, ['gp']);
    const source = { authorization: `Bearer ${await server.token({ kind: 'system', client: 'his' }, 'system/*.cruds')}` };
    const pushed = await fhir(app, 'POST', '', bundleOf(), source);
    t.equal(pushed.statusCode, 200, pushed.body.slice(0, 300));
    const bundle = json<Bundle>(pushed);
    const location = bundle.entry?.map((e) => e.response?.location ?? '').find((l) => l.includes('/DocumentReference/')) ?? '';
    const id = /DocumentReference\/([^/]+)/.exec(location)?.[1] as string;
    const gp = { authorization: `Bearer ${await server.token({ kind: 'practitioner', practitioner: 'gp', profession: '10' })}` };
    const patient = { authorization: `Bearer ${await server.token({ kind: 'patient', patient: patientId })}` };
    const first = json<DocumentReference>(await fhir(app, 'GET', `DocumentReference/${id}`, undefined, gp));
    const binary = first.content[0].attachment.url as string;
    t.ok((first.meta?.profile ?? []).length > 0, 'the document claims its publication profile');
    t.equal((await app.inject({ method: 'GET', url: `/fhir/${binary}`, headers: { ...gp, accept: 'application/pdf' } })).statusCode, 200, 'the GP reads its bytes');

    t.equal((await fhir(app, 'PATCH', `DocumentReference/${id}`, retract, { ...gp, ...PATCH })).statusCode, 403, 'the GP, not its author, cannot retract it');
    const retracted = await fhir(app, 'PATCH', `DocumentReference/${id}`, retract, { ...source, ...PATCH });
    t.equal(retracted.statusCode, 200, `the system that pushed it retracts it: ${retracted.body.slice(0, 300)}`);
    const now = json<DocumentReference>(retracted);
    t.equal(now.status, 'entered-in-error');
    t.notOk((now.meta?.profile ?? []).some((p) => /MHD|pdsm/i.test(p)), 'it no longer claims a profile that leaves entered-in-error out');

    t.equal((await fhir(app, 'GET', `DocumentReference/${id}`, undefined, gp)).statusCode, 404, 'the GP no longer reads it');
    const found = json<Bundle>(await fhir(app, 'GET', `DocumentReference?patient=${patientId}`, undefined, gp));
    t.notOk((found.entry ?? []).some((e) => e.resource?.id === id), 'nor finds it (ITI-67)');
    const foundRetracted = json<Bundle>(await fhir(app, 'GET', `DocumentReference?patient=${patientId}&status=entered-in-error`, undefined, gp));
    t.equal(foundRetracted.total, 0, 'even when asking for retracted documents');
    const bytes = await app.inject({ method: 'GET', url: `/fhir/${binary}`, headers: { ...gp, accept: 'application/pdf' } });
    t.equal(bytes.statusCode, 404, 'nor retrieves its bytes (ITI-68)');
    t.equal(json<OperationOutcome>(bytes).issue[0].code, 'not-found');

    const mine = json<DocumentReference>(await fhir(app, 'GET', `DocumentReference/${id}`, undefined, patient));
    t.equal(mine.status, 'entered-in-error', 'the patient sees it as retracted');
    t.equal((await app.inject({ method: 'GET', url: `/fhir/${binary}`, headers: { ...patient, accept: 'application/fhir+json' } })).statusCode, 200, 'and still reads its bytes');
    const history = json<Bundle>(await fhir(app, 'GET', `DocumentReference/${id}/_history`, undefined, patient));
    t.same(history.entry?.map((e) => (e.resource as DocumentReference).status), ['entered-in-error', 'current'], 'the history keeps it');
    const v1 = json<DocumentReference>(await fhir(app, 'GET', `DocumentReference/${id}/_history/1`, undefined, patient));
    t.same(v1.meta?.profile, first.meta?.profile, 'the first version keeps its profile claims');
    t.equal(json<Binary>(await fhir(app, 'GET', binary, undefined, { ...source, accept: 'application/fhir+json' })).resourceType, 'Binary', 'the source system still reads what it wrote');
  });
}
