// audit/id: the ids of AuditEvents. Time-ordered, so that the records of one moment sit next to
// each other in every B-tree keyed by id (resource_current, the idx_* owner indexes): a group
// commit then dirties a few pages at the right edge of those trees instead of one random page per
// record and tree, which is what the commit of a read record mostly cost (docs/performance.md).

import { randomBytes } from 'node:crypto';

// 8 base-36 digits of milliseconds last until 5188; fixed width keeps string order = time order.
const TIME_WIDTH = 9;

/**
 * A minter of AuditEvent ids: time (ms, base 36), a counter within the millisecond, and `origin`,
 * which keeps apart the ids of minters that run at the same time (a process's random part; the
 * dataset generator's seed, so that its records are the same on every run).
 */
export function auditEventIds(origin: string): (now?: number) => string {
  let lastTime = 0;
  let counter = 0;
  return (now = Date.now()) => {
    if (now > lastTime) {
      lastTime = now;
      counter = 0;
    } else counter++;
    return `${lastTime.toString(36).padStart(TIME_WIDTH, '0')}-${counter.toString(36).padStart(4, '0')}-${origin}`;
  };
}

/** A new AuditEvent id of this process: one random part per process, so two servers on one database never mint the same id. */
export const auditEventId = auditEventIds(randomBytes(6).toString('hex'));
