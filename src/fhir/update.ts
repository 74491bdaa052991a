// fhir/update: PUT [base]/[type]/[id] (R4 http 3.1.0.4), update-as-create with a client id,
// If-Match optimistic locking, and conditional update PUT [base]/[type]?criteria (3.1.0.4.3).

import type { Resource } from '@medplum/fhirtypes';
import { indexEntries } from '../search/extract.js';
import { parseCriteria } from '../search/plan.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { newId, resourceFromBody } from './body.js';
import { Forbidden, Invalid, MethodNotAllowed, NotFound, PreconditionFailed } from '../base/outcome.js';
import { applyOne, checkId, parseIfMatch, versionResponse, type Prepared } from './resource.js';
import { access, assertWrite, conditionalMatches, previousOf, type Access } from './access.js';
import { creatorKey } from '../policy/decide.js';
import { obligations } from './create.js';

function updateResponder(ctx: FhirContext, req: FhirRequest): Prepared['respond'] {
  return (result) => {
    switch (result.kind) {
      case 'created':
        return versionResponse(ctx, req, 201, result.version, true);
      case 'updated':
      case 'unchanged':
        return versionResponse(ctx, req, 200, result.version, false);
      case 'existing':
        throw new PreconditionFailed(`${result.version.type}: a resource matching the criteria was created concurrently; retry`);
      default:
        throw new Error(`unexpected update result ${result.kind}`);
    }
  };
}

/**
 * Update-as-create with a client-chosen id is for systems (feeds and migrations). For anyone else
 * an id that is not theirs to update answers 404 whether it is free or taken by a resource they
 * cannot see, so that the answer says nothing of it (docs/consent.md).
 */
function clientIdCreate(granted: Access, what: string): void {
  if (granted.actor.kind !== 'system') throw new NotFound(what);
}

/** Prepares a write of `stored` over what `type/id` holds now: an update, or update-as-create. */
async function prepareWrite(ctx: FhirContext, req: FhirRequest, granted: Access, stored: Resource & { id: string }, expectedVersion: number | undefined, mustBeNew = false): Promise<Prepared> {
  const type = stored.resourceType;
  const what = `${type}/${stored.id}`;
  const previous = await previousOf(ctx, await ctx.store.read(type, stored.id));
  if (!previous) clientIdCreate(granted, what);
  else if (granted.actor.kind === 'system' && !(await ctx.policy.decide(granted.actor, previous.resource, previous.creator)).permit) {
    // A system's PUT to an id it cannot see answers as a create at a free id would, as far as it
    // can: the same refusal when it may not create this; a 404 when it could (the id is taken).
    await assertWrite(ctx, granted, 'create', { after: stored }, what);
  }
  const permit = previous ? await assertWrite(ctx, granted, 'update', { before: previous, after: stored }, what) : await assertWrite(ctx, granted, 'create', { after: stored }, what);
  return {
    op: {
      kind: 'update',
      resource: stored,
      index: indexEntries(stored),
      creator: creatorKey(granted.actor),
      ...(expectedVersion !== undefined ? { expectedVersion } : {}),
      ...(mustBeNew ? { mustBeNew: true } : {}),
    },
    extra: obligations(permit),
    respond: updateResponder(ctx, req),
  };
}

/** Prepares PUT [type]/[id]; the body's id must equal the URL's (a raw Binary body takes it). */
export async function prepareUpdate(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<Prepared> {
  checkId(id);
  if (type === 'AuditEvent') throw new MethodNotAllowed('AuditEvents are immutable', 'GET');
  const granted = access(req, type, 'u');
  const resource = resourceFromBody(req.body, type, { replacing: true });
  if (req.body.kind === 'json') {
    if (resource.id === undefined) throw new Invalid('An update must carry the resource id in the body (R4 3.1.0.4)', `${type}.id`);
    if (resource.id !== id) throw new Invalid(`The body's id "${resource.id}" does not match the URL's id "${id}"`, `${type}.id`);
  }
  return prepareWrite(ctx, req, granted, { ...resource, id }, req.ifMatch !== undefined ? parseIfMatch(req.ifMatch) : undefined);
}

/**
 * Prepares PUT [type]?criteria: no match creates, one match updates it, several answer 412. The
 * criteria match only what the caller may see (a hidden resource is no match).
 */
export async function prepareConditionalUpdate(ctx: FhirContext, req: FhirRequest, type: string, criteria: string): Promise<Prepared> {
  if (type === 'AuditEvent') throw new MethodNotAllowed('AuditEvents are immutable', 'GET');
  const granted = access(req, type, 'u');
  const conditional = await conditionalMatches(ctx, req, parseCriteria(type, criteria));
  const { matches } = conditional.page;
  if (matches.length > 1) throw new PreconditionFailed(`The criteria "${criteria}" match more than one ${type}`, 'multiple-matches');
  const resource = resourceFromBody(req.body, type, { replacing: true });
  if (matches.length === 1) {
    const [match] = matches;
    if (resource.id !== undefined && resource.id !== match.id) {
      throw new Invalid(`The body's id "${resource.id}" is not the id of the resource matching the criteria`, `${type}.id`);
    }
    // Identity by INS: the Patient exists, and the caller knows it; changing it is its owners'.
    if (conditional.identity && match.resource && !(await ctx.policy.decide(granted.actor, match.resource, match.creator)).permit) {
      throw new Forbidden(`A ${type} with this identifier exists; this client may refer to it, not change it`);
    }
    return prepareWrite(ctx, req, granted, { ...resource, id: match.id }, match.versionId);
  }
  if (resource.id !== undefined) {
    // No match but an id: update-as-create with it (systems only), refused if that id exists.
    if (granted.actor.kind !== 'system') throw new Invalid('A conditional update that matches nothing creates a resource with an id the server assigns: leave the id out', `${type}.id`);
    return prepareWrite(ctx, req, granted, { ...resource, id: checkId(resource.id) }, undefined, true);
  }
  const stored = { ...resource, id: newId() };
  const permit = await assertWrite(ctx, granted, 'create', { after: stored }, `${type}/${stored.id}`);
  return {
    op: { kind: 'create', resource: stored, index: indexEntries(stored), ifNoneExist: conditional.plan, creator: creatorKey(granted.actor) },
    extra: obligations(permit),
    respond: updateResponder(ctx, req),
  };
}

export async function update(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<FhirResponse> {
  return applyOne(ctx, req, await prepareUpdate(ctx, req, type, id));
}

export async function conditionalUpdate(ctx: FhirContext, req: FhirRequest, type: string, criteria: string): Promise<FhirResponse> {
  return applyOne(ctx, req, await prepareConditionalUpdate(ctx, req, type, criteria));
}
