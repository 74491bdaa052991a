// fhir/everything: GET [base]/Patient/[id]/$everything (R4 Patient-everything,
// http://hl7.org/fhir/OperationDefinition/Patient-everything): the patient's record as the caller
// may read it, in one searchset Bundle: the Patient and every resource of its compartment (R4
// CompartmentDefinition "patient") that the server serves. Everything is read with the server's
// own read and searches (fhir/readable), so the policy decides each entry exactly as a search of
// the caller's would: the patient and their representatives get their whole record, a closed
// account's included (docs/accounts.md: the person takes their record with them); a professional
// gets what they may see, nothing once the account is closed. Recorded once, like any operation.
//
// Left out: the access log (AuditEvent, searched on its own: docs/consent.md) and the bytes of
// Binaries (each document's attachment URL names its Binary, read on its own). A record larger
// than MAX_ENTRIES is refused with 422 rather than cut short: `_type` and `_since` split it.

import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { SERVED_TYPES } from '../base/registry.js';
import { Invalid, Unprocessable } from '../base/outcome.js';
import { compartmentParams } from '../policy/compartment.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import type { Operation } from './operations.js';
import { read } from './read.js';
import { readable } from './readable.js';
import { bundle } from './bundle.js';

/** The most resources one answer holds. */
export const MAX_ENTRIES = 10_000;

/** The types $everything gathers: every served type of the compartment, but the access log. */
export const EVERYTHING_TYPES: readonly string[] = SERVED_TYPES.filter((type) => type !== 'AuditEvent' && type !== 'Patient' && compartmentParams(type).length > 0);

const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

function parameter(req: FhirRequest, name: string): string | undefined {
  return req.query.find(([n]) => n === name)?.[1];
}

/** The types asked for with `_type` (every one by default); 400 for a type outside the record. */
function typesOf(req: FhirRequest): readonly string[] {
  const asked = parameter(req, '_type');
  if (asked === undefined) return EVERYTHING_TYPES;
  const types = asked.split(',').map((t) => t.trim()).filter((t) => t !== '' && t !== 'Patient');
  const unknown = types.filter((t) => !EVERYTHING_TYPES.includes(t));
  if (unknown.length > 0) throw new Invalid(`_type: ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not part of a patient's record here (one of Patient, ${EVERYTHING_TYPES.join(', ')})`, '_type');
  return types;
}

async function everything(ctx: FhirContext, req: FhirRequest, id: string): Promise<FhirResponse> {
  const since = parameter(req, '_since');
  if (since !== undefined && !INSTANT.test(since)) throw new Invalid(`_since must be an instant (e.g. 2027-01-01T00:00:00Z), got "${since}"`, '_since');
  const types = typesOf(req);
  const plain: FhirRequest = { ...req, method: 'GET', query: [], body: { kind: 'none' } };
  delete plain.ifNoneMatch;
  delete plain.ifModifiedSince;
  // The Patient as a read answers it: 404 when the caller may not see it, exactly as when it does not exist.
  const patient = (await read(ctx, { ...plain, target: { kind: 'instance', type: 'Patient', id } }, 'Patient', id)).resource as Resource;
  const found = new Map<string, Resource>();
  const filters: [string, string][] = since !== undefined ? [['_lastUpdated', `ge${since}`]] : [];
  for (const type of types) {
    for (const param of compartmentParams(type)) {
      for (const resource of await readable(ctx, plain, type, [[param, `Patient/${id}`], ...filters], MAX_ENTRIES + 1)) {
        found.set(`${resource.resourceType}/${resource.id}`, resource);
        if (found.size > MAX_ENTRIES) throw new Unprocessable(`The record holds more than ${MAX_ENTRIES} resources: ask for parts of it with _type (and _since)`);
      }
    }
  }
  const resources = [...(since === undefined || (patient.meta?.lastUpdated ?? '') >= since ? [patient] : []), ...found.values()];
  const entries: BundleEntry[] = resources.map((resource) => ({ fullUrl: `${ctx.baseUrl}/${resource.resourceType}/${resource.id}`, resource, search: { mode: 'match' } }));
  const answer: Bundle = bundle('searchset', entries, { total: entries.length });
  return { status: 200, headers: {}, resource: answer };
}

export const EVERYTHING_OPERATION: Operation = {
  name: 'everything',
  definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything',
  documentation:
    'GET Patient/[id]/$everything: the patient\'s record as the caller may read it, in one searchset Bundle: the Patient and every resource of its compartment, decided by the consent policy as a search would be (the person and their representatives: their whole record, a closed account\'s included; a professional: what they may see). `_type` (comma-separated) and `_since` (an instant) narrow it. Not included: the access log (AuditEvent) and Binary bytes. Over 10,000 resources: 422, to be split with _type and _since (docs/accounts.md).',
  types: ['Patient'],
  parameters: [
    { name: '_since', use: 'in', min: 0, max: '1', type: 'instant', documentation: 'Only resources updated at or after this instant.' },
    { name: '_type', use: 'in', min: 0, max: '*', type: 'string', documentation: 'Only resources of these types (comma-separated).' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A searchset Bundle: the Patient and the resources of its record the caller may read.' },
  ],
  instance: { methods: ['GET'], handler: (ctx, req, _type, id) => everything(ctx, req, id) },
};
