// auth/token-endpoint: SMART Backend Services. The client_credentials grant with a private_key_jwt
// client assertion (SMART client-confidential-asymmetric), checked against the client's
// registered JWKS, answered with a short-lived access token signed by Carnet's own key.
// No HTTP here: the route (auth/routes) hands the form parameters in and writes the result out.

import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { ClientRecord } from '../store/port.js';
import type { AuthContext } from './context.js';
import { CARNET_CLAIMS, mintToken } from './claims.js';
import { ASSERTION_ALGORITHMS } from './clients.js';
import { formatGrant, parseScopes, type Grant, type Permission, type ScopeContext } from './scopes.js';

export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** The longest an assertion may live: SMART's "exp no more than five minutes in the future". */
export const MAX_ASSERTION_LIFETIME_S = 300;
/** Tolerated difference between the client's clock and ours, both ways. */
export const CLOCK_SKEW_S = 30;
const MAX_ASSERTION_LENGTH = 16 * 1024;

/** RFC 6749 §5.2 error codes. */
export type OAuthErrorCode = 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unauthorized_client' | 'unsupported_grant_type' | 'invalid_scope';

/** A refusal of the token endpoint: an OAuth JSON error, never an OperationOutcome. */
export class OAuthError extends Error {
  constructor(
    readonly code: OAuthErrorCode,
    readonly description: string,
    /** The client the request claimed to be (for the log; not verified when authentication failed). */
    readonly clientId?: string,
    readonly status: 400 | 401 = 400,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
  }

  get body(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.code, error_description: this.description };
  }
}

export interface TokenResponse {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  scope: string;
}

export interface TokenGrant {
  response: TokenResponse;
  client: ClientRecord;
  /** Requested scopes not granted as written: refused, or narrowed (the response's scope is the intersection). */
  dropped: string[];
}

export interface TokenRequestOptions {
  /** The Authorization header of the request, if any (client_secret_basic is refused with 401). */
  authorization?: string;
  /** The clock, in ms (tests). */
  now?: () => number;
}

const PERMISSION_ORDER: Permission[] = ['c', 'r', 'u', 'd', 's'];

function permissionsOf(grants: Grant[]): Set<Permission> {
  const set = new Set<Permission>();
  for (const grant of grants) for (const p of grant.permissions) set.add(p);
  return set;
}

function intersect(a: ReadonlySet<Permission>, b: ReadonlySet<Permission>): Set<Permission> {
  return new Set(PERMISSION_ORDER.filter((p) => a.has(p) && b.has(p)));
}

function subset(a: ReadonlySet<Permission>, b: ReadonlySet<Permission>): boolean {
  return [...a].every((p) => b.has(p));
}

/**
 * The part of `requested` that `allowed` permits, in `context` only. A requested scope the
 * allowed ones fully cover is granted as written (a v1 `system/*.read` stays v1); one they
 * cover in part is narrowed to what they permit, written in v2 syntax (`system/*.cruds`
 * requested by a client allowed `system/DocumentReference.cru` becomes exactly that).
 * Scopes of another context, non-clinical scopes and query-restricted scopes are not granted.
 */
export function intersectScopes(requested: string, allowed: string, context: ScopeContext = 'system'): { granted: string[]; dropped: string[] } {
  const ceiling = parseScopes(allowed).filter((g) => g.context === context);
  const granted: string[] = [];
  const dropped: string[] = [];
  const grant = (scope: string) => {
    if (!granted.includes(scope)) granted.push(scope);
  };
  for (const token of new Set(requested.split(/\s+/).filter(Boolean))) {
    const asked = token.includes('?') ? undefined : parseScopes(token)[0];
    if (!asked || asked.context !== context) {
      dropped.push(token);
      continue;
    }
    const covering = ceiling.filter((g) => g.type === '*' || g.type === asked.type);
    const permitted = permissionsOf(covering);
    if (subset(asked.permissions, permitted)) {
      grant(token);
      continue;
    }
    dropped.push(token);
    if (asked.type !== '*') {
      const perms = intersect(asked.permissions, permitted);
      if (perms.size > 0) grant(formatGrant({ context, type: asked.type, permissions: perms }));
      continue;
    }
    // A wildcard request: what the client's wildcard scopes permit, then the specific types.
    const wildcard = intersect(asked.permissions, permissionsOf(ceiling.filter((g) => g.type === '*')));
    if (wildcard.size > 0) grant(formatGrant({ context, type: '*', permissions: wildcard }));
    for (const g of ceiling.filter((c) => c.type !== '*')) {
      const perms = intersect(asked.permissions, g.permissions);
      if (perms.size > 0 && !subset(perms, wildcard)) grant(formatGrant({ context, type: g.type, permissions: perms }));
    }
  }
  return { granted, dropped };
}

/** A printable, bounded form of an unverified client id, for the log. */
function claimedId(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value.replace(/[^\x20-\x7e]/g, '?').slice(0, 80) : undefined;
}

function invalidClient(description: string, clientId?: string): OAuthError {
  return new OAuthError('invalid_client', description, clientId);
}

// jose's verification errors, as the description a vendor can act upon.
function assertionFailure(error: unknown, auth: AuthContext): string {
  if (error instanceof errors.JWTExpired) return 'the client assertion has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'aud':
        return `the client assertion's aud must be the token endpoint URL ${auth.tokenEndpoint()}`;
      case 'iss':
      case 'sub':
        return 'the client assertion must have iss and sub equal to the client id';
      case 'nbf':
        return 'the client assertion is not valid yet (nbf)';
      case 'iat':
        return 'the client assertion is issued in the future (iat)';
      default:
        return error.reason === 'missing' ? `the client assertion has no ${error.claim} claim` : `the client assertion's ${error.claim} claim is not acceptable`;
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return `the client assertion must be signed with ${ASSERTION_ALGORITHMS.join(' or ')}`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the client assertion signature does not verify with the registered key';
  if (error instanceof errors.JWKSNoMatchingKey) return 'no registered key of the client matches the assertion (kid, alg)';
  if (error instanceof errors.JWKSMultipleMatchingKeys) return 'the client assertion signature does not verify with any registered key';
  if (error instanceof errors.JOSEError) return `the client assertion cannot be verified (${error.code})`;
  return 'the client assertion cannot be verified';
}

/** The single value of a form parameter; several values are an invalid_request (RFC 6749 §3.2). */
function single(params: URLSearchParams, name: string): string | undefined {
  const values = params.getAll(name);
  if (values.length > 1) throw new OAuthError('invalid_request', `parameter ${name.slice(0, 40)} is repeated`);
  return values[0] === '' ? undefined : values[0];
}

/**
 * Answers a token request of the client_credentials grant authenticated by a private_key_jwt
 * client assertion; throws OAuthError with the RFC 6749 error code otherwise.
 */
export async function clientCredentialsToken(auth: AuthContext, params: URLSearchParams, options: TokenRequestOptions = {}): Promise<TokenGrant> {
  const now = options.now ?? Date.now;
  if (options.authorization !== undefined && /^basic\s/i.test(options.authorization)) {
    // RFC 6749 §5.2: a client that tried HTTP authentication gets a 401 naming the scheme.
    throw new OAuthError('invalid_client', 'client_secret_basic is not supported: authenticate with a private_key_jwt client assertion', undefined, 401, {
      'www-authenticate': 'Basic realm="carnet"',
    });
  }
  for (const name of new Set(params.keys())) single(params, name);
  const grantType = single(params, 'grant_type');
  if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is required');
  if (grantType !== 'client_credentials') throw new OAuthError('unsupported_grant_type', `grant_type "${grantType.slice(0, 80)}" is not supported; this endpoint serves client_credentials`);

  const assertionType = single(params, 'client_assertion_type');
  const assertion = single(params, 'client_assertion');
  if (assertionType === undefined || assertion === undefined) {
    throw invalidClient(`client authentication is required: client_assertion_type=${JWT_BEARER_ASSERTION} and a client_assertion`);
  }
  if (assertionType !== JWT_BEARER_ASSERTION) throw invalidClient(`client_assertion_type must be ${JWT_BEARER_ASSERTION}`);
  if (assertion.length > MAX_ASSERTION_LENGTH) throw invalidClient('the client assertion is too large');

  let claimed: JWTPayload;
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(assertion);
    claimed = decodeJwt(assertion);
  } catch {
    throw invalidClient('the client assertion is not a well-formed signed JWT');
  }
  const clientId = claimedId(claimed.iss);
  if (typeof claimed.iss !== 'string' || claimed.iss === '' || claimed.sub !== claimed.iss) {
    throw invalidClient('the client assertion must have iss and sub equal to the client id', clientId);
  }
  const paramClientId = single(params, 'client_id');
  if (paramClientId !== undefined && paramClientId !== claimed.iss) throw invalidClient('client_id does not match the client assertion', clientId);
  if (typeof header.alg !== 'string' || !(ASSERTION_ALGORITHMS as readonly string[]).includes(header.alg)) {
    throw invalidClient(`the client assertion must be signed with ${ASSERTION_ALGORITHMS.join(' or ')}`, clientId);
  }
  if (typeof header.kid !== 'string' || header.kid === '') throw invalidClient('the client assertion header needs the kid of the signing key', clientId);
  if (header.jku !== undefined) throw invalidClient('jku is not accepted: assertions are verified with the JWKS registered for the client', clientId);

  const client = await auth.clients.get(claimed.iss);
  if (!client) throw invalidClient('unknown client', clientId);

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(assertion, createLocalJWKSet(client.jwks as JSONWebKeySet), {
      algorithms: [...ASSERTION_ALGORITHMS],
      audience: auth.tokenEndpoint(),
      issuer: client.id,
      subject: client.id,
      requiredClaims: ['exp', 'jti'],
      clockTolerance: CLOCK_SKEW_S,
      currentDate: new Date(now()),
    }));
  } catch (error) {
    throw invalidClient(assertionFailure(error, auth), client.id);
  }
  const exp = payload.exp as number;
  if (exp - now() / 1000 > MAX_ASSERTION_LIFETIME_S + CLOCK_SKEW_S) {
    throw invalidClient(`the client assertion's exp must be at most ${MAX_ASSERTION_LIFETIME_S / 60} minutes ahead`, client.id);
  }
  if (typeof payload.jti !== 'string' || payload.jti === '' || payload.jti.length > 256) throw invalidClient('the client assertion needs a jti string of at most 256 characters', client.id);
  // Remembered until the assertion could no longer be accepted anyway.
  if (!(await auth.clients.consumeAssertion(client.id, payload.jti, (exp + CLOCK_SKEW_S) * 1000))) {
    throw invalidClient('the client assertion was already used (jti replay)', client.id);
  }

  // Authenticated. Now: may this client have a token at all, and with which scopes?
  if (!client.certified) throw new OAuthError('unauthorized_client', 'the client is not certified: only certified clients get tokens', client.id);
  if (client.kind !== 'system') {
    throw new OAuthError('unauthorized_client', `a ${client.kind} client cannot use client_credentials; it gets access through a patient's or practitioner's authorisation`, client.id);
  }
  const scope = single(params, 'scope');
  if (scope === undefined) throw new OAuthError('invalid_scope', 'scope is required (e.g. system/DocumentReference.cru)', client.id);
  const { granted, dropped } = intersectScopes(scope, client.scopes, 'system');
  if (granted.length === 0) {
    throw new OAuthError('invalid_scope', `none of the requested scopes is allowed for this client (allowed: ${client.scopes})`, client.id);
  }
  const grantedScope = granted.join(' ');

  const accessToken = await mintToken(auth.signingKey, {
    issuer: auth.issuerUrl(),
    audience: auth.audience(),
    subject: client.id,
    ttl: auth.accessTokenTtl,
    claims: {
      [CARNET_CLAIMS.kind]: 'system',
      [CARNET_CLAIMS.clientId]: client.id,
      [CARNET_CLAIMS.scope]: grantedScope,
      ...(client.organizationId ? { [CARNET_CLAIMS.organization]: client.organizationId } : {}),
    },
  });
  return { response: { access_token: accessToken, token_type: 'bearer', expires_in: auth.accessTokenTtl, scope: grantedScope }, client, dropped };
}
