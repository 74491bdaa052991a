// The public auth routes: Carnet's JWKS, the app catalogue and SMART discovery, all reachable
// without a bearer token on the real app (whose auth hook guards /fhir); and the rules a client
// must meet to enter the catalogue.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import t from 'tap';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, type JSONWebKeySet, type JWK } from 'jose';
import { buildApp } from '../../src/app.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { generateSigningKey } from '../../src/auth/keys.js';
import { TokenVerifier } from '../../src/auth/verify.js';
import { authBase, type AuthContext } from '../../src/auth/context.js';
import { mintToken } from '../../src/auth/claims.js';
import { registerAuthRoutes } from '../../src/auth/routes.js';
import { ClientValidationError, registerClient, type NewClient } from '../../src/auth/clients.js';

const BASE = 'http://carnet.test/fhir';

const store = new SqliteStore({ dataDir: ':memory:' });
const signingKey = await generateSigningKey();
const developmentKey = await generateSigningKey();
const auth: AuthContext = {
  clients: store.clients,
  signingKey,
  developmentKey,
  issuerUrl: () => authBase(BASE),
  tokenEndpoint: () => `${authBase(BASE)}/token`,
  audience: () => BASE,
  accessTokenTtl: 300,
  verifier: new TokenVerifier([], () => BASE),
};
const app = buildApp({ store, auth, baseUrl: BASE });
registerAuthRoutes(app, auth);
await app.ready();
t.teardown(async () => {
  await app.close();
  await store.close();
});

async function publicJwk(alg: 'ES384' | 'RS384' = 'ES384'): Promise<JWK> {
  const { publicKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(publicKey)), kid: randomUUID(), alg };
}

async function privateJwk(alg: 'ES384' | 'RS384' = 'ES384'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: randomUUID(), alg };
}

t.test('GET /auth/jwks publishes the public halves of the signing and development keys', async (tt) => {
  const response = await app.inject({ method: 'GET', url: '/auth/jwks' });
  tt.equal(response.statusCode, 200, 'public: no bearer token needed');
  tt.match(response.headers['content-type'], /^application\/jwk-set\+json/);
  const jwks = response.json() as JSONWebKeySet;
  tt.same(
    jwks.keys.map((k) => k.kid),
    [signingKey.kid, developmentKey.kid],
  );
  for (const key of jwks.keys) {
    tt.notOk('d' in key, `key ${key.kid} has no private part`);
    tt.equal(key.use, 'sig');
    tt.equal(key.alg, 'ES256');
  }
  // A token signed by Carnet's key verifies with the published set.
  const token = await mintToken(signingKey, { issuer: auth.issuerUrl(), audience: BASE, subject: 's', ttl: 60, claims: {} });
  const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: auth.issuerUrl(), audience: BASE });
  tt.equal(payload.sub, 's');
});

t.test('without a development key, only the signing key is published', async (tt) => {
  const { developmentKey: _omitted, ...production } = auth;
  const other = buildApp({ store, auth: production, baseUrl: BASE });
  registerAuthRoutes(other, production);
  await other.ready();
  tt.teardown(() => other.close());
  const jwks = (await other.inject({ method: 'GET', url: '/auth/jwks' })).json() as JSONWebKeySet;
  tt.same(
    jwks.keys.map((k) => k.kid),
    [signingKey.kid],
  );
});

t.test('GET /apps lists the certified clients only, without their keys', async (tt) => {
  const certified = await registerClient(store.clients, {
    name: 'Laboratoire Bio-Sud',
    kind: 'system',
    jwks: { keys: [await publicJwk()] },
    scopes: 'system/DocumentReference.cru',
    certified: true,
    organizationId: 'org-bio-sud',
  });
  const patientApp = await registerClient(store.clients, {
    name: 'Mon carnet mobile',
    kind: 'patient-app',
    jwks: { keys: [await publicJwk('RS384')] },
    scopes: 'patient/*.rs launch/patient openid fhirUser',
    certified: true,
    editor: 'Carnet SAS',
  });
  const uncertified = await registerClient(store.clients, {
    name: 'Unreviewed vendor',
    kind: 'system',
    jwks: { keys: [await publicJwk()] },
    scopes: 'system/*.rs',
    certified: false,
  });
  const response = await app.inject({ method: 'GET', url: '/apps' });
  tt.equal(response.statusCode, 200, 'public: no bearer token needed');
  const { apps } = response.json() as { apps: Record<string, unknown>[] };
  const ids = apps.map((a) => a.id);
  tt.ok(ids.includes(certified.id), 'the certified system is listed');
  tt.ok(ids.includes(patientApp.id), 'the certified patient app is listed');
  tt.notOk(ids.includes(uncertified.id), 'the uncertified client is not');
  tt.same(
    apps.find((a) => a.id === certified.id),
    {
      id: certified.id,
      name: 'Laboratoire Bio-Sud',
      kind: 'system',
      certifiedOn: certified.certifiedOn,
      scopes: 'system/DocumentReference.cru',
      data: ['Reads, adds to and changes the documents (reports, prescriptions, letters) of any record the consent policy lets it reach'],
    },
    'id, name, kind, certification date, scopes and what they let it do; never the organisation',
  );
  tt.notOk(response.body.includes('"keys"') || response.body.includes('"kty"'), 'no key material at all');
});

t.test('GET /fhir/.well-known/smart-configuration describes the token endpoint', async (tt) => {
  const response = await app.inject({ method: 'GET', url: '/fhir/.well-known/smart-configuration' });
  tt.equal(response.statusCode, 200, 'public although under /fhir');
  tt.match(response.headers['content-type'], /^application\/json/);
  const config = response.json() as Record<string, unknown>;
  tt.equal(config.issuer, 'http://carnet.test/auth');
  tt.equal(config.token_endpoint, 'http://carnet.test/auth/token');
  tt.equal(config.jwks_uri, 'http://carnet.test/auth/jwks');
  tt.same(config.grant_types_supported, ['client_credentials']);
  tt.same(config.token_endpoint_auth_methods_supported, ['private_key_jwt']);
  tt.same(config.token_endpoint_auth_signing_alg_values_supported, ['RS384', 'ES384']);
  tt.ok((config.scopes_supported as string[]).includes('system/*.cruds'), 'system scopes are listed');
  for (const capability of ['client-confidential-asymmetric', 'permission-v2', 'permission-v1']) {
    tt.ok((config.capabilities as string[]).includes(capability), capability);
  }
  tt.notOk('authorization_endpoint' in config, 'no authorization endpoint is claimed');
});

t.test('the FHIR API itself still needs a token', async (tt) => {
  const response = await app.inject({ method: 'GET', url: '/fhir/Patient' });
  tt.equal(response.statusCode, 401);
});

t.test('registering a client', async (tt) => {
  const valid = async (): Promise<NewClient> => ({ name: 'Hôpital Nord', kind: 'system', jwks: { keys: [await publicJwk()] }, scopes: 'system/DocumentReference.cru', certified: true });
  const refused = async (tt2: typeof tt, change: Partial<NewClient>, pattern: RegExp, what: string) => {
    const error = await registerClient(store.clients, { ...(await valid()), ...change }).then(
      () => undefined,
      (e: unknown) => e,
    );
    tt2.ok(error instanceof ClientValidationError, `${what} is refused`);
    tt2.match((error as Error).message, pattern, what);
  };

  tt.test('a valid client is stored with a fresh id', async (t2) => {
    const one = await registerClient(store.clients, await valid());
    const two = await registerClient(store.clients, await valid());
    t2.not(one.id, two.id);
    t2.match(one.id, /^[0-9a-f-]{36}$/);
    t2.same(await store.clients.get(one.id), one, 'persisted as returned');
  });

  tt.test('RSA keys of 2048 bits for RS384 are accepted', async (t2) => {
    const client = await registerClient(store.clients, { ...(await valid()), jwks: { keys: [await publicJwk('RS384')] } });
    t2.equal(client.jwks.keys[0].kty, 'RSA');
  });

  tt.test('refusals', async (t2) => {
    await refused(t2, { kind: 'robot' }, /kind must be one of/, 'an unknown kind');
    await refused(t2, { name: '  ' }, /name/, 'an empty name');
    await refused(t2, { jwks: { keys: [await privateJwk()] } }, /private/, 'a private EC key');
    await refused(t2, { jwks: { keys: [await privateJwk('RS384')] } }, /private/, 'a private RSA key');
    await refused(t2, { jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 's' }] } }, /secret/, 'a symmetric key');
    await refused(t2, { jwks: { keys: [] } }, /no key/, 'an empty JWKS');
    await refused(t2, { jwks: [await publicJwk()] }, /\{"keys"/, 'a bare array');
    const { kid: _kid, ...noKid } = await publicJwk();
    await refused(t2, { jwks: { keys: [noKid] } }, /kid/, 'a key without kid');
    const twin = await publicJwk();
    await refused(t2, { jwks: { keys: [twin, { ...(await publicJwk()), kid: twin.kid }] } }, /twice/, 'a repeated kid');
    const { publicKey: p256 } = await generateKeyPair('ES256', { extractable: true });
    await refused(t2, { jwks: { keys: [{ ...(await exportJWK(p256)), kid: 'p256' }] } }, /P-384/, 'a P-256 key (ES256)');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    await refused(t2, { jwks: { keys: [{ ...small, kid: 'small' }] } }, /1024-bit/, 'a 1024-bit RSA key');
    await refused(t2, { jwks: { keys: [{ ...(await publicJwk()), alg: 'ES256' }] } }, /alg/, 'an EC P-384 key declared for ES256');
    await refused(t2, { jwks: { keys: [{ ...(await publicJwk()), use: 'enc' }] } }, /use/, 'an encryption key');
    await refused(t2, { scopes: '' }, /at least one scope/, 'no scope');
    await refused(t2, { scopes: 'system/observation.rs' }, /not a SMART scope/, 'a misspelt scope');
    await refused(t2, { scopes: 'patient/*.rs' }, /system\/ scopes only/, 'a patient scope for a system');
    await refused(t2, { scopes: 'openid system/*.rs' }, /system\/ scopes only/, 'openid for a system');
    await refused(t2, { kind: 'patient-app', scopes: 'system/*.rs' }, /patient\/ or user\//, 'a system scope for an app');
    await refused(t2, { kind: 'patient-app', scopes: 'openid launch/patient' }, /clinical-data scope/, 'an app without data scopes');
    await refused(t2, { scopes: 'system/Observation.rs?category=laboratory' }, /query restrictions/, 'a query-restricted scope');
    await refused(t2, { organizationId: 'not an id!' }, /organization/, 'an organisation that is not a FHIR id');
  });
});
