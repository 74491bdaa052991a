// The pattern t.throws and t.rejects match a thrown FhirError against, on its own fields.

import type { Test } from 'tap';

/** tap's ErrorMatch (not exported by tap), read off the signature of t.throws. */
type ErrorMatch = Exclude<Parameters<Test['throws']>[1], string | undefined>;

/**
 * Fields of a FhirError (status) or TokenRejected (reason) the thrown error must match. tap 21
 * types the pattern as ErrorMatch, which requires one of message, name, code, cause or errors;
 * at run time tap compares any object pattern with t.match, so only the static type is widened.
 */
export function errorWith(fields: { status?: number; reason?: string | RegExp }): ErrorMatch {
  return fields as ErrorMatch;
}
