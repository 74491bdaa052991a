// ITI-68 Retrieve Document and consent: the bytes of a document are read exactly as the document.
// The patient reads their own documents' bytes, nobody else's; a representative does not get
// what is kept confidential from representatives; a masked document's bytes stay hidden.
import t from 'tap';
import type { Bundle, DocumentReference } from '@medplum/fhirtypes';
import { fhir, json, testServer } from '../helpers.js';
import { provideBundle, seedExamples } from './fixture.js';
import { chooseGeneralPractitioner } from '../seed.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
await seedExamples(app);
await fhir(app, 'PUT', 'Patient/minor', { resourceType: 'Patient', id: 'minor' });

async function pushed(patient: string, bytes: Buffer, document: Partial<DocumentReference> = {}): Promise<{ document: string; binary: string }> {
  const res = await fhir(app, 'POST', '', provideBundle(`Patient/${patient}`, { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { contentType: 'application/pdf' } }], ...document }, bytes));
  if (res.statusCode !== 200) throw new Error(res.body);
  const location = json<Bundle>(res).entry?.[1]?.response?.location ?? '';
  const id = /DocumentReference\/([^/]+)/.exec(location)?.[1] ?? '';
  const stored = json<DocumentReference>(await fhir(app, 'GET', `DocumentReference/${id}`));
  return { document: `DocumentReference/${id}`, binary: stored.content[0].attachment.url ?? '' };
}
const bytesOf = async (url: string, token: string) => {
  const res = await app.inject({ method: 'GET', url: `/fhir/${url}`, headers: { authorization: `Bearer ${token}`, accept: '*/*' } });
  return { status: res.statusCode, body: res.rawPayload };
};

t.test('a patient retrieves the bytes of their own documents, not another patient\'s', async (t) => {
  const own = await pushed('ex-patient', Buffer.from('%PDF mine'));
  const other = await pushed('fr-patient-123', Buffer.from('%PDF theirs'));
  const patient = await server.token({ kind: 'patient', patient: 'ex-patient' });
  const mine = await bytesOf(own.binary, patient);
  t.equal(mine.status, 200);
  t.equal(mine.body.toString(), '%PDF mine');
  t.equal((await bytesOf(other.binary, patient)).status, 404, 'another patient\'s document bytes read as missing');
});

t.test('a representative does not retrieve what is kept confidential from representatives', async (t) => {
  const open = await pushed('minor', Buffer.from('%PDF vaccination'));
  const confidential = await pushed('minor', Buffer.from('%PDF confidential'), {
    meta: { security: [{ system: 'urn:carnet:security', code: 'confidential-from-representatives' }] },
  });
  const parent = await server.token({ kind: 'representative', relatedPerson: 'parent', patients: ['minor'] });
  t.equal((await bytesOf(open.binary, parent)).status, 200);
  t.equal((await bytesOf(confidential.binary, parent)).status, 404);
  const minor = await server.token({ kind: 'patient', patient: 'minor' });
  t.equal((await bytesOf(confidential.binary, minor)).status, 200, 'the patient does');
});

t.test('a professional retrieves a document\'s bytes only if they may read the document', async (t) => {
  await chooseGeneralPractitioner(server, 'fr-patient-123', ['gp']);
  const report = await pushed('fr-patient-123', Buffer.from('%PDF report'), { type: { coding: [{ system: 'http://loinc.org', code: '11490-0' }] } });
  const gp = await server.token({ kind: 'practitioner', practitioner: 'gp', profession: '10' });
  t.equal((await bytesOf(report.binary, gp)).status, 200, 'the GP');
  const podiatrist = await server.token({ kind: 'practitioner', practitioner: 'gp', profession: '80' });
  t.equal((await bytesOf(report.binary, podiatrist)).status, 404, 'a podiatrist may not read a discharge report, nor its bytes');
  const stranger = await server.token({ kind: 'practitioner', practitioner: 'stranger', profession: '10' });
  t.equal((await bytesOf(report.binary, stranger)).status, 404, 'no care relationship');
});
