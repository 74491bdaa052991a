// An answered read is in the patient's access log at once. The SQLite engine writes the index rows
// of an AuditEvent after its commit (store/sqlite/deferred.ts), so this goes through the real
// server (its writer thread) over HTTP: rounds of many parallel reads by the GP, each followed at
// once by the patient's searches (AuditEvent?patient=, _revinclude:AuditEvent, _has:AuditEvent),
// which must count every read answered so far.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Bundle } from '@medplum/fhirtypes';
import { developmentTokenFor } from '../helpers.js';
import { startServer } from '../child-server.js';

const FHIR_JSON = 'application/fhir+json';
const PATIENT = 'cons-patient';
const GP = 'cons-gp';
const DOC = 'cons-doc';
const ROUNDS = 5;
const PARALLEL = 40;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-audit-consistency-'));
t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));

t.test('every answered read is found by the next search of the access log, under concurrency', async (t) => {
  const child = await startServer(dataDir);
  t.teardown(() => {
    child.proc.kill('SIGKILL');
  });
  const token = async (actor: Parameters<typeof developmentTokenFor>[2]) => `Bearer ${await developmentTokenFor(dataDir, child.base, actor)}`;
  const call = async (auth: string, url: string, init: RequestInit = {}) => {
    const res = await fetch(`${child.base}/${url}`, { ...init, headers: { 'content-type': FHIR_JSON, accept: FHIR_JSON, authorization: auth } });
    const body = (await res.json()) as Bundle;
    if (res.status >= 300) throw new Error(`${url}: ${res.status} ${JSON.stringify(body)}`);
    return body;
  };
  const loader = await token({ kind: 'system', client: 'cons-loader' });
  const put = (resource: { resourceType: string; id: string } & Record<string, unknown>) => call(loader, `${resource.resourceType}/${resource.id}`, { method: 'PUT', body: JSON.stringify(resource) });
  await put({ resourceType: 'Practitioner', id: GP });
  await put({ resourceType: 'Patient', id: PATIENT, generalPractitioner: [{ reference: `Practitioner/${GP}` }] });
  await put({
    resourceType: 'DocumentReference',
    id: DOC,
    status: 'current',
    subject: { reference: `Patient/${PATIENT}` },
    author: [{ reference: `Practitioner/${GP}` }],
    content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${DOC}` } }],
  });
  const gp = await token({ kind: 'practitioner', practitioner: GP, profession: '10', purpose: 'TREAT' });
  const patient = await token({ kind: 'patient', patient: PATIENT });
  const readsByGp = (bundle: Bundle) =>
    (bundle.entry ?? []).filter((e) => {
      const event = e.resource;
      return event?.resourceType === 'AuditEvent' && event.subtype?.[0]?.code === 'read' && event.agent.some((a) => a.who?.reference === `Practitioner/${GP}`);
    }).length;

  let answered = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    await Promise.all(Array.from({ length: PARALLEL }, () => call(gp, `DocumentReference/${DOC}`)));
    answered += PARALLEL;
    const [log, revincluded, has] = await Promise.all([
      call(patient, `AuditEvent?patient=${PATIENT}&subtype=read&_count=1000`),
      call(patient, `DocumentReference?_id=${DOC}&_revinclude=AuditEvent:entity&_count=1`),
      call(patient, `DocumentReference?_has:AuditEvent:entity:agent=Practitioner/${GP}`),
    ]);
    t.equal(readsByGp(log), answered, `round ${round}: AuditEvent?patient= lists all ${answered} reads answered`);
    t.equal(readsByGp(revincluded), answered, `round ${round}: _revinclude:AuditEvent brings all ${answered}`);
    t.equal((has.entry ?? []).filter((e) => e.resource?.id === DOC).length, 1, `round ${round}: _has:AuditEvent finds the document read`);
  }
});
