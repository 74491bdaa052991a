// fhir/http: the FHIR REST surface on Fastify. Parses HTTP into FhirRequests (body parsers,
// headers, Prefer), hands them to dispatch, and writes FhirResponses back (JSON or Binary bytes).
// Owns the error handler: every error leaves as an OperationOutcome with its status.

import { Readable } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Body, FhirContext, FhirRequest, FhirResponse, Method, Preferences, Target } from './context.js';
import { dispatch, parseTarget } from './dispatch.js';
import { FhirError, InternalError, NotFound, operationOutcome, PayloadTooLarge, UnsupportedMediaType } from '../base/outcome.js';
import { StoreUnavailable } from '../store/port.js';
import { conflictError } from './resource.js';
import { JSON_TYPES, mediaTypeOf, negotiate, parseJson } from './media.js';
import { JSON_PATCH } from './patch.js';
import { recordFailure, recordSuccess } from './audited.js';
import { carriesDocument, isContentUpload, readBody, receiveContent, withContent } from './binary.js';
import { nativeAnswer, openContent, type NativeAnswer } from './retrieve.js';
import { MAX_FORM_BYTES } from '../search/limits.js';
import { PUBLIC_ROUTE } from '../auth/hook.js';
import { ENROL_BODY_LIMIT } from './enrol.js';

const FORM = 'application/x-www-form-urlencoded';

/** Largest request bodies: `document` for Bundles pushed to the base and Binary content, `body` for the rest. */
export interface BodyLimits {
  body: number;
  document: number;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function preferences(request: FastifyRequest): Preferences {
  const prefer = header(request, 'prefer') ?? '';
  const parts = prefer.split(/[,;]/).map((p) => p.trim());
  const ret = parts.find((p) => p.startsWith('return='))?.slice('return='.length).replace(/"/g, '');
  const prefs: Preferences = { lenient: parts.includes('handling=lenient') };
  if (ret === 'minimal' || ret === 'representation' || ret === 'OperationOutcome') prefs.return = ret;
  return prefs;
}

function queryPairs(request: FastifyRequest): [string, string][] {
  const q = request.url.indexOf('?');
  return q < 0 ? [] : ([...new URLSearchParams(request.url.slice(q + 1))] as [string, string][]);
}

function bodyOf(request: FastifyRequest): Body {
  const raw = request.body;
  if (raw === undefined || raw === null) return { kind: 'none' };
  const { type, charset } = mediaTypeOf(header(request, 'content-type'));
  if (type === FORM) return { kind: 'form', params: [...new URLSearchParams(String(raw))] as [string, string][] };
  if (!Buffer.isBuffer(raw)) return { kind: 'none' };
  if (raw.length === 0) return { kind: 'none' };
  if (JSON_TYPES.has(type) || type === JSON_PATCH) return { kind: 'json', value: parseJson(raw.toString('utf8'), charset), mediaType: type };
  return { kind: 'raw', data: raw, mediaType: type || 'application/octet-stream' };
}

/** The FhirRequest of an HTTP request to a route whose path below /fhir is `path`. */
function toFhirRequest(request: FastifyRequest, target: Target): FhirRequest {
  const fhir: FhirRequest = {
    ...(request.actor ? { actor: request.actor } : {}),
    method: request.method as Method,
    target,
    query: queryPairs(request),
    body: bodyOf(request),
    prefer: preferences(request),
    log: (message) => request.log.error(message),
  };
  const conditional = { ifMatch: 'if-match', ifNoneMatch: 'if-none-match', ifModifiedSince: 'if-modified-since', ifNoneExist: 'if-none-exist' } as const;
  for (const [key, name] of Object.entries(conditional) as [keyof typeof conditional, string][]) {
    const value = header(request, name);
    if (value !== undefined) fhir[key] = value;
  }
  return fhir;
}

/** How a response goes out, decided before its audit record (so that a 406 or 416 is recorded as such). */
type Answer = { kind: 'empty' } | { kind: 'json'; mediaType: string; pretty: boolean } | { kind: 'native'; native: NativeAnswer } | { kind: 'rendition'; mediaType: string };

function answerOf(request: FastifyRequest, response: FhirResponse): Answer {
  const resource = response.resource;
  if (!resource || response.status === 204 || response.status === 304) return { kind: 'empty' };
  const query = new URLSearchParams(request.url.split('?')[1] ?? '');
  const binary = resource.resourceType === 'Binary' && response.status < 300;
  const representation = negotiate(query.get('_format') ?? undefined, header(request, 'accept'), binary, response.status < 300 ? response.rendition?.mediaType : undefined);
  if (representation.kind === 'rendition') return { kind: 'rendition', mediaType: representation.mediaType };
  if (representation.kind === 'raw') {
    const conditions = { range: header(request, 'range'), ifRange: header(request, 'if-range') };
    return { kind: 'native', native: nativeAnswer(response, request.method === 'GET' ? conditions : {}) };
  }
  return { kind: 'json', mediaType: representation.mediaType, pretty: query.get('_pretty') === 'true' };
}

async function send(ctx: FhirContext, request: FastifyRequest, reply: FastifyReply, response: FhirResponse, answer: Answer): Promise<FastifyReply> {
  reply.status(response.status).headers(response.headers);
  switch (answer.kind) {
    case 'empty':
      return reply.send();
    case 'native': {
      // A Binary's own bytes, streamed from the blob store (fhir/retrieve); HEAD opens nothing.
      reply.status(answer.native.status).headers(answer.native.headers);
      return reply.send(request.method === 'HEAD' ? undefined : await openContent(ctx.store, answer.native));
    }
    case 'rendition':
      // Rendered after the interaction's record is durable, like every other answer.
      return reply.type(answer.mediaType).send(await response.rendition!.render());
    case 'json': {
      // Binaries stored with a pointer to their bytes get them back in `data` (fhir/binary).
      const resource = await withContent(ctx.store, response.resource!);
      return reply.type(`${answer.mediaType}; charset=utf-8`).send(JSON.stringify(resource, null, answer.pretty ? 2 : undefined));
    }
  }
}

/** The FHIR error any thrown value becomes; unexpected ones are logged with their stack. */
function asFhirError(error: unknown, request: FastifyRequest): FhirError {
  if (error instanceof FhirError) return error;
  // The log keeps why the store refused or failed (a lost database connection answers 503).
  const conflict = conflictError(error);
  if (conflict) {
    if (error instanceof StoreUnavailable) request.log.error({ err: error }, 'store unavailable');
    return conflict;
  }
  const e = error as { code?: string; statusCode?: number; message?: string };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new PayloadTooLarge(mediaTypeOf(header(request, 'content-type')).type === FORM ? MAX_FORM_BYTES : (request.routeOptions.bodyLimit ?? request.server.initialConfig.bodyLimit ?? 0));
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new UnsupportedMediaType(`Content-Type "${header(request, 'content-type')}" is not supported`);
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new FhirError(e.statusCode, [{ code: 'invalid', diagnostics: e.message ?? 'Bad request' }]);
  }
  request.log.error({ err: error }, 'unexpected error');
  return new InternalError(String(request.id));
}

function sendOutcome(reply: FastifyReply, fhir: FhirError): FastifyReply {
  return reply.status(fhir.status).headers(fhir.headers).type('application/fhir+json; charset=utf-8').send(JSON.stringify(operationOutcome(fhir.issues)));
}

/**
 * Fastify's `frameworkErrors`: its refusals before any route is matched, as OperationOutcomes. A
 * path that is not valid percent-encoding is a 400; a path segment longer than the router's
 * maxParamLength (a resource id has at most 64 characters) a 414.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const tooLong = error.code === 'FST_ERR_MAX_PARAM_LENGTH';
  void sendOutcome(reply, tooLong ? new FhirError(414, [{ code: 'too-long', diagnostics: 'A segment of the URL path is longer than this server reads (a resource id has at most 64 characters)' }]) : asFhirError(error, request));
}

export function registerFhirRoutes(app: FastifyInstance, ctx: FhirContext, prefix = '/fhir', limits?: BodyLimits): void {
  const bodyLimit = limits?.body ?? app.initialConfig.bodyLimit ?? 20 * 1024 * 1024;
  const documentLimit = limits?.document ?? bodyLimit;
  // The target is the path as the router matched it: the route's pattern with its parameters
  // (which the router decoded), never the URL's text: /%66hir/Patient is routed as /fhir/Patient,
  // and the auth hook decided on that route too.
  const targetOf = (request: FastifyRequest) => {
    const params = request.params as Record<string, string>;
    const pattern = (request.routeOptions.url ?? '').slice(prefix.length).split('/');
    return parseTarget(pattern.map((part) => (part.startsWith(':') ? encodeURIComponent(params[part.slice(1)]) : part)).join('/'));
  };
  // POST Patient/$enrol alone takes up to ENROL_BODY_LIMIT: a batch of 10,000 people (fhir/enrol).
  const limitOf = (request: FastifyRequest, target: Target | null) => {
    if (target && carriesDocument(request.method as Method, target)) return documentLimit;
    if (target?.kind === 'type-operation' && target.type === 'Patient' && target.operation === '$enrol' && request.method === 'POST') return Math.max(bodyLimit, ENROL_BODY_LIMIT);
    return bodyLimit;
  };

  // Bodies arrive as bytes; parsing happens in bodyOf so that every failure is an OperationOutcome.
  // Binary content (POST/PUT Binary in its own media type) is not read here: the handler streams
  // it into the blob store. Every other body is read whole, within its limit. A form (the
  // parameters of POST [type]/_search) is no larger than the longest search (search/limits):
  // parsing 20 MiB of it would hold the event loop for most of a second.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(FORM, { parseAs: 'string', bodyLimit: MAX_FORM_BYTES }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('*', (request, payload, done) => {
    const target = targetOf(request);
    const limit = limitOf(request, target);
    if (Number(request.headers['content-length']) > limit) return done(new PayloadTooLarge(limit), undefined);
    if (target && isContentUpload(request.method as Method, target, mediaTypeOf(header(request, 'content-type')).type)) return done(null, payload);
    readBody(payload, limit).then((body) => done(null, body), (error: Error) => done(error, undefined));
  });

  app.setErrorHandler((error, request, reply) => sendOutcome(reply, asFhirError(error, request)));
  app.setNotFoundHandler((request) => {
    throw new NotFound(`No route for ${request.method} ${request.url.split('?')[0]}`);
  });

  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
  const handle = async (request: FastifyRequest, reply: FastifyReply) => {
    const target = targetOf(request);
    if (!target) throw new NotFound(`No FHIR endpoint at ${request.url.split('?')[0]}`);
    const fhirRequest = toFhirRequest(request, target);
    const upload = request.body instanceof Readable ? request.body : undefined;
    let response: FhirResponse;
    let answer: Answer;
    try {
      // A representative acts only for the patients they still represent (a minor's, until their majority).
      if (fhirRequest.actor) fhirRequest.actor = await ctx.policy.acting(fhirRequest.actor);
      if (upload) fhirRequest.body = await receiveContent(ctx, fhirRequest, upload, mediaTypeOf(header(request, 'content-type')).type, limitOf(request, target));
      response = await dispatch(ctx, fhirRequest);
      answer = answerOf(request, response);
    } catch (error) {
      // An upload refused before it was read whole: its rest is not read, the connection closes.
      if (upload && !upload.readableEnded) reply.header('connection', 'close');
      // Refused and failed interactions are recorded too; then the error handler answers.
      await recordFailure(ctx, fhirRequest, error);
      throw error;
    }
    // Durable before the answer is sent (a read's record commits on its own): no byte of a
    // document leaves before its read is recorded.
    await recordSuccess(ctx, fhirRequest, response);
    return send(ctx, request, reply, response, answer);
  };
  // Route shapes are listed so that logs name a pattern, never a URL with identifiers in it. Every
  // one needs a bearer token (auth/hook) but reading the CapabilityStatement.
  for (const url of [prefix, `${prefix}/:type`, `${prefix}/:type/:id`, `${prefix}/:type/:id/:sub`, `${prefix}/:type/:id/:sub/:vid`]) {
    app.route({ method: [...methods], url, handler: handle, exposeHeadRoute: false });
  }
  app.route({ method: ['GET', 'HEAD'], url: `${prefix}/metadata`, handler: handle, exposeHeadRoute: false, config: PUBLIC_ROUTE });
  // The OperationDefinitions the CapabilityStatement points at are as public as it is (no patient data; writes are 405).
  for (const url of [`${prefix}/OperationDefinition`, `${prefix}/OperationDefinition/:id`]) app.route({ method: [...methods], url, handler: handle, exposeHeadRoute: false, config: PUBLIC_ROUTE });
}
