// The embedded engine's blob store: content-addressed files under the data folder, streamed both ways.
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

t.test('put answers the SHA-256 key, the size and the base64 SHA-1 of the bytes', async (t) => {
  const info = await blobs.put(pdf);
  t.equal(info.key, crypto.createHash('sha256').update(pdf).digest('hex'));
  t.equal(info.size, pdf.length);
  t.equal(info.sha1, crypto.createHash('sha1').update(pdf).digest('base64'));
  t.same(await bytesOf(await blobs.get(info.key)), pdf, 'the bytes come back whole');
});

t.test('a stream of chunks is stored like the same bytes at once: one blob', async (t) => {
  const whole = await blobs.put(pdf);
  const streamed = await blobs.put(chunked(pdf, 65_536));
  t.same(streamed, whole);
  const files = fs.readdirSync(path.join(folder, 'blobs', whole.key.slice(0, 2)));
  t.same(files.sort(), [whole.key.slice(2), `${whole.key.slice(2)}.sha1`], 'one file and its sidecar');
  t.same(fs.readdirSync(path.join(folder, 'blobs', 'tmp')), [], 'no staging file left behind');
});

t.test('get with a range streams exactly those bytes (inclusive end)', async (t) => {
  const { key } = await blobs.put(pdf);
  t.same(await bytesOf(await blobs.get(key, { start: 0, end: 8 })), pdf.subarray(0, 9));
  t.same(await bytesOf(await blobs.get(key, { start: 1000, end: 1999 })), pdf.subarray(1000, 2000));
  t.same(await bytesOf(await blobs.get(key, { start: pdf.length - 7, end: pdf.length - 1 })), Buffer.from('\n%%EOF\n'));
});

t.test('stat is cheap and right: from the sidecar, rebuilt when it is missing', async (t) => {
  const info = await blobs.put(Buffer.from('stat me'));
  t.same(await blobs.stat(info.key), info);
  const sidecar = path.join(folder, 'blobs', info.key.slice(0, 2), `${info.key.slice(2)}.sha1`);
  fs.rmSync(sidecar);
  t.same(await blobs.stat(info.key), info, 'hashed again when the sidecar is gone');
  t.equal(fs.readFileSync(sidecar, 'utf8'), info.sha1, 'and the sidecar is written back');
});

t.test('unknown and malformed keys answer undefined, never a path outside the store', async (t) => {
  const absent = crypto.createHash('sha256').update('never stored').digest('hex');
  t.equal(await blobs.stat(absent), undefined);
  t.equal(await blobs.get(absent), undefined);
  t.equal(await blobs.get('../../carnet.sqlite'), undefined);
  t.equal(await blobs.stat('ABC'), undefined);
});

t.test('an empty blob is a blob', async (t) => {
  const info = await blobs.put(Buffer.alloc(0));
  t.equal(info.size, 0);
  t.same(await bytesOf(await blobs.get(info.key)), Buffer.alloc(0));
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
