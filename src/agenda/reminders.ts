// agenda: the reminders of a person's record, derived from rules kept as data
// (profiles/reminders/, docs/agenda.md). Pure: dates in, dates out; knows nothing of HTTP, storage
// or consent (fhir/agenda reads the record as the caller may see it and serves the result).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Coding, Immunization, Observation } from '@medplum/fhirtypes';

export const CALENDAR_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../profiles/reminders/french-calendar.json');

/** When a rule is due, by kind (docs/agenda.md says what each means). */
export type Schedule =
  /** Recalls at fixed ages, then every `thenEvery` years; a dose resets: the next age at least `minGapYears` after it. */
  | { type: 'ages'; ages: number[]; thenEvery: number; minGapYears: number }
  /** A series of `doses` between two ages, `intervalMonths` apart. */
  | { type: 'doses'; fromAge: number; untilAge: number; doses: number; intervalMonths: number }
  /** Once a season (`MM-DD` to `MM-DD` of the next year), from an age. */
  | { type: 'seasonal'; fromAge: number; seasonStart: string; seasonEnd: string }
  /** Every `everyMonths` between two ages, counted from the last test. */
  | { type: 'periodic'; fromAge: number; untilAge: number; everyMonths: number };

export interface ReminderRule {
  id: string;
  title: string;
  category: 'vaccination' | 'screening';
  /** Only for people of this administrative gender. */
  sex?: 'female' | 'male';
  schedule: Schedule;
  /** What in the record shows it was done. */
  evidence: { resourceType: 'Immunization' | 'Observation'; codes: { system: string; code: string }[] };
}

export interface Calendar {
  id: string;
  title: string;
  sources: string[];
  rules: ReminderRule[];
}

/** Something done, as the record shows it. */
export interface Evidence {
  resourceType: string;
  /** YYYY-MM-DD. */
  date: string;
  codes: Coding[];
}

export interface Person {
  /** YYYY-MM-DD; a partial birth date gives no reminder. */
  birthDate?: string;
  gender?: string;
}

export interface Reminder {
  rule: ReminderRule;
  /** The day it is due (YYYY-MM-DD), possibly past: overdue since then. */
  due: string;
  /** The last day it may be done (the rule's age window), when it has one. */
  until?: string;
  /** The date of the last evidence counted. */
  last?: string;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** A date `months` later (earlier when negative); a day the month lacks becomes its last day (Feb 29 + 12 months: Feb 28). */
export function addMonths(date: string, months: number): string {
  const [y, m, d] = date.split('-').map(Number);
  const total = y * 12 + (m - 1) + months;
  const year = Math.floor(total / 12);
  const month = total - year * 12;
  const last = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return `${String(year).padStart(4, '0')}-${String(month + 1).padStart(2, '0')}-${String(Math.min(d, last)).padStart(2, '0')}`;
}

export const addYears = (date: string, years: number): string => addMonths(date, years * 12);

function dayBefore(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
}

/** A FHIR date or dateTime as its day (a partial date as its first day), or undefined. */
function dayOf(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const match = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?/.exec(value);
  if (!match) return undefined;
  return `${match[1]}-${match[2] ?? '01'}-${match[3] ?? '01'}`;
}

/** What a resource of the record shows was done, if anything: a completed Immunization, a final Observation. */
export function evidenceOf(resource: Immunization | Observation): Evidence | undefined {
  if (resource.resourceType === 'Immunization') {
    const date = resource.status === 'completed' ? dayOf(resource.occurrenceDateTime) : undefined;
    return date ? { resourceType: 'Immunization', date, codes: resource.vaccineCode?.coding ?? [] } : undefined;
  }
  if (!['final', 'amended', 'corrected'].includes(resource.status)) return undefined;
  const date = dayOf(resource.effectiveDateTime ?? resource.effectivePeriod?.start ?? resource.effectiveInstant ?? resource.issued);
  return date ? { resourceType: 'Observation', date, codes: resource.code?.coding ?? [] } : undefined;
}

function counts(rule: ReminderRule, evidence: Evidence): boolean {
  return evidence.resourceType === rule.evidence.resourceType && evidence.codes.some((c) => rule.evidence.codes.some((r) => r.system === c.system && r.code === c.code));
}

/** The day a rule is due for someone born on `birth`, given its evidence (sorted by date) and today; undefined when it is not. */
function dueOf(schedule: Schedule, birth: string, done: string[], today: string): Omit<Reminder, 'rule'> | undefined {
  const last = done.at(-1);
  const withLast = <T extends object>(r: T) => (last ? { ...r, last } : r);
  switch (schedule.type) {
    case 'ages': {
      const ages = [...schedule.ages];
      while (ages.at(-1)! + schedule.thenEvery <= 120) ages.push(ages.at(-1)! + schedule.thenEvery);
      const eligible = ages.map((age) => addYears(birth, age)).filter((day) => !last || day >= addYears(last, schedule.minGapYears));
      const passed = eligible.filter((day) => day <= today);
      const due = passed.at(-1) ?? eligible.find((day) => day > today);
      return due ? withLast({ due }) : undefined;
    }
    case 'doses': {
      const end = addYears(birth, schedule.untilAge);
      if (today >= end || done.length >= schedule.doses) return undefined;
      const due = last ? addMonths(last, schedule.intervalMonths) : addYears(birth, schedule.fromAge);
      return due < end ? withLast({ due, until: dayBefore(end) }) : undefined;
    }
    case 'seasonal': {
      const from = addYears(birth, schedule.fromAge);
      const year = Number(today.slice(0, 4));
      // The season under way, or the next: one that has not ended by today.
      let start = `${year - 1}-${schedule.seasonStart}`;
      if (`${year}-${schedule.seasonEnd}` < today) start = `${year}-${schedule.seasonStart}`;
      for (let i = 0; i < 130; i++) {
        const seasonYear = Number(start.slice(0, 4));
        const end = `${seasonYear + 1}-${schedule.seasonEnd}`;
        const due = from > start ? from : start;
        const doneThisSeason = done.some((day) => day >= start && day <= end);
        if (due <= end && !doneThisSeason) return withLast({ due, until: end });
        start = `${seasonYear + 1}-${schedule.seasonStart}`;
      }
      return undefined;
    }
    case 'periodic': {
      const from = addYears(birth, schedule.fromAge);
      const end = addYears(birth, schedule.untilAge);
      if (today >= end) return undefined;
      const next = last ? addMonths(last, schedule.everyMonths) : from;
      const due = next > from ? next : from;
      return due < end ? withLast({ due, until: dayBefore(end) }) : undefined;
    }
  }
}

/** The reminders of a person on `today` (YYYY-MM-DD): one per rule that applies and is due, soonest first. */
export function remindersFor(calendar: Calendar, person: Person, evidence: Evidence[], today: string): Reminder[] {
  if (!person.birthDate || !DAY.test(person.birthDate)) return [];
  const birth = person.birthDate;
  const reminders: Reminder[] = [];
  for (const rule of calendar.rules) {
    if (rule.sex && person.gender !== rule.sex) continue;
    const done = evidence
      .filter((e) => counts(rule, e))
      .map((e) => e.date)
      .sort();
    const due = dueOf(rule.schedule, birth, done, today);
    if (due) reminders.push({ rule, ...due });
  }
  return reminders.sort((a, b) => (a.due < b.due ? -1 : a.due > b.due ? 1 : a.rule.id < b.rule.id ? -1 : 1));
}

/** A calendar file, checked: a malformed one throws (the operator's file; the server does not start on it). */
export function parseCalendar(value: unknown, where = 'calendar'): Calendar {
  const fail = (what: string): never => {
    throw new Error(`${where}: ${what}`);
  };
  const c = value as Partial<Calendar> | null;
  if (!c || typeof c !== 'object' || typeof c.id !== 'string' || !Array.isArray(c.rules) || !Array.isArray(c.sources)) return fail('needs id, sources and rules');
  const ids = new Set<string>();
  for (const rule of c.rules) {
    if (typeof rule?.id !== 'string' || ids.has(rule.id)) fail(`a rule needs a unique id (${String(rule?.id)})`);
    ids.add(rule.id);
    if (typeof rule.title !== 'string' || !['vaccination', 'screening'].includes(rule.category)) fail(`${rule.id}: title and category (vaccination or screening)`);
    if (rule.sex !== undefined && rule.sex !== 'female' && rule.sex !== 'male') fail(`${rule.id}: sex is female or male`);
    if (!['Immunization', 'Observation'].includes(rule.evidence?.resourceType) || !Array.isArray(rule.evidence.codes) || rule.evidence.codes.length === 0) fail(`${rule.id}: evidence needs a resourceType (Immunization or Observation) and codes`);
    const s = rule.schedule as Schedule | undefined;
    const numbers = (...n: unknown[]) => n.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0);
    const ok =
      (s?.type === 'ages' && Array.isArray(s.ages) && s.ages.length > 0 && numbers(...s.ages, s.minGapYears) && s.thenEvery > 0) ||
      (s?.type === 'doses' && numbers(s.fromAge, s.untilAge, s.doses, s.intervalMonths) && s.fromAge < s.untilAge) ||
      (s?.type === 'seasonal' && numbers(s.fromAge) && /^\d{2}-\d{2}$/.test(s.seasonStart) && /^\d{2}-\d{2}$/.test(s.seasonEnd)) ||
      (s?.type === 'periodic' && numbers(s.fromAge, s.untilAge) && s.everyMonths > 0 && s.fromAge < s.untilAge);
    if (!ok) fail(`${rule.id}: schedule is not one of ages, doses, seasonal, periodic with their fields`);
  }
  return c as Calendar;
}

let loaded: Calendar | undefined;

/** The calendar of profiles/reminders/, read once. */
export function calendar(file = CALENDAR_FILE): Calendar {
  if (file !== CALENDAR_FILE) return parseCalendar(JSON.parse(fs.readFileSync(file, 'utf8')), file);
  return (loaded ??= parseCalendar(JSON.parse(fs.readFileSync(file, 'utf8')), file));
}
