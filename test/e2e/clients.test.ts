// The three npm FHIR clients that hospital and practitioner developers use (docs/api.md),
// unmodified, against the real app listening on a TCP port: fhir-kit-client 2.x, fhirclient 2.x
// (SMART on FHIR) and @medplum/core 4.x. Each goes through its own API; a recorder on the app
// notes what each client actually sent, so the quirks the server must accept are proven exercised.

import http from 'node:http';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import t, { type Test } from 'tap';
import { Client as FhirKitClient, type FhirResource } from 'fhir-kit-client';
import smart from 'fhirclient';
import { MedplumClient, OperationOutcomeError } from '@medplum/core';
import type { Binary, Bundle, BundleEntry, Observation, OperationOutcome, Patient, Resource } from '@medplum/fhirtypes';
import { testServer } from '../helpers.js';


// The base URL must be the listening address, so that Location headers and next links can be
// followed: the port is chosen first, then the app is built with it.
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

interface Seen {
  method: string;
  url: string;
  contentType?: string;
  accept?: string;
  authorization?: string;
  status?: number;
}

const port = await freePort();
const ORIGIN = `http://127.0.0.1:${port}`;
const BASE = `${ORIGIN}/fhir`;
const seen: Seen[] = [];
const pending = new WeakMap<object, Seen>();
const server = await testServer({ baseUrl: BASE }, (app) => {
  app.addHook('onRequest', async (request) => {
    const h = request.headers;
    const entry: Seen = { method: request.method, url: request.url };
    if (typeof h['content-type'] === 'string') entry.contentType = h['content-type'];
    if (typeof h.accept === 'string') entry.accept = h.accept;
    if (typeof h.authorization === 'string') entry.authorization = h.authorization;
    seen.push(entry);
    pending.set(request.raw, entry);
  });
  app.addHook('onResponse', async (request, reply) => {
    const entry = pending.get(request.raw);
    if (entry) entry.status = reply.statusCode;
  });
});
const { app } = server;
// A real token, minted by the test issuer the server trusts: a vendor system with system/*.cruds.
const TOKEN = await server.token();
await app.listen({ port, host: '127.0.0.1' });
t.teardown(() => server.close());

/** The last request the app received with this method whose URL (path and query) satisfies `url`. */
function lastSeen(method: string, url: (u: string) => boolean): Seen | undefined {
  return [...seen].reverse().find((s) => s.method === method && url(s.url));
}

const isPath = (path: string) => (u: string) => u.split('?')[0] === path;

function patient(system: string, value: string, family: string): Patient {
  return { resourceType: 'Patient', identifier: [{ system, value }], name: [{ family, given: ['Ada'] }], gender: 'female', birthDate: '1970-01-31' };
}

/** A transaction that creates a Patient and an Observation pointing at it by urn:uuid. */
function transactionBundle(system: string, value: string): { bundle: Bundle; patientUrn: string } {
  const patientUrn = `urn:uuid:${randomUUID()}`;
  const observation: Observation = {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
    subject: { reference: patientUrn },
    valueQuantity: { value: 61.5, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
  };
  return {
    patientUrn,
    bundle: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: patientUrn, resource: patient(system, value, 'Transact'), request: { method: 'POST', url: 'Patient' } },
        { fullUrl: `urn:uuid:${randomUUID()}`, resource: observation, request: { method: 'POST', url: 'Observation' } },
      ],
    },
  };
}

/** Checks a transaction-response for the bundle above; returns the ids the server gave. */
function checkTransactionResponse(t: Test, response: Bundle): { patientId: string; observationId: string } {
  t.equal(response.resourceType, 'Bundle');
  t.equal(response.type, 'transaction-response');
  t.equal(response.entry?.length, 2, 'one response entry per request entry');
  const [p, o] = (response.entry ?? []) as BundleEntry[];
  t.match(p?.response?.status, /^201/, 'the Patient was created');
  t.match(o?.response?.status, /^201/, 'the Observation was created');
  const patientId = /Patient\/([^/]+)\/_history\/1$/.exec(p?.response?.location ?? '')?.[1] ?? '';
  const observationId = /Observation\/([^/]+)\/_history\/1$/.exec(o?.response?.location ?? '')?.[1] ?? '';
  t.match(patientId, /^[A-Za-z0-9\-.]{1,64}$/, 'the Patient location names its new id');
  t.match(observationId, /^[A-Za-z0-9\-.]{1,64}$/, 'the Observation location names its new id');
  return { patientId, observationId };
}

/** Checks the history of a Patient that was created, updated once and deleted. */
function checkHistory(t: Test, history: Bundle, id: string): void {
  t.equal(history.resourceType, 'Bundle');
  t.equal(history.type, 'history');
  const entries = history.entry ?? [];
  t.equal(entries.length, 3, 'create, update and delete are all in the history');
  t.same(
    entries.map((e) => e.request?.method),
    ['DELETE', 'PUT', 'POST'],
    'newest first',
  );
  t.same(
    entries.map((e) => e.response?.etag),
    ['W/"3"', 'W/"2"', 'W/"1"'],
  );
  for (const e of entries) t.equal(e.fullUrl, `${BASE}/Patient/${id}`);
  t.equal((entries[1]?.resource as Patient | undefined)?.name?.[0]?.family, 'Updated', 'version 2 carries the update');
  t.equal((entries[2]?.resource as Patient | undefined)?.name?.[0]?.family, 'Created', 'version 1 carries the original');
  t.notOk(entries[0]?.resource, 'the delete has no resource');
}

// The clients type resources their own way; these only re-label, they convert nothing.
const kit = (r: Resource) => r as unknown as FhirResource;
const as = <T>(r: FhirResource | undefined) => r as unknown as T;
const status = (r: FhirResource) => FhirKitClient.httpFor(r).response?.status;

const idsOf = (b: Bundle) => (b.entry ?? []).map((e) => e.resource?.id ?? '');

// ---------------------------------------------------------------------------------------------
// fhir-kit-client 2.x
// ---------------------------------------------------------------------------------------------

t.test('fhir-kit-client', async (t) => {
  const client = new FhirKitClient({ baseUrl: BASE, bearerToken: TOKEN });
  const system = `https://carnet.test/ids/fhir-kit/${randomUUID()}`;
  let id = '';

  await t.test('creates a Patient: 201 with a Location it can follow', async (t) => {
    const raw = await client.create({ resourceType: 'Patient', body: kit(patient(system, 'A-1', 'Created')) });
    const created = as<Patient>(raw);
    const { response } = FhirKitClient.httpFor(raw);
    t.equal(response?.status, 201);
    t.match(created.id, /^[0-9a-f-]{36}$/);
    id = created.id ?? '';
    t.equal(response?.headers.get('location'), `${BASE}/Patient/${id}/_history/1`);
    t.equal(created.meta?.versionId, '1');
    t.same(created.identifier, [{ system, value: 'A-1' }]);
    const sent = lastSeen('POST', isPath('/fhir/Patient'));
    t.match(sent, { contentType: /^application\/fhir\+json/, accept: 'application/fhir+json', authorization: `Bearer ${TOKEN}` });
    // The Location header, exactly as given, through the client's own request().
    const followed = as<Patient>(await client.request(response?.headers.get('location') ?? ''));
    t.equal(followed.id, id);
  });

  await t.test('reads it back', async (t) => {
    const read = as<Patient>(await client.read({ resourceType: 'Patient', id }));
    t.equal(read.id, id);
    t.equal(read.name?.[0]?.family, 'Created');
    t.equal(read.meta?.versionId, '1');
  });

  await t.test('updates it to version 2', async (t) => {
    const body = { ...patient(system, 'A-1', 'Updated'), id };
    const raw = await client.update({ resourceType: 'Patient', id, body: kit(body) });
    const updated = as<Patient>(raw);
    t.equal(status(raw), 200);
    t.equal(updated.meta?.versionId, '2');
    t.equal(updated.name?.[0]?.family, 'Updated');
  });

  await t.test('finds it by identifier (system|value sent URL-encoded)', async (t) => {
    const bundle = as<Bundle>(await client.search({ resourceType: 'Patient', searchParams: { identifier: `${system}|A-1` } }));
    t.equal(bundle.type, 'searchset');
    t.equal(bundle.total, 1);
    t.same(idsOf(bundle), [id]);
    t.equal(bundle.entry?.[0]?.search?.mode, 'match');
    const sent = lastSeen('GET', (u) => u.startsWith('/fhir/Patient?'));
    t.match(sent?.url, /identifier=https%3A%2F%2Fcarnet\.test/, 'the client encoded the value');
    const byId = as<Bundle>(await client.search({ resourceType: 'Patient', searchParams: { _id: id } }));
    t.same(idsOf(byId), [id], 'and by _id');
  });

  await t.test('deletes it; reading it then fails with 410 Gone', async (t) => {
    const raw = await client.delete({ resourceType: 'Patient', id });
    const outcome = as<OperationOutcome>(raw);
    t.equal(status(raw), 200);
    t.equal(outcome.resourceType, 'OperationOutcome');
    // fhir-kit-client rejects with an Error carrying response.status and the parsed body.
    const error = await client.read({ resourceType: 'Patient', id }).then(
      () => undefined,
      (e: unknown) => e as { response?: { status?: number; data?: OperationOutcome } },
    );
    t.equal(error?.response?.status, 410);
    t.match(error?.response?.data, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'deleted' }] });
  });

  await t.test('reads the history of the deleted Patient', async (t) => {
    checkHistory(t, as<Bundle>(await client.history({ resourceType: 'Patient', id })), id);
  });

  await t.test('posts a transaction to /fhir/ and the urn:uuid reference is resolved', async (t) => {
    const { bundle } = transactionBundle(system, 'T-1');
    const response = as<Bundle>(await client.transaction({ body: kit(bundle) }));
    t.match(lastSeen('POST', (u) => u.startsWith('/fhir')), { url: '/fhir/', status: 200 }, 'the client posted to the base with a trailing slash');
    const { patientId, observationId } = checkTransactionResponse(t, response);
    const observation = as<Observation>(await client.read({ resourceType: 'Observation', id: observationId }));
    t.equal(observation.subject?.reference, `Patient/${patientId}`);
    const created = as<Patient>(await client.read({ resourceType: 'Patient', id: patientId }));
    t.same(created.identifier, [{ system, value: 'T-1' }]);
  });

  await t.test('pages a search with _count=2 by following next links exactly as given', async (t) => {
    const pageSystem = `https://carnet.test/ids/fhir-kit-pages/${randomUUID()}`;
    const made: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const p = as<Patient>(await client.create({ resourceType: 'Patient', body: kit(patient(pageSystem, `P-${i}`, `Page${i}`)) }));
      made.push(p.id ?? '');
    }
    let raw: FhirResource | undefined = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${pageSystem}|`, _count: 2 } });
    let page = as<Bundle | undefined>(raw);
    t.equal(page?.total, 5, 'the first page counts all matches');
    const sizes: number[] = [];
    const found: string[] = [];
    while (page) {
      sizes.push(page.entry?.length ?? 0);
      found.push(...idsOf(page));
      const next = page.link?.find((l) => l.relation === 'next')?.url;
      if (next) t.ok(next.startsWith(`${BASE}/Patient?`), 'the next link is absolute on the base');
      raw = await client.nextPage({ bundle: raw as FhirResource & { link: { relation: string; url: string }[] } });
      page = as<Bundle | undefined>(raw);
      if (sizes.length > 5) break;
    }
    t.same(sizes, [2, 2, 1]);
    t.same([...found].sort(), [...made].sort(), 'every patient once, none twice');
  });
});

// ---------------------------------------------------------------------------------------------
// fhirclient 2.x (SMART on FHIR), as a server-side app would hold it once it has a token
// ---------------------------------------------------------------------------------------------

t.test('fhirclient (SMART on FHIR)', async (t) => {
  // The node entry point is smart(req, res); .client(state) builds a Client from a server URL and
  // a token response without going through the launch (which alone needs the request).
  const req = new http.IncomingMessage(new net.Socket());
  const res = new http.ServerResponse(req);
  const client = smart(req, res).client({ serverUrl: BASE, tokenResponse: { access_token: TOKEN } });
  const sf = (r: Resource) => r as unknown as Parameters<typeof client.create>[0];
  const system = `https://carnet.test/ids/fhirclient/${randomUUID()}`;
  let id = '';

  await t.test('creates a Patient as application/json: 201 with a Location', async (t) => {
    const { body, response } = await client.create<Patient, { includeResponse: true }>(sf(patient(system, 'B-1', 'Created')), { includeResponse: true });
    t.equal(response.status, 201);
    id = body?.id ?? '';
    t.match(id, /^[0-9a-f-]{36}$/);
    t.equal(response.headers.get('location'), `${BASE}/Patient/${id}/_history/1`);
    t.match(response.headers.get('content-type'), /^application\/json/, 'answered in the media type it asked for');
    t.same(body?.identifier, [{ system, value: 'B-1' }]);
    t.match(lastSeen('POST', isPath('/fhir/Patient')), { contentType: 'application/json', accept: 'application/json', authorization: `Bearer ${TOKEN}` });
  });

  await t.test('reads it back', async (t) => {
    const read = await client.request<Patient>(`Patient/${id}`);
    t.equal(read.id, id);
    t.equal(read.name?.[0]?.family, 'Created');
  });

  await t.test('updates it to version 2', async (t) => {
    const updated = await client.update<Patient>(sf({ ...patient(system, 'B-1', 'Updated'), id }));
    t.equal(updated.meta?.versionId, '2');
    t.equal(updated.name?.[0]?.family, 'Updated');
  });

  await t.test('finds it by identifier (query string sent unencoded)', async (t) => {
    const bundle = await client.request<Bundle>(`Patient?identifier=${system}|B-1`);
    t.equal(bundle.type, 'searchset');
    t.equal(bundle.total, 1);
    t.same(idsOf(bundle), [id]);
    // The system's ':' and '/' go out raw; node-fetch (under cross-fetch) escapes only the '|'.
    const sent = lastSeen('GET', (u) => u.startsWith('/fhir/Patient?'));
    t.ok([`/fhir/Patient?identifier=${system}|B-1`, `/fhir/Patient?identifier=${system}%7CB-1`].includes(sent?.url ?? ''), `sent unencoded: ${sent?.url}`);
    t.equal(sent?.status, 200);
  });

  await t.test('deletes it; reading it then fails with HttpError 410', async (t) => {
    const { response } = await client.delete<{ response: Response }>(`Patient/${id}`, { includeResponse: true });
    t.equal(response.status, 200);
    const error = await client.request(`Patient/${id}`).then(
      () => undefined,
      (e: unknown) => e as { name?: string; status?: number; message?: string },
    );
    t.equal(error?.name, 'HttpError');
    t.equal(error?.status, 410);
    t.match(error?.message, /"code": "deleted"/, 'the OperationOutcome is in the message');
  });

  await t.test('reads the history of the deleted Patient', async (t) => {
    checkHistory(t, await client.request<Bundle>(`Patient/${id}/_history`), id);
  });

  await t.test('posts a transaction to /fhir/ as application/json and the urn:uuid reference is resolved', async (t) => {
    const { bundle } = transactionBundle(system, 'T-2');
    const response = await client.request<Bundle>({ url: '/', method: 'POST', body: JSON.stringify(bundle), headers: { 'content-type': 'application/json' } });
    t.match(lastSeen('POST', (u) => u.startsWith('/fhir')), { url: '/fhir/', contentType: 'application/json', status: 200 });
    const { patientId, observationId } = checkTransactionResponse(t, response);
    const observation = await client.request<Observation>(`Observation/${observationId}`);
    t.equal(observation.subject?.reference, `Patient/${patientId}`);
  });

  await t.test('collects every page of a search by following next links (pageLimit: 0)', async (t) => {
    const pageSystem = `https://carnet.test/ids/fhirclient-pages/${randomUUID()}`;
    const made: string[] = [];
    for (let i = 1; i <= 3; i++) made.push((await client.create<Patient>(sf(patient(pageSystem, `P-${i}`, `Page${i}`)))).id ?? '');
    const pages = await client.request<Bundle[]>(`Patient?identifier=${pageSystem}|&_count=2`, { pageLimit: 0 });
    t.equal(pages.length, 2);
    t.same(pages.flatMap(idsOf).sort(), [...made].sort());
  });
});

// ---------------------------------------------------------------------------------------------
// @medplum/core 4.x
// ---------------------------------------------------------------------------------------------

t.test('@medplum/core', async (t) => {
  const medplum = new MedplumClient({ baseUrl: `${ORIGIN}/`, fhirUrlPath: 'fhir' });
  medplum.setAccessToken(TOKEN);
  const system = `https://carnet.test/ids/medplum/${randomUUID()}`;
  let id = '';

  await t.test('creates a Patient', async (t) => {
    const created = await medplum.createResource(patient(system, 'C-1', 'Created'));
    id = created.id;
    t.match(id, /^[0-9a-f-]{36}$/);
    t.equal(created.meta?.versionId, '1');
    t.same(created.identifier, [{ system, value: 'C-1' }]);
    t.match(lastSeen('POST', isPath('/fhir/Patient')), {
      status: 201,
      contentType: 'application/fhir+json',
      accept: 'application/fhir+json, */*; q=0.1',
      authorization: `Bearer ${TOKEN}`,
    });
  });

  await t.test('reads it back', async (t) => {
    const read = await medplum.readResource('Patient', id);
    t.equal(read.id, id);
    t.equal(read.name?.[0]?.family, 'Created');
  });

  await t.test('updates it to version 2', async (t) => {
    const updated = await medplum.updateResource({ ...patient(system, 'C-1', 'Updated'), id });
    t.equal(updated.meta?.versionId, '2');
    t.equal(updated.name?.[0]?.family, 'Updated');
  });

  await t.test('finds it by identifier', async (t) => {
    const bundle = await medplum.search('Patient', { identifier: `${system}|C-1` });
    t.equal(bundle.type, 'searchset');
    t.equal(bundle.total, 1);
    t.same(idsOf(bundle), [id]);
    const found = await medplum.searchOne('Patient', { identifier: `${system}|C-1` });
    t.equal(found?.id, id, 'searchOne too');
  });

  await t.test('deletes it; reading it then rejects with an OperationOutcomeError (deleted)', async (t) => {
    await medplum.deleteResource('Patient', id);
    t.match(lastSeen('DELETE', isPath(`/fhir/Patient/${id}`)), { status: 200 });
    const error = await medplum.readResource('Patient', id).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(error instanceof OperationOutcomeError, 'an OperationOutcomeError');
    t.match((error as OperationOutcomeError | undefined)?.outcome, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'deleted' }] });
    t.match(lastSeen('GET', isPath(`/fhir/Patient/${id}`)), { status: 410 });
  });

  await t.test('reads the history of the deleted Patient', async (t) => {
    checkHistory(t, await medplum.readHistory('Patient', id), id);
  });

  await t.test('posts a transaction with executeBatch to /fhir and the urn:uuid reference is resolved', async (t) => {
    const { bundle } = transactionBundle(system, 'T-3');
    const response = await medplum.executeBatch(bundle);
    t.match(lastSeen('POST', (u) => u.startsWith('/fhir')), { url: '/fhir', contentType: 'application/fhir+json', status: 200 }, 'no trailing slash');
    const { patientId, observationId } = checkTransactionResponse(t, response);
    const observation = await medplum.readResource('Observation', observationId);
    t.equal(observation.subject?.reference, `Patient/${patientId}`);
  });

  await t.test('pages a search with searchResourcePages', async (t) => {
    const pageSystem = `https://carnet.test/ids/medplum-pages/${randomUUID()}`;
    const made: string[] = [];
    for (let i = 1; i <= 3; i++) made.push((await medplum.createResource(patient(pageSystem, `P-${i}`, `Page${i}`))).id);
    const sizes: number[] = [];
    const found: string[] = [];
    for await (const page of medplum.searchResourcePages('Patient', { identifier: `${pageSystem}|`, _count: 2 })) {
      sizes.push(page.length);
      found.push(...page.map((r: Resource) => r.id ?? ''));
    }
    t.same(sizes, [2, 1]);
    t.same(found.sort(), [...made].sort());
  });

  // A small PDF with bytes that are not UTF-8, so that any text decoding on the way would show.
  const pdf = new Uint8Array(Buffer.concat([Buffer.from('%PDF-1.4\n%'), Buffer.from([0xe2, 0xe3, 0xcf, 0xd3, 0x0a, 0x00, 0xff]), Buffer.from('\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n')]));
  const base64 = Buffer.from(pdf).toString('base64');

  await t.test('createBinary posts the raw PDF bytes and the Binary reads back byte for byte', async (t) => {
    const binary: Binary = await medplum.createBinary({ data: pdf, contentType: 'application/pdf', filename: 'letter.pdf' });
    t.match(lastSeen('POST', isPath('/fhir/Binary')), { url: '/fhir/Binary?_filename=letter.pdf', contentType: 'application/pdf', status: 201 }, 'raw bytes with their own content type');
    t.equal(binary.resourceType, 'Binary');
    t.match(binary.id, /^[0-9a-f-]{36}$/);
    t.equal(binary.contentType, 'application/pdf');
    t.equal(binary.data, base64);
    const read = await medplum.readResource('Binary', binary.id ?? '');
    t.equal(read.contentType, 'application/pdf', 'read as FHIR JSON');
    t.equal(read.data, base64);
    const blob = await medplum.download(`Binary/${binary.id}`);
    t.equal(blob.type, 'application/pdf', 'downloaded in its own media type');
    t.same(Buffer.from(await blob.arrayBuffer()), Buffer.from(pdf));
  });

  // createAttachment takes Attachment.url from Binary.url, an element Medplum adds to Binary
  // that R4 does not have; Carnet serves plain R4, so the documented way to attach a document is
  // createBinary, then an Attachment whose url is the relative Binary/<id> (docs/api.md).
  await t.test('createBinary then an Attachment url of Binary/<id> downloads the bytes', async (t) => {
    const binary = await medplum.createBinary(pdf, 'scan.pdf', 'application/pdf');
    t.match(lastSeen('POST', isPath('/fhir/Binary')), { url: '/fhir/Binary?_filename=scan.pdf', contentType: 'application/pdf', status: 201 });
    const attachment = { contentType: binary.contentType, url: `Binary/${binary.id}`, title: 'scan.pdf' };
    const blob = await medplum.download(attachment.url);
    t.same(Buffer.from(await blob.arrayBuffer()), Buffer.from(pdf));
    t.equal(blob.type, 'application/pdf');
  });
});
