// auth/clients: the app catalogue's rules. Registering a client (validated name, kind, public
// JWKS usable for RS384/ES384, allowed scopes), and the public view of the catalogue. Storage is
// the store's ClientRegistry; this module never touches SQL.
//
// The registry is designed for the consent issue: a client's id is stable and random, its kind
// says whether a patient may grant it access (patient-app, practitioner-app), and its `scopes`
// are the ceiling any later grant by a patient is intersected with.

import { randomUUID } from 'node:crypto';
import { base64url, importJWK, type JWK } from 'jose';
import type { ClientRecord, ClientRegistry } from '../store/port.js';
import { parseScopes, type ScopeContext } from './scopes.js';

export type ClientKind = ClientRecord['kind'];
export const CLIENT_KINDS: readonly ClientKind[] = ['system', 'patient-app', 'practitioner-app'];

/** The algorithms SMART asks client assertions to be signed with (client-confidential-asymmetric). */
export const ASSERTION_ALGORITHMS = ['RS384', 'ES384'] as const;

/** Why a registration is refused; the message names the faulty input. */
export class ClientValidationError extends Error {}

export interface NewClient {
  name: string;
  /** system | patient-app | practitioner-app (checked: the value may come from a command line). */
  kind: string;
  /** A JWK Set of public keys. */
  jwks: unknown;
  /** Allowed scopes, space-separated. */
  scopes: string;
  certified: boolean;
  organizationId?: string;
  /** Who makes the app (required for a certified patient app: a patient grants an app knowing whose it is). */
  editor?: string;
  /** What the app is for, in the editor's words. */
  description?: string;
  /** The date (YYYY-MM-DD) it passed certification; a certified client without one was certified today. */
  certifiedOn?: string;
}

/**
 * The identifier system of client ids: how a Consent names the app a patient grants
 * (`provision.actor.reference.identifier`) and how an AuditEvent names the client of a request.
 */
export const CLIENT_ID_SYSTEM = 'urn:carnet:client';

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
// SMART scopes that grant no data but that apps may legitimately hold.
const NON_CLINICAL = new Set(['openid', 'fhirUser', 'profile', 'launch', 'launch/patient', 'launch/encounter', 'offline_access', 'online_access']);
// JWK members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const MIN_RSA_BITS = 2048;

function fail(message: string): never {
  throw new ClientValidationError(message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function rsaBits(n: string): number {
  let bytes: Uint8Array;
  try {
    bytes = base64url.decode(n);
  } catch {
    return 0;
  }
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  return (bytes.length - i) * 8;
}

/** The algorithm a registered key will verify, or a ClientValidationError. */
function algorithmOf(key: Record<string, unknown>, label: string): (typeof ASSERTION_ALGORITHMS)[number] {
  for (const member of PRIVATE_MEMBERS) {
    if (member in key) fail(`${label} is a private or secret key (it has "${member}"): register the public key only`);
  }
  if (key.use !== undefined && key.use !== 'sig') fail(`${label} has use "${String(key.use)}"; client assertion keys need use "sig" (or no use)`);
  if (key.key_ops !== undefined && !(Array.isArray(key.key_ops) && key.key_ops.includes('verify'))) fail(`${label} has key_ops without "verify"`);
  let alg: (typeof ASSERTION_ALGORITHMS)[number];
  if (key.kty === 'EC') {
    if (key.crv !== 'P-384') fail(`${label} is an EC key on ${String(key.crv)}; ES384 needs the P-384 curve`);
    if (typeof key.x !== 'string' || typeof key.y !== 'string') fail(`${label} lacks x or y`);
    alg = 'ES384';
  } else if (key.kty === 'RSA') {
    if (typeof key.n !== 'string' || typeof key.e !== 'string') fail(`${label} lacks n or e`);
    const bits = rsaBits(key.n);
    if (bits < MIN_RSA_BITS) fail(`${label} is a ${bits}-bit RSA key; at least ${MIN_RSA_BITS} bits are required`);
    alg = 'RS384';
  } else {
    fail(`${label} has kty "${String(key.kty)}"; client assertion keys are EC P-384 (ES384) or RSA (RS384)`);
  }
  if (key.alg !== undefined && key.alg !== alg) fail(`${label} declares alg "${String(key.alg)}"; a ${String(key.kty)} key must be used with ${alg}`);
  return alg;
}

/** A JWK Set of public keys usable for RS384/ES384 client assertions, each with a unique kid. */
export async function validateJwks(jwks: unknown): Promise<ClientRecord['jwks']> {
  if (!isRecord(jwks) || !Array.isArray(jwks.keys)) fail('the JWKS must be a JSON object {"keys": [...]}');
  if (jwks.keys.length === 0) fail('the JWKS has no key');
  const kids = new Set<string>();
  const keys: Record<string, unknown>[] = [];
  for (const [index, key] of (jwks.keys as unknown[]).entries()) {
    const label = `key ${index + 1}`;
    if (!isRecord(key)) fail(`${label} is not a JSON object`);
    if (typeof key.kid !== 'string' || key.kid === '') fail(`${label} has no kid (client assertions name their key by kid)`);
    if (kids.has(key.kid)) fail(`kid "${key.kid}" appears twice`);
    kids.add(key.kid);
    const alg = algorithmOf(key, `key "${key.kid}"`);
    try {
      await importJWK(key as JWK, alg);
    } catch (error) {
      fail(`key "${key.kid}" cannot be used for ${alg}: ${error instanceof Error ? error.message : String(error)}`);
    }
    keys.push({ ...key });
  }
  return { keys };
}

/** The scope contexts a kind of client may hold. */
function contextsFor(kind: ClientKind): ScopeContext[] {
  // Backend services only ever hold system/ scopes; apps act for a user, never as a system.
  return kind === 'system' ? ['system'] : ['patient', 'user'];
}

/** The allowed scopes of a client, checked and normalised (single spaces). */
export function validateScopes(kind: ClientKind, scopes: string): string {
  const tokens = scopes.split(/\s+/).filter(Boolean);
  if (tokens.length === 0) fail('the client needs at least one scope');
  let clinical = 0;
  for (const token of tokens) {
    if (NON_CLINICAL.has(token)) {
      if (kind === 'system') fail(`scope "${token}" is for apps acting for a user; a system client holds system/ scopes only`);
      continue;
    }
    if (token.includes('?')) fail(`scope "${token}": scopes with query restrictions are not supported`);
    const [grant] = parseScopes(token);
    if (!grant) fail(`scope "${token}" is not a SMART scope (e.g. system/DocumentReference.cru, patient/*.rs, user/Observation.read)`);
    if (!contextsFor(kind).includes(grant.context)) fail(`scope "${token}": a ${kind} client may hold ${contextsFor(kind).map((c) => `${c}/`).join(' or ')} scopes only`);
    clinical++;
  }
  if (clinical === 0) fail('the client needs at least one clinical-data scope (patient/, user/ or system/)');
  return [...new Set(tokens)].join(' ');
}

/** A real calendar date written YYYY-MM-DD (2026-02-30 is not one). */
function isDate(value: string): boolean {
  const time = Date.parse(`${value}T00:00:00Z`);
  return DATE.test(value) && !Number.isNaN(time) && new Date(time).toISOString().startsWith(value);
}

/** A trimmed optional text of at most `max` characters; undefined when absent or blank. */
function optionalText(value: string | undefined, what: string, max: number): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') fail(`the ${what} must be text`);
  const text = value.trim();
  if (text.length > max) fail(`the ${what} must have at most ${max} characters`);
  return text === '' ? undefined : text;
}

/** Validates and stores a new client; answers its record with a fresh random id. */
export async function registerClient(registry: ClientRegistry, input: NewClient, now: () => Date = () => new Date()): Promise<ClientRecord> {
  const name = typeof input.name === 'string' ? input.name.trim() : '';
  if (name === '' || name.length > 200) fail('the client name must have 1 to 200 characters');
  if (!CLIENT_KINDS.includes(input.kind as ClientKind)) fail(`kind must be one of ${CLIENT_KINDS.join(', ')}, not "${input.kind}"`);
  const kind = input.kind as ClientKind;
  const scopes = validateScopes(kind, typeof input.scopes === 'string' ? input.scopes : '');
  const jwks = await validateJwks(input.jwks);
  if (input.organizationId !== undefined && !FHIR_ID.test(input.organizationId)) fail(`organization "${input.organizationId}" is not a FHIR id`);
  const certified = input.certified === true;
  const editor = optionalText(input.editor, 'editor', 200);
  const description = optionalText(input.description, 'description', 2000);
  if (certified && kind === 'patient-app' && editor === undefined) fail('a certified patient app needs its editor: patients see who makes the app they grant');
  if (input.certifiedOn !== undefined && !certified) fail('a certification date is for a certified client');
  const certifiedOn = certified ? (input.certifiedOn ?? now().toISOString().slice(0, 10)) : undefined;
  if (certifiedOn !== undefined && !isDate(certifiedOn)) fail(`certification date "${certifiedOn}" is not a date (YYYY-MM-DD)`);
  if (certifiedOn !== undefined && certifiedOn > now().toISOString().slice(0, 10)) fail(`certification date ${certifiedOn} is in the future`);
  const record: ClientRecord = {
    id: randomUUID(),
    name,
    kind,
    jwks,
    scopes,
    certified,
    ...(input.organizationId !== undefined ? { organizationId: input.organizationId } : {}),
    ...(editor !== undefined ? { editor } : {}),
    ...(description !== undefined ? { description } : {}),
    ...(certifiedOn !== undefined ? { certifiedOn } : {}),
    created: now().toISOString(),
  };
  await registry.register(record);
  return record;
}
