// conformance/asserts: TestScript.setup.action.assert, evaluated on one exchange (the latest
// response, or the request with direction=request) and the fixtures. Plain values in, a TestReport
// action result out; nothing here does I/O.

import type { ActionResult, Assert, AssertOperator, Exchange } from './types.js';
import { asText, evaluatePath } from './variables.js';

/** R4 assert-response-code-types, as HTTP status codes. */
export const RESPONSE_CODES: Record<string, number> = {
  okay: 200,
  created: 201,
  noContent: 204,
  notModified: 304,
  bad: 400,
  forbidden: 403,
  notFound: 404,
  methodNotAllowed: 405,
  conflict: 409,
  gone: 410,
  preconditionFailed: 412,
  unprocessable: 422,
};

/** TestScript's short content types (STU3 codes) and mime types, as the media type they stand for. */
export function mediaType(code: string): string {
  switch (code) {
    case 'json':
      return 'application/fhir+json';
    case 'xml':
      return 'application/fhir+xml';
    case 'ttl':
      return 'text/turtle';
    default:
      return code;
  }
}

const number = (s: string) => (s.trim() !== '' && Number.isFinite(Number(s)) ? Number(s) : undefined);

/**
 * Compares an actual value with the expected one under a TestScript operator. `actual` undefined
 * means absent. `in`/`notIn` take a comma-separated list; greaterThan/lessThan compare numbers
 * when both are numbers, strings otherwise. Returns a failure message, or undefined when it holds.
 */
export function compare(operator: AssertOperator, actual: string | undefined, expected: string | undefined): string | undefined {
  const shown = actual === undefined ? 'absent' : JSON.stringify(actual);
  switch (operator) {
    case 'empty':
      return actual === undefined || actual === '' ? undefined : `expected empty, got ${shown}`;
    case 'notEmpty':
      return actual !== undefined && actual !== '' ? undefined : 'expected a value, got none';
    case 'eval':
      return actual === 'true' ? undefined : `expected true, got ${shown}`;
  }
  if (expected === undefined) return `operator ${operator} needs a value`;
  const list = expected.split(',').map((s) => s.trim());
  switch (operator) {
    case 'equals':
      return actual === expected || (actual !== undefined && number(actual) !== undefined && number(actual) === number(expected)) ? undefined : `expected ${JSON.stringify(expected)}, got ${shown}`;
    case 'notEquals':
      return actual !== expected ? undefined : `expected anything but ${JSON.stringify(expected)}`;
    case 'in':
      return actual !== undefined && list.includes(actual) ? undefined : `expected one of ${expected}, got ${shown}`;
    case 'notIn':
      return actual === undefined || !list.includes(actual) ? undefined : `expected none of ${expected}, got ${shown}`;
    case 'contains':
      return actual !== undefined && actual.includes(expected) ? undefined : `expected to contain ${JSON.stringify(expected)}, got ${shown}`;
    case 'notContains':
      return actual === undefined || !actual.includes(expected) ? undefined : `expected not to contain ${JSON.stringify(expected)}, got ${shown}`;
    case 'greaterThan':
    case 'lessThan': {
      if (actual === undefined) return `expected a value ${operator} ${expected}, got none`;
      const [a, b] = [number(actual), number(expected)];
      const order = a !== undefined && b !== undefined ? a - b : actual.localeCompare(expected);
      const holds = operator === 'greaterThan' ? order > 0 : order < 0;
      return holds ? undefined : `expected ${operator} ${expected}, got ${shown}`;
    }
    default:
      return `operator ${String(operator)} is not supported`;
  }
}

/** Whether `actual` holds every element and value of `minimum` (arrays: each item matched by some item). */
export function containsMinimum(actual: unknown, minimum: unknown): boolean {
  if (Array.isArray(minimum)) return Array.isArray(actual) && minimum.every((m) => actual.some((a) => containsMinimum(a, m)));
  if (typeof minimum === 'object' && minimum !== null) {
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) return false;
    return Object.entries(minimum).every(([k, v]) => k === 'id' || k === 'meta' || k === 'text' || containsMinimum((actual as Record<string, unknown>)[k], v));
  }
  return actual === minimum;
}

/** What an assert may read besides its own elements (values already substituted). */
export interface AssertInputs {
  /** The exchange the assert is about (latest, or the one named by sourceId). */
  exchange?: Exchange;
  /** A fixture's resource or a kept response's body. */
  body(id: string): unknown;
}

const UNSUPPORTED: Array<keyof Assert> = ['path', 'compareToSourcePath', 'validateProfileId'];

function outcome(a: Assert, failure: string | undefined, what: string): ActionResult {
  const label = a.label ?? a.description ?? what;
  if (failure === undefined) return { result: 'pass', message: label };
  return { result: a.warningOnly ? 'warning' : 'fail', message: `${label}: ${failure}` };
}

/**
 * Evaluates one assert. `a` has its ${variables} already replaced. An element the runner does not
 * implement (path, validateProfileId) is an error, never a silent pass.
 */
export function evaluateAssert(a: Assert, inputs: AssertInputs): ActionResult {
  for (const element of UNSUPPORTED) {
    if (a[element] !== undefined) return { result: a.warningOnly ? 'warning' : 'error', message: `${a.label ?? a.description ?? 'assert'}: ${element} is not supported by this runner` };
  }
  const request = a.direction === 'request';
  const x = inputs.exchange;
  const operator = a.operator;
  const checks: Array<[string, () => string | undefined]> = [];
  const needExchange = (f: (x: Exchange) => string | undefined) => () => (x === undefined ? 'no request was made before this assert' : f(x));

  if (a.response !== undefined) {
    const code = RESPONSE_CODES[a.response];
    checks.push([`response ${a.response}`, needExchange((x) => (code === undefined ? `unknown response code ${a.response}` : compare(operator ?? 'equals', String(x.status), String(code))))]);
  }
  if (a.responseCode !== undefined) {
    const op = operator ?? (a.responseCode.includes(',') ? 'in' : 'equals');
    checks.push([`responseCode ${a.responseCode}`, needExchange((x) => compare(op, String(x.status), a.responseCode))]);
  }
  if (a.resource !== undefined) {
    checks.push([`resource ${a.resource}`, needExchange((x) => compare(operator ?? 'equals', (x.json as { resourceType?: string } | undefined)?.resourceType, a.resource))]);
  }
  if (a.contentType !== undefined) {
    const expected = mediaType(a.contentType);
    checks.push([
      `contentType ${a.contentType}`,
      needExchange((x) => {
        const actual = (request ? x.requestHeaders['content-type'] : x.headers['content-type'])?.split(';')[0].trim();
        return compare(operator ?? 'equals', actual, expected);
      }),
    ]);
  }
  if (a.headerField !== undefined) {
    const field = a.headerField.toLowerCase();
    checks.push([`header ${a.headerField}`, needExchange((x) => compare(operator ?? (a.value === undefined ? 'notEmpty' : 'equals'), (request ? x.requestHeaders : x.headers)[field], a.value))]);
  }
  if (a.requestMethod !== undefined) checks.push([`requestMethod ${a.requestMethod}`, needExchange((x) => compare(operator ?? 'equals', x.method.toLowerCase(), a.requestMethod!.toLowerCase()))]);
  if (a.requestURL !== undefined) checks.push([`requestURL ${a.requestURL}`, needExchange((x) => compare(operator ?? 'equals', x.url, a.requestURL))]);
  if (a.navigationLinks !== undefined) {
    checks.push([
      'navigationLinks',
      needExchange((x) => {
        const relations = ((x.json as { link?: Array<{ relation?: string }> } | undefined)?.link ?? []).map((l) => l.relation);
        const present = relations.includes('first') && relations.includes('last');
        return present === a.navigationLinks ? undefined : `expected navigation links ${a.navigationLinks ? 'present' : 'absent'} (first and last), got ${relations.join(', ') || 'none'}`;
      }),
    ]);
  }
  const subject = () => (a.sourceId !== undefined ? inputs.body(a.sourceId) : request ? x?.requestBody : x?.json);
  if (a.expression !== undefined) {
    checks.push([
      `expression ${a.expression}`,
      () => {
        const values = evaluatePath(subject(), a.expression!);
        let expected = a.value;
        if (a.compareToSourceId !== undefined) {
          if (a.compareToSourceExpression === undefined) return 'compareToSourceId needs compareToSourceExpression';
          expected = asText(evaluatePath(inputs.body(a.compareToSourceId), a.compareToSourceExpression));
        }
        if (expected === undefined && (operator === undefined || operator === 'eval')) {
          // No value to compare with: the expression must hold (true, and only true).
          return values.length > 0 && values.every((v) => v === true) ? undefined : `expected the expression to be true, got ${JSON.stringify(values).slice(0, 200)}`;
        }
        if (operator === 'empty' || operator === 'notEmpty') return compare(operator, values.length > 0 ? JSON.stringify(values) : undefined, undefined);
        return compare(operator ?? 'equals', asText(values), expected);
      },
    ]);
  } else if (a.compareToSourceId !== undefined) {
    checks.push(['compareToSourceId', () => 'compareToSourceId needs an expression']);
  }
  if (a.minimumId !== undefined) {
    checks.push([
      `minimumId ${a.minimumId}`,
      () => {
        const minimum = inputs.body(a.minimumId!);
        if (minimum === undefined) return `no fixture ${a.minimumId}`;
        return containsMinimum(subject(), minimum) ? undefined : `the ${request ? 'request' : 'response'} lacks elements of ${a.minimumId}`;
      },
    ]);
  }
  if (checks.length === 0) return { result: a.warningOnly ? 'warning' : 'error', message: `${a.label ?? a.description ?? 'assert'}: nothing to check (no element this runner evaluates)` };
  for (const [what, check] of checks) {
    let failure: string | undefined;
    try {
      failure = check();
    } catch (error) {
      return { result: a.warningOnly ? 'warning' : 'error', message: `${a.label ?? a.description ?? what}: ${error instanceof Error ? error.message : String(error)}` };
    }
    if (failure !== undefined) return outcome(a, failure, what);
  }
  return outcome(a, undefined, checks.map(([w]) => w).join(', '));
}
