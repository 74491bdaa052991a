// SMART Backend Services end to end: a vendor system registered in the catalogue signs a client
// assertion with its own key pair (ES384 or RS384), POSTs it to /auth/token, gets an access token
// signed by Carnet's key, and that token opens the FHIR API. Then every way a request is refused,
// each answered as an OAuth JSON error (RFC 6749 §5.2), never an OperationOutcome.

import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { buildApp } from '../../src/app.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { generateSigningKey } from '../../src/auth/keys.js';
import { TokenVerifier } from '../../src/auth/verify.js';
import { authBase, type AuthContext } from '../../src/auth/context.js';
import { registerAuthRoutes } from '../../src/auth/routes.js';
import { registerClient } from '../../src/auth/clients.js';
import { clientCredentialsToken, intersectScopes, JWT_BEARER_ASSERTION, OAuthError } from '../../src/auth/token-endpoint.js';
import type { ClientRecord } from '../../src/store/port.js';

const BASE = 'http://carnet.test/fhir';
const TOKEN_URL = 'http://carnet.test/auth/token';
const FORM = 'application/x-www-form-urlencoded';

// One app for the whole file: the real buildApp (FHIR routes, their body parsers and the auth
// hook) with the auth routes added, its log captured to check what a refusal logs.
const logLines: string[] = [];
const logStream = new Writable({
  write(chunk: Buffer, _encoding, done) {
    logLines.push(chunk.toString('utf8'));
    done();
  },
});
const store = new SqliteStore({ dataDir: ':memory:' });
const signingKey = await generateSigningKey();
const auth: AuthContext = {
  clients: store.clients,
  signingKey,
  issuerUrl: () => authBase(BASE),
  tokenEndpoint: () => `${authBase(BASE)}/token`,
  audience: () => BASE,
  accessTokenTtl: 300,
  verifier: new TokenVerifier([{ issuer: authBase(BASE), jwks: { keys: [signingKey.publicJwk] } }], () => BASE),
};
const app = buildApp({ store, auth, baseUrl: BASE, logger: { level: 'info', stream: logStream } });
registerAuthRoutes(app, auth);
await app.ready();
t.teardown(async () => {
  await app.close();
  await store.close();
});

type Alg = 'ES384' | 'RS384' | 'ES256';
interface ClientKey {
  alg: Alg;
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function clientKey(alg: Alg = 'ES384'): Promise<ClientKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

async function system(key: ClientKey, options: { scopes?: string; certified?: boolean; kind?: string; organizationId?: string } = {}): Promise<ClientRecord> {
  return registerClient(store.clients, {
    name: `Lab ${randomUUID().slice(0, 8)}`,
    kind: options.kind ?? 'system',
    jwks: { keys: [key.publicJwk] },
    scopes: options.scopes ?? 'system/DocumentReference.cru system/Patient.rs system/Binary.cr',
    certified: options.certified ?? true,
    ...(options.organizationId ? { organizationId: options.organizationId } : {}),
    // A certified patient app names its editor (docs/auth.md, the app catalogue).
    ...(options.kind === 'patient-app' ? { editor: 'Editeur SAS' } : {}),
  });
}

interface AssertionOptions {
  iss?: string;
  sub?: string;
  aud?: string;
  /** Seconds from now. */
  expIn?: number;
  jti?: string | null;
  header?: Record<string, unknown>;
}

async function assertion(key: ClientKey, clientId: string, o: AssertionOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(o.jti === null ? {} : { jti: o.jti ?? randomUUID() })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...o.header })
    .setIssuer(o.iss ?? clientId)
    .setSubject(o.sub ?? clientId)
    .setAudience(o.aud ?? TOKEN_URL)
    .setExpirationTime(now + (o.expIn ?? 240));
  return jwt.sign(key.privateKey);
}

function tokenRequest(fields: Record<string, string>, headers: Record<string, string> = {}, target: FastifyInstance = app): Promise<LightMyRequestResponse> {
  return target.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': FORM, ...headers }, payload: new URLSearchParams(fields).toString() });
}

function fields(clientAssertion: string, scope = 'system/DocumentReference.cru'): Record<string, string> {
  return { grant_type: 'client_credentials', client_assertion_type: JWT_BEARER_ASSERTION, client_assertion: clientAssertion, scope };
}

/** Checks an OAuth error response; answers its description. */
function oauthError(tt: Test, response: LightMyRequestResponse, error: string, status = 400): string {
  tt.equal(response.statusCode, status, `status ${status}`);
  tt.match(response.headers['content-type'], /^application\/json/, 'a JSON body');
  tt.equal(response.headers['cache-control'], 'no-store', 'not cached');
  const body = response.json() as { error: string; error_description: string; resourceType?: string };
  tt.equal(body.error, error, `error ${error}`);
  tt.type(body.error_description, 'string', 'with a description');
  tt.notOk(body.resourceType, 'not an OperationOutcome');
  return body.error_description;
}

t.test('a certified system client gets an access token with an ES384 assertion, and the token verifies as a system actor', async (tt) => {
  const key = await clientKey('ES384');
  const client = await system(key, { organizationId: 'lab-1' });
  const response = await tokenRequest(fields(await assertion(key, client.id), 'system/DocumentReference.cru system/Patient.rs'));
  tt.equal(response.statusCode, 200);
  tt.equal(response.headers['cache-control'], 'no-store');
  tt.equal(response.headers.pragma, 'no-cache');
  const body = response.json() as { access_token: string; token_type: string; expires_in: number; scope: string };
  tt.equal(body.token_type, 'bearer');
  tt.equal(body.expires_in, 300);
  tt.equal(body.scope, 'system/DocumentReference.cru system/Patient.rs');

  const claims = decodeJwt(body.access_token);
  tt.equal(claims.iss, 'http://carnet.test/auth', 'issued by Carnet');
  tt.equal(claims.aud, BASE, 'for the FHIR API');
  tt.equal(claims.sub, client.id);
  tt.equal((claims.exp as number) - (claims.iat as number), 300, 'short-lived');

  const verifier = new TokenVerifier([{ issuer: auth.issuerUrl(), jwks: { keys: [signingKey.publicJwk] } }], () => BASE);
  const actor = await verifier.actorOf(`Bearer ${body.access_token}`);
  tt.equal(actor.kind, 'system');
  if (actor.kind !== 'system') return;
  tt.equal(actor.clientId, client.id);
  tt.equal(actor.organizationId, 'lab-1');
  tt.same(
    actor.grants.map((g) => `${g.context}/${g.type}.${[...g.permissions].sort().join('')}`),
    ['system/DocumentReference.cru', 'system/Patient.rs'],
    'the granted scopes',
  );
});

t.test('an RS384 assertion works the same way', async (tt) => {
  const key = await clientKey('RS384');
  const client = await system(key);
  const response = await tokenRequest(fields(await assertion(key, client.id)));
  tt.equal(response.statusCode, 200, 'a token is issued');
  const actor = await auth.verifier.actorOf(`Bearer ${(response.json() as { access_token: string }).access_token}`);
  tt.equal(actor.kind, 'system');
  tt.equal(actor.clientId, client.id);
});

t.test('the access token opens the FHIR API, which refuses the same request without it', async (tt) => {
  const key = await clientKey();
  const client = await system(key);
  const token = (await tokenRequest(fields(await assertion(key, client.id), 'system/Patient.rs'))).json() as { access_token: string };
  const withToken = await app.inject({ method: 'GET', url: '/fhir/Patient?_count=1', headers: { authorization: `Bearer ${token.access_token}` } });
  tt.equal(withToken.statusCode, 200, 'the search is allowed');
  tt.equal((withToken.json() as { resourceType: string }).resourceType, 'Bundle');
  const without = await app.inject({ method: 'GET', url: '/fhir/Patient?_count=1' });
  tt.equal(without.statusCode, 401);
});

t.test('requested scopes are narrowed to what the client is allowed', async (tt) => {
  const key = await clientKey();
  const client = await system(key, { scopes: 'system/DocumentReference.cru system/Patient.rs' });
  const response = await tokenRequest(fields(await assertion(key, client.id), 'system/*.cruds system/Observation.rs openid'));
  tt.equal(response.statusCode, 200, 'a token is issued');
  tt.equal((response.json() as { scope: string }).scope, 'system/DocumentReference.cru system/Patient.rs', 'the intersection, in v2 syntax');
  tt.match(logLines.join(''), /"notGranted":"system\/\*\.cruds system\/Observation\.rs openid"/, 'what was not granted is logged');
});

t.test('scope intersection, case by case', async (tt) => {
  const allowed = 'system/DocumentReference.cru system/Patient.rs system/*.r';
  tt.same(intersectScopes('system/DocumentReference.cru', allowed).granted, ['system/DocumentReference.cru'], 'covered: granted as written');
  tt.same(intersectScopes('system/Patient.read', allowed).granted, ['system/Patient.read'], 'a covered v1 scope stays v1');
  tt.same(intersectScopes('system/Observation.rs', allowed).granted, ['system/Observation.r'], 'narrowed by the wildcard');
  tt.same(intersectScopes('system/DocumentReference.cruds', allowed).granted, ['system/DocumentReference.cru'], 'narrowed to the type');
  tt.same(intersectScopes('system/*.cruds', allowed).granted, ['system/*.r', 'system/DocumentReference.cru', 'system/Patient.rs'], 'a wildcard becomes what is allowed');
  tt.same(intersectScopes('system/Observation.cud', 'system/Patient.rs').granted, [], 'nothing in common');
  tt.same(intersectScopes('patient/*.rs user/*.rs launch', 'system/*.cruds').granted, [], 'other contexts are never granted to a system');
  tt.same(intersectScopes('system/Observation.rs?category=laboratory', 'system/*.cruds').granted, [], 'query-restricted scopes are not granted');
  tt.same(intersectScopes('system/Patient.rs', allowed).dropped, [], 'nothing dropped when covered');
});

t.test('the token logic runs without HTTP', async (tt) => {
  const key = await clientKey();
  const client = await system(key);
  const params = new URLSearchParams(fields(await assertion(key, client.id)));
  const grant = await clientCredentialsToken(auth, params);
  tt.equal(grant.client.id, client.id);
  tt.equal(grant.response.scope, 'system/DocumentReference.cru');
  // A fresh assertion, judged by a clock ten minutes ahead: expired.
  const error = await clientCredentialsToken(auth, new URLSearchParams(fields(await assertion(key, client.id))), { now: () => Date.now() + 600_000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  tt.ok(error instanceof OAuthError, 'refused with an OAuthError');
  if (!(error instanceof OAuthError)) return;
  tt.equal(error.code, 'invalid_client');
  tt.equal(error.clientId, client.id, 'naming the client, for the log');
  tt.match(error.description, /expired/);
});

t.test('refusals', async (tt) => {
  const key = await clientKey();
  const client = await system(key);
  const sign = (o: AssertionOptions = {}) => assertion(key, client.id, o);

  tt.test('a grant type other than client_credentials', async (t2) => {
    const response = await tokenRequest({ ...fields(await sign()), grant_type: 'authorization_code' });
    oauthError(t2, response, 'unsupported_grant_type');
  });

  tt.test('no grant type', async (t2) => {
    const { grant_type: _omitted, ...rest } = fields(await sign());
    oauthError(t2, await tokenRequest(rest), 'invalid_request');
  });

  tt.test('a client assertion type other than jwt-bearer', async (t2) => {
    const response = await tokenRequest({ ...fields(await sign()), client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer' });
    t2.match(oauthError(t2, response, 'invalid_client'), /client_assertion_type/);
  });

  tt.test('no client assertion', async (t2) => {
    const { client_assertion: _omitted, ...rest } = fields(await sign());
    oauthError(t2, await tokenRequest(rest), 'invalid_client');
  });

  tt.test('an unknown client', async (t2) => {
    const stranger = await clientKey();
    const response = await tokenRequest(fields(await assertion(stranger, randomUUID())));
    t2.match(oauthError(t2, response, 'invalid_client'), /unknown client/);
  });

  tt.test('a registered client that is not certified', async (t2) => {
    const otherKey = await clientKey();
    const uncertified = await system(otherKey, { certified: false });
    const response = await tokenRequest(fields(await assertion(otherKey, uncertified.id)));
    t2.match(oauthError(t2, response, 'unauthorized_client'), /not certified/);
  });

  tt.test('an assertion signed with another key under the registered kid', async (t2) => {
    const impostor = { ...(await clientKey()), kid: key.kid };
    const response = await tokenRequest(fields(await assertion(impostor, client.id)));
    t2.match(oauthError(t2, response, 'invalid_client'), /signature/);
  });

  tt.test('an assertion whose kid is not registered', async (t2) => {
    const response = await tokenRequest(fields(await sign({ header: { kid: 'not-registered' } })));
    t2.match(oauthError(t2, response, 'invalid_client'), /no registered key/);
  });

  tt.test('an assertion for another audience', async (t2) => {
    const response = await tokenRequest(fields(await sign({ aud: 'https://elsewhere.example/token' })));
    t2.match(oauthError(t2, response, 'invalid_client'), /aud/);
  });

  tt.test('an assertion expiring more than five minutes ahead', async (t2) => {
    const response = await tokenRequest(fields(await sign({ expIn: 600 })));
    t2.match(oauthError(t2, response, 'invalid_client'), /5 minutes/);
  });

  tt.test('an expired assertion', async (t2) => {
    const response = await tokenRequest(fields(await sign({ expIn: -120 })));
    t2.match(oauthError(t2, response, 'invalid_client'), /expired/);
  });

  tt.test('an assertion without jti', async (t2) => {
    const response = await tokenRequest(fields(await sign({ jti: null })));
    t2.match(oauthError(t2, response, 'invalid_client'), /jti/);
  });

  tt.test('an assertion used twice (jti replay)', async (t2) => {
    const once = await sign();
    t2.equal((await tokenRequest(fields(once))).statusCode, 200, 'the first use succeeds');
    t2.match(oauthError(t2, await tokenRequest(fields(once)), 'invalid_client'), /replay/);
    const sameJti = await sign({ jti: decodeJwt(once).jti as string });
    t2.match(oauthError(t2, await tokenRequest(fields(sameJti)), 'invalid_client'), /replay/, 'a new assertion reusing the jti too');
  });

  tt.test('an assertion whose iss is not its sub', async (t2) => {
    oauthError(t2, await tokenRequest(fields(await sign({ sub: 'someone-else' }))), 'invalid_client');
  });

  tt.test('a client_id parameter that is not the assertion issuer', async (t2) => {
    oauthError(t2, await tokenRequest({ ...fields(await sign()), client_id: 'someone-else' }), 'invalid_client');
  });

  tt.test('an ES256 assertion', async (t2) => {
    const es256 = await clientKey('ES256');
    const response = await tokenRequest(fields(await assertion({ ...es256, kid: key.kid }, client.id)));
    t2.match(oauthError(t2, response, 'invalid_client'), /RS384 or ES384/);
  });

  tt.test('an HS256 assertion (a shared secret)', async (t2) => {
    const now = Math.floor(Date.now() / 1000);
    const hs256 = await new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'HS256', kid: key.kid })
      .setIssuer(client.id)
      .setSubject(client.id)
      .setAudience(TOKEN_URL)
      .setExpirationTime(now + 60)
      .sign(new TextEncoder().encode('a shared secret of thirty-two bytes!'));
    t2.match(oauthError(t2, await tokenRequest(fields(hs256)), 'invalid_client'), /RS384 or ES384/);
  });

  tt.test('an assertion naming a jku', async (t2) => {
    const response = await tokenRequest(fields(await sign({ header: { jku: 'https://attacker.example/jwks' } })));
    t2.match(oauthError(t2, response, 'invalid_client'), /jku/);
  });

  tt.test('a garbled assertion', async (t2) => {
    oauthError(t2, await tokenRequest(fields('not.a.jwt')), 'invalid_client');
  });

  tt.test('scopes the client is not allowed', async (t2) => {
    const response = await tokenRequest(fields(await sign(), 'system/Observation.cud system/Consent.rs'));
    t2.match(oauthError(t2, response, 'invalid_scope'), /none of the requested scopes/);
  });

  tt.test('no scope', async (t2) => {
    const { scope: _omitted, ...rest } = fields(await sign());
    oauthError(t2, await tokenRequest(rest), 'invalid_scope');
  });

  tt.test('a patient-app client', async (t2) => {
    const appKey = await clientKey();
    const patientApp = await system(appKey, { kind: 'patient-app', scopes: 'patient/*.rs launch/patient' });
    const response = await tokenRequest(fields(await assertion(appKey, patientApp.id), 'patient/*.rs'));
    t2.match(oauthError(t2, response, 'unauthorized_client'), /client_credentials/);
  });

  tt.test('a practitioner-app client', async (t2) => {
    const appKey = await clientKey();
    const practitionerApp = await system(appKey, { kind: 'practitioner-app', scopes: 'user/*.rs' });
    oauthError(t2, await tokenRequest(fields(await assertion(appKey, practitionerApp.id), 'user/*.rs')), 'unauthorized_client');
  });

  tt.test('a JSON body', async (t2) => {
    const response = await app.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(fields(await sign())) });
    t2.match(oauthError(t2, response, 'invalid_request'), /x-www-form-urlencoded/);
  });

  tt.test('a repeated parameter', async (t2) => {
    const body = `${new URLSearchParams(fields(await sign())).toString()}&scope=system/Patient.rs`;
    const response = await app.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': FORM }, payload: body });
    t2.match(oauthError(t2, response, 'invalid_request'), /repeated/);
  });

  tt.test('HTTP Basic client authentication', async (t2) => {
    const response = await tokenRequest(fields(await sign()), { authorization: `Basic ${Buffer.from(`${client.id}:secret`).toString('base64')}` });
    oauthError(t2, response, 'invalid_client', 401);
    t2.match(response.headers['www-authenticate'], /^Basic/);
  });

  tt.test('a refusal logs the client and the reason, never the assertion', async (t2) => {
    const replayed = await sign();
    await tokenRequest(fields(replayed));
    const before = logLines.length;
    await tokenRequest(fields(replayed));
    const logged = logLines.slice(before).join('');
    t2.match(logged, /"msg":"token refused"/);
    t2.match(logged, new RegExp(`"client":"${client.id}"`));
    t2.match(logged, /"reason":"the client assertion was already used \(jti replay\)"/);
    t2.notOk(logLines.join('').includes(replayed.split('.')[2]), 'no assertion in the log');
  });
});

t.test('on a bare Fastify instance without body parsers for forms, the token endpoint still reads its form', async (tt) => {
  const bare = Fastify();
  registerAuthRoutes(bare, auth);
  registerAuthRoutes(bare, auth); // a second call is a no-op, not a duplicate route
  await bare.ready();
  tt.teardown(() => bare.close());
  const key = await clientKey();
  const client = await system(key);
  const response = await tokenRequest(fields(await assertion(key, client.id)), {}, bare);
  tt.equal(response.statusCode, 200, 'a token is issued');
  tt.equal((response.json() as { scope: string }).scope, 'system/DocumentReference.cru');
});
