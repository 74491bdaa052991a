// policy/account: the life of a patient's account (docs/accounts.md) as data on their Patient and
// one pure transition function. Pure: no clock, no store; the caller passes `now` and whether the
// provisional code and INS the person gave match (provisionalCodeMatches), and writes the result.
//
//   (none) --enrol--> notified --activate / window-ended--> open --close--> closed --archive--> archived --purge--> purged
//                     notified --object (before the window ends)--> objected
//
// The state lives in an extension of Patient (ACCOUNT_EXTENSION); Patient.active is derived from
// it (true only when open), so that every rule and query that reads `active` reads the account.
// A Patient without the extension was written before accounts had a lifecycle: its state is read
// from `active` (false: closed, else open).

import { createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import type { Extension, Patient } from '@medplum/fhirtypes';

export const ACCOUNT_EXTENSION = 'https://carnet.example.org/fhir/StructureDefinition/account';

export type AccountState = 'notified' | 'open' | 'objected' | 'closed' | 'archived' | 'purged';

export const ACCOUNT_STATES: readonly AccountState[] = ['notified', 'open', 'objected', 'closed', 'archived', 'purged'];

/** The account as stored on the Patient. Instants are ISO strings. */
export interface Account {
  state: AccountState;
  /** When the objection window ends (notified): the scheduler opens the account then. */
  objectionEnds?: string;
  /** `hmac$<salt>$<mac>` (or, for codes issued before, `scrypt$<salt>$<hash>`) of the provisional code (notified only; never the code). */
  provisionalCode?: string;
  /** When the account was closed (closed, archived). */
  closedAt?: string;
  /** Why: the person, or their death. */
  closedBy?: 'person' | 'death';
  /** When the account was archived (archived): the ten years of keeping count from here. */
  archivedAt?: string;
  /**
   * The eighteenth birthday (a date) of a person enrolled as a minor: that day their legal
   * representatives' access ends (decide.ts `representable`). Kept for good. An account enrolled
   * for an adult has none: their representatives, if any (a guardianship), are not ended by it.
   */
  majority?: string;
  /** The same date while the young adult has not been told yet (the scheduler's `majority` event clears it). */
  majorityNotice?: string;
  /** Wrong $activate attempts so far (notified); at MAX_ACTIVATION_ATTEMPTS the provisional code is dropped. */
  failedAttempts?: number;
}

const DAY = 86_400_000;
/** The objection window: six weeks from the notification. */
export const OBJECTION_WINDOW_MS = 42 * DAY;
/** A closed account stays closed (the person may still export their record) this long, then is archived. */
export const ARCHIVE_GRACE_MS = 30 * DAY;
/** An archive is kept ten years (of 365.25 days), then purged. */
export const ARCHIVE_KEPT_MS = Math.round(10 * 365.25 * DAY);

export type AccountEvent =
  | { kind: 'enrol'; provisionalCode: string; birthDate?: string }
  | { kind: 'activate'; codeMatches: boolean; insMatches: boolean }
  | { kind: 'object' }
  | { kind: 'window-ended' }
  | { kind: 'close'; by: 'person' | 'death' }
  | { kind: 'archive' }
  | { kind: 'purge' }
  | { kind: 'majority' };

export type AccountEventKind = AccountEvent['kind'];

/** Stable codes of refused transitions (clients match the code, not the sentence). */
export type AccountRefusalCode = 'ACCOUNT_EXISTS' | 'ACCOUNT_STATE' | 'ACCOUNT_WINDOW_ENDED' | 'ACCOUNT_WINDOW_OPEN' | 'ACCOUNT_PROOF' | 'ACCOUNT_LOCKED' | 'ACCOUNT_TOO_EARLY';

export type Transition =
  | { ok: true; account: Account }
  /** `record`: the account as it must be stored even so (a wrong $activate attempt is counted). */
  | { ok: false; code: AccountRefusalCode; reason: string; state: AccountState | undefined; record?: Account };

/** Wrong $activate attempts after which the provisional code no longer works (the account still opens at the end of its window). */
export const MAX_ACTIVATION_ATTEMPTS = 5;

/** The states each event leaves from (undefined: no account yet). */
const FROM: Record<AccountEventKind, readonly (AccountState | undefined)[]> = {
  enrol: [undefined],
  activate: ['notified'],
  object: ['notified'],
  'window-ended': ['notified'],
  close: ['open'],
  archive: ['closed'],
  purge: ['archived'],
  majority: ['notified', 'open', 'objected', 'closed', 'archived'],
};

const at = (ms: number) => new Date(ms).toISOString();

function refuse(code: AccountRefusalCode, reason: string, state: AccountState | undefined): Transition {
  return { ok: false, code, reason, state };
}

/**
 * The next state of `account` after `event` at `now` (epoch ms), or why the event is refused.
 * Every refusal names the account's state.
 */
export function transition(account: Account | undefined, event: AccountEvent, now: number): Transition {
  const next = step(account, event, now);
  // A minor's coming of age is still to be told whatever happens to the account meanwhile.
  if (next.ok && account?.majority !== undefined) {
    const notice = event.kind !== 'majority' && account.majorityNotice !== undefined ? { majorityNotice: account.majorityNotice } : {};
    return { ok: true, account: { ...next.account, majority: account.majority, ...notice } };
  }
  return next;
}

function step(account: Account | undefined, event: AccountEvent, now: number): Transition {
  const state = account?.state;
  if (!FROM[event.kind].includes(state)) {
    if (event.kind === 'enrol') return refuse('ACCOUNT_EXISTS', `the account already exists (${state})`, state);
    const from = FROM[event.kind].filter((s): s is AccountState => s !== undefined).join(' or ');
    return refuse('ACCOUNT_STATE', `${event.kind} applies to an account that is ${from}; this one is ${state ?? 'not enrolled'}`, state);
  }
  switch (event.kind) {
    case 'enrol': {
      const majority = event.birthDate !== undefined ? majorityDate(event.birthDate) : undefined;
      const minor = majority !== undefined && now < Date.parse(majority);
      return { ok: true, account: { state: 'notified', objectionEnds: at(now + OBJECTION_WINDOW_MS), provisionalCode: event.provisionalCode, ...(minor ? { majority, majorityNotice: majority } : {}) } };
    }
    case 'majority': {
      const { majorityNotice, ...rest } = account as Account;
      if (majorityNotice === undefined || now < Date.parse(majorityNotice)) return refuse('ACCOUNT_TOO_EARLY', `the person comes of age on ${majorityNotice ?? 'an unknown date'}; account ${state}`, state);
      return { ok: true, account: rest };
    }
    case 'activate': {
      const current = account as Account;
      if (current.provisionalCode === undefined) return refuse('ACCOUNT_LOCKED', `the provisional code no longer works after ${MAX_ACTIVATION_ATTEMPTS} wrong attempts; the account opens at the end of its window (${current.objectionEnds ?? 'unknown'}), or the insurer sends a new letter (account notified)`, state);
      // One answer for either mismatch: the refusal does not tell which of the two was wrong.
      if (!event.codeMatches || !event.insMatches) {
        const failedAttempts = (current.failedAttempts ?? 0) + 1;
        const { provisionalCode: _code, ...withoutCode } = current;
        const record = failedAttempts >= MAX_ACTIVATION_ATTEMPTS ? { ...withoutCode, failedAttempts } : { ...current, failedAttempts };
        return { ...refuse('ACCOUNT_PROOF', `the provisional code or the INS does not match this account (notified); attempt ${failedAttempts} of ${MAX_ACTIVATION_ATTEMPTS}`, state), record } as Transition;
      }
      return { ok: true, account: { state: 'open' } };
    }
    case 'object':
      if (windowEnded(account as Account, now)) return refuse('ACCOUNT_WINDOW_ENDED', `the objection window ended on ${(account as Account).objectionEnds} (account notified, opening)`, state);
      return { ok: true, account: { state: 'objected' } };
    case 'window-ended':
      if (!windowEnded(account as Account, now)) return refuse('ACCOUNT_WINDOW_OPEN', `the objection window runs until ${(account as Account).objectionEnds} (account notified)`, state);
      return { ok: true, account: { state: 'open' } };
    case 'close':
      return { ok: true, account: { state: 'closed', closedAt: at(now), closedBy: event.by } };
    case 'archive': {
      const due = archiveDue(account as Account);
      if (due === undefined || now < Date.parse(due)) return refuse('ACCOUNT_TOO_EARLY', `a closed account is archived ${ARCHIVE_GRACE_MS / DAY} days after it closed (${due ?? 'closing date unknown'}); account closed`, state);
      return { ok: true, account: { state: 'archived', closedAt: (account as Account).closedAt as string, archivedAt: at(now) } };
    }
    case 'purge': {
      const due = purgeDue(account as Account);
      if (due === undefined || now < Date.parse(due)) return refuse('ACCOUNT_TOO_EARLY', `an archive is kept ten years, until ${due ?? 'an unknown date'}; account archived`, state);
      return { ok: true, account: { state: 'purged' } };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Minors: majority at eighteen

/** The age of majority (Code civil, art. 414): until then a minor's legal representatives act for them. */
export const MAJORITY_YEARS = 18;

/**
 * The eighteenth birthday of someone born on `birthDate` (a FHIR date: YYYY, YYYY-MM or
 * YYYY-MM-DD), as YYYY-MM-DD; a partial date counts from its last possible day (a representative
 * never loses access before the real birthday). Born on 29 February: 1 March in a common year.
 * Undefined for a value that is not a FHIR date.
 */
export function majorityDate(birthDate: string): string | undefined {
  const match = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(birthDate);
  if (!match) return undefined;
  const year = Number(match[1]) + MAJORITY_YEARS;
  const month = match[2] !== undefined ? Number(match[2]) : 12;
  const lastDay = new Date(Date.UTC(Number(match[1]), month, 0)).getUTCDate();
  const day = match[3] !== undefined ? Number(match[3]) : lastDay;
  // Date.UTC rolls 29 February of a common year over to 1 March.
  return new Date(Date.UTC(year, month - 1, day)).toISOString().slice(0, 10);
}

/**
 * Whether a legal representative still acts for the patient at `now` (epoch ms): until the
 * majority recorded on an account enrolled for a minor. Without one (an adult's account, a
 * guardianship), the representation is not ended by age.
 */
export function representedAt(patient: Patient, now: number): boolean {
  const majority = accountOf(patient).majority;
  return majority === undefined || now < Date.parse(majority);
}

function windowEnded(account: Account, now: number): boolean {
  return account.objectionEnds !== undefined && now >= Date.parse(account.objectionEnds);
}

/** When a closed account is due to be archived. */
export function archiveDue(account: Account): string | undefined {
  return account.closedAt !== undefined ? at(Date.parse(account.closedAt) + ARCHIVE_GRACE_MS) : undefined;
}

/** When an archived account is due to be purged. */
export function purgeDue(account: Account): string | undefined {
  return account.archivedAt !== undefined ? at(Date.parse(account.archivedAt) + ARCHIVE_KEPT_MS) : undefined;
}

// ---------------------------------------------------------------------------------------------
// What each state allows (read by write.ts and decide.ts)

/** Whether documents pushed for the patient are kept: from enrolment until the account closes. */
export function acceptsPushes(state: AccountState): boolean {
  return state === 'notified' || state === 'open';
}

// ---------------------------------------------------------------------------------------------
// The account as Patient data

/** The account of a Patient: its extension, or for a Patient written before it, `active`. */
export function accountOf(patient: Patient): Account {
  const extension = patient.extension?.find((e) => e.url === ACCOUNT_EXTENSION);
  if (!extension) return { state: patient.active === false ? 'closed' : 'open' };
  const part = (url: string) => extension.extension?.find((e) => e.url === url);
  const state = part('state')?.valueCode as AccountState | undefined;
  if (!state || !ACCOUNT_STATES.includes(state)) throw new Error(`Patient/${patient.id}: the account extension has no valid state`);
  const account: Account = { state };
  const objectionEnds = part('objectionEnds')?.valueDateTime;
  const provisionalCode = part('provisionalCode')?.valueString;
  const closedAt = part('closedAt')?.valueDateTime;
  const closedBy = part('closedBy')?.valueCode;
  const archivedAt = part('archivedAt')?.valueDateTime;
  const majority = part('majority')?.valueDate;
  const majorityNotice = part('majorityNotice')?.valueDate;
  const failedAttempts = part('failedAttempts')?.valueInteger;
  if (objectionEnds !== undefined) account.objectionEnds = objectionEnds;
  if (provisionalCode !== undefined) account.provisionalCode = provisionalCode;
  if (closedAt !== undefined) account.closedAt = closedAt;
  if (closedBy === 'person' || closedBy === 'death') account.closedBy = closedBy;
  if (archivedAt !== undefined) account.archivedAt = archivedAt;
  if (majority !== undefined) account.majority = majority;
  if (majorityNotice !== undefined) account.majorityNotice = majorityNotice;
  if (failedAttempts !== undefined) account.failedAttempts = failedAttempts;
  return account;
}

/** The Patient with this account: the extension replaced, `active` derived (true only when open). */
export function withAccount(patient: Patient, account: Account): Patient {
  const parts: Extension[] = [{ url: 'state', valueCode: account.state }];
  if (account.objectionEnds !== undefined) parts.push({ url: 'objectionEnds', valueDateTime: account.objectionEnds });
  if (account.provisionalCode !== undefined) parts.push({ url: 'provisionalCode', valueString: account.provisionalCode });
  if (account.closedAt !== undefined) parts.push({ url: 'closedAt', valueDateTime: account.closedAt });
  if (account.closedBy !== undefined) parts.push({ url: 'closedBy', valueCode: account.closedBy });
  if (account.archivedAt !== undefined) parts.push({ url: 'archivedAt', valueDateTime: account.archivedAt });
  if (account.majority !== undefined) parts.push({ url: 'majority', valueDate: account.majority });
  if (account.majorityNotice !== undefined) parts.push({ url: 'majorityNotice', valueDate: account.majorityNotice });
  if (account.failedAttempts !== undefined) parts.push({ url: 'failedAttempts', valueInteger: account.failedAttempts });
  const others = (patient.extension ?? []).filter((e) => e.url !== ACCOUNT_EXTENSION);
  return { ...patient, extension: [...others, { url: ACCOUNT_EXTENSION, extension: parts }], active: account.state === 'open' };
}

/** Whether a Patient's `active`, when given, is the one its account derives (true only when open). */
export function activeAgrees(patient: Patient): boolean {
  return patient.active === undefined || patient.active === (accountOf(patient).state === 'open');
}

/**
 * The Patient as stored: `active` set from its account, so that every rule and query reading
 * `active` reads the account (an update leaving it out does not reopen a notified account).
 * A Patient without the account extension is left as it is.
 */
export function withDerivedActive(patient: Patient): Patient {
  if (!patient.extension?.some((e) => e.url === ACCOUNT_EXTENSION)) return patient;
  return { ...patient, active: accountOf(patient).state === 'open' };
}

// ---------------------------------------------------------------------------------------------
// The provisional code: only a salted, keyed hash is stored
//
// New codes are stored as `hmac$<salt>$<HMAC-SHA-256(key, salt || code)>`, the key a server secret
// kept in the data directory (auth/keys.ts loadOrCreateSecret), shared by every process. A slow
// hash (scrypt, about 50 ms of CPU) would make enrolling a million people take hours; it is not
// needed here: the code has about 59 bits of entropy (12 characters of 31), it is worthless after
// the objection window (it is dropped when the account opens), and a stolen database without the
// key gives nothing to guess against. docs/accounts.md. Codes hashed earlier with scrypt
// (`scrypt$<salt>$<hash>`) still verify.

/** The stored form of a new provisional code: `hmac$<salt, base64>$<HMAC-SHA-256, base64>`. */
export function hashProvisionalCode(code: string, key: Buffer, salt: Buffer = randomBytes(16)): string {
  return `hmac$${salt.toString('base64')}$${codeMac(key, salt, code).toString('base64')}`;
}

/** Whether `code` is the provisional code whose hash is `stored` (constant time), under the server's `key`. */
export function provisionalCodeMatches(stored: string | undefined, code: string, key: Buffer): boolean {
  const [scheme, salt, hash] = stored?.split('$') ?? [];
  if (!salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const saltBytes = Buffer.from(salt, 'base64');
  switch (scheme) {
    case 'hmac':
      return expected.length === 32 && timingSafeEqual(expected, codeMac(key, saltBytes, code));
    case 'scrypt':
      return timingSafeEqual(expected, scryptSync(normalizedCode(code), saltBytes, expected.length));
    default:
      return false;
  }
}

function codeMac(key: Buffer, salt: Buffer, code: string): Buffer {
  return createHmac('sha256', key).update(salt).update(normalizedCode(code)).digest();
}

/** A code as printed on a letter: case and spaces or dashes do not matter. */
function normalizedCode(code: string): string {
  return code.replace(/[\s-]/g, '').toUpperCase();
}
