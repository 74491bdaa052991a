import t from 'tap';
import { auditEventId } from '../../src/audit/id.js';

t.test('AuditEvent ids are valid FHIR ids, unique, and sort in the order they were made', async (t) => {
  const ids = [auditEventId(Date.UTC(2026, 10, 27, 14, 0, 0, 999)), ...Array.from({ length: 5000 }, () => auditEventId())];
  t.equal(new Set(ids).size, ids.length, 'no id repeats, even within one millisecond');
  t.ok(ids.every((id) => /^[A-Za-z0-9\-.]{1,64}$/.test(id)), 'every id matches the R4 id pattern');
  t.same([...ids].sort(), ids, 'string order is creation order');
});

t.test('a clock that goes back does not break the order', async (t) => {
  const later = auditEventId(Date.now() + 60_000);
  const now = auditEventId(Date.now());
  t.ok(now > later, `${now} sorts after ${later}`);
});
