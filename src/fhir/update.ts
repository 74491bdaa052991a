// fhir/update: PUT [base]/[type]/[id] (R4 http 3.1.0.4), update-as-create with a client id,
// If-Match optimistic locking, and conditional update PUT [base]/[type]?criteria (3.1.0.4.3).

import { indexEntries } from '../search/extract.js';
import { parseCriteria } from '../search/plan.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { newId, resourceFromBody } from './body.js';
import { Invalid, MethodNotAllowed, PreconditionFailed } from './outcome.js';
import { applyOne, checkId, parseIfMatch, versionResponse, type Prepared } from './resource.js';
import { access, assertAllowed, assertReadable, assertWritable, searchAs } from './access.js';
import { creatorKey } from '../policy/decide.js';

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

/** Prepares PUT [type]/[id]; the body's id must equal the URL's (a raw Binary body takes it). */
export async function prepareUpdate(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<Prepared> {
  checkId(id);
  if (type === 'AuditEvent') throw new MethodNotAllowed('AuditEvents are immutable', 'GET');
  const granted = access(req, type, 'u');
  const resource = resourceFromBody(req.body, type);
  if (req.body.kind === 'json') {
    if (resource.id === undefined) throw new Invalid('An update must carry the resource id in the body (R4 3.1.0.4)', `${type}.id`);
    if (resource.id !== id) throw new Invalid(`The body's id "${resource.id}" does not match the URL's id "${id}"`, `${type}.id`);
  }
  const stored = { ...resource, id };
  assertWritable(granted, stored);
  // The resource replaced must be one the actor may change (else, if hidden, it is not revealed: 404).
  const current = await ctx.store.read(type, id);
  if (current.kind === 'found') await assertReadable(ctx, granted, current, `${type}/${id}`, 'update');
  await assertAllowed(ctx, granted, current.kind === 'found' ? 'update' : 'create', stored, current.kind === 'found' ? current.version.creator : creatorKey(granted.actor), `${type}/${id}`);
  const expectedVersion = req.ifMatch !== undefined ? parseIfMatch(req.ifMatch) : undefined;
  return {
    op: { kind: 'update', resource: stored, index: indexEntries(stored), creator: creatorKey(granted.actor), ...(expectedVersion !== undefined ? { expectedVersion } : {}) },
    respond: updateResponder(ctx, req),
  };
}

/** Prepares PUT [type]?criteria: no match creates, one match updates it, several answer 412. */
export async function prepareConditionalUpdate(ctx: FhirContext, req: FhirRequest, type: string, criteria: string): Promise<Prepared> {
  if (type === 'AuditEvent') throw new MethodNotAllowed('AuditEvents are immutable', 'GET');
  const plan = parseCriteria(type, criteria);
  const granted = access(req, type, 'u');
  const { matches } = await searchAs(ctx, req, plan, { count: 2 });
  if (matches.length > 1) throw new PreconditionFailed(`The criteria "${criteria}" match more than one ${type}`, 'multiple-matches');
  const resource = resourceFromBody(req.body, type);
  if (matches.length === 1) {
    const [match] = matches;
    if (resource.id !== undefined && resource.id !== match.id) {
      throw new Invalid(`The body's id "${resource.id}" is not the id of the resource matching the criteria`, `${type}.id`);
    }
    const stored = { ...resource, id: match.id };
    assertWritable(granted, stored);
    await assertAllowed(ctx, granted, 'update', stored, match.creator, `${type}/${match.id}`);
    return {
      op: { kind: 'update', resource: stored, index: indexEntries(stored), expectedVersion: match.versionId, creator: creatorKey(granted.actor) },
      respond: updateResponder(ctx, req),
    };
  }
  if (resource.id !== undefined) {
    // No match but an id: update-as-create with it, refused if that id exists (it does not match).
    const stored = { ...resource, id: checkId(resource.id) };
    assertWritable(granted, stored);
    await assertAllowed(ctx, granted, 'create', stored, creatorKey(granted.actor), `${type}/${stored.id}`);
    return { op: { kind: 'update', resource: stored, index: indexEntries(stored), mustBeNew: true, creator: creatorKey(granted.actor) }, respond: updateResponder(ctx, req) };
  }
  const stored = { ...resource, id: newId() };
  assertWritable(granted, stored);
  await assertAllowed(ctx, granted, 'create', stored, creatorKey(granted.actor), `${type}/${stored.id}`);
  return { op: { kind: 'create', resource: stored, index: indexEntries(stored), ifNoneExist: plan, creator: creatorKey(granted.actor) }, respond: updateResponder(ctx, req) };
}

export async function update(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<FhirResponse> {
  return applyOne(ctx, req, await prepareUpdate(ctx, req, type, id));
}

export async function conditionalUpdate(ctx: FhirContext, req: FhirRequest, type: string, criteria: string): Promise<FhirResponse> {
  return applyOne(ctx, req, await prepareConditionalUpdate(ctx, req, type, criteria));
}
