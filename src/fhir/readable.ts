// fhir/readable: every resource of a type, matching some criteria, that the caller may read,
// through the server's own search (scopes, the policy's restriction, the decision on each match),
// page after page. For operations that gather a record (Patient/$summary, Patient/$everything):
// they show exactly what the caller's searches would.

import type { Bundle, Resource } from '@medplum/fhirtypes';
import { FhirError } from '../base/outcome.js';
import type { FhirContext, FhirRequest } from './context.js';
import { search } from './search.js';

/**
 * Every resource of `type` the caller may read that matches `params`: the server's own search
 * (scopes, policy restriction, decision on each match), page after page. A type the caller's scopes
 * do not reach gives nothing, as an _include of it would.
 */
export async function readable(ctx: FhirContext, req: FhirRequest, type: string, params: [string, string][], max: number): Promise<Resource[]> {
  const found: Resource[] = [];
  let query: [string, string][] = [...params, ['_count', String(ctx.maxPageSize)]];
  while (found.length < max) {
    let page: Bundle;
    try {
      page = (await search(ctx, { ...req, method: 'GET', target: { kind: 'type', type }, query, body: { kind: 'none' } }, type, query)).resource as Bundle;
    } catch (error) {
      if (error instanceof FhirError && error.status === 403) return found;
      throw error;
    }
    found.push(...(page.entry ?? []).map((e) => e.resource).filter((r): r is Resource => r !== undefined));
    const next = page.link?.find((l) => l.relation === 'next')?.url;
    if (!next) break;
    query = [...new URL(next).searchParams] as [string, string][];
  }
  return found.slice(0, max);
}

