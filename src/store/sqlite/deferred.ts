// store/sqlite/deferred: what deferred index materialisation needs besides the store itself.
// A create op with deferIndex (an AuditEvent) commits its version with a row in index_pending
// instead of its ~19 index rows, which would land at a different leaf page in 3-4 B-trees each
// (most of the pages of the commit a read waits for: docs/performance.md). The writer writes the
// rows later, many records per transaction, and always before a search that could read them;
// after a crash, the next open writes them from the entries the pending row keeps (the caller's:
// the engine never computes entries itself).

import type { Condition, SearchPlan } from '../../search/types.js';

/**
 * Whether a search plan could read index rows of resources of these types: its own types, a
 * chain's targets, a _has source, at any depth. Conservative: an empty list of types counts.
 */
export function readsIndexOf(plan: SearchPlan, types: ReadonlySet<string>): boolean {
  if (types.size === 0) return false;
  if (plan.types.length === 0 || plan.types.some((t) => types.has(t))) return true;
  return plan.where.some((condition) => conditionReads(condition, types));
}

function conditionReads(condition: Condition, types: ReadonlySet<string>): boolean {
  switch (condition.kind) {
    case 'chain':
      return condition.targetTypes.length === 0 || condition.targetTypes.some((t) => types.has(t)) || condition.where.some((c) => conditionReads(c, types));
    case 'has':
      return condition.sourceType === '*' || types.has(condition.sourceType) || condition.where.some((c) => conditionReads(c, types));
    case 'any':
    case 'all':
      return condition.of.some((c) => conditionReads(c, types));
    case 'not':
      return conditionReads(condition.condition, types);
    case 'composite':
      return condition.values.some((values) => values.some((c) => conditionReads(c, types)));
    default:
      return false;
  }
}
