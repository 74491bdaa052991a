// base: the bottom layer every folder may import: the typed errors and their status table (here),
// the served resource types (registry.ts). It imports no other folder of src/ (docs/architecture.md).
//
// base/outcome: the typed errors every layer throws and the OperationOutcome they become.
// One status table; routes never build an OperationOutcome by hand (fhir/http.ts's error handler does).

import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

export type IssueCode = NonNullable<OperationOutcomeIssue['code']>;
export type Severity = NonNullable<OperationOutcomeIssue['severity']>;

export interface Issue {
  code: IssueCode;
  diagnostics: string;
  severity?: Severity;
  /** FHIRPath expressions of the faulty elements, e.g. Patient.name[0].given. */
  expression?: string[];
}

/** Base class: an HTTP status plus FHIR issues. The error handler serialises it. */
export class FhirError extends Error {
  readonly status: number;
  readonly issues: Issue[];
  readonly headers: Record<string, string>;
  /** Set when the policy refused: what was refused, for the audit record (never sent to the client). */
  denied?: { resources: string[]; patients: string[]; /** Kept from the patient's representatives (their access log does not show the attempt). */ confidential?: boolean };
  constructor(status: number, issues: Issue[], headers: Record<string, string> = {}) {
    super(issues.map((i) => i.diagnostics).join('; '));
    this.status = status;
    this.issues = issues;
    this.headers = headers;
  }
}

function issue(code: IssueCode, diagnostics: string, expression?: string | string[]): Issue {
  const list = expression === undefined ? undefined : Array.isArray(expression) ? expression : [expression];
  return list && list.length > 0 ? { code, diagnostics, expression: list } : { code, diagnostics };
}

// The status table: one class per HTTP status the FHIR API answers with.
export class Invalid extends FhirError {
  constructor(diagnostics: string, expression?: string | string[], code: IssueCode = 'invalid') {
    super(400, [issue(code, diagnostics, expression)]);
  }
  /** Several issues at once, e.g. all schema violations of one resource. */
  static of(issues: Issue[]): FhirError {
    return new FhirError(400, issues);
  }
}
export class Unauthorized extends FhirError {
  constructor(diagnostics: string, challenge = 'Bearer') {
    super(401, [issue('login', diagnostics)], { 'www-authenticate': challenge });
  }
}
export class Forbidden extends FhirError {
  constructor(diagnostics: string) {
    super(403, [issue('forbidden', diagnostics)]);
  }
}
export class NotFound extends FhirError {
  constructor(what: string) {
    super(404, [issue('not-found', `${what} is not known`)]);
  }
}
export class MethodNotAllowed extends FhirError {
  constructor(diagnostics: string, allow?: string) {
    super(405, [issue('not-supported', diagnostics)], allow ? { allow } : {});
  }
}
export class NotAcceptable extends FhirError {
  constructor(diagnostics: string) {
    super(406, [issue('not-supported', diagnostics)]);
  }
}
export class Conflict extends FhirError {
  constructor(diagnostics: string) {
    super(409, [issue('conflict', diagnostics)]);
  }
}
export class Gone extends FhirError {
  constructor(what: string, headers: Record<string, string> = {}) {
    super(410, [issue('deleted', `${what} has been deleted`)], headers);
  }
}
export class PreconditionFailed extends FhirError {
  constructor(diagnostics: string, code: IssueCode = 'conflict') {
    super(412, [issue(code, diagnostics)]);
  }
}
export class PayloadTooLarge extends FhirError {
  constructor(limit: number) {
    // The rest of a refused body is not read: the connection closes after the answer.
    super(413, [issue('too-long', `The request body is larger than the limit of ${limit} bytes`)], { connection: 'close' });
  }
}
export class UnsupportedMediaType extends FhirError {
  constructor(diagnostics: string) {
    super(415, [issue('not-supported', diagnostics)]);
  }
}
export class RangeNotSatisfiable extends FhirError {
  constructor(range: string, size: number) {
    super(416, [issue('invalid', `Range "${range}" is outside the ${size} bytes of the content`)], { 'content-range': `bytes */${size}` });
  }
}
export class Unprocessable extends FhirError {
  constructor(diagnostics: string, expression?: string | string[], code: IssueCode = 'processing') {
    super(422, [issue(code, diagnostics, expression)]);
  }
  /** Several issues at once, e.g. a resource's violations of the profiles it claims. */
  static of(issues: Issue[]): FhirError {
    return new FhirError(422, issues);
  }
}
export class ServiceUnavailable extends FhirError {
  constructor(diagnostics: string) {
    super(503, [issue('transient', diagnostics)], { 'retry-after': '5' });
  }
}
export class InternalError extends FhirError {
  constructor(requestId: string) {
    super(500, [issue('exception', `Internal server error (request ${requestId}); the server log has the details`)]);
  }
}

export function operationOutcome(issues: Issue[]): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: issues.map((i) => ({
      severity: i.severity ?? 'error',
      code: i.code,
      diagnostics: i.diagnostics,
      ...(i.expression ? { expression: i.expression } : {}),
    })),
  };
}

/** An informational outcome, for Prefer: return=OperationOutcome and successful deletes. */
export function informational(diagnostics: string): OperationOutcome {
  return operationOutcome([{ code: 'informational', severity: 'information', diagnostics }]);
}
