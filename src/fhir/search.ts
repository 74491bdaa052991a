// fhir/search: GET [base]/[type]?params, POST [base]/[type]/_search and system search with _type
// (R4 search 3.1.1): a searchset Bundle of matches, then _include/_revinclude targets, paged
// with a cursor, shaped by _summary/_elements.

import type { BundleEntry, Resource } from '@medplum/fhirtypes';
import type { Version } from '../store/port.js';
import { referenceEntries } from '../search/extract.js';
import { paramsOf } from '../search/params.js';
import { parseSearch } from '../search/plan.js';
import { checkSearchSize } from '../search/limits.js';
import type { Condition, Include, ParsedSearch, TotalMode } from '../search/types.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { bundle, fullUrl, pageLinks, withCursor } from './bundle.js';
import { FhirError, Invalid } from '../base/outcome.js';
import { isServedType, SERVED_TYPES } from '../base/registry.js';
import { shape } from './shape.js';
import { access, restrict, searchable, visible, type Access } from './access.js';
import { hasCompartment } from '../policy/compartment.js';

/** The access of the caller to a type, or undefined when its scopes do not reach it. */
function tryAccess(req: FhirRequest, type: string, permission: 'r' | 's'): Access | undefined {
  try {
    return access(req, type, permission);
  } catch (error) {
    if (error instanceof FhirError && error.status === 403) return undefined;
    throw error;
  }
}

// Bounds on what includes may add to one page, so that a search cannot fetch the whole store.
const MAX_INCLUDED = 1000;
const MAX_ITERATIONS = 4;

/** Resources the policy checks in one turn of the event loop: a page of 1,000 gives way to other requests between. */
const CHECKED_PER_TURN = 50;

/** visible(), CHECKED_PER_TURN resources at a time. */
async function visibleInTurns(ctx: FhirContext, req: FhirRequest, granted: Access, versions: Version[]): Promise<Version[]> {
  const kept: Version[] = [];
  for (let start = 0; start < versions.length; start += CHECKED_PER_TURN) {
    if (start > 0) await new Promise((resolve) => setImmediate(resolve));
    kept.push(...(await visible(ctx, granted, versions.slice(start, start + CHECKED_PER_TURN), (m) => req.log?.(m))));
  }
  return kept;
}

const key = (v: { type: string; id: string }) => `${v.type}/${v.id}`;

/** References a resource holds through one reference parameter (or all of them for '*'). */
function referencesOf(resource: Resource, include: Include): { type: string; id: string }[] {
  return referenceEntries(resource, include.param)
    .filter((e) => e.group === 0 && e.targetType !== null && e.targetId !== null && (!include.targetType || e.targetType === include.targetType))
    .map((e) => ({ type: e.targetType as string, id: e.targetId as string }));
}

async function readAll(ctx: FhirContext, req: FhirRequest, refs: { type: string; id: string }[]): Promise<Version[]> {
  const byType = new Map<string, Set<string>>();
  for (const ref of refs) if (isServedType(ref.type)) byType.set(ref.type, (byType.get(ref.type) ?? new Set()).add(ref.id));
  const found: Version[] = [];
  for (const [type, ids] of byType) {
    // Included resources are read as the caller: types its scopes do not reach are left out.
    const granted = tryAccess(req, type, 'r');
    if (!granted) continue;
    const page = await ctx.store.search(restrict(ctx, granted, { types: [type], where: [{ kind: 'id', ids: [...ids] }], sort: [] }), { count: ids.size });
    found.push(...(await visibleInTurns(ctx, req, granted, page.matches)));
  }
  return found;
}

/** _include and _revinclude targets of a page, :iterate applied to what they add. */
async function included(ctx: FhirContext, req: FhirRequest, parsed: ParsedSearch, matches: Version[]): Promise<Version[]> {
  const seen = new Set(matches.map(key));
  const added: Version[] = [];
  let frontier = matches;
  for (let round = 0; round < MAX_ITERATIONS && frontier.length > 0 && added.length < MAX_INCLUDED; round++) {
    const next: Version[] = [];
    const includes = parsed.include.filter((i) => round === 0 || i.iterate);
    const revincludes = parsed.revinclude.filter((i) => round === 0 || i.iterate);
    const refs = includes.flatMap((include) => frontier.filter((v) => v.resource && (include.sourceType === '*' || v.type === include.sourceType)).flatMap((v) => referencesOf(v.resource as Resource, include)));
    next.push(...(await readAll(ctx, req, refs.filter((r) => !seen.has(key(r))))));
    for (const rev of revincludes) {
      const params = rev.param === '*' ? paramsOf(rev.sourceType).filter((p) => p.type === 'reference').map((p) => p.code) : [rev.param];
      const granted = tryAccess(req, rev.sourceType, 's');
      if (!granted || (granted.compartment && !hasCompartment(rev.sourceType)) || params.length === 0) continue;
      // One search for every parameter (Type:* names them all) and every target of the frontier.
      const values = frontier.map((v) => ({ targetType: v.type, targetId: v.id }));
      const referring = params.map((param): Condition => ({ kind: 'reference', param, values }));
      const plan = restrict(ctx, granted, { types: [rev.sourceType], where: [referring.length === 1 ? referring[0] : { kind: 'any', of: referring }], sort: [] });
      next.push(...(await visibleInTurns(ctx, req, granted, (await ctx.store.search(plan, { count: MAX_INCLUDED })).matches)));
    }
    frontier = [];
    for (const version of next) {
      if (seen.has(key(version)) || added.length >= MAX_INCLUDED) continue;
      seen.add(key(version));
      added.push(version);
      frontier.push(version);
    }
  }
  return added;
}

/** The types of a system search: _type, or every served type. */
function systemTypes(params: [string, string][]): string[] {
  const given = params.filter(([name]) => name === '_type').flatMap(([, value]) => value.split(','));
  for (const type of given) if (!isServedType(type)) throw new Invalid(`_type: "${type}" is not a resource type this server serves`, '_type');
  return given.length > 0 ? [...new Set(given)] : [...SERVED_TYPES];
}

/** The most matches `_total=estimate` counts: beyond, the Bundle has no total (docs/api.md "Totals"). */
export const TOTAL_ESTIMATE_CAP = 1000;

/**
 * What the store counts for each `_total` (R4 search 3.1.1.5.6): every match for `accurate`; at
 * most TOTAL_ESTIMATE_CAP for `estimate` (the default: an exact count of a large record costs
 * more than its page, docs/performance.md "Totals"); nothing for `none`.
 */
function totalQuery(mode: TotalMode): { total?: boolean; totalAtMost?: number } {
  switch (mode) {
    case 'accurate':
      return { total: true };
    case 'estimate':
      return { total: true, totalAtMost: TOTAL_ESTIMATE_CAP };
    case 'none':
      return {};
  }
}

export async function search(ctx: FhirContext, req: FhirRequest, type: string | undefined, params: [string, string][]): Promise<FhirResponse> {
  // A system search reads _type before the parser sees the other parameters: the limits count it too.
  if (type === undefined) checkSearchSize(params);
  const types = type !== undefined ? [type] : systemTypes(params);
  const typeParam = params.filter(([name]) => name === '_type');
  const parsed = parseSearch(types, type !== undefined ? params : params.filter(([name]) => name !== '_type'), req.prefer.lenient);
  const { plan, granted } = await searchable(ctx, req, parsed.plan);
  const countOnly = parsed.summary === 'count';
  const count = countOnly ? 0 : Math.min(parsed.count ?? ctx.defaultPageSize, ctx.maxPageSize);
  // Without _total, an estimate; `_count=0` (and `_summary=count`) asks for the count itself.
  const totalMode = parsed.total ?? (count === 0 ? 'accurate' : 'estimate');
  const page = await withCursor(parsed.cursor, () => ctx.store.search(plan, { count, ...totalQuery(totalMode), ...(parsed.cursor !== undefined ? { cursor: parsed.cursor } : {}) }));
  const shaping = { ...(parsed.summary ? { summary: parsed.summary } : {}), ...(parsed.elements ? { elements: parsed.elements } : {}) };
  const entry = (v: Version, mode: 'match' | 'include'): BundleEntry => ({ fullUrl: fullUrl(ctx, v), resource: shape(v.resource as Resource, shaping), search: { mode } });
  const matches = await visibleInTurns(ctx, req, granted, page.matches);
  const entries = matches.map((v) => entry(v, 'match'));
  if (!countOnly && (parsed.include.length > 0 || parsed.revinclude.length > 0)) {
    entries.push(...(await included(ctx, req, parsed, matches)).map((v) => entry(v, 'include')));
  }
  const applied: [string, string][] = [...(type === undefined ? typeParam : []), ...parsed.applied, ['_count', String(count)]];
  const links = pageLinks(ctx, type ?? '', applied, parsed.cursor, page.next);
  return {
    status: 200,
    headers: {},
    resource: bundle('searchset', entries, { ...(page.total !== undefined ? { total: page.total } : {}), link: links }),
  };
}

