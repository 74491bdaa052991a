// fhir/delete: DELETE [base]/[type]/[id] (R4 http 3.1.0.7) writes a versioned tombstone: the
// resource then reads as 410 Gone and its history keeps every version. Conditional delete too.

import { parseCriteria } from '../search/plan.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { informational, MethodNotAllowed, NotFound, PreconditionFailed } from '../base/outcome.js';
import { applyOne, checkId, etag, parseIfMatch, type Prepared } from './resource.js';
import { access, assertWrite, conditionalMatches, previousOf, type Access, type Previous } from './access.js';
import { obligations } from './create.js';

function prepare(req: FhirRequest, type: string, id: string, expectedVersion?: number, absent = `${type}/${id} does not exist`): Prepared {
  return {
    op: { kind: 'delete', type, id, ...(expectedVersion !== undefined ? { expectedVersion } : {}) },
    respond(result): FhirResponse {
      const minimal = req.prefer.return === 'minimal';
      if (result.kind === 'deleted') {
        return {
          status: minimal ? 204 : 200,
          headers: { etag: etag(result.version.versionId) },
          ...(minimal ? {} : { resource: informational(`Deleted ${type}/${id} (version ${result.version.versionId})`) }),
        };
      }
      // R4: deleting a resource that does not exist (or no longer does) is not an error.
      return { status: minimal ? 204 : 200, headers: {}, ...(minimal ? {} : { resource: informational(`${absent}; nothing to delete`) }) };
    },
  };
}

/** Nothing to delete: the answer for a resource that does not exist, and for one the caller cannot see. */
function nothing(req: FhirRequest, type: string, id: string, absent?: string): Prepared {
  return { ...prepare(req, type, id, undefined, absent), op: undefined };
}

/**
 * The delete of `previous` (stored as type/id) if the actor may make it. A resource the caller
 * cannot see answers exactly as one that does not exist (R4: 200, nothing to delete); the refused
 * attempt is still in the patient's access log.
 */
async function prepareRemoval(ctx: FhirContext, req: FhirRequest, granted: Access, type: string, id: string, previous: Previous, expectedVersion: number | undefined, absent?: string): Promise<Prepared> {
  try {
    const permit = await assertWrite(ctx, granted, 'delete', { before: previous }, `${type}/${id}`);
    return { ...prepare(req, type, id, expectedVersion), before: previous.resource, extra: obligations(permit) };
  } catch (error) {
    if (!(error instanceof NotFound)) throw error;
    return { ...nothing(req, type, id, absent), ...(error.denied ? { denied: error.denied } : {}) };
  }
}

export async function prepareDelete(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<Prepared> {
  checkId(id);
  if (type === 'AuditEvent') throw new MethodNotAllowed('AuditEvents are immutable', 'GET');
  const granted = access(req, type, 'd');
  const current = await ctx.store.read(type, id);
  const previous = await previousOf(ctx, current);
  if (!previous) return nothing(req, type, id);
  // The audit record names the patient whose resource it was: the tombstone will not say.
  return prepareRemoval(ctx, req, granted, type, id, previous, req.ifMatch !== undefined ? parseIfMatch(req.ifMatch) : undefined);
}

/** DELETE [type]?criteria: deletes the one match; several matches answer 412 (R4 3.1.0.7.1). Hidden resources never match. */
export async function prepareConditionalDelete(ctx: FhirContext, req: FhirRequest, type: string, criteria: string): Promise<Prepared> {
  if (type === 'AuditEvent') throw new MethodNotAllowed('AuditEvents are immutable', 'GET');
  const granted = access(req, type, 'd');
  const { matches } = (await conditionalMatches(ctx, req, parseCriteria(type, criteria))).page;
  if (matches.length > 1) throw new PreconditionFailed(`The criteria "${criteria}" match more than one ${type}`, 'multiple-matches');
  const [match] = matches;
  const absent = `No ${type} matches "${criteria}"`;
  if (!match?.resource) return nothing(req, type, '', absent);
  return prepareRemoval(ctx, req, granted, type, match.id, { resource: match.resource, ...(match.creator !== undefined ? { creator: match.creator } : {}) }, match.versionId, absent);
}

export async function remove(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<FhirResponse> {
  return applyOne(ctx, req, await prepareDelete(ctx, req, type, id));
}

export async function conditionalDelete(ctx: FhirContext, req: FhirRequest, type: string, criteria: string): Promise<FhirResponse> {
  return applyOne(ctx, req, await prepareConditionalDelete(ctx, req, type, criteria));
}
