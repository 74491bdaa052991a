// policy/consents: the patient's grant of an app, a permit Consent naming the app by its client id
// (pure: plain Consents in, rules and issues out).
import t from 'tap';
import type { Consent } from '@medplum/fhirtypes';
import { appGranted, appOf, consentIssues, namesApp, rulesOf, stateOf } from '../../src/policy/consents.js';
import { appGrant, permit } from './fixture.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');

t.test('a permit naming an app by identifier is a grant of that app', async (t) => {
  const grant = appGrant('g1', 'p1', 'app-1');
  t.same(consentIssues(grant), []);
  t.same(rulesOf(grant), [{ consentId: 'g1', kind: 'app', clientId: 'app-1' }]);
  t.ok(namesApp(grant));
  t.notOk(namesApp(permit('c1', 'p1', 'dr-1')));
  const state = stateOf('p1', undefined, [grant]);
  t.ok(appGranted(state, 'app-1', NOW), 'granted');
  t.notOk(appGranted(state, 'app-2', NOW), 'another app is not');
});

t.test('an app and a professional in one permit each get their rule', async (t) => {
  const grant = appGrant('g2', 'p1', 'app-1');
  const both: Consent = { ...grant, provision: { ...grant.provision, actor: [...(grant.provision?.actor ?? []), ...(permit('x', 'p1', 'dr-1').provision?.actor ?? [])] } };
  t.same(rulesOf(both).map((r) => r.kind), ['app', 'care-relationship']);
});

t.test('a grant applies within its period, and not once inactive', async (t) => {
  const grant = appGrant('g3', 'p1', 'app-1');
  const ended: Consent = { ...grant, provision: { ...grant.provision, period: { end: '2026-05-31' } } };
  t.notOk(appGranted(stateOf('p1', undefined, [ended]), 'app-1', NOW), 'ended the day before');
  const later: Consent = { ...grant, provision: { ...grant.provision, period: { start: '2026-07-01' } } };
  t.notOk(appGranted(stateOf('p1', undefined, [later]), 'app-1', NOW), 'not started');
  t.same(rulesOf({ ...grant, status: 'inactive' }), [], 'inactive: no rule');
});

t.test('app shapes the engine would not enforce are issues', async (t) => {
  const grant = appGrant('g4', 'p1', 'app-1');
  const deny: Consent = { ...grant, provision: { ...grant.provision, type: 'deny' } };
  t.match(consentIssues(deny).map((i) => i.expression), ['Consent.provision.actor[0].reference']);
  const actor = grant.provision?.actor?.[0];
  const wrongSystem: Consent = { ...grant, provision: { type: 'permit', actor: [{ role: actor?.role ?? {}, reference: { type: 'Device', identifier: { system: 'urn:other', value: 'app-1' } } }] } };
  t.equal(consentIssues(wrongSystem).length, 1, 'another identifier system');
  t.equal(appOf({ type: 'Patient', identifier: { system: 'urn:carnet:client', value: 'app-1' } }), undefined, 'not a Device');
  t.equal(appOf({ reference: 'Device/app-1' }), undefined, 'a literal reference is not an app of the catalogue');
  t.equal(appOf({ identifier: { system: 'urn:carnet:client', value: 'app-1' } }), 'app-1', 'type may be left out');
});
