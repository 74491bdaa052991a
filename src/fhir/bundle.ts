// fhir/bundle: building the Bundles the server answers with (searchset, history,
// batch-response, transaction-response): entries, fullUrls, links.

import type { Bundle, BundleEntry, BundleLink } from '@medplum/fhirtypes';
import type { Version } from '../store/port.js';
import type { FhirContext, Target } from './context.js';
import { Invalid } from '../base/outcome.js';

/** The path of a target below the base, e.g. Patient/1/_history. */
export function pathOf(target: Target): string {
  switch (target.kind) {
    case 'system':
      return '';
    case 'metadata':
      return 'metadata';
    case 'system-history':
      return '_history';
    case 'type':
      return target.type;
    case 'type-search':
      return `${target.type}/_search`;
    case 'type-history':
      return `${target.type}/_history`;
    case 'type-operation':
      return `${target.type}/${target.operation}`;
    case 'instance':
      return `${target.type}/${target.id}`;
    case 'instance-history':
      return `${target.type}/${target.id}/_history`;
    case 'version':
      return `${target.type}/${target.id}/_history/${target.versionId}`;
    case 'instance-operation':
      return `${target.type}/${target.id}/${target.operation}`;
  }
}

export function link(ctx: FhirContext, relation: string, path: string, params: [string, string][]): BundleLink {
  const query = new URLSearchParams(params).toString();
  return { relation, url: `${ctx.baseUrl}/${path}${query ? `?${query}` : ''}` };
}

/** The query parameter carrying a page cursor in next links. */
export const CURSOR = '_cursor';

/** self and next links of a paged Bundle: `applied` are the parameters the page was built from. */
export function pageLinks(ctx: FhirContext, path: string, applied: [string, string][], cursor: string | undefined, next: string | undefined): BundleLink[] {
  const links = [link(ctx, 'self', path, cursor !== undefined ? [...applied, [CURSOR, cursor]] : applied)];
  if (next !== undefined) links.push(link(ctx, 'next', path, [...applied, [CURSOR, next]]));
  return links;
}

/** Runs a paged store query; a cursor the store cannot read is the client's error (400). */
export async function withCursor<T>(cursor: string | undefined, query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (error) {
    if (error instanceof RangeError) throw new Invalid(`${CURSOR} "${cursor}" is not a cursor this server gave`, CURSOR);
    throw error;
  }
}

export function fullUrl(ctx: FhirContext, version: Pick<Version, 'type' | 'id'>): string {
  return `${ctx.baseUrl}/${version.type}/${version.id}`;
}

export function bundle(type: Bundle['type'], entry: BundleEntry[], extra: Partial<Bundle> = {}): Bundle {
  // FHIR JSON has no empty arrays: an empty page has no entry element.
  return { resourceType: 'Bundle', type, ...extra, ...(entry.length > 0 ? { entry } : {}) };
}

/** Reads a page size: _count as a non-negative integer, capped at the server's maximum. */
export function pageSize(ctx: FhirContext, raw: string | undefined, min = 0): number {
  if (raw === undefined) return ctx.defaultPageSize;
  if (!/^\d+$/.test(raw) || Number(raw) < min) throw new Invalid(`_count must be an integer >= ${min}, got "${raw}"`, '_count');
  return Math.min(Number(raw), ctx.maxPageSize);
}
