// ITI-68 at size: a 50 MiB document uploaded raw to the real server (a child process, through a
// socket) and retrieved whole and by range, read as a stream on both sides. The server's peak
// memory (peak resident set) must grow far less than the document: its bytes are streamed to and
// from the blob store, never held whole. Also: a chunked upload over the limit (no Content-Length) is refused midway.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Binary, OperationOutcome } from '@medplum/fhirtypes';
import { bearer, developmentTokenFor, testServer } from '../helpers.js';
import { startServer } from '../child-server.js';

const MiB = 1024 * 1024;
const CHUNKS = 50;
// The document: 50 chunks of 1 MiB, each a random block stamped with its index (so no two chunks are equal).
const block = crypto.randomBytes(MiB);
function chunk(i: number): Buffer {
  const c = Buffer.from(block);
  c.writeUInt32BE(i, 0);
  return c;
}
const expected = crypto.createHash('sha256');
for (let i = 0; i < CHUNKS; i++) expected.update(chunk(i));
const EXPECTED_SHA256 = expected.digest('hex');

/** Peak and current resident memory of a process, in bytes (Linux /proc), or undefined elsewhere. */
function memoryOf(pid: number): { peak: number; now: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
    return { peak: kib('VmHWM'), now: kib('VmRSS') };
  } catch {
    return undefined;
  }
}

/** Sends `chunks` as a request body (chunked transfer: no Content-Length) and answers the response. */
function upload(url: string, headers: Record<string, string>, chunks: Iterable<Buffer>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', headers }, (response) => {
      const parts: Buffer[] = [];
      response.on('data', (part: Buffer) => parts.push(part));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(parts) }));
    });
    // A server that refuses midway closes the connection: writing further then fails, which is expected.
    request.on('error', (error) => (answered ? undefined : reject(error)));
    let answered = false;
    request.on('response', () => (answered = true));
    const iterator = chunks[Symbol.iterator]();
    const pump = () => {
      for (;;) {
        if (answered) return request.end();
        const next = iterator.next();
        if (next.done) return request.end();
        if (!request.write(next.value)) return request.once('drain', pump);
      }
    };
    pump();
  });
}

function* document(): Iterable<Buffer> {
  for (let i = 0; i < CHUNKS; i++) yield chunk(i);
}

t.test('a 50 MiB PDF goes in raw and comes out streamed, whole and by range; the server never holds it', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-binary-large-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  // A small young generation makes V8 collect the short-lived chunks promptly, so that the peak
  // measures what the server holds rather than garbage awaiting collection (about 25 MiB of it
  // with the default young generation, whatever the document's size).
  const child = await startServer(dataDir, { NODE_OPTIONS: '--max-semi-space-size=1' });
  t.teardown(() => child.proc.kill('SIGKILL'));
  const authorization = `Bearer ${await developmentTokenFor(dataDir, child.base)}`;
  const pid = child.proc.pid as number;
  // A first small document warms the server up (code paths, caches), so that what follows measures the size.
  const warm = await upload(`${child.base}/Binary`, { authorization, 'content-type': 'application/pdf', prefer: 'return=minimal' }, [chunk(CHUNKS)]);
  await (await fetch(`${child.base}/${String(warm.headers.location).split('/').slice(-4, -2).join('/')}`, { headers: { authorization } })).arrayBuffer();
  const before = memoryOf(pid);

  const created = await upload(`${child.base}/Binary`, { authorization, 'content-type': 'application/pdf', accept: 'application/fhir+json', prefer: 'return=minimal' }, document());
  t.equal(created.status, 201, created.body.toString());
  const id = String(created.headers.location).split('/').at(-3);

  const whole = await fetch(`${child.base}/Binary/${id}`, { headers: { authorization } });
  t.equal(whole.status, 200);
  t.equal(whole.headers.get('content-type'), 'application/pdf');
  t.equal(whole.headers.get('content-length'), String(CHUNKS * MiB));
  const hash = crypto.createHash('sha256');
  let received = 0;
  for await (const part of whole.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(part);
    received += part.byteLength;
  }
  t.equal(received, CHUNKS * MiB, 'every byte');
  t.equal(hash.digest('hex'), EXPECTED_SHA256, 'the same bytes');

  const tail = await fetch(`${child.base}/Binary/${id}`, { headers: { authorization, range: 'bytes=-100' } });
  t.equal(tail.status, 206);
  t.equal(tail.headers.get('content-range'), `bytes ${CHUNKS * MiB - 100}-${CHUNKS * MiB - 1}/${CHUNKS * MiB}`);
  t.same(Buffer.from(await tail.arrayBuffer()), block.subarray(MiB - 100), 'the last 100 bytes');
  const middle = await fetch(`${child.base}/Binary/${id}`, { headers: { authorization, range: `bytes=${17 * MiB}-${17 * MiB + 9}` } });
  t.equal(middle.status, 206);
  t.same(Buffer.from(await middle.arrayBuffer()), chunk(17).subarray(0, 10), 'ten bytes from the middle');

  const after = memoryOf(pid);
  if (!before || !after) {
    t.comment('no /proc here: the server\'s memory is not measured');
    return;
  }
  const growth = after.peak - before.now;
  t.comment(`server resident memory: ${(before.now / MiB).toFixed(1)} MiB before, peak ${(after.peak / MiB).toFixed(1)} MiB after the upload and downloads (+${(growth / MiB).toFixed(1)} MiB)`);
  t.ok(growth < 16 * MiB, `the server's peak memory grew by ${(growth / MiB).toFixed(1)} MiB, far less than the ${CHUNKS} MiB document`);
});

t.test('a chunked upload (no Content-Length) over the limit is refused midway with 413, and nothing is stored', async (t) => {
  const small = await testServer({ bundleBodyLimit: 256 * 1024 });
  t.teardown(() => small.close());
  await small.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = small.app.server.address() as { port: number };
  const blobs = (small.store.blobs as unknown as { dir: string }).dir;
  const refused = await upload(`http://127.0.0.1:${port}/fhir/Binary`, { ...bearer(small.app), 'content-type': 'application/pdf' }, (function* () {
    for (let i = 0; i < 8; i++) yield chunk(i).subarray(0, 64 * 1024);
  })());
  t.equal(refused.status, 413);
  t.equal(refused.headers.connection, 'close');
  t.equal((JSON.parse(refused.body.toString()) as OperationOutcome).issue[0].code, 'too-long');
  t.same(fs.readdirSync(blobs).filter((f) => f !== 'tmp'), [], 'no blob');
  t.same(fs.readdirSync(path.join(blobs, 'tmp')), [], 'no staging file');
  t.equal((await small.store.search({ types: ['Binary'], where: [], sort: [] }, { count: 0, total: true })).total, 0, 'no Binary');
  const accepted = await upload(`http://127.0.0.1:${port}/fhir/Binary`, { ...bearer(small.app), 'content-type': 'application/pdf', prefer: 'return=minimal' }, [chunk(1).subarray(0, 200 * 1024)]);
  t.equal(accepted.status, 201, 'under the limit, the same upload is taken');
});
