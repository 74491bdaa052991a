// Binary content outside the resource rows (blob store) and ITI-68 Retrieve Document: bytes in,
// bytes out (whole, ranges, conditional), FHIR JSON with `data` wherever a Binary appears, consent
// before any byte, and the body limits.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { seed } from '../seed.js';
import type { AuditEvent, Binary, Bundle, DocumentReference, OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { LightMyRequestResponse } from 'fastify';
import { bearer, fhir, json, FIXTURE_DATA, testServer, type TestActor } from '../helpers.js';
import { doc, mask, permit, PRESCRIPTION } from '../policy/fixture.js';
import { CONTENT_POINTER, pointerOf } from '../../src/fhir/binary.js';

const server = await testServer();
t.teardown(() => server.close());
const { app, store } = server;

/** The bytes of a Binary example in test/fixtures/data (HL7 R4, ANS). */
function bytesOf(file: string): { contentType: string; bytes: Buffer } {
  const binary = JSON.parse(fs.readFileSync(path.join(FIXTURE_DATA, file), 'utf8')) as Binary;
  return { contentType: binary.contentType, bytes: Buffer.from(binary.data ?? '', 'base64') };
}
const PDF = bytesOf('r4-examples/Binary/Binary-example.json'); // a real 131 kB PDF
const JPEG = bytesOf('r4-examples/Binary/Binary-f006.json');
const CDA = bytesOf('fr/pdsm4dmp/examples/Binary-example-annexe-binary-cda.json');
// A small valid PNG (1x1, one grey pixel) followed by random bytes in an ancillary chunk.
const PNG = {
  contentType: 'image/png',
  bytes: Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b55', 'hex'), crypto.randomBytes(2048)]),
};

const sha256 = (bytes: Buffer) => crypto.createHash('sha256').update(bytes).digest('hex');

async function postRaw(contentType: string, bytes: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/fhir/Binary', headers: { ...bearer(app), 'content-type': contentType, accept: 'application/fhir+json', ...headers }, payload: bytes });
  if (res.statusCode !== 201) throw new Error(`POST Binary: ${res.statusCode} ${res.body}`);
  return json<Binary>(res).id as string;
}

function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<LightMyRequestResponse> {
  return app.inject({ method, url: `/fhir/${url}`, headers: { ...bearer(app), ...headers } });
}

/** The Binary row as the store holds it. */
async function row(id: string): Promise<Binary> {
  const read = await store.read('Binary', id);
  if (read.kind !== 'found') throw new Error(`Binary/${id} is ${read.kind}`);
  return read.version.resource as Binary;
}

t.test('PDF, CDA, JPEG and PNG bytes posted raw come back byte for byte, natively', async (t) => {
  for (const { contentType, bytes } of [PDF, CDA, JPEG, PNG]) {
    const id = await postRaw(contentType, bytes);
    const res = await get(`Binary/${id}`);
    t.equal(res.statusCode, 200, contentType);
    t.equal(res.headers['content-type'], contentType);
    t.equal(res.headers['content-length'], String(bytes.length));
    t.equal(res.headers['accept-ranges'], 'bytes');
    t.equal(res.headers.etag, 'W/"1"');
    t.ok(res.headers['last-modified'], 'Last-Modified');
    t.equal(sha256(res.rawPayload), sha256(bytes), `${contentType}: the same bytes`);
  }
});

t.test('the row holds no data: a pointer to the blob, whose key is the SHA-256 of the bytes', async (t) => {
  const id = await postRaw(PDF.contentType, PDF.bytes);
  const stored = await row(id);
  t.equal(stored.data, undefined, 'no data in the row');
  const pointer = pointerOf(stored);
  t.same(pointer, { key: sha256(PDF.bytes), size: PDF.bytes.length, sha1: crypto.createHash('sha1').update(PDF.bytes).digest('base64') });
  t.same(await store.blobs.stat(pointer!.key), pointer, 'the blob is there');
  t.ok(JSON.stringify(stored).length < 1000, 'the row is small');
});

t.test('a FHIR JSON Binary is stored the same way and read back with data, as FHIR clients expect', async (t) => {
  const created = await fhir(app, 'POST', 'Binary', { resourceType: 'Binary', contentType: CDA.contentType, data: CDA.bytes.toString('base64') });
  t.equal(created.statusCode, 201);
  const binary = json<Binary>(created);
  t.equal(binary.data, CDA.bytes.toString('base64'), 'the create answer carries data');
  t.notOk(JSON.stringify(binary).includes(CONTENT_POINTER), 'and no pointer');
  const stored = await row(binary.id!);
  t.equal(stored.data, undefined);
  t.equal(pointerOf(stored)?.key, sha256(CDA.bytes));
  for (const url of [`Binary/${binary.id}`, `Binary/${binary.id}?_format=json`, `Binary/${binary.id}/_history/1`]) {
    const read = json<Binary>(await fhir(app, 'GET', url));
    t.same(read, { ...read, resourceType: 'Binary', contentType: CDA.contentType, data: CDA.bytes.toString('base64') }, url);
    t.equal((read as { _data?: unknown })._data, undefined, `${url}: no _data`);
  }
  const native = await get(`Binary/${binary.id}`, { accept: '*/*' });
  t.same(native.rawPayload, CDA.bytes, 'and natively');
});

t.test('data comes back in searches, histories, includes and batch answers', async (t) => {
  const id = await postRaw(JPEG.contentType, JPEG.bytes);
  const base64 = JPEG.bytes.toString('base64');
  const searched = json<Bundle>(await fhir(app, 'GET', `Binary?_id=${id}`));
  t.equal((searched.entry?.[0].resource as Binary).data, base64, 'search');
  const history = json<Bundle>(await fhir(app, 'GET', `Binary/${id}/_history`));
  t.equal((history.entry?.[0].resource as Binary).data, base64, 'history');
  const batch = json<Bundle>(await fhir(app, 'POST', '/fhir', { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `Binary/${id}` } }, { request: { method: 'GET', url: `Binary?_id=${id}` } }] }));
  t.equal((batch.entry?.[0].resource as Binary).data, base64, 'batch read');
  t.equal(((batch.entry?.[1].resource as Bundle).entry?.[0].resource as Binary).data, base64, 'a search inside a batch');
  const summary = json<Binary>(await fhir(app, 'GET', `Binary?_id=${id}&_elements=contentType`));
  t.notOk(JSON.stringify(summary).includes(CONTENT_POINTER), '_elements leaves out data and the pointer alike');
});

t.test('equal bytes are stored once', async (t) => {
  const a = await postRaw(PNG.contentType, PNG.bytes);
  const b = await fhir(app, 'POST', 'Binary', { resourceType: 'Binary', contentType: 'image/png', data: PNG.bytes.toString('base64') });
  t.not(a, json(b).id, 'two Binaries');
  t.equal(pointerOf(await row(a))?.key, pointerOf(await row(json(b).id as string))?.key, 'one blob');
});

t.test('a transaction carrying a Binary and its DocumentReference stores the bytes in the blob store', async (t) => {
  const res = await fhir(app, 'POST', '/fhir', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: 'urn:uuid:0b7c2a6e-0000-4000-8000-000000000001', resource: { resourceType: 'Binary', contentType: PDF.contentType, data: PDF.bytes.toString('base64') }, request: { method: 'POST', url: 'Binary' } },
      {
        fullUrl: 'urn:uuid:0b7c2a6e-0000-4000-8000-000000000002',
        resource: { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { contentType: PDF.contentType, url: 'urn:uuid:0b7c2a6e-0000-4000-8000-000000000001' } }] },
        request: { method: 'POST', url: 'DocumentReference' },
      },
    ],
  }, { prefer: 'return=minimal' });
  t.equal(res.statusCode, 200);
  const [binary, document] = (json<Bundle>(res).entry ?? []).map((e) => e.response?.location?.split('/').slice(-4, -2).join('/'));
  const reference = json<DocumentReference>(await fhir(app, 'GET', document as string));
  t.equal(reference.content[0].attachment.url, binary, 'the attachment points at the Binary');
  const id = (binary as string).split('/')[1];
  t.equal((await row(id)).data, undefined, 'the row holds no data');
  t.same((await get(`Binary/${id}`)).rawPayload, PDF.bytes, 'the bytes are retrieved');
});

t.test('ranges: one range answers 206 with exactly those bytes', async (t) => {
  const id = await postRaw(PDF.contentType, PDF.bytes);
  const size = PDF.bytes.length;
  const cases: [string, number, number][] = [
    ['bytes=0-9', 0, 9],
    ['bytes=1000-1999', 1000, 1999],
    ['bytes=100000-', 100000, size - 1],
    ['bytes=-500', size - 500, size - 1],
    [`bytes=${size - 10}-${size + 5000}`, size - 10, size - 1],
    [`bytes=-${size + 10}`, 0, size - 1],
    [' bytes = 5-5 ', 5, 5],
  ];
  for (const [range, start, end] of cases) {
    const res = await get(`Binary/${id}`, { range });
    t.equal(res.statusCode, 206, range);
    t.equal(res.headers['content-range'], `bytes ${start}-${end}/${size}`, range);
    t.equal(res.headers['content-length'], String(end - start + 1), range);
    t.equal(res.headers['content-type'], 'application/pdf', range);
    t.ok(res.rawPayload.equals(PDF.bytes.subarray(start, end + 1)), `${range}: the exact bytes`);
  }
});

t.test('an unsatisfiable range answers 416 with Content-Range bytes */size and an OperationOutcome', async (t) => {
  const id = await postRaw(PDF.contentType, PDF.bytes);
  const size = PDF.bytes.length;
  for (const range of [`bytes=${size}-`, `bytes=${size + 100}-${size + 200}`, 'bytes=-0']) {
    const res = await get(`Binary/${id}`, { range });
    t.equal(res.statusCode, 416, range);
    t.equal(res.headers['content-range'], `bytes */${size}`, range);
    t.equal(json<OperationOutcome>(res).resourceType, 'OperationOutcome', range);
  }
});

t.test('several ranges, another unit or a malformed Range answer the whole content (200)', async (t) => {
  const id = await postRaw(CDA.contentType, CDA.bytes);
  for (const range of ['bytes=0-1,5-6', 'items=0-1', 'bytes=9-2', 'bytes=abc']) {
    const res = await get(`Binary/${id}`, { range });
    t.equal(res.statusCode, 200, range);
    t.equal(res.headers['content-range'], undefined, range);
    t.same(res.rawPayload, CDA.bytes, range);
  }
});

t.test('If-Range: the range applies only to the version the client has', async (t) => {
  const id = await postRaw(PDF.contentType, PDF.bytes);
  const first = await get(`Binary/${id}`);
  const current = await get(`Binary/${id}`, { range: 'bytes=0-3', 'if-range': 'W/"1"' });
  t.equal(current.statusCode, 206, 'the current version tag');
  const byDate = await get(`Binary/${id}`, { range: 'bytes=0-3', 'if-range': first.headers['last-modified'] as string });
  t.equal(byDate.statusCode, 206, 'its Last-Modified');
  const stale = await get(`Binary/${id}`, { range: 'bytes=0-3', 'if-range': 'W/"7"' });
  t.equal(stale.statusCode, 200, 'another version: the whole content');
  t.same(stale.rawPayload, PDF.bytes);
  const staleDate = await get(`Binary/${id}`, { range: 'bytes=0-3', 'if-range': 'Tue, 01 Jan 2002 00:00:00 GMT' });
  t.equal(staleDate.statusCode, 200);
});

t.test('ETag and If-None-Match: 304 while the version is current; each version keeps its bytes', async (t) => {
  const id = await postRaw('text/plain', Buffer.from('version one'));
  const unchanged = await get(`Binary/${id}`, { 'if-none-match': 'W/"1"' });
  t.equal(unchanged.statusCode, 304);
  t.equal(unchanged.rawPayload.length, 0, 'no body');
  const put = await app.inject({ method: 'PUT', url: `/fhir/Binary/${id}`, headers: { ...bearer(app), 'content-type': 'text/plain', accept: 'application/fhir+json' }, payload: 'version two' });
  t.equal(put.statusCode, 200);
  const changed = await get(`Binary/${id}`, { 'if-none-match': 'W/"1"' });
  t.equal(changed.statusCode, 200);
  t.equal(changed.headers.etag, 'W/"2"');
  t.equal(changed.body, 'version two');
  const old = await get(`Binary/${id}/_history/1`, { range: 'bytes=0-6' });
  t.equal(old.statusCode, 206, 'vread takes ranges too');
  t.equal(old.body, 'version');
  t.equal((await get(`Binary/${id}/_history/1`)).body, 'version one');
});

t.test('HEAD answers the headers of the content and no body', async (t) => {
  const id = await postRaw(PDF.contentType, PDF.bytes);
  const res = await get(`Binary/${id}`, {}, 'HEAD');
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-length'], String(PDF.bytes.length));
  t.equal(res.headers['content-type'], 'application/pdf');
  t.equal(res.rawPayload.length, 0);
});

t.test('rows written before blobs existed (data inline) still read, natively, with ranges and as JSON', async (t) => {
  const bytes = Buffer.from('an old document, stored inline');
  const resource = { resourceType: 'Binary', id: 'inline-old', contentType: 'text/plain', data: bytes.toString('base64') } as Binary & { id: string };
  await store.transact([{ kind: 'create', resource, index: [], creator: 'client:test-client' }], new Date().toISOString());
  t.same((await get('Binary/inline-old')).rawPayload, bytes);
  const ranged = await get('Binary/inline-old', { range: 'bytes=3-5' });
  t.equal(ranged.statusCode, 206);
  t.equal(ranged.body, 'old');
  t.equal(json<Binary>(await fhir(app, 'GET', 'Binary/inline-old')).data, bytes.toString('base64'));
});

t.test('a client cannot send the server\'s content pointer', async (t) => {
  const forged = { resourceType: 'Binary', contentType: 'application/pdf', _data: { extension: [{ url: CONTENT_POINTER, extension: [{ url: 'key', valueString: sha256(PDF.bytes) }, { url: 'size', valueUnsignedInt: 10 }, { url: 'sha1', valueBase64Binary: 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' }] }] } };
  const res = await fhir(app, 'POST', 'Binary', forged);
  t.equal(res.statusCode, 400);
  t.match(json<OperationOutcome>(res).issue[0].diagnostics, /reserved/);
});

t.test('a JSON Patch sees a Binary as clients do, and its bytes stay in the blob store', async (t) => {
  const id = await postRaw('text/plain', Buffer.from('patch me'));
  const patched = await app.inject({
    method: 'PATCH',
    url: `/fhir/Binary/${id}`,
    headers: { ...bearer(app), 'content-type': 'application/json-patch+json', accept: 'application/fhir+json' },
    payload: JSON.stringify([{ op: 'test', path: '/data', value: Buffer.from('patch me').toString('base64') }, { op: 'replace', path: '/contentType', value: 'text/markdown' }]),
  });
  t.equal(patched.statusCode, 200, patched.body);
  const res = await get(`Binary/${id}`);
  t.equal(res.headers['content-type'], 'text/markdown');
  t.equal(res.body, 'patch me');
  t.equal((await row(id)).data, undefined);
});

t.test('a professional refused the document gets 404 and not one byte of it', async (t) => {
  const loader = { authorization: `Bearer ${await server.token({ kind: 'system', client: 'loader' })}` };
  // The record as its authors wrote it: the loader, and the patient for their Consents.
  await seed(server.store, [
    { resourceType: 'Patient', id: 'bp1', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] },
    doc('bdoc', 'bp1', PRESCRIPTION, 'Practitioner/dr-gp'),
    doc('bdoc-masked', 'bp1', PRESCRIPTION, 'Practitioner/dr-other'),
    permit('bc-perm', 'bp1', 'dr-perm'),
    mask('bc-mask', 'bp1', 'bdoc-masked'),
  ] as Resource[]);
  const secret = Buffer.concat([Buffer.from('%PDF-1.4 SECRET-MARKER '), crypto.randomBytes(4096)]);
  for (const [id, document] of [['bbin', 'bdoc'], ['bbin-masked', 'bdoc-masked']]) {
    const res = await fhir(app, 'PUT', `Binary/${id}`, { resourceType: 'Binary', id, contentType: 'application/pdf', securityContext: { reference: `DocumentReference/${document}` }, data: secret.toString('base64') }, loader);
    t.equal(res.statusCode, 201);
  }
  const as = async (practitioner: string) => ({ authorization: `Bearer ${await server.token({ kind: 'practitioner', practitioner, profession: '10' } satisfies TestActor)}` });
  const gp = await get('Binary/bbin', await as('dr-gp'));
  t.equal(gp.statusCode, 200, 'the GP reads the bytes');
  t.same(gp.rawPayload, secret);
  for (const [who, id, why] of [['dr-none', 'bbin', 'no care relationship'], ['dr-gp', 'bbin-masked', 'a masked document'], ['dr-perm', 'bbin-masked', 'a masked document']]) {
    const variants: Record<string, string>[] = [{}, { range: 'bytes=0-15' }, { accept: 'application/fhir+json' }];
    for (const headers of variants) {
      const res = await get(`Binary/${id}`, { ...(await as(who)), ...headers });
      t.equal(res.statusCode, 404, `${who}: ${why} ${JSON.stringify(headers)}`);
      t.match(res.headers['content-type'], /^application\/fhir\+json/);
      t.notOk(res.body.includes('SECRET-MARKER') || res.body.includes(secret.toString('base64').slice(0, 40)), 'no byte of it');
      t.equal(json<OperationOutcome>(res).issue[0].code, 'not-found');
    }
  }
  const refusals = (await auditEvents()).filter((e) => JSON.stringify(e.entity).includes('Binary/bbin-masked') && e.outcome !== '0');
  t.ok(refusals.length >= 6, 'the refusals are recorded');
});

t.test('a native read is recorded as a read of the Binary', async (t) => {
  const id = await postRaw(PNG.contentType, PNG.bytes);
  await get(`Binary/${id}`, { range: 'bytes=0-7' });
  const reads = (await auditEvents()).filter((e) => JSON.stringify(e.entity).includes(`Binary/${id}`) && e.subtype?.[0]?.code === 'read');
  t.equal(reads.length, 1, 'a read AuditEvent names the Binary');
  t.equal(reads[0].outcome, '0');
});

t.test('body limits: ordinary bodies keep CARNET_BODY_LIMIT; Bundles and Binary content take the document limit', async (t) => {
  const small = await testServer({ bodyLimit: 16 * 1024, bundleBodyLimit: 64 * 1024 });
  t.teardown(() => small.close());
  const send = (method: 'POST' | 'PUT', url: string, contentType: string, payload: Buffer | string) =>
    small.app.inject({ method, url, headers: { ...bearer(small.app), 'content-type': contentType, accept: 'application/fhir+json' }, payload });
  const note = (size: number) => JSON.stringify({ resourceType: 'Patient', name: [{ family: 'x'.repeat(size) }] });
  t.equal((await send('POST', '/fhir/Patient', 'application/fhir+json', note(20 * 1024))).statusCode, 413, 'a 20 KiB Patient');
  t.equal((await send('POST', '/fhir/Patient', 'application/fhir+json', note(10 * 1024))).statusCode, 201, 'a 10 KiB Patient');
  const bytes40 = crypto.randomBytes(40 * 1024);
  t.equal((await send('POST', '/fhir/Binary', 'application/pdf', bytes40)).statusCode, 201, '40 KiB of raw Binary content');
  t.equal((await send('POST', '/fhir/Binary', 'application/fhir+json', JSON.stringify({ resourceType: 'Binary', contentType: 'application/pdf', data: bytes40.toString('base64') }))).statusCode, 201, 'and as a JSON Binary');
  const bundle = (bytes: Buffer) => JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Binary', contentType: 'application/pdf', data: bytes.toString('base64') }, request: { method: 'POST', url: 'Binary' } }] });
  t.equal((await send('POST', '/fhir', 'application/fhir+json', bundle(crypto.randomBytes(30 * 1024)))).statusCode, 200, 'a 40 KiB Bundle');
  const before = (await small.store.search({ types: ['Binary'], where: [], sort: [] }, { count: 0, total: true })).total;
  const blobsBefore = await countBlobs(small.store);
  const big = crypto.randomBytes(80 * 1024);
  for (const [what, res] of [
    ['raw Binary content', await send('POST', '/fhir/Binary', 'application/pdf', big)],
    ['raw Binary content by PUT', await send('PUT', '/fhir/Binary/too-big', 'image/png', big)],
    ['a JSON Binary', await send('POST', '/fhir/Binary', 'application/fhir+json', JSON.stringify({ resourceType: 'Binary', contentType: 'application/pdf', data: big.toString('base64') }))],
    ['a Bundle', await send('POST', '/fhir', 'application/fhir+json', bundle(big))],
  ] as const) {
    t.equal(res.statusCode, 413, what);
    t.equal(json<OperationOutcome>(res).issue[0].code, 'too-long', what);
    t.match(json<OperationOutcome>(res).issue[0].diagnostics, /65536 bytes/, what);
  }
  t.equal((await small.store.search({ types: ['Binary'], where: [], sort: [] }, { count: 0, total: true })).total, before, 'no Binary stored');
  t.equal(await countBlobs(small.store), blobsBefore, 'no blob stored');
});

async function auditEvents(): Promise<AuditEvent[]> {
  return (await store.search({ types: ['AuditEvent'], where: [], sort: [] }, { count: 100_000 })).matches.map((m) => m.resource as AuditEvent);
}

/** Blob files of a store (sidecars and staging files excluded). */
async function countBlobs(s: typeof store): Promise<number> {
  const dir = (s.blobs as unknown as { dir: string }).dir;
  let n = 0;
  for (const sub of fs.readdirSync(dir)) {
    if (sub === 'tmp') {
      n += fs.readdirSync(path.join(dir, sub)).length;
      continue;
    }
    n += fs.readdirSync(path.join(dir, sub)).filter((f) => !f.endsWith('.sha1')).length;
  }
  return n;
}
