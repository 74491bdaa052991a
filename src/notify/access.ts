// notify/access: which accesses to a patient's record the patient is told of, as pure functions of
// the access log (docs/notifications.md). Every access is an AuditEvent written with it (fhir/audited),
// so the notifier derives the notices from the store's change feed: one definition, whatever path
// the access took (read, search, retrieval, write, transaction, operation), on every process.
//
// - A professional's successful access to the record (read, vread, search or history that returned
//   the patient's data, an operation): `read`; a professional's write into it: `write`; a permit a
//   professional records naming themselves: `own-permit`; a document a system (hospital, lab,
//   pharmacy software) or a professional adds: `document`.
// - Declared emergency access ("bris de glace", purpose of use ETREAT) is flagged `emergency`: it is
//   notified at once, never coalesced, and the patient cannot turn it off.
// - Never: the patient's and their representatives' own accesses, refused or failed attempts (they
//   showed nothing), a system reading back what it wrote, organisations (they read no content).
// - Accesses by one agent to one record of one kind within the window form one notice (the first
//   one opens the window, on the access log's own clock: AuditEvent.recorded).

import type { AuditEvent, Communication, Resource } from '@medplum/fhirtypes';
import { parseReference } from '../search/extract.js';
import { NOTIFICATION_CREATOR } from '../policy/decide.js';
import type { Delivery, NoticeKind, Preferences } from '../policy/preferences.js';

export type { NoticeKind };


/** What the patient is told of one access to their record. Ids and codes only. */
export interface Notice {
  patientId: string;
  kind: NoticeKind;
  emergency: boolean;
  /** Who: `Practitioner/<id>`, or for a system the client id `client:<id>`. */
  agent: string;
  /** The profession (TRE_G15 code) and specialty of a professional, from the access record. */
  profession?: string;
  specialty?: string;
  /** The organisation the professional works for, or that operates the system. */
  organizationId?: string;
  /** When (AuditEvent.recorded). */
  at: string;
  /** The access record (`AuditEvent/<id>`), which the patient reads in their access log. */
  record: string;
  /** For an `account` notice: the transition the server made (window-ended, archive, majority). */
  transition?: string;
}

const RESTFUL_INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const PROFESSION = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const SPECIALTY = 'https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale';
const CLIENT_SYSTEM = 'urn:carnet:client';
/** The server's account scheduler (accounts/scheduler.ts SCHEDULER_CLIENT): its transitions are told to the person. */
const ACCOUNT_SCHEDULER = 'carnet:account-scheduler';
const INTERACTION_SYSTEM = 'urn:carnet:interaction';
/** The scheduled transitions the person is told of (a purge names nobody; the others are the person's own acts). */
const TOLD_TRANSITIONS = new Set(['account-window-ended', 'account-archive', 'account-majority']);

const READS = new Set(['read', 'vread', 'history-instance', 'history-type', 'history-system', 'search-type', 'search-system', 'operation']);
const WRITES = new Set(['create', 'update', 'patch', 'delete', 'transaction', 'batch']);

function referenced(reference: string | undefined): [string, string] | undefined {
  const parsed = typeof reference === 'string' ? parseReference(reference) : null;
  return parsed && parsed[0] !== null && parsed[1] !== null ? [parsed[0], parsed[1]] : undefined;
}

/** The notices one access record gives (one per patient it names), none for what is not notified. */
export function noticesOf(event: AuditEvent & { id?: string }): Notice[] {
  if (event.outcome !== '0' || !event.id || !event.recorded) return [];
  const interaction = event.subtype?.find((c) => c.system === RESTFUL_INTERACTION)?.code ?? '';
  const read = READS.has(interaction);
  if (!read && !WRITES.has(interaction)) return [];
  const requestor = event.agent?.find((a) => a.requestor === true);
  if (!requestor) return [];
  const who = referenced(requestor.who?.reference);
  const organization = event.agent?.map((a) => referenced(a.who?.reference)).find((r) => r?.[0] === 'Organization' && r[1] !== who?.[1]);
  const touched = (event.entity ?? []).map((e) => referenced(e.what?.reference)).filter((r): r is [string, string] => r !== undefined);
  const patients = touched.filter(([type]) => type === 'Patient').map(([, id]) => id);
  const types = new Set(touched.map(([type]) => type));
  let agent: string;
  let kind: NoticeKind;
  const extra: Partial<Notice> = {};
  if (who?.[0] === 'Practitioner') {
    agent = `Practitioner/${who[1]}`;
    kind = read ? 'read' : types.has('DocumentReference') && interaction !== 'delete' ? 'document' : interaction === 'create' && types.has('Consent') ? 'own-permit' : 'write';
    const profession = requestor.role?.flatMap((r) => r.coding ?? []).find((c) => c.system === PROFESSION)?.code;
    const specialty = requestor.role?.flatMap((r) => r.coding ?? []).find((c) => c.system === SPECIALTY)?.code;
    if (profession) extra.profession = profession;
    if (specialty) extra.specialty = specialty;
  } else if (requestor.who?.identifier?.system === CLIENT_SYSTEM && requestor.who.identifier.value === ACCOUNT_SCHEDULER) {
    // The server moved the account (docs/accounts.md): the person is told.
    const transition = event.subtype?.find((c) => c.system === INTERACTION_SYSTEM && TOLD_TRANSITIONS.has(c.code ?? ''))?.code;
    if (!transition) return [];
    agent = `client:${ACCOUNT_SCHEDULER}`;
    kind = 'account';
    extra.transition = transition.replace(/^account-/, '');
  } else if (who === undefined && requestor.who?.identifier?.system === CLIENT_SYSTEM && requestor.who.identifier.value) {
    // A vendor system: it reads back only what it wrote; what the patient hears of is a new document.
    if (read || !types.has('DocumentReference') || interaction === 'delete') return [];
    agent = `client:${requestor.who.identifier.value}`;
    kind = 'document';
  } else {
    // The patient, their representatives, an organisation: not notified.
    return [];
  }
  if (organization) extra.organizationId = organization[1];
  const emergency = (requestor.purposeOfUse ?? []).some((p) => (p.coding ?? []).some((c) => c.system === ACT_REASON && c.code === 'ETREAT'));
  return [...new Set(patients)].map((patientId) => ({ patientId, kind, emergency, agent, at: event.recorded as string, record: `AuditEvent/${event.id}`, ...extra }));
}

/** Whether `notice` opens a new notification, given when the last one for the same (patient, agent, kind) was (the window's start). */
export function opensNotification(notice: Notice, lastOpened: string | undefined, windowMs: number): boolean {
  if (notice.emergency || notice.kind === 'own-permit') return true;
  if (lastOpened === undefined) return true;
  return Date.parse(notice.at) - Date.parse(lastOpened) >= windowMs;
}

/** The coalescing key of a notice: one notification per key and window. */
export function windowKey(notice: Pick<Notice, 'patientId' | 'agent' | 'kind'>): string {
  return `${notice.patientId} ${notice.agent} ${notice.kind}`;
}

/** How a notice is delivered: emergency accesses always reach the inbox and the subscriptions. */
export function deliveryOf(notice: Notice, preferences: Preferences): Delivery {
  return notice.emergency ? 'push' : preferences[notice.kind];
}


// ---------------------------------------------------------------------------------------------
// The notification itself: a Communication in the patient's inbox, naming who, when and what kind.

/** Who, as the directory gives them (the notifier reads it); absent parts are left out of the text. */
export interface WhoIs {
  name?: string;
  profession?: string;
  organization?: string;
}

/** Codes of the kind of access in a notification's `reasonCode`. */
export const NOTICE_SYSTEM = 'https://carnet.example.org/fhir/CodeSystem/access-notification';

const PHRASES: Record<NoticeKind, string> = {
  read: 'consulted your record',
  write: 'wrote into your record',
  'own-permit': 'recorded that you agreed to their access to your record (you can withdraw it at any time)',
  document: 'added a document to your record',
  account: 'changed your account',
};

/** What the person is told of a transition of their account the server made. */
const TRANSITIONS: Record<string, string> = {
  'window-ended': 'Your health space is open: the six weeks to object have ended. You can close it at any time.',
  archive: 'Your closed health space has been archived: it is kept ten years, then erased.',
  majority: 'You are of age: your legal representatives no longer have access to your health space. What was kept confidential from them stays so.',
};

function describe(who: WhoIs, fallback: string): string {
  const role = [who.profession, who.organization].filter((p): p is string => !!p).join(', ');
  return `${who.name ?? fallback}${role ? ` (${role})` : ''}`;
}

/** The notification Communication of a notice (its id given by the caller). */
export function notificationOf(notice: Notice, who: WhoIs, id: string): Communication & { id: string } {
  const sender = notice.agent.startsWith('Practitioner/') ? notice.agent : notice.organizationId && notice.kind !== 'account' ? `Organization/${notice.organizationId}` : undefined;
  const when = `${notice.at.slice(0, 10)} at ${notice.at.slice(11, 16)} UTC`;
  const text =
    notice.kind === 'account'
      ? `${TRANSITIONS[notice.transition ?? ''] ?? 'Your account changed.'} (${when})`
      : `${notice.emergency ? 'Emergency access ("bris de glace"): ' : ''}${describe(who, notice.agent.startsWith('client:') ? 'A health software' : 'A professional')} ${PHRASES[notice.kind]} on ${when}.`;
  return {
    resourceType: 'Communication',
    id,
    status: 'completed',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'notification' }] }],
    ...(notice.emergency ? { priority: 'urgent' as const } : {}),
    reasonCode: [{ coding: [{ system: NOTICE_SYSTEM, code: notice.emergency ? 'emergency' : notice.kind }] }],
    subject: { reference: `Patient/${notice.patientId}` },
    recipient: [{ reference: `Patient/${notice.patientId}` }],
    ...(sender ? { sender: { reference: sender } } : {}),
    about: [{ reference: notice.record }],
    sent: notice.at,
    payload: [{ contentString: text }],
  };
}

/** Whether a stored resource is a notification the server wrote (creator from the store envelope). */
export function isNotification(resource: Resource, creator: string | undefined): boolean {
  return resource.resourceType === 'Communication' && creator === NOTIFICATION_CREATOR;
}
