// search/limits: how much one search may ask for. Every search goes through the parser
// (search/plan: GET and POST _search, system search, conditional create, update and delete
// criteria, batch and transaction entries, conditional references), and every limit here is
// checked there: the sizes (checkSearchSize) before any value is parsed, the others as each
// parameter is. Beyond them a request answers 400 with an OperationOutcome (issue code
// `too-costly`) naming the limit and the parameter, under Prefer: handling=lenient too.
// docs/api.md lists them; scripts/bench/costly.mjs measures what the costliest requests within
// them cost (docs/performance.md): under these values, none of them holds the event loop more
// than about 40 ms on its data.
//
// Why each exists: a search runs its SQL on the event loop (better-sqlite3 is synchronous), so a
// request's whole cost holds every other request. The number of values and parameters sets the
// size of the SQL statement (SQLite refuses more than 32,766 bound values and OR chains more
// than 1,000 deep, and plans OR chains in time growing faster than their length), the length of a
// value bounds every LIKE pattern (SQLite refuses patterns over 50,000 bytes), includes each run
// searches per page and :iterate round, sort keys each add a correlated subquery per matching row
// and the keyset condition of a cursor grows with their square, and chains and _has each add a
// subquery (with the policy's restriction of the resources they go through).

import { Invalid } from '../base/outcome.js';

/** Parameters (name=value pairs, result parameters included) in one search. */
export const MAX_PARAMETERS = 32;

/** Comma-separated values of one parameter (ORed values, _sort keys, _elements, _type). */
export const MAX_VALUES = 100;

/** Values of all the parameters of one search together. */
export const MAX_TOTAL_VALUES = 500;

/** Characters of one value (between commas), escapes included. */
export const MAX_VALUE_LENGTH = 2048;

/** Characters of one parameter name, modifiers, chains and _has included. */
export const MAX_NAME_LENGTH = 256;

/** Characters of a whole search: every name and value (as decoded), `_cursor` excepted. */
export const MAX_SEARCH_LENGTH = 32_768;

/** Distinct _include and _revinclude values together (repeated ones count once). */
export const MAX_INCLUDES = 10;

/** Keys of _sort. */
export const MAX_SORT_KEYS = 8;

/** Levels of chains and _has in one parameter name (each `.` or `_has:` is a level). */
export const MAX_DEPTH = 4;

/** Chain and _has links (each `.` or `_has:`) in all the parameters of one search together. */
export const MAX_LINKS = 8;

/**
 * The largest form body of POST [type]/_search, in bytes: a search of MAX_SEARCH_LENGTH
 * characters, each percent-encoded (three bytes; a UTF-8 character takes up to four, encoded as
 * twelve, so a search of non-ASCII text reaches the limit sooner), with its separators.
 */
export const MAX_FORM_BYTES = 3 * MAX_SEARCH_LENGTH + 2 * MAX_PARAMETERS;

/** A search beyond a limit: 400, issue code `too-costly`, naming the parameter. Never skipped as lenient. */
export class SearchTooCostly extends Invalid {
  constructor(name: string, why: string) {
    super(`Search parameter "${shown(name)}": ${why}`, shown(name), 'too-costly');
  }
}

export function tooCostly(name: string, why: string): never {
  throw new SearchTooCostly(name, why);
}

/** A name as errors show it: never longer than the limit (a refused name may be megabytes). */
function shown(name: string): string {
  return name.length <= MAX_NAME_LENGTH ? name : `${name.slice(0, MAX_NAME_LENGTH)}...`;
}

/** The number of values of a raw parameter value (commas not escaped by a backslash, plus one) and the length of the longest. */
export function measureValues(raw: string): { count: number; longest: number } {
  let count = 1;
  let longest = 0;
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    const ch = raw.charCodeAt(i);
    if (ch === 0x5c) i++; // a backslash escapes the next character
    else if (ch === 0x2c) {
      longest = Math.max(longest, i - start);
      start = i + 1;
      count++;
    }
  }
  return { count, longest: Math.max(longest, raw.length - start) };
}

const CURSOR = '_cursor';

/**
 * Checks the size of a search before anything of it is parsed: the number of parameters, the
 * length of names, values and the whole, the number of values. Throws the 400 of the first limit
 * exceeded. The values of `_cursor` (a page cursor this server gave, which holds sort values of
 * any length) are not measured.
 */
export function checkSearchSize(params: readonly (readonly [string, string])[]): void {
  if (params.length > MAX_PARAMETERS) tooCostly(params[MAX_PARAMETERS][0], `a search takes at most ${MAX_PARAMETERS} parameters (MAX_PARAMETERS), and this one has ${params.length}`);
  let length = 0;
  let values = 0;
  for (const [name, raw] of params) {
    if (name.length > MAX_NAME_LENGTH) tooCostly(name, `a parameter name takes at most ${MAX_NAME_LENGTH} characters (MAX_NAME_LENGTH), and this one has ${name.length}`);
    if (name === CURSOR) continue;
    const { count, longest } = measureValues(raw);
    if (count > MAX_VALUES) tooCostly(name, `a parameter takes at most ${MAX_VALUES} comma-separated values (MAX_VALUES), and this one has ${count}`);
    if (longest > MAX_VALUE_LENGTH) tooCostly(name, `a value takes at most ${MAX_VALUE_LENGTH} characters (MAX_VALUE_LENGTH), and this one has ${longest}`);
    length += name.length + raw.length;
    if (length > MAX_SEARCH_LENGTH) tooCostly(name, `a search takes at most ${MAX_SEARCH_LENGTH} characters of names and values (MAX_SEARCH_LENGTH), and this one has more by this parameter`);
    values += count;
    if (values > MAX_TOTAL_VALUES) tooCostly(name, `a search takes at most ${MAX_TOTAL_VALUES} values in all its parameters (MAX_TOTAL_VALUES), and this one has more by this parameter`);
  }
}
