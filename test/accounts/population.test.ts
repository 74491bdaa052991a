// The seeded population of the enrolment feed (accounts/population.ts) with plain values: the NIR
// key, determinism, and the shape of the people (sex digit, birth dates, minors and their
// representatives).
import t from 'tap';
import { enrolParameters, insKeyValid, nirKey, people, seededRandom } from '../../src/accounts/population.js';
import { majorityDate } from '../../src/policy/account.js';

const TODAY = '2027-01-04';

t.test('the key of a NIR is 97 minus the number modulo 97, on two digits', async (t) => {
  t.equal(nirKey('2550814168025'), '38', 'the example of the NIR\'s documentation');
  t.equal(nirKey('1850578006084'), '91');
  t.equal(nirKey('0000000000097'), '97', '97 - 0');
  t.equal(nirKey('0000000000096'), '01', 'zero-padded');
  t.ok(insKeyValid('255081416802538'));
  t.notOk(insKeyValid('255081416802539'), 'a wrong key');
  t.notOk(insKeyValid('25508141680253'), 'too short');
  t.throws(() => nirKey('12345'));
});

t.test('the PRNG and the population are the same for the same seed, and differ for another', async (t) => {
  const a = seededRandom(1);
  const b = seededRandom(1);
  const first = [a(), a(), a()];
  t.same([b(), b(), b()], first);
  t.ok(first.every((x) => x >= 0 && x < 1));
  t.same(people({ seed: 7, today: TODAY }, 50), people({ seed: 7, today: TODAY }, 50));
  t.not(people({ seed: 7, today: TODAY }, 5)[0].ins, people({ seed: 8, today: TODAY }, 5)[0].ins);
});

t.test('every person has a distinct INS with a valid key, its digits agreeing with sex and birth date', async (t) => {
  const crowd = people({ seed: 1, today: TODAY }, 5000);
  t.equal(new Set(crowd.map((p) => p.ins)).size, crowd.length, 'distinct');
  t.ok(crowd.every((p) => insKeyValid(p.ins)), 'valid keys');
  t.ok(crowd.every((p) => p.patient.identifier?.[0].value === p.ins));
  t.ok(crowd.every((p) => p.ins[0] === (p.patient.gender === 'female' ? '2' : '1')), 'sex digit');
  t.ok(crowd.every((p) => p.ins.slice(1, 3) === p.patient.birthDate?.slice(2, 4) && p.ins.slice(3, 5) === p.patient.birthDate?.slice(5, 7)), 'year and month of birth');
  const ages = crowd.map((p) => (Date.parse(TODAY) - Date.parse(p.patient.birthDate as string)) / (365.25 * 86_400_000));
  t.ok(ages.every((a) => a > 0 && a < 100), 'born within the century');
  t.ok(ages.some((a) => a < 2) && ages.some((a) => a > 95), 'spread over it');
});

t.test('about a fifth are minors, each with one or two legal representatives; adults have none', async (t) => {
  const crowd = people({ seed: 3, today: TODAY }, 5000);
  const minors = crowd.filter((p) => Date.parse(TODAY) < Date.parse(majorityDate(p.patient.birthDate ?? '') as string));
  t.ok(minors.length > 900 && minors.length < 1100, `${minors.length} minors of 5000`);
  t.ok(minors.every((p) => p.representatives.length === 1 || p.representatives.length === 2));
  t.ok(crowd.filter((p) => !minors.includes(p)).every((p) => p.representatives.length === 0));
  const roles = new Set(minors.flatMap((p) => p.representatives.map((r) => r.relationship?.[0].coding?.[0].code)));
  t.same([...roles].sort(), ['FTH', 'GUARD', 'MTH']);
});

t.test('the $enrol body puts each patient before its representatives', async (t) => {
  const crowd = people({ seed: 3, today: TODAY }, 20);
  const body = enrolParameters(crowd);
  t.equal(body.parameter?.filter((p) => p.name === 'patient').length, 20);
  t.equal(body.parameter?.filter((p) => p.name === 'representative').length, crowd.reduce((n, p) => n + p.representatives.length, 0));
  t.equal(body.parameter?.[0].name, 'patient');
});
