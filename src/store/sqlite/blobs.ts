// store/sqlite/blobs: attachment bytes as content-addressed files under the data folder
// (blobs/ab/cdef…), written to a temporary file, fsync'd, then renamed into place. Next to each
// blob a small sidecar (…cdef.sha1) keeps its SHA-1, so stat() never re-reads the bytes.

import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { BlobInfo, BlobStore, ByteRange } from '../port.js';
import { hashWhileWriting } from '../content.js';

const KEY = /^[0-9a-f]{64}$/;
const SHA1 = /^[A-Za-z0-9+/]{27}=$/;

/** fsyncs a folder, so that a rename into it survives a power loss, not only a process crash. */
async function syncFolder(folder: string): Promise<void> {
  const handle = await fsp.open(folder, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

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
    if (await this.exists(target)) {
      // Equal bytes are stored once: the blob is already there.
      await fsp.rm(staging, { force: true });
      return info;
    }
    // The sidecar first: a blob in place always has its SHA-1 next to it.
    await this.writeSidecar(info.key, info.sha1);
    await fsp.rename(staging, target);
    await syncFolder(path.dirname(target));
    return info;
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    if (!KEY.test(key)) return undefined;
    const stats = await fsp.stat(this.pathOf(key)).catch(() => undefined);
    if (!stats) return undefined;
    const recorded = (await fsp.readFile(`${this.pathOf(key)}.sha1`, 'utf8').catch(() => '')).trim();
    if (SHA1.test(recorded)) return { key, size: stats.size, sha1: recorded };
    // A blob written before sidecars existed (or whose sidecar was lost): hash it once, keep the result.
    const sha1 = crypto.createHash('sha1');
    for await (const chunk of fs.createReadStream(this.pathOf(key))) sha1.update(chunk as Buffer);
    const digest = sha1.digest('base64');
    await this.writeSidecar(key, digest);
    return { key, size: stats.size, sha1: digest };
  }

  async get(key: string, range?: ByteRange): Promise<Readable | undefined> {
    if (!KEY.test(key)) return undefined;
    // Opening first (not checking existence, then opening) leaves no window for a race.
    const handle = await fsp.open(this.pathOf(key), 'r').catch(() => undefined);
    if (!handle) return undefined;
    return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
  }

  async remove(key: string): Promise<boolean> {
    if (!KEY.test(key)) return false;
    const target = this.pathOf(key);
    const existed = await this.exists(target);
    await fsp.rm(target, { force: true });
    await fsp.rm(`${target}.sha1`, { force: true });
    if (existed) await syncFolder(path.dirname(target));
    return existed;
  }

  close(): void {
    if (this.temporary) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private async exists(file: string): Promise<boolean> {
    return fsp.access(file).then(
      () => true,
      () => false,
    );
  }

  private async writeSidecar(key: string, sha1: string): Promise<void> {
    const staging = path.join(this.dir, 'tmp', `${crypto.randomUUID()}.sha1`);
    await fsp.writeFile(staging, sha1, { flush: true });
    await fsp.rename(staging, `${this.pathOf(key)}.sha1`);
  }

  private pathOf(key: string): string {
    return path.join(this.dir, key.slice(0, 2), key.slice(2));
  }
}
