// policy/write: may this actor make this change? The write model of docs/consent.md ("Who writes
// what"), as one pure function. Pure: the caller (policy/index.ts) loads the consent states and
// has already decided that the actor may read what the change replaces or removes.
//
// The model, by kind of resource:
// - AuditEvent: the server alone. Every client write is refused.
// - Directory (Practitioner, PractitionerRole, Organization): the directory feed alone, a system
//   token whose scope names the type (`system/Practitioner.cu`); a wildcard scope is not enough.
// - Consent: the patient and their representatives; a professional only records a permit naming
//   themselves alone (the patient is notified); an app (a patient token issued to a client) never
//   writes a Consent naming an app; a Consent the engine would not enforce is 422.
// - Patient: created by a system (identity or enrolment feed); changed by the patient side or by
//   the system that created it, except `identifier` (the INS) that only that system changes,
//   `generalPractitioner` that only the patient side changes, and the account (its extension and
//   `active`, policy/account.ts) that only the account operations change, each by its own actor
//   (ACCOUNT_ACTORS). Deleted only by the system that created it.
// - The record's content (documents and every other resource of the patient compartment):
//   nothing is created or changed in an objected, closed, archived or purged account (403 naming
//   the state); otherwise created by a system, by the patient side (a document they deposit names them as author), or
//   by a professional with a care relationship or emergency access (the patient is notified);
//   changed or deleted by its author only, and never moved to another record or re-authored.
// - Communication: the server's notifications are nobody else's; every other one is a message
//   (policy/messaging.ts): a professional opens a conversation, the patient side replies in it, a
//   recipient sets the read receipt; vendor systems push messages as other record content.
// - Binary: with a securityContext, as writable as that resource; its bytes change by their creator.
// - Subscription: anyone but an organisation creates one; only its owner (creator) changes it.
// What the patient is told of a write (a notification) is derived from its AuditEvent (notify/).

import type { Consent, Patient, Resource } from '@medplum/fhirtypes';
import { preferenceIssues } from './preferences.js';
import { changed, sameJson } from './json.js';
import { messageWrite } from './messaging.js';
import { ACCOUNT_EXTENSION, accountOf, acceptsPushes, activeAgrees, type AccountEventKind } from './account.js';
import type { Actor } from '../auth/actor.js';
import { grantsFor, type Permission } from '../auth/scopes.js';
import { consentIssues, namesApp, rulesOf, type ConsentState } from './consents.js';
import { DIRECTORY, OWNED_TYPES, patientOf } from './compartment.js';
import {
  authors,
  careAccess,
  creatorKey,
  depositedByPatient,
  emergencyOnly,
  hidden,
  PERMIT,
  recordRefusal,
  refersTo,
  refused,
  type Decision,
  type WriteAction,
} from './decide.js';

export interface WriteInput {
  actor: Actor;
  action: WriteAction;
  /** What is replaced or removed (update, delete), with its creator; the actor may read it. */
  before?: { resource: Resource; creator?: string };
  /** The new content (create, update). */
  after?: Resource;
  /** The consent state of the patient whose record is written (the resource's patient). */
  state?: ConsentState;
  /**
   * For a message replying in a conversation (Communication.partOf): the conversation's first
   * message with its creator, when the actor may read it; absent when it is missing or hidden.
   */
  thread?: { resource: Resource; creator?: string };
  /** The account transition this write of a Patient carries: set by the account operations alone (fhir/accounts.ts). */
  account?: AccountEventKind;
  now: number;
}

/**
 * Who makes each account transition (docs/accounts.md). Empty: the server's scheduler alone, which
 * writes through the store (accounts/scheduler.ts), never through a client's request.
 */
export const ACCOUNT_ACTORS: Record<AccountEventKind, readonly Actor['kind'][]> = {
  enrol: ['system'],
  activate: ['patient', 'representative'],
  object: ['patient', 'representative'],
  // The person, or at their death the feed that created the Patient.
  close: ['patient', 'representative', 'system'],
  'window-ended': [],
  archive: [],
  purge: [],
  majority: [],
};

export { sameJson };

const PERMISSION: Record<WriteAction, Permission> = { create: 'c', update: 'u', delete: 'd' };

/** The directory feed: a system token whose scope names the directory type itself. */
export function directoryWriter(actor: Actor, type: string, action: WriteAction): boolean {
  return actor.kind === 'system' && grantsFor(actor.grants, type, PERMISSION[action]).some((g) => g.context === 'system' && g.type === type);
}

function patientSide(actor: Actor): actor is Extract<Actor, { kind: 'patient' | 'representative' }> {
  return actor.kind === 'patient' || actor.kind === 'representative';
}

/** Whether `creator` (a store envelope's creator key) is the patient or one of their representatives. */
function createdByPatientSide(creator: string | undefined): boolean {
  return creator !== undefined && (creator.startsWith('patient:') || creator.startsWith('related-person:'));
}

function consentWrite(input: WriteInput): Decision {
  const { actor, action, before, after, state } = input;
  const own = actor.kind === 'practitioner' && action === 'create';
  if (!patientSide(actor) && !own) return refused('a patient\'s choices are written by the patient or their legal representative');
  // An app never grants apps (itself or another) nor revokes one: the patient does, themselves.
  if (patientSide(actor) && actor.clientId !== undefined && [before?.resource, after].some((r) => r !== undefined && namesApp(r as Consent))) {
    return refused('a patient grants and revokes apps themselves, never through an app');
  }
  if (after) {
    const issues = consentIssues(after as Consent);
    if (issues.length > 0) return { permit: false, status: 422, reason: issues.map((i) => i.diagnostics).join('; '), issues };
  }
  if (patientSide(actor) || actor.kind !== 'practitioner' || !after) return PERMIT;
  // A professional records that the patient agreed to their care: a permit naming them alone.
  const rules = rulesOf(after as Consent);
  if (!(rules.length === 1 && rules[0].kind === 'care-relationship' && rules[0].practitionerId === actor.practitionerId)) {
    return refused('a professional records only a permit naming themselves alone; the patient\'s other choices are theirs');
  }
  if (!state?.patient) return hidden('no such patient');
  const care = careAccess(actor, state, input.now);
  if (care.blocked) return hidden('the patient has blocked this professional or their organisation');
  if (care.closed) return hidden(`the patient's account is ${care.account ?? 'closed'}`);
  return PERMIT;
}

/** The account extension of a Patient, for comparison. */
function accountElement(resource: Resource | undefined): unknown {
  return (resource as Patient | undefined)?.extension?.find((e) => e.url === ACCOUNT_EXTENSION);
}

/** A write carrying an account transition: its actor's, and nothing but the account changes. */
function accountWrite(input: WriteInput & { account: AccountEventKind }): Decision {
  const { actor, action, before, after, account } = input;
  const allowed = ACCOUNT_ACTORS[account];
  if (!allowed.includes(actor.kind)) return refused(allowed.length > 0 ? `${account} is done by ${allowed.join(' or ')}` : `${account} is done by the server's scheduler`);
  if (action === 'create') return account === 'enrol' ? PERMIT : refused(`${account} changes an existing account`);
  if (account === 'enrol' || !before || !after) return refused(`${account} changes an existing account`);
  // At death the feed closes the account it enrolled; nobody else's.
  if (actor.kind === 'system' && before.creator !== creatorKey(actor)) return refused('an account is closed by the person, or at their death by the feed that enrolled them');
  const { extension: _a, active: _b, meta: _c, ...restBefore } = before.resource as Patient;
  const { extension: _d, active: _e, meta: _f, ...restAfter } = after as Patient;
  const others = (r: Resource) => ((r as Patient).extension ?? []).filter((e) => e.url !== ACCOUNT_EXTENSION);
  if (!sameJson(restBefore, restAfter) || !sameJson(others(before.resource), others(after))) return refused(`${account} changes the account and nothing else`);
  return PERMIT;
}

function patientWrite(input: WriteInput): Decision {
  const { actor, action, before, after } = input;
  if (input.account !== undefined) return accountWrite({ ...input, account: input.account });
  if (action === 'create') {
    if (actor.kind !== 'system') return refused('a Patient is created by the identity or enrolment feed (a system), not by a person');
    return accountElement(after) === undefined ? PERMIT : refused(`an account (${ACCOUNT_EXTENSION}) is created by POST [base]/Patient/$enrol, not written`);
  }
  const mine = actor.kind === 'system' && before?.creator === creatorKey(actor);
  if (action === 'delete') return mine ? PERMIT : refused('an account is closed through its lifecycle, not deleted');
  if (!mine && !patientSide(actor)) return refused('the Patient resource is changed by the patient, their representative or the feed that created it');
  if (after) {
    const issues = preferenceIssues(after as Patient);
    if (issues.length > 0) return { permit: false, status: 422, reason: issues.map((i) => i.diagnostics).join('; '), issues };
  }
  if (before && after) {
    const protectedElements = mine ? ['generalPractitioner'] : ['identifier'];
    const fixed = changed(before.resource, after, protectedElements);
    // The account (its extension, and `active` derived from it) changes through its operations
    // alone (docs/accounts.md). An update that leaves `active` out keeps it (the server sets it).
    if (!sameJson(accountElement(before.resource), accountElement(after))) fixed.push('extension');
    else if (accountOf(before.resource as Patient).state !== accountOf(after as Patient).state || !activeAgrees(after as Patient)) fixed.push('active');
    if (fixed.length > 0) {
      const why: Record<string, string> = {
        active: 'active is the account\'s state, changed only by the account operations ($activate, $object, $close)',
        extension: `the account (${ACCOUNT_EXTENSION}) is changed only by the account operations ($activate, $object, $close)`,
        generalPractitioner: 'only the patient (or their representative) chooses their general practitioner',
        identifier: 'the identifiers (INS) are set by the identity feed',
      };
      return refused(fixed.map((e) => `Patient.${e}: ${why[e]}`).join('; '));
    }
  }
  return PERMIT;
}

/**
 * Whether the patient's account takes this content (a create or a change): not once objected,
 * closed, archived or purged. Undefined when it does. The refusal names the state.
 */
function accountRefusal(state: ConsentState | undefined): Decision | undefined {
  if (!state?.patient) return undefined;
  const account = accountOf(state.patient).state;
  return acceptsPushes(account) ? undefined : refused(`the account of Patient/${state.patientId} is ${account}: nothing is written into it`);
}

/**
 * The refusal of a write of content into an account that takes none, undefined otherwise. A
 * professional without access learns nothing of the account: recordRefusal hides it instead.
 */
function closedRecord(input: WriteInput): Decision | undefined {
  return input.after && input.actor.kind !== 'practitioner' ? accountRefusal(input.state) : undefined;
}

/** Writes of the record's content: documents and every other resource of a patient compartment. */
function recordWrite(input: WriteInput): Decision {
  const { actor, action, before, after, state, now } = input;
  const type = (after ?? before?.resource)?.resourceType;
  const closed = closedRecord(input);
  if (closed) return closed;
  if (action === 'create') {
    switch (actor.kind) {
      case 'system':
        return PERMIT;
      case 'patient':
      case 'representative':
        if (type === 'DocumentReference' && after && !depositedByPatient(after)) return refused('a document the patient deposits names the patient or their representative as its author');
        return PERMIT;
      case 'practitioner': {
        if (!state) return PERMIT; // not in a patient's record
        const care = careAccess(actor, state, now);
        // Being named author gives no right to write: a care relationship (or ETREAT) does.
        const refusal = recordRefusal(care);
        if (refusal) return refusal;
        return { permit: true, emergency: emergencyOnly(care) };
      }
      case 'organisation':
        return refused(`a ${actor.role} never writes record content`);
    }
  }
  const previous = before?.resource;
  if (!previous) return hidden('nothing to change');
  const author = authorOf(actor, previous, before?.creator);
  if (!author) return refused(`only the author of this ${previous.resourceType} changes it`);
  if (after) {
    if (patientOf(after) !== patientOf(previous)) return refused('a resource stays in the record it was written into: delete it (or mark it entered-in-error) and write it again in the right one');
    if (previous.resourceType === 'DocumentReference' && changed(previous, after, ['author']).length > 0) return refused('the author of a document does not change');
  }
  if (actor.kind === 'practitioner' && state) {
    const care = careAccess(actor, state, now);
    const named = authors(previous).some((ref) => refersTo(ref, 'Practitioner', actor.practitionerId));
    const refusal = recordRefusal(care, named);
    if (refusal) return refusal;
    return { permit: true, emergency: emergencyOnly(care, named) };
  }
  return PERMIT;
}

/**
 * Whether the actor is the author of a stored resource: its creator (the system that pushed it,
 * the professional or the patient who wrote it), a professional named in a document's author,
 * or for the patient side a document they deposited.
 */
function authorOf(actor: Actor, resource: Resource, creator: string | undefined): boolean {
  if (creator !== undefined && creator === creatorKey(actor)) return true;
  switch (actor.kind) {
    case 'practitioner':
      return resource.resourceType === 'DocumentReference' && authors(resource).some((ref) => refersTo(ref, 'Practitioner', actor.practitionerId));
    case 'patient':
    case 'representative':
      return resource.resourceType === 'DocumentReference' ? depositedByPatient(resource) : createdByPatientSide(creator);
    default:
      return false;
  }
}

/** May the actor make this change? (The caller checked that they may read what it replaces.) */
export function decideWrite(input: WriteInput): Decision {
  const { actor, action } = input;
  const resource = (input.after ?? input.before?.resource) as Resource;
  const type = resource.resourceType;
  if (actor.kind === 'organisation') return refused(`a ${actor.role} never writes record content`);
  if (type === 'AuditEvent') return refused('AuditEvents are written by the server alone');
  if (DIRECTORY.has(type)) {
    return directoryWriter(actor, type, action) ? PERMIT : refused(`the directory is written by the directory feed alone: a system token whose scope names ${type} (system/${type}.cud)`);
  }
  if (OWNED_TYPES.has(type)) return action === 'create' || input.before?.creator === creatorKey(actor) ? PERMIT : refused(`a ${type} is changed by its owner only`);
  if (type === 'Consent') return consentWrite(input);
  if (type === 'Patient') return patientWrite(input);
  if (type === 'Communication') return messageWrite(input, recordWrite, closedRecord(input));
  return recordWrite(input);
}

