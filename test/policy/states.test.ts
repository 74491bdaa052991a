// policy/index: the per-patient consent state cache that decide() and pinned searches read, keyed
// on the patient's stamp (Store.stamps), which any process's write of their Patient or Consents bumps.
import t from 'tap';
import type { Store } from '../../src/store/port.js';
import { consentStamp, Policy, stampsOf } from '../../src/policy/index.js';

/** A store that knows one Patient, p1, counts the reads, and whose stamps a test sets. */
function countingStore() {
  const reads: string[] = [];
  const stamps = new Map<string, number>();
  const store = {
    async read(type: string, id: string) {
      reads.push(`${type}/${id}`);
      return id === 'p1' ? { kind: 'found', version: { type, id, versionId: 1, lastUpdated: '2026-01-01T00:00:00Z', resource: { resourceType: 'Patient', id } } } : { kind: 'missing' };
    },
    async search() {
      return { matches: [] };
    },
    async stamps(keys: string[]) {
      return keys.map((key) => stamps.get(key) ?? 0);
    },
  } as unknown as Store;
  const bump = (patientId: string) => stamps.set(consentStamp(patientId), (stamps.get(consentStamp(patientId)) ?? 0) + 1);
  return { store, reads, bump };
}

t.test('the state of an existing patient is read once, until their stamp changes', async (t) => {
  const { store, reads, bump } = countingStore();
  const policy = new Policy(store);
  await policy.stateOf('p1');
  await policy.stateOf('p1');
  t.same(reads, ['Patient/p1']);
  bump('p2');
  await policy.stateOf('p1');
  t.same(reads, ['Patient/p1'], "another patient's stamp changes nothing");
  bump('p1'); // a write through any process
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

t.test('a state read while a write commits is kept with the stamp read before it, so it is read again', async (t) => {
  const { store, reads, bump } = countingStore();
  const policy = new Policy(store);
  const reading = policy.stateOf('p1'); // reads the stamp, then the state
  bump('p1'); // committed while the state is being read
  await reading;
  await policy.stateOf('p1');
  t.same(reads, ['Patient/p1', 'Patient/p1'], 'read again after the write');
});

t.test('the stamps a write bumps: each patient whose Patient or Consents it writes, before and after', async (t) => {
  const consent = (patient: string) => ({ resourceType: 'Consent', status: 'active', scope: {}, category: [], patient: { reference: `Patient/${patient}` } }) as never;
  t.same(stampsOf([consent('p1')]), ['consent:Patient/p1']);
  t.same(stampsOf([consent('p1'), consent('p2')]), ['consent:Patient/p1', 'consent:Patient/p2'], 'a Consent moved to another patient changes both');
  t.same(stampsOf([{ resourceType: 'Patient', id: 'p3' }, undefined]), ['consent:Patient/p3']);
  t.same(stampsOf([{ resourceType: 'Observation', status: 'final', code: {}, subject: { reference: 'Patient/p1' } } as never]), [], 'other types change no consent state');
});
