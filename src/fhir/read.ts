// fhir/read: GET [base]/[type]/[id] (R4 http 3.1.0.2), with If-None-Match and If-Modified-Since.

import type { ReadResult } from '../store/port.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { Gone, NotFound } from '../base/outcome.js';
import { etag, versionResponse } from './resource.js';
import { access, assertReadable } from './access.js';

/** 200 with the version, 404 when it never existed, 410 when its newest version is a delete. */
export function answerRead(ctx: FhirContext, req: FhirRequest, result: ReadResult, what: string): FhirResponse {
  switch (result.kind) {
    case 'missing':
      throw new NotFound(what);
    case 'deleted':
      throw new Gone(what, { etag: etag(result.version.versionId) });
    case 'found': {
      const { version } = result;
      if (req.ifNoneMatch !== undefined && req.ifNoneMatch.split(',').some((tag) => tag.trim() === etag(version.versionId) || tag.trim() === '*')) {
        return { status: 304, headers: { etag: etag(version.versionId) } };
      }
      if (req.ifModifiedSince !== undefined) {
        const since = Date.parse(req.ifModifiedSince);
        // HTTP dates have second precision: compare at that precision.
        if (!Number.isNaN(since) && Math.floor(Date.parse(version.lastUpdated) / 1000) * 1000 <= since) {
          return { status: 304, headers: { etag: etag(version.versionId) } };
        }
      }
      return versionResponse(ctx, { ...req, prefer: { lenient: false } }, 200, version, false);
    }
  }
}

export async function read(ctx: FhirContext, req: FhirRequest, type: string, id: string): Promise<FhirResponse> {
  const granted = access(req, type, 'r');
  const result = await ctx.store.read(type, id);
  await assertReadable(ctx, granted, result, `${type}/${id}`);
  return answerRead(ctx, req, result, `${type}/${id}`);
}
