// The group commit of read records (audit/group-commit): records written at the same time go
// together in one write of the store; with an engine that has no journal (MongoDB), that write is
// one transaction whose records are searchable at once; with one, they go to Store.journal().
import t from 'tap';
import type { AuditEvent } from '@medplum/fhirtypes';
import { GroupCommit } from '../../src/audit/group-commit.js';
import { sharedAuditEvent, type AuditFacts } from '../../src/audit/event.js';
import { auditEventId } from '../../src/audit/id.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import type { JournalEntry, Store, WriteOp } from '../../src/store/port.js';

const AT = '2026-11-27T16:30:00.000Z';

function record(patient: string): AuditEvent & { id: string } {
  const facts: AuditFacts = {
    actor: { kind: 'practitioner', practitionerId: 'gp', profession: '10', purposeOfUse: 'TREAT', clientId: 'app', subject: 'gp', issuer: 'urn:test', scopes: [] } as unknown as AuditFacts['actor'],
    interaction: 'read',
    outcome: 'success',
    patients: [patient],
    resources: ['DocumentReference/d1'],
    recorded: AT,
    server: 'http://carnet.test/fhir',
  };
  return { ...sharedAuditEvent(facts), id: auditEventId() };
}

const byPatient = (patient: string) => ({ types: ['AuditEvent'], where: [{ kind: 'reference' as const, param: 'patient', values: [{ targetType: 'Patient', targetId: patient }] }], sort: [] });

t.test('without a journal, concurrent records go in one transaction and are searchable at once', async (t) => {
  const sqlite = new SqliteStore({ dataDir: ':memory:' });
  t.teardown(() => sqlite.close());
  const transactions: WriteOp[][] = [];
  // The MongoDB engine's shape: transact() only.
  const store = {
    name: 'no-journal',
    clients: sqlite.clients,
    blobs: sqlite.blobs,
    read: sqlite.read.bind(sqlite),
    readVersion: sqlite.readVersion.bind(sqlite),
    history: sqlite.history.bind(sqlite),
    search: sqlite.search.bind(sqlite),
    stamps: sqlite.stamps.bind(sqlite),
    changes: sqlite.changes.bind(sqlite),
    cursor: sqlite.cursor.bind(sqlite),
    queue: sqlite.queue,
    lease: sqlite.lease.bind(sqlite),
    transact: (ops: WriteOp[], at: string) => {
      transactions.push(ops);
      return sqlite.transact(ops, at);
    },
    close: () => sqlite.close(),
  } satisfies Store;
  const log = new GroupCommit(store, () => AT);
  await Promise.all(['p1', 'p1', 'p2', 'p1'].map((p) => log.write(record(p))));
  t.equal(transactions.length, 1, 'one transaction for the four records');
  t.equal(transactions[0].length, 4);
  t.ok(transactions[0].every((op) => op.kind === 'create' && op.index.length > 5), 'each with its index entries');
  const [first, second] = transactions[0];
  const typeOf = (op: WriteOp) => (op.kind === 'create' && op.resource.resourceType === 'AuditEvent' ? op.resource.type : undefined);
  t.not(typeOf(first), typeOf(second), 'each record is its own copy, not the shared codings');
  t.equal((await store.search(byPatient('p1'), { count: 0, total: true })).total, 3, "the patient's records are found");
});

t.test('with a journal, concurrent records go in one journal write', async (t) => {
  const sqlite = new SqliteStore({ dataDir: ':memory:' });
  t.teardown(() => sqlite.close());
  const writes: JournalEntry[][] = [];
  const store: Store = Object.assign(Object.create(sqlite) as SqliteStore, {
    journal: (entries: JournalEntry[], at: string) => {
      writes.push(entries);
      return sqlite.journal(entries, at);
    },
  });
  const log = new GroupCommit(store, () => AT);
  await Promise.all(['p1', 'p2', 'p1'].map((p) => log.write(record(p))));
  t.equal(writes.length, 1, 'one journal write');
  t.same(writes[0].map((e) => e.creator), ['carnet:audit', 'carnet:audit', 'carnet:audit']);
  t.ok(writes[0].every((e) => e.index.length > 5), 'each with its index entries, computed here and not by the store');
  t.equal((await sqlite.search(byPatient('p1'), { count: 0, total: true })).total, 2);
});
