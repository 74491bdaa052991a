// policy/consents: a patient's choices, read from ordinary FHIR Consent resources. Five shapes
// are understood (docs/consent.md), the fifth a patient's grant of an app of the catalogue; an active Consent of any other shape is refused when it is
// written (consentIssues), so that no choice the patient believes in force is stored and ignored.

import type { Consent, ConsentProvision, Patient, Reference } from '@medplum/fhirtypes';
import { dateRange } from '../search/normalize.js';
import { PROFILE_TYPES } from './matrix.js';
import { CLIENT_ID_SYSTEM } from '../auth/clients.js';

export const PURPOSE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
export const CONSENT_SCOPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/consentscope';

/** When a rule applies (Consent.provision.period), in epoch milliseconds; open ends are absent. */
export interface RulePeriod {
  start?: number;
  end?: number;
}

/** One understood choice of the patient. A Consent naming several actors or documents gives one rule each. */
export type ConsentRule = (
  | { kind: 'care-relationship'; practitionerId: string }
  | { kind: 'block'; target: { type: 'Practitioner' | 'Organization'; id: string } }
  /** A masked resource: a document, or an entry of the medical profile (PROFILE_TYPES). */
  | { kind: 'mask'; resourceType: string; documentId: string }
  | { kind: 'emergency-off' }
  | { kind: 'app'; clientId: string }
) & { consentId: string; period?: RulePeriod };

const ID = '[A-Za-z0-9\\-.]{1,64}';
/** What a mask may name: a document, or an entry of the medical profile. */
const MASKABLE: readonly string[] = ['DocumentReference', ...PROFILE_TYPES];
const REFERENCE = new RegExp(`(?:^|/)(Practitioner|Organization|Patient|${MASKABLE.join('|')})/(${ID})$`);

function target(reference: Reference | undefined): { type: string; id: string } | undefined {
  const match = typeof reference?.reference === 'string' ? REFERENCE.exec(reference.reference) : null;
  return match ? { type: match[1], id: match[2] } : undefined;
}

/**
 * The client id of an app of the catalogue, named as a Consent actor: a logical reference to the
 * Device the app is (R4 Reference.identifier; an app is no FHIR resource of this server), with the
 * client-id system: `{"type": "Device", "identifier": {"system": "urn:carnet:client", "value": "<client id>"}}`.
 */
export function appOf(reference: Reference | undefined): string | undefined {
  if (!reference || reference.reference !== undefined || (reference.type !== undefined && reference.type !== 'Device')) return undefined;
  const { system, value } = reference.identifier ?? {};
  return system === CLIENT_ID_SYSTEM && typeof value === 'string' && /^[A-Za-z0-9\-.]{1,64}$/.test(value) ? value : undefined;
}

/** Whether a Consent, of any status, names an app among its actors. */
export function namesApp(consent: Consent): boolean {
  return (consent.provision?.actor ?? []).some((a) => appOf(a.reference) !== undefined);
}

/** Whether the patient's grant of the app `clientId` is in force at `now`: an active permit naming it. */
export function appGranted(state: ConsentState, clientId: string, now: number): boolean {
  return state.rules.some((r) => r.kind === 'app' && r.clientId === clientId && inForce(r, now));
}

function periodOf(provision: ConsentProvision): RulePeriod | undefined {
  const period = provision.period;
  if (!period) return undefined;
  // The bounds the search index gives the same Period (restrict.ts compares them with now).
  const start = period.start !== undefined ? dateRange(period.start)?.[0] : undefined;
  const end = period.end !== undefined ? dateRange(period.end)?.[1] : undefined;
  return { ...(start !== undefined ? { start } : {}), ...(end !== undefined ? { end } : {}) };
}

/** Whether a rule applies at `now` (epoch milliseconds). */
export function inForce(rule: ConsentRule, now: number): boolean {
  return (rule.period?.start === undefined || rule.period.start <= now) && (rule.period?.end === undefined || now <= rule.period.end);
}

/**
 * The rules an active Consent states: one per actor of a permit or block, one per document of a
 * mask, or the emergency-off rule. None for an inactive Consent, and none for a shape the engine
 * does not enforce (consentIssues refuses those on every write).
 */
export function rulesOf(consent: Consent): ConsentRule[] {
  if (consent.status !== 'active' || !consent.id || consentIssues(consent).length > 0) return [];
  const provision = consent.provision as ConsentProvision;
  const base = { consentId: consent.id, ...(provision.period ? { period: periodOf(provision) } : {}) };
  if (provision.type === 'permit') {
    return (provision.actor ?? []).map((a) => {
      const app = appOf(a.reference);
      return app !== undefined ? { ...base, kind: 'app', clientId: app } : { ...base, kind: 'care-relationship', practitionerId: (target(a.reference) as { id: string }).id };
    });
  }
  const actors = (provision.actor ?? []).map((a) => target(a.reference) as { type: string; id: string });
  if ((provision.data ?? []).length > 0) return (provision.data ?? []).map((d) => {
      const named = target(d.reference) as { type: string; id: string };
      return { ...base, kind: 'mask', resourceType: named.type, documentId: named.id };
    });
  if (actors.length > 0) return actors.map((a) => ({ ...base, kind: 'block', target: { type: a.type as 'Practitioner' | 'Organization', id: a.id } }));
  return [{ ...base, kind: 'emergency-off' }];
}

/** One reason a Consent would not be fully enforced, with the element it is about. */
export interface ConsentIssue {
  expression: string;
  diagnostics: string;
}

/** Elements of a provision that would narrow or widen it in ways the engine does not evaluate. */
const UNENFORCED: (keyof ConsentProvision)[] = ['action', 'securityLabel', 'class', 'code', 'dataPeriod', 'provision'];

/**
 * Why an active Consent would not be fully enforced (empty when it is one of the four shapes of
 * docs/consent.md). A Consent that is not active grants and denies nothing, so any shape is kept.
 */
export function consentIssues(consent: Consent): ConsentIssue[] {
  if (consent.status !== 'active') return [];
  const issues: ConsentIssue[] = [];
  const issue = (expression: string, diagnostics: string) => issues.push({ expression: `Consent.${expression}`, diagnostics });
  const privacy = (consent.scope?.coding ?? []).some((c) => c.system === CONSENT_SCOPE_SYSTEM && c.code === 'patient-privacy');
  if (!privacy) issue('scope', 'Carnet enforces privacy consents only (scope consentscope#patient-privacy); this Consent would be stored and not enforced');
  if (!target(consent.patient) || target(consent.patient)?.type !== 'Patient') issue('patient', 'an active Consent names the patient whose choice it is (Consent.patient, Patient/<id>)');
  const provision = consent.provision;
  if (!provision) {
    issue('provision', 'an active Consent states its choice in provision (a permit or a deny)');
    return issues;
  }
  if (provision.type !== 'permit' && provision.type !== 'deny') issue('provision.type', 'provision.type is permit or deny');
  for (const element of UNENFORCED) {
    const value = provision[element];
    if (value !== undefined && (!Array.isArray(value) || value.length > 0)) issue(`provision.${element}`, `provision.${element} is not enforced by Carnet: nested provisions and restrictions by action, label, class, code or data period are refused rather than stored and ignored`);
  }
  const actors = provision.actor ?? [];
  const data = provision.data ?? [];
  const purposes = provision.purpose ?? [];
  actors.forEach((actor, i) => {
    if (appOf(actor.reference) !== undefined) {
      // An app has access only while a permit grants it: there is nothing to deny.
      if (provision.type !== 'permit') issue(`provision.actor[${i}].reference`, 'an app is granted by a permit and revoked by ending that permit (status inactive, or delete it); a deny naming an app is not enforced');
      return;
    }
    const named = target(actor.reference);
    const allowed = provision.type === 'permit' ? ['Practitioner'] : ['Practitioner', 'Organization'];
    const apps = provision.type === 'permit' ? `, or apps of the catalogue by identifier (${CLIENT_ID_SYSTEM})` : '';
    if (!named || !allowed.includes(named.type)) issue(`provision.actor[${i}].reference`, `a ${provision.type ?? ''} names ${allowed.join(' or ')} resources by a literal reference (Type/id)${apps}`);
  });
  data.forEach((item, i) => {
    const named = target(item.reference);
    if (item.meaning !== 'instance') issue(`provision.data[${i}].meaning`, 'a mask names documents as instances (meaning "instance"); related, dependents and authoredby are not enforced');
    if (!named || !MASKABLE.includes(named.type)) issue(`provision.data[${i}].reference`, `a mask names documents or entries of the medical profile by a literal reference (${MASKABLE.join(', ')}: Type/id)`);
  });
  const etreat = purposes.length > 0 && purposes.every((p) => p.system === PURPOSE_SYSTEM && p.code === 'ETREAT');
  if (purposes.length > 0 && (!etreat || provision.type !== 'deny' || actors.length > 0 || data.length > 0)) {
    issue('provision.purpose', 'a purpose is only understood alone, in a deny of emergency access (v3-ActReason#ETREAT)');
  }
  if (provision.type === 'permit' && actors.length === 0) issue('provision.actor', 'a permit names the professionals or apps it opens the record to');
  if (provision.type === 'permit' && data.length > 0) issue('provision.data', 'a permit opens the whole record to its actors (an app: what its registered scopes allow); a permit limited to some documents is not enforced');
  if (provision.type === 'deny' && actors.length > 0 && data.length > 0) issue('provision', 'a deny names either professionals or organisations (a block) or documents (a mask), not both: a mask for some professionals only is not enforced');
  if (provision.type === 'deny' && actors.length === 0 && data.length === 0 && purposes.length === 0) issue('provision', 'a deny names professionals or organisations, documents, or the purpose ETREAT; a deny of everything is not a choice Carnet enforces (close the account instead)');
  const period = provision.period;
  if (period) {
    const start = period.start !== undefined ? dateRange(period.start) : undefined;
    const end = period.end !== undefined ? dateRange(period.end) : undefined;
    if (start === null) issue('provision.period.start', 'not a date or dateTime');
    if (end === null) issue('provision.period.end', 'not a date or dateTime');
    if (start && end && start[0] > end[1]) issue('provision.period', 'the period ends before it starts');
  }
  return issues;
}

/** What the policy knows of one patient: the Patient resource and their active choices. */
export interface ConsentState {
  patientId: string;
  patient?: Patient;
  /** Every rule of the active Consents, whatever their period (decisions keep those inForce). */
  rules: ConsentRule[];
  /** The active Consents the rules were read from (restrict.ts evaluates its conditions on them). */
  consents: Consent[];
  /** False when the patient has more active Consents than were loaded. */
  complete: boolean;
}

export function stateOf(patientId: string, patient: Patient | undefined, consents: Consent[], complete = true): ConsentState {
  return { patientId, ...(patient ? { patient } : {}), rules: consents.flatMap(rulesOf), consents, complete };
}
