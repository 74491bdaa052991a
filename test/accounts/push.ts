// A vendor system's push of one document and its bytes (inline) for a patient, as a FHIR
// transaction: what the account tests push into accounts in each state.
import type { Bundle } from '@medplum/fhirtypes';

export function documentPush(patientId: string, text: string, description?: string): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:3f1e5d7a-0000-4000-8000-000000000001',
        resource: { resourceType: 'Binary', contentType: 'text/plain', data: Buffer.from(text).toString('base64'), securityContext: { reference: 'urn:uuid:3f1e5d7a-0000-4000-8000-000000000002' } },
        request: { method: 'POST', url: 'Binary' },
      },
      {
        fullUrl: 'urn:uuid:3f1e5d7a-0000-4000-8000-000000000002',
        resource: {
          resourceType: 'DocumentReference',
          status: 'current',
          type: { coding: [{ system: 'http://loinc.org', code: '11488-4' }] },
          subject: { reference: `Patient/${patientId}` },
          ...(description ? { description } : {}),
          content: [{ attachment: { contentType: 'text/plain', url: 'urn:uuid:3f1e5d7a-0000-4000-8000-000000000001' } }],
        },
        request: { method: 'POST', url: 'DocumentReference' },
      },
    ],
  };
}
