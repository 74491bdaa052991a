// fhir/create: POST [base]/[type] (R4 http 3.1.0.8), with conditional create (If-None-Exist).

import { indexEntries } from '../search/extract.js';
import { parseCriteria } from '../search/plan.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { newId, resourceFromBody } from './body.js';
import { applyOne, versionResponse, type Prepared } from './resource.js';
import { access, assertAllowed, assertWritable } from './access.js';
import { creatorKey } from '../policy/decide.js';
import { notification } from '../audit/notify.js';

/** Prepares a create; `id` is given by a transaction that already mapped a urn:uuid to it. */
export async function prepareCreate(ctx: FhirContext, req: FhirRequest, type: string, id: string = newId()): Promise<Prepared> {
  // R4: the server assigns the id; one sent by the client is ignored.
  const granted = access(req, type, 'c');
  const resource = { ...resourceFromBody(req.body, type), id };
  assertWritable(granted, resource);
  const permit = await assertAllowed(ctx, granted, 'create', resource, creatorKey(granted.actor), `${type}/${id}`);
  const extra = permit.notifyPatient !== undefined ? [notification(permit.notifyPatient, resource, granted.actor, ctx.now())] : [];
  const ifNoneExist = req.ifNoneExist !== undefined ? parseCriteria(type, req.ifNoneExist) : undefined;
  return {
    op: { kind: 'create', resource, index: indexEntries(resource), creator: creatorKey(granted.actor), ...(ifNoneExist ? { ifNoneExist } : {}) },
    extra,
    respond(result): FhirResponse {
      switch (result.kind) {
        case 'created':
          return versionResponse(ctx, req, 201, result.version, true);
        case 'existing':
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
