// fhir/batch: POST [base] with a batch or transaction Bundle (R4 http 3.1.0.11). A batch runs
// each entry on its own; a transaction resolves urn:uuid and conditional references, then
// applies every write in one store transaction: all or nothing.

import { STATUS_CODES } from 'node:http';
import type { Bundle, BundleEntry, BundleEntryResponse, Resource } from '@medplum/fhirtypes';
import type { ResourceOp, WriteResult } from '../store/port.js';
import { parseCriteria } from '../search/plan.js';
import type { Body, FhirContext, FhirRequest, FhirResponse, Method, Target, TransactionEntry } from './context.js';
import { bundle } from './bundle.js';
import { FhirError, Invalid, operationOutcome, PreconditionFailed } from '../base/outcome.js';
import { conflictError, type Prepared } from './resource.js';
import { newId } from './body.js';
import { prepareCreate } from './create.js';
import { prepareUpdate } from './update.js';
import { preparePatch, JSON_PATCH } from './patch.js';
import { prepareDelete } from './delete.js';
import { dispatch, parseTarget } from './dispatch.js';
import { conditionalMatches, resolveReference } from './access.js';
import { auditOp, recordFailure, recordSuccess, touchedBy } from './audited.js';
import { storeContent } from './binary.js';

const METHODS = new Set<Method>(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);
// R4 3.1.0.11.2: a transaction processes deletes, then creates, then updates, then reads.
const ORDER: Record<Method, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };

interface Entry {
  index: number;
  fullUrl?: string;
  req: FhirRequest;
  /** The id a create will have, decided before anything is written. */
  assignedId?: string;
  /** A conditional delete that matched nothing: answered 204, nothing written. */
  noMatch?: boolean;
}

/** Re-labels an entry's error so the answer names the entry (Bundle.entry[i]). */
function entryError(index: number, error: unknown): unknown {
  const fhir = conflictError(error) ?? error;
  if (!(fhir instanceof FhirError)) return error;
  return new FhirError(
    fhir.status,
    fhir.issues.map((i) => ({
      ...i,
      diagnostics: `Bundle.entry[${index}]: ${i.diagnostics}`,
      expression: i.expression ? i.expression.map((e) => `Bundle.entry[${index}].resource.${e.replace(/^[A-Z][A-Za-z]+\./, '')}`) : [`Bundle.entry[${index}]`],
    })),
    fhir.headers,
  );
}

// A PATCH entry carries its JSON Patch as a Binary (R4 3.1.0.11.1).
function entryBody(method: Method, resource: Resource | undefined): Body {
  if (!resource) return { kind: 'none' };
  if (method === 'PATCH' && resource.resourceType === 'Binary' && resource.contentType === JSON_PATCH) {
    try {
      return { kind: 'json', value: JSON.parse(Buffer.from(resource.data ?? '', 'base64').toString('utf8')), mediaType: JSON_PATCH };
    } catch {
      throw new Invalid('The JSON Patch in this entry is not valid JSON');
    }
  }
  return { kind: 'json', value: resource, mediaType: 'application/fhir+json' };
}

function parseEntry(ctx: FhirContext, outer: FhirRequest, raw: BundleEntry, index: number): Entry {
  const request = raw.request;
  if (!request || typeof request.url !== 'string' || !METHODS.has(request.method as Method)) {
    throw new Invalid('Each entry needs request.method (GET, HEAD, POST, PUT, PATCH, DELETE) and request.url', `Bundle.entry[${index}].request`);
  }
  const method = request.method as Method;
  // request.url is relative to the base; an absolute URL on this server's base is accepted too.
  const url = new URL(request.url.startsWith(ctx.baseUrl) ? request.url.slice(ctx.baseUrl.length) : request.url, 'http://entry/');
  const target = parseTarget(url.pathname);
  if (!target || target.kind === 'system') throw new Invalid(`request.url "${request.url}" is not a FHIR request this server serves`, `Bundle.entry[${index}].request.url`);
  return {
    index,
    ...(typeof raw.fullUrl === 'string' ? { fullUrl: raw.fullUrl } : {}),
    req: {
      method,
      target,
      query: [...url.searchParams] as [string, string][],
      body: entryBody(method, raw.resource),
      ...(request.ifMatch ? { ifMatch: request.ifMatch } : {}),
      ...(request.ifNoneMatch ? { ifNoneMatch: request.ifNoneMatch } : {}),
      ...(request.ifModifiedSince ? { ifModifiedSince: request.ifModifiedSince } : {}),
      ...(request.ifNoneExist ? { ifNoneExist: request.ifNoneExist } : {}),
      prefer: outer.prefer,
      ...(outer.actor ? { actor: outer.actor } : {}),
      ...(outer.log ? { log: outer.log } : {}),
    },
  };
}

function entryResponse(response: FhirResponse): BundleEntry {
  const out: BundleEntryResponse = { status: `${response.status} ${STATUS_CODES[response.status] ?? ''}`.trim() };
  if (response.headers.location) out.location = response.headers.location;
  if (response.headers.etag) out.etag = response.headers.etag;
  if (response.headers['last-modified']) out.lastModified = new Date(response.headers['last-modified']).toISOString();
  const entry: BundleEntry = { response: out };
  if (response.resource?.resourceType === 'OperationOutcome' && response.status >= 300) out.outcome = response.resource;
  else if (response.resource) entry.resource = response.resource;
  return entry;
}

function errorEntry(error: FhirError): BundleEntry {
  return { response: { status: `${error.status} ${STATUS_CODES[error.status] ?? ''}`.trim(), outcome: operationOutcome(error.issues) } };
}

/**
 * Runs one entry on its own and records it in the audit trail as the interaction it is (a read
 * entry is a read, permitted or denied); a failure becomes the entry's OperationOutcome.
 */
async function runEntry(ctx: FhirContext, req: FhirRequest, index: number): Promise<BundleEntry> {
  try {
    const response = await dispatch(ctx, req);
    await recordSuccess(ctx, req, response);
    return entryResponse(response);
  } catch (error) {
    await recordFailure(ctx, req, error);
    const fhir = entryError(index, error);
    if (!(fhir instanceof FhirError)) throw error;
    return errorEntry(fhir);
  }
}

async function batch(ctx: FhirContext, outer: FhirRequest, entries: BundleEntry[]): Promise<FhirResponse> {
  const out: BundleEntry[] = [];
  for (const [index, raw] of entries.entries()) {
    let req: FhirRequest;
    try {
      req = parseEntry(ctx, outer, raw, index).req;
    } catch (error) {
      const fhir = entryError(index, error);
      if (!(fhir instanceof FhirError)) throw error;
      out.push(errorEntry(fhir));
      continue;
    }
    out.push(await runEntry(ctx, req, index));
  }
  // Each entry has its own record; the batch as a whole adds none.
  return { status: 200, headers: {}, resource: bundle('batch-response', out), audited: ctx.audit };
}

/** Resolves a conditional reference ("Patient?identifier=...") to exactly one resource. */
async function resolveConditional(ctx: FhirContext, req: FhirRequest, reference: string): Promise<string> {
  const [type, query] = reference.split('?', 2);
  const { matches } = await resolveReference(ctx, req, parseCriteria(type, query));
  if (matches.length !== 1) {
    throw new PreconditionFailed(`The conditional reference "${reference}" matches ${matches.length === 0 ? 'no' : 'more than one'} resource; it must match exactly one`);
  }
  return `${type}/${matches[0].id}`;
}

// The base of an absolute RESTful fullUrl ("http://x/fhir/" of "http://x/fhir/Patient/1").
const RESTFUL = /^(https?:\/\/.+\/)[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}(\/_history\/[^/]+)?$/;
const RELATIVE = /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/;
const AMBIGUOUS = '';

/**
 * Rewrites reference and attachment url values: fullUrls of entries to the ids they get, and
 * conditional references to their match. A relative reference in an entry whose fullUrl is an
 * absolute RESTful URL is read against that URL's base (R4 Bundle 2.36.4.1).
 */
async function rewriteReferences(ctx: FhirContext, req: FhirRequest, value: unknown, ids: Map<string, string>, entryFullUrl?: string): Promise<void> {
  const base = entryFullUrl !== undefined ? RESTFUL.exec(entryFullUrl)?.[1] : undefined;
  const lookup = (ref: string) => ids.get(ref) ?? (base !== undefined && RELATIVE.test(ref) ? ids.get(base + ref) : undefined);
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (Array.isArray(node)) stack.push(...node);
    else if (node && typeof node === 'object') {
      const object = node as Record<string, unknown>;
      for (const [key, child] of Object.entries(object)) {
        if ((key === 'reference' || key === 'url') && typeof child === 'string') {
          const mapped = lookup(child);
          if (mapped !== undefined && mapped !== AMBIGUOUS) object[key] = mapped;
          else if (key === 'reference' && /^[A-Z][A-Za-z]+\?/.test(child)) object[key] = await resolveConditional(ctx, req, child);
        } else if (typeof child === 'object') stack.push(child);
      }
    }
  }
}

function typeOf(target: Target): string {
  return 'type' in target ? target.type : '';
}

/**
 * Decides the id each write entry will have, before anything is written, so that urn:uuid
 * references can point at it. Conditional forms are resolved here and become plain writes
 * guarded by the version they matched (or by the criteria, re-checked in the store).
 */
async function resolveIdentity(ctx: FhirContext, entry: Entry, ids: Map<string, string>): Promise<void> {
  const { req } = entry;
  const type = typeOf(req.target);
  let id: string | undefined;
  if (req.method === 'POST' && req.target.kind === 'type') {
    id = newId();
    if (req.ifNoneExist !== undefined) {
      const { matches } = (await conditionalMatches(ctx, req, parseCriteria(type, req.ifNoneExist))).page;
      if (matches.length > 1) throw new PreconditionFailed(`If-None-Exist "${req.ifNoneExist}" matches more than one ${type}`, 'multiple-matches');
      if (matches.length === 1) id = matches[0].id;
    }
    entry.req = { ...req, target: { kind: 'type', type } };
    entry.assignedId = id;
  } else if ((req.method === 'PUT' || req.method === 'DELETE') && req.target.kind === 'type') {
    const criteria = new URLSearchParams(req.query).toString();
    const { matches } = (await conditionalMatches(ctx, req, parseCriteria(type, criteria))).page;
    if (matches.length > 1) throw new PreconditionFailed(`The criteria "${criteria}" match more than one ${type}`, 'multiple-matches');
    const match = matches[0];
    if (req.method === 'DELETE' && !match) {
      entry.noMatch = true;
      return;
    }
    const bodyId = req.body.kind === 'json' ? (req.body.value as { id?: unknown }).id : undefined;
    id = match ? match.id : typeof bodyId === 'string' ? bodyId : newId();
    entry.req = {
      ...req,
      query: [],
      target: { kind: 'instance', type, id },
      ...(match ? { ifMatch: `W/"${match.versionId}"` } : {}),
    };
    if (req.method === 'PUT' && req.body.kind === 'json' && req.body.value && typeof req.body.value === 'object') {
      entry.req.body = { ...req.body, value: { ...(req.body.value as object), id } };
    }
  } else if (req.target.kind === 'instance') {
    id = req.target.id;
  }
  if (id !== undefined && entry.fullUrl !== undefined) {
    ids.set(entry.fullUrl, `${type}/${id}`);
    // Senders also point at an entry with an absolute fullUrl by its relative "Type/id" (the
    // HL7 XDS example does); map that too, as HAPI does, unless two entries claim it.
    const relative = RESTFUL.test(entry.fullUrl) ? /[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}(?=(\/_history\/[^/]+)?$)/.exec(entry.fullUrl)?.[0] : undefined;
    if (relative !== undefined) ids.set(relative, ids.has(relative) ? AMBIGUOUS : `${type}/${id}`);
  }
}

function entryView(entry: Entry): TransactionEntry {
  const { req } = entry;
  const view: TransactionEntry = { index: entry.index, method: req.method, type: typeOf(req.target) };
  const id = entry.assignedId ?? (req.target.kind === 'instance' ? req.target.id : undefined);
  if (id !== undefined) view.id = id;
  if (req.body.kind === 'json' && req.method !== 'PATCH') view.resource = req.body.value as Resource;
  return view;
}

async function transaction(ctx: FhirContext, outer: FhirRequest, bundleOf: Bundle): Promise<FhirResponse> {
  const raws = bundleOf.entry ?? [];
  const entries = raws.map((raw, index) => {
    try {
      return parseEntry(ctx, outer, raw, index);
    } catch (error) {
      throw entryError(index, error);
    }
  });
  const ids = new Map<string, string>();
  const writes = entries.filter((e) => ORDER[e.req.method] < 3).sort((a, b) => ORDER[a.req.method] - ORDER[b.req.method] || a.index - b.index);
  for (const entry of writes) {
    try {
      await resolveIdentity(ctx, entry, ids);
    } catch (error) {
      throw entryError(entry.index, error);
    }
  }
  for (const entry of writes) {
    try {
      if (entry.req.body.kind === 'json') await rewriteReferences(ctx, entry.req, entry.req.body.value, ids, entry.fullUrl);
    } catch (error) {
      throw entryError(entry.index, error);
    }
  }
  const followers: FhirRequest[] = [];
  for (const check of ctx.transactionChecks) followers.push(...(await check(ctx, outer, bundleOf, writes.filter((e) => !e.noMatch).map(entryView))));
  const prepared = new Map<number, Prepared>();
  const touched = new Map<string, number>();
  const all = [...writes.map((entry) => ({ index: entry.index, req: entry.req, skip: entry.noMatch === true, assignedId: entry.assignedId })), ...followers.map((req, i) => ({ index: entries.length + i, req, skip: false, assignedId: undefined }))];
  for (const entry of all) {
    try {
      const { req } = entry;
      if (entry.skip) continue;
      const t = req.target;
      let p: Prepared;
      if (req.method === 'POST' && t.kind === 'type') p = await prepareCreate(ctx, req, t.type, entry.assignedId);
      else if (req.method === 'PUT' && t.kind === 'instance') p = await prepareUpdate(ctx, req, t.type, t.id);
      else if (req.method === 'PATCH' && t.kind === 'instance') p = await preparePatch(ctx, req, t.type, t.id);
      else if (req.method === 'DELETE' && t.kind === 'instance') p = await prepareDelete(ctx, req, t.type, t.id);
      else throw new Invalid(`${req.method} ${entry.req.target.kind} is not allowed in a transaction`);
      // A delete with nothing to delete (or nothing the caller may see) still names its resource.
      const key = p.op ? (p.op.kind === 'delete' ? `${p.op.type}/${p.op.id}` : `${p.op.resource.resourceType}/${p.op.resource.id}`) : t.kind === 'instance' ? `${t.type}/${t.id}` : undefined;
      if (key !== undefined) {
        // R4 3.1.0.11.2: a transaction touching one resource twice fails.
        const other = touched.get(key);
        if (other !== undefined) throw new Invalid(`${key} is also written by Bundle.entry[${other}]`);
        touched.set(key, entry.index);
      }
      prepared.set(entry.index, p);
    } catch (error) {
      throw entry.index < entries.length ? entryError(entry.index, error) : error;
    }
  }
  const order = [...prepared.entries()].filter(([, p]) => p.op !== undefined);
  let results: WriteResult[];
  try {
    const ops = order.map(([, p]) => p.op as ResourceOp);
    const extra = order.flatMap(([, p]) => p.extra ?? []);
    const audit = ctx.audit && outer.actor ? [auditOp(ctx, outer, 'success', touchedBy(ops.flatMap((op) => (op.kind === 'delete' ? [] : [op.resource]))))] : [];
    results = await ctx.store.transact(await storeContent(ctx.store, [...ops, ...extra, ...audit]), ctx.now());
  } catch (error) {
    const conflict = conflictError(error);
    if (!conflict) throw error;
    const target = (error as { target?: string }).target;
    const culprit = order.find(([, p]) => p.op && (p.op.kind === 'delete' ? `${p.op.type}/${p.op.id}` : `${p.op.resource.resourceType}/${p.op.resource.id}`) === target);
    throw culprit ? entryError(culprit[0], conflict) : conflict;
  }
  const out = new Array<BundleEntry>(entries.length);
  order.forEach(([index, p], i) => {
    if (index < entries.length) out[index] = entryResponse(p.respond(results[i]));
  });
  for (const entry of entries) {
    if (out[entry.index]) continue;
    if (entry.noMatch) {
      out[entry.index] = { response: { status: '204 No Content' } };
      continue;
    }
    // Reads run after the writes committed (R4 3.1.0.11.2): a failed read is answered in its
    // entry, as in a batch, since the writes it follows are already durable.
    out[entry.index] = await runEntry(ctx, entry.req, entry.index);
  }
  for (const entry of entries) {
    const response = out[entry.index];
    const location = response.response?.location;
    if (location && entry.fullUrl) response.fullUrl = location.replace(/\/_history\/\d+$/, '');
  }
  return { status: 200, headers: {}, resource: bundle('transaction-response', out), audited: ctx.audit };
}

export async function processBundle(ctx: FhirContext, req: FhirRequest): Promise<FhirResponse> {
  if (req.body.kind !== 'json') throw new Invalid('POST to the base takes a batch or transaction Bundle in FHIR JSON');
  const value = req.body.value as Partial<Bundle> | null;
  if (!value || typeof value !== 'object' || value.resourceType !== 'Bundle') throw new Invalid('POST to the base takes a Bundle', 'resourceType');
  if (value.type !== 'batch' && value.type !== 'transaction') throw new Invalid(`Bundle.type must be batch or transaction, not "${value.type}"`, 'Bundle.type');
  if (value.entry !== undefined && !Array.isArray(value.entry)) throw new Invalid('Bundle.entry must be an array', 'Bundle.entry');
  return value.type === 'batch' ? batch(ctx, req, value.entry ?? []) : transaction(ctx, req, value as Bundle);
}
