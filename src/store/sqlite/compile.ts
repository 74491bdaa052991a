// store/sqlite/compile: turns a SearchPlan into a SQL condition over resource_current (alias c).
// Values are always bound parameters, never spliced into the SQL text.

import type { Clause, SearchPlan, TokenValue } from '../../search/plan.js';

export interface SqlCondition {
  sql: string;
  params: unknown[];
}

function tokenMatch(value: TokenValue, params: unknown[]): string {
  const parts: string[] = [];
  if (value.code !== undefined) {
    parts.push('t.code = ?');
    params.push(value.code);
  }
  if (value.system === null) parts.push('t.system IS NULL');
  else if (value.system !== undefined) {
    parts.push('t.system = ?');
    params.push(value.system);
  }
  return parts.length > 0 ? `(${parts.join(' AND ')})` : '1';
}

function clauseSql(clause: Clause, params: unknown[]): string {
  switch (clause.kind) {
    case 'id':
      params.push(...clause.ids);
      return `c.id IN (${clause.ids.map(() => '?').join(', ')})`;
    case 'token': {
      params.push(clause.param);
      const alternatives = clause.values.map((v) => tokenMatch(v, params));
      return `EXISTS (SELECT 1 FROM idx_token t WHERE t.type = c.type AND t.id = c.id AND t.param = ? AND (${alternatives.join(' OR ')}))`;
    }
    default: {
      const unreachable: never = clause;
      throw new Error(`unknown clause ${JSON.stringify(unreachable)}`);
    }
  }
}

/** The WHERE condition selecting the current, non-deleted resources that match the plan. */
export function compileSearch(plan: SearchPlan): SqlCondition {
  const params: unknown[] = [plan.type];
  const conditions = ['c.type = ?', 'c.deleted = 0'];
  for (const clause of plan.clauses) conditions.push(clauseSql(clause, params));
  return { sql: conditions.join(' AND '), params };
}
