// The embedded engine's blob store: content-addressed files under the data folder, streamed both
// ways. What every engine's blobs promise (hashes, ranges, unknown keys, empty blobs) is the port's
// contract (contract.ts); here, the files: one per content, the SHA-1 sidecar, no staging file left.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import t from 'tap';
import { FileBlobs } from '../../src/store/sqlite/blobs.js';

async function bytesOf(stream: Readable | undefined): Promise<Buffer> {
  if (!stream) throw new Error('no such blob');
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function* chunked(data: Buffer, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-blobs-test-'));
t.teardown(() => fs.rmSync(folder, { recursive: true, force: true }));
const blobs = new FileBlobs(folder);
const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), crypto.randomBytes(300_000), Buffer.from('\n%%EOF\n')]);

t.test('a stream of chunks is stored like the same bytes at once: one blob', async (t) => {
  const whole = await blobs.put(pdf);
  const streamed = await blobs.put(chunked(pdf, 65_536));
  t.same(streamed, whole);
  const files = fs.readdirSync(path.join(folder, 'blobs', whole.key.slice(0, 2)));
  t.same(files.sort(), [whole.key.slice(2), `${whole.key.slice(2)}.sha1`], 'one file and its sidecar');
  t.same(fs.readdirSync(path.join(folder, 'blobs', 'tmp')), [], 'no staging file left behind');
});

t.test('stat is cheap and right: from the sidecar, rebuilt when it is missing', async (t) => {
  const info = await blobs.put(Buffer.from('stat me'));
  t.same(await blobs.stat(info.key), info);
  const sidecar = path.join(folder, 'blobs', info.key.slice(0, 2), `${info.key.slice(2)}.sha1`);
  fs.rmSync(sidecar);
  t.same(await blobs.stat(info.key), info, 'hashed again when the sidecar is gone');
  t.equal(fs.readFileSync(sidecar, 'utf8'), info.sha1, 'and the sidecar is written back');
});

t.test('a source that fails midway stores nothing and leaves no staging file', async (t) => {
  const secret = crypto.randomBytes(1000);
  async function* failing(): AsyncIterable<Uint8Array> {
    yield secret;
    throw new Error('client went away');
  }
  await t.rejects(blobs.put(failing()), /client went away/);
  t.same(fs.readdirSync(path.join(folder, 'blobs', 'tmp')), []);
  const key = crypto.createHash('sha256').update(secret).digest('hex');
  t.equal(await blobs.stat(key), undefined);
});

t.test('blobs outlive the store object: a new one on the same folder reads them', async (t) => {
  const info = await blobs.put(Buffer.from('durable'));
  const again = new FileBlobs(folder);
  t.same(await again.stat(info.key), info);
  t.equal((await bytesOf(await again.get(info.key))).toString(), 'durable');
});

t.test('an in-memory store keeps its blobs in a temporary folder that close() removes', async (t) => {
  const memory = new FileBlobs(':memory:');
  const info = await memory.put(Buffer.from('temporary'));
  t.equal((await bytesOf(await memory.get(info.key))).toString(), 'temporary');
  memory.close();
  t.equal(await memory.get(info.key), undefined);
});
