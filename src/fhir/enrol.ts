// fhir/enrol: POST [base]/Patient/$enrol, the insurer's enrolment feed at national scale
// (docs/accounts.md): up to MAX_ENROL people per call, each a notified account (policy/account.ts),
// a minor's legal representatives (RelatedPerson) created with it. Every person is checked first,
// the known INS are found with a few searches, then every new account is written in one store
// transaction with its representatives, the patient's consent stamp and its own AuditEvent.

import { randomInt } from 'node:crypto';
import type { Coding, Identifier, Parameters, ParametersParameter, Patient, RelatedPerson, Resource } from '@medplum/fhirtypes';
import { hashProvisionalCode, majorityDate, transition, withAccount } from '../policy/account.js';
import { creatorKey } from '../policy/decide.js';
import { indexEntries } from '../search/extract.js';
import type { SearchPlan } from '../search/types.js';
import { WriteConflict, type WriteOp } from '../store/port.js';
import { FhirError, Invalid } from '../base/outcome.js';
import { access, assertWrite, type Access } from './access.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { newId } from './body.js';
import { obligations } from './create.js';
import { auditOp, touchedBy } from './audited.js';
import { incomingResource } from './resource.js';

/** The INS (identifiant national de santé, docs/glossary.md): the identity an account is enrolled by. */
export const INS_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';
/** People in one $enrol call: a national feed sends batches of this size. */
export const MAX_ENROL = 10_000;
/**
 * The body limit of $enrol alone (fhir/http.ts), above the server's general one when that is lower:
 * 10,000 people with their representatives at up to 4 KiB each. A generated batch of 10,000 is
 * about 5 MiB (scripts/bench/enrol.mjs).
 */
export const ENROL_BODY_LIMIT = 40 * 1024 * 1024;
/** The legal representatives of a minor, as v3-RoleCode: parents (natural, adoptive) and guardians. */
export const V3_ROLE_CODE = 'http://terminology.hl7.org/CodeSystem/v3-RoleCode';
const REPRESENTATIVE_ROLES = new Set(['PRN', 'MTH', 'FTH', 'NPRN', 'NMTH', 'NFTH', 'ADOPTP', 'ADOPTM', 'ADOPTF', 'GUARD']);
/** INS values per search: each is two bound values (system and code), well under SQLite's limit. */
const SEARCH_CHUNK = 500;
/** A call that lost a race with another feed on some INS is checked again and retried this often. */
const ATTEMPTS = 4;
/** The provisional code's alphabet: no 0/O, 1/I/L (it is typed from a letter). */
const CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
const CODE_LENGTH = 12;

/** The Parameters body of an operation (400 otherwise). */
export function parametersOf(req: FhirRequest, operation: string): ParametersParameter[] {
  const value = req.body.kind === 'json' ? (req.body.value as Partial<Parameters> | null) : null;
  if (!value || typeof value !== 'object' || value.resourceType !== 'Parameters') throw new Invalid(`$${operation} takes a Parameters body`);
  return Array.isArray(value.parameter) ? value.parameter : [];
}

export function insOf(patient: Patient): string | undefined {
  return patient.identifier?.find((i: Identifier) => i.system === INS_SYSTEM && typeof i.value === 'string')?.value;
}

/** A fresh provisional code, printed on the person's letter: 12 characters of 31 (about 59 bits). */
function provisionalCode(): string {
  let code = '';
  for (let i = 0; i < CODE_LENGTH; i++) code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return `${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8)}`;
}

function byIns(values: readonly string[]): SearchPlan {
  return { types: ['Patient'], where: [{ kind: 'token', param: 'identifier', values: values.map((code) => ({ system: INS_SYSTEM, code })) }], sort: [] };
}

/** One person of the call, checked. */
interface Person {
  incoming: Patient;
  ins: string;
  representatives: RelatedPerson[];
}

/** A refusal of the whole call, with a stable code first in its diagnostics. */
function refused(code: string, diagnostics: string, expression?: string): FhirError {
  return new Invalid(`${code}: ${diagnostics}`, expression);
}

/**
 * The people of the body, checked: `patient` parameters (a Patient with an INS), each followed by
 * the `representative` parameters (a RelatedPerson with a v3-RoleCode relationship) of a minor.
 * Anything wrong refuses the whole call, naming the parameter.
 */
function peopleOf(parameters: ParametersParameter[], now: string): Person[] {
  const count = parameters.filter((p) => p.name === 'patient').length;
  if (count === 0) throw new Invalid('$enrol needs at least one "patient" parameter (resource: a Patient with an INS)');
  if (count > MAX_ENROL) throw new FhirError(413, [{ code: 'too-long', diagnostics: `ENROL_TOO_MANY: at most ${MAX_ENROL} people in one $enrol, this call has ${count}: send the feed in batches` }]);
  const people: Person[] = [];
  parameters.forEach((parameter, i) => {
    const where = `Parameters.parameter[${i}]`;
    if (parameter.name === 'patient') {
      const incoming = incomingResource(parameter.resource, 'Patient') as Patient;
      const ins = insOf(incoming);
      if (ins === undefined) throw new Invalid(`patient ${people.length}: an account is enrolled by INS (identifier with system ${INS_SYSTEM})`, `${where}.resource.identifier`);
      people.push({ incoming, ins, representatives: [] });
      return;
    }
    if (parameter.name !== 'representative') throw new Invalid(`$enrol takes "patient" and "representative" parameters, not "${String(parameter.name)}"`, `${where}.name`);
    const minor = people[people.length - 1];
    if (!minor) throw refused('ENROL_REPRESENTATIVE', 'a "representative" parameter follows the "patient" parameter of the minor it represents', where);
    const birthDate = minor.incoming.birthDate ?? '';
    const majority = /^\d{4}-\d{2}-\d{2}$/.test(birthDate) ? majorityDate(birthDate) : undefined;
    if (majority === undefined) throw refused('ENROL_REPRESENTATIVE', `patient ${people.length - 1} has representatives: their full birthDate (YYYY-MM-DD) is needed to know when they come of age`, where);
    if (Date.parse(now) >= Date.parse(majority)) throw refused('ENROL_REPRESENTATIVE', `patient ${people.length - 1} is an adult (of age since ${majority}): an adult has no legal representative in their account`, where);
    // The minor's reference is the server's to set (the feed does not know the new id yet).
    const body = parameter.resource as unknown;
    const sent = body !== null && typeof body === 'object' && !Array.isArray(body) ? { ...body, patient: { reference: 'Patient/enrolled' } } : body;
    const related = incomingResource(sent, 'RelatedPerson') as RelatedPerson;
    const roles = (related.relationship ?? []).flatMap((c) => c.coding ?? []).filter((c: Coding) => c.system === V3_ROLE_CODE && typeof c.code === 'string');
    if (roles.length === 0) throw refused('ENROL_REPRESENTATIVE', `a representative needs a relationship coded in ${V3_ROLE_CODE} (${[...REPRESENTATIVE_ROLES].join(', ')})`, `${where}.resource.relationship`);
    const unknown = roles.find((c) => !REPRESENTATIVE_ROLES.has(c.code as string));
    if (unknown) throw refused('ENROL_REPRESENTATIVE', `${unknown.code} is not a legal representative of a minor; one of ${[...REPRESENTATIVE_ROLES].join(', ')}`, `${where}.resource.relationship`);
    // The minor is the one this call enrols; their representatives act for them until they come of age.
    const { id: _ignored, patient: _patient, period: _period, ...content } = related;
    minor.representatives.push({ ...content, resourceType: 'RelatedPerson', patient: { reference: '' }, period: { start: now, end: majority } });
  });
  return people;
}

/** The Patient id of each INS already known, found with a few searches (identity by INS: the feed learns the id, not the record). */
async function knownIds(ctx: FhirContext, ins: readonly string[]): Promise<Map<string, string>> {
  const known = new Map<string, string>();
  const wanted = new Set(ins);
  const distinct = [...wanted];
  for (let i = 0; i < distinct.length; i += SEARCH_CHUNK) {
    const chunk = distinct.slice(i, i + SEARCH_CHUNK);
    // Several Patients may carry one INS (written before accounts, by POST Patient): the first answers.
    const page = await ctx.store.search(byIns(chunk), { count: chunk.length * 2 });
    for (const match of page.matches) {
      const value = insOf(match.resource as Patient);
      if (value !== undefined && wanted.has(value) && !known.has(value)) known.set(value, match.id);
    }
    // A page cut short (duplicates beyond 2 per INS): the rest are found one by one.
    if (page.next !== undefined) {
      for (const value of chunk) {
        if (known.has(value)) continue;
        const one = await ctx.store.search(byIns([value]), { count: 1 });
        if (one.matches[0]) known.set(value, one.matches[0].id);
      }
    }
  }
  return known;
}

/** What one call writes, and the answer once it is written. */
interface Plan {
  ops: WriteOp[];
  answers: ParametersParameter[];
}

/** The ops of every new account and the answer of every person, given the INS already known. */
async function planOf(ctx: FhirContext, req: FhirRequest, granted: { patient: Access; related?: Access }, people: Person[], known: Map<string, string>): Promise<Plan> {
  const ops: WriteOp[] = [];
  const answers: ParametersParameter[] = [];
  const at = Date.parse(ctx.now());
  const creator = creatorKey(granted.patient.actor);
  for (const person of people) {
    const existing = known.get(person.ins);
    if (existing !== undefined) {
      // Idempotent on the INS: nothing changes, the representatives sent again are not written.
      answers.push(result(person.ins, existing, 'existing'));
      continue;
    }
    const code = provisionalCode();
    const next = transition(undefined, { kind: 'enrol', provisionalCode: hashProvisionalCode(code, ctx.accountCodeKey), ...(person.incoming.birthDate ? { birthDate: person.incoming.birthDate } : {}) }, at);
    if (!next.ok) throw new Error(`enrol refused: ${next.reason}`);
    const { id: _ignored, ...content } = person.incoming;
    const patient = { ...withAccount(content as Patient, next.account), id: newId() };
    const permit = await assertWrite(ctx, granted.patient, 'create', { after: patient, account: 'enrol' }, `Patient/${patient.id}`);
    // Re-checked inside the transaction (failIfExists: a match fails it, and the call is retried):
    // two feeds enrolling one INS at once make one account, and no record of a create that lost.
    ops.push({ kind: 'create', resource: patient, index: indexEntries(patient), creator, ifNoneExist: byIns([person.ins]), failIfExists: true });
    const stamps = new Set(permit.stamps ?? []);
    ops.push(...obligations(permit));
    const representatives: (RelatedPerson & { id: string })[] = [];
    for (const representative of person.representatives) {
      const related = { ...representative, id: newId(), patient: { reference: `Patient/${patient.id}` } };
      const relatedPermit = await assertWrite(ctx, granted.related as Access, 'create', { after: related }, `RelatedPerson/${related.id}`);
      ops.push({ kind: 'create', resource: related, index: indexEntries(related), creator });
      for (const op of obligations(relatedPermit)) if (op.kind !== 'stamp' || !stamps.has(op.key)) ops.push(op);
      representatives.push(related);
    }
    // Every new account has its own record, naming it and its representatives.
    if (ctx.audit && req.actor) ops.push(auditOp(ctx, req, 'success', touchedBy([patient, ...representatives] as Resource[])));
    known.set(person.ins, patient.id); // the same INS twice in one call: the second is the first's
    answers.push(result(person.ins, patient.id, 'created', code, representatives.map((r) => r.id)));
  }
  return { ops, answers };
}

/** The outcome of one person's enrolment, as a `result` part of the answer. */
function result(ins: string, id: string, outcome: 'created' | 'existing', code?: string, representatives: string[] = []): ParametersParameter {
  return {
    name: 'result',
    part: [
      { name: 'ins', valueString: ins },
      { name: 'patient', valueReference: { reference: `Patient/${id}` } },
      { name: 'outcome', valueCode: outcome },
      ...(code !== undefined ? [{ name: 'provisionalCode', valueString: code }] : []),
      ...representatives.map((r) => ({ name: 'representative', valueReference: { reference: `RelatedPerson/${r}` } })),
    ],
  };
}

/**
 * POST [base]/Patient/$enrol: each `patient` parameter (a Patient with an INS) becomes a notified
 * account, its provisional code answered once (the server keeps only its keyed hash), with the
 * `representative` parameters that follow it for a minor. Idempotent on the INS: a person already
 * enrolled (or known) is answered with their existing id, and nothing changes. All or nothing: the
 * new accounts of a call are written in one transaction.
 */
export async function enrol(ctx: FhirContext, req: FhirRequest): Promise<FhirResponse> {
  const patient = access(req, 'Patient', 'c');
  const people = peopleOf(parametersOf(req, 'enrol'), ctx.now());
  const related = people.some((p) => p.representatives.length > 0) ? access(req, 'RelatedPerson', 'c') : undefined;
  for (let attempt = 1; ; attempt++) {
    const plan = await planOf(ctx, req, { patient, ...(related ? { related } : {}) }, people, await knownIds(ctx, people.map((p) => p.ins)));
    try {
      if (plan.ops.length > 0) await ctx.store.transact(plan.ops, ctx.now());
    } catch (error) {
      // Another feed enrolled one of these INS meanwhile: nothing of this call was written; the
      // known INS are read again and the call is planned anew.
      if (error instanceof WriteConflict && error.reason === 'already-exists' && attempt < ATTEMPTS) continue;
      throw error;
    }
    // Each new account's AuditEvent was written with it; the answer itself is recorded as the operation.
    return { status: 200, headers: {}, resource: { resourceType: 'Parameters', parameter: plan.answers } };
  }
}
