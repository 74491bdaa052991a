// store/mongo/blobs: attachment bytes in GridFS (bucket `blobs`), content-addressed like the
// embedded engine's files: bytes are uploaded under a pending name while hashed, then named by
// their SHA-256 (or dropped when equal bytes are already stored). Majority-acknowledged.

import crypto from 'node:crypto';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { GridFSBucket, type Collection, type Db, type ObjectId } from 'mongodb';
import type { BlobInfo, BlobStore, ByteRange } from '../port.js';
import { hashWhileWriting } from '../content.js';
import { guarded } from './errors.js';

const KEY = /^[0-9a-f]{64}$/;

interface FileDoc {
  _id: ObjectId;
  length: number;
  filename: string;
  metadata?: { sha1?: string };
}

export class GridFsBlobs implements BlobStore {
  private readonly bucket: GridFSBucket;
  private readonly files: Collection<FileDoc>;

  constructor(db: Db) {
    this.bucket = new GridFSBucket(db, { bucketName: 'blobs', writeConcern: { w: 'majority', journal: true } });
    this.files = db.collection<FileDoc>('blobs.files');
  }

  put(source: Uint8Array | AsyncIterable<Uint8Array>): Promise<BlobInfo> {
    return guarded(async () => {
      const upload = this.bucket.openUploadStream(`pending/${crypto.randomUUID()}`);
      let info: BlobInfo;
      try {
        info = await hashWhileWriting(source, async (chunk) => {
          if (!upload.write(chunk)) await once(upload, 'drain');
        });
        upload.end();
        await finished(upload);
      } catch (error) {
        await upload.abort().catch(() => undefined);
        throw error;
      }
      const key = info.key;
      if (await this.files.findOne({ filename: key }, { projection: { _id: 1 } })) await this.bucket.delete(upload.id);
      else await this.files.updateOne({ _id: upload.id }, { $set: { filename: key, metadata: { sha1: info.sha1 } } }, { writeConcern: { w: 'majority', journal: true } });
      return info;
    });
  }

  stat(key: string): Promise<BlobInfo | undefined> {
    if (!KEY.test(key)) return Promise.resolve(undefined);
    return guarded(async () => {
      const file = await this.files.findOne({ filename: key });
      return file ? { key, size: file.length, sha1: file.metadata?.sha1 ?? '' } : undefined;
    });
  }

  get(key: string, range?: ByteRange): Promise<Readable | undefined> {
    if (!KEY.test(key)) return Promise.resolve(undefined);
    return guarded(async () => {
      const file = await this.files.findOne({ filename: key }, { projection: { _id: 1 } });
      if (!file) return undefined;
      // GridFS's end is exclusive, an HTTP range's inclusive.
      return this.bucket.openDownloadStream(file._id, range ? { start: range.start, end: range.end + 1 } : {});
    });
  }

  remove(key: string): Promise<boolean> {
    if (!KEY.test(key)) return Promise.resolve(false);
    return guarded(async () => {
      const files = await this.files.find({ filename: key }, { projection: { _id: 1 } }).toArray();
      for (const file of files) await this.bucket.delete(file._id);
      return files.length > 0;
    });
  }
}
