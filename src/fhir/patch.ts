// fhir/patch: PATCH [base]/[type]/[id] (R4 http 3.1.0.6) with a JSON Patch document (RFC 6902,
// applied with fast-json-patch) or a FHIRPath Patch (a Parameters resource, fhirpath-patch.ts),
// applied to the current version, then validated like any update.

import jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { indexEntries } from '../search/extract.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { FhirError, Gone, Invalid, MethodNotAllowed, NotFound, PreconditionFailed, UnsupportedMediaType, Unprocessable } from '../base/outcome.js';
import { applyOne, checkId, etag, incomingResource, parseIfMatch, versionResponse, type Prepared } from './resource.js';
import { applyFhirPathPatch, isFhirPathPatch } from './fhirpath-patch.js';
import { access, assertAllowed, assertWrite, previousOf } from './access.js';
import { obligations } from './create.js';
import { withContent } from './binary.js';

export const JSON_PATCH = 'application/json-patch+json';

// fast-json-patch's error names for a document that is not a well-formed patch.
const MALFORMED = new Set([
  'SEQUENCE_NOT_AN_ARRAY',
  'OPERATION_NOT_AN_OBJECT',
  'OPERATION_OP_INVALID',
  'OPERATION_PATH_INVALID',
  'OPERATION_FROM_REQUIRED',
  'OPERATION_VALUE_REQUIRED',
  'OPERATION_VALUE_CANNOT_CONTAIN_UNDEFINED',
]);

type PatchDocument = { kind: 'json-patch'; operations: Operation[] } | { kind: 'fhirpath-patch'; parameters: Parameters };

function patchDocument(req: FhirRequest): PatchDocument {
  if (req.body.kind === 'json' && req.body.mediaType !== JSON_PATCH && isFhirPathPatch(req.body.value)) return { kind: 'fhirpath-patch', parameters: req.body.value };
  if (req.body.kind !== 'json' || req.body.mediaType !== JSON_PATCH) {
    throw new UnsupportedMediaType(`PATCH takes a JSON Patch document with Content-Type ${JSON_PATCH}, or a FHIRPath Patch Parameters resource in FHIR JSON`);
  }
  if (!Array.isArray(req.body.value)) throw new Invalid('A JSON Patch document is an array of operations');
  return { kind: 'json-patch', operations: req.body.value as Operation[] };
}

function applyJsonPatch(resource: unknown, operations: Operation[]): unknown {
  try {
    return jsonpatch.applyPatch(structuredClone(resource), operations, true, true, true).newDocument;
  } catch (error) {
    const name = error instanceof jsonpatch.JsonPatchError ? error.name : undefined;
    const index = error instanceof jsonpatch.JsonPatchError ? error.index : undefined;
    const where = index !== undefined ? `operation ${index}: ` : '';
    if (name !== undefined && MALFORMED.has(name)) throw new Invalid(`Malformed JSON Patch, ${where}${name}`);
    // R4 3.1.0.6: a patch that cannot be applied (failed test, missing path) is 422.
    throw new Unprocessable(`The patch cannot be applied, ${where}${name ?? String(error)}`);
  }
}

export async function preparePatch(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<Prepared> {
  checkId(id);
  if (type === 'AuditEvent') throw new MethodNotAllowed('AuditEvents are immutable', 'GET');
  const granted = access(req, type, 'u');
  const document = patchDocument(req);
  const current = await ctx.store.read(type, id);
  // What the caller may not see reads as missing, even when it was deleted.
  const previous = await previousOf(ctx, current);
  if (!previous) throw new NotFound(`${type}/${id}`);
  await assertAllowed(ctx, granted, previous.resource, previous.creator, `${type}/${id}`);
  if (current.kind !== 'found') throw new Gone(`${type}/${id}`, current.kind === 'deleted' ? { etag: etag(current.version.versionId) } : {});
  const { version } = current;
  if (req.ifMatch !== undefined && parseIfMatch(req.ifMatch) !== version.versionId) {
    throw new PreconditionFailed(`${type}/${id}: version conflict, If-Match ${req.ifMatch} but current is ${etag(version.versionId)}`);
  }
  // A Binary is patched as clients see it, its bytes in `data` (they move back to the blob store on write).
  const before = await withContent(ctx.store, version.resource as Resource);
  const patched: unknown = document.kind === 'json-patch' ? applyJsonPatch(before, document.operations) : applyFhirPathPatch(before, document.parameters);
  const result = patched as { resourceType?: unknown; id?: unknown };
  if (result.resourceType !== type || result.id !== id) throw new Unprocessable('A patch may not change resourceType or id');
  let resource;
  try {
    resource = { ...incomingResource(patched, type, { replacing: true }), id };
  } catch (error) {
    // The patched resource is invalid: 422 with the same issues (R4 3.1.0.6).
    if (error instanceof FhirError) throw new FhirError(422, error.issues);
    throw error;
  }
  const permit = await assertWrite(ctx, granted, 'update', { before: previous, after: resource }, `${type}/${id}`);
  return {
    op: { kind: 'update', resource, index: indexEntries(resource), expectedVersion: version.versionId },
    extra: obligations(permit),
    respond(result) {
      if (result.kind !== 'updated' && result.kind !== 'unchanged') throw new Error(`unexpected patch result ${result.kind}`);
      return versionResponse(ctx, req, 200, result.version, false);
    },
  };
}

export async function patch(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<FhirResponse> {
  return applyOne(ctx, req, await preparePatch(ctx, req, type, id));
}
