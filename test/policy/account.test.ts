// The account state machine (policy/account.ts) with plain values: every transition, every refused
// one with its stable code and the state it names, the Patient extension's round trip, and the
// provisional code's hash.
import crypto from 'node:crypto';
import t from 'tap';
import type { Patient, Resource } from '@medplum/fhirtypes';
import { decide } from '../../src/policy/decide.js';
import type { Actor } from '../../src/auth/actor.js';
import { policyConditions } from '../../src/policy/restrict.js';
import type { ConsentState } from '../../src/policy/consents.js';
import {
  ACCOUNT_EXTENSION,
  ACCOUNT_STATES,
  ARCHIVE_GRACE_MS,
  ARCHIVE_KEPT_MS,
  OBJECTION_WINDOW_MS,
  accountOf,
  hashProvisionalCode,
  provisionalCodeMatches,
  transition,
  withAccount,
  type Account,
  type AccountEvent,
  type AccountState,
} from '../../src/policy/account.js';

const T0 = Date.parse('2027-01-04T09:00:00.000Z');
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

const notified: Account = { state: 'notified', objectionEnds: iso(T0 + OBJECTION_WINDOW_MS), provisionalCode: 'scrypt$x$y' };
const open: Account = { state: 'open' };
const closed: Account = { state: 'closed', closedAt: iso(T0), closedBy: 'person' };
const archived: Account = { state: 'archived', closedAt: iso(T0), archivedAt: iso(T0 + ARCHIVE_GRACE_MS) };
const proof = { kind: 'activate', codeMatches: true, insMatches: true } as const;

t.test('enrol makes a notified account whose window ends six weeks later', async (t) => {
  const next = transition(undefined, { kind: 'enrol', provisionalCode: 'scrypt$a$b' }, T0);
  t.same(next, { ok: true, account: { state: 'notified', objectionEnds: iso(T0 + 42 * DAY), provisionalCode: 'scrypt$a$b' } });
});

t.test('activate opens a notified account with the right code and INS, and forgets the code', async (t) => {
  t.same(transition(notified, proof, T0 + DAY), { ok: true, account: { state: 'open' } });
});

t.test('activate is refused with a wrong code or a wrong INS, naming neither', async (t) => {
  for (const event of [{ ...proof, codeMatches: false }, { ...proof, insMatches: false }]) {
    const next = transition(notified, event, T0 + DAY);
    t.match(next, { ok: false, code: 'ACCOUNT_PROOF', state: 'notified' });
    t.match(next, { reason: /provisional code or the INS/ });
  }
});

t.test('object makes a notified account objected, until the window ends', async (t) => {
  t.same(transition(notified, { kind: 'object' }, T0 + 41 * DAY), { ok: true, account: { state: 'objected' } });
  t.match(transition(notified, { kind: 'object' }, T0 + 42 * DAY), { ok: false, code: 'ACCOUNT_WINDOW_ENDED', state: 'notified' });
});

t.test('window-ended opens a notified account once the window ended, not before', async (t) => {
  t.match(transition(notified, { kind: 'window-ended' }, T0 + 42 * DAY - 1), { ok: false, code: 'ACCOUNT_WINDOW_OPEN', state: 'notified' });
  t.same(transition(notified, { kind: 'window-ended' }, T0 + 42 * DAY), { ok: true, account: { state: 'open' } });
});

t.test('close closes an open account, by the person or at death', async (t) => {
  t.same(transition(open, { kind: 'close', by: 'person' }, T0), { ok: true, account: { state: 'closed', closedAt: iso(T0), closedBy: 'person' } });
  t.same(transition(open, { kind: 'close', by: 'death' }, T0), { ok: true, account: { state: 'closed', closedAt: iso(T0), closedBy: 'death' } });
});

t.test('archive archives a closed account after the grace period, not before', async (t) => {
  t.match(transition(closed, { kind: 'archive' }, T0 + ARCHIVE_GRACE_MS - 1), { ok: false, code: 'ACCOUNT_TOO_EARLY', state: 'closed' });
  t.same(transition(closed, { kind: 'archive' }, T0 + ARCHIVE_GRACE_MS), { ok: true, account: { state: 'archived', closedAt: iso(T0), archivedAt: iso(T0 + ARCHIVE_GRACE_MS) } });
});

t.test('purge purges an archive after ten years, not before', async (t) => {
  const since = T0 + ARCHIVE_GRACE_MS;
  t.ok(ARCHIVE_KEPT_MS >= 3652 * DAY, 'ten years');
  t.match(transition(archived, { kind: 'purge' }, since + ARCHIVE_KEPT_MS - 1), { ok: false, code: 'ACCOUNT_TOO_EARLY', state: 'archived' });
  t.same(transition(archived, { kind: 'purge' }, since + ARCHIVE_KEPT_MS), { ok: true, account: { state: 'purged' } });
});

t.test('every event from a state it does not leave is refused, naming the state', async (t) => {
  const accounts: Record<AccountState, Account> = { notified, open, objected: { state: 'objected' }, closed, archived, purged: { state: 'purged' } };
  const events: AccountEvent[] = [
    { kind: 'enrol', provisionalCode: 'h' },
    proof,
    { kind: 'object' },
    { kind: 'window-ended' },
    { kind: 'close', by: 'person' },
    { kind: 'archive' },
    { kind: 'purge' },
  ];
  const allowed: Record<AccountEvent['kind'], AccountState | undefined> = { enrol: undefined, activate: 'notified', object: 'notified', 'window-ended': 'notified', close: 'open', archive: 'closed', purge: 'archived', majority: undefined /* from any state but purged: test/accounts/majority.test.ts */ };
  let refusals = 0;
  for (const state of ACCOUNT_STATES) {
    for (const event of events) {
      if (allowed[event.kind] === state) continue;
      const next = transition(accounts[state], event, T0 + 20 * 365 * DAY);
      t.match(next, { ok: false, code: event.kind === 'enrol' ? 'ACCOUNT_EXISTS' : 'ACCOUNT_STATE', state }, `${event.kind} from ${state}`);
      if (!next.ok) t.match(next.reason, state);
      refusals++;
    }
  }
  for (const event of events.filter((e) => e.kind !== 'enrol')) t.match(transition(undefined, event, T0), { ok: false, code: 'ACCOUNT_STATE', reason: /not enrolled/ }, `${event.kind} without an account`);
  t.equal(refusals, 36);
});

t.test('the account is stored on the Patient and active is derived from it', async (t) => {
  const patient: Patient = { resourceType: 'Patient', id: 'p', extension: [{ url: 'http://other', valueString: 'kept' }], active: true };
  for (const account of [notified, open, closed, archived]) {
    const written = withAccount(patient, account);
    t.same(accountOf(written), account, `${account.state} round trip`);
    t.equal(written.active, account.state === 'open', `active is ${account.state === 'open'} when ${account.state}`);
    t.same(written.extension?.[0], { url: 'http://other', valueString: 'kept' }, 'other extensions are kept');
    t.equal(written.extension?.filter((e) => e.url === ACCOUNT_EXTENSION).length, 1, 'one account extension');
  }
});

t.test('a Patient written before accounts reads its state from active', async (t) => {
  t.same(accountOf({ resourceType: 'Patient' }), { state: 'open' });
  t.same(accountOf({ resourceType: 'Patient', active: true }), { state: 'open' });
  t.same(accountOf({ resourceType: 'Patient', active: false }), { state: 'closed' });
});

const KEY = Buffer.alloc(32, 7);
const OTHER_KEY = Buffer.alloc(32, 8);

t.test('the provisional code is kept as a salted, keyed hash, matched whatever its case and dashes', async (t) => {
  const stored = hashProvisionalCode('ABCD-EFGH-JKMN', KEY);
  t.match(stored, /^hmac\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]{44}$/);
  t.notMatch(stored, /ABCD/);
  t.not(stored, hashProvisionalCode('ABCD-EFGH-JKMN', KEY), 'salted: two hashes of one code differ');
  t.ok(provisionalCodeMatches(stored, 'abcd efgh jkmn', KEY));
  t.notOk(provisionalCodeMatches(stored, 'ABCD-EFGH-JKMP', KEY));
  t.notOk(provisionalCodeMatches(stored, 'ABCD-EFGH-JKMN', OTHER_KEY), 'without the server key the hash matches nothing');
  t.notOk(provisionalCodeMatches(undefined, 'ABCD-EFGH-JKMN', KEY), 'no code kept: nothing matches');
  t.notOk(provisionalCodeMatches('md5$x$y', 'ABCD-EFGH-JKMN', KEY), 'an unknown scheme matches nothing');
});

t.test('the keyed hash is HMAC-SHA-256 of salt and normalised code', async (t) => {
  const salt = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const expected = crypto.createHmac('sha256', KEY).update(salt).update('ABCDEFGHJKMN').digest('base64');
  t.equal(hashProvisionalCode('abcd-efgh-jkmn', KEY, salt), `hmac$${salt.toString('base64')}$${expected}`);
});

t.test('codes hashed with scrypt before the keyed hash still verify', async (t) => {
  const salt = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
  const stored = `scrypt$${salt.toString('base64')}$${crypto.scryptSync('ABCDEFGHJKMN', salt, 32).toString('base64')}`;
  t.ok(provisionalCodeMatches(stored, 'abcd-efgh-jkmn', KEY));
  t.notOk(provisionalCodeMatches(stored, 'ABCD-EFGH-JKMP', KEY));
});

t.test('the archive service reads archived records only, never the access log, and its query says the same', async (t) => {
  const archive: Actor = { kind: 'organisation', role: 'archive', organizationId: 'arch', grants: [], issuer: 'i', subject: 's' };
  const stateOf = (account: Account) => ({ patientId: 'p', patient: withAccount({ resourceType: 'Patient', id: 'p' }, account), rules: [], consents: [], complete: true }) as unknown as ConsentState;
  const doc: Resource = { resourceType: 'DocumentReference', status: 'current', content: [], subject: { reference: 'Patient/p' } } as Resource;
  const input = (account: Account, resource: Resource = doc) => ({ actor: archive, action: 'read' as const, resource, state: stateOf(account), now: 0, mayRead: () => true });
  t.match(decide(input(archived)), { permit: true });
  for (const account of [notified, open, closed]) t.match(decide(input(account)), { permit: false, status: 404 }, account.state);
  t.match(decide(input(archived, { resourceType: 'AuditEvent' } as Resource)), { permit: false });
  t.match(decide({ ...input(archived, { resourceType: 'Practitioner', id: 'x' } as Resource), state: undefined }), { permit: true }, 'the directory');
  t.same(policyConditions(archive, 'Patient', () => ({ all: true }), 0), [{ kind: 'token', param: 'account-state', values: [{ code: 'archived' }] }]);
  t.match(policyConditions(archive, 'DocumentReference', () => ({ all: true }), 0), [{ kind: 'chain', param: 'subject', targetTypes: ['Patient'], where: [{ param: 'account-state' }] }]);
  t.match(policyConditions(archive, 'AuditEvent', () => ({ all: true }), 0), [{ kind: 'any', of: [] }], 'nothing of the access log');
});
