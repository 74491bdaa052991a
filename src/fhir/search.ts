// fhir/search: GET [base]/[type]?params and POST [base]/[type]/_search (R4 search 3.1.1),
// answered as a searchset Bundle paged with an opaque cursor.

import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { bundle, CURSOR, fullUrl, pageLinks, pageSize, withCursor } from './bundle.js';
import { parseSearch } from '../search/plan.js';

export async function search(ctx: FhirContext, req: FhirRequest, type: string, params: [string, string][]): Promise<FhirResponse> {
  const count = pageSize(ctx, params.find(([name]) => name === '_count')?.[1]);
  const cursor = params.find(([name]) => name === CURSOR)?.[1];
  const criteria = params.filter(([name]) => name !== CURSOR);
  const { plan, applied } = parseSearch(type, criteria, req.prefer.lenient);
  const page = await withCursor(cursor, () => ctx.store.search(plan, { count, total: cursor === undefined, ...(cursor !== undefined ? { cursor } : {}) }));
  const links = pageLinks(ctx, type, [...applied, ['_count', String(count)]], cursor, page.next);
  const entries = page.matches.map((v) => ({ fullUrl: fullUrl(ctx, v), resource: v.resource, search: { mode: 'match' as const } }));
  return {
    status: 200,
    headers: {},
    resource: bundle('searchset', entries, { ...(page.total !== undefined ? { total: page.total } : {}), link: links }),
  };
}
