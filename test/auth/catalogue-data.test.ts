// auth/catalogue: the data an app reads, said in plain words from its scopes (pure).
import t from 'tap';
import { dataOf, publicCatalogue } from '../../src/auth/catalogue.js';
import type { ClientRecord } from '../../src/store/port.js';

t.test('each scope becomes one sentence: verbs from its permissions, data from its type, owner from its context', async (t) => {
  t.same(dataOf('patient/Observation.rs'), ['Reads your measurements and test results']);
  t.same(dataOf('patient/DocumentReference.cru'), ['Reads, adds to and changes your documents (reports, prescriptions, letters)']);
  t.same(dataOf('patient/*.read'), ['Reads your whole health record'], 'v1 read');
  t.same(dataOf('patient/Condition.d'), ['Deletes your health problems']);
  t.same(dataOf('user/Observation.s'), ['Reads the measurements and test results of the records its user may open']);
  t.same(dataOf('system/Patient.c'), ['Adds to the identity and contact details of any record the consent policy lets it reach']);
  t.same(dataOf('patient/Flag.r'), ['Reads your Flag records'], 'a type without plain words keeps its name');
});

t.test('identity and offline scopes are said; launch scopes and repeats are not', async (t) => {
  t.same(dataOf('openid fhirUser launch/patient offline_access patient/Observation.r patient/Observation.s'), [
    'Knows who you are (your identity)',
    'Keeps its access while you are not using it, until you revoke it',
    'Reads your measurements and test results',
  ]);
});

t.test('the public catalogue lists certified clients only, with what users see and never keys', async (t) => {
  const base: ClientRecord = { id: 'a', name: 'A', kind: 'patient-app', jwks: { keys: [{ kty: 'EC' }] }, scopes: 'patient/Observation.r', certified: true, created: '2026-01-01T00:00:00Z' };
  const entries = publicCatalogue([
    { ...base, editor: 'Ed', description: 'Desc', certifiedOn: '2026-01-01', organizationId: 'org' },
    { ...base, id: 'b', certified: false },
  ]);
  t.same(entries, [{ id: 'a', name: 'A', kind: 'patient-app', editor: 'Ed', description: 'Desc', certifiedOn: '2026-01-01', scopes: 'patient/Observation.r', data: ['Reads your measurements and test results'] }]);
});
