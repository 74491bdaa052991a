// fhir/delete: DELETE [base]/[type]/[id] (R4 http 3.1.0.7) writes a versioned tombstone: the
// resource then reads as 410 Gone and its history keeps every version. Conditional delete too.

import { parseCriteria } from '../search/plan.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { informational, MethodNotAllowed, PreconditionFailed } from './outcome.js';
import { applyOne, checkId, etag, parseIfMatch, type Prepared } from './resource.js';
import { access, assertAllowed, assertReadable, searchAs } from './access.js';

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

export async function prepareDelete(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<Prepared> {
  checkId(id);
  if (type === 'AuditEvent') throw new MethodNotAllowed('AuditEvents are immutable', 'GET');
  const granted = access(req, type, 'd');
  const current = await ctx.store.read(type, id);
  await assertReadable(ctx, granted, current, `${type}/${id}`, 'delete');
  const prepared = prepare(req, type, id, req.ifMatch !== undefined ? parseIfMatch(req.ifMatch) : undefined);
  // The audit record names the patient whose resource it was: the tombstone will not say.
  return current.kind === 'found' && current.version.resource ? { ...prepared, before: current.version.resource } : prepared;
}

/** DELETE [type]?criteria: deletes the one match; several matches answer 412 (R4 3.1.0.7.1). */
export async function prepareConditionalDelete(ctx: FhirContext, req: FhirRequest, type: string, criteria: string): Promise<Prepared> {
  if (type === 'AuditEvent') throw new MethodNotAllowed('AuditEvents are immutable', 'GET');
  const granted = access(req, type, 'd');
  const { matches } = await searchAs(ctx, req, parseCriteria(type, criteria), { count: 2 });
  if (matches[0]?.resource) await assertAllowed(ctx, granted, 'delete', matches[0].resource, matches[0].creator, `${type}/${matches[0].id}`);
  if (matches.length > 1) throw new PreconditionFailed(`The criteria "${criteria}" match more than one ${type}`, 'multiple-matches');
  if (matches.length === 0) return { ...prepare(req, type, '', undefined, `No ${type} matches "${criteria}"`), op: undefined };
  const prepared = prepare(req, type, matches[0].id, matches[0].versionId);
  return matches[0].resource ? { ...prepared, before: matches[0].resource } : prepared;
}

export async function remove(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<FhirResponse> {
  return applyOne(ctx, req, await prepareDelete(ctx, req, type, id));
}

export async function conditionalDelete(ctx: FhirContext, req: FhirRequest, type: string, criteria: string): Promise<FhirResponse> {
  return applyOne(ctx, req, await prepareConditionalDelete(ctx, req, type, criteria));
}
