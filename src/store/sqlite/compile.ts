// store/sqlite/compile: turns a SearchPlan into SQL over resource_current and the idx_* tables:
// a WHERE condition, the ORDER BY of _sort, and the keyset condition of a page cursor. Values are
// always bound parameters, never spliced into the SQL text. The compiler names them (@p1, @p2...)
// so that binding order never depends on where text is assembled; the statements it returns have
// anonymous parameters instead (`?`, bound in text order): SQLite finds a named parameter by a
// linear scan, when it prepares the statement and again when it binds, so that n named parameters
// cost time in n² (4,000 of them, 100 values of 20 parameters: 60 ms), anonymous ones in n.

import { entryKindOf } from '../kinds.js';
import type { Condition, QuantityValue, RangeValue, ReferenceValue, SearchPlan, SortKey, TokenValue } from '../../search/types.js';
import { INDEX_TABLES, type IndexKind } from './schema.js';

export interface Sql {
  sql: string;
  /** The values of the anonymous parameters (`?`), in text order. */
  params: unknown[];
}

/** The statement with the compiler's named parameters replaced by anonymous ones, in text order. */
function anonymous(sql: string, named: Record<string, unknown>): Sql {
  const params: unknown[] = [];
  // No text of the SQL but the parameters has an "@": values are never spliced into it.
  const text = sql.replace(/@(p\d+)\b/g, (_match, name: string) => {
    params.push(named[name]);
    return '?';
  });
  return { sql: text, params };
}

/** Escapes LIKE wildcards: patterns use ESCAPE '\'. */
function like(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`);
}

class Compiler {
  readonly params: Record<string, unknown> = {};
  private bound = 0;
  private aliases = 0;

  bind(value: unknown): string {
    const name = `p${++this.bound}`;
    this.params[name] = value;
    return `@${name}`;
  }

  alias(prefix: string): string {
    return `${prefix}${++this.aliases}`;
  }

  /** The conditions of a plan on the resource_current alias `c`, for the given types. */
  where(conditions: Condition[], c: string, types: string[]): string[] {
    return conditions.map((condition) => this.condition(condition, c, types));
  }

  private condition(cond: Condition, c: string, types: string[]): string {
    switch (cond.kind) {
      case 'id': {
        const list = cond.ids.map((id) => this.bind(id)).join(', ');
        return `${c}.id ${cond.not ? 'NOT IN' : 'IN'} (${list})`;
      }
      case 'missing': {
        // Correlated through the owner index: cheap per row, and never a list of every resource
        // of the type that has the parameter.
        const kind = this.kindOf(types, cond.param);
        const t = this.alias('t');
        const sub = `EXISTS (SELECT 1 FROM ${INDEX_TABLES[kind].table} ${t} WHERE ${t}.type = ${c}.type AND ${t}.id = ${c}.id AND ${t}.param = ${this.bind(cond.param)})`;
        return cond.missing ? `NOT ${sub}` : sub;
      }
      case 'chain': {
        const r = this.alias('r');
        const target = this.alias('c');
        const inner = this.where(cond.where, target, cond.targetTypes);
        if (cond.perRow) {
          // Correlated on the candidate row, through the (type, id, param) owner index.
          return `EXISTS (SELECT 1 FROM idx_reference ${r} JOIN resource_current ${target} ON ${target}.type = ${r}.target_type AND ${target}.id = ${r}.target_id
            WHERE ${r}.type = ${c}.type AND ${r}.id = ${c}.id AND ${r}.param = ${this.bind(cond.param)} AND ${target}.deleted = 0
            AND ${target}.type IN (${cond.targetTypes.map((t) => this.bind(t)).join(', ')})${inner.map((w) => ` AND ${w}`).join('')})`;
        }
        return this.among(c, types, `${r}.type`, `${r}.id`, `FROM idx_reference ${r} JOIN resource_current ${target} ON ${target}.type = ${r}.target_type AND ${target}.id = ${r}.target_id
          WHERE ${r}.param = ${this.bind(cond.param)} AND ${target}.deleted = 0
          AND ${target}.type IN (${cond.targetTypes.map((t) => this.bind(t)).join(', ')})${inner.map((w) => ` AND ${w}`).join('')}`);
      }
      case 'has': {
        const r = this.alias('r');
        const source = this.alias('c');
        const inner = this.where(cond.where, source, [cond.sourceType]);
        return this.among(c, types, `${r}.target_type`, `${r}.target_id`, `FROM idx_reference ${r} JOIN resource_current ${source} ON ${source}.type = ${r}.type AND ${source}.id = ${r}.id
          WHERE ${r}.type = ${this.bind(cond.sourceType)} AND ${r}.param = ${this.bind(cond.param)} AND ${source}.deleted = 0${inner.map((w) => ` AND ${w}`).join('')}`);
      }
      case 'all':
        return cond.of.length === 0 ? '1' : `(${cond.of.map((one) => this.condition(one, c, types)).join(' AND ')})`;
      case 'not':
        return `NOT (${this.condition(cond.condition, c, types)})`;
      case 'types':
        return `${c}.type IN (${cond.types.map((x) => this.bind(x)).join(', ')})`;
      case 'creator':
        return cond.creators.length === 0 ? '0' : `${c}.creator IN (${cond.creators.map((x) => this.bind(x)).join(', ')})`;
      case 'any':
        return cond.of.length === 0 ? '0' : `(${cond.of.map((one) => this.condition(one, c, types)).join(' OR ')})`;
      case 'composite': {
        // One of the values matches when every component matches within one group.
        const alternatives = cond.values.map((components) => this.composite(components, c, types));
        return `(${alternatives.join(' OR ')})`;
      }
      case 'token':
        return this.leaf(cond, c, types, cond.not === true);
      case 'date':
        return cond.param === '_lastUpdated' ? this.lastUpdated(cond.values, c) : this.leaf(cond, c, types, false);
      default:
        return this.leaf(cond, c, types, false);
    }
  }

  // _lastUpdated is the envelope's instant (ISO text of the same shape, so text order is time order).
  private lastUpdated(values: RangeValue[], c: string): string {
    const at = (ms: number) => this.bind(new Date(Math.min(Math.max(ms, -8.64e15), 8.64e15)).toISOString());
    const one = (v: RangeValue): string => {
      const column = `${c}.last_updated`;
      switch (v.prefix) {
        case 'eq':
        case 'ap':
          return `(${column} >= ${at(v.low)} AND ${column} < ${at(v.high)})`;
        case 'ne':
          return `NOT (${column} >= ${at(v.low)} AND ${column} < ${at(v.high)})`;
        case 'gt':
        case 'sa':
          return `${column} >= ${at(v.high)}`;
        case 'ge':
          return `${column} >= ${at(v.low)}`;
        case 'lt':
        case 'eb':
          return `${column} < ${at(v.low)}`;
        case 'le':
          return `${column} < ${at(v.high)}`;
      }
    };
    return `(${values.map(one).join(' OR ')})`;
  }

  private composite(components: Condition[], c: string, types: string[]): string {
    // Nested: component i requires component i+1 in the same group of the same resource.
    let groupOf: string | undefined;
    const opened: string[] = [];
    for (const component of components) {
      const { kind, predicate } = this.leafParts(component);
      const t = this.alias('t');
      const param = (component as { param: string }).param;
      const sameGroup = groupOf ? ` AND ${t}.grp = ${groupOf}` : '';
      opened.push(`EXISTS (SELECT 1 FROM ${INDEX_TABLES[kind].table} ${t} WHERE ${t}.type = ${c}.type AND ${t}.id = ${c}.id AND ${t}.param = ${this.bind(param)}${sameGroup} AND ${predicate(t)}`);
      groupOf = `${t}.grp`;
    }
    return opened.join(' AND ') + ')'.repeat(opened.length);
  }

  /** A leaf condition: the resource owns an entry of the parameter that matches. */
  private leaf(cond: Condition, c: string, types: string[], negate: boolean): string {
    const { kind, param, predicate } = this.leafParts(cond);
    const sub = this.owned(kind, param, c, types, predicate);
    return negate ? `NOT (${sub})` : sub;
  }

  /** The resources owning an entry of the parameter that matches: driven by the lookup index. */
  private owned(kind: IndexKind, param: string, c: string, types: string[], predicate: (t: string) => string): string {
    const t = this.alias('t');
    return this.among(c, types, `${t}.type`, `${t}.id`, `FROM ${INDEX_TABLES[kind].table} ${t} WHERE ${t}.param = ${this.bind(param)} AND ${predicate(t)}`);
  }

  /**
   * `(c.type, c.id) IN (SELECT type, id <select>)`, `select` being a FROM ... WHERE ... to which
   * the types are added. With one type, the same set written `c.type = X AND c.id IN (SELECT id
   * ... AND type = X)`, which SQLite plans far better than a row value: the count of the policy
   * benchmark's search without the policy took 0.27 ms against 0.65, and SQLite copies the
   * subquery of a row value once per column, so that a chain n levels deep was compiled 2^(n-1)
   * times (64 chains 4 deep: 250 ms a search).
   */
  private among(c: string, types: string[], typeColumn: string, idColumn: string, select: string): string {
    if (types.length === 1) {
      const type = this.bind(types[0]);
      return `(${c}.type = ${type} AND ${c}.id IN (SELECT ${idColumn} ${select} AND ${typeColumn} = ${type}))`;
    }
    return `(${c}.type, ${c}.id) IN (SELECT ${typeColumn}, ${idColumn} ${select} AND ${typeColumn} IN (${types.map((type) => this.bind(type)).join(', ')}))`;
  }

  private kindOf(types: string[], param: string): IndexKind {
    return entryKindOf(types, param);
  }

  private leafParts(cond: Condition): { kind: IndexKind; param: string; predicate: (t: string) => string } {
    switch (cond.kind) {
      case 'token':
        return { kind: 'token', param: cond.param, predicate: (t) => this.tokens(cond.values, t) };
      case 'token-text':
        // :text matches the start of any word of the text (normalised like strings).
        return { kind: 'token', param: cond.param, predicate: (t) => this.anyOf(cond.texts, (v) => `(${t}.text LIKE ${this.bind(`${like(v)}%`)} ESCAPE '\\' OR ${t}.text LIKE ${this.bind(`% ${like(v)}%`)} ESCAPE '\\')`) };
      case 'of-type':
        return {
          kind: 'token',
          param: `${cond.param}:of-type`,
          predicate: (t) => this.anyOf(cond.values, (v) => `(${t}.system = ${this.bind(v.typeSystem)} AND ${t}.code = ${this.bind(`${v.typeCode}|${v.value}`)})`),
        };
      case 'string':
        return {
          kind: 'string',
          param: cond.param,
          predicate: (t) =>
            this.anyOf(cond.values, (v) =>
              cond.match === 'exact' ? `${t}.exact = ${this.bind(v)}` : `${t}.value LIKE ${this.bind(cond.match === 'contains' ? `%${like(v)}%` : `${like(v)}%`)} ESCAPE '\\'`,
            ),
        };
      case 'date':
        return { kind: 'date', param: cond.param, predicate: (t) => this.anyOf(cond.values, (v) => this.date(v, t)) };
      case 'number':
        return { kind: 'number', param: cond.param, predicate: (t) => this.anyOf(cond.values, (v) => this.number(v, `${t}.value`)) };
      case 'quantity':
        return { kind: 'quantity', param: cond.param, predicate: (t) => this.anyOf(cond.values, (v) => this.quantity(v, t)) };
      case 'reference':
        return { kind: 'reference', param: cond.param, predicate: (t) => this.references(cond.values, t) };
      case 'uri':
        return {
          kind: 'uri',
          param: cond.param,
          predicate: (t) =>
            this.anyOf(cond.values, (v) => {
              if (cond.match === 'below') return `${t}.value LIKE ${this.bind(`${like(v)}%`)} ESCAPE '\\'`;
              if (cond.match === 'above') return `substr(${this.bind(v)}, 1, length(${t}.value)) = ${t}.value`;
              return `${t}.value = ${this.bind(v)}`;
            }),
        };
      default:
        throw new Error(`condition ${cond.kind} is not a leaf`);
    }
  }

  private anyOf<T>(values: T[], one: (value: T) => string): string {
    return `(${values.map(one).join(' OR ')})`;
  }

  /**
   * Token values: the codes of each system (or of none, or of any) as one IN list, like
   * references: SQLite plans an OR chain of AND terms in time growing with the square of their
   * number in the statement (9 parameters of 100 codes: 200 ms a search, now 20).
   */
  private tokens(values: TokenValue[], t: string): string {
    const codesBySystem = new Map<string | null | undefined, string[]>();
    const systemsOnly: TokenValue[] = [];
    for (const v of values) {
      if (v.code === undefined) systemsOnly.push(v);
      else if (codesBySystem.has(v.system)) codesBySystem.get(v.system)?.push(v.code);
      else codesBySystem.set(v.system, [v.code]);
    }
    const terms = [...codesBySystem].map(([system, codes]) => this.token(system, `${t}.code IN (${codes.map((code) => this.bind(code)).join(', ')})`, t));
    return `(${[...terms, ...systemsOnly.map((v) => this.token(v.system, undefined, t))].join(' OR ')})`;
  }

  /** A token condition: `code` (SQL, if any) within `system` (undefined: any, null: none). */
  private token(system: string | null | undefined, code: string | undefined, t: string): string {
    const parts = code === undefined ? [] : [code];
    if (system === null) parts.push(`${t}.system IS NULL`);
    else if (system !== undefined) parts.push(`${t}.system = ${this.bind(system)}`);
    return parts.length > 0 ? `(${parts.join(' AND ')})` : '1';
  }

  // R4 3.1.1.4.2: prefixes compare the implicit range of the search value [low, high) with the
  // range of the stored value [t.low, t.high] (inclusive, so its exclusive end is t.high + 1).
  private date(v: RangeValue, t: string): string {
    const low = () => this.bind(v.low);
    const high = () => this.bind(v.high);
    switch (v.prefix) {
      case 'eq':
        return `(${t}.low >= ${low()} AND ${t}.high < ${high()})`;
      case 'ne':
        return `NOT (${t}.low >= ${low()} AND ${t}.high < ${high()})`;
      case 'gt':
        return `${t}.high >= ${high()}`;
      case 'ge':
        return `${t}.high >= ${low()}`;
      case 'lt':
        return `${t}.low < ${low()}`;
      case 'le':
        return `${t}.low < ${high()}`;
      case 'sa':
        return `${t}.low >= ${high()}`;
      case 'eb':
        return `${t}.high < ${low()}`;
      case 'ap':
        // The parser has already widened the range of an approximate value: overlap it.
        return `(${t}.low < ${high()} AND ${t}.high >= ${low()})`;
    }
  }

  // Numbers: eq and ne use the implicit range of the value as written; the others compare values.
  private number(v: RangeValue, column: string): string {
    switch (v.prefix) {
      case 'eq':
        return `(${column} >= ${this.bind(v.low)} AND ${column} < ${this.bind(v.high)})`;
      case 'ne':
        return `NOT (${column} >= ${this.bind(v.low)} AND ${column} < ${this.bind(v.high)})`;
      case 'gt':
      case 'sa':
        return `${column} > ${this.bind(v.value)}`;
      case 'lt':
      case 'eb':
        return `${column} < ${this.bind(v.value)}`;
      case 'ge':
        return `${column} >= ${this.bind(v.value)}`;
      case 'le':
        return `${column} <= ${this.bind(v.value)}`;
      case 'ap':
        return `(${column} >= ${this.bind(v.low)} AND ${column} < ${this.bind(v.high)})`;
    }
  }

  private quantity(v: QuantityValue, t: string): string {
    const parts = [this.number(v, `${t}.value`)];
    if (v.system === null) parts.push(`${t}.system IS NULL`);
    else if (v.system !== undefined) parts.push(`${t}.system = ${this.bind(v.system)}`);
    if (v.code !== undefined) parts.push(`(${t}.code = ${this.bind(v.code)} OR ${t}.unit = ${this.bind(v.code)})`);
    return `(${parts.join(' AND ')})`;
  }

  /**
   * Reference values: Type/id and bare ids as one IN list per type (an index probe per value, and
   * no OR chain, which SQLite plans in time growing faster than its length and refuses beyond
   * 1,000 terms: _revinclude searches the targets of a whole page), URLs one by one.
   */
  private references(values: ReferenceValue[], t: string): string {
    const idsByType = new Map<string | undefined, string[]>();
    const urls: ReferenceValue[] = [];
    for (const v of values) {
      if (v.url !== undefined || v.targetId === undefined) urls.push(v);
      else if (idsByType.has(v.targetType)) idsByType.get(v.targetType)?.push(v.targetId);
      else idsByType.set(v.targetType, [v.targetId]);
    }
    const terms = [...idsByType].map(([type, ids]) => {
      const list = `${t}.target_id IN (${ids.map((id) => this.bind(id)).join(', ')})`;
      return type === undefined ? list : `(${list} AND ${t}.target_type = ${this.bind(type)})`;
    });
    return `(${[...terms, ...urls.map((v) => this.reference(v, t))].join(' OR ')})`;
  }

  private reference(v: ReferenceValue, t: string): string {
    const parts: string[] = [];
    if (v.targetId !== undefined) parts.push(`${t}.target_id = ${this.bind(v.targetId)}`);
    if (v.targetType !== undefined) parts.push(`${t}.target_type = ${this.bind(v.targetType)}`);
    const local = parts.length > 0 ? `(${parts.join(' AND ')})` : undefined;
    if (v.url !== undefined) {
      const url = `${t}.url = ${this.bind(v.url)}`;
      return local ? `(${local} OR ${url})` : url;
    }
    return local ?? '0';
  }

  /** The sort expression of one key on alias c; missing values sort last in both directions. */
  sortExpression(key: SortKey, c: string, types: string[]): string {
    if (key.param === '_id') return `${c}.id`;
    if (key.param === '_lastUpdated') return `${c}.last_updated`;
    const kind = this.kindOf(types, key.param);
    const { table } = INDEX_TABLES[kind];
    const t = this.alias('s');
    const column = { token: 'code', string: 'value', date: key.descending ? 'high' : 'low', number: 'value', quantity: 'value', reference: undefined, uri: 'value' }[kind];
    // A reference sorts by Type/id, or by its URL when it has none.
    const value = column === undefined ? `coalesce(${t}.target_type || '/' || ${t}.target_id, ${t}.url)` : `${t}.${column}`;
    const aggregate = key.descending ? 'max' : 'min';
    const numeric = kind === 'date' || kind === 'number' || kind === 'quantity';
    const missing = key.descending ? (numeric ? '-9e300' : "''") : numeric ? '9e300' : "char(1114111)";
    // INDEXED BY: left alone, SQLite walks the (type, param, value) index of the whole type.
    return `coalesce((SELECT ${aggregate}(${value}) FROM ${table} ${t} INDEXED BY ${table}_owner WHERE ${t}.type = ${c}.type AND ${t}.id = ${c}.id AND ${t}.param = ${this.bind(key.param)}), ${missing})`;
  }
}

export interface CompiledSearch {
  /** SELECT of matching current rows with their sort keys k0..kn (the last one is the id). */
  select: Sql;
  /** The count of every match. */
  count: Sql;
  /** The count of the matches, stopping at `limit` (SearchQuery.totalAtMost). */
  countAtMost(limit: number): Sql;
  keys: SortKey[];
}

/**
 * Compiles a plan. `after` is a decoded cursor: the sort key values of the last row of the
 * previous page; the page then continues strictly after it (keyset paging: stable while data
 * changes, no offsets).
 */
/** The condition selecting the current, non-deleted resources a plan matches (alias c), alone. */
export function compileRestriction(plan: SearchPlan): Sql {
  const compiler = new Compiler();
  const conditions = [`c.type IN (${plan.types.map((t) => compiler.bind(t)).join(', ')})`, 'c.deleted = 0', ...compiler.where(plan.where, 'c', plan.types)];
  return anonymous(conditions.join(' AND '), compiler.params);
}

export function compileSearch(plan: SearchPlan, after?: unknown[], limit?: number): CompiledSearch {
  const compiler = new Compiler();
  // The id breaks ties, so that the order is total and a cursor names one position.
  const keys: SortKey[] = [...plan.sort, { param: '_id', descending: false }];
  // A cursor of another search (other sort keys) names no position in this one.
  if (after && after.length !== keys.length) throw new RangeError('bad search cursor: not one of this search');
  const sortColumns = keys.map((key, i) => `${compiler.sortExpression(key, 'c', plan.types)} AS k${i}`);
  const conditions = [`c.type IN (${plan.types.map((t) => compiler.bind(t)).join(', ')})`, 'c.deleted = 0', ...compiler.where(plan.where, 'c', plan.types)];
  const inner = `SELECT c.type, c.id, c.seq, c.creator, ${sortColumns.join(', ')} FROM resource_current c WHERE ${conditions.join(' AND ')}`;
  let keyset = '';
  if (after) {
    // (k0 > a0) OR (k0 = a0 AND k1 > a1) OR ..., with < for descending keys.
    const alternatives = keys.map((key, i) => {
      const equal = keys.slice(0, i).map((_k, j) => `m.k${j} = ${compiler.bind(after[j])}`);
      return `(${[...equal, `m.k${i} ${key.descending ? '<' : '>'} ${compiler.bind(after[i])}`].join(' AND ')})`;
    });
    keyset = `WHERE ${alternatives.join(' OR ')}`;
  }
  const order = keys.map((key, i) => `m.k${i} ${key.descending ? 'DESC' : 'ASC'}`).join(', ');
  const limitSql = limit !== undefined ? ` LIMIT ${compiler.bind(limit)}` : '';
  return {
    select: anonymous(`SELECT m.*, v.version, v.last_updated, v.deleted, v.content FROM (${inner}) m JOIN resource_version v ON v.seq = m.seq ${keyset} ORDER BY ${order}${limitSql}`, compiler.params),
    count: anonymous(`SELECT count(*) AS n FROM resource_current c WHERE ${conditions.join(' AND ')}`, compiler.params),
    countAtMost: (at) => {
      const counted = anonymous(`SELECT count(*) AS n FROM (SELECT 1 FROM resource_current c WHERE ${conditions.join(' AND ')} LIMIT ?)`, compiler.params);
      return { sql: counted.sql, params: [...counted.params, at] };
    },
    keys,
  };
}
