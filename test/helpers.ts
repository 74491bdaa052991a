// Test helpers: a real app on a throw-away store, driven through HTTP with fastify.inject, and the
// official example resources committed in test/fixtures/data (see its PROVENANCE.md).
//
// The store of testServer() (test/store/engines.ts opens each):
// - MONGODB_URI set: the MongoDB engine, on a fresh database per server (dropped at close), so
//   every HTTP scenario test runs on MongoDB;
// - otherwise the embedded engine. The scenario suites (test/e2e/search*, test/search/, test/agenda/,
//   test/policy/, test/mhd/, test/messaging/) run it as production does: on a file in a fresh temporary folder
//   (removed at close), with its writer thread, audit journal and deferred index rows; the other
//   suites in memory. CARNET_TEST_STORE=file or =memory puts every suite on one of them.
// - The scenario suites' store is also wrapped in the mingo shadow that checks every search's
//   MongoDB form (test/store/mingo-shadow.ts; CARNET_TEST_MINGO=all for every suite, =off for none).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Resource } from '@medplum/fhirtypes';
import { buildApp, type AppDeps } from '../src/app.js';
import type { Store } from '../src/store/port.js';
import { MingoShadow } from './store/mingo-shadow.js';
import { mongo, sqliteFile, sqliteMemory } from './store/engines.js';
import { R4_EXAMPLES } from './fixtures/data-paths.js';
import { generateSigningKey, KEY_NAMES, loadOrCreateKey, type SigningKey } from '../src/auth/keys.js';
import { TokenVerifier } from '../src/auth/verify.js';
import { authBase, DEVELOPMENT_ISSUER, type AuthContext } from '../src/auth/context.js';
import { CARNET_CLAIMS, mintToken } from '../src/auth/claims.js';

export const BASE = 'http://carnet.test/fhir';

const here = path.dirname(fileURLToPath(import.meta.url));
export const PROJECT = path.resolve(here, '..');
export { FIXTURE_DATA, R4_EXAMPLES } from './fixtures/data-paths.js';

/** The issuer of the tokens tests mint (trusted by every test server). */
export const TEST_ISSUER = 'urn:carnet:test-issuer';

/** An actor to mint a token for, in the claim vocabulary of docs/auth.md. */
export type TestActor =
  | { kind: 'patient'; patient: string }
  | { kind: 'representative'; relatedPerson: string; patients: string[] }
  | { kind: 'practitioner'; practitioner: string; profession: string; specialty?: string; purpose?: 'TREAT' | 'ETREAT'; patient?: string; organization?: string }
  | { kind: 'system'; client: string; organization?: string }
  | { kind: 'organisation'; role: string; organization: string };

export interface TestServer {
  app: FastifyInstance;
  store: Store;
  auth: AuthContext;
  /** A bearer token for an actor and scopes (default: a vendor system with system/*.cruds). */
  token(actor?: TestActor, scope?: string, extra?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

/** The scopes of the directory feed: writes of Practitioner, PractitionerRole and Organization. */
export const DIRECTORY_FEED = 'system/Practitioner.cud system/PractitionerRole.cud system/Organization.cud';

const DEFAULT_SCOPES: Record<TestActor['kind'], string> = {
  patient: 'patient/*.cruds',
  representative: 'patient/*.rs',
  practitioner: 'user/*.cruds',
  // The test systems also feed the directory of professionals (docs/consent.md: a scope naming the type).
  system: `system/*.cruds ${DIRECTORY_FEED}`,
  organisation: 'user/*.rs',
};

function claimsOf(actor: TestActor): [string, Record<string, unknown>] {
  const c = CARNET_CLAIMS;
  switch (actor.kind) {
    case 'patient':
      return [actor.patient, { [c.kind]: 'patient', [c.fhirUser]: `Patient/${actor.patient}` }];
    case 'representative':
      return [actor.relatedPerson, { [c.kind]: 'representative', [c.fhirUser]: `RelatedPerson/${actor.relatedPerson}`, [c.patients]: actor.patients }];
    case 'practitioner':
      return [
        actor.practitioner,
        {
          [c.kind]: 'practitioner',
          [c.fhirUser]: `Practitioner/${actor.practitioner}`,
          [c.profession]: actor.profession,
          ...(actor.specialty ? { [c.specialty]: actor.specialty } : {}),
          ...(actor.purpose ? { [c.purposeOfUse]: actor.purpose } : {}),
          ...(actor.patient ? { [c.patient]: actor.patient } : {}),
          ...(actor.organization ? { [c.organization]: `Organization/${actor.organization}` } : {}),
        },
      ];
    case 'system':
      return [actor.client, { [c.kind]: 'system', [c.clientId]: actor.client, ...(actor.organization ? { [c.organization]: actor.organization } : {}) }];
    case 'organisation':
      return [actor.organization, { [c.kind]: 'organisation', [c.role]: actor.role, [c.organization]: actor.organization }];
  }
}

/** Mints a token signed by `key` for `issuer`. */
export async function mintFor(key: SigningKey, issuer: string, audience: string, actor: TestActor, scope?: string, extra: Record<string, unknown> = {}): Promise<string> {
  const [subject, claims] = claimsOf(actor);
  return mintToken(key, { issuer, audience, subject, ttl: 3600, claims: { ...claims, scope: scope ?? DEFAULT_SCOPES[actor.kind], ...extra } });
}

/**
 * A development token for a server started as a child process on `dataDir` (the server creates
 * the development key there at start-up), for the FHIR base `audience`.
 */
export async function developmentTokenFor(dataDir: string, audience: string, actor: TestActor = { kind: 'system', client: 'test-client' }): Promise<string> {
  const key = await loadOrCreateKey(dataDir, KEY_NAMES.development);
  return mintFor(key, DEVELOPMENT_ISSUER, audience, actor);
}

// The default token of each test app, used by fhir() when a test sends none.
const defaultTokens = new WeakMap<FastifyInstance, string>();

/** Whether this test process runs one of the scenario suites (see the header). */
function scenarioSuite(): boolean {
  return /test[\\/](e2e[\\/]search[^\\/]*|search[\\/].*|policy[\\/].*|mhd[\\/].*|agenda[\\/].*|messaging[\\/].*)\.test\.ts$/.test(process.argv[1] ?? '');
}

/** Whether this test process checks the MongoDB form of its searches with mingo. */
export function mingoShadowed(): boolean {
  const setting = process.env.CARNET_TEST_MINGO;
  if (setting === 'all') return true;
  if (setting === 'off') return false;
  return scenarioSuite();
}

/** Whether the embedded engine of this test process is on a file, as in production (see the header). */
function onFile(): boolean {
  const setting = process.env.CARNET_TEST_STORE;
  if (setting === 'file') return true;
  if (setting === 'memory') return false;
  if (setting) throw new Error(`CARNET_TEST_STORE must be "file" or "memory", got "${setting}"`);
  return scenarioSuite();
}

/** A throw-away store of the engine the tests run on (see the header); `dispose` closes it and removes its data. */
export async function testStore(): Promise<{ store: Store; dispose: () => Promise<void> }> {
  const uri = process.env.MONGODB_URI;
  const { store, dispose } = await (uri ? mongo(uri) : onFile() ? sqliteFile() : sqliteMemory());
  return { store: !uri && mingoShadowed() ? new MingoShadow(store) : store, dispose };
}

/** A real app on a throw-away store; `setup` runs before the app is ready (to add test hooks). */
export async function testServer(overrides: Partial<AppDeps> = {}, setup?: (app: FastifyInstance) => void): Promise<TestServer> {
  const { store, dispose } = await testStore();
  const base = overrides.baseUrl ?? BASE;
  const baseOf = () => (typeof base === 'function' ? base() : base);
  const issuerKey = await generateSigningKey();
  const signingKey = await generateSigningKey();
  const verifier = new TokenVerifier(
    [
      { issuer: TEST_ISSUER, jwks: { keys: [issuerKey.publicJwk] } },
      { issuer: authBase(baseOf()), jwks: { keys: [signingKey.publicJwk] } },
    ],
    baseOf,
  );
  const auth: AuthContext = {
    clients: store.clients,
    signingKey,
    issuerUrl: () => authBase(baseOf()),
    tokenEndpoint: () => `${authBase(baseOf())}/token`,
    audience: baseOf,
    accessTokenTtl: 300,
    verifier,
  };
  const app = buildApp({ store, baseUrl: BASE, auth, ...overrides });
  setup?.(app);
  await app.ready();
  const token = (actor: TestActor = { kind: 'system', client: 'test-client' }, scope?: string, extra?: Record<string, unknown>) => mintFor(issuerKey, TEST_ISSUER, baseOf(), actor, scope, extra);
  defaultTokens.set(app, await token());
  return {
    app,
    store,
    auth,
    token,
    async close() {
      await app.close();
      await dispose();
    },
  };
}

/** The Authorization header of an actor (with scopes) on a test server, each token minted once. */
export function authorizationFor(server: Pick<TestServer, 'token'>): (actor: TestActor, scope?: string) => Promise<Record<string, string>> {
  const tokens = new Map<string, string>();
  return async (actor, scope) => {
    const key = JSON.stringify([actor, scope]);
    let token = tokens.get(key);
    if (token === undefined) tokens.set(key, (token = await server.token(actor, scope)));
    return { authorization: `Bearer ${token}` };
  };
}

/** The Authorization header of the app's default test token. */
export function bearer(app: FastifyInstance): { authorization: string } {
  const token = defaultTokens.get(app);
  if (!token) throw new Error('not a test server app');
  return { authorization: `Bearer ${token}` };
}

export const FHIR_JSON = 'application/fhir+json';

/** Sends a FHIR JSON request; `body` objects are serialised. */
export function fhir(app: FastifyInstance, method: InjectOptions['method'], url: string, body?: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({
    method,
    url: url.startsWith('/') ? url : `/fhir/${url}`,
    headers: { accept: FHIR_JSON, ...(defaultTokens.has(app) ? bearer(app) : {}), ...(body !== undefined ? { 'content-type': FHIR_JSON } : {}), ...headers },
    ...(body !== undefined ? { payload: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) } : {}),
  });
}

/** The parsed JSON body of a response (anything with a body, e.g. a LightMyRequestResponse). */
export function json<T = Resource & Record<string, unknown>>(response: Pick<LightMyRequestResponse, 'body'>): T {
  return JSON.parse(response.body) as T;
}

/** An official HL7 R4 example, e.g. example('Patient', 'Patient-example.json'). */
export function example<T = Resource>(type: string, file: string): T {
  return JSON.parse(fs.readFileSync(path.join(R4_EXAMPLES, type, file), 'utf8')) as T;
}

/** Every official HL7 R4 example of a type, by file name; throws when there is none. */
export function examplesOf(type: string): { file: string; resource: Resource }[] {
  const dir = path.join(R4_EXAMPLES, type);
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  if (files.length === 0) throw new Error(`no ${type} example in ${dir}`);
  return files.map((file) => ({ file, resource: JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Resource }));
}
