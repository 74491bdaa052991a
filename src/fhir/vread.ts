// fhir/vread: GET [base]/[type]/[id]/_history/[vid] (R4 http 3.1.0.3).

import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { NotFound } from '../base/outcome.js';
import { answerRead } from './read.js';
import { access, assertReadable } from './access.js';

export async function vread(ctx: FhirContext, req: FhirRequest, type: string, id: string, vid: string): Promise<FhirResponse> {
  const what = `${type}/${id}/_history/${vid}`;
  if (!/^[1-9]\d{0,9}$/.test(vid)) throw new NotFound(what);
  const granted = access(req, type, 'r');
  const result = await ctx.store.readVersion(type, id, Number(vid));
  await assertReadable(ctx, granted, result, what);
  return answerRead(ctx, req, result, what);
}
