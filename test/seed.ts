// Test worlds written straight through the storage port, as if each resource had been written
// earlier by its rightful author: Consents by their patient, the rest by a vendor system. The write
// rules themselves are tested through HTTP (test/policy/writes.test.ts, property.test.ts); a world
// is seeded before the first request, since the policy only learns of writes made through the API.
import type { Consent, Patient, Resource } from '@medplum/fhirtypes';
import { fhir, json, type TestServer } from './helpers.js';
import { indexEntries } from '../src/search/extract.js';
import type { Store } from '../src/store/port.js';

/** The creator key a resource gets: its patient for a Consent, else `client:<loader>`. */
export function authorOf(resource: Resource, loader = 'loader'): string {
  if (resource.resourceType === 'Consent') {
    const patient = /(?:^|\/)Patient\/([^/]+)$/.exec((resource as Consent).patient?.reference ?? '')?.[1];
    if (patient) return `patient:${patient}`;
  }
  return `client:${loader}`;
}

/** Writes each resource (a new version when it exists), in order, with its author as creator. */
export async function seed(store: Store, resources: Resource[], loader = 'loader'): Promise<void> {
  for (const resource of resources) {
    if (!resource.id) throw new Error(`seed: ${resource.resourceType} without id`);
    const stored = resource as Resource & { id: string };
    await store.transact([{ kind: 'update', resource: stored, index: indexEntries(stored), creator: authorOf(resource, loader) }], new Date().toISOString());
  }
}

/** The patient chooses their general practitioner(s), as docs/consent.md says only they do. */
export async function chooseGeneralPractitioner(server: Pick<TestServer, 'app' | 'token'>, patientId: string, practitionerIds: string[]): Promise<void> {
  const headers = { authorization: `Bearer ${await server.token({ kind: 'patient', patient: patientId })}` };
  const current = await fhir(server.app, 'GET', `Patient/${patientId}`, undefined, headers);
  if (current.statusCode !== 200) throw new Error(`Patient/${patientId}: ${current.statusCode} ${current.body}`);
  const patient = { ...json<Patient>(current), generalPractitioner: practitionerIds.map((id) => ({ reference: `Practitioner/${id}` })) };
  const res = await fhir(server.app, 'PUT', `Patient/${patientId}`, patient, headers);
  if (res.statusCode !== 200) throw new Error(`Patient/${patientId}: ${res.statusCode} ${res.body}`);
}
