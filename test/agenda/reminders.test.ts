// agenda/reminders: each rule of profiles/reminders/french-calendar.json against dates computed by hand.
import t from 'tap';
import type { Immunization, Observation } from '@medplum/fhirtypes';
import { addMonths, addYears, calendar, evidenceOf, parseCalendar, remindersFor, type Evidence, type Person } from '../../src/agenda/reminders.js';

const CVX = 'http://hl7.org/fhir/sid/cvx';
const LOINC = 'http://loinc.org';
const rules = calendar();

const vaccine = (code: string, date: string): Evidence =>
  evidenceOf({ resourceType: 'Immunization', status: 'completed', vaccineCode: { coding: [{ system: CVX, code }] }, patient: { reference: 'Patient/p' }, occurrenceDateTime: date }) as Evidence;
const test = (code: string, date: string): Evidence => evidenceOf({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code }] }, effectiveDateTime: date }) as Evidence;

/** The reminders as [rule id, due, until, last] rows. */
function rows(person: Person, evidence: Evidence[], today: string): [string, string, string | undefined, string | undefined][] {
  return remindersFor(rules, person, evidence, today).map((r) => [r.rule.id, r.due, r.until, r.last]);
}
const of = (id: string, person: Person, evidence: Evidence[], today: string) => rows(person, evidence, today).find((r) => r[0] === id);

t.test('dates: a month a day lacks ends on its last day; Feb 29 turns a year older on Feb 28', async (t) => {
  t.equal(addYears('2000-02-29', 25), '2025-02-28');
  t.equal(addYears('2000-02-29', 4), '2004-02-29');
  t.equal(addMonths('2025-08-31', 6), '2026-02-28');
  t.equal(addMonths('2025-01-15', -2), '2024-11-15');
});

t.test('DTP recalls at 25, 45, 65 then every 10 years; a recorded dose moves the next one', async (t) => {
  const bob: Person = { birthDate: '1990-06-15', gender: 'male' };
  t.same(of('dtp-recall', bob, [], '2010-01-01'), ['dtp-recall', '2015-06-15', undefined, undefined], 'at 19: due at 25');
  t.same(of('dtp-recall', bob, [], '2026-12-07'), ['dtp-recall', '2015-06-15', undefined, undefined], 'at 36 with none recorded: overdue since 25');
  t.same(of('dtp-recall', bob, [vaccine('115', '2016-01-10')], '2026-12-07'), ['dtp-recall', '2035-06-15', undefined, '2016-01-10'], 'done at 25: next at 45');
  // Late at 42 (2033-03-01): 45 is less than 5 years later, so the next is at 65.
  t.same(of('dtp-recall', bob, [vaccine('113', '2033-03-01')], '2034-01-01'), ['dtp-recall', '2055-06-15', undefined, '2033-03-01']);
  // Born 1950-01-10, recalled at 65 (2015-02-01): due at 75 (2025-01-10), overdue now; then 85.
  const old: Person = { birthDate: '1950-01-10', gender: 'female' };
  t.same(of('dtp-recall', old, [vaccine('115', '2015-02-01')], '2026-12-07'), ['dtp-recall', '2025-01-10', undefined, '2015-02-01']);
  t.same(of('dtp-recall', old, [vaccine('115', '2015-02-01'), vaccine('115', '2025-03-01')], '2026-12-07'), ['dtp-recall', '2035-01-10', undefined, '2025-03-01']);
  t.equal(evidenceOf({ resourceType: 'Immunization', status: 'not-done', vaccineCode: { coding: [{ system: CVX, code: '115' }] }, patient: {}, occurrenceDateTime: '2025-03-01' }), undefined, 'a dose not done does not count');
  t.same(of('dtp-recall', old, [vaccine('88', '2025-03-01')], '2026-12-07')?.[1], '2025-01-10', 'an influenza dose does not count');
  t.same(of('dtp-recall', { birthDate: '2000-02-29' }, [], '2024-06-01'), ['dtp-recall', '2025-02-28', undefined, undefined], 'born on Feb 29: 25 on Feb 28, 2025');
});

t.test('HPV: two doses six months apart between 11 and 14, for girls and boys', async (t) => {
  const dana: Person = { birthDate: '2013-03-10', gender: 'female' };
  t.same(of('hpv', dana, [], '2026-12-07'), ['hpv', '2024-03-10', '2028-03-09', undefined]);
  t.same(of('hpv', dana, [vaccine('165', '2025-01-15')], '2026-12-07'), ['hpv', '2025-07-15', '2028-03-09', '2025-01-15']);
  t.notOk(of('hpv', dana, [vaccine('165', '2025-01-15'), vaccine('165', '2025-08-01')], '2026-12-07'), 'two doses: done');
  t.same(of('hpv', { birthDate: '2014-05-01', gender: 'male' }, [], '2025-06-01')?.[1], '2025-05-01', 'boys too');
  t.notOk(of('hpv', { birthDate: '2010-01-01', gender: 'male' }, [], '2026-12-07'), 'at 16: the window has closed');
  t.same(of('hpv', { birthDate: '2014-02-28' }, [vaccine('62', '2028-12-01')], '2028-12-15'), undefined, 'a second dose would fall after 15: none');
});

t.test('influenza: every season from 65', async (t) => {
  const claire: Person = { birthDate: '1960-05-20', gender: 'female' };
  t.same(of('influenza', claire, [], '2026-12-07'), ['influenza', '2026-10-15', '2027-03-31', undefined], 'the season under way');
  t.same(of('influenza', claire, [vaccine('158', '2026-10-20')], '2026-12-07'), ['influenza', '2027-10-15', '2028-03-31', '2026-10-20'], 'done this season: the next one');
  t.same(of('influenza', claire, [], '2026-05-02'), ['influenza', '2026-10-15', '2027-03-31', undefined], 'between seasons: the next one');
  // 65 on 2025-05-20: the 2024-2025 season ended before it, the first is 2025-10-15.
  t.same(of('influenza', claire, [], '2025-01-01'), ['influenza', '2025-10-15', '2026-03-31', undefined]);
  // 65 during a season (born 1961-12-01, 65 on 2026-12-01): due on the birthday.
  t.same(of('influenza', { birthDate: '1961-12-01' }, [], '2026-11-01'), ['influenza', '2026-12-01', '2027-03-31', undefined]);
});

t.test('breast screening: women 50 to 74, every 2 years; a mammogram defers it', async (t) => {
  const claire: Person = { birthDate: '1960-05-20', gender: 'female' };
  t.same(of('breast-screening', claire, [], '2026-12-07'), ['breast-screening', '2010-05-20', '2035-05-19', undefined], 'none recorded: overdue since 50');
  t.same(of('breast-screening', claire, [test('24606-6', '2025-09-01')], '2026-12-07'), ['breast-screening', '2027-09-01', '2035-05-19', '2025-09-01']);
  t.notOk(of('breast-screening', { ...claire, gender: 'male' }, [], '2026-12-07'), 'not for men');
  t.notOk(of('breast-screening', { birthDate: '1950-01-01', gender: 'female' }, [], '2026-12-07'), 'not from 75');
  // Born Feb 29, 1976: 50 on 2026-02-28, 75 on 2051-02-28.
  t.same(of('breast-screening', { birthDate: '1976-02-29', gender: 'female' }, [], '2026-12-07'), ['breast-screening', '2026-02-28', '2051-02-27', undefined]);
  t.notOk(of('breast-screening', claire, [test('24606-6', '2033-06-01')], '2034-01-01'), 'the next one would be after 74: none');
});

t.test('colorectal screening: everyone 50 to 74, every 2 years', async (t) => {
  t.same(of('colorectal-screening', { birthDate: '1960-05-20', gender: 'male' }, [test('29771-3', '2024-03-10')], '2026-12-07'), ['colorectal-screening', '2026-03-10', '2035-05-19', '2024-03-10']);
  t.same(of('colorectal-screening', { birthDate: '1980-07-01' }, [], '2026-12-07'), ['colorectal-screening', '2030-07-01', '2055-06-30', undefined], 'at 46: from 50');
});

t.test('cervical screening: women 25 to 65, cytology every 3 years to 29, HPV test every 5 years from 30', async (t) => {
  const eva: Person = { birthDate: '2000-02-29', gender: 'female' };
  t.same(of('cervical-screening-cytology', eva, [], '2024-06-01'), ['cervical-screening-cytology', '2025-02-28', '2030-02-27', undefined]);
  t.same(of('cervical-screening-cytology', eva, [test('10524-7', '2025-03-15')], '2026-12-07'), ['cervical-screening-cytology', '2028-03-15', '2030-02-27', '2025-03-15']);
  t.same(of('cervical-screening-hpv', eva, [], '2026-12-07')?.[1], '2030-02-28', 'the HPV test is from 30');
  const fay: Person = { birthDate: '1980-09-30', gender: 'female' };
  t.same(of('cervical-screening-hpv', fay, [test('21440-3', '2023-01-05')], '2026-12-07'), ['cervical-screening-hpv', '2028-01-05', '2046-09-29', '2023-01-05']);
  t.notOk(of('cervical-screening-hpv', { birthDate: '1960-05-20', gender: 'female' }, [], '2026-12-07'), 'not from 66');
  t.notOk(of('cervical-screening-hpv', { ...fay, gender: 'male' }, [], '2026-12-07'));
});

t.test('a whole list, soonest first; a partial birth date gives none', async (t) => {
  const claire: Person = { birthDate: '1960-05-20', gender: 'female' };
  t.same(
    rows(claire, [test('24606-6', '2025-09-01'), test('29771-3', '2026-01-10'), vaccine('115', '2025-06-01')], '2026-12-07').map((r) => [r[0], r[1]]),
    [['influenza', '2026-10-15'], ['breast-screening', '2027-09-01'], ['colorectal-screening', '2028-01-10'], ['dtp-recall', '2035-05-20']],
  );
  t.same(rows({ birthDate: '1960', gender: 'female' }, [], '2026-12-07'), []);
  t.same(rows({ gender: 'female' }, [], '2026-12-07'), []);
});

t.test('what counts as done: a final Observation, a completed Immunization, with a date', async (t) => {
  const preliminary: Observation = { resourceType: 'Observation', status: 'preliminary', code: { coding: [{ system: LOINC, code: '24606-6' }] }, effectiveDateTime: '2025-01-01' };
  t.equal(evidenceOf(preliminary), undefined);
  t.same(evidenceOf({ ...preliminary, status: 'amended', effectiveDateTime: undefined, effectivePeriod: { start: '2025-02-03T10:00:00Z' } })?.date, '2025-02-03');
  t.same(evidenceOf({ ...preliminary, status: 'final', effectiveDateTime: '2025-04' })?.date, '2025-04-01', 'a partial date counts from its first day');
  t.equal(evidenceOf({ resourceType: 'Immunization', status: 'completed', vaccineCode: {}, patient: {}, occurrenceString: 'as a child' }), undefined);
});

t.test('a malformed calendar is refused', async (t) => {
  t.throws(() => parseCalendar({ id: 'x', sources: [], rules: [{ id: 'a', title: 'A', category: 'vaccination', schedule: { type: 'periodic', fromAge: 50, untilAge: 40, everyMonths: 24 }, evidence: { resourceType: 'Observation', codes: [{ system: LOINC, code: '1' }] } }] }), /schedule/);
  t.throws(() => parseCalendar({ id: 'x', sources: [], rules: [{ id: 'a', title: 'A', category: 'other' }] }), /category/);
  t.throws(() => parseCalendar({ id: 'x', rules: [] }), /sources/);
  t.ok(rules.sources.length >= 2, 'the shipped calendar cites its sources');
});
