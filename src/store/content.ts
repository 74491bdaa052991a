// store/content: rules about stored content that every engine applies the same way: the
// server's meta on a stored resource, no-op update detection, search page cursors, blob hashes,
// the instants of queue items and leases.

import crypto from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Binary, Element, Resource } from '@medplum/fhirtypes';
import type { BlobInfo } from './port.js';

/** The resource with the server's meta (versionId and lastUpdated), as it is stored. */
export function stamped(resource: Resource, versionId: number, at: string): Resource {
  return { ...resource, meta: { ...resource.meta, versionId: String(versionId), lastUpdated: at } } as Resource;
}

// Content equality for no-op updates: meta.versionId and meta.lastUpdated are the server's.
export function sameContent(a: Resource, b: Resource): boolean {
  const strip = (r: Resource) => {
    const { versionId: _v, lastUpdated: _l, ...meta } = r.meta ?? {};
    return { ...r, meta };
  };
  // isDeepStrictEqual ignores key order, which clients do not keep.
  return isDeepStrictEqual(strip(a), strip(b));
}

// A search cursor is the sort key values of the last row of a page, as base64url JSON.
export function encodeKeys(keys: unknown[]): string {
  return Buffer.from(JSON.stringify(keys)).toString('base64url');
}

export function decodeKeys(cursor: string): unknown[] {
  try {
    const keys = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(keys) && keys.every((k) => typeof k === 'string' || typeof k === 'number')) return keys;
  } catch {
    // fall through
  }
  throw new RangeError('bad search cursor');
}

/**
 * Reads blob bytes once, computing what a BlobInfo says of them: `write` stores each chunk (and
 * may wait for the storage to drain) while both hashes are updated.
 */
export async function hashWhileWriting(source: Uint8Array | AsyncIterable<Uint8Array>, write: (chunk: Uint8Array) => Promise<unknown>): Promise<BlobInfo> {
  const sha256 = crypto.createHash('sha256');
  const sha1 = crypto.createHash('sha1');
  let size = 0;
  for await (const chunk of source instanceof Uint8Array ? [source] : source) {
    sha256.update(chunk);
    sha1.update(chunk);
    size += chunk.byteLength;
    await write(chunk);
  }
  return { key: sha256.digest('hex'), size, sha1: sha1.digest('base64') };
}

/**
 * An ISO instant as epoch milliseconds (how the engines compare due dates and lease ends: two
 * forms of one instant, with or without milliseconds, are equal); a RangeError names `what` when
 * it is no instant.
 */
export function instantMs(value: string, what: string): number {
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new RangeError(`${what} is not an instant: ${JSON.stringify(value)}`);
  return ms;
}

// ---------------------------------------------------------------------------------------------
// Where a stored Binary's bytes are: the server's content pointer (fhir/binary.ts explains it).

/** The extension, on Binary's `_data`, that points at the blob holding the bytes. */
export const CONTENT_POINTER = 'urn:carnet:binary-content';

/** The blob a stored Binary points at; undefined for a Binary with inline data (or none). */
export function pointerOf(binary: Binary): BlobInfo | undefined {
  const pointer = (binary as Binary & { _data?: Element })._data?.extension?.find((e) => e.url === CONTENT_POINTER);
  if (!pointer) return undefined;
  const part = (url: string) => pointer.extension?.find((e) => e.url === url);
  const key = part('key')?.valueString;
  const size = part('size')?.valueUnsignedInt;
  const sha1 = part('sha1')?.valueBase64Binary;
  if (key === undefined || size === undefined || sha1 === undefined) throw new Error('a Binary content pointer lacks key, size or sha1');
  return { key, size, sha1 };
}

