// store/mongo/page: one page of a search as an aggregation pipeline: the compiled filter, the sort
// keys (computed from the index entries for _sort on a parameter, as the embedded engine orders
// them: smallest value ascending, largest descending, missing last), the keyset condition of a
// page cursor, the limit. Cursors have the embedded engine's form: the sort key values of a
// page's last row, the id last.

import type { SearchPlan, SortKey } from '../../search/types.js';
import { entryKindOf } from '../kinds.js';
import { compileFilter, type Filter, type Resolve, type Stage } from './compile.js';
import { ENTRY_ARRAYS } from './documents.js';

/** A sort key: a field of the document, or one computed by $addFields. */
interface Key {
  field: string;
  descending: boolean;
  expression?: unknown;
}

// The column a sort uses per entry kind (dates: the end the direction looks at).
function sortValue(kind: keyof typeof ENTRY_ARRAYS, descending: boolean): unknown {
  switch (kind) {
    case 'token':
      return '$$this.c';
    case 'date':
      return descending ? '$$this.hi' : '$$this.lo';
    case 'reference':
      return { $ifNull: [{ $concat: ['$$this.tt', '/', '$$this.ti'] }, '$$this.u'] };
    default:
      return '$$this.v';
  }
}

/** The sort key of `key`: the smallest (ascending) or largest (descending) value of the parameter; missing values sort last. */
function sortKey(key: SortKey, types: string[], i: number): Key {
  if (key.param === '_id') return { field: 'id', descending: key.descending };
  if (key.param === '_lastUpdated') return { field: 'lastUpdated', descending: key.descending };
  const kind = entryKindOf(types, key.param);
  const numeric = kind === 'date' || kind === 'number' || kind === 'quantity';
  const missing = key.descending ? (numeric ? -9e300 : '') : numeric ? 9e300 : '\u{10FFFF}';
  const values = { $map: { input: { $filter: { input: { $ifNull: [`$${ENTRY_ARRAYS[kind]}`, []] }, cond: { $eq: ['$$this.p', key.param] } } }, in: sortValue(kind, key.descending) } };
  return { field: `k${i}`, descending: key.descending, expression: { $ifNull: [{ [key.descending ? '$max' : '$min']: values }, missing] } };
}

export interface CompiledSearch {
  filter: Filter;
  /** The aggregation: $match, computed sort keys, the cursor's keyset, $sort, $limit. */
  pipeline: Stage[];
  /** Reads a page cursor's values off a result document. */
  cursorOf(doc: Record<string, unknown>): unknown[];
}

/** The fields of a current document a search result needs (index arrays stay on the server). */
export const RESULT_PROJECTION = { type: 1, id: 1, version: 1, lastUpdated: 1, deleted: 1, creator: 1, resource: 1 } as const;

/**
 * Compiles a search. `after` is a decoded cursor: the sort key values of the last row of the
 * previous page, in the same form as the SQLite engine's (keyset paging, stable while data change).
 */
export async function compileSearch(plan: SearchPlan, resolve: Resolve, after: unknown[] | undefined, limit: number): Promise<CompiledSearch> {
  const filter = await compileFilter(plan, resolve);
  // The id breaks ties, so that the order is total and a cursor names one position.
  const keys = [...plan.sort, { param: '_id', descending: false }].map((key, i) => sortKey(key, plan.types, i));
  // A field sorted on twice (`_sort=_id` then the tie-breaker) gets a computed copy: each key needs its own field.
  keys.forEach((key, i) => {
    if (key.expression === undefined && keys.slice(0, i).some((k) => k.field === key.field)) Object.assign(key, { expression: `$${key.field}`, field: `k${i}` });
  });
  const pipeline: Stage[] = [{ $match: filter }];
  const computed = keys.filter((k) => k.expression !== undefined);
  if (computed.length > 0) pipeline.push({ $addFields: Object.fromEntries(computed.map((k) => [k.field, k.expression])) });
  if (after) {
    if (after.length !== keys.length) throw new RangeError('bad search cursor');
    // (k0 > a0) OR (k0 = a0 AND k1 > a1) OR ..., with $lt for descending keys.
    pipeline.push({
      $match: {
        $or: keys.map((key, i) => ({
          ...Object.fromEntries(keys.slice(0, i).map((k, j) => [k.field, after[j]])),
          [key.field]: { [key.descending ? '$lt' : '$gt']: after[i] },
        })),
      },
    });
  }
  pipeline.push({ $sort: Object.fromEntries(keys.map((k) => [k.field, k.descending ? -1 : 1])) });
  pipeline.push({ $limit: limit });
  pipeline.push({ $project: { ...RESULT_PROJECTION, ...Object.fromEntries(computed.map((k) => [k.field, 1])) } });
  return { filter, pipeline, cursorOf: (doc) => keys.map((k) => doc[k.field]) };
}
