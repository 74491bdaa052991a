// auth/routes: the HTTP side of auth. POST /auth/token (SMART Backend Services), GET /auth/jwks
// (Carnet's public keys), GET /apps (the certified catalogue) and
// GET /fhir/.well-known/smart-configuration (SMART discovery). All answer without a bearer
// token (their config is PUBLIC_ROUTE, which the auth hook reads). The token endpoint answers OAuth JSON errors (RFC 6749 §5.2), never OperationOutcomes.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JWK } from 'jose';
import { authBase, type AuthContext } from './context.js';
import { ASSERTION_ALGORITHMS } from './clients.js';
import { publicCatalogue } from './catalogue.js';
import { clientCredentialsToken, OAuthError } from './token-endpoint.js';
import { PUBLIC_ROUTE } from './hook.js';

const FORM = 'application/x-www-form-urlencoded';
const TOKEN_BODY_LIMIT = 64 * 1024;

/** The scopes Carnet understands, as discovery lists them (any resource type may replace `*`). */
export const SCOPES_SUPPORTED = [
  'system/*.cruds',
  'system/*.rs',
  'system/*.read',
  'system/*.write',
  'user/*.cruds',
  'user/*.rs',
  'user/*.read',
  'user/*.write',
  'patient/*.cruds',
  'patient/*.rs',
  'patient/*.read',
  'patient/*.write',
];

/** SMART capabilities: asymmetric client authentication (backend services), v1 and v2 scopes. */
export const CAPABILITIES = ['client-confidential-asymmetric', 'permission-v2', 'permission-v1', 'permission-patient', 'permission-user'];

/** The SMART App Launch 2.0 discovery document. */
export function smartConfiguration(auth: AuthContext): Record<string, unknown> {
  return {
    issuer: auth.issuerUrl(),
    jwks_uri: `${authBase(auth.audience())}/jwks`,
    token_endpoint: auth.tokenEndpoint(),
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS],
    scopes_supported: SCOPES_SUPPORTED,
    capabilities: CAPABILITIES,
  };
}

/** The public JWKS of Carnet's keys: the access-token signing key, and the development issuer's key when trusted. */
export function publicJwks(auth: AuthContext): { keys: JWK[] } {
  return { keys: [auth.signingKey.publicJwk, ...(auth.developmentKey ? [auth.developmentKey.publicJwk] : [])] };
}

function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

/** The form parameters of a token request; an OAuthError when the body is not a form. */
function formOf(request: FastifyRequest): URLSearchParams {
  if (mediaType(request) !== FORM) throw new OAuthError('invalid_request', `the token request body must be ${FORM}`);
  const body: unknown = request.body;
  if (typeof body === 'string') return new URLSearchParams(body);
  if (Buffer.isBuffer(body)) return new URLSearchParams(body.toString('utf8'));
  if (body === undefined || body === null) return new URLSearchParams();
  throw new OAuthError('invalid_request', `the token request body must be ${FORM}`);
}

function sendOAuthError(request: FastifyRequest, reply: FastifyReply, error: OAuthError): FastifyReply {
  // The claimed client and the reason, never the assertion.
  request.log.info({ client: error.clientId, error: error.code, reason: error.description }, 'token refused');
  return reply.status(error.status).headers({ 'cache-control': 'no-store', pragma: 'no-cache', ...error.headers }).send(error.body);
}

const REGISTERED = 'carnetAuthRoutes';
const PUBLIC = { 'access-control-allow-origin': '*' };

/** Registers the auth routes once: a second call on the same app does nothing. */
export function registerAuthRoutes(app: FastifyInstance, auth: AuthContext): void {
  if (app.hasDecorator(REGISTERED)) return;
  app.decorate(REGISTERED, true);
  // An encapsulated scope: its error handler (OAuth JSON) and, on an app without one, its form
  // parser stay here. With the FHIR routes' parsers in place, a form body arrives as a string.
  void app.register(async (scope) => {
    if (!scope.hasContentTypeParser(FORM)) {
      scope.addContentTypeParser(FORM, { parseAs: 'string' }, (_request, body, done) => done(null, body));
    }
    scope.setErrorHandler((error, request, reply) => {
      const e = error as { statusCode?: number; code?: string; message?: string };
      if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
        const status = e.statusCode;
        request.log.info({ status, code: e.code }, 'auth request refused');
        return reply.status(status).header('cache-control', 'no-store').send({ error: 'invalid_request', error_description: e.message ?? 'bad request' });
      }
      request.log.error({ err: error }, 'unexpected error');
      return reply.status(500).header('cache-control', 'no-store').send({ error: 'server_error', error_description: `internal error (request ${request.id}); the server log has the details` });
    });

    scope.post('/auth/token', { bodyLimit: TOKEN_BODY_LIMIT, config: PUBLIC_ROUTE }, async (request, reply) => {
      try {
        const authorization = request.headers.authorization;
        const { response, client, dropped } = await clientCredentialsToken(auth, formOf(request), authorization ? { authorization } : {});
        request.log.info({ client: client.id, scope: response.scope, ...(dropped.length > 0 ? { notGranted: dropped.join(' ') } : {}) }, 'token issued');
        return reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' }).type('application/json; charset=utf-8').send(response);
      } catch (error) {
        if (error instanceof OAuthError) return sendOAuthError(request, reply, error);
        throw error;
      }
    });

    scope.get('/auth/jwks', { config: PUBLIC_ROUTE }, async (_request, reply) =>
      reply.headers({ ...PUBLIC, 'cache-control': 'public, max-age=300' }).type('application/jwk-set+json').send(JSON.stringify(publicJwks(auth))),
    );

    scope.get('/apps', { config: PUBLIC_ROUTE }, async (_request, reply) => reply.headers({ ...PUBLIC, 'cache-control': 'no-cache' }).send({ apps: publicCatalogue(await auth.clients.list()) }));

    scope.get('/fhir/.well-known/smart-configuration', { config: PUBLIC_ROUTE }, async (_request, reply) =>
      reply.headers({ ...PUBLIC, 'cache-control': 'public, max-age=300' }).type('application/json; charset=utf-8').send(JSON.stringify(smartConfiguration(auth))),
    );
  });
}
