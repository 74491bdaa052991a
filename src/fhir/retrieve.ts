// fhir/retrieve: a Binary served as itself (R4 Binary "native format"; IHE MHD ITI-68 Retrieve
// Document): its bytes with its content type, Content-Length, the version's ETag and
// Last-Modified, and single byte ranges (RFC 9110 14). The bytes stream from the blob store; the
// interaction (read/vread) has already checked consent and the record is written before this runs.

import type { Readable } from 'node:stream';
import type { Binary } from '@medplum/fhirtypes';
import type { ByteRange, Store } from '../store/port.js';
import type { FhirResponse } from './context.js';
import { RangeNotSatisfiable } from '../base/outcome.js';
import { pointerOf } from './binary.js';

/** Where the bytes are: a blob, or (rows written before blobs existed) inline base64. */
type Source = { kind: 'blob'; key: string } | { kind: 'inline'; data: Buffer };

export interface NativeAnswer {
  status: 200 | 201 | 206;
  headers: Record<string, string>;
  source: Source;
  range?: ByteRange;
}

/** What a Range header asks of `size` bytes: one range, none (answer all), or nothing it can have (416). */
export function rangeOf(header: string, size: number): ByteRange | 'all' | 'unsatisfiable' {
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  // Another unit, or a malformed header, is ignored: the whole content is answered (RFC 9110 14.2).
  if (!match) return 'all';
  const specs = match[1].split(',').map((s) => s.trim()).filter((s) => s !== '');
  // Several ranges would need multipart/byteranges; the whole content is a valid answer to them.
  if (specs.length !== 1) return 'all';
  const spec = /^(\d*)-(\d*)$/.exec(specs[0]);
  if (!spec || (spec[1] === '' && spec[2] === '')) return 'all';
  if (spec[1] === '') {
    // bytes=-n: the last n bytes.
    const suffix = Number(spec[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(spec[1]);
  const last = spec[2] === '' ? undefined : Number(spec[2]);
  if (last !== undefined && last < start) return 'all';
  if (start >= size) return 'unsatisfiable';
  return { start, end: last === undefined ? size - 1 : Math.min(last, size - 1) };
}

/**
 * If-Range: ranges apply only while the content is the one the client has. The version tag is
 * weak in form (W/"3") but a version's content never changes, so it is compared as a strong one;
 * a date is compared with Last-Modified at the second precision of HTTP dates.
 */
function stillCurrent(ifRange: string, headers: Record<string, string>): boolean {
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return value.replace(/^W\//, '') === headers.etag?.replace(/^W\//, '');
  const since = Date.parse(value);
  const modified = headers['last-modified'] !== undefined ? Date.parse(headers['last-modified']) : NaN;
  return !Number.isNaN(since) && since === modified;
}

/**
 * The native answer to a successful read, vread or write of a Binary: status and headers, and
 * where its bytes come from. Range (with If-Range) applies to reads (200) only.
 */
export function nativeAnswer(response: FhirResponse, conditions: { range?: string; ifRange?: string }): NativeAnswer {
  const binary = response.resource as Binary;
  const blob = pointerOf(binary);
  const source: Source = blob ? { kind: 'blob', key: blob.key } : { kind: 'inline', data: Buffer.from(binary.data ?? '', 'base64') };
  const size = blob ? blob.size : (source as { data: Buffer }).data.length;
  const headers: Record<string, string> = {
    ...response.headers,
    'content-type': binary.contentType ?? 'application/octet-stream',
    'accept-ranges': 'bytes',
    'content-length': String(size),
  };
  const status = response.status === 201 ? 201 : 200;
  if (status !== 200 || conditions.range === undefined) return { status, headers, source };
  if (conditions.ifRange !== undefined && !stillCurrent(conditions.ifRange, headers)) return { status, headers, source };
  const range = rangeOf(conditions.range, size);
  if (range === 'all') return { status, headers, source };
  if (range === 'unsatisfiable') throw new RangeNotSatisfiable(conditions.range, size);
  return {
    status: 206,
    headers: { ...headers, 'content-length': String(range.end - range.start + 1), 'content-range': `bytes ${range.start}-${range.end}/${size}` },
    source,
    range,
  };
}

/** The bytes of a native answer: a stream from the blob store, or a slice of inline data. */
export async function openContent(store: Store, answer: NativeAnswer): Promise<Readable | Buffer> {
  const { source, range } = answer;
  if (source.kind === 'inline') return range ? source.data.subarray(range.start, range.end + 1) : source.data;
  const stream = await store.blobs.get(source.key, range);
  if (!stream) throw new Error(`the content of a Binary (blob ${source.key}) is missing from the blob store`);
  return stream;
}
