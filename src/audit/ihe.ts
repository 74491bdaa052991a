// audit/ihe: which IHE transaction an interaction is, for the AuditEvent subtype IHE profiles ask
// for next to the RESTful interaction (MHD: ITI-65 provide, ITI-66/67 find, ITI-68 retrieve).

import type { Bundle, Coding, List, Resource } from '@medplum/fhirtypes';
import type { AuditInteraction } from './event.js';

export const IHE_EVENT_TYPE = 'urn:ihe:event-type-code';
export const MHD_LIST_TYPES = 'https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes';

/** An MHD SubmissionSet: a List coded MHDlistTypes|submissionset. */
export function isSubmissionSet(resource: Resource | undefined): resource is List {
  return resource?.resourceType === 'List' && !!resource.code?.coding?.some((c) => c.system === MHD_LIST_TYPES && c.code === 'submissionset');
}

const ITI: Record<string, string> = {
  'ITI-65': 'Provide Document Bundle',
  'ITI-66': 'Find Document Lists',
  'ITI-67': 'Find Document References',
  'ITI-68': 'Retrieve Document',
};
const coding = (code: string): Coding => ({ system: IHE_EVENT_TYPE, code, display: ITI[code] });

/** The IHE MHD transaction an interaction is, if any: `type` is the resource type, `body` the request's JSON body. */
export function iheTransaction(interaction: AuditInteraction, type: string | undefined, body: unknown): Coding | undefined {
  if (interaction === 'search-type' && type === 'DocumentReference') return coding('ITI-67');
  if (interaction === 'search-type' && type === 'List') return coding('ITI-66');
  if ((interaction === 'read' || interaction === 'vread') && type === 'Binary') return coding('ITI-68');
  if (interaction === 'transaction' && ((body as Bundle | undefined)?.entry ?? []).some((e) => isSubmissionSet(e.resource))) return coding('ITI-65');
  return undefined;
}
