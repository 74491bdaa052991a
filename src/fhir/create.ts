// fhir/create: POST [base]/[type] (R4 http 3.1.0.8), with conditional create (If-None-Exist).

import type { Resource } from '@medplum/fhirtypes';
import { indexEntries } from '../search/extract.js';
import { parseCriteria } from '../search/plan.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { newId, resourceFromBody } from './body.js';
import { informational } from '../base/outcome.js';
import { applyOne, locationOf, versionResponse, type Prepared } from './resource.js';
import { access, assertWrite, conditionalMatches, type Permit } from './access.js';
import { creatorKey } from '../policy/decide.js';
import type { WriteOp } from '../store/port.js';

/** The writes a permit's obligations add to the transaction: the stamps it bumps, and the writes that go with it. */
export function obligations(permit: Permit): WriteOp[] {
  return [...(permit.stamps ?? []).map((key): WriteOp => ({ kind: 'stamp', key })), ...(permit.ops ?? [])];
}

/** Prepares a create; `id` is given by a transaction that already mapped a urn:uuid to it. */
export async function prepareCreate(ctx: FhirContext, req: FhirRequest, type: string, id: string = newId()): Promise<Prepared> {
  // R4: the server assigns the id; one sent by the client is ignored.
  const granted = access(req, type, 'c');
  const resource = { ...resourceFromBody(req.body, type), id };
  const permit = await assertWrite(ctx, granted, 'create', { after: resource }, `${type}/${id}`);
  // If-None-Exist runs under the caller's restrictions: a match they cannot see is no match.
  const conditional = req.ifNoneExist !== undefined ? await conditionalMatches(ctx, req, parseCriteria(type, req.ifNoneExist)) : undefined;
  // Identity by INS: the caller may learn that the Patient exists (its reference), not read it.
  const readable = new Set<string>();
  if (conditional?.identity) {
    for (const match of conditional.page.matches) {
      if (match.resource && (await ctx.policy.decide(granted.actor, match.resource, match.creator)).permit) readable.add(match.id);
    }
  }
  return {
    op: { kind: 'create', resource, index: indexEntries(resource), creator: creatorKey(granted.actor), ...(conditional ? { ifNoneExist: conditional.plan } : {}) },
    extra: obligations(permit),
    respond(result): FhirResponse {
      switch (result.kind) {
        case 'created':
          return versionResponse(ctx, req, 201, result.version, true);
        case 'existing':
          if (conditional?.identity && !readable.has(result.version.id)) {
            const location = locationOf(ctx, result.version);
            return { status: 200, headers: { location }, resource: informational(`${type}/${result.version.id} already has this identifier; this client may refer to it, not read it`) };
          }
          // R4 3.1.0.8.1: one match, the server ignores the post and answers 200.
          return versionResponse(ctx, req, 200, result.version, true);
        default:
          throw new Error(`unexpected create result ${result.kind}`);
      }
    },
  };
}

export async function create(ctx: FhirContext, req: FhirRequest, type: string): Promise<FhirResponse> {
  return applyOne(ctx, req, await prepareCreate(ctx, req, type));
}
