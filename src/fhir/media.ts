// fhir/media: content negotiation (R4 http 3.1.0.1.5): which media type a request body has,
// which one the client accepts back, and reading JSON bodies safely.

import { Invalid, NotAcceptable, UnsupportedMediaType } from '../base/outcome.js';

export const FHIR_JSON = 'application/fhir+json';
export const JSON_TYPES = new Set([FHIR_JSON, 'application/json', 'application/json+fhir', 'text/json']);
const XML_TYPES = new Set(['application/fhir+xml', 'application/xml', 'text/xml', 'application/xml+fhir', 'xml']);
const RDF_TYPES = new Set(['application/fhir+turtle', 'text/turtle', 'ttl']);

/** Media type and parameters of a Content-Type header, lower-cased. */
export function mediaTypeOf(header: string | undefined): { type: string; charset?: string } {
  if (!header) return { type: '' };
  const [type, ...params] = header.split(';').map((p) => p.trim().toLowerCase());
  const charset = params.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
  return charset ? { type, charset } : { type };
}

/**
 * What to answer with: FHIR JSON (in the media type the client named), for a Binary its own bytes,
 * or the rendition a response offers (a patient summary's PDF).
 */
export type Representation = { kind: 'json'; mediaType: string } | { kind: 'raw' } | { kind: 'rendition'; mediaType: string };

interface Accepted {
  type: string;
  q: number;
}

function parseAccept(header: string): Accepted[] {
  return header
    .split(',')
    .map((part) => {
      const [type, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
      const q = params.find((p) => p.startsWith('q='));
      return { type, q: q ? Number(q.slice(2)) : 1 };
    })
    .filter((a) => a.type !== '' && a.q > 0)
    .sort((a, b) => b.q - a.q);
}

function jsonMediaType(type: string): string {
  return type === 'application/json' ? 'application/json' : FHIR_JSON;
}

/**
 * Decides the representation from _format (which wins) and Accept. Only JSON is served: a client
 * that accepts XML or Turtle only gets 406. A Binary is served as itself unless FHIR JSON is
 * explicitly asked for (R4 Binary: "return the content in its native format"). `rendition`: the
 * media type of another representation the response offers, served when named by _format or Accept.
 */
export function negotiate(format: string | undefined, accept: string | undefined, binary: boolean, rendition?: string): Representation {
  if (format !== undefined) {
    const wanted = format.toLowerCase().replace(/ /g, '+');
    if (rendition !== undefined && wanted === rendition) return { kind: 'rendition', mediaType: rendition };
    if (wanted === 'json' || JSON_TYPES.has(wanted)) return { kind: 'json', mediaType: jsonMediaType(wanted) };
    if (XML_TYPES.has(wanted) || RDF_TYPES.has(wanted)) throw new NotAcceptable(`_format=${format} is not served; this server speaks FHIR JSON`);
    throw new NotAcceptable(`_format=${format} is not a FHIR format`);
  }
  const accepted = accept ? parseAccept(accept) : [];
  if (accepted.length === 0) return binary ? { kind: 'raw' } : { kind: 'json', mediaType: FHIR_JSON };
  for (const { type } of accepted) {
    if (JSON_TYPES.has(type)) return { kind: 'json', mediaType: jsonMediaType(type) };
    if (rendition !== undefined && type === rendition) return { kind: 'rendition', mediaType: rendition };
    if (binary) return { kind: 'raw' };
    if (type === '*/*' || type === 'application/*') return { kind: 'json', mediaType: FHIR_JSON };
  }
  throw new NotAcceptable(`None of the accepted media types (${accept}) can be served; this server speaks ${FHIR_JSON}`);
}

/** Nesting deeper than this is refused before parsing: no FHIR resource needs it. */
export const MAX_DEPTH = 100;

// Counts bracket depth outside strings, so that a hostile body never reaches JSON.parse or the
// recursive validators with thousands of levels. A string is skipped with indexOf (native), not
// character by character: a document's base64 is one string of most of the body (a 100 KiB PDF
// took 7 % of an ITI-65 push's thread scanned in JavaScript).
function tooDeep(text: string): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      i = closingQuote(text, i);
      if (i === -1) return false; // an unterminated string: JSON.parse refuses it
    } else if (c === 123 || c === 91) {
      if (++depth > MAX_DEPTH) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

/** The index of the quote that closes the string opened at `open`: the next one not escaped (after an even run of backslashes); -1 if none. */
function closingQuote(text: string, open: number): number {
  let end = text.indexOf('"', open + 1);
  while (end !== -1) {
    let backslashes = 0;
    while (text.charCodeAt(end - 1 - backslashes) === 92) backslashes++;
    if (backslashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
  return -1;
}

/** Parses a JSON body: 400 for malformed or too deeply nested JSON, 415 for a non-UTF-8 charset. */
export function parseJson(text: string, charset?: string): unknown {
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new UnsupportedMediaType(`charset=${charset} is not supported; send UTF-8`);
  }
  if (tooDeep(text)) throw new Invalid(`The JSON body is nested more than ${MAX_DEPTH} levels deep`);
  try {
    return JSON.parse(text);
  } catch (error) {
    // V8's message may quote the body; only the position goes back (and nothing is logged).
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new Invalid(`The body is not valid JSON${position ? ` (at character ${position})` : ''}`);
  }
}
