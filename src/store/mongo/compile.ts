// store/mongo/compile: turns a SearchPlan into a MongoDB filter over the current documents of
// store/mongo/documents (store/mongo/page makes a search page's pipeline of it). Pure but for
// `resolve`: chains and _has name other resources, which a find filter cannot join, so their
// targets are looked up first (by the engine in its session, by the mingo proof in memory) and
// the filter names them.
//
// The semantics mirror store/sqlite/compile.ts clause by clause; the mingo proof
// (test/store/mingo-shadow) checks that both select the same resources in the same order.

import type { Condition, QuantityValue, RangeValue, ReferenceValue, SearchPlan, TokenValue } from '../../search/types.js';
import { entryKindOf } from '../kinds.js';
import { ENTRY_ARRAYS, PATIENT_KEY_PARAMS, type CurrentDoc } from './documents.js';

export type Filter = Record<string, unknown>;
export type Stage = Record<string, unknown>;

/** Finds current documents matching `filter`, with their type, id and reference entries. */
export type Resolve = (filter: Filter) => Promise<Pick<CurrentDoc, 'type' | 'id' | 'ref'>[]>;

/** A filter no document matches, at the top level and inside an $elemMatch. */
const NONE: Filter = { _id: { $in: [] } };
const NO_ENTRY: Filter = { p: { $in: [] } };

/** Conjunction; objects with distinct keys are merged (the form the query planner reads best). */
function and(parts: Filter[]): Filter {
  const nonEmpty = parts.filter((p) => Object.keys(p).length > 0);
  const merged: Filter = {};
  for (const part of nonEmpty) {
    if (Object.keys(part).some((key) => key in merged)) return { $and: nonEmpty };
    Object.assign(merged, part);
  }
  return merged;
}

function or(parts: Filter[], none: Filter): Filter {
  if (parts.length === 0) return none;
  return parts.length === 1 ? parts[0] : { $or: parts };
}

const not = (filter: Filter): Filter => ({ $nor: [filter] });

/** A regular expression matching `text` literally. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Every prefix of `value`, the empty one included (uri :above: the stored value is a prefix of the searched one). */
function prefixes(value: string): string[] {
  return Array.from({ length: value.length + 1 }, (_v, i) => value.slice(0, i));
}

// R4 3.1.1.4.2: prefixes compare the implicit range of the search value [low, high) with the
// stored range [lo, hi] (inclusive).
function dateRange(v: RangeValue): Filter {
  switch (v.prefix) {
    case 'eq':
      return { lo: { $gte: v.low }, hi: { $lt: v.high } };
    case 'ne':
      return not({ lo: { $gte: v.low }, hi: { $lt: v.high } });
    case 'gt':
      return { hi: { $gte: v.high } };
    case 'ge':
      return { hi: { $gte: v.low } };
    case 'lt':
      return { lo: { $lt: v.low } };
    case 'le':
      return { lo: { $lt: v.high } };
    case 'sa':
      return { lo: { $gte: v.high } };
    case 'eb':
      return { hi: { $lt: v.low } };
    case 'ap':
      return { lo: { $lt: v.high }, hi: { $gte: v.low } };
  }
}

// _lastUpdated is the envelope's ISO instant: text order is time order.
function lastUpdated(v: RangeValue): Filter {
  const at = (ms: number) => new Date(Math.min(Math.max(ms, -8.64e15), 8.64e15)).toISOString();
  switch (v.prefix) {
    case 'eq':
    case 'ap':
      return { lastUpdated: { $gte: at(v.low), $lt: at(v.high) } };
    case 'ne':
      return not({ lastUpdated: { $gte: at(v.low), $lt: at(v.high) } });
    case 'gt':
    case 'sa':
      return { lastUpdated: { $gte: at(v.high) } };
    case 'ge':
      return { lastUpdated: { $gte: at(v.low) } };
    case 'lt':
    case 'eb':
      return { lastUpdated: { $lt: at(v.low) } };
    case 'le':
      return { lastUpdated: { $lt: at(v.high) } };
  }
}

// Numbers: eq and ne use the implicit range of the value as written; the others compare values.
function numberRange(v: RangeValue): Filter {
  switch (v.prefix) {
    case 'eq':
    case 'ap':
      return { v: { $gte: v.low, $lt: v.high } };
    case 'ne':
      return not({ v: { $gte: v.low, $lt: v.high } });
    case 'gt':
    case 'sa':
      return { v: { $gt: v.value } };
    case 'lt':
    case 'eb':
      return { v: { $lt: v.value } };
    case 'ge':
      return { v: { $gte: v.value } };
    case 'le':
      return { v: { $lte: v.value } };
  }
}

function token(v: TokenValue): Filter {
  const parts: Filter = {};
  if (v.code !== undefined) parts.c = v.code;
  if (v.system !== undefined) parts.s = v.system;
  return parts;
}

function quantity(v: QuantityValue): Filter {
  const parts = [numberRange(v)];
  if (v.system !== undefined) parts.push({ s: v.system });
  if (v.code !== undefined) parts.push({ $or: [{ c: v.code }, { u: v.code }] });
  return and(parts);
}

function reference(v: ReferenceValue): Filter {
  const local: Filter = {};
  if (v.targetId !== undefined) local.ti = v.targetId;
  if (v.targetType !== undefined) local.tt = v.targetType;
  const hasLocal = Object.keys(local).length > 0;
  if (v.url !== undefined) return hasLocal ? { $or: [local, { u: v.url }] } : { u: v.url };
  return hasLocal ? local : NO_ENTRY;
}

/** The entries of a leaf condition: its parameter and a filter on one entry. */
function leafParts(cond: Condition): { param: string; entry: Filter } {
  const anyOf = <T>(values: T[], one: (value: T) => Filter) => or(values.map(one), NO_ENTRY);
  switch (cond.kind) {
    case 'token':
      return { param: cond.param, entry: anyOf(cond.values, token) };
    case 'token-text':
      // :text matches the start of any word of the normalised text.
      return { param: cond.param, entry: anyOf(cond.texts, (v) => ({ t: { $regex: `(^| )${literal(v)}` } })) };
    case 'of-type':
      return { param: `${cond.param}:of-type`, entry: anyOf(cond.values, (v) => ({ s: v.typeSystem, c: `${v.typeCode}|${v.value}` })) };
    case 'string':
      return {
        param: cond.param,
        entry: anyOf(cond.values, (v) => (cond.match === 'exact' ? { x: v } : { v: { $regex: cond.match === 'contains' ? literal(v) : `^${literal(v)}` } })),
      };
    case 'date':
      return { param: cond.param, entry: anyOf(cond.values, dateRange) };
    case 'number':
      return { param: cond.param, entry: anyOf(cond.values, numberRange) };
    case 'quantity':
      return { param: cond.param, entry: anyOf(cond.values, quantity) };
    case 'reference':
      return { param: cond.param, entry: anyOf(cond.values, reference) };
    case 'uri':
      return {
        param: cond.param,
        entry: anyOf(cond.values, (v) => {
          if (cond.match === 'below') return { v: { $regex: `^${literal(v)}` } };
          if (cond.match === 'above') return { v: { $in: prefixes(v) } };
          return { v };
        }),
      };
    default:
      throw new Error(`condition ${cond.kind} is not a leaf`);
  }
}

/** The array holding the entries of `param` on `types` (a composite component's kind is its component parameter's). */
function arrayOf(types: string[], param: string): string {
  return ENTRY_ARRAYS[entryKindOf(types, param)];
}

class Compiler {
  constructor(private readonly resolve: Resolve) {}

  async where(conditions: Condition[], types: string[]): Promise<Filter> {
    const parts: Filter[] = [];
    for (const condition of conditions) parts.push(await this.condition(condition, types));
    return and(parts);
  }

  private async condition(cond: Condition, types: string[]): Promise<Filter> {
    switch (cond.kind) {
      case 'id':
        return { id: { [cond.not ? '$nin' : '$in']: cond.ids } };
      case 'types':
        return { type: { $in: cond.types } };
      case 'creator':
        return cond.creators.length === 0 ? NONE : { creator: { $in: cond.creators } };
      case 'missing': {
        const present = { [`${arrayOf(types, cond.param)}.p`]: cond.param };
        return cond.missing ? not(present) : present;
      }
      case 'all':
        return this.where(cond.of, types);
      case 'any': {
        const parts: Filter[] = [];
        for (const one of cond.of) parts.push(await this.condition(one, types));
        return or(parts, NONE);
      }
      case 'not':
        return not(await this.condition(cond.condition, types));
      case 'chain': {
        // The targets: current, live resources of the target types matching `where`.
        const filter = and([{ type: { $in: cond.targetTypes } }, { deleted: false }, await this.where(cond.where, cond.targetTypes)]);
        const byType = new Map<string, Set<string>>();
        for (const target of await this.resolve(filter)) {
          if (!byType.has(target.type)) byType.set(target.type, new Set());
          byType.get(target.type)!.add(target.id);
        }
        const entry = or(
          [...byType].map(([type, ids]) => ({ tt: type, ti: { $in: [...ids].sort() } })),
          NO_ENTRY,
        );
        return { ref: { $elemMatch: and([{ p: cond.param }, entry]) } };
      }
      case 'has': {
        // The sources: live resources of sourceType matching `where`; this resource is one they point at.
        const filter = and([{ type: cond.sourceType }, { deleted: false }, { 'ref.p': cond.param }, await this.where(cond.where, [cond.sourceType])]);
        const byType = new Map<string, Set<string>>();
        for (const source of await this.resolve(filter)) {
          for (const entry of source.ref ?? []) {
            if (entry.p !== cond.param || entry.tt === undefined || entry.ti === undefined) continue;
            if (!byType.has(entry.tt)) byType.set(entry.tt, new Set());
            byType.get(entry.tt)!.add(entry.ti);
          }
        }
        return or(
          [...byType].map(([type, ids]) => ({ type, id: { $in: [...ids].sort() } })),
          NONE,
        );
      }
      case 'composite':
        // One of the values matches when every component matches within one composite value.
        return or(
          cond.values.map((components) => ({
            cmp: {
              $elemMatch: and([
                { p: cond.param },
                ...components.map((component) => {
                  const { param, entry } = leafParts(component);
                  return { c: { $elemMatch: and([{ p: param }, entry]) } };
                }),
              ]),
            },
          })),
          NONE,
        );
      case 'date':
        if (cond.param === '_lastUpdated') return or(cond.values.map(lastUpdated), NONE);
        return this.leaf(cond, types);
      case 'token': {
        const owned = this.leaf(cond, types);
        return cond.not ? not(owned) : owned;
      }
      default:
        return this.leaf(cond, types);
    }
  }

  /** The resource owns an entry of the parameter that matches. */
  private leaf(cond: Condition, types: string[]): Filter {
    const { param, entry } = leafParts(cond);
    return { [arrayOf(types, param)]: { $elemMatch: and([{ p: param }, entry]) } };
  }
}

/**
 * The patient keys every match of the plan has, when its conditions imply them: a search of one
 * type naming patients through the element of the patient key (PATIENT_KEY_PARAMS), or Patients by
 * _id. Said in the filter, it sends the query to those patients' shards only.
 */
function patientKeys(plan: SearchPlan): string[] | undefined {
  if (plan.types.length !== 1) return undefined;
  const [type] = plan.types;
  for (const cond of plan.where) {
    if (type === 'Patient' && cond.kind === 'id' && !cond.not) return cond.ids.map((id) => `Patient/${id}`);
    if (cond.kind !== 'reference' || !PATIENT_KEY_PARAMS[type]?.includes(cond.param) || cond.values.length === 0) continue;
    if (cond.values.every((v) => v.targetType === 'Patient' && v.targetId !== undefined && v.url === undefined)) return cond.values.map((v) => `Patient/${v.targetId}`);
  }
  return undefined;
}

/** The filter selecting the current, live resources a plan matches. */
export async function compileFilter(plan: SearchPlan, resolve: Resolve): Promise<Filter> {
  const where = await new Compiler(resolve).where(plan.where, plan.types);
  const keys = patientKeys(plan);
  return and([{ type: { $in: plan.types } }, ...(keys ? [{ patient: { $in: keys } }] : []), { deleted: false }, where]);
}
