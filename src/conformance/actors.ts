// conformance/actors: who the TestScripts act as. Each operation chooses its actor with an
// Authorization requestHeader `Bearer ${token-<actor>}`; the runner supplies these variables
// (minted here for a Carnet it starts, or read from --tokens for any other server).
// See docs/conformance.md.

import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import { developmentToken, type DevelopmentActor } from '../auth/dev-tokens.js';
import type { SigningKey } from '../auth/keys.js';
import type { Supplied } from './variables.js';
import type { Fetch } from './runner.js';

/** The directory feed's scopes (docs/consent.md: a scope naming the type). */
const DIRECTORY_FEED = 'system/Practitioner.cud system/PractitionerRole.cud system/Organization.cud';

/** The actors of Carnet's TestScripts: variable name, actor, scopes (the kind's default when absent). */
export const ACTORS: Record<string, { actor: DevelopmentActor; scope?: string; description: string }> = {
  'token-system': {
    actor: { kind: 'system', clientId: 'conformance-vendor' },
    scope: `system/*.cruds ${DIRECTORY_FEED}`,
    description: 'a vendor system (document source, identity and directory feed): system/*.cruds and the directory scopes',
  },
  'token-patient': { actor: { kind: 'patient', patientId: 'cf-patient' }, description: 'the patient Patient/cf-patient: patient/*.cruds' },
  'token-practitioner': {
    actor: { kind: 'practitioner', practitionerId: 'cf-dr', profession: '10' },
    description: 'a physician Practitioner/cf-dr (profession 10) with no care relationship until a Consent names them: user/*.cruds',
  },
};

/** The default actor: operations without an Authorization requestHeader use it. */
export const DEFAULT_ACTOR = 'token-system';

/** Development tokens for every actor, for the FHIR base `audience`, signed with the development issuer's key. */
export async function mintActorTokens(key: SigningKey, audience: string): Promise<Record<string, string>> {
  const tokens: Record<string, string> = {};
  for (const [name, { actor, scope }] of Object.entries(ACTORS)) tokens[name] = await developmentToken(key, audience, actor, scope, 3600);
  return tokens;
}

/** A SMART Backend Services client of the runner: its id and private key (a JWK with kid and alg). */
export interface SmartClient {
  clientId: string;
  privateJwk: JWK;
}

/** The scopes the runner's backend-services client is registered with. */
export const SMART_CLIENT_SCOPES = 'system/Patient.rs system/DocumentReference.rs';

/** A new ES384 key pair for a backend-services client: the private JWK and the public JWKS to register. */
export async function smartKeyPair(): Promise<{ privateJwk: JWK; jwks: { keys: JWK[] } }> {
  const { publicKey, privateKey } = await generateKeyPair('ES384', { extractable: true });
  const kid = randomUUID();
  return {
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES384' },
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' }] },
  };
}

/**
 * The variables of a backend-services client: `smart-client-id`, and `client-assertion`, a fresh
 * signed assertion (new jti, 5 minutes) at each use, for the token endpoint the server's
 * `.well-known/smart-configuration` names.
 */
export function smartVariables(base: string, client: SmartClient, fetcher: Fetch): Record<string, Supplied> {
  let endpoint: Promise<string> | undefined;
  const tokenEndpoint = () =>
    (endpoint ??= fetcher(`${base}/.well-known/smart-configuration`, { method: 'GET', headers: { accept: 'application/json' } })
      .then((r) => r.json() as Promise<{ token_endpoint?: string }>)
      .then((c) => {
        if (!c.token_endpoint) throw new Error('the smart-configuration has no token_endpoint');
        return c.token_endpoint;
      }));
  return {
    'smart-client-id': client.clientId,
    'client-assertion': async () => {
      const alg = client.privateJwk.alg ?? 'ES384';
      const key = await importJWK(client.privateJwk, alg);
      return new SignJWT({ jti: randomUUID() })
        .setProtectedHeader({ alg, kid: client.privateJwk.kid!, typ: 'JWT' })
        .setIssuer(client.clientId)
        .setSubject(client.clientId)
        .setAudience(await tokenEndpoint())
        .setExpirationTime('5m')
        .sign(key);
    },
  };
}
