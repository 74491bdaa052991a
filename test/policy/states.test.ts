// policy/index: the per-patient consent state cache that decide() and pinned searches read.
import t from 'tap';
import type { Store } from '../../src/store/port.js';
import { Policy } from '../../src/policy/index.js';

/** A store that knows one Patient, p1, and counts the reads. */
function countingStore() {
  const reads: string[] = [];
  const store = {
    async read(type: string, id: string) {
      reads.push(`${type}/${id}`);
      return id === 'p1' ? { kind: 'found', version: { type, id, versionId: 1, lastUpdated: '2026-01-01T00:00:00Z', resource: { resourceType: 'Patient', id } } } : { kind: 'missing' };
    },
    async search() {
      return { matches: [] };
    },
  } as unknown as Store;
  return { store, reads };
}

t.test('the state of an existing patient is read once, until their Patient or Consents are written', async (t) => {
  const { store, reads } = countingStore();
  const policy = new Policy(store);
  await policy.stateOf('p1');
  await policy.stateOf('p1');
  t.same(reads, ['Patient/p1']);
  policy.written([{ resourceType: 'Consent', status: 'active', scope: {}, category: [], patient: { reference: 'Patient/p1' } } as never]);
  await policy.stateOf('p1');
  t.same(reads, ['Patient/p1', 'Patient/p1']);
});

t.test('the state of a patient that does not exist is not kept', async (t) => {
  const { store, reads } = countingStore();
  const policy = new Policy(store);
  t.equal((await policy.stateOf('nobody')).patient, undefined);
  await policy.stateOf('nobody');
  t.same(reads, ['Patient/nobody', 'Patient/nobody'], 'any search can name a patient: such names do not fill the cache');
});

t.test('a state read while a write happened is not kept', async (t) => {
  const { store, reads } = countingStore();
  const policy = new Policy(store);
  const reading = policy.stateOf('p1'); // reads the store, then awaits
  policy.written([{ resourceType: 'Patient', id: 'p1' }]);
  await reading;
  await policy.stateOf('p1');
  t.same(reads, ['Patient/p1', 'Patient/p1'], 'read again after the write');
});
