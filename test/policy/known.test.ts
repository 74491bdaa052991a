// policy/known: which patients a search is pinned to, and when their conditions are decided on
// their consent state instead of by the query for every candidate row.
import t from 'tap';
import type { Condition } from '../../src/search/types.js';
import type { Actor } from '../../src/auth/actor.js';
import { pinnedPatients, type KnownPatients } from '../../src/policy/known.js';
import { policyConditions } from '../../src/policy/restrict.js';
import { stateOf } from '../../src/policy/consents.js';
import { readableTypes } from '../../src/policy/matrix.js';
import { block, emergencyOff, mask, permit } from './fixture.js';

const ref = (param: string, ...values: { targetType?: string; targetId?: string; url?: string }[]): Condition => ({ kind: 'reference', param, values });
const patient = (id: string) => ({ targetType: 'Patient', targetId: id });

t.test('a patient criterion on the patient parameter, or on one narrowing it to Patients, pins the search', async (t) => {
  t.same(pinnedPatients('DocumentReference', [ref('patient', patient('p1'))]), ['p1'], 'patient narrows subject');
  t.same(pinnedPatients('DocumentReference', [ref('subject', patient('p1'), patient('p2'), patient('p1'))]), ['p1', 'p2'], 'subject itself, deduplicated');
  t.same(pinnedPatients('Observation', [ref('patient', patient('p1'))]), ['p1']);
  t.same(pinnedPatients('AllergyIntolerance', [ref('patient', patient('p1'))]), ['p1']);
  t.same(pinnedPatients('DocumentReference', [ref('subject', patient('p1'), patient('p2')), ref('patient', patient('p2'))]), ['p2'], 'the narrowest of several criteria');
});

t.test('other criteria pin nothing', async (t) => {
  t.equal(pinnedPatients('DocumentReference', []), undefined, 'no criteria');
  t.equal(pinnedPatients('DocumentReference', [ref('author', patient('p1'))]), undefined, 'author is not the patient parameter');
  t.equal(pinnedPatients('DocumentReference', [ref('subject', { targetId: 'p1' })]), undefined, 'an id of no given type');
  t.equal(pinnedPatients('DocumentReference', [ref('subject', patient('p1'), { targetType: 'Group', targetId: 'g1' })]), undefined, 'a Group among the values');
  t.equal(pinnedPatients('DocumentReference', [ref('subject', { url: 'http://elsewhere/fhir/Patient/p1', targetType: 'Patient', targetId: 'p1' })]), undefined, 'an absolute URL');
  t.equal(pinnedPatients('DocumentReference', [{ kind: 'any', of: [ref('subject', patient('p1'))] }]), undefined, 'only top-level criteria');
  t.equal(pinnedPatients('DocumentReference', [{ kind: 'chain', param: 'subject', targetTypes: ['Patient'], where: [{ kind: 'id', ids: ['p1'] }] }]), undefined, 'a chain');
  t.equal(pinnedPatients('Patient', [{ kind: 'id', ids: ['p1'] }]), undefined, 'a Patient has no patient parameter');
  t.equal(pinnedPatients('Practitioner', [ref('organization', { targetType: 'Organization', targetId: 'o' })]), undefined, 'no compartment');
});

const gp: Actor = { kind: 'practitioner', practitionerId: 'dr-gp', profession: '10' } as Actor;
const restriction = (known?: KnownPatients) => JSON.stringify(policyConditions(gp, 'DocumentReference', readableTypes, Date.now(), known));
const checksPatients = (known?: KnownPatients) => restriction(known).includes('"kind":"chain"');
const p1 = { resourceType: 'Patient' as const, id: 'p1', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] };

t.test('the query checks no patient condition when every pinned patient satisfies them', async (t) => {
  t.ok(checksPatients(), 'unpinned: checked per row');
  t.notOk(checksPatients({ states: [stateOf('p1', p1, [])] }), 'the GP of p1');
  t.notOk(checksPatients({ states: [stateOf('p1', { ...p1, generalPractitioner: [] }, [permit('c', 'p1', 'dr-gp')])] }), 'a permit');
  t.notOk(checksPatients({ states: [stateOf('p1', p1, [mask('m', 'p1', 'd1'), block('b', 'p1', 'Practitioner/dr-other')])] }), 'a mask, and another professional blocked');
  t.ok(restriction({ states: [stateOf('p1', p1, [mask('m', 'p1', 'd1')])] }).includes('"param":"data"'), 'masks are still checked by the query');
});

t.test('the query keeps checking when a pinned patient does not, or when it cannot tell', async (t) => {
  t.ok(checksPatients({ states: [stateOf('p1', p1, [block('b', 'p1', 'Practitioner/dr-gp')])] }), 'blocked');
  t.ok(checksPatients({ states: [stateOf('p1', { ...p1, active: false }, [])] }), 'account closed');
  t.ok(checksPatients({ states: [stateOf('p1', undefined, [])] }), 'no such patient');
  t.ok(checksPatients({ states: [stateOf('p1', { ...p1, generalPractitioner: [] }, [])] }), 'no relationship');
  t.ok(checksPatients({ states: [stateOf('p1', { ...p1, generalPractitioner: [] }, [emergencyOff('e', 'p1')])] }), 'no relationship, emergency off');
  t.ok(checksPatients({ states: [stateOf('p1', p1, []), stateOf('p2', { resourceType: 'Patient', id: 'p2' }, [])] }), 'one of two patients without a relationship');
  t.ok(checksPatients({ states: [stateOf('p1', p1, [], false)] }), 'more Consents than were loaded');
  t.ok(checksPatients({ states: [] }), 'no patient at all');
});

t.test('emergency access is decided on the state too', async (t) => {
  const er: Actor = { kind: 'practitioner', practitionerId: 'dr-er', profession: '10', purposeOfUse: 'ETREAT' } as Actor;
  const stranger = { resourceType: 'Patient' as const, id: 'p1' };
  const chained = (known: KnownPatients) => JSON.stringify(policyConditions(er, 'Observation', readableTypes, Date.now(), known)).includes('"kind":"chain"');
  t.notOk(chained({ states: [stateOf('p1', stranger, [])] }), 'ETREAT opens the record');
  t.ok(chained({ states: [stateOf('p1', stranger, [emergencyOff('e', 'p1')])] }), 'unless the patient turned it off');
});
