// audit/id: the ids of AuditEvents. Time-ordered, so that the records of one moment sit next to
// each other in every B-tree keyed by id (resource_current, the idx_* owner indexes): a group
// commit then dirties a few pages at the right edge of those trees instead of one random page per
// record and tree, which is what the commit of a read record mostly cost (docs/performance.md).

import { randomBytes } from 'node:crypto';

// 8 base-36 digits of milliseconds last until 5188; fixed width keeps string order = time order.
const TIME_WIDTH = 9;
// One random part per process: two servers on one database never mint the same id.
const PROCESS = randomBytes(6).toString('hex');
let lastTime = 0;
let counter = 0;

/** A new AuditEvent id: time (ms, base 36), a counter within the millisecond, this process's random part. */
export function auditEventId(now = Date.now()): string {
  if (now > lastTime) {
    lastTime = now;
    counter = 0;
  } else counter++;
  return `${lastTime.toString(36).padStart(TIME_WIDTH, '0')}-${counter.toString(36).padStart(4, '0')}-${PROCESS}`;
}
