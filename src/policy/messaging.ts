// policy/messaging: the write rules of secure messaging (docs/messaging.md), pure. Every
// Communication a client writes is a message; the server's own are the patient's notifications
// (NOTIFICATION_CREATOR), which nobody else writes or changes. Read rules are decide.ts (takesPart)
// and restrict.ts; write.ts sends Communications here.
//
// The thread model: a professional opens a conversation with a first message carrying `topic`;
// every reply names that first message in `partOf` (a flat thread: `Communication?part-of=` lists
// it whole), and may name the message it answers in `inResponseTo`. The patient side only replies.
// A message does not change once sent, except `received`, set once by one of its recipients (the
// read receipt), and its retraction by its sender (`status` entered-in-error). Nobody deletes one.

import type { Communication, Resource } from '@medplum/fhirtypes';
import { parseReference } from '../search/extract.js';
import { changed as changedElements } from './json.js';
import {
  careAccess,
  creatorKey,
  emergencyOnly,
  hidden,
  namesActor,
  NOTIFICATION_CREATOR,
  PERMIT,
  recordRefusal,
  refused,
  takesPart,
  type Decision,
} from './decide.js';
import type { Actor } from '../auth/actor.js';
import type { WriteInput } from './write.js';

/** The category of the server's notifications (notify/access.ts): no client writes it. */
export const NOTIFICATION_CATEGORY = { system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'notification' };

/** The read receipt, and the status of a retracted message: what changes once a message is sent. */
const RECEIPT = 'received';
const RETRACTED = 'entered-in-error';

type Issue = { expression: string; diagnostics: string };

/** The id of the conversation a message replies in (its first `partOf`, a Communication), if any. */
export function threadOf(message: Resource): string | undefined {
  const reference = (message as Communication).partOf?.[0]?.reference;
  const parsed = reference ? parseReference(reference) : null;
  return parsed && parsed[0] === 'Communication' && parsed[1] !== null ? parsed[1] : undefined;
}

function hasNotificationCategory(message: Resource): boolean {
  return ((message as Communication).category ?? []).some((c) => (c.coding ?? []).some((x) => x.system === NOTIFICATION_CATEGORY.system && x.code === NOTIFICATION_CATEGORY.code));
}

function reference(ref: string | undefined): [string, string] | undefined {
  const parsed = ref ? parseReference(ref) : null;
  return parsed && parsed[0] !== null && parsed[1] !== null ? [parsed[0], parsed[1]] : undefined;
}

/** What makes a message well formed (422), whoever sends it. */
export function messageIssues(message: Communication): Issue[] {
  const issues: Issue[] = [];
  const subject = reference(message.subject?.reference);
  if (subject?.[0] !== 'Patient') issues.push({ expression: 'Communication.subject', diagnostics: 'a message names the patient the conversation is about (subject: Patient/<id>)' });
  if ((message.recipient ?? []).length === 0) issues.push({ expression: 'Communication.recipient', diagnostics: 'a message is addressed to someone (recipient)' });
  if (message.sender === undefined) issues.push({ expression: 'Communication.sender', diagnostics: 'a message names its sender' });
  (message.recipient ?? []).forEach((r, i) => {
    const target = reference(r.reference);
    const ok = target !== undefined && (target[0] === 'Practitioner' || target[0] === 'RelatedPerson' || (target[0] === 'Patient' && target[1] === subject?.[1]));
    if (!ok) issues.push({ expression: `Communication.recipient[${i}]`, diagnostics: 'a message is addressed to the patient it is about, their representatives or professionals' });
  });
  if ((message.partOf ?? []).length > 0 && (message.partOf?.length !== 1 || threadOf(message) === undefined)) {
    issues.push({ expression: 'Communication.partOf', diagnostics: 'a reply names the first message of its conversation, one Communication (partOf: Communication/<id>)' });
  }
  if (message.partOf === undefined && message.topic === undefined) issues.push({ expression: 'Communication.topic', diagnostics: 'the first message of a conversation says what it is about (topic)' });
  if (message.received !== undefined) issues.push({ expression: 'Communication.received', diagnostics: 'received is the read receipt, set by a recipient once the message is sent' });
  return issues;
}

/** The participants of a conversation: its first message's sender and recipients. */
function participants(first: Communication): (string | undefined)[] {
  return [first.sender?.reference, ...(first.recipient ?? []).map((r) => r.reference)];
}

/** A reply: the conversation exists, the actor takes part in it, it stays within it. */
function replyRefusal(actor: Actor, message: Communication, thread: WriteInput['thread']): Decision | undefined {
  // A conversation the actor cannot see, or does not take part in, answers as one that does not
  // exist: the answer says nothing of another's conversations.
  if (!thread || !takesPart(actor, thread.resource)) {
    const diagnostics = `no conversation Communication/${threadOf(message)} that you take part in`;
    return { permit: false, status: 422, reason: diagnostics, issues: [{ expression: 'Communication.partOf', diagnostics }] };
  }
  const first = thread.resource as Communication;
  if (thread.creator === NOTIFICATION_CREATOR || first.partOf !== undefined) return refused('partOf names the first message of a conversation');
  if (reference(first.sender?.reference)?.[0] !== 'Practitioner') return refused('the patient replies in a conversation a professional opened');
  if (first.subject?.reference !== message.subject?.reference) return refused('a reply is about the patient of its conversation (subject)');
  const members = participants(first);
  const outsiders = (message.recipient ?? []).filter((r) => !members.some((m) => m !== undefined && reference(m)?.join('/') === reference(r.reference)?.join('/')));
  if (outsiders.length > 0) return refused(`a reply goes to the participants of its conversation (not ${outsiders.map((r) => r.reference).join(', ')})`);
  return undefined;
}

/** Sending a message (a create). */
function send(input: WriteInput, closed: Decision | undefined): Decision {
  const { actor, state, now } = input;
  const message = input.after as Communication;
  const issues = messageIssues(message);
  if (issues.length > 0) return { permit: false, status: 422, reason: issues.map((i) => i.diagnostics).join('; '), issues };
  const opening = message.partOf === undefined;
  if (actor.kind === 'practitioner') {
    if (!state) return hidden('no such patient');
    // Opening a conversation enters the record (a care relationship or emergency access); a
    // participant replies as an author changes their document. Never blocked, never once closed.
    const care = careAccess(actor, state, now);
    const refusal = recordRefusal(care, !opening);
    if (refusal) return refusal;
    const own = ownSender(actor, message) ?? (opening ? undefined : replyRefusal(actor, message, input.thread));
    return own ?? { permit: true, emergency: emergencyOnly(care, !opening) };
  }
  if (closed) return closed;
  if (opening) return refused('a patient cannot start a conversation: they reply inside one a professional opened (partOf: Communication/<its first message>)');
  return ownSender(actor, message) ?? replyRefusal(actor, message, input.thread) ?? PERMIT;
}

/** A message is sent in one's own name. */
function ownSender(actor: Actor, message: Communication): Decision | undefined {
  return namesActor(actor, [message.sender?.reference]) ? undefined : refused('a message is sent in one\'s own name (sender)');
}

/** Changing a sent message: the read receipt by a recipient, the retraction by its sender. */
function change(input: WriteInput, closed: Decision | undefined): Decision {
  const { actor, action, before, after, state, now } = input;
  const previous = before?.resource as Communication | undefined;
  if (!previous) return hidden('nothing to change');
  if (action === 'delete' || !after) return refused('a message stays in the record: its sender retracts it (status entered-in-error), nobody deletes it');
  if (actor.kind === 'practitioner') {
    if (!state) return hidden('no such patient');
    const refusal = recordRefusal(careAccess(actor, state, now), true);
    if (refusal) return refusal;
  } else if (closed) return closed;
  const sender = before?.creator === creatorKey(actor);
  const changed = changedElements(previous, after);
  if (changed.length === 0) return sender ? PERMIT : refused('only the recipients of a message set its read receipt (received)');
  if (changed.length === 1 && changed[0] === RECEIPT) {
    const recipient = namesActor(actor, (previous.recipient ?? []).map((r) => r.reference));
    if (!recipient) return refused('only a recipient of the message sets its read receipt (received)');
    if (previous.received !== undefined) return refused('the read receipt (received) is set once');
    return PERMIT;
  }
  if (changed.length === 1 && changed[0] === 'status' && (after as Communication).status === RETRACTED) {
    return sender ? PERMIT : refused('only the sender retracts a message');
  }
  return refused(`a message does not change once sent: a recipient sets received, the sender may retract it (status entered-in-error); changed: ${changed.join(', ')}`);
}

/**
 * May the actor write this Communication? The server's notifications are nobody else's; a vendor
 * system (hospital messaging software) pushes messages as it pushes other record content
 * (`record`, write.ts); people follow the messaging rules. `closed`: the refusal of a write into
 * an account that takes nothing, for the patient side.
 */
export function messageWrite(input: WriteInput, record: (input: WriteInput) => Decision, closed: Decision | undefined): Decision {
  const { actor, action, before, after } = input;
  if (before?.creator === NOTIFICATION_CREATOR) return refused('notification Communications are the server\'s: nobody changes them');
  if (after && hasNotificationCategory(after)) return refused('the category notification is the server\'s (the patient\'s access notifications)');
  if (actor.kind === 'system') return record(input);
  return action === 'create' ? send(input, closed) : change(input, closed);
}

