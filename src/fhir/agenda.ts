// fhir/agenda: GET|POST [base]/Patient/[id]/$reminders (docs/agenda.md): the vaccinations and
// screenings due for a patient, as proposed Appointments that are not stored, computed by
// agenda/reminders from the calendar of profiles/reminders/ and from what the caller may see of
// the record: the Patient must be readable, and the Immunizations and Observations are searched
// under the caller's restrictions, as a search of theirs would be.

import type { Appointment, Bundle, Immunization, Observation, Patient } from '@medplum/fhirtypes';
import { calendar, evidenceOf, remindersFor, type Evidence, type Reminder } from '../agenda/reminders.js';
import { Gone, Invalid, NotFound } from '../base/outcome.js';
import { parseCriteria } from '../search/plan.js';
import { access, assertReadable, searchable, visible } from './access.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import type { Operation } from './operations.js';

/** The identifier system naming the rule a reminder comes from. */
export const REMINDER_RULE_SYSTEM = 'urn:carnet:reminder-rule';
/** At most this many Immunizations and Observations are read for one computation (each type). */
const MAX_EVIDENCE = 5_000;
const PAGE = 500;

/** What the caller may see of the patient's Immunizations and Observations. */
async function evidenceOfPatient(ctx: FhirContext, req: FhirRequest, id: string): Promise<Evidence[]> {
  const evidence: Evidence[] = [];
  for (const type of ['Immunization', 'Observation']) {
    const { plan, granted } = await searchable(ctx, req, parseCriteria(type, `patient=Patient/${encodeURIComponent(id)}`));
    let cursor: string | undefined;
    let read = 0;
    do {
      const page = await ctx.store.search(plan, { count: PAGE, ...(cursor ? { cursor } : {}) });
      for (const version of await visible(ctx, granted, page.matches, (m) => req.log?.(m))) {
        const found = version.resource ? evidenceOf(version.resource as Immunization | Observation) : undefined;
        if (found) evidence.push(found);
      }
      read += page.matches.length;
      cursor = page.next;
    } while (cursor && read < MAX_EVIDENCE);
  }
  return evidence;
}

function appointmentOf(reminder: Reminder, patient: string): Appointment {
  const { rule } = reminder;
  return {
    resourceType: 'Appointment',
    status: 'proposed',
    identifier: [{ system: REMINDER_RULE_SYSTEM, value: rule.id }],
    serviceCategory: [{ text: rule.category }],
    description: rule.title,
    requestedPeriod: [{ start: reminder.due, ...(reminder.until ? { end: reminder.until } : {}) }],
    ...(reminder.last ? { comment: `Last recorded: ${reminder.last}` } : {}),
    participant: [{ actor: { reference: `Patient/${patient}` }, required: 'required', status: 'needs-action' }],
  };
}

/** The day to compute for: `date` (YYYY-MM-DD) or today. */
function dayOf(ctx: FhirContext, req: FhirRequest): string {
  const fromQuery = req.query.find(([name]) => name === 'date')?.[1];
  const body = req.body.kind === 'json' ? (req.body.value as { resourceType?: string; parameter?: { name: string; valueDate?: string }[] } | null) : null;
  const date = fromQuery ?? (body?.resourceType === 'Parameters' ? body.parameter?.find((p) => p.name === 'date')?.valueDate : undefined);
  if (date === undefined) return ctx.now().slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || Number.isNaN(Date.parse(date))) throw new Invalid(`date must be a day (YYYY-MM-DD), not "${date}"`, 'date');
  return date;
}

async function reminders(ctx: FhirContext, req: FhirRequest, id: string): Promise<FhirResponse> {
  const today = dayOf(ctx, req);
  const granted = access(req, 'Patient', 'r');
  const read = await ctx.store.read('Patient', id);
  await assertReadable(ctx, granted, read, `Patient/${id}`);
  // As a read of the Patient would answer (R4: 404 unknown, 410 deleted), after the policy.
  if (read.kind === 'missing') throw new NotFound(`Patient/${id}`);
  if (read.kind !== 'found' || !read.version.resource) throw new Gone(`Patient/${id}`);
  const patient = read.version.resource as Patient;
  const due = remindersFor(calendar(), patient, await evidenceOfPatient(ctx, req, id), today);
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'collection',
    timestamp: ctx.now(),
    entry: due.map((reminder) => ({ resource: appointmentOf(reminder, id) })),
  };
  return { status: 200, headers: {}, resource: bundle };
}

export const AGENDA_OPERATIONS: readonly Operation[] = [
  {
    name: 'reminders',
    documentation:
      'GET [base]/Patient/[id]/$reminders?date=YYYY-MM-DD: the vaccinations and organised screenings due (French calendar, profiles/reminders/), as proposed Appointments, not stored, computed from the birth date, gender and the Immunizations and Observations the caller may see. Needs read of the Patient and search of Immunization and Observation.',
    types: ['Patient'],
    parameters: [
      { name: 'date', use: 'in', min: 0, max: '1', type: 'date', documentation: 'The day to compute for (default: today).' },
      { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A collection of proposed Appointments, soonest first; requestedPeriod is when each is due.' },
    ],
    instance: { methods: ['GET', 'POST'], handler: (ctx, req, _type, id) => reminders(ctx, req, id) },
  },
];
