// auth/verify: bearer token -> Actor. Verified with jose against the trusted issuers (inline
// JWKS, or a remote JWKS fetched, cached and refreshed on an unknown kid, which is how issuers
// rotate keys). A verified token's Actor is cached until the token expires, keyed by the SHA-256
// of the whole token, so that a different token can never hit another's entry.

import { createHash } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { Unauthorized } from '../base/outcome.js';
import { ACTOR_KINDS, ORGANISATION_ROLES, type Actor, type ActorKind, type OrganisationRole } from './actor.js';
import { CARNET_CLAIMS, type ClaimNames } from './claims.js';
import { parseScopes } from './scopes.js';

export interface IssuerConfig {
  issuer: string;
  /** Accepted audiences; the FHIR base URL when absent. */
  audience?: string | string[];
  /** A remote JWKS (fetched, cached, refreshed on unknown kid)... */
  jwksUri?: string;
  /** ...or an inline one. */
  jwks?: JSONWebKeySet;
  /** Claim names of this issuer for Carnet's actor fields (defaults: Carnet's own names). */
  claims?: Partial<ClaimNames>;
  /** Every token of this issuer is this kind of actor (e.g. an insurer's issuer). */
  kind?: ActorKind;
  /** Minimum time between two fetches of a remote JWKS, in ms (jose's cooldown; default 30 s). */
  jwksCooldownMs?: number;
  /** How long a fetched remote JWKS is trusted before it is fetched again, in ms (default 10 min). */
  jwksMaxAgeMs?: number;
  /**
   * Client ids of this issuer's own apps (the patient portal itself): a patient token issued to
   * one is the patient's own, not an app's of the catalogue needing the patient's grant.
   */
  firstPartyClients?: string[];
}

interface TrustedIssuer {
  config: IssuerConfig;
  keys: JWTVerifyGetKey;
  claims: ClaimNames;
}

/** Why a token is refused: logged (never the token), and said in WWW-Authenticate. */
export class TokenRejected extends Unauthorized {
  constructor(readonly reason: string) {
    super(`Invalid bearer token: ${reason}`, `Bearer realm="carnet", error="invalid_token", error_description="${reason.replace(/"/g, "'")}"`);
  }
}

const MAX_CACHED = 10_000;
const ALGORITHMS = ['ES256', 'ES384', 'RS256', 'RS384', 'PS256', 'PS384'];

function stringClaim(payload: JWTPayload, name: string): string | undefined {
  const value = payload[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** "Practitioner/12" -> ["Practitioner", "12"]; also accepts absolute URLs ending so. */
function fhirUserOf(value: string | undefined): [string, string] | undefined {
  const match = value ? /(?:^|\/)(Patient|Practitioner|RelatedPerson|Organization)\/([A-Za-z0-9\-.]{1,64})$/.exec(value) : null;
  return match ? [match[1], match[2]] : undefined;
}

/** An id given as "Organization/12" or "12". */
function idOf(value: string | undefined): string | undefined {
  return value?.split('/').pop() || undefined;
}

/** The Actor a verified payload describes; throws TokenRejected when a required claim is missing. */
export function actorFromClaims(payload: JWTPayload, names: ClaimNames, fixedKind?: ActorKind): Actor {
  const claim = (field: keyof ClaimNames) => stringClaim(payload, names[field]);
  const issuer = payload.iss ?? '';
  const subject = payload.sub ?? '';
  const fhirUser = fhirUserOf(claim('fhirUser'));
  let kind = (fixedKind ?? claim('kind')) as ActorKind | undefined;
  if (!kind && fhirUser) kind = ({ Patient: 'patient', Practitioner: 'practitioner', RelatedPerson: 'representative' } as Record<string, ActorKind>)[fhirUser[0]];
  if (!kind || !ACTOR_KINDS.includes(kind)) throw new TokenRejected(`claim ${names.kind} must name an actor kind (${ACTOR_KINDS.join(', ')})`);
  const grants = parseScopes(claim('scope'));
  // RFC 9068 access tokens name their client in client_id; OpenID Connect ones in azp.
  const clientId = claim('clientId') ?? stringClaim(payload, 'azp');
  const common = { grants, issuer, subject, ...(clientId ? { clientId } : {}) };
  const need = (value: string | undefined, what: string): string => {
    if (value === undefined) throw new TokenRejected(`a ${kind} token needs ${what}`);
    return value;
  };
  switch (kind) {
    case 'patient':
      return { ...common, kind, patientId: need(fhirUser?.[0] === 'Patient' ? fhirUser[1] : claim('patient'), `${names.fhirUser} Patient/<id> or ${names.patient}`) };
    case 'representative': {
      const listed = payload[names.patients];
      const patientIds = Array.isArray(listed) ? listed.filter((p): p is string => typeof p === 'string').map((p) => idOf(p) as string) : [];
      const single = claim('patient');
      if (single && !patientIds.includes(single)) patientIds.push(single);
      if (patientIds.length === 0) throw new TokenRejected(`a representative token needs ${names.patients}`);
      return { ...common, kind, relatedPersonId: need(fhirUser?.[0] === 'RelatedPerson' ? fhirUser[1] : undefined, `${names.fhirUser} RelatedPerson/<id>`), patientIds };
    }
    case 'practitioner': {
      const purpose = claim('purposeOfUse') ?? 'TREAT';
      if (purpose !== 'TREAT' && purpose !== 'ETREAT') throw new TokenRejected(`${names.purposeOfUse} must be TREAT or ETREAT`);
      const rpps = claim('rpps');
      const specialty = claim('specialty');
      const organizationId = idOf(claim('organization'));
      const patientId = claim('patient');
      return {
        ...common,
        kind,
        practitionerId: need(fhirUser?.[0] === 'Practitioner' ? fhirUser[1] : undefined, `${names.fhirUser} Practitioner/<id>`),
        profession: need(claim('profession'), names.profession),
        purposeOfUse: purpose,
        ...(rpps ? { rpps } : {}),
        ...(specialty ? { specialty } : {}),
        ...(organizationId ? { organizationId } : {}),
        ...(patientId ? { patientId } : {}),
      };
    }
    case 'system': {
      const organizationId = idOf(claim('organization'));
      return { ...common, kind, clientId: need(clientId ?? (subject || undefined), `${names.clientId} or sub`), ...(organizationId ? { organizationId } : {}) };
    }
    case 'organisation': {
      const role = claim('role') as OrganisationRole | undefined;
      if (!role || !ORGANISATION_ROLES.includes(role)) throw new TokenRejected(`${names.role} must be one of ${ORGANISATION_ROLES.join(', ')}`);
      return { ...common, kind, role, organizationId: need(idOf(claim('organization')), names.organization) };
    }
  }
}

// jose's errors, as the reason a client is told.
function reasonOf(error: unknown): string {
  if (error instanceof TokenRejected) return error.reason;
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return 'the token is not valid yet';
    if (error.claim === 'aud') return 'the token is not for this server (aud)';
    if (error.claim === 'iss') return 'the token issuer is not trusted';
    return `claim ${error.claim} is not acceptable`;
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the signature does not verify';
  if (error instanceof errors.JWKSNoMatchingKey) return 'no key of the issuer matches the token (kid)';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the signature algorithm is not accepted';
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JOSEError) return `the token cannot be verified (${error.code})`;
  return 'the token cannot be verified';
}

export class TokenVerifier {
  private readonly issuers = new Map<string, TrustedIssuer>();
  private readonly cache = new Map<string, { actor: Actor; expiresAt: number }>();

  constructor(
    configs: IssuerConfig[],
    private readonly defaultAudience: () => string,
    private readonly now: () => number = Date.now,
    /** Entries kept at most; 0 turns the cache off (to measure what it saves). */
    private readonly maxCached = MAX_CACHED,
  ) {
    for (const config of configs) this.trust(config);
  }

  /** Adds (or replaces) a trusted issuer. */
  trust(config: IssuerConfig): void {
    const keys = config.jwksUri
      ? createRemoteJWKSet(new URL(config.jwksUri), { cooldownDuration: config.jwksCooldownMs ?? 30_000, cacheMaxAge: config.jwksMaxAgeMs ?? 600_000 })
      : createLocalJWKSet(config.jwks ?? { keys: [] });
    this.issuers.set(config.issuer, { config, keys, claims: { ...CARNET_CLAIMS, ...config.claims } });
  }

  /** The trusted issuer names (for the start-up line). */
  get trusted(): string[] {
    return [...this.issuers.keys()];
  }

  /** The Actor of an Authorization header; throws TokenRejected (401) otherwise. */
  async actorOf(authorization: string | undefined): Promise<Actor> {
    if (!authorization) throw new TokenRejected('an Authorization: Bearer <token> header is required');
    const match = /^Bearer\s+([A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+)\s*$/i.exec(authorization);
    if (!match) throw new TokenRejected('the Authorization header is not "Bearer" followed by a JWT');
    const token = match[1];
    const key = createHash('sha256').update(token).digest('base64url');
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt > this.now()) return cached.actor;
    if (cached) this.cache.delete(key);
    return this.verify(token, key);
  }

  private async verify(token: string, cacheKey: string): Promise<Actor> {
    let claimed: JWTPayload;
    try {
      claimed = decodeJwt(token);
    } catch {
      throw new TokenRejected('the token is not a well-formed JWT');
    }
    const trusted = claimed.iss !== undefined ? this.issuers.get(claimed.iss) : undefined;
    if (!trusted) throw new TokenRejected('the token issuer is not trusted');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, trusted.keys, {
        issuer: trusted.config.issuer,
        audience: trusted.config.audience ?? this.defaultAudience(),
        algorithms: ALGORITHMS,
        currentDate: new Date(this.now()),
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      throw new TokenRejected(reasonOf(error));
    }
    let actor = actorFromClaims(payload, trusted.claims, trusted.config.kind);
    if (actor.kind !== 'system' && actor.clientId !== undefined && trusted.config.firstPartyClients?.includes(actor.clientId)) {
      const { clientId: _firstParty, ...own } = actor;
      actor = own as Actor;
    }
    this.remember(cacheKey, actor, (payload.exp as number) * 1000);
    return actor;
  }

  private remember(key: string, actor: Actor, expiresAt: number): void {
    if (this.maxCached === 0) return;
    if (this.cache.size >= this.maxCached) {
      // Drop expired entries first, then the oldest: the cache stays bounded.
      const now = this.now();
      for (const [k, v] of this.cache) if (v.expiresAt <= now) this.cache.delete(k);
      while (this.cache.size >= this.maxCached) this.cache.delete(this.cache.keys().next().value as string);
    }
    this.cache.set(key, { actor, expiresAt });
  }

  /** Number of cached Actors (for tests and metrics). */
  get cached(): number {
    return this.cache.size;
  }
}
