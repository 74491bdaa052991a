// fhir/resource: what every interaction does with a resource on its way in and out:
// checking an incoming body, version tags (ETag / If-Match), and the reply for a version.

import type { Resource } from '@medplum/fhirtypes';
import type { ResourceOp, Version, WriteOp, WriteResult } from '../store/port.js';
import { StoreUnavailable, WriteConflict } from '../store/port.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { FhirError, Invalid, PreconditionFailed, Conflict, ServiceUnavailable, Unprocessable, informational } from '../base/outcome.js';
import { schemaIssues } from './validate.js';
import { claimedProfileIssues } from './profiles.js';
import { auditOp, touchedBy } from './audited.js';
import { assertNoPointer, storeContent } from './binary.js';

const ID = /^[A-Za-z0-9\-.]{1,64}$/;

export function checkId(id: string, what = 'id'): string {
  if (!ID.test(id)) throw new Invalid(`${what} "${id.slice(0, 80)}" is not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)`);
  return id;
}

export type Stored = Resource & { id: string };

export interface IncomingOptions {
  /** The body replaces a stored resource (update, patch): a document may be retracted. */
  replacing?: boolean;
}

/**
 * The resource a create or update carries, checked: a JSON object of the URL's type that
 * passes the R4 schema (else 400) and the profiles of profiles/ that its meta.profile names
 * (else 422; profiles Carnet does not know are claims it accepts unchecked).
 * meta.versionId and meta.lastUpdated are the server's and are dropped.
 */
export function incomingResource(body: unknown, type: string, options: IncomingOptions = {}): Resource {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new Invalid('The body must be a FHIR resource: a JSON object with a resourceType');
  }
  const resource = body as { resourceType?: unknown; meta?: unknown };
  if (resource.resourceType !== type) {
    throw new Invalid(`The body's resourceType "${String(resource.resourceType)}" does not match the URL's type "${type}"`, 'resourceType');
  }
  const issues = schemaIssues(resource);
  if (issues.length > 0) {
    throw Invalid.of(issues.map((i) => ({ code: 'structure', diagnostics: i.diagnostics, expression: [i.expression] })));
  }
  assertNoPointer(resource as Resource);
  const checked = options.replacing ? withoutRetractedClaims({ ...(resource as Resource) }) : { ...(resource as Resource) };
  const profileIssues = claimedProfileIssues(checked);
  if (profileIssues.some((i) => i.severity !== 'warning')) throw Unprocessable.of(profileIssues);
  if (checked.meta) {
    const { versionId: _v, lastUpdated: _l, ...meta } = checked.meta;
    checked.meta = meta;
    if (Object.keys(meta).length === 0) delete checked.meta;
  }
  return checked;
}

/**
 * A document its author retracts (status entered-in-error, docs/mhd.md) no longer claims the
 * publication profiles whose status binding leaves entered-in-error out (IHE MHD
 * DocumentReferenceStats: current | superseded, which the ANS PDSm profiles reuse): those claims
 * are dropped from meta.profile, the earlier versions keep them. Every other claim is checked.
 */
function withoutRetractedClaims(resource: Resource): Resource {
  const claimed = resource.meta?.profile ?? [];
  if (resource.resourceType !== 'DocumentReference' || (resource as { status?: string }).status !== 'entered-in-error' || claimed.length === 0) return resource;
  const onStatusOnly = (url: string) => {
    const issues = claimedProfileIssues({ ...resource, meta: { ...resource.meta, profile: [url] } }).filter((i) => i.severity !== 'warning');
    return issues.length > 0 && issues.every((i) => (i.expression ?? []).every((e) => e === 'DocumentReference.status'));
  };
  const kept = claimed.filter((url) => !onStatusOnly(url));
  if (kept.length === claimed.length) return resource;
  const { profile: _dropped, ...meta } = resource.meta ?? {};
  return { ...resource, meta: kept.length > 0 ? { ...meta, profile: kept } : meta };
}

export function etag(versionId: number): string {
  return `W/"${versionId}"`;
}

/** Parses If-Match (W/"3", "3" or 3) into a version number. */
export function parseIfMatch(value: string): number {
  const match = /^(?:W\/)?"?(\d+)"?$/.exec(value.trim());
  if (!match) throw new Invalid(`If-Match "${value}" is not a version tag like W/"3"`);
  return Number(match[1]);
}

export function locationOf(ctx: FhirContext, version: Version): string {
  return `${ctx.baseUrl}/${version.type}/${version.id}/_history/${version.versionId}`;
}

/** The HTTP reply for a version: status, ETag, Last-Modified, Location, body per Prefer: return. */
export function versionResponse(ctx: FhirContext, req: FhirRequest, status: number, version: Version, withLocation: boolean): FhirResponse {
  const headers: Record<string, string> = {
    etag: etag(version.versionId),
    'last-modified': new Date(version.lastUpdated).toUTCString(),
  };
  if (withLocation) headers.location = locationOf(ctx, version);
  const response: FhirResponse = { status, headers };
  switch (req.prefer.return) {
    case 'minimal':
      break;
    case 'OperationOutcome':
      response.resource = informational(`${version.type}/${version.id} version ${version.versionId}: ${status === 201 ? 'created' : 'done'}`);
      break;
    default:
      if (version.resource) response.resource = version.resource;
  }
  return response;
}

/** A write ready to be applied: the op for the store, and how to answer once it is applied. */
export interface Prepared {
  /** Absent when there is nothing to write (a conditional delete that matched nothing). */
  op: ResourceOp | undefined;
  /** Writes that go with it in the same transaction (a notification to the patient). */
  extra?: WriteOp[];
  /** For a delete: the content it removes, so that its audit record can name the patient. */
  before?: Resource;
  /** Nothing to write because the caller may not see what it named: answered as absent, recorded as denied. */
  denied?: FhirResponse['denied'];
  respond(result: WriteResult): FhirResponse;
}

/** Applies one prepared write on its own (outside a transaction Bundle), its AuditEvent with it. */
export async function applyOne(ctx: FhirContext, req: FhirRequest, prepared: Prepared): Promise<FhirResponse> {
  if (!prepared.op) return { ...prepared.respond({ kind: 'absent' }), ...(prepared.denied ? { denied: prepared.denied } : {}) };
  const ops: WriteOp[] = [prepared.op, ...(prepared.extra ?? [])];
  const op = prepared.op;
  const touched = op.kind === 'delete' ? { ...touchedBy(prepared.before ? [prepared.before] : []), resources: [`${op.type}/${op.id}`] } : touchedBy([op.resource]);
  if (ctx.audit && req.actor) ops.push(auditOp(ctx, req, 'success', touched));
  const [result] = await ctx.store.transact(await storeContent(ctx.store, ops), ctx.now());
  return { ...prepared.respond(result), audited: ctx.audit };
}

/**
 * The FHIR error a store refusal becomes: R4 http 3.1.0.5 (412 on a stale version), and 503 when
 * the database cannot be reached (the client may retry; nothing was acknowledged).
 */
export function conflictError(error: unknown): FhirError | undefined {
  if (error instanceof StoreUnavailable) return new ServiceUnavailable('The database is unavailable at the moment; retry later');
  if (!(error instanceof WriteConflict)) return undefined;
  switch (error.reason) {
    case 'version-mismatch':
      return new PreconditionFailed(`${error.target}: version conflict, ${error.message}`);
    case 'multiple-matches':
      return new PreconditionFailed(`${error.target}: ${error.message}`, 'multiple-matches');
    case 'already-exists':
      return new Conflict(`${error.target}: ${error.message}`);
  }
}
