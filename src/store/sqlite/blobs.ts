// store/sqlite/blobs: attachment bytes as content-addressed files under the data folder
// (blobs/ab/cdef…), written to a temporary file, fsync'd, then renamed into place.

import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { BlobInfo, BlobStore, ByteRange } from '../port.js';
import { hashWhileWriting } from '../content.js';

const KEY = /^[0-9a-f]{64}$/;

export class FileBlobs implements BlobStore {
  private readonly dir: string;
  private readonly temporary: boolean;

  /** `dataDir` ':memory:' keeps the blobs in a temporary folder removed by close(). */
  constructor(dataDir: string) {
    this.temporary = dataDir === ':memory:';
    this.dir = this.temporary ? fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-blobs-')) : path.join(dataDir, 'blobs');
    fs.mkdirSync(path.join(this.dir, 'tmp'), { recursive: true });
  }

  async put(source: Uint8Array | AsyncIterable<Uint8Array>): Promise<BlobInfo> {
    const staging = path.join(this.dir, 'tmp', crypto.randomUUID());
    const file = await fsp.open(staging, 'w');
    let info: BlobInfo;
    try {
      info = await hashWhileWriting(source, (chunk) => file.write(chunk));
      // Durable before the resource that points at it commits (an acknowledged write survives kill -9).
      await file.sync();
    } catch (error) {
      await file.close();
      await fsp.rm(staging, { force: true });
      throw error;
    }
    await file.close();
    const target = this.pathOf(info.key);
    await fsp.mkdir(path.dirname(target), { recursive: true });
    await fsp.rename(staging, target);
    return info;
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    if (!KEY.test(key)) return undefined;
    const stats = await fsp.stat(this.pathOf(key)).catch(() => undefined);
    if (!stats) return undefined;
    const sha1 = crypto.createHash('sha1');
    for await (const chunk of fs.createReadStream(this.pathOf(key))) sha1.update(chunk as Buffer);
    return { key, size: stats.size, sha1: sha1.digest('base64') };
  }

  async get(key: string, range?: ByteRange): Promise<Readable | undefined> {
    if (!KEY.test(key)) return undefined;
    const file = this.pathOf(key);
    if (!fs.existsSync(file)) return undefined;
    return fs.createReadStream(file, range ? { start: range.start, end: range.end } : {});
  }

  close(): void {
    if (this.temporary) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private pathOf(key: string): string {
    return path.join(this.dir, key.slice(0, 2), key.slice(2));
  }
}
