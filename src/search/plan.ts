// search/plan: parsing a FHIR R4 search query (https://hl7.org/fhir/R4/search.html) into a
// ParsedSearch: the SearchPlan every engine compiles, plus the result parameters. Storage-free and
// HTTP-free; every bad parameter is a 400 (Invalid) naming the parameter as received, unless the
// caller asked for Prefer: handling=lenient, where it is skipped and listed in `ignored`. A search
// beyond the limits of search/limits is a 400 (`too-costly`) even then; a repeated _include or
// _revinclude value is applied once.
//
// Conventions of the Conditions emitted here (what an engine must know):
// - Comma is OR within a parameter (one Condition, several values); a repeated parameter is AND
//   (several Conditions). Escapes \, \| \$ \\ are honoured (R4 3.1.1.3) and removed from values.
// - token `not: true` (R4 :not): the resource has NO entry of that parameter matching ANY of the
//   values; resources without any value of the parameter match.
// - `missing` (:missing=true|false) names the parameter code; for a composite parameter the
//   index entries are under "<code>#<i>"; for a reference the identifiers are under
//   "<code>:identifier" (the engine decides whether those count as present).
// - RangeValue: low inclusive, high exclusive. Dates: epoch ms; a date or time written without a
//   time zone is taken as UTC. Numbers and quantities: [low, high) is the implicit range of the
//   significant figures written (R4 3.1.1.4.1; a value in exponent form has one more digit of
//   precision than its mantissa shows, as in the spec's table: 1e2 -> [95, 105)); `value` is the
//   number as written, which gt/lt/ge/le/sa/eb compare against exactly ("arbitrarily high
//   precision"), while eq/ne use [low, high). For dates the prefixes compare ranges (R4 3.1.1.4.2).
// - `ap` values come already widened: numbers and quantities by 10% of the value, dates by 10% of
//   the gap between now and the date, on each side (and never narrower than the precision range);
//   an engine matches ap as "the target overlaps [low, high)".
// - chain: `targetTypes` are the served types the reference may point at that define the next
//   parameter (one, when the :Type modifier was given); `where` is parsed against all of them
//   and must match on the one referenced resource.
// - reference values: Type/id gives targetType + targetId; a bare id gives targetId and the
//   type from :Type or the parameter's only target (else no targetType: any type); an absolute
//   URL gives `url`, plus targetType/targetId when it ends in Type/id (a version suffix
//   /_history/v is dropped). An engine may match such a URL on `url`, or on targetType/targetId
//   when the URL's base is the server's own.

import { FhirError, Invalid } from '../base/outcome.js';
import { isServedType } from '../base/registry.js';
import { dateRange, normalizeString } from './normalize.js';
import { findParam, SEARCHABLE_ONLY, type SearchParam } from './params.js';
import { checkSearchSize, MAX_DEPTH, MAX_INCLUDES, MAX_LINKS, MAX_SORT_KEYS, SearchTooCostly, tooCostly } from './limits.js';
import type {
  Condition,
  Include,
  ParamType,
  ParsedSearch,
  Prefix,
  QuantityValue,
  RangeValue,
  ReferenceValue,
  SearchPlan,
  SortKey,
  SummaryMode,
  TokenValue,
  TotalMode,
} from './types.js';

export type { Condition, Include, ParsedSearch, SearchPlan, SortKey, TokenValue } from './types.js';

export interface ParseOptions {
  /** The clock for `ap` on dates (epoch ms); defaults to Date.now(). */
  now?: number;
}

const ID = /^[A-Za-z0-9\-.]{1,64}$/;
const TYPE_NAME = /^[A-Z][A-Za-z]+$/;
const PREFIXES: ReadonlySet<string> = new Set<Prefix>(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

// Result parameters: not conditions. _format and _pretty belong to the HTTP layer.
const HTTP_PARAMS: ReadonlySet<string> = new Set(['_format', '_pretty']);
const RESULT_PARAMS: ReadonlySet<string> = new Set(['_sort', '_count', '_cursor', '_include', '_revinclude', '_total', '_summary', '_elements', '_contained', '_containedType']);

// ---------------------------------------------------------------------------------------------
// Errors

/** The parameter being parsed, for error messages. */
interface Ctx {
  /** The parameter name as received. */
  name: string;
  now: number;
}

function fail(ctx: Ctx, why: string, code: 'invalid' | 'not-supported' = 'invalid'): never {
  throw new Invalid(`Search parameter "${ctx.name}": ${why}`, ctx.name, code);
}

// ---------------------------------------------------------------------------------------------
// Escapes (R4 3.1.1.3)

/** Splits on `sep` where it is not escaped; the parts keep their escapes. */
function splitUnescaped(raw: string, sep: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    if (ch === '\\' && i + 1 < raw.length) {
      current += ch + raw[i + 1];
      i++;
    } else if (ch === sep) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

/** Removes the escapes of the four special characters; any other backslash is literal. */
function unescape(value: string): string {
  return value.replace(/\\([,|$\\])/g, '$1');
}

// ---------------------------------------------------------------------------------------------
// Parameter definitions across types

/** A parameter as defined on every type searched (system search: on all of them). */
interface Def {
  code: string;
  type: ParamType;
  /** Reference targets, the union over the types. */
  targets: string[];
  components?: SearchParam['components'];
  /** Token parameters whose every path ends in an Identifier (:of-type). */
  identifier: boolean;
}

function isIdentifierParam(param: SearchParam): boolean {
  if (param.type !== 'token' || !param.expression) return false;
  return param.expression.split('|').every((path) => /identifier$/i.test(path.trim()));
}

function toDef(param: SearchParam): Def {
  return {
    code: param.code,
    type: param.type,
    targets: [...param.targets],
    ...(param.components ? { components: param.components } : {}),
    identifier: isIdentifierParam(param),
  };
}

function lookup(types: string[], code: string, ctx: Ctx): Def {
  let def: Def | undefined;
  for (const type of types) {
    const param = findParam(type, code);
    if (!param) {
      const only = SEARCHABLE_ONLY[type] ? `; ${type} is searched by ${SEARCHABLE_ONLY[type].join(', ')}` : '';
      fail(ctx, types.length === 1 ? `"${code}" is not a search parameter of ${type}${only}` : `"${code}" is not a search parameter of ${type} (a search across several types accepts only parameters defined on all of them${only})`, 'not-supported');
    }
    if (!def) {
      def = toDef(param);
      continue;
    }
    if (param.type !== def.type) fail(ctx, `"${code}" is a ${def.type} parameter on ${types[0]} but a ${param.type} parameter on ${type}`);
    for (const target of param.targets) if (!def.targets.includes(target)) def.targets.push(target);
    def.identifier = def.identifier && isIdentifierParam(param);
  }
  if (!def) throw new Error('lookup: no type to search');
  return def;
}

// ---------------------------------------------------------------------------------------------
// Values

function prefixed(value: string): [Prefix, string] {
  const head = value.slice(0, 2);
  return PREFIXES.has(head) ? [head as Prefix, value.slice(2)] : ['eq', value];
}

function parseToken(escaped: string, ctx: Ctx): TokenValue {
  const parts = splitUnescaped(escaped, '|');
  if (parts.length > 2) fail(ctx, `"${unescape(escaped)}" has more than one "|": escape a "|" inside a code as "\\|"`);
  if (parts.length === 1) return { code: unescape(escaped) };
  const system = unescape(parts[0]);
  const code = unescape(parts[1]);
  if (system === '' && code === '') fail(ctx, '"|" alone is not a token: give system|code, |code, system| or code');
  return { system: system === '' ? null : system, ...(code === '' ? {} : { code }) };
}

function normalized(escaped: string, ctx: Ctx): string {
  const value = normalizeString(unescape(escaped));
  if (value === '') fail(ctx, `"${unescape(escaped)}" has no letters or digits to search for`);
  return value;
}

/**
 * The implicit range [low, high) in epoch ms of a search date: YYYY, YYYY-MM, YYYY-MM-DD or
 * YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm], read by the same dateRange as the index entries (so a
 * value without a time zone, a date or a time, is UTC: Carnet has no server time zone). A "+" of
 * a zone that arrived decoded as a space (an unencoded "+" in a query string) is read as "+".
 */
function searchDateRange(text: string): { low: number; high: number } | undefined {
  const range = dateRange(text.replace(/^(.*T.*) (\d{2}:\d{2})$/, '$1+$2'));
  return range ? { low: range[0], high: range[1] + 1 } : undefined;
}

const NUMBER = /^([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/**
 * A decimal as written and the implicit range of its significant figures (R4 3.1.1.4.1):
 * 100 -> [99.5, 100.5), 100.00 -> [99.995, 100.005), and in exponent form one more digit than the
 * mantissa shows, as in the spec's table: 1e2 -> [95, 105). Computed in exact decimal arithmetic,
 * then rounded once to the nearest double. Undefined if not a number.
 */
export function numberRange(text: string): { value: number; low: number; high: number } | undefined {
  const m = NUMBER.exec(text);
  if (!m) return undefined;
  const [, sign, whole, fraction = '', exponent] = m;
  const mantissa = BigInt(`${sign === '-' ? '-' : ''}${whole}${fraction}`);
  // value = mantissa * 10^(exp - decimals); the half-width is 5 units of `unit` below.
  const scale = exponent === undefined ? 10n : 100n;
  const unit = (exponent === undefined ? 0 : Number(exponent)) - fraction.length - (exponent === undefined ? 1 : 2);
  const scaled = mantissa * scale;
  const value = Number(text);
  // Out of the range of a double (1e400), or so small it reads as 0 (1e-400): not searchable.
  if (!Number.isFinite(value) || (value === 0 && mantissa !== 0n)) return undefined;
  return { value, low: Number(`${scaled - 5n}e${unit}`), high: Number(`${scaled + 5n}e${unit}`) };
}

function widenNumber(range: RangeValue): RangeValue {
  if (range.prefix !== 'ap') return range;
  const delta = Math.abs(range.value) * 0.1;
  return { ...range, low: Math.min(range.low, range.value - delta), high: Math.max(range.high, range.value + delta) };
}

function parseNumberValue(escaped: string, ctx: Ctx): RangeValue {
  const [prefix, rest] = prefixed(unescape(escaped));
  const range = numberRange(rest);
  if (!range) fail(ctx, `"${unescape(escaped)}" is not a number (give [prefix]number, e.g. 100, ge4.5, 1e2)`);
  return widenNumber({ prefix, ...range });
}

function parseDateValue(escaped: string, ctx: Ctx): RangeValue {
  const text = unescape(escaped);
  const [prefix, rest] = prefixed(text);
  const range = searchDateRange(rest);
  if (!range) fail(ctx, `"${text}" is not a valid date (give [prefix]YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.sss]][Z|±hh:mm])`);
  if (prefix !== 'ap') return { prefix, value: range.low, ...range };
  const delta = Math.round(Math.abs(ctx.now - range.low) * 0.1);
  return { prefix, value: range.low, low: range.low - delta, high: range.high + delta };
}

function parseQuantityValue(escaped: string, ctx: Ctx): QuantityValue {
  const parts = splitUnescaped(escaped, '|');
  const shape = 'give [prefix]number, [prefix]number|system|code or [prefix]number||code';
  if (parts.length !== 1 && parts.length !== 3) fail(ctx, `"${unescape(escaped)}" is not a quantity: ${shape}`);
  const range = parseNumberValue(parts[0], ctx);
  if (parts.length === 1) return range;
  const system = unescape(parts[1]);
  const code = unescape(parts[2]);
  if (code === '') fail(ctx, `"${unescape(escaped)}" has no unit code: ${shape}`);
  return { ...range, ...(system === '' ? {} : { system }), code };
}

const HISTORY = '(?:/_history/[A-Za-z0-9\\-.]{1,64})?';
const RELATIVE = new RegExp(`^([A-Z][A-Za-z]+)/([A-Za-z0-9\\-.]{1,64})${HISTORY}$`);
const URL_TAIL = new RegExp(`/([A-Z][A-Za-z]+)/([A-Za-z0-9\\-.]{1,64})${HISTORY}$`);
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:/;

function parseReferenceValue(def: Def, typeModifier: string | undefined, escaped: string, ctx: Ctx): ReferenceValue {
  const value = unescape(escaped);
  if (ABSOLUTE.test(value)) {
    const tail = URL_TAIL.exec(value);
    return { url: value, ...(tail ? { targetType: tail[1], targetId: tail[2] } : {}) };
  }
  const relative = RELATIVE.exec(value);
  if (relative) {
    const [, type, id] = relative;
    if (typeModifier !== undefined && type !== typeModifier) fail(ctx, `"${value}" is not a reference to a ${typeModifier}`);
    if (def.targets.length > 0 && !def.targets.includes(type)) fail(ctx, `"${def.code}" cannot refer to a ${type} (targets: ${def.targets.join(', ')})`);
    return { targetType: type, targetId: id };
  }
  if (!ID.test(value)) fail(ctx, `"${value}" is not a reference: give Type/id, an id or an absolute URL`);
  const type = typeModifier ?? (def.targets.length === 1 ? def.targets[0] : undefined);
  return { ...(type !== undefined ? { targetType: type } : {}), targetId: value };
}

function parseOfType(escaped: string, ctx: Ctx): { typeSystem: string; typeCode: string; value: string } {
  const parts = splitUnescaped(escaped, '|').map(unescape);
  if (parts.length !== 3 || parts.some((p) => p === '')) fail(ctx, `"${unescape(escaped)}" is not typeSystem|typeCode|value`);
  return { typeSystem: parts[0], typeCode: parts[1], value: parts[2] };
}

/** One Condition from a parameter's escaped values (already split on commas). */
function build(def: Def, param: string, modifier: string | undefined, values: string[], ctx: Ctx): Condition {
  const unknown = (): never => fail(ctx, `the modifier ":${modifier}" is not supported on ${def.type} parameters`, 'not-supported');
  switch (def.type) {
    case 'id': {
      if (modifier !== undefined && modifier !== 'not') return unknown();
      const ids = values.map(unescape);
      for (const id of ids) if (!ID.test(id)) fail(ctx, `"${id}" is not a resource id`);
      return { kind: 'id', ids, ...(modifier === 'not' ? { not: true } : {}) };
    }
    case 'token':
      if (modifier === undefined || modifier === 'not') {
        return { kind: 'token', param, values: values.map((v) => parseToken(v, ctx)), ...(modifier === 'not' ? { not: true } : {}) };
      }
      if (modifier === 'text') return { kind: 'token-text', param, texts: values.map((v) => normalized(v, ctx)) };
      if (modifier === 'of-type') {
        if (!def.identifier) fail(ctx, `":of-type" applies to Identifier parameters only, and "${def.code}" is not one`);
        return { kind: 'of-type', param, values: values.map((v) => parseOfType(v, ctx)) };
      }
      if (['in', 'not-in', 'above', 'below'].includes(modifier)) fail(ctx, `the modifier ":${modifier}" is not supported: Carnet has no terminology service`, 'not-supported');
      return unknown();
    case 'string':
      if (modifier === undefined || modifier === 'contains') return { kind: 'string', param, match: modifier === 'contains' ? 'contains' : 'starts', values: values.map((v) => normalized(v, ctx)) };
      if (modifier === 'exact') return { kind: 'string', param, match: 'exact', values: values.map(unescape) };
      return unknown();
    case 'date':
      if (modifier !== undefined) return unknown();
      return { kind: 'date', param, values: values.map((v) => parseDateValue(v, ctx)) };
    case 'number':
      if (modifier !== undefined) return unknown();
      return { kind: 'number', param, values: values.map((v) => parseNumberValue(v, ctx)) };
    case 'quantity':
      if (modifier !== undefined) return unknown();
      return { kind: 'quantity', param, values: values.map((v) => parseQuantityValue(v, ctx)) };
    case 'reference':
      if (modifier === 'identifier') return { kind: 'token', param: `${param}:identifier`, values: values.map((v) => parseToken(v, ctx)) };
      if (modifier !== undefined && !TYPE_NAME.test(modifier)) return unknown();
      if (modifier !== undefined && def.targets.length > 0 && !def.targets.includes(modifier)) fail(ctx, `"${def.code}" cannot refer to a ${modifier} (targets: ${def.targets.join(', ')})`);
      return { kind: 'reference', param, values: values.map((v) => parseReferenceValue(def, modifier, v, ctx)) };
    case 'uri':
      if (modifier !== undefined && modifier !== 'below' && modifier !== 'above') return unknown();
      return { kind: 'uri', param, match: modifier ?? 'exact', values: values.map(unescape) };
    case 'composite': {
      if (modifier !== undefined) return unknown();
      const components = def.components;
      if (!components || components.length === 0) fail(ctx, `the composite "${def.code}" has no usable components`, 'not-supported');
      return {
        kind: 'composite',
        param,
        values: values.map((v) => {
          const parts = splitUnescaped(v, '$');
          if (parts.length !== components.length) fail(ctx, `"${unescape(v)}" has ${parts.length} part(s) where "${def.code}" has ${components.length} components separated by "$"`);
          return parts.map((part, i) => {
            if (part === '') fail(ctx, `"${unescape(v)}" has an empty component`);
            const component = toDef(components[i].param);
            if (component.type === 'composite') fail(ctx, `the composite "${def.code}" nests a composite`, 'not-supported');
            return build(component, `${param}#${i}`, undefined, [part], ctx);
          });
        }),
      };
    }
    default:
      return fail(ctx, `"${def.code}" is a ${def.type} parameter, which Carnet does not search on`, 'not-supported');
  }
}

// ---------------------------------------------------------------------------------------------
// Parameter names: plain, modified, chained, reverse-chained

function splitModifier(segment: string, ctx: Ctx): [string, string | undefined] {
  const parts = segment.split(':');
  if (parts.length > 2) fail(ctx, `"${segment}" has more than one modifier`);
  if (parts[0] === '') fail(ctx, 'the parameter name is empty');
  return [parts[0], parts[1]];
}

/** The first parameter code of a (possibly chained, modified) name. */
function firstCode(name: string): string {
  if (name.startsWith('_has:')) return '_has';
  return name.split('.')[0].split(':')[0];
}

function definesNext(type: string, code: string): boolean {
  return isServedType(type) && (code === '_has' || findParam(type, code) !== undefined);
}

function condition(types: string[], name: string, raw: string, ctx: Ctx, depth: number): Condition {
  if (depth > MAX_DEPTH) tooCostly(ctx.name, `chains and _has nest at most ${MAX_DEPTH} levels deep (MAX_DEPTH)`);
  if (name === '_has' || name.startsWith('_has:')) return reverseChain(types, name, raw, ctx, depth);
  const dot = name.indexOf('.');
  if (dot >= 0) return chain(types, name.slice(0, dot), name.slice(dot + 1), raw, ctx, depth);
  const [code, modifier] = splitModifier(name, ctx);
  const def = lookup(types, code, ctx);
  // A type searched by few parameters (search/params SEARCHABLE_ONLY) has no ":identifier" entries unless it lists them.
  const noIdentifiers = types.find((type) => SEARCHABLE_ONLY[type] && !SEARCHABLE_ONLY[type].includes(`${code}:identifier`));
  if (modifier === 'identifier' && noIdentifiers) fail(ctx, `":identifier" is not searchable on ${noIdentifiers}: search "${code}" by reference`, 'not-supported');
  if (modifier === 'missing') {
    if (raw !== 'true' && raw !== 'false') fail(ctx, `:missing takes true or false, not "${raw}"`);
    if (def.type === 'id') fail(ctx, 'a resource always has an id: _id:missing is not supported', 'not-supported');
    return { kind: 'missing', param: code, missing: raw === 'true' };
  }
  const values = splitUnescaped(raw, ',');
  if (values.some((v) => v === '')) fail(ctx, raw === '' ? 'the value is empty: omit the parameter instead' : `"${raw}" has an empty value between commas`);
  return build(def, code, modifier, values, ctx);
}

/** The chain and _has links of a parsed condition (each one joins another resource). */
function linksOf(cond: Condition): number {
  return cond.kind === 'chain' || cond.kind === 'has' ? 1 + cond.where.reduce((sum, inner) => sum + linksOf(inner), 0) : 0;
}

function chain(types: string[], head: string, rest: string, raw: string, ctx: Ctx, depth: number): Condition {
  const [code, modifier] = splitModifier(head, ctx);
  const def = lookup(types, code, ctx);
  if (def.type !== 'reference') fail(ctx, `"${code}" is a ${def.type} parameter: only reference parameters can be chained`);
  if (rest === '') fail(ctx, 'the chain ends with "."');
  const next = firstCode(rest);
  let targetTypes: string[];
  if (modifier !== undefined) {
    if (!TYPE_NAME.test(modifier)) fail(ctx, `"${head}": a chained reference takes a resource type modifier only (e.g. subject:Patient.name)`);
    if (def.targets.length > 0 && !def.targets.includes(modifier)) fail(ctx, `"${code}" cannot refer to a ${modifier} (targets: ${def.targets.join(', ')})`);
    if (!definesNext(modifier, next)) fail(ctx, `${modifier} has no search parameter "${next}"`);
    targetTypes = [modifier];
  } else {
    targetTypes = def.targets.filter((t) => definesNext(t, next));
    if (targetTypes.length === 0) fail(ctx, `no type "${code}" can refer to (${def.targets.join(', ') || 'none'}) has a search parameter "${next}"`);
  }
  return { kind: 'chain', param: code, targetTypes, where: [condition(targetTypes, rest, raw, ctx, depth + 1)] };
}

function reverseChain(types: string[], name: string, raw: string, ctx: Ctx, depth: number): Condition {
  const parts = name.split(':');
  const [, sourceType, code] = parts;
  const rest = parts.slice(3).join(':');
  if (parts.length < 4 || !sourceType || !code || rest === '') fail(ctx, 'give _has:Type:reference-parameter:parameter (e.g. _has:Observation:patient:code=1234)');
  if (!isServedType(sourceType)) fail(ctx, `"${sourceType}" is not a resource type Carnet serves`, 'not-supported');
  const param = findParam(sourceType, code);
  if (!param) fail(ctx, `"${code}" is not a search parameter of ${sourceType}`, 'not-supported');
  if (param.type !== 'reference') fail(ctx, `"${sourceType}:${code}" is not a reference parameter`);
  const unreachable = types.filter((t) => param.targets.length > 0 && !param.targets.includes(t));
  if (unreachable.length > 0) fail(ctx, `${sourceType}.${code} cannot refer to a ${unreachable.join(' or a ')}`);
  return { kind: 'has', sourceType, param: code, where: [condition([sourceType], rest, raw, ctx, depth + 1)] };
}

// ---------------------------------------------------------------------------------------------
// Result parameters

function single(raw: string, ctx: Ctx): string {
  if (raw === '') fail(ctx, 'the value is empty: omit the parameter instead');
  return raw;
}

function parseSort(types: string[], raw: string, ctx: Ctx): SortKey[] {
  const items = single(raw, ctx).split(',');
  if (items.length > MAX_SORT_KEYS) tooCostly(ctx.name, `_sort takes at most ${MAX_SORT_KEYS} keys (MAX_SORT_KEYS), and this one has ${items.length}`);
  return items.map((item) => {
    const descending = item.startsWith('-');
    const code = descending ? item.slice(1) : item;
    if (code === '') fail(ctx, `"${raw}" has an empty sort key`);
    if (code.includes(':') || code.includes('.')) fail(ctx, `"${code}": sort keys are parameter codes, without modifiers or chains`, 'not-supported');
    const def = lookup(types, code, ctx);
    if (def.type === 'composite' || def.type === 'special') fail(ctx, `cannot sort on the ${def.type} parameter "${code}"`, 'not-supported');
    return { param: code, descending };
  });
}

function parseInclude(modifier: string | undefined, raw: string, ctx: Ctx): Include {
  if (modifier !== undefined && modifier !== 'iterate' && modifier !== 'recurse') fail(ctx, `the modifier ":${modifier}" is not supported (use :iterate)`, 'not-supported');
  const iterate = modifier !== undefined;
  const value = single(raw, ctx);
  if (value === '*') return { sourceType: '*', param: '*', iterate };
  const parts = value.split(':');
  const [sourceType, code, targetType] = parts;
  if (parts.length < 2 || parts.length > 3 || !sourceType || !code || targetType === '') fail(ctx, `"${value}" is not Type:parameter[:TargetType] or *`);
  if (!isServedType(sourceType)) fail(ctx, `"${sourceType}" is not a resource type Carnet serves`, 'not-supported');
  if (code === '*') {
    if (targetType !== undefined) fail(ctx, `"${value}": a target type cannot follow "*"`);
    return { sourceType, param: '*', iterate };
  }
  const param = findParam(sourceType, code);
  if (!param) fail(ctx, `"${code}" is not a search parameter of ${sourceType}`, 'not-supported');
  if (param.type !== 'reference') fail(ctx, `"${sourceType}:${code}" is not a reference parameter`);
  if (targetType !== undefined) {
    if (!isServedType(targetType)) fail(ctx, `"${targetType}" is not a resource type Carnet serves`, 'not-supported');
    if (param.targets.length > 0 && !param.targets.includes(targetType)) fail(ctx, `${sourceType}.${code} cannot refer to a ${targetType}`);
  }
  return { sourceType, param: code, ...(targetType !== undefined ? { targetType } : {}), iterate };
}

const ELEMENT = /^[A-Za-z][A-Za-z0-9_]*(\[x\])?$/;

function parseElements(types: string[], raw: string, ctx: Ctx): string[] {
  return single(raw, ctx)
    .split(',')
    .map((item) => {
      const dot = item.indexOf('.');
      const element = dot >= 0 && types.includes(item.slice(0, dot)) ? item.slice(dot + 1) : item;
      if (!ELEMENT.test(element)) fail(ctx, `"${item}" is not a top-level element name`);
      return element;
    });
}

/** The types of a system search's `_type` parameter (comma list of served types). */
export function parseTypes(raw: string): string[] {
  const ctx: Ctx = { name: '_type', now: 0 };
  const types = single(raw, ctx).split(',');
  for (const type of types) if (!isServedType(type)) fail(ctx, `"${type}" is not a resource type Carnet serves`, 'not-supported');
  return [...new Set(types)];
}

// ---------------------------------------------------------------------------------------------
// Entry points

interface Mode {
  lenient: boolean;
  /** Conditional criteria: result parameters are not allowed. */
  criteria: boolean;
  now: number;
}

function parse(types: string[], params: [string, string][], mode: Mode): ParsedSearch {
  if (types.length === 0) throw new Error('parseSearch: no resource type to search');
  const result: ParsedSearch = { plan: { types: [...types], where: [], sort: [] }, include: [], revinclude: [], applied: [], ignored: [] };
  checkSearchSize(params);
  const seen = new Set<string>();
  // _include and _revinclude values applied, as `base` + Include: a repeated one is done once.
  const includes = new Set<string>();
  // Chain and _has links of the conditions applied.
  let links = 0;
  // Result parameters given once at most; a bad one (ignored under lenient) does not count.
  const once = (key: string, ctx: Ctx) => {
    if (seen.has(key)) fail(ctx, 'given more than once');
  };
  for (const [name, raw] of params) {
    const ctx: Ctx = { name, now: mode.now };
    if (HTTP_PARAMS.has(name)) continue;
    try {
      const [base, modifier] = name.startsWith('_include') || name.startsWith('_revinclude') ? splitModifier(name, ctx) : [name, undefined];
      if (mode.criteria && RESULT_PARAMS.has(base)) fail(ctx, 'result parameters are not allowed in conditional criteria');
      switch (base) {
        case '_count': {
          once(base, ctx);
          if (!/^\d{1,9}$/.test(raw)) fail(ctx, `"${raw}" is not a whole number >= 0`);
          result.count = Number(raw);
          seen.add(base);
          continue;
        }
        case '_cursor':
          once(base, ctx);
          result.cursor = single(raw, ctx);
          seen.add(base);
          continue;
        case '_sort':
          once(base, ctx);
          result.plan.sort = parseSort(types, raw, ctx);
          break;
        case '_include':
        case '_revinclude': {
          const include = parseInclude(modifier, raw, ctx);
          const key = JSON.stringify([base, include.sourceType, include.param, include.targetType, include.iterate]);
          if (includes.has(key)) continue;
          if (includes.size >= MAX_INCLUDES) tooCostly(name, `a search takes at most ${MAX_INCLUDES} distinct _include and _revinclude values (MAX_INCLUDES)`);
          includes.add(key);
          (base === '_include' ? result.include : result.revinclude).push(include);
          break;
        }
        case '_total': {
          once(base, ctx);
          if (!['none', 'estimate', 'accurate'].includes(raw)) fail(ctx, `"${raw}" is not none, estimate or accurate`);
          result.total = raw as TotalMode;
          break;
        }
        case '_summary': {
          once(base, ctx);
          if (!['true', 'text', 'data', 'count', 'false'].includes(raw)) fail(ctx, `"${raw}" is not true, text, data, count or false`);
          result.summary = raw as SummaryMode;
          break;
        }
        case '_elements':
          once(base, ctx);
          result.elements = parseElements(types, raw, ctx);
          break;
        case '_contained':
        case '_containedType':
          return fail(ctx, 'searching contained resources is not supported', 'not-supported');
        case '_type': {
          const listed = parseTypes(raw);
          const other = listed.filter((t) => !types.includes(t));
          if (other.length > 0) fail(ctx, `${other.join(', ')} is not among the types searched (${types.join(', ')})`);
          break;
        }
        default: {
          const parsed = condition(types, name, raw, ctx, 1);
          links += linksOf(parsed);
          if (links > MAX_LINKS) tooCostly(name, `a search takes at most ${MAX_LINKS} chain and _has links in all its parameters (MAX_LINKS), and this one has more by this parameter`);
          result.plan.where.push(parsed);
        }
      }
      seen.add(base);
      result.applied.push([name, raw]);
    } catch (err) {
      if (mode.lenient && err instanceof FhirError && err.status === 400 && !(err instanceof SearchTooCostly)) {
        result.ignored.push(name);
        continue;
      }
      throw err;
    }
  }
  return result;
}

/**
 * Parses a search on `types`: one type for a type search; for a system search, the types of
 * _type (see parseTypes), where a parameter must be defined on all of them. A bad parameter is a
 * 400 naming it, unless `lenient` (Prefer: handling=lenient): then it is skipped and listed in
 * `ignored`. _format and _pretty are left to the HTTP layer (neither applied nor ignored).
 */
export function parseSearch(types: string[], params: [string, string][], lenient: boolean, options: ParseOptions = {}): ParsedSearch {
  return parse(types, params, { lenient, criteria: false, now: options.now ?? Date.now() });
}

/**
 * Parses conditional criteria (If-None-Exist, `Type?query` URLs of conditional update/delete and
 * transaction references), which are never lenient, take no result parameters, and must hold at
 * least one condition.
 */
export function parseCriteria(type: string, query: string): SearchPlan {
  // Some senders (the HL7 XDS example among them) write If-None-Exist as a full "Type?query".
  if (query.startsWith(`${type}?`)) query = query.slice(type.length + 1);
  const params = [...new URLSearchParams(query)] as [string, string][];
  const { plan } = parse([type], params, { lenient: false, criteria: true, now: Date.now() });
  if (plan.where.length === 0) throw new Invalid(`Conditional criteria "${query}" select nothing: give at least one search parameter`);
  return plan;
}
