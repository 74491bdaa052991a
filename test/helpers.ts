// Test helpers: a real app on a throw-away in-memory SQLite store, driven through HTTP with
// fastify.inject, and the official example resources from ../shared/data.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Resource } from '@medplum/fhirtypes';
import { buildApp, type AppDeps } from '../src/app.js';
import { SqliteStore } from '../src/store/sqlite/index.js';

export const BASE = 'http://carnet.test/fhir';

const here = path.dirname(fileURLToPath(import.meta.url));
export const PROJECT = path.resolve(here, '..');
export const SHARED_DATA = path.resolve(PROJECT, '../shared/data');

export interface TestServer {
  app: FastifyInstance;
  store: SqliteStore;
  close(): Promise<void>;
}

export async function testServer(overrides: Partial<AppDeps> = {}): Promise<TestServer> {
  const store = new SqliteStore({ dataDir: ':memory:' });
  const app = buildApp({ store, baseUrl: BASE, ...overrides });
  await app.ready();
  return {
    app,
    store,
    async close() {
      await app.close();
      await store.close();
    },
  };
}

export const FHIR_JSON = 'application/fhir+json';

/** Sends a FHIR JSON request; `body` objects are serialised. */
export function fhir(app: FastifyInstance, method: InjectOptions['method'], url: string, body?: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({
    method,
    url: url.startsWith('/') ? url : `/fhir/${url}`,
    headers: { accept: FHIR_JSON, ...(body !== undefined ? { 'content-type': FHIR_JSON } : {}), ...headers },
    ...(body !== undefined ? { payload: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) } : {}),
  });
}

export function json<T = Resource & Record<string, unknown>>(response: LightMyRequestResponse): T {
  return JSON.parse(response.body) as T;
}

/** An official HL7 R4 example, e.g. example('Patient', 'Patient-example.json'). */
export function example<T = Resource>(type: string, file: string): T {
  return JSON.parse(fs.readFileSync(path.join(SHARED_DATA, 'examples/r4/resources', type, file), 'utf8')) as T;
}

export function examplesOf(type: string): { file: string; resource: Resource }[] {
  const dir = path.join(SHARED_DATA, 'examples/r4/resources', type);
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, resource: JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Resource }));
}
