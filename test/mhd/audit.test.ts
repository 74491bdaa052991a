// The MHD transactions in the patient's access log: each record names the IHE transaction
// (ITI-65, ITI-66, ITI-67, ITI-68) next to the RESTful interaction, as the MHD audit profiles do.
import t from 'tap';
import type { AuditEvent, Bundle, DocumentReference } from '@medplum/fhirtypes';
import { fhir, json, testServer } from '../helpers.js';
import { provideBundle, seedExamples } from './fixture.js';
import { chooseGeneralPractitioner } from '../seed.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
await seedExamples(app);
await chooseGeneralPractitioner(server, 'ex-patient', ['gp']);

t.test('provide, find and retrieve are recorded as ITI-65, ITI-67, ITI-66 and ITI-68', async (t) => {
  const pushed = await fhir(app, 'POST', '', provideBundle('Patient/ex-patient', { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { contentType: 'application/pdf' } }] }, Buffer.from('%PDF audit')));
  t.equal(pushed.statusCode, 200);
  const gp = { authorization: `Bearer ${await server.token({ kind: 'practitioner', practitioner: 'gp', profession: '10' })}` };
  const found = json<Bundle>(await fhir(app, 'GET', 'DocumentReference?patient=Patient/ex-patient&status=current', undefined, gp));
  // The document just pushed (the seeded examples of the same patient come in any order).
  const created = json<Bundle>(pushed)
    .entry?.map((e) => /(?:^|\/)DocumentReference\/([^/]+)/.exec(e.response?.location ?? '')?.[1])
    .find((id) => id !== undefined);
  const document = found.entry?.map((e) => e.resource as DocumentReference).find((d) => d.id === created);
  t.ok(document, 'the pushed document is found');
  const binary = document?.content[0].attachment.url ?? '';
  t.equal((await fhir(app, 'GET', 'List?patient=Patient/ex-patient&code=https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes|submissionset', undefined, gp)).statusCode, 200);
  t.equal((await app.inject({ method: 'GET', url: `/fhir/${binary}`, headers: { ...gp, accept: 'application/pdf' } })).statusCode, 200);

  const patient = { authorization: `Bearer ${await server.token({ kind: 'patient', patient: 'ex-patient' })}` };
  const ihe = async (code: string) => {
    const log = json<Bundle>(await fhir(app, 'GET', `AuditEvent?patient=ex-patient&subtype=urn:ihe:event-type-code|${code}`, undefined, patient));
    return (log.entry ?? []).map((e) => e.resource as AuditEvent);
  };
  const [provide] = await ihe('ITI-65');
  t.match(provide?.subtype, [{ code: 'transaction' }, { system: 'urn:ihe:event-type-code', code: 'ITI-65', display: 'Provide Document Bundle' }]);
  const [find] = await ihe('ITI-67');
  t.match(find?.subtype, [{ code: 'search-type' }, { code: 'ITI-67' }]);
  t.equal(find?.agent.find((a) => a.requestor)?.who?.reference, 'Practitioner/gp');
  t.match((await ihe('ITI-66'))[0]?.subtype, [{ code: 'search-type' }, { code: 'ITI-66' }]);
  const [retrieve] = await ihe('ITI-68');
  t.match(retrieve?.subtype, [{ code: 'read' }, { code: 'ITI-68', display: 'Retrieve Document' }]);
  t.ok(retrieve?.entity?.some((e) => e.what?.reference === binary), 'the retrieved Binary is named');

  // A refused attempt on the bytes is in the patient's log too.
  const stranger = { authorization: `Bearer ${await server.token({ kind: 'practitioner', practitioner: 'stranger', profession: '10' })}` };
  t.equal((await app.inject({ method: 'GET', url: `/fhir/${binary}`, headers: { ...stranger, accept: 'application/pdf' } })).statusCode, 404);
  const refused = (await ihe('ITI-68')).find((e) => e.outcome === '4');
  t.equal(refused?.agent.find((a) => a.requestor)?.who?.reference, 'Practitioner/stranger', 'the refused retrieve is recorded for the patient');
});
