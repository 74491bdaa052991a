// fhir/binary: where a Binary's bytes live. Every Binary write puts its bytes in the store's blob
// store (store.blobs) and stores the Binary row without `data`, with a pointer to the blob
// instead; every answer puts the bytes back (as `data` in FHIR JSON, or streamed natively by
// fhir/retrieve). Clients never see the pointer.
//
// The pointer is a Carnet-owned extension on the primitive element of Binary.data (`_data`):
//
//   "_data": {"extension": [{"url": "urn:carnet:binary-content", "extension": [
//     {"url": "key", "valueString": "<SHA-256, hex>"}, {"url": "size", "valueUnsignedInt": 52428800},
//     {"url": "sha1", "valueBase64Binary": "<SHA-1, base64>"}]}]}
//
// Why there: Binary is a Resource, not a DomainResource, so it has no `extension` of its own, and
// `_data` sits exactly where the bytes would be. Only Carnet's `content-key` search parameter
// indexes it (the purge of an account checks that no other Binary uses a blob before erasing it,
// docs/accounts.md); a search by it answers only Binaries the caller may see. _summary/_elements
// drop it together with `data`. A client sending this extension is refused (400): nobody can point a Binary at bytes
// they never had. Rows written before blobs existed carry `data` inline and are answered as is.

import type { Readable } from 'node:stream';
import type { Binary, Bundle, Element, Extension, Resource } from '@medplum/fhirtypes';
import type { BlobInfo, Store, WriteOp } from '../store/port.js';
import { CONTENT_POINTER, pointerOf } from '../store/content.js';
import { indexEntries } from '../search/extract.js';
import type { Body, FhirContext, FhirRequest, Method, Target } from './context.js';
import { Invalid, PayloadTooLarge } from '../base/outcome.js';
import { access } from './access.js';
import { JSON_TYPES } from './media.js';

type StoredBinary = Binary & { _data?: Element };

const isBinary = (resource: Resource | undefined): resource is StoredBinary => resource?.resourceType === 'Binary';

/** Refuses a Binary that carries Carnet's content pointer: only the server writes it. */
export function assertNoPointer(resource: Resource): void {
  if (isBinary(resource) && resource._data?.extension?.some((e) => e.url === CONTENT_POINTER)) {
    throw new Invalid(`The extension ${CONTENT_POINTER} is reserved to the server`, 'Binary.data.extension');
  }
}

/** `_data` without the pointer, or undefined when nothing else is left in it. */
function otherDataElement(binary: StoredBinary): Element | undefined {
  const extension = binary._data?.extension?.filter((e) => e.url !== CONTENT_POINTER) ?? [];
  const { extension: _all, ...rest } = binary._data ?? {};
  const element: Element = { ...rest, ...(extension.length > 0 ? { extension } : {}) };
  return Object.keys(element).length > 0 ? element : undefined;
}

/** The Binary as stored: no `data`, a pointer to the blob holding its bytes. */
export function withPointer(binary: Binary, blob: BlobInfo): Binary {
  const { data: _inline, _data: _element, ...rest } = binary as StoredBinary;
  const pointer: Extension = {
    url: CONTENT_POINTER,
    extension: [
      { url: 'key', valueString: blob.key },
      { url: 'size', valueUnsignedInt: blob.size },
      { url: 'sha1', valueBase64Binary: blob.sha1 },
    ],
  };
  const other = otherDataElement(binary as StoredBinary);
  return { ...rest, _data: { ...other, extension: [...(other?.extension ?? []), pointer] } } as Binary;
}

/**
 * Moves the inline bytes of the Binaries these writes carry (a FHIR JSON body, a transaction
 * entry, a patched Binary) into the blob store, just before the writes commit. Every write goes
 * through here (applyOne and transactions), so no Binary row ever holds its bytes.
 */
export async function storeContent(store: Store, ops: WriteOp[]): Promise<WriteOp[]> {
  const stored: WriteOp[] = [];
  for (const op of ops) {
    if ((op.kind === 'create' || op.kind === 'update') && isBinary(op.resource) && typeof op.resource.data === 'string') {
      const blob = await store.blobs.put(Buffer.from(op.resource.data, 'base64'));
      const resource = withPointer(op.resource, blob) as Binary & { id: string };
      // Its entries again: the pointer is indexed (content-key), the bytes were not.
      stored.push({ ...op, resource, index: indexEntries(resource) });
    } else stored.push(op);
  }
  return stored;
}

async function bytesOf(store: Store, blob: BlobInfo): Promise<Buffer> {
  const stream = await store.blobs.get(blob.key);
  if (!stream) throw new Error(`the content of a Binary (blob ${blob.key}) is missing from the blob store`);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The resource as FHIR clients see it: a Binary (or each Binary of a Bundle, nested Bundles too)
 * with its bytes back in `data`. Other resources are returned as they are.
 */
export async function withContent<T extends Resource>(store: Store, resource: T): Promise<T> {
  if (isBinary(resource)) {
    const blob = pointerOf(resource);
    if (!blob) return resource;
    const { _data: _element, ...rest } = resource;
    const other = otherDataElement(resource);
    return { ...rest, data: (await bytesOf(store, blob)).toString('base64'), ...(other ? { _data: other } : {}) } as T;
  }
  if (resource.resourceType === 'Bundle') {
    const bundle = resource as Bundle;
    if (!bundle.entry) return resource;
    const entry = [];
    for (const e of bundle.entry) entry.push(e.resource ? { ...e, resource: await withContent(store, e.resource) } : e);
    return { ...bundle, entry } as T;
  }
  return resource;
}

/**
 * Whether a request carries a document: a Bundle pushed to the base (ITI-65 Provide Document
 * Bundle, any batch or transaction) or Binary content. These take the document body limit.
 */
export function carriesDocument(method: Method, target: Target): boolean {
  if (method === 'POST' && target.kind === 'system') return true;
  return (method === 'POST' || method === 'PUT') && 'type' in target && target.type === 'Binary';
}

/** Whether a body is Binary content to stream into the blob store as it arrives (not FHIR JSON). */
export function isContentUpload(method: Method, target: Target, mediaType: string): boolean {
  if (JSON_TYPES.has(mediaType) || mediaType === 'application/json-patch+json' || mediaType === 'application/x-www-form-urlencoded') return false;
  if (!('type' in target) || target.type !== 'Binary') return false;
  return (method === 'POST' && target.kind === 'type') || (method === 'PUT' && (target.kind === 'instance' || target.kind === 'type'));
}

/** The chunks of a body, refused with 413 as soon as they exceed `limit` bytes. */
export async function* limited(source: Readable, limit: number): AsyncIterable<Uint8Array> {
  let size = 0;
  // Not destroyed on a refusal: the 413 must still reach the client over this connection.
  for await (const chunk of source.iterator({ destroyOnReturn: false })) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new PayloadTooLarge(limit);
    yield chunk as Buffer;
  }
}

/** A whole body in memory (FHIR JSON and other bodies that are not Binary content), at most `limit` bytes. */
export async function readBody(source: Readable, limit: number): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of limited(source, limit)) {
    chunks.push(chunk);
    size += chunk.byteLength;
  }
  return Buffer.concat(chunks, size);
}

/**
 * Streams raw Binary content (POST/PUT [base]/Binary with the content's own media type) into the
 * blob store, after checking that the token may write Binaries at all, so that a request refused
 * by its scopes stores nothing. The consent checks follow, as for any write; content refused by
 * them stays as an unreferenced blob (content-addressed: sending it again reuses it).
 */
export async function receiveContent(ctx: FhirContext, req: FhirRequest, source: Readable, mediaType: string, limit: number): Promise<Body> {
  access(req, 'Binary', req.method === 'POST' ? 'c' : 'u');
  const blob = await ctx.store.blobs.put(limited(source, limit));
  if (blob.size === 0) return { kind: 'none' };
  return { kind: 'content', blob, mediaType: mediaType || 'application/octet-stream' };
}

export { CONTENT_POINTER, pointerOf };
