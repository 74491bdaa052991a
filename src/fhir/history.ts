// fhir/history: GET [base]/_history, [type]/_history and [type]/[id]/_history (R4 http 3.1.0.9),
// newest first, paged with an opaque cursor so pages stay correct while new versions arrive.

import type { BundleEntry } from '@medplum/fhirtypes';
import type { HistoryScope, Version } from '../store/port.js';
import type { FhirContext, FhirRequest, FhirResponse, Target } from './context.js';
import { bundle, CURSOR, fullUrl, pageLinks, pageSize, pathOf, withCursor } from './bundle.js';
import { Invalid } from '../base/outcome.js';
import { SERVED_TYPES } from '../base/registry.js';
import { etag } from './resource.js';
import { access, assertReadable, restrict, unrestricted, visible } from './access.js';

function historyEntry(ctx: FhirContext, version: Version): BundleEntry {
  const entry: BundleEntry = { fullUrl: fullUrl(ctx, version) };
  if (version.resource) entry.resource = version.resource;
  // The request that made this version, as history bundles show it (R4 3.1.0.9).
  const method = version.deleted ? 'DELETE' : version.versionId === 1 ? 'POST' : 'PUT';
  entry.request = { method, url: method === 'POST' ? version.type : `${version.type}/${version.id}` };
  entry.response = {
    status: version.deleted ? '204' : version.versionId === 1 ? '201' : '200',
    etag: etag(version.versionId),
    lastModified: version.lastUpdated,
  };
  return entry;
}

function instant(raw: string): string {
  // _since is an instant; a date-only value is read as its first moment in UTC.
  if (!/^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$/.test(raw)) {
    throw new Invalid(`_since must be a FHIR instant, got "${raw}"`, '_since');
  }
  const time = Date.parse(raw);
  if (Number.isNaN(time)) throw new Invalid(`_since must be a FHIR instant, got "${raw}"`, '_since');
  return new Date(time).toISOString();
}

export async function history(ctx: FhirContext, req: FhirRequest, target: Target, scope: HistoryScope): Promise<FhirResponse> {
  // Instance history reads one resource; type and system history are searches of everything.
  const granted = access(req, scope.level === 'system' ? '*' : scope.type, scope.level === 'instance' ? 'r' : 's');
  if (scope.level === 'instance') await assertReadable(ctx, granted, await ctx.store.read(scope.type, scope.id), `${scope.type}/${scope.id}`);
  let count = ctx.defaultPageSize;
  let since: string | undefined;
  let cursor: string | undefined;
  const applied: [string, string][] = [];
  for (const [name, value] of req.query) {
    if (name === '_count') {
      count = pageSize(ctx, value, 1);
      applied.push([name, String(count)]);
    } else if (name === '_since') {
      since = instant(value);
      applied.push([name, value]);
    } else if (name === CURSOR) {
      cursor = value;
    } else if (name !== '_format' && name !== '_pretty' && !req.prefer.lenient) {
      throw new Invalid(`History parameter "${name}" is not supported (supported: _count, _since)`, name);
    }
  }
  // Type and system history carry the same restriction as a search: the versions of the
  // resources the actor may see now (a patient's compartment, the consent policy).
  const types = scope.level === 'system' ? [...SERVED_TYPES] : [scope.type];
  const restriction = scope.level === 'instance' || unrestricted(ctx, granted, types) ? undefined : restrict(ctx, granted, { types, where: [], sort: [] });
  const page = await withCursor(cursor, () =>
    ctx.store.history(scope, { count, ...(cursor !== undefined ? { cursor } : {}), ...(since !== undefined ? { since } : {}), ...(restriction ? { restriction } : {}) }),
  );
  const links = pageLinks(ctx, pathOf(target), applied, cursor, page.next);
  // Each version is checked on its own content (an older version may be hidden when the current
  // is not); a restricted actor sees a delete of one resource it may read, never of a whole type.
  let versions = page.versions;
  if (scope.level === 'instance' && !unrestricted(ctx, granted, [scope.type])) {
    const allowed = new Set(await visible(ctx, granted, versions.filter((v) => v.resource), (m) => req.log?.(m)));
    versions = versions.filter((v) => !v.resource || allowed.has(v));
  } else if (restriction) versions = await visible(ctx, granted, versions, (m) => req.log?.(m));
  const result = bundle(
    'history',
    versions.map((v) => historyEntry(ctx, v)),
    { ...(page.total !== undefined ? { total: page.total } : {}), link: links },
  );
  return { status: 200, headers: {}, resource: result };
}
